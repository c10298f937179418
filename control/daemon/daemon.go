package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/xlbproject/xlb/control/api"
	"github.com/xlbproject/xlb/control/bgp"
	"github.com/xlbproject/xlb/control/config"
	"github.com/xlbproject/xlb/control/health"
	"github.com/xlbproject/xlb/control/metrics"
	"github.com/xlbproject/xlb/control/reconcile"
	"github.com/xlbproject/xlb/control/state"
	"github.com/xlbproject/xlb/internal/etcdstore"
	"github.com/xlbproject/xlb/internal/listen"
	"github.com/xlbproject/xlb/internal/opsmetrics"
	"github.com/xlbproject/xlb/internal/statuspage"
	"github.com/xlbproject/xlb/l4"
	"github.com/xlbproject/xlb/l4/xdplink"
)

// resyncInterval bounds how long a failed reconcile waits for its retry
// when nothing else triggers one.
const resyncInterval = 5 * time.Second

// Options configure a Daemon.
type Options struct {
	// ConfigPath is the YAML configuration; Reload re-reads it.
	ConfigPath string
	Log        *slog.Logger
	Version    string
	// NoAttach loads (or adopts) the data path and runs everything but
	// leaves the interfaces alone: for tests that drive the program with
	// BPF_PROG_TEST_RUN, and for setups that attach it by other means.
	NoAttach bool
	// Registry receives the metrics; nil creates one (with Go and process
	// collectors) served on the configured metrics address.
	Registry *prometheus.Registry
}

// Daemon runs one edge host's control plane: it keeps the data path true to
// desired state × health and serves the API. It implements api.Service.
type Daemon struct {
	log     *slog.Logger
	version string
	start   time.Time
	store   *state.Store
	dp      *l4.Dataplane
	checker *health.Checker
	metrics *metrics.Metrics
	reloads *opsmetrics.Config
	reg     *prometheus.Registry
	adopted bool
	// attached: the daemon attached the interfaces itself (not NoAttach),
	// so it also looks after their next hops.
	attached bool

	kick chan struct{}

	// mu serialises changes of desired state, reloads and reconciles.
	mu            sync.Mutex
	cfg           *config.Config
	file          state.File
	rec           *reconcile.Reconciler
	lastReport    reconcile.Report
	lastReconcile time.Time
	lastErr       error
	// nextHopState: backend -> "" when its next hop is resolved, else
	// the neighbour state last logged (FIB mode).
	nextHopState map[netip.Addr]string

	// fleet is the etcd store of desired state (state.store: etcd), nil
	// with the state file.
	fleet *fleet

	// bgp announces the servable VIPs (bgp.go); nil without bgp config.
	// stopping: Shutdown has withdrawn them for good.
	bgp      *bgp.Speaker
	stopping bool

	apiSrv     *api.Server
	metricsLn  net.Listener
	metricsSrv *http.Server
}

var _ api.Service = (*Daemon)(nil)

// New reads the configuration and the state file, loads or adopts the data
// path, attaches it, learns every backend's health (one round of checks)
// and installs the tables. It opens the API socket and the metrics listener
// but serves them only in Run.
func New(ctx context.Context, opts Options) (_ *Daemon, err error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg, err := config.Load(opts.ConfigPath)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	// A missing interface fails here, before the state file is written or
	// anything is pinned: attaching would find it only after both.
	if !opts.NoAttach {
		if err := cfg.CheckInterfaces(net.InterfaceByName); err != nil {
			return nil, err
		}
	}
	d := &Daemon{
		log:     log,
		version: opts.Version,
		start:   time.Now(),
		cfg:     cfg,
		store:   state.NewStore(cfg.StatePath),
		kick:    make(chan struct{}, 1),
		reg:     opts.Registry,

		attached:     !opts.NoAttach,
		nextHopState: map[netip.Addr]string{},
	}
	defer func() {
		if err != nil {
			_ = d.Close()
		}
	}()

	// The sockets first: a second `xlb daemon` started by mistake beside
	// a running one stops here, before it writes the state file, takes
	// over the pinned links, reconciles or opens BGP sessions of its own.
	// Both are served only in Run.
	d.apiSrv, err = api.NewServer(d, api.ServerOptions{Path: cfg.API.Socket, Group: cfg.API.Group, Log: log.With("component", "api")})
	if err != nil {
		return nil, fmt.Errorf("open api socket: %w", err)
	}
	if cfg.Metrics.Listen != "" {
		d.metricsLn, err = listen.TCP(cfg.Metrics.Listen, "metrics.listen")
		if err != nil {
			return nil, err
		}
	}

	if err := d.loadState(); err != nil {
		return nil, err
	}
	if cfg.Store == config.StoreEtcd {
		if err := d.openFleet(ctx); err != nil {
			return nil, err
		}
	}

	dpc := dataplaneConfig(cfg, net.InterfaceByName)
	if err := checkNextHop(cfg, dpc, !opts.NoAttach, readProcSys, net.InterfaceByName); err != nil {
		return nil, err
	}
	d.adopted = pinned(cfg.PinPath)
	d.dp, err = l4.Open(dpc, log.With("component", "l4"))
	if errors.Is(err, l4.ErrIncompatiblePins) {
		return nil, fmt.Errorf("open data path: %w (to start with the new dataplane settings: `xlb daemon --cleanup --config %s`, which stops forwarding, then start the daemon)", err, cfg.File)
	}
	if err != nil {
		return nil, fmt.Errorf("open data path: %w", err)
	}
	if d.adopted {
		log.Info("adopted pinned data path", "pin_path", cfg.PinPath)
	}
	if !opts.NoAttach {
		for _, it := range cfg.Interfaces {
			if err := d.dp.Attach(it.Name, attachMode(it.Mode)); err != nil {
				return nil, fmt.Errorf("attach to %q: %w", it.Name, err)
			}
			log.Info("attached", "iface", it.Name, "mode", it.Mode)
		}
	}

	if d.reg == nil {
		d.reg = prometheus.NewRegistry()
		d.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	d.metrics, err = metrics.New(d.reg, d.dp, d.backendView)
	if err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	if d.fleet != nil {
		if err := d.reg.Register(etcdstore.NewCollector(d.fleet.store)); err != nil {
			return nil, fmt.Errorf("register store metrics: %w", err)
		}
	}
	d.reloads, err = opsmetrics.Register(d.reg, d.version, d.start)
	if err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	d.checker = health.NewChecker(log.With("component", "health"), health.Options{
		Observer: d.metrics,
		OnChange: func(t health.Target, s health.Status) {
			d.metrics.ObserveTransition(t.Addr, s.Up)
			d.trigger()
		},
	})

	d.rec = reconcile.New(log.With("component", "reconcile"), dataplaneAdapter{d.dp, d.modeLocked})
	backends := map[netip.Addr]reconcile.BackendID{}
	for id, a := range d.dp.Backends() {
		backends[a] = reconcile.BackendID(id)
	}
	var vips []api.VIPKey
	for _, v := range d.dp.VIPs() {
		vips = append(vips, keyFromL4(v))
	}
	d.rec.Adopt(vips, backends)

	// One round of checks before the first reconcile: a restarted daemon
	// installs tables from real health, not from a guess.
	d.mu.Lock()
	d.setTargetsLocked()
	d.mu.Unlock()
	wctx, cancel := context.WithTimeout(ctx, cfg.Health.Timeout+cfg.Health.Interval/5+200*time.Millisecond)
	if err := d.checker.WaitKnown(wctx); err != nil {
		log.Warn("not every backend answered its first health check in time; until they do they get no new flows and are not counted for failing open", "error", err)
	}
	cancel()
	d.mu.Lock()
	d.reconcileLocked()
	d.ensureNextHopsLocked()
	d.mu.Unlock()

	if err := d.startBGP(ctx); err != nil {
		return nil, fmt.Errorf("start bgp: %w", err)
	}

	if d.metricsLn != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(d.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))
		// The read-only status page and its JSON (docs/status-page.md).
		statuspage.Mount(mux, api.LiveHandler(d))
		d.metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	}
	return d, nil
}

// loadState reads the state file, or starts from the configuration on a
// first start, and rebases it on the current configuration file.
func (d *Daemon) loadState() error {
	if err := d.store.RemoveTemps(); err != nil {
		d.log.Warn("remove leftover temporary state files", "error", err)
	}
	if d.cfg.Store == config.StoreEtcd {
		return d.loadFleetCache()
	}
	f, found, err := desiredFromFile(d.cfg, d.store)
	if err != nil {
		return err
	}
	if found {
		d.log.Info("state loaded", "state", d.store.Path(), "vips", len(f.Desired.VIPs))
	} else {
		d.log.Info("no state file: starting from the configuration", "state", d.store.Path())
	}
	if err := d.store.Save(f); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	d.file = f
	return nil
}

// desiredFromFile is the state a start begins from with the file store:
// the state file rebased on cfg, or cfg alone when there is no file yet
// (found false). It only reads.
func desiredFromFile(cfg *config.Config, store *state.Store) (f state.File, found bool, err error) {
	base := state.FromConfig(cfg)
	f, err = store.Load()
	switch {
	case errors.Is(err, os.ErrNotExist):
		f = state.File{Base: base, Desired: base.Clone()}
	case err != nil:
		return state.File{}, false, fmt.Errorf("load state: %w", err)
	default:
		// The file may have been edited while the daemon was down.
		f = state.File{Base: base, Desired: state.Rebase(f.Desired, f.Base, base)}
		found = true
	}
	if err := checkDesired(f.Desired, cfg); err != nil {
		return state.File{}, found, fmt.Errorf("load state: %w", err)
	}
	return f, found, nil
}

// Run serves the API and the metrics and reconciles on every health change
// (and every few seconds, to retry failures) until ctx ends.
func (d *Daemon) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := d.apiSrv.Serve(ctx); err != nil {
			errs <- fmt.Errorf("serve api: %w", err)
			cancel()
		}
	}()
	if d.metricsSrv != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.metricsSrv.Serve(d.metricsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- fmt.Errorf("serve metrics: %w", err)
				cancel()
			}
		}()
		go func() {
			<-ctx.Done()
			sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer scancel()
			_ = d.metricsSrv.Shutdown(sctx)
		}()
	}
	if d.attached && d.dp.Config().FIBMode() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if r := recover(); r != nil {
					d.log.Error("next-hop watcher panicked; next hops now refresh only every NextHopTTL", "panic", r)
				}
			}()
			if err := d.dp.WatchNextHops(ctx); err != nil {
				d.log.Warn("cannot watch the kernel's neighbour and route tables; next hops refresh every NextHopTTL", "error", err)
			}
		}()
	}
	if d.fleet != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.runFleet(ctx)
		}()
	}
	// The API is already serving: read the state under the lock.
	d.mu.Lock()
	nvips := len(d.file.Desired.VIPs)
	d.mu.Unlock()
	d.log.Info("daemon running", "socket", d.cfg.API.Socket, "metrics", d.cfg.Metrics.Listen, "vips", nvips)

	ticker := time.NewTicker(resyncInterval)
	defer ticker.Stop()
loop:
	for {
		tick := false
		select {
		case <-ctx.Done():
			break loop
		case <-d.kick:
		case <-ticker.C:
			tick = true
		}
		d.mu.Lock()
		// A tick only retries a failed reconcile.
		if !tick || d.lastErr != nil {
			d.reconcileLocked()
		}
		d.ensureNextHopsLocked()
		d.mu.Unlock()
	}
	cancel()
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// Close stops the health checks and releases the data path's descriptors
// and the listeners. The program stays attached and forwarding: its links
// and maps are pinned, and the next daemon adopts them.
func (d *Daemon) Close() error {
	var errs []error
	// Without Shutdown, closing is a restart: the data path stays and so
	// do the routes (graceful restart).
	if d.bgp != nil {
		errs = append(errs, d.bgp.Stop(true))
	}
	if d.checker != nil {
		errs = append(errs, d.checker.Close())
	}
	if d.apiSrv != nil {
		errs = append(errs, d.apiSrv.Close())
	}
	if d.metricsSrv != nil {
		errs = append(errs, d.metricsSrv.Close())
	} else if d.metricsLn != nil {
		errs = append(errs, d.metricsLn.Close())
	}
	if d.dp != nil {
		errs = append(errs, d.dp.Close())
	}
	if d.fleet != nil {
		errs = append(errs, d.fleet.store.Close())
	}
	return errors.Join(errs...)
}

// Cleanup removes everything a daemon with cfg pinned: the program is
// detached and its maps freed once no process holds them.
func Cleanup(cfg *config.Config) error {
	if err := l4.RemovePins(cfg.PinPath); err != nil {
		return fmt.Errorf("remove pins under %s: %w", cfg.PinPath, err)
	}
	return nil
}

// Registry is where the daemon's metrics are registered.
func (d *Daemon) Registry() *prometheus.Registry { return d.reg }

// Dataplane is the loaded (or adopted) data path, for tests and benchmarks.
func (d *Daemon) Dataplane() *l4.Dataplane { return d.dp }

// LastReport is what the latest reconcile did (benchmarks, tests).
func (d *Daemon) LastReport() reconcile.Report {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lastReport
}

func (d *Daemon) trigger() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// ensureNextHopsLocked, when next hops come from the kernel's FIB, has
// the kernel resolve every L7 host's next hop and keep it resolved (a
// managed neighbour entry, l4.EnsureNextHop): the data path passes the
// packets of a host whose neighbour is unresolved, and nothing else would
// resolve it. Logs each host's transitions between resolved and not.
func (d *Daemon) ensureNextHopsLocked() {
	if !d.attached || !d.dp.Config().FIBMode() {
		return
	}
	seen := map[netip.Addr]bool{}
	for _, a := range d.backendAddrsLocked() {
		seen[a] = true
		nh, err := l4.EnsureNextHop(a)
		if err != nil {
			d.log.Warn("cannot resolve next hop", "backend", a, "error", err)
			continue
		}
		was, known := d.nextHopState[a]
		if nh.Resolved() {
			if known && was != "" {
				d.log.Info("next hop resolved", "backend", a, "iface", nh.Iface, "mac", nh.MAC.String())
			}
			d.nextHopState[a] = ""
			continue
		}
		if !known || was != nh.State {
			d.log.Warn("next hop unresolved: packets to this host are passed to the kernel", "backend", a, "iface", nh.Iface, "state", nh.State)
		}
		d.nextHopState[a] = nh.State
	}
	for a := range d.nextHopState {
		if !seen[a] {
			delete(d.nextHopState, a)
		}
	}
}

// l4Mode maps an API forwarding mode to the data path's; "" is the
// default. Every mode of api.Modes has a case.
func l4Mode(m string) (l4.Mode, error) {
	switch m {
	case "", api.ModeIPIP:
		return l4.ModeIPIP, nil
	case api.ModeL2DSR:
		return l4.ModeL2DSR, nil
	case api.ModeGUE:
		return l4.ModeGUE, nil
	}
	return 0, fmt.Errorf("forwarding mode %q: %w", m, l4.ErrInvalid)
}

// modeLocked is the data-path mode of a desired VIP (ModeIPIP when the
// VIP is not in the desired state).
func (d *Daemon) modeLocked(k api.VIPKey) l4.Mode {
	v, ok := d.file.Desired.VIP(k)
	if !ok {
		return l4.ModeIPIP
	}
	m, err := l4Mode(v.Mode)
	if err != nil {
		d.log.Error("vip with an unknown forwarding mode: forwarding it with ipip", "vip", k.String(), "mode", v.Mode)
	}
	return m
}

// syncModesLocked changes the mode of VIPs already in the data path whose
// desired mode changed (a config reload); the reconciler creates new VIPs
// with theirs.
func (d *Daemon) syncModesLocked() error {
	for _, v := range d.file.Desired.VIPs {
		lv := keyToL4(v.Key)
		cur, ok := d.dp.VIPMode(lv)
		if want := d.modeLocked(v.Key); ok && cur != want {
			if err := d.dp.UpsertVIP(lv, l4.WithMode(want)); err != nil {
				return fmt.Errorf("change forwarding mode of vip %s: %w", v.Key, err)
			}
			d.log.Info("vip forwarding mode changed", "vip", v.Key.String(), "mode", want.String())
		}
	}
	return nil
}

// reconcileLocked runs one reconcile; d.mu must be held.
func (d *Daemon) reconcileLocked() {
	// What is servable may change with every reconcile (bgp.go).
	defer d.announceLocked()
	d.rec.SetFailOpen(d.cfg.Health.FailOpen())
	rep, err := d.rec.Reconcile(d.file.Desired, d.healthLocked)
	if err == nil {
		err = d.syncModesLocked()
	}
	now := time.Now()
	d.metrics.ObserveReconcile(rep, err, now)
	d.lastReport = rep
	if err != nil {
		if d.lastErr == nil || d.lastErr.Error() != err.Error() {
			d.log.Error("reconcile failed; retrying", "error", err)
		}
		d.lastErr = err
		return
	}
	d.lastErr = nil
	d.lastReconcile = now
}

// target is the health check of one backend of one VIP.
func (d *Daemon) targetLocked(vip api.VIPKey, addr netip.Addr) health.Target {
	port := d.cfg.Health.Port
	if port == 0 {
		port = vip.Port
	}
	return health.Target{Addr: addr, Port: port, Spec: d.cfg.Health.Spec}
}

// setTargetsLocked points the health checker at the desired backends and
// drops the metric series of VIPs and backends no longer there.
func (d *Daemon) setTargetsLocked() {
	ts := d.targetsLocked()
	d.checker.Set(ts)
	vips := make([]string, 0, len(d.file.Desired.VIPs))
	for _, v := range d.file.Desired.VIPs {
		vips = append(vips, v.Key.String())
	}
	backends := make([]string, 0, len(ts))
	for _, t := range ts {
		backends = append(backends, t.Addr.String())
	}
	d.metrics.Retain(vips, backends)
}

func (d *Daemon) targetsLocked() []health.Target {
	seen := map[health.Target]bool{}
	var ts []health.Target
	for _, v := range d.file.Desired.VIPs {
		for _, b := range v.Backends {
			t := d.targetLocked(v.Key, b.Addr)
			if !seen[t] {
				seen[t] = true
				ts = append(ts, t)
			}
		}
	}
	return ts
}

func (d *Daemon) upLocked(vip api.VIPKey, addr netip.Addr) bool {
	return d.checker.Status(d.targetLocked(vip, addr)).Up
}

// healthLocked is what the reconciler needs: a backend whose check has
// not answered yet is Unchecked, not Failing.
func (d *Daemon) healthLocked(vip api.VIPKey, addr netip.Addr) reconcile.Health {
	return healthOf(d.checker.Status(d.targetLocked(vip, addr)))
}

func healthOf(s health.Status) reconcile.Health {
	switch {
	case !s.Known:
		return reconcile.Unchecked
	case s.Up:
		return reconcile.Passing
	default:
		return reconcile.Failing
	}
}

// backendView feeds the metrics collector at scrape time.
func (d *Daemon) backendView() []metrics.BackendView {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []metrics.BackendView
	for _, v := range d.file.Desired.VIPs {
		slots := d.rec.Slots(v.Key)
		for _, b := range v.Backends {
			h := d.healthLocked(v.Key, b.Addr)
			bv := metrics.BackendView{
				VIP: v.Key.String(), Backend: b.Addr.String(), Up: h == reconcile.Passing,
				State: reconcile.BackendState(b, h), Slots: slots[b.Addr], VIPFailingOpen: d.rec.FailingOpen(v.Key),
			}
			// As of the last resync (ensureNextHopsLocked).
			if st, ok := d.nextHopState[b.Addr]; ok {
				bv.NextHopKnown, bv.NextHopResolved = true, st == ""
			}
			out = append(out, bv)
		}
	}
	return out
}

// checkOuter: the outer header towards an L7 host has the host's family
// (4-in-6 and 6-in-4 included), so every backend's family needs its outer
// source; a VIP without backends of another family needs its own
// family's, as before (l2dsr keeps the same family: state refuses mixed).
func checkOuter(v state.VIP, cfg *config.Config) error {
	outer := func(a netip.Addr) (int, bool) {
		if a.Is4() {
			return 4, cfg.OuterSource.IPv4.IsValid()
		}
		return 6, cfg.OuterSource.IPv6.IsValid()
	}
	own := v.Mode == api.ModeL2DSR || len(v.Backends) == 0
	for _, b := range v.Backends {
		if b.Addr.Is4() == v.Key.Addr.Is4() {
			own = true
			continue
		}
		if family, ok := outer(b.Addr); !ok {
			return api.Errorf(api.ErrInvalid, "vip %s: backend %s is IPv%d, which needs outer_source.ipv%[3]d in the config (the source of the outer header towards it)", v.Key, b.Addr, family)
		}
	}
	if family, ok := outer(v.Key.Addr); own && !ok {
		return api.Errorf(api.ErrInvalid, "vip %s: an IPv%d VIP needs outer_source.ipv%[2]d in the config (the host's address for the IP-in-IP outer header)", v.Key, family)
	}
	return nil
}

// checkDesired rejects what state.Desired cannot know is wrong: a table
// size other than the data path's, a health check that has no port.
func checkDesired(des state.Desired, cfg *config.Config) error {
	for _, v := range des.VIPs {
		if m := cfg.Dataplane.TableSize; v.TableSize != m {
			return api.Errorf(api.ErrInvalid, "vip %s: table size %d differs from the data path's %d (dataplane.table_size applies to every VIP)", v.Key, v.TableSize, m)
		}
		if err := checkOuter(v, cfg); err != nil {
			return err
		}
		if v.Mode == api.ModeGUE && cfg.Dataplane.GUEPort == 0 {
			return api.Errorf(api.ErrInvalid, "vip %s: forwarding gue needs dataplane.gue_port in the config (the port of the L7 hosts' xlb decap --gue-port)", v.Key)
		}
		if v.Key.Port == 0 && cfg.Health.Port == 0 {
			return api.Errorf(api.ErrInvalid, "vip %s: health.port 0 checks the VIP's port, which a port-wildcard VIP does not have: set health.port in the config", v.Key)
		}
	}
	return nil
}

// pinned reports whether a previous daemon left a data path under dir.
func pinned(dir string) bool {
	entries, err := os.ReadDir(dir)
	return err == nil && len(entries) > 0
}

// attachMode parses a mode the config has validated (auto, native or
// generic).
func attachMode(s string) l4.AttachMode {
	m, _ := xdplink.ParseMode(s)
	return m
}

// dataplaneConfig derives the data path's settings from the config. An
// unset dataplane.mtu takes the smallest MTU of the configured interfaces,
// so the check is on by default: an encapsulated packet above it is
// counted (too_big) instead of vanishing at the next hop.
func dataplaneConfig(cfg *config.Config, iface func(string) (*net.Interface, error)) l4.Config {
	c := l4.Config{
		MaxVIPs:          uint32(cfg.Dataplane.MaxVIPs),
		MaxBackends:      uint32(cfg.Dataplane.MaxBackends),
		ConnEntries:      uint32(cfg.Dataplane.ConntrackEntries),
		TableSize:        cfg.Dataplane.TableSize,
		UDPTimeout:       cfg.Dataplane.UDPIdleTimeout,
		TCPCloseTimeout:  cfg.Dataplane.TCPCloseTimeout,
		MTU:              uint32(cfg.Dataplane.MTU),
		NewFlowRateLimit: uint32(cfg.Dataplane.NewFlowRateLimit),
		GUEPort:          cfg.Dataplane.GUEPort,
		PinPath:          cfg.PinPath,
		OuterSrcV4:       cfg.OuterSource.IPv4,
		OuterSrcV6:       cfg.OuterSource.IPv6,
		SrcMAC:           cfg.Dataplane.SrcMAC,
		NextHopMAC:       cfg.Dataplane.NextHopMAC,
	}
	for i, it := range cfg.Interfaces {
		ifc, err := iface(it.Name)
		if err != nil {
			continue // attaching reports the missing interface
		}
		if cfg.Dataplane.MTU == 0 && ifc.MTU > 0 && (c.MTU == 0 || uint32(ifc.MTU) < c.MTU) {
			c.MTU = uint32(ifc.MTU)
		}
		// The balancer transmits on the interface it received on; its
		// own MAC is the right source for the bridge or switch to learn.
		if i == 0 && c.NextHopMAC != nil && c.SrcMAC == nil && len(ifc.HardwareAddr) == 6 {
			c.SrcMAC = ifc.HardwareAddr
		}
	}
	return c
}

// CheckHost is what `xlb daemon --check` adds to the file's own checks:
// that this host can run cfg as a start would find before it loads,
// pins or writes anything — every interface exists, the state file (with
// the file store) reads and fits the config, bpf.pin_path is on bpffs,
// and forwarded frames have a next hop (forwarding on where the kernel's
// FIB gives it).
func CheckHost(cfg *config.Config) error {
	if err := cfg.CheckInterfaces(net.InterfaceByName); err != nil {
		return err
	}
	if cfg.Store != config.StoreEtcd {
		if _, _, err := desiredFromFile(cfg, state.NewStore(cfg.StatePath)); err != nil {
			return err
		}
	}
	if err := xdplink.CheckPinDir(cfg.PinPath); err != nil {
		return &config.Error{File: cfg.File, Field: "bpf.pin_path", Reason: err.Error()}
	}
	if err := checkNextHop(cfg, dataplaneConfig(cfg, net.InterfaceByName), true, readProcSys, net.InterfaceByName); err != nil {
		// Named by the file it is about; its keys are in the reason.
		return &config.Error{File: cfg.File, Reason: err.Error()}
	}
	return nil
}

// readProcSys reads a file under /proc/sys (path relative to it).
func readProcSys(path string) (string, error) {
	b, err := os.ReadFile(filepath.Join("/proc/sys", path))
	return strings.TrimSpace(string(b)), err
}

// checkNextHop refuses a configuration under which forwarded frames could
// reach no next hop, before anything is loaded. With dataplane.next_hop_mac
// the frames also need a source MAC. Without it (the default) every
// frame's next hop comes from the kernel's FIB, which answers only on an
// Ethernet interface with forwarding on for the family (otherwise every
// packet would be counted as fib_fwd_disabled and passed); attaching says
// whether the interfaces are about to be used (not with NoAttach).
func checkNextHop(cfg *config.Config, c l4.Config, attaching bool, sysctl func(string) (string, error),
	iface func(string) (*net.Interface, error)) error {
	why := "dataplane.next_hop_mac is not set, so next hops come from the kernel's FIB"
	if !c.FIBMode() {
		if c.SrcMAC == nil {
			name := "none"
			if len(cfg.Interfaces) > 0 {
				name = cfg.Interfaces[0].Name
			}
			return fmt.Errorf("dataplane.next_hop_mac needs the source MAC of forwarded frames: interface %s has no Ethernet address, set dataplane.src_mac", name)
		}
		// L2 DSR takes the L7 host's MAC from the FIB whatever the
		// override says.
		l2 := ""
		for _, v := range cfg.VIPs {
			if v.Forwarding == api.ModeL2DSR {
				l2 = fmt.Sprintf("%s:%d/%s", v.Addr, v.Port, v.Proto)
				break
			}
		}
		if l2 == "" {
			return nil
		}
		why = "vip " + l2 + " forwards with l2dsr, which takes the L7 hosts' MACs from the kernel's FIB"
	}
	if !attaching {
		return nil
	}
	// Every interface and family is read before answering, so that one
	// command fixes them all rather than one per attempt.
	var off, fix []string
	v6 := ""
	for _, it := range cfg.Interfaces {
		ifc, err := iface(it.Name)
		if err != nil {
			continue // attaching reports the missing interface
		}
		if len(ifc.HardwareAddr) != 6 {
			return fmt.Errorf("interface %s has no Ethernet address, so the kernel's FIB cannot give next hops on it: set dataplane.next_hop_mac and dataplane.src_mac", it.Name)
		}
		for _, fam := range []struct {
			used bool
			dir  string
		}{{cfg.OuterSource.IPv4.IsValid(), "ipv4"}, {cfg.OuterSource.IPv6.IsValid(), "ipv6"}} {
			if !fam.used {
				continue
			}
			path := filepath.Join("net", fam.dir, "conf", it.Name, "forwarding")
			v, err := sysctl(path)
			if err != nil {
				return fmt.Errorf("read %s: %w", filepath.Join("/proc/sys", path), err)
			}
			if v != "1" {
				key := fmt.Sprintf("net.%s.conf.%s.forwarding", fam.dir, it.Name)
				off = append(off, key+" is "+v)
				fix = append(fix, key+"=1")
				if fam.dir == "ipv6" && v6 == "" {
					v6 = it.Name
				}
			}
		}
	}
	if len(off) == 0 {
		return nil
	}
	msg := fmt.Sprintf("%s, and the kernel answers a FIB lookup (bpf_fib_lookup) only on an interface that forwards: %s, "+
		"so every packet for a VIP would be passed to this host's own stack instead of forwarded (counted as fib_fwd_disabled). "+
		"Run `sysctl -w %s` and keep the setting in /etc/sysctl.d/ (docs/deploy.md), or set dataplane.next_hop_mac to send every frame to one fixed router",
		why, strings.Join(off, ", "), strings.Join(fix, " "))
	if v6 != "" {
		// Linux ignores router advertisements on an interface that
		// forwards IPv6: a host that takes its default route from them
		// would lose it.
		msg += fmt.Sprintf("; with IPv6 forwarding on, %s ignores router advertisements unless net.ipv6.conf.%s.accept_ra=2", v6, v6)
	}
	return errors.New(msg)
}

// dataplaneAdapter lets the reconciler drive *l4.Dataplane.
// mode says how a VIP of the desired state forwards; the reconciler calls
// the adapter with d.mu held.
type dataplaneAdapter struct {
	dp   *l4.Dataplane
	mode func(api.VIPKey) l4.Mode
}

var _ reconcile.Dataplane = dataplaneAdapter{}

func (a dataplaneAdapter) UpsertVIP(k api.VIPKey) error {
	return a.dp.UpsertVIP(keyToL4(k), l4.WithMode(a.mode(k)))
}
func (a dataplaneAdapter) DeleteVIP(k api.VIPKey) error { return a.dp.DeleteVIP(keyToL4(k)) }
func (a dataplaneAdapter) UpsertBackend(addr netip.Addr) (reconcile.BackendID, error) {
	id, err := a.dp.UpsertBackend(addr)
	return reconcile.BackendID(id), err
}
func (a dataplaneAdapter) DeleteBackend(_ netip.Addr, id reconcile.BackendID) error {
	return a.dp.DeleteBackend(l4.BackendID(id))
}
func (a dataplaneAdapter) InstallTable(k api.VIPKey, t []reconcile.BackendID) error {
	ids := make([]l4.BackendID, len(t))
	for i, id := range t {
		ids[i] = l4.BackendID(id)
	}
	return a.dp.InstallTable(keyToL4(k), ids)
}

func keyToL4(k api.VIPKey) l4.VIP {
	p := l4.TCP
	if k.Proto == api.ProtoUDP {
		p = l4.UDP
	}
	return l4.VIP{Addr: k.Addr, Port: k.Port, Proto: p}
}

func keyFromL4(v l4.VIP) api.VIPKey {
	p := api.ProtoTCP
	if v.Proto == l4.UDP {
		p = api.ProtoUDP
	}
	return api.VIPKey{Addr: v.Addr, Port: v.Port, Proto: p}
}

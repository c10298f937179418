package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/xlbproject/xlb/control/api"
	"github.com/xlbproject/xlb/l4"
	"github.com/xlbproject/xlb/l7/admin"
	"github.com/xlbproject/xlb/test/topo"
)

// Binaries are the programs a fleet runs.
type Binaries struct {
	// XLB is the xlb binary (daemon, decap, proxy, and the CLI).
	XLB string
	// App is the demo app server (test/demo/app).
	App string
	// Etcd is this package's etcd command (test/fleet/etcd).
	Etcd string
}

// Build compiles the three binaries into dir with the go command on PATH.
func Build(ctx context.Context, dir string) (Binaries, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return Binaries{}, fmt.Errorf("find the go command: %w", err)
	}
	b := Binaries{XLB: filepath.Join(dir, "xlb"), App: filepath.Join(dir, "xlb-demo-app"), Etcd: filepath.Join(dir, "xlb-demo-etcd")}
	for bin, pkg := range map[string]string{
		b.XLB: "github.com/xlbproject/xlb/cmd/xlb", b.App: "github.com/xlbproject/xlb/test/demo/app",
		b.Etcd: "github.com/xlbproject/xlb/test/fleet/etcd",
	} {
		if out, err := exec.CommandContext(ctx, goBin, "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			return Binaries{}, fmt.Errorf("build %s: %w: %s", pkg, err, out)
		}
	}
	return b, nil
}

// Options describe a fleet. Bin is required; the rest has defaults.
type Options struct {
	Bin Binaries
	// Prefix starts every namespace, pin and FRR directory name; default
	// a random one (test/topo's). Leftovers of the same prefix are removed
	// first.
	Prefix string
	// EdgeHosts, L7Hosts: how many of each at the start (default 1).
	EdgeHosts, L7Hosts int
	// Checkout and Browse are the app servers of each pool at the start
	// (default 1 each).
	Checkout, Browse int
	// VIP is the shop's address (port 80/tcp); default 198.51.100.10.
	VIP netip.Addr
	// HealthInterval is the daemons' health-check interval of the L7
	// hosts (timeout 4/5 of it, rise 2, fall 3: a stall of a busy machine
	// that fails one check does not flap an L7 host); default 250ms.
	HealthInterval time.Duration
	// BGPHold is the BGP hold time (keepalive a third); default 3s, the
	// smallest RFC 4271 allows: a lost edge host is noticed that fast.
	BGPHold time.Duration
	// Progress gets a line per step of the build; nil for none.
	Progress io.Writer
}

// Fleet is a running site. Its fields are read-only for callers.
type Fleet struct {
	opts   Options
	VIP    netip.Addr
	Key    api.VIPKey
	Topo   *topo.Topology
	Router *topo.Host
	FRR    *topo.FRR
	Client *topo.Host
	Etcd   *topo.Host
	Edges  []*Edge
	L7s    []*L7
	Apps   []*App

	dir  string
	mu   sync.Mutex
	etcd *Proc
	// procs are every process started, in order.
	procs []*Proc
}

// Edge is an edge host running xlb daemon.
type Edge struct {
	Name   string
	Host   *topo.Host
	Socket string
	Config string
	Pin    string
	Daemon *Proc
	// Lost is set by Lose: unplugged and killed.
	Lost bool
	dir  string
}

// L7 is an L7 host running xlb decap and xlb proxy.
type L7 struct {
	Name   string
	Host   *topo.Host
	Socket string
	Config string
	Decap  *Proc
	Proxy  *Proc
	dir    string
}

// App is one app server.
type App struct {
	// Name is the server's name in its pool ("c1", "b3").
	Name string
	Pool string
	Host *topo.Host
	Addr netip.AddrPort
	Proc *Proc
	// initial servers are in the proxies' config files; the others are
	// added at run time (xlb pool server add).
	initial bool
}

func (o *Options) setDefaults() {
	o.EdgeHosts = max(o.EdgeHosts, 1)
	o.L7Hosts = max(o.L7Hosts, 1)
	o.Checkout = max(o.Checkout, 1)
	o.Browse = max(o.Browse, 1)
	if !o.VIP.IsValid() {
		o.VIP = netip.MustParseAddr("198.51.100.10")
	}
	if o.HealthInterval == 0 {
		o.HealthInterval = 250 * time.Millisecond
	}
	if o.BGPHold == 0 {
		o.BGPHold = 3 * time.Second
	}
}

func (f *Fleet) keepalive() time.Duration { return max(f.opts.BGPHold/3, time.Second) }

func (f *Fleet) etcdURL() string { return fmt.Sprintf("http://%s:%d", f.Etcd.Addr4, etcdPort) }

func (f *Fleet) logf(format string, args ...any) {
	if f.opts.Progress != nil {
		fmt.Fprintf(f.opts.Progress, format+"\n", args...)
	}
}

// Dir is the fleet's work directory: configs, sockets, logs.
func (f *Fleet) Dir() string { return f.dir }

// New builds and starts a fleet and waits until it serves. On error
// everything made so far is removed.
func New(ctx context.Context, opts Options) (_ *Fleet, err error) {
	opts.setDefaults()
	if opts.Bin.XLB == "" || opts.Bin.App == "" || opts.Bin.Etcd == "" {
		return nil, errors.New("fleet: Options.Bin needs the xlb, app and etcd binaries (fleet.Build makes them)")
	}
	if !topo.FRRAvailable() {
		return nil, errors.New("fleet: FRR is not installed (make deps installs Debian's frr)")
	}
	f := &Fleet{opts: opts, VIP: opts.VIP, Key: api.VIPKey{Addr: opts.VIP, Port: 80, Proto: api.ProtoTCP}}
	if opts.Prefix != "" {
		if err := Cleanup(opts.Prefix); err != nil {
			return nil, fmt.Errorf("remove leftovers of %s: %w", opts.Prefix, err)
		}
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, f.Close())
		}
	}()
	if f.dir, err = os.MkdirTemp("", "xlb-fleet-"); err != nil {
		return nil, fmt.Errorf("create work dir: %w", err)
	}
	if f.Topo, err = topo.New(topo.Options{Prefix: opts.Prefix}); err != nil {
		return nil, fmt.Errorf("create topology: %w", err)
	}
	if err := f.addCore(); err != nil {
		return nil, err
	}
	f.logf("router %s (FRR, AS %d), client %s, etcd %s", f.Router.Addr4, routerASN, f.Client.Addr4, f.Etcd.Addr4)
	for range opts.Checkout {
		if _, err := f.addApp(PoolCheckout, true); err != nil {
			return nil, err
		}
	}
	for range opts.Browse {
		if _, err := f.addApp(PoolBrowse, true); err != nil {
			return nil, err
		}
	}
	for range opts.L7Hosts {
		if _, err := f.addL7Host(); err != nil {
			return nil, err
		}
	}
	for range opts.EdgeHosts {
		if _, err := f.addEdgeHost(); err != nil {
			return nil, err
		}
	}
	if err := f.waitEtcd(ctx); err != nil {
		return nil, err
	}
	if err := f.waitApps(ctx, f.Apps); err != nil {
		return nil, err
	}
	f.logf("%d app servers answer (checkout %d, browse %d)", len(f.Apps), opts.Checkout, opts.Browse)
	for _, l := range f.L7s {
		if err := f.startL7(l); err != nil {
			return nil, err
		}
	}
	for _, l := range f.L7s {
		if err := f.waitL7(ctx, l); err != nil {
			return nil, err
		}
	}
	f.logf("%d L7 hosts: xlb decap + xlb proxy, every pool available", len(f.L7s))
	for _, e := range f.Edges {
		if err := os.WriteFile(e.Config, []byte(f.daemonConfig(e)), 0o600); err != nil {
			return nil, fmt.Errorf("write %s's config: %w", e.Name, err)
		}
		if e.Daemon, err = f.start(e.Host, e.Name+"-daemon", opts.Bin.XLB, "daemon", "--config", e.Config); err != nil {
			return nil, err
		}
	}
	if err := f.WaitTable(ctx, f.L7s); err != nil {
		return nil, err
	}
	if err := f.WaitRouter(ctx); err != nil {
		return nil, err
	}
	f.logf("%d edge hosts: xlb daemon (XDP native), every L7 host healthy, VIP %s announced over BGP, router ECMP over all", len(f.Edges), f.VIP)
	return f, nil
}

// addCore adds the router (with FRR), the client and the etcd host.
func (f *Fleet) addCore() (err error) {
	if f.Router, err = f.Topo.AddHost(topo.HostConfig{Name: "router", Router: true, NoOffloads: true}); err != nil {
		return err
	}
	f.FRR, err = f.Router.StartFRR(topo.FRRConfig{
		ASN: routerASN, RouterID: f.Router.Addr4, Listen: f.Router.Prefix4, PeerASN: edgeASN,
		Keepalive: f.keepalive(), HoldTime: f.opts.BGPHold,
	})
	if err != nil {
		return fmt.Errorf("start frr: %w", err)
	}
	if f.Client, err = f.Topo.AddHost(topo.HostConfig{Name: "client", NoOffloads: true}); err != nil {
		return err
	}
	if err := f.Client.AddRoute(netip.PrefixFrom(f.VIP, 32), f.Router.Addr4); err != nil {
		return err
	}
	if err := f.Client.AddNeigh(f.Router.Addr4, f.Router.MAC); err != nil {
		return err
	}
	if f.Etcd, err = f.Topo.AddHost(topo.HostConfig{Name: "etcd"}); err != nil {
		return err
	}
	ready := filepath.Join(f.dir, "etcd.ready")
	f.etcd, err = f.start(f.Etcd, "etcd", f.opts.Bin.Etcd, "--dir", filepath.Join(f.dir, "etcd"),
		"--client", f.etcdURL(), "--peer", fmt.Sprintf("http://%s:%d", f.Etcd.Addr4, etcdPeer), "--ready", ready)
	return err
}

func (f *Fleet) waitEtcd(ctx context.Context) error {
	return Wait(ctx, 60*time.Second, "etcd", func() error {
		if err := f.etcd.failIfExited(); err != nil {
			return err
		}
		_, err := os.Stat(filepath.Join(f.dir, "etcd.ready"))
		return err
	})
}

func (f *Fleet) addApp(pool string, initial bool) (*App, error) {
	n := 1
	for _, a := range f.Apps {
		if a.Pool == pool {
			n++
		}
	}
	name := fmt.Sprintf("%c%d", pool[0], n)
	h, err := f.Topo.AddHost(topo.HostConfig{Name: "app-" + name})
	if err != nil {
		return nil, err
	}
	a := &App{Name: name, Pool: pool, Host: h, Addr: netip.AddrPortFrom(h.Addr4, AppPort), initial: initial}
	if a.Proc, err = f.start(h, "app-"+name, f.opts.Bin.App, "--listen", a.Addr.String(), "--name", name); err != nil {
		return nil, err
	}
	f.Apps = append(f.Apps, a)
	return a, nil
}

// AddApps starts n more app servers of pool and waits until they answer.
// They are not in any proxy's pool until `xlb pool server add`.
func (f *Fleet) AddApps(ctx context.Context, pool string, n int) ([]*App, error) {
	var out []*App
	for range n {
		a, err := f.addApp(pool, false)
		if err != nil {
			return out, err
		}
		out = append(out, a)
	}
	return out, f.waitApps(ctx, out)
}

func (f *Fleet) waitApps(ctx context.Context, apps []*App) error {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: f.Client.DialContext, DisableKeepAlives: true}}
	for _, a := range apps {
		err := Wait(ctx, 30*time.Second, "app server "+a.Name, func() error {
			if err := a.Proc.failIfExited(); err != nil {
				return err
			}
			resp, err := c.Get("http://" + a.Addr.String() + "/healthz")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("health check: %s", resp.Status)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// addL7Host makes an L7 host's namespace and wires it to the client and
// the edge hosts; startL7 runs its programs.
func (f *Fleet) addL7Host() (*L7, error) {
	name := fmt.Sprintf("l7-%d", len(f.L7s)+1)
	h, err := f.Topo.AddHost(topo.HostConfig{Name: name, MTU: topo.BridgeMTU, VIPs: []netip.Addr{f.VIP}, RPFilterOff: true})
	if err != nil {
		return nil, err
	}
	l := &L7{Name: name, Host: h, dir: filepath.Join(f.dir, name)}
	if err := os.MkdirAll(l.dir, 0o700); err != nil {
		return nil, err
	}
	l.Socket = filepath.Join(l.dir, "proxy.sock")
	l.Config = filepath.Join(l.dir, "proxy.yaml")
	// Static neighbours: the fleet measures xlb, not ARP.
	if err := h.AddNeigh(f.Client.Addr4, f.Client.MAC); err != nil {
		return nil, err
	}
	for _, e := range f.Edges {
		if err := wireEdgeL7(e, l); err != nil {
			return nil, err
		}
	}
	f.L7s = append(f.L7s, l)
	return l, nil
}

func wireEdgeL7(e *Edge, l *L7) error {
	if err := e.Host.AddNeigh(l.Host.Addr4, l.Host.MAC); err != nil {
		return err
	}
	return l.Host.AddNeigh(e.Host.Addr4, e.Host.MAC)
}

func (f *Fleet) startL7(l *L7) (err error) {
	if err := os.WriteFile(l.Config, []byte(f.proxyConfig(l)), 0o600); err != nil {
		return fmt.Errorf("write %s's proxy config: %w", l.Name, err)
	}
	if l.Decap, err = f.start(l.Host, l.Name+"-decap", f.opts.Bin.XLB, "decap", "--iface", topo.HostIfname, "--mode", "native"); err != nil {
		return err
	}
	l.Proxy, err = f.start(l.Host, l.Name+"-proxy", f.opts.Bin.XLB, "proxy", "--config", l.Config)
	return err
}

// waitL7 waits until l's proxy has every pool available: a pool whose
// servers were not checked yet answers 503.
func (f *Fleet) waitL7(ctx context.Context, l *L7) error {
	c := admin.NewClient(l.Socket, 5*time.Second)
	defer c.Close()
	return Wait(ctx, 60*time.Second, l.Name+"'s pools", func() error {
		for _, p := range []*Proc{l.Decap, l.Proxy} {
			if err := p.failIfExited(); err != nil {
				return err
			}
		}
		pools, err := c.Pools(ctx)
		if err != nil {
			return err
		}
		for _, p := range pools {
			if p.Available == 0 {
				return fmt.Errorf("pool %s has no available server yet", p.Name)
			}
		}
		return nil
	})
}

// AddL7Host starts one more L7 host (decap and proxy, the same pools as
// the others through etcd) and waits until it can serve. The edge hosts
// do not send it anything until `xlb backend add`.
func (f *Fleet) AddL7Host(ctx context.Context) (*L7, error) {
	l, err := f.addL7Host()
	if err != nil {
		return nil, err
	}
	if err := f.startL7(l); err != nil {
		return nil, err
	}
	return l, f.waitL7(ctx, l)
}

func (f *Fleet) addEdgeHost() (*Edge, error) {
	name := fmt.Sprintf("lb%d", len(f.Edges)+1)
	h, err := f.Topo.AddHost(topo.HostConfig{Name: name, MTU: topo.BridgeMTU, PeerXDPPass: true, Router: true})
	if err != nil {
		return nil, err
	}
	e := &Edge{Name: name, Host: h, Pin: "/sys/fs/bpf/" + h.NetNS, dir: filepath.Join(f.dir, name)}
	if err := os.MkdirAll(e.dir, 0o700); err != nil {
		return nil, err
	}
	e.Socket = filepath.Join(e.dir, "xlb.sock")
	e.Config = filepath.Join(e.dir, "xlb.yaml")
	if err := f.Router.AddNeigh(h.Addr4, h.MAC); err != nil {
		return nil, err
	}
	if err := h.AddNeigh(f.Router.Addr4, f.Router.MAC); err != nil {
		return nil, err
	}
	for _, l := range f.L7s {
		if err := wireEdgeL7(e, l); err != nil {
			return nil, err
		}
	}
	f.Edges = append(f.Edges, e)
	return e, nil
}

// LiveEdges are the edge hosts not lost.
func (f *Fleet) LiveEdges() []*Edge {
	var out []*Edge
	for _, e := range f.Edges {
		if !e.Lost {
			out = append(out, e)
		}
	}
	return out
}

// WaitTable waits until every live edge host's daemon serves its API and
// has exactly the L7 hosts in want healthy in the VIP's table.
func (f *Fleet) WaitTable(ctx context.Context, want []*L7) error {
	var addrs []netip.Addr
	for _, l := range want {
		addrs = append(addrs, l.Host.Addr4)
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	for _, e := range f.LiveEdges() {
		c := api.NewClient(e.Socket, 5*time.Second)
		err := Wait(ctx, 60*time.Second, e.Name+"'s table", func() error {
			if err := e.Daemon.failIfExited(); err != nil {
				return err
			}
			v, err := c.GetVIP(ctx, f.Key)
			if err != nil {
				return err
			}
			var in []netip.Addr
			for _, b := range v.Backends {
				if b.Healthy && b.TableSlots > 0 {
					in = append(in, b.Addr)
				}
			}
			slices.SortFunc(in, netip.Addr.Compare)
			if !slices.Equal(in, addrs) {
				return fmt.Errorf("L7 hosts in the table %v, want %v", in, addrs)
			}
			return nil
		})
		c.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// WaitRouter waits until the router sends the VIP to exactly the live edge
// hosts.
func (f *Fleet) WaitRouter(ctx context.Context) error {
	var want []netip.Addr
	for _, e := range f.LiveEdges() {
		want = append(want, e.Host.Addr4)
	}
	slices.SortFunc(want, netip.Addr.Compare)
	return Wait(ctx, 60*time.Second, "the router's ECMP next hops", func() error {
		hops, err := f.NextHops()
		if err != nil {
			return err
		}
		if !slices.Equal(hops, want) {
			return fmt.Errorf("next hops %v, want %v", hops, want)
		}
		return nil
	})
}

// NextHops are the edge hosts the router sends the VIP's packets to,
// sorted.
func (f *Fleet) NextHops() ([]netip.Addr, error) {
	hops, err := f.FRR.NextHops(netip.PrefixFrom(f.VIP, 32))
	slices.SortFunc(hops, netip.Addr.Compare)
	return hops, err
}

// KillProxy kills l's proxy with SIGKILL, as a crash does: its
// connections are reset and its health check stops answering.
func (f *Fleet) KillProxy(l *L7) error {
	return l.Proxy.Stop(syscall.SIGKILL, 10*time.Second)
}

// Lose takes an edge host off the network and kills its daemon, as when
// the machine dies: the router hears nothing more and withdraws it when
// the BGP hold time runs out.
func (f *Fleet) Lose(e *Edge) error {
	if err := e.Host.Unplug(); err != nil {
		return err
	}
	e.Lost = true
	return e.Daemon.Stop(syscall.SIGKILL, 10*time.Second)
}

// Fail makes an app server answer 500 to everything (test/demo/app's
// SIGUSR1).
func (a *App) Fail() error { return a.Proc.Signal(syscall.SIGUSR1) }

// NameOf names the host with address addr ("l7-2"), or returns addr.
func (f *Fleet) NameOf(addr string) string {
	for _, h := range f.Topo.Hosts() {
		if h.Addr4.String() == addr {
			return h.Name
		}
	}
	return addr
}

// Procs are every process the fleet started.
func (f *Fleet) Procs() []*Proc {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.procs)
}

// Close stops every process (daemons first, so they withdraw; SIGTERM,
// SIGKILL after 10 s), removes the daemons' data paths and pins, FRR, the
// namespaces and the work directory. Idempotent.
func (f *Fleet) Close() error {
	var errs []error
	stopAll := func(ps []*Proc) {
		var wg sync.WaitGroup
		errc := make(chan error, len(ps))
		for _, p := range ps {
			wg.Go(func() { errc <- p.Stop(syscall.SIGTERM, 10*time.Second) })
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			errs = append(errs, err)
		}
	}
	var daemons, others []*Proc
	for _, p := range f.Procs() {
		if slices.ContainsFunc(f.Edges, func(e *Edge) bool { return e.Daemon == p }) {
			daemons = append(daemons, p)
		} else {
			others = append(others, p)
		}
	}
	stopAll(daemons)
	for _, e := range f.Edges {
		if _, err := os.Stat(e.Config); err == nil && f.opts.Bin.XLB != "" {
			if out, err := e.Host.Command(context.Background(), f.opts.Bin.XLB, "daemon", "--cleanup", "--config", e.Config).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("%s: xlb daemon --cleanup: %w: %s", e.Name, err, out))
			}
		}
		errs = append(errs, l4.RemovePins(e.Pin))
	}
	stopAll(others)
	if f.FRR != nil {
		errs = append(errs, f.FRR.Close())
		f.FRR = nil
	}
	if f.Topo != nil {
		errs = append(errs, f.Topo.Close())
	}
	if f.dir != "" {
		errs = append(errs, os.RemoveAll(f.dir))
	}
	return errors.Join(errs...)
}

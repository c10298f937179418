package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/xlbproject/xlb/control/api"
	"github.com/xlbproject/xlb/control/config"
	"github.com/xlbproject/xlb/control/metrics"
	"github.com/xlbproject/xlb/control/reconcile"
	"github.com/xlbproject/xlb/control/state"
	"github.com/xlbproject/xlb/l4"
)

// change applies fn to a copy of the desired state, persists the result,
// and only then makes it current and reconciles: when it returns nil the
// change is durable and live.
func (d *Daemon) change(ctx context.Context, fn func(*state.Desired) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d.fleet != nil {
		return d.fleetChange(ctx, fn)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	next, err := d.nextLocked(ctx, fn)
	if err != nil {
		return err
	}
	f := state.File{Base: d.file.Base, Desired: next}
	if err := d.store.Save(f); err != nil {
		return api.Errorf(api.ErrUnavailable, "persist state: %w", err)
	}
	d.file = f
	d.setTargetsLocked()
	// The change is acknowledged once persisted; a data path error is
	// reported by Status and retried, not returned as a failed change.
	d.reconcileLocked()
	return nil
}

// nextLocked applies fn to a copy of the desired state and vets the
// result: what the data path cannot do is invalid, what would cut traffic
// is refused unless forced.
func (d *Daemon) nextLocked(ctx context.Context, fn func(*state.Desired) error) (state.Desired, error) {
	next := d.file.Desired.Clone()
	if err := fn(&next); err != nil {
		return state.Desired{}, err
	}
	if err := checkDesired(next, d.cfg); err != nil {
		return state.Desired{}, err
	}
	if risks := state.Risks(d.file.Desired, next, d.upLocked, hostAddr); len(risks) > 0 {
		if !api.Forced(ctx) {
			return state.Desired{}, api.Errorf(api.ErrConflict, "refused: %s (use --force to do it anyway)", strings.Join(risks, "; "))
		}
		d.log.Warn("forced change", "risks", strings.Join(risks, "; "))
	}
	return next, nil
}

// hostAddr says whether a is an address of one of this host's interfaces
// (in the daemon's network namespace), and which.
func hostAddr(a netip.Addr) (string, bool) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return "", false
	}
	for _, ifc := range ifaces {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, ad := range addrs {
			if n, ok := ad.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == a.Unmap() {
					return ifc.Name, true
				}
			}
		}
	}
	return "", false
}

// AddVIP implements api.Service.
func (d *Daemon) AddVIP(ctx context.Context, spec api.VIPSpec) error {
	return d.change(ctx, func(s *state.Desired) error {
		// Under d.mu, so the default is the size of the config checked.
		if spec.TableSize == 0 {
			spec.TableSize = d.cfg.Dataplane.TableSize
		}
		return s.AddVIP(spec)
	})
}

// DeleteVIP implements api.Service.
func (d *Daemon) DeleteVIP(ctx context.Context, key api.VIPKey) error {
	return d.change(ctx, func(s *state.Desired) error { return s.DeleteVIP(key) })
}

// AddBackend implements api.Service.
func (d *Daemon) AddBackend(ctx context.Context, vip api.VIPKey, spec api.BackendSpec) error {
	return d.change(ctx, func(s *state.Desired) error { return s.AddBackend(vip, spec) })
}

// DeleteBackend implements api.Service.
func (d *Daemon) DeleteBackend(ctx context.Context, vip api.VIPKey, backend netip.Addr) error {
	return d.change(ctx, func(s *state.Desired) error { return s.DeleteBackend(vip, backend) })
}

// SetBackendState implements api.Service.
func (d *Daemon) SetBackendState(ctx context.Context, vip api.VIPKey, backend netip.Addr, drain bool) error {
	return d.change(ctx, func(s *state.Desired) error { return s.SetDrain(vip, backend, drain) })
}

// SetBackendWeight implements api.Service.
func (d *Daemon) SetBackendWeight(ctx context.Context, vip api.VIPKey, backend netip.Addr, weight uint32) error {
	return d.change(ctx, func(s *state.Desired) error { return s.SetWeight(vip, backend, weight) })
}

// Reload implements api.Service: it re-reads the configuration file and
// applies what changed in it (see state.Rebase). A configuration that does
// not parse, or that changes what only a restart can change, is rejected
// with api.ErrInvalid and nothing changes.
func (d *Daemon) Reload(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d.fleet != nil {
		return d.reloadFleet(ctx)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	err := d.reloadLocked()
	d.reloads.Observe(err, time.Now())
	return err
}

func (d *Daemon) reloadLocked() error {
	path := d.cfg.File
	cfg, err := config.Load(path)
	if err != nil {
		d.log.Warn("reload rejected: running state unchanged", "config", path, "error", err)
		return api.Errorf(api.ErrInvalid, "%w", err)
	}
	if err := restartNeeded(d.cfg, cfg); err != nil {
		d.log.Warn("reload rejected: running state unchanged", "config", path, "error", err)
		return err
	}
	base := state.FromConfig(cfg)
	next := state.Rebase(d.file.Desired, d.file.Base, base)
	if err := checkDesired(next, cfg); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	f := state.File{Base: base, Desired: next}
	if err := d.store.Save(f); err != nil {
		return api.Errorf(api.ErrUnavailable, "persist state: %w", err)
	}
	d.cfg, d.file = cfg, f
	d.setTargetsLocked()
	d.reconcileLocked()
	d.log.Info("configuration reloaded", "config", path, "vips", len(next.VIPs), "rebuilt", d.lastReport.Rebuilds)
	return nil
}

// restartNeeded refuses a reload from running to next that changes a
// setting only a start applies, naming each one and what the operator does:
// a restart (the data path forwards through it), and for a map size also
// `xlb daemon --cleanup` first, since the pinned maps keep their sizes.
func restartNeeded(running, next *config.Config) error {
	diff := restartOnly(running, next)
	if len(diff) == 0 {
		return nil
	}
	var sized []string
	for _, k := range diff {
		if pinnedSizes[k] {
			sized = append(sized, k)
		}
	}
	msg := fmt.Sprintf("%s: %s changed, which only a start of the daemon applies: restart it (systemctl restart xlb-daemon; "+
		"forwarding continues through a restart)", running.File, strings.Join(diff, ", "))
	if len(sized) > 0 {
		msg += fmt.Sprintf("; %s %s the size of a pinned map, so stop the daemon and run `xlb daemon --cleanup --config %s` before the start, "+
			"which stops forwarding until then", strings.Join(sized, ", "), sizeVerb(len(sized)), running.File)
	}
	return api.Errorf(api.ErrInvalid, "%s", msg)
}

func sizeVerb(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}

// pinnedSizes are the dataplane keys that size a pinned map: a daemon
// cannot adopt maps of other sizes (l4.ErrIncompatiblePins).
var pinnedSizes = map[string]bool{
	"dataplane.max_vips": true, "dataplane.max_backends": true,
	"dataplane.conntrack_entries": true, "dataplane.table_size": true,
}

// dataplaneKeys names each dataplane setting by its key in the file.
func dataplaneKeys(a, b config.Dataplane) []string {
	var out []string
	for _, f := range []struct {
		key     string
		changed bool
	}{
		{"max_vips", a.MaxVIPs != b.MaxVIPs},
		{"max_backends", a.MaxBackends != b.MaxBackends},
		{"conntrack_entries", a.ConntrackEntries != b.ConntrackEntries},
		{"udp_idle_timeout", a.UDPIdleTimeout != b.UDPIdleTimeout},
		{"tcp_close_timeout", a.TCPCloseTimeout != b.TCPCloseTimeout},
		{"table_size", a.TableSize != b.TableSize},
		{"mtu", a.MTU != b.MTU},
		{"new_flow_rate_limit", a.NewFlowRateLimit != b.NewFlowRateLimit},
		{"gue_port", a.GUEPort != b.GUEPort},
		{"next_hop_mac", a.NextHopMAC.String() != b.NextHopMAC.String()},
		{"src_mac", a.SrcMAC.String() != b.SrcMAC.String()},
	} {
		if f.changed {
			out = append(out, "dataplane."+f.key)
		}
	}
	if len(out) == 0 && fmt.Sprint(a) != fmt.Sprint(b) {
		out = append(out, "dataplane") // a setting this list does not name yet
	}
	return out
}

// restartOnly lists the settings that differ between a and b and cannot
// change while running.
func restartOnly(a, b *config.Config) []string {
	var out []string
	if fmt.Sprint(a.Interfaces) != fmt.Sprint(b.Interfaces) {
		out = append(out, "interfaces")
	}
	if a.OuterSource != b.OuterSource {
		out = append(out, "outer_source")
	}
	out = append(out, dataplaneKeys(a.Dataplane, b.Dataplane)...)
	if a.API != b.API {
		out = append(out, "api")
	}
	if a.Metrics != b.Metrics {
		out = append(out, "metrics")
	}
	if a.StatePath != b.StatePath || a.Store != b.Store || fmt.Sprint(a.Etcd) != fmt.Sprint(b.Etcd) {
		out = append(out, "state")
	}
	if a.PinPath != b.PinPath {
		out = append(out, "bpf")
	}
	if !reflect.DeepEqual(a.BGP, b.BGP) {
		out = append(out, "bgp")
	}
	return out
}

// ListVIPs implements api.Service.
func (d *Daemon) ListVIPs(ctx context.Context) ([]api.VIP, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.vipsLocked(), nil
}

func (d *Daemon) vipsLocked() []api.VIP {
	out := make([]api.VIP, 0, len(d.file.Desired.VIPs))
	for _, v := range d.file.Desired.VIPs {
		out = append(out, d.vipLocked(v))
	}
	return out
}

// GetVIP implements api.Service.
func (d *Daemon) GetVIP(ctx context.Context, key api.VIPKey) (api.VIP, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.file.Desired.VIP(key)
	if !ok {
		return api.VIP{}, api.Errorf(api.ErrNotFound, "vip %s not found", key)
	}
	return d.vipLocked(v), nil
}

func (d *Daemon) vipLocked(v state.VIP) api.VIP {
	out := api.VIP{Key: v.Key, Mode: v.Mode, TableSize: v.TableSize, Backends: make([]api.Backend, 0, len(v.Backends)),
		FailingOpen: d.rec.FailingOpen(v.Key)}
	if pol := d.cfg.Health.FailOpen(); pol.On {
		passing, checked := d.rec.Passing(v.Key)
		out.FailOpen = &api.FailOpen{Below: pol.Below, Passing: passing, Checked: checked}
	}
	slots := d.rec.Slots(v.Key)
	for _, b := range v.Backends {
		hs := d.checker.Status(d.targetLocked(v.Key, b.Addr))
		out.Backends = append(out.Backends, api.Backend{
			Addr: b.Addr, Weight: b.Weight, Drain: b.Drain, State: reconcile.BackendState(b, healthOf(hs)), Healthy: hs.Up,
			TableSlots: slots[b.Addr], LastCheck: hs.LastCheck, LastError: hs.LastError, LastTransition: hs.LastTransition,
		})
	}
	return out
}

// Status implements api.Service.
func (d *Daemon) Status(ctx context.Context) (api.Status, error) {
	// Read without the lock: a thousand map lookups in a large table.
	ct, ctErr := d.dp.ConnTableUsage()
	d.mu.Lock()
	defer d.mu.Unlock()
	st := api.Status{
		Time:          time.Now(),
		Version:       d.version,
		StartTime:     d.start,
		ConfigPath:    d.cfg.File,
		StatePath:     d.store.Path(),
		Store:         d.storeStatusLocked(),
		Adopted:       d.adopted,
		LastReconcile: d.lastReconcile,
		VIPs:          d.vipsLocked(),
		Interfaces:    []api.Interface{},
	}
	if d.lastErr != nil {
		st.LastReconcileError = d.lastErr.Error()
	}
	modes := d.dp.AttachModes()
	for _, it := range d.cfg.Interfaces {
		ai := api.Interface{Name: it.Name, ConfiguredMode: it.Mode}
		if ifc, err := net.InterfaceByName(it.Name); err == nil {
			ai.MTU = ifc.MTU
		}
		mode, ok := modes[it.Name]
		ai.Attached = ok
		if ok {
			ai.Mode = metrics.ModeName(mode)
		} else {
			ai.Error = "not attached"
		}
		st.Interfaces = append(st.Interfaces, ai)
	}
	st.NextHops = d.nextHopsLocked()
	st.OuterSourceV4, st.OuterSourceV6 = d.cfg.OuterSource.IPv4, d.cfg.OuterSource.IPv6
	st.BGP = d.bgpStatus()
	if ctErr == nil {
		st.Conntrack = api.ConntrackUsage{Entries: ct.Entries, Capacity: ct.Capacity, SampledSets: ct.SampledSets, Exact: ct.Exact}
	} else {
		d.log.Warn("read connection table occupancy", "error", ctErr)
	}
	return st, nil
}

// nextHopsLocked reports how frames reach the L7 hosts: the override, or
// what the kernel's tables say now about each host (what bpf_fib_lookup
// reads for every frame).
func (d *Daemon) nextHopsLocked() api.NextHops {
	if !d.dp.Config().FIBMode() {
		return api.NextHops{Mode: api.NextHopStatic, MAC: d.dp.Config().NextHopMAC.String()}
	}
	out := api.NextHops{Mode: api.NextHopFIB, Hosts: []api.NextHop{}}
	for _, a := range d.backendAddrsLocked() {
		nh, err := l4.LookupNextHop(a)
		h := api.NextHop{Backend: a, Iface: nh.Iface, Gateway: nh.Gateway, State: nh.State, Resolved: nh.Resolved()}
		if err != nil {
			h.State = "unknown: " + err.Error()
		}
		if nh.MAC != nil {
			h.MAC = nh.MAC.String()
		}
		out.Hosts = append(out.Hosts, h)
	}
	return out
}

// backendAddrsLocked lists every distinct backend address of the desired
// state, sorted.
func (d *Daemon) backendAddrsLocked() []netip.Addr {
	var out []netip.Addr
	for _, v := range d.file.Desired.VIPs {
		for _, b := range v.Backends {
			out = append(out, b.Addr)
		}
	}
	slices.SortFunc(out, func(a, b netip.Addr) int { return a.Compare(b) })
	return slices.Compact(out)
}

// Stats implements api.Service. Backend counters are per L7 host: a host
// serving several VIPs shows the same totals under each of them.
func (d *Daemon) Stats(ctx context.Context) (api.Stats, error) {
	raw, err := d.dp.Stats()
	if err != nil {
		return api.Stats{}, api.Errorf(api.ErrUnavailable, "read counters: %w", err)
	}
	out := api.Stats{Time: time.Now(), Reasons: map[string]uint64{}}
	for c, n := range raw.Counters {
		out.Reasons[c.String()] = n.Packets
	}
	out.ConntrackHits = raw.Counters[l4.CounterConnHit].Packets
	out.ConntrackMisses = raw.Counters[l4.CounterConnMissSYN].Packets + raw.Counters[l4.CounterConnMissNonSYN].Packets
	ids := d.dp.Backends()
	byAddr := map[netip.Addr]l4.Count{}
	for id, n := range raw.Backends {
		if a, ok := ids[id]; ok {
			byAddr[a] = n
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, v := range d.file.Desired.VIPs {
		vc := raw.VIPs[keyToL4(v.Key)]
		vs := api.VIPStats{Key: v.Key, Counter: api.Counter{Packets: vc.Packets, Bytes: vc.Bytes}, NewFlows: vc.NewFlows, Backends: []api.BackendStats{}}
		for _, b := range v.Backends {
			n := byAddr[b.Addr]
			vs.Backends = append(vs.Backends, api.BackendStats{Addr: b.Addr, Counter: api.Counter{Packets: n.Packets, Bytes: n.Bytes}})
		}
		out.VIPs = append(out.VIPs, vs)
	}
	return out, nil
}

// Flow implements api.Service by running the real program on synthesized
// packets: a SYN shows the table's choice for a new flow; an ACK shows the
// connection table's, when it differs.
func (d *Daemon) Flow(ctx context.Context, q api.FlowQuery) (api.FlowAnswer, error) {
	if err := q.VIP.Validate(); err != nil {
		return api.FlowAnswer{}, api.Errorf(api.ErrInvalid, "%w", err)
	}
	if !q.Src.IsValid() || q.Src.Addr().Is4() != q.VIP.Addr.Is4() {
		return api.FlowAnswer{}, api.Errorf(api.ErrInvalid, "source %s must be an address of the vip's family with a port", q.Src)
	}
	d.mu.Lock()
	_, known := d.file.Desired.VIP(q.VIP)
	m := d.cfg.Dataplane.TableSize
	d.mu.Unlock()
	if !known {
		return api.FlowAnswer{}, api.Errorf(api.ErrNotFound, "vip %s not found", q.VIP)
	}
	port := q.VIP.Port
	if port == 0 {
		port = q.DstPort
	}
	if port == 0 {
		return api.FlowAnswer{}, api.Errorf(api.ErrInvalid, "vip %s serves any port: give the destination port", q.VIP)
	}
	k := keyToL4(q.VIP)
	f := l4.Flow{Src: q.Src, Dst: netip.AddrPortFrom(q.VIP.Addr, port), Proto: k.Proto}
	hash := l4.FlowHash(q.Src, port, k.Proto)
	ans := api.FlowAnswer{Via: api.ViaMaglev, Hash: hash, Slot: hash % m}
	_, addr, err := d.dp.Lookup(ctx, f)
	switch {
	case errors.Is(err, l4.ErrNoBackend):
		// Empty slot: the packet would be dropped; the zero Backend says so.
	case errors.Is(err, l4.ErrNotVIP):
		return api.FlowAnswer{}, api.Errorf(api.ErrUnavailable, "vip %s is not in the data path yet", q.VIP)
	case err != nil:
		return api.FlowAnswer{}, fmt.Errorf("flow: %w", err)
	default:
		ans.Backend = addr
	}
	if k.Proto == l4.TCP {
		f.Established = true
		if _, est, err := d.dp.Lookup(ctx, f); err == nil && est != ans.Backend {
			ans.Backend, ans.Via = est, api.ViaConntrack
		}
	}
	return ans, nil
}

package l4

import (
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/cilium/ebpf"

	"github.com/xlbproject/xlb/l4/xdplink"
)

// Config sizes and configures a Dataplane. Zero sizes take the defaults.
type Config struct {
	MaxVIPs     uint32 // VIP slots (default 512)
	MaxBackends uint32 // backend ids, id 0 reserved (default 4096)
	ConnEntries uint32 // connection table entries per CPU, rounded up to a power of two (default 131072); the table is shared by all CPUs and holds ConnEntries × CPUs
	TableSize   uint32 // M, entries of every VIP's Maglev table (default 65537)

	// UDPTimeout is how long an idle UDP flow keeps its backend (default 30s).
	UDPTimeout time.Duration
	// TCPCloseTimeout is how long a TCP flow keeps its backend after the
	// client's FIN or RST (default 10s): enough for the rest of the close,
	// while a later connection on the same 5-tuple that began on another
	// edge host (which this one never saw the SYN of) is not sent after
	// the old connection's host when ECMP moves it here.
	TCPCloseTimeout time.Duration
	// NextHopTTL is how long each CPU keeps a backend's next hop from the
	// FIB before asking again (default 100ms; negative: ask for every
	// packet). FlushNextHops empties the cache at once, for a change of
	// the kernel's neighbour or route tables.
	NextHopTTL time.Duration
	// MTU is the largest IP packet the egress link carries once wrapped
	// (inner + 20 or 40 bytes); larger packets are dropped and counted as
	// too_big. 0 disables the check.
	MTU uint32
	// NewFlowRateLimit is how many new flows each CPU may write into the
	// connection table per second; past it, within the second, new flows
	// are still forwarded by the Maglev table but get no entry
	// (conn_insert_skipped), so a flood of new 5-tuples cannot evict the
	// established flows. 0: no limit.
	NewFlowRateLimit uint32
	// GUEPort is the UDP destination port of ModeGUE VIPs' packets: the
	// port the L7 hosts' decapsulator takes GUE on (xlb decap
	// --gue-port). 0: no GUE VIP may be added.
	GUEPort uint16

	// PinPath is a directory on bpffs (e.g. /sys/fs/bpf/xlb) where maps,
	// program and links are pinned, and from which a later Open adopts them.
	// Empty: nothing is pinned and Close detaches everything.
	PinPath string

	OuterSrcV4 netip.Addr // outer source towards IPv4 L7 hosts (4-in-4, 6-in-4): this host's address
	OuterSrcV6 netip.Addr // outer source towards IPv6 L7 hosts (6-in-6, 4-in-6): this host's address
	// NextHopMAC, when set, is the destination MAC of every forwarded
	// frame and SrcMAC its source (the NIC's own): a static override for
	// a single router or segment. When it is nil the balancer asks the
	// kernel's FIB and neighbour table for each frame's next hop
	// (bpf_fib_lookup), and SrcMAC is unused. See FIBMode.
	SrcMAC     net.HardwareAddr
	NextHopMAC net.HardwareAddr
}

// FIBMode says whether next hops come from the kernel's FIB: true unless
// a NextHopMAC overrides it.
func (c Config) FIBMode() bool { return c.NextHopMAC == nil }

// Defaults for zero Config fields.
const (
	DefaultMaxVIPs     = 512
	DefaultMaxBackends = 4096
	DefaultConnEntries = 131072
	DefaultTableSize   = 65537
	DefaultUDPTimeout  = 30 * time.Second
	// DefaultTCPCloseTimeout is Config.TCPCloseTimeout's default.
	DefaultTCPCloseTimeout = 10 * time.Second
	DefaultNextHopTTL      = 100 * time.Millisecond
)

func (c Config) withDefaults() (Config, error) {
	if c.MaxVIPs == 0 {
		c.MaxVIPs = DefaultMaxVIPs
	}
	if c.MaxBackends == 0 {
		c.MaxBackends = DefaultMaxBackends
	}
	if c.ConnEntries == 0 {
		c.ConnEntries = DefaultConnEntries
	}
	if c.TableSize == 0 {
		c.TableSize = DefaultTableSize
	}
	if c.UDPTimeout == 0 {
		c.UDPTimeout = DefaultUDPTimeout
	}
	if c.NextHopTTL == 0 {
		c.NextHopTTL = DefaultNextHopTTL
	}
	if c.TCPCloseTimeout == 0 {
		c.TCPCloseTimeout = DefaultTCPCloseTimeout
	}
	if c.UDPTimeout < 0 {
		return c, fmt.Errorf("config: UDPTimeout %v is negative: %w", c.UDPTimeout, ErrInvalid)
	}
	if c.TCPCloseTimeout < 0 {
		return c, fmt.Errorf("config: TCPCloseTimeout %v is negative: %w", c.TCPCloseTimeout, ErrInvalid)
	}
	if c.ConnEntries < connWays {
		c.ConnEntries = connWays
	}
	c.ConnEntries = 1 << bits.Len32(c.ConnEntries-1)
	if c.MaxBackends < 2 {
		return c, fmt.Errorf("config: MaxBackends must be at least 2 (id 0 is reserved): %w", ErrInvalid)
	}
	if c.OuterSrcV4.IsValid() && !c.OuterSrcV4.Unmap().Is4() {
		return c, fmt.Errorf("config: OuterSrcV4 %s is not IPv4: %w", c.OuterSrcV4, ErrInvalid)
	}
	if c.OuterSrcV6.IsValid() && (!c.OuterSrcV6.Is6() || c.OuterSrcV6.Is4In6()) {
		return c, fmt.Errorf("config: OuterSrcV6 %s is not IPv6: %w", c.OuterSrcV6, ErrInvalid)
	}
	for _, m := range []net.HardwareAddr{c.SrcMAC, c.NextHopMAC} {
		if m != nil && len(m) != 6 {
			return c, fmt.Errorf("config: MAC %s is not 6 bytes: %w", m, ErrInvalid)
		}
	}
	// A zero next hop would send every frame to 00:00:00:00:00:00, which
	// no peer accepts: a black hole that counts as forwarded.
	if c.NextHopMAC != nil && slices.Equal(c.NextHopMAC, make(net.HardwareAddr, 6)) {
		return c, fmt.Errorf("config: NextHopMAC 00:00:00:00:00:00 reaches no host (leave it unset to take next hops from the kernel's FIB): %w", ErrInvalid)
	}
	if c.NextHopMAC != nil && (c.SrcMAC == nil || slices.Equal(c.SrcMAC, make(net.HardwareAddr, 6))) {
		return c, fmt.Errorf("config: NextHopMAC %s needs SrcMAC, the sending NIC's own address: %w", c.NextHopMAC, ErrInvalid)
	}
	return c, nil
}

// Dataplane owns one loaded (or adopted) balancer: its maps, the live
// program, a dry-run twin for Lookup, and its XDP links. It is safe for
// concurrent use.
type Dataplane struct {
	cfg  Config
	log  *slog.Logger
	ncpu int
	hz   uint64 // kernel ticks per second, for the UDP timeout

	mu        sync.Mutex
	objs      xlbObjects
	dry       *ebpf.Program
	innerSpec *ebpf.MapSpec
	links     map[string]*xdplink.Link
	ctl       xlbXlbCtl

	vips     map[VIP]vipState
	vipByID  map[uint32]VIP
	backends map[BackendID]backendState
	byAddr   map[netip.Addr]BackendID
	tables   map[uint32][]BackendID // VIP id -> distinct backends in its table
	refs     map[BackendID]int      // backend -> number of tables naming it
	rings    map[uint32]*vipRings   // VIP id -> its tables, once created or adopted
	live     *liveMap               // ring_live_map, mapped
}

type vipState struct {
	id, gen uint32
	mode    Mode
}

type backendState struct {
	addr netip.Addr
	gen  uint32
}

// sharedMaps are pinned, adopted, and shared with the dry-run twin: every
// map except the programs' own .rodata.
var sharedMaps = []string{
	xlbMapVipMap, xlbMapRingMap, xlbMapBackendMap, xlbMapConnMap, xlbMapStatsMap,
	xlbMapVipStatsMap, xlbMapBackendStatsMap, xlbMapCtlMap, xlbMapVipGenMap, xlbMapVipFilterMap, xlbMapVipAddrMap, xlbMapTxPortMap,
	xlbMapRingLiveMap, xlbMapPairStatsMap,
}

// connWays is XLB_CONN_WAYS: entries per connection-table set.
const connWays = uint32(abiXlbAbiXLB_ABI_CONN_WAYS)

// maxCPUs is XLB_MAX_CPUS: a connection-table way records the CPU that wrote
// it last in one byte (hit_other_cpu counts a flow that moved).
const maxCPUs = int(abiXlbAbiXLB_ABI_MAX_CPUS)

// checkCPUs refuses a host with more possible CPUs than the data path
// supports, rather than miscount the flows that move between CPUs.
func checkCPUs(ncpu int) error {
	if ncpu < 1 {
		return fmt.Errorf("count possible cpus: %d: %w", ncpu, ErrInvalid)
	}
	if ncpu > maxCPUs {
		return fmt.Errorf("this host has %d possible cpus and the balancer supports at most %d (XLB_MAX_CPUS in bpf/include/consts.h): rebuild with a larger bound, or boot with possible_cpus=%d: %w",
			ncpu, maxCPUs, maxCPUs, ErrUnsupportedHost)
	}
	return nil
}

const progPinName = "xlb_ingress"

// Open loads the balancer with cfg's sizes, or adopts the instance pinned
// under cfg.PinPath: pinned maps are reused (connection entries, tables and
// counters survive), a fresh program is loaded against them, and every
// pinned XDP link is switched to it atomically, so forwarding never stops.
func Open(cfg Config, log *slog.Logger) (*Dataplane, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("count possible cpus: %w", err)
	}
	if err := checkCPUs(ncpu); err != nil {
		return nil, err
	}
	if cfg.PinPath != "" {
		if err := xdplink.PreparePinDir(cfg.PinPath); err != nil {
			return nil, err
		}
	}
	d := &Dataplane{
		cfg:      cfg,
		log:      log,
		ncpu:     ncpu,
		links:    map[string]*xdplink.Link{},
		vips:     map[VIP]vipState{},
		vipByID:  map[uint32]VIP{},
		backends: map[BackendID]backendState{},
		byAddr:   map[netip.Addr]BackendID{},
		tables:   map[uint32][]BackendID{},
		refs:     map[BackendID]int{},
		rings:    map[uint32]*vipRings{},
	}
	if d.hz, err = kernelHZ(); err != nil {
		return nil, d.loadError(err)
	}
	if err := d.load(); err != nil {
		d.Close()
		return nil, err
	}
	if err := d.readState(); err != nil {
		d.Close()
		return nil, err
	}
	if cfg.PinPath != "" {
		if err := d.pinProgram(); err != nil {
			d.Close()
			return nil, err
		}
		if err := d.adoptLinks(); err != nil {
			d.Close()
			return nil, err
		}
	}
	return d, nil
}

// spec returns the collection spec with the configured sizes and knobs.
func (d *Dataplane) spec(dryRun bool) (*ebpf.CollectionSpec, error) {
	spec, err := loadXlb()
	if err != nil {
		return nil, fmt.Errorf("load xdp spec: %w", err)
	}
	var s xlbSpecs
	if err := spec.Assign(&s); err != nil {
		return nil, fmt.Errorf("assign xdp spec: %w", err)
	}
	c := d.cfg
	s.VipMap.MaxEntries = c.MaxVIPs
	s.RingMap.MaxEntries = c.MaxVIPs * ringsPerVIP
	s.RingMap.InnerMap.MaxEntries = c.TableSize
	s.RingLiveMap.MaxEntries = c.MaxVIPs
	s.VipStatsMap.MaxEntries = c.MaxVIPs
	s.BackendMap.MaxEntries = c.MaxBackends
	s.BackendStatsMap.MaxEntries = c.MaxBackends
	s.VipGenMap.MaxEntries = c.MaxVIPs
	s.VipAddrMap.MaxEntries = c.MaxVIPs
	s.NextHopMap.MaxEntries = c.MaxBackends
	s.ConnMap.MaxEntries = c.ConnEntries / connWays * uint32(d.ncpu)
	if c.PinPath != "" {
		for _, name := range sharedMaps {
			spec.Maps[name].Pinning = ebpf.PinByName
		}
	}
	var v4 [4]byte
	if c.OuterSrcV4.IsValid() {
		v4 = c.OuterSrcV4.Unmap().As4()
	}
	var v6 [16]byte
	if c.OuterSrcV6.IsValid() {
		v6 = c.OuterSrcV6.As16()
	}
	var src, next [6]byte
	copy(src[:], c.SrcMAC)
	copy(next[:], c.NextHopMAC)
	// A busy UDP flow rewrites its entry at most once a second, or 8 times
	// per timeout when that is shorter.
	refresh := min(d.hz, jiffies(c.UDPTimeout, d.hz)/8)
	dry, fib := uint8(0), uint8(0)
	if dryRun {
		dry = 1
	}
	// The dry-run twin answers which host a flow goes to, not whether
	// its next hop resolves now: it never asks the FIB (and its frames
	// are never sent).
	if c.FIBMode() && !dryRun {
		fib = 1
	}
	for _, set := range []struct {
		v   *ebpf.VariableSpec
		val any
	}{
		{s.TableSize, c.TableSize},
		{s.ConnSets, c.ConnEntries / connWays * uint32(d.ncpu)},
		{s.UdpTimeoutJiffies, jiffies(c.UDPTimeout, d.hz)},
		{s.UdpRefreshJiffies, refresh},
		{s.TcpCloseJiffies, jiffies(c.TCPCloseTimeout, d.hz)},
		{s.NewFlowRate, c.NewFlowRateLimit},
		{s.GuePort, c.GUEPort},
		{s.HzJiffies, d.hz},
		{s.Mtu, c.MTU},
		{s.OuterSrcV4, v4},
		{s.OuterSrcV6, v6},
		{s.SrcMac, src},
		{s.NextHopMac, next},
		{s.FibMode, fib},
		{s.NextHopJiffies, jiffies(max(c.NextHopTTL, 0), d.hz)},
		{s.DryRun, dry},
	} {
		if err := set.v.Set(set.val); err != nil {
			return nil, fmt.Errorf("set %s: %w", set.v.Name, err)
		}
	}
	d.innerSpec = s.RingMap.InnerMap.Copy()
	return spec, nil
}

func (d *Dataplane) load() error {
	spec, err := d.spec(false)
	if err != nil {
		return err
	}
	opts := &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: d.cfg.PinPath}}
	if err := spec.LoadAndAssign(&d.objs, opts); err != nil {
		return d.loadError(err)
	}
	dspec, err := d.spec(true)
	if err != nil {
		return err
	}
	var dry xlbPrograms
	live := map[string]*ebpf.Map{
		xlbMapVipMap:          d.objs.VipMap,
		xlbMapRingMap:         d.objs.RingMap,
		xlbMapBackendMap:      d.objs.BackendMap,
		xlbMapConnMap:         d.objs.ConnMap,
		xlbMapStatsMap:        d.objs.StatsMap,
		xlbMapVipStatsMap:     d.objs.VipStatsMap,
		xlbMapBackendStatsMap: d.objs.BackendStatsMap,
		xlbMapCtlMap:          d.objs.CtlMap,
		xlbMapVipGenMap:       d.objs.VipGenMap,
		xlbMapVipFilterMap:    d.objs.VipFilterMap,
		xlbMapVipAddrMap:      d.objs.VipAddrMap,
		xlbMapTxPortMap:       d.objs.TxPortMap,
		xlbMapRingLiveMap:     d.objs.RingLiveMap,
		xlbMapPairStatsMap:    d.objs.PairStatsMap,
	}
	dopts := &ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{}}
	for _, name := range sharedMaps {
		dopts.MapReplacements[name] = live[name]
	}
	for _, m := range dspec.Maps {
		m.Pinning = ebpf.PinNone
	}
	if err := dspec.LoadAndAssign(&dry, dopts); err != nil {
		return d.loadError(err)
	}
	d.dry = dry.XlbIngress
	if d.live, err = mapLive(d.objs.RingLiveMap); err != nil {
		return err
	}
	return nil
}

// loadError turns a load failure into one that says what to do.
func (d *Dataplane) loadError(err error) error {
	if errors.Is(err, ebpf.ErrMapIncompatible) {
		return fmt.Errorf("load xdp objects from %s: %w: %w", d.cfg.PinPath, ErrIncompatiblePins, err)
	}
	return fmt.Errorf("load xdp objects: %w", xdplink.LoadError(err, d.log))
}

// pinProgram pins the live program, replacing the pin of a previous
// instance. The pin is for inspection (bpftool); the links hold the program.
func (d *Dataplane) pinProgram() error {
	return xdplink.PinProgram(d.objs.XlbIngress, d.cfg.PinPath, progPinName)
}

// adoptLinks switches every pinned XDP link of a previous instance to the
// freshly loaded program in one step each: the interface is never without
// a program.
func (d *Dataplane) adoptLinks() error {
	links, err := xdplink.Adopt(d.cfg.PinPath, d.objs.XlbIngress, d.log)
	if err != nil {
		return err
	}
	for _, l := range links {
		d.links[l.Iface] = l
	}
	return nil
}

// Close releases every file descriptor. Pinned objects stay in the kernel
// and keep forwarding; without a PinPath, closing detaches the program.
func (d *Dataplane) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for name, l := range d.links {
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close link %s: %w", name, err))
		}
		delete(d.links, name)
	}
	if d.dry != nil {
		errs = append(errs, d.dry.Close())
		d.dry = nil
	}
	for id, r := range d.rings {
		errs = append(errs, r.close())
		delete(d.rings, id)
	}
	errs = append(errs, d.live.close())
	d.live = nil
	errs = append(errs, d.objs.Close())
	d.objs = xlbObjects{}
	return errors.Join(errs...)
}

// Unpin removes every pin under PinPath (maps, program, links) and the
// directory if it is then empty. Objects stay alive while this Dataplane
// holds them; after Close they are gone, links detached.
func (d *Dataplane) Unpin() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cfg.PinPath == "" {
		return nil
	}
	return RemovePins(d.cfg.PinPath)
}

// RemovePins removes what a Dataplane pinned under dir, without loading it
// (cleanup after a crash, or before a start with other sizes): maps,
// program and links, which detaches them.
func RemovePins(dir string) error {
	return xdplink.RemovePins(dir)
}

// Program returns the live balancer program, for BPF_PROG_TEST_RUN drivers
// (benchmarks). Do not close it.
func (d *Dataplane) Program() *ebpf.Program {
	return d.objs.XlbIngress
}

// Config returns the effective configuration (defaults filled in).
func (d *Dataplane) Config() Config {
	return d.cfg
}

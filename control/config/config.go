package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/xlbproject/xlb/control/api"
	"github.com/xlbproject/xlb/control/health"
	"github.com/xlbproject/xlb/internal/etcdstore"
	"github.com/xlbproject/xlb/internal/failopen"
	"github.com/xlbproject/xlb/internal/strictyaml"
	"github.com/xlbproject/xlb/maglev"
)

// Defaults. The health-check defaults are chosen so that a dead L7 host
// leaves the data path in well under one second: a killed proxy refuses the
// connection at once, so detection takes Fall probes, i.e. at most
// Fall × (Interval + jitter) + Timeout ≈ 2 × 220 ms + 150 ms ≈ 0.6 s, and the
// reconcile that follows takes milliseconds.
const (
	DefaultHealthType        = "http"
	DefaultHealthPort        = 9901
	DefaultHealthPath        = "/ready"
	DefaultHealthStatus      = 200
	DefaultHealthInterval    = 200 * time.Millisecond
	DefaultHealthTimeout     = 150 * time.Millisecond
	DefaultHealthRise        = 2
	DefaultHealthFall        = 2
	DefaultSocket            = "/run/xlb/xlb.sock"
	DefaultMetricsListen     = "127.0.0.1:9724"
	DefaultStatePath         = "/var/lib/xlb/state.json"
	DefaultPinPath           = "/sys/fs/bpf/xlb"
	DefaultConntrackEntries  = 262144
	DefaultConntrackUDPIdle  = 30 * time.Second
	DefaultConntrackTCPClose = 10 * time.Second
	DefaultMaxVIPs           = 512
	DefaultMaxBackends       = 4096
	DefaultAttachMode        = "auto"
	DefaultForwarding        = "ipip"
	DefaultBackendWeight     = 1
	maxBackendWeight         = 65535
	minHealthInterval        = 10 * time.Millisecond
	maxHealthRiseFall        = 100
)

// Config is a validated daemon configuration.
type Config struct {
	// File is the path the configuration was read from, kept for reloads
	// and error messages.
	File        string
	Interfaces  []Interface
	OuterSource OuterSource
	Dataplane   Dataplane
	Health      Health
	API         API
	Metrics     Metrics
	StatePath   string
	// Store is where desired state lives: StoreFile (the state file) or
	// StoreEtcd (a fleet's shared etcd, Etcd).
	Store   string
	Etcd    etcdstore.Config
	PinPath string
	VIPs    []VIP
	// BGP is nil when the daemon does not speak BGP (bgp.go).
	BGP *BGP

	// ifaceLines[i] is the line of Interfaces[i]'s name in File, for
	// CheckInterfaces' messages.
	ifaceLines []int
}

// CheckInterfaces reports every interface of the configuration that lookup
// (net.InterfaceByName on the host) does not find, each with the file and
// line that names it. The daemon runs it before it pins, attaches or writes
// anything, and `xlb daemon --check` runs it as the host-dependent part of
// validation.
func (c *Config) CheckInterfaces(lookup func(string) (*net.Interface, error)) error {
	var errs []error
	for i, it := range c.Interfaces {
		if _, err := lookup(it.Name); err != nil {
			line := 0
			if i < len(c.ifaceLines) {
				line = c.ifaceLines[i]
			}
			errs = append(errs, &Error{File: c.File, Line: line, Field: strictyaml.PathString(p("interfaces", i, "name")),
				Reason: fmt.Sprintf("interface %q does not exist on this host (see `ip link`)", it.Name)})
		}
	}
	return errors.Join(errs...)
}

// Interface is a NIC the balancer's XDP program is attached to.
type Interface struct {
	Name string
	// Mode is "native", "generic" or "auto" (native, falling back to generic
	// when the driver has no XDP support).
	Mode string
}

// OuterSource holds the host's own addresses, used as the source of the
// IP-in-IP outer header so that anti-spoofing filters and rp_filter accept
// the packets.
type OuterSource struct {
	IPv4 netip.Addr
	IPv6 netip.Addr
}

// Dataplane sizes the BPF maps; they are fixed when the maps are created.
type Dataplane struct {
	MaxVIPs          int
	MaxBackends      int
	ConntrackEntries int
	UDPIdleTimeout   time.Duration
	// TCPCloseTimeout is how long a TCP flow keeps its backend after the
	// client's FIN or RST.
	TCPCloseTimeout time.Duration
	// TableSize is M, the Maglev table size of every VIP (a prime).
	TableSize uint32
	// MTU is the largest encapsulated IP packet the egress link carries;
	// larger ones are dropped and counted (too_big). 0 (or unset) takes the
	// smallest MTU of the interfaces when the daemon starts.
	MTU int
	// NewFlowRateLimit is how many new flows each CPU may write into the
	// connection table per second (l4.Config.NewFlowRateLimit); past it
	// new flows are forwarded but not inserted, so a SYN flood cannot
	// evict established flows. 0 (or unset): no limit.
	NewFlowRateLimit int
	// GUEPort is the UDP destination port of GUE VIPs' packets: the L7
	// hosts' `xlb decap --gue-port`. 0 (or unset): no VIP may forward with
	// gue.
	GUEPort uint16
	// NextHopMAC, when set, is the destination MAC of every encapsulated
	// frame (the router towards the L7 hosts): a fixed override. Unset,
	// every frame's next hop comes from the kernel's FIB and neighbour
	// table. SrcMAC is the override's source MAC; nil means the first
	// interface's own address.
	NextHopMAC net.HardwareAddr
	SrcMAC     net.HardwareAddr
}

// Health configures the active checks of every L7 host: how each one is
// checked (the health package's own Spec, so the two never drift apart)
// and on which port.
type Health struct {
	health.Spec
	// Port is the port probed on the backend; 0 means the VIP's own port
	// (not allowed for port-wildcard VIPs).
	Port uint16
	// AllDown is what a VIP does when every backend not drained fails its
	// checks: AllDownFailOpen keeps sending new flows to all of them,
	// AllDownDrop installs an empty table.
	AllDown string
	// FailOpenBelow (fail_open_below, with all_down: fail_open) is the
	// panic threshold in percent: a VIP fails open while fewer than this
	// share of its backends that are checked, not drained and of weight
	// above 0 pass. 0 (unset) fails open only while none passes.
	FailOpenBelow int
}

// FailOpen is the policy the reconciler applies to every VIP.
func (h Health) FailOpen() failopen.Policy {
	return failopen.Policy{On: h.AllDown == AllDownFailOpen, Below: h.FailOpenBelow}
}

// What a VIP does when every backend fails its health checks. Dropping
// is the default: a table never names a host its checks call dead.
// Failing open suits sites where the checks failing everywhere at once is
// more likely the checker's problem (a starved edge host, a firewall
// change on the admin port) than every L7 host dying together; when they
// have all died, sending to them loses nothing that dropping would keep.
const (
	AllDownFailOpen = "fail_open"
	AllDownDrop     = "drop"
)

// API configures the unix socket the CLI talks to.
type API struct {
	// Socket is created with mode 0660 (its directory 0750).
	Socket string
	// Group, when set, owns the socket so that its members can use the CLI
	// without sudo.
	Group string
}

// Metrics configures the Prometheus listener.
type Metrics struct {
	Listen string
}

// VIP is one virtual service.
type VIP struct {
	Addr netip.Addr
	// Port 0 means "any port" (a port-wildcard VIP).
	Port       uint16
	Proto      string
	Forwarding string
	TableSize  uint32
	Backends   []Backend
}

// Backend is one L7 host of a VIP.
type Backend struct {
	Addr   netip.Addr
	Weight uint32
	// State is "active" or "draining".
	State string
}

// The file's shape. Scalars that need parsing are strings here so that a bad
// value is reported with its line instead of a decoder panic message.
type fileConfig struct {
	Interfaces  []fileInterface `yaml:"interfaces"`
	OuterSource struct {
		IPv4 string `yaml:"ipv4"`
		IPv6 string `yaml:"ipv6"`
	} `yaml:"outer_source"`
	Dataplane struct {
		MaxVIPs          *int    `yaml:"max_vips"`
		MaxBackends      *int    `yaml:"max_backends"`
		ConntrackEntries *int    `yaml:"conntrack_entries"`
		UDPIdleTimeout   *string `yaml:"udp_idle_timeout"`
		TCPCloseTimeout  *string `yaml:"tcp_close_timeout"`
		TableSize        *int    `yaml:"table_size"`
		MTU              *int    `yaml:"mtu"`
		NewFlowRateLimit *int    `yaml:"new_flow_rate_limit"`
		GUEPort          *int    `yaml:"gue_port"`
		NextHopMAC       string  `yaml:"next_hop_mac"`
		SrcMAC           string  `yaml:"src_mac"`
	} `yaml:"dataplane"`
	Health struct {
		Type     *string `yaml:"type"`
		Port     *int    `yaml:"port"`
		Path     *string `yaml:"path"`
		Status   *int    `yaml:"expect_status"`
		Interval *string `yaml:"interval"`
		Timeout  *string `yaml:"timeout"`
		Rise     *int    `yaml:"rise"`
		Fall     *int    `yaml:"fall"`
		AllDown  *string `yaml:"all_down"`
		// FailOpenBelow is a percentage such as "50%".
		FailOpenBelow *string `yaml:"fail_open_below"`
	} `yaml:"health"`
	API struct {
		Socket *string `yaml:"socket"`
		Group  string  `yaml:"group"`
	} `yaml:"api"`
	Metrics struct {
		Listen *string `yaml:"listen"`
	} `yaml:"metrics"`
	State struct {
		Path  *string             `yaml:"path"`
		Store string              `yaml:"store"`
		Etcd  *etcdstore.Settings `yaml:"etcd"`
	} `yaml:"state"`
	BPF struct {
		PinPath *string `yaml:"pin_path"`
	} `yaml:"bpf"`
	VIPs []fileVIP `yaml:"vips"`
	BGP  *fileBGP  `yaml:"bgp"`
}

type fileInterface struct {
	Name string `yaml:"name"`
	Mode string `yaml:"mode"`
}

type fileVIP struct {
	Address    string        `yaml:"address"`
	Port       *string       `yaml:"port"`
	Protocol   string        `yaml:"protocol"`
	Forwarding string        `yaml:"forwarding"`
	TableSize  *int          `yaml:"table_size"`
	Backends   []fileBackend `yaml:"backends"`
}

type fileBackend struct {
	Address string `yaml:"address"`
	Weight  *int   `yaml:"weight"`
	State   string `yaml:"state"`
}

// Error is one problem found in a configuration file ("file:line: field:
// reason"); every problem Parse finds is one.
type Error = strictyaml.Error

// Load reads and validates the configuration file at path.
func Load(path string) (*Config, error) {
	data, err := strictyaml.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse validates a configuration; name is used in error messages. All
// problems found are returned together (errors.Join of *Error), so one run
// of `xlb daemon` or `xlb reload` lists everything to fix.
func Parse(name string, data []byte) (*Config, error) {
	var fc fileConfig
	doc, err := strictyaml.NewDoc(name, data, &fc)
	if err != nil {
		return nil, err
	}
	v := &validator{doc}
	cfg := v.config(&fc)
	if err := v.Err(); err != nil {
		return nil, err
	}
	cfg.File = name
	return cfg, nil
}

// validator checks a decoded file; every problem goes to its Doc.
type validator struct{ *strictyaml.Doc }

func p(elems ...any) []any { return elems }

func (v *validator) config(fc *fileConfig) *Config {
	cfg := &Config{}
	if len(fc.Interfaces) == 0 {
		v.Errorf(p("interfaces"), "at least one interface is required")
	}
	seenIf := map[string]bool{}
	for i, fi := range fc.Interfaces {
		it := Interface(fi)
		switch {
		case fi.Name == "":
			v.Errorf(p("interfaces", i), "name is required")
		case len(fi.Name) > 15 || strings.ContainsAny(fi.Name, "/ \t"):
			v.Errorf(p("interfaces", i, "name"), "%q is not a valid interface name", fi.Name)
		case seenIf[fi.Name]:
			v.Errorf(p("interfaces", i, "name"), "interface %q is listed twice", fi.Name)
		}
		seenIf[fi.Name] = true
		if it.Mode == "" {
			it.Mode = DefaultAttachMode
		}
		switch it.Mode {
		case "auto", "native", "generic":
		default:
			v.Errorf(p("interfaces", i, "mode"), "unknown attach mode %q (want auto, native or generic)", fi.Mode)
		}
		cfg.Interfaces = append(cfg.Interfaces, it)
		cfg.ifaceLines = append(cfg.ifaceLines, strictyaml.LineOf(v.Root, p("interfaces", i, "name")))
	}

	cfg.OuterSource.IPv4 = v.addr(p("outer_source", "ipv4"), fc.OuterSource.IPv4, 4)
	cfg.OuterSource.IPv6 = v.addr(p("outer_source", "ipv6"), fc.OuterSource.IPv6, 6)

	d := &fc.Dataplane
	cfg.Dataplane.MaxVIPs = v.intRange(p("dataplane", "max_vips"), d.MaxVIPs, DefaultMaxVIPs, 1, 1<<20)
	cfg.Dataplane.MaxBackends = v.intRange(p("dataplane", "max_backends"), d.MaxBackends, DefaultMaxBackends, 1, 1<<20)
	cfg.Dataplane.ConntrackEntries = v.intRange(p("dataplane", "conntrack_entries"), d.ConntrackEntries, DefaultConntrackEntries, 1024, 1<<26)
	cfg.Dataplane.UDPIdleTimeout = v.duration(p("dataplane", "udp_idle_timeout"), d.UDPIdleTimeout, DefaultConntrackUDPIdle, time.Second)
	cfg.Dataplane.TCPCloseTimeout = v.duration(p("dataplane", "tcp_close_timeout"), d.TCPCloseTimeout, DefaultConntrackTCPClose, time.Second)
	cfg.Dataplane.TableSize = maglev.DefaultSize
	if d.TableSize != nil {
		if ts, ok := v.tableSize(p("dataplane", "table_size"), *d.TableSize); ok {
			cfg.Dataplane.TableSize = ts
		}
	}
	cfg.Dataplane.MTU = v.intRange(p("dataplane", "mtu"), d.MTU, 0, 0, 65535)
	if cfg.Dataplane.MTU != 0 && cfg.Dataplane.MTU < 1280 {
		v.Errorf(p("dataplane", "mtu"), "%d is below 1280 (IPv6's minimum); omit it to take the interfaces' MTU", cfg.Dataplane.MTU)
	}
	cfg.Dataplane.NewFlowRateLimit = v.intRange(p("dataplane", "new_flow_rate_limit"), d.NewFlowRateLimit, 0, 0, 1<<31-1)
	cfg.Dataplane.GUEPort = uint16(v.intRange(p("dataplane", "gue_port"), d.GUEPort, 0, 0, 65535))
	cfg.Dataplane.NextHopMAC = v.mac(p("dataplane", "next_hop_mac"), d.NextHopMAC)
	cfg.Dataplane.SrcMAC = v.mac(p("dataplane", "src_mac"), d.SrcMAC)

	h := &fc.Health
	cfg.Health.Type = DefaultHealthType
	if h.Type != nil {
		cfg.Health.Type = *h.Type
	}
	switch cfg.Health.Type {
	case "http", "tcp":
	default:
		v.Errorf(p("health", "type"), "unknown check type %q (want http or tcp)", cfg.Health.Type)
	}
	cfg.Health.Port = uint16(v.intRange(p("health", "port"), h.Port, DefaultHealthPort, 0, 65535))
	cfg.Health.Path = DefaultHealthPath
	if h.Path != nil {
		cfg.Health.Path = *h.Path
		if !strings.HasPrefix(*h.Path, "/") {
			v.Errorf(p("health", "path"), "%q must start with /", *h.Path)
		}
	}
	cfg.Health.Status = v.intRange(p("health", "expect_status"), h.Status, DefaultHealthStatus, 100, 599)
	cfg.Health.Interval = v.duration(p("health", "interval"), h.Interval, DefaultHealthInterval, minHealthInterval)
	cfg.Health.Timeout = v.duration(p("health", "timeout"), h.Timeout, DefaultHealthTimeout, time.Millisecond)
	if cfg.Health.Timeout > cfg.Health.Interval {
		v.Errorf(p("health", "timeout"), "timeout %v is longer than the interval %v: probes would overlap", cfg.Health.Timeout, cfg.Health.Interval)
	}
	cfg.Health.Rise = v.intRange(p("health", "rise"), h.Rise, DefaultHealthRise, 1, maxHealthRiseFall)
	cfg.Health.Fall = v.intRange(p("health", "fall"), h.Fall, DefaultHealthFall, 1, maxHealthRiseFall)
	cfg.Health.AllDown = AllDownDrop
	if h.AllDown != nil {
		cfg.Health.AllDown = *h.AllDown
	}
	switch cfg.Health.AllDown {
	case AllDownFailOpen, AllDownDrop:
	default:
		v.Errorf(p("health", "all_down"), "unknown choice %q (want %s or %s)", cfg.Health.AllDown, AllDownFailOpen, AllDownDrop)
	}
	if h.FailOpenBelow != nil {
		n, err := strictyaml.ParsePercent(*h.FailOpenBelow, 1, 100)
		switch {
		case err != nil:
			v.Errorf(p("health", "fail_open_below"), "%v", err)
		case cfg.Health.AllDown != AllDownFailOpen:
			v.Errorf(p("health", "fail_open_below"), "needs all_down: %s (with %s, a VIP never fails open)", AllDownFailOpen, cfg.Health.AllDown)
		default:
			cfg.Health.FailOpenBelow = n
		}
	}

	cfg.API.Socket = v.absPath(p("api", "socket"), fc.API.Socket, DefaultSocket, "an absolute path")
	cfg.API.Group = fc.API.Group

	cfg.Metrics.Listen = DefaultMetricsListen
	if fc.Metrics.Listen != nil {
		cfg.Metrics.Listen = *fc.Metrics.Listen
		if *fc.Metrics.Listen != "" {
			if _, _, err := net.SplitHostPort(*fc.Metrics.Listen); err != nil {
				v.Errorf(p("metrics", "listen"), "%q is not host:port (use \"\" to disable metrics)", *fc.Metrics.Listen)
			}
		}
	}
	cfg.StatePath = v.absPath(p("state", "path"), fc.State.Path, DefaultStatePath, "an absolute path")
	v.store(fc, cfg)
	cfg.PinPath = v.absPath(p("bpf", "pin_path"), fc.BPF.PinPath, DefaultPinPath, "an absolute path on a bpffs mount")

	type key struct {
		addr  netip.Addr
		port  uint16
		proto string
	}
	seen := map[key]int{}
	for i := range fc.VIPs {
		vip, ok := v.vip(i, &fc.VIPs[i], cfg)
		if !ok {
			continue
		}
		k := key{vip.Addr, vip.Port, vip.Proto}
		if j, dup := seen[k]; dup {
			v.Errorf(p("vips", i), "duplicate of vips[%d] (same address, port and protocol)", j)
			continue
		}
		seen[k] = i
		cfg.VIPs = append(cfg.VIPs, vip)
	}
	cfg.BGP = v.bgp(fc.BGP, cfg)
	if len(cfg.VIPs) > cfg.Dataplane.MaxVIPs {
		v.Errorf(p("vips"), "%d VIPs exceed dataplane.max_vips %d", len(cfg.VIPs), cfg.Dataplane.MaxVIPs)
	}
	return cfg
}

// outerFor is the configured outer source of a's family.
func outerFor(cfg *Config, a netip.Addr) netip.Addr {
	if a.Is4() {
		return cfg.OuterSource.IPv4
	}
	return cfg.OuterSource.IPv6
}

func family(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 6
}

func (v *validator) vip(i int, fv *fileVIP, cfg *Config) (VIP, bool) {
	nerr := v.Problems()
	vip := VIP{Proto: fv.Protocol, Forwarding: fv.Forwarding}
	if fv.Address == "" {
		v.Errorf(p("vips", i), "address is required")
	} else {
		a, err := netip.ParseAddr(fv.Address)
		switch {
		case err != nil || a.Zone() != "":
			v.Errorf(p("vips", i, "address"), "%q is not an IP address", fv.Address)
		case a.Is4In6():
			v.Errorf(p("vips", i, "address"), "%q is an IPv4-mapped IPv6 address: write the IPv4 form", fv.Address)
		case a.IsUnspecified() || a.IsMulticast():
			v.Errorf(p("vips", i, "address"), "%q cannot be a VIP", fv.Address)
		default:
			vip.Addr = a
		}
	}
	if fv.Port == nil {
		v.Errorf(p("vips", i), "port is required (a number, or \"*\" for any port)")
	} else if *fv.Port == "*" || *fv.Port == "any" {
		vip.Port = 0
	} else if n, err := strconv.Atoi(*fv.Port); err != nil || n < 1 || n > 65535 {
		v.Errorf(p("vips", i, "port"), "%q is not a port 1..65535 or \"*\"", *fv.Port)
	} else {
		vip.Port = uint16(n)
	}
	switch fv.Protocol {
	case "tcp", "udp":
	case "":
		v.Errorf(p("vips", i), "protocol is required (tcp or udp)")
	default:
		v.Errorf(p("vips", i, "protocol"), "unknown protocol %q (want tcp or udp)", fv.Protocol)
	}
	if vip.Forwarding == "" {
		vip.Forwarding = DefaultForwarding
	}
	if !slices.Contains(api.Modes(), vip.Forwarding) {
		v.Errorf(p("vips", i, "forwarding"), "unknown forwarding mode %q (want %s)", fv.Forwarding, strings.Join(api.Modes(), " or "))
	}
	if vip.Forwarding == api.ModeGUE && cfg.Dataplane.GUEPort == 0 {
		v.Errorf(p("vips", i, "forwarding"), "gue needs dataplane.gue_port (the port of the L7 hosts' xlb decap --gue-port)")
	}
	vip.TableSize = cfg.Dataplane.TableSize
	if fv.TableSize != nil {
		if ts, ok := v.tableSize(p("vips", i, "table_size"), *fv.TableSize); ok {
			if ts != cfg.Dataplane.TableSize {
				v.Errorf(p("vips", i, "table_size"), "%d differs from dataplane.table_size %d (the data path uses one size for every VIP)", ts, cfg.Dataplane.TableSize)
			}
		}
	}
	if cfg.Health.Port == 0 && fv.Port != nil && vip.Port == 0 {
		v.Errorf(p("vips", i, "port"), "health.port 0 means \"the VIP's port\", which a port-wildcard VIP does not have: set health.port")
	}
	seen := map[netip.Addr]int{}
	for j, fb := range fv.Backends {
		b := Backend{Weight: DefaultBackendWeight, State: fb.State}
		a, err := netip.ParseAddr(fb.Address)
		switch {
		case fb.Address == "":
			v.Errorf(p("vips", i, "backends", j), "address is required")
			continue
		case err != nil || a.Zone() != "":
			v.Errorf(p("vips", i, "backends", j, "address"), "%q is not an IP address", fb.Address)
			continue
		case a.IsUnspecified() || a.IsMulticast() || a.Is4In6():
			v.Errorf(p("vips", i, "backends", j, "address"), "%q cannot be a backend", fb.Address)
			continue
		case vip.Addr.IsValid() && a.Is4() != vip.Addr.Is4() && vip.Forwarding == api.ModeL2DSR:
			v.Errorf(p("vips", i, "backends", j, "address"), "%s and the VIP %s are of different IP families (l2dsr hands the client's packet on unchanged, which needs the same family)", a, vip.Addr)
			continue
		case vip.Addr.IsValid() && a.Is4() != vip.Addr.Is4() && !outerFor(cfg, a).IsValid():
			v.Errorf(p("vips", i, "backends", j, "address"), "%s is IPv%d, which needs outer_source.ipv%[2]d (the source of the outer header towards it)", a, family(a))
			continue
		}
		b.Addr = a
		if k, dup := seen[a]; dup {
			v.Errorf(p("vips", i, "backends", j, "address"), "%s is already backends[%d] of this VIP", a, k)
			continue
		}
		seen[a] = j
		if fb.Weight != nil {
			if *fb.Weight < 0 || *fb.Weight > maxBackendWeight {
				v.Errorf(p("vips", i, "backends", j, "weight"), "%d is out of range 0..%d", *fb.Weight, maxBackendWeight)
			} else {
				b.Weight = uint32(*fb.Weight)
			}
		}
		switch b.State {
		case "":
			b.State = "active"
		case "active", "draining":
		default:
			v.Errorf(p("vips", i, "backends", j, "state"), "unknown state %q (want active or draining)", fb.State)
		}
		vip.Backends = append(vip.Backends, b)
	}
	if len(vip.Backends) > int(vip.TableSize) {
		v.Errorf(p("vips", i, "backends"), "%d backends do not fit a table of %d slots", len(vip.Backends), vip.TableSize)
	}

	// The outer header towards an L7 host has the host's family: a VIP
	// whose backends are all of the other family (4-in-6, 6-in-4) does not
	// need an outer source of its own.
	if vip.Addr.IsValid() && !outerFor(cfg, vip.Addr).IsValid() {
		own := vip.Forwarding == api.ModeL2DSR || len(vip.Backends) == 0
		for _, b := range vip.Backends {
			own = own || b.Addr.Is4() == vip.Addr.Is4()
		}
		if own {
			v.Errorf(p("vips", i, "address"), "IPv%d VIP needs outer_source.ipv%[1]d (the host's address for the IP-in-IP outer header)", family(vip.Addr))
		}
	}
	return vip, v.Problems() == nerr
}

func (v *validator) tableSize(path []any, n int) (uint32, bool) {
	switch {
	case n < 1 || n > maglev.MaxSize:
		v.Errorf(path, "%d is out of range 1..%d", n, maglev.MaxSize)
	case !maglev.IsPrime(n):
		v.Errorf(path, "%d is not prime (Maglev needs a prime; the default is %d)", n, maglev.DefaultSize)
	default:
		return uint32(n), true
	}
	return 0, false
}

func (v *validator) mac(path []any, s string) net.HardwareAddr {
	if s == "" {
		return nil
	}
	mac, err := net.ParseMAC(s)
	if err != nil || len(mac) != 6 {
		v.Errorf(path, "%q is not an Ethernet MAC address", s)
		return nil
	}
	if slices.Equal(mac, make(net.HardwareAddr, 6)) {
		v.Errorf(path, "%q is the zero MAC, which no host has (without dataplane.next_hop_mac, next hops come from the kernel's FIB)", s)
		return nil
	}
	return mac
}

func (v *validator) addr(path []any, s string, family int) netip.Addr {
	if s == "" {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" || (family == 4) != a.Is4() || a.IsUnspecified() {
		v.Errorf(path, "%q is not a unicast IPv%d address", s, family)
		return netip.Addr{}
	}
	return a
}

func (v *validator) intRange(path []any, val *int, def, lo, hi int) int {
	if val == nil {
		return def
	}
	if *val < lo || *val > hi {
		v.Errorf(path, "%d is out of range %d..%d", *val, lo, hi)
		return def
	}
	return *val
}

// absPath returns *val, or def when unset; what completes "must be" in the
// error for a relative path.
func (v *validator) absPath(path []any, val *string, def, what string) string {
	if val == nil {
		return def
	}
	if !strings.HasPrefix(*val, "/") {
		v.Errorf(path, "%q must be %s", *val, what)
	}
	return *val
}

func (v *validator) duration(path []any, val *string, def, lo time.Duration) time.Duration {
	if val == nil {
		return def
	}
	d, err := time.ParseDuration(*val)
	if err != nil {
		v.Errorf(path, "%q is not a duration like 200ms or 1s", *val)
		return def
	}
	if d < lo {
		v.Errorf(path, "%v is shorter than the minimum %v", d, lo)
		return def
	}
	return d
}

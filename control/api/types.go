package api

import (
	"net/netip"
	"time"
)

// DefaultSocketPath is where the daemon listens and the CLI dials unless told
// otherwise (config api.socket, CLI --socket).
const DefaultSocketPath = "/run/xlb/xlb.sock"

// Protocols a VIP can carry.
const (
	ProtoTCP = "tcp"
	ProtoUDP = "udp"
)

// Forwarding modes of a VIP: how the L4 tier hands a packet to an L7 host.
// The empty string means the daemon's default (ModeIPIP).
const (
	ModeIPIP  = "ipip"  // IP-in-IP tunnel, decapsulated by xlb's program on the L7 host
	ModeL2DSR = "l2dsr" // MAC rewrite; the L7 hosts share the edge host's L2 segment
	ModeGUE   = "gue"   // GUE (IP in UDP to dataplane.gue_port), decapsulated by xlb's program on the L7 host
)

// Modes lists every forwarding mode. The CLI (flag and completion), the
// API, the config file and the data path accept exactly these.
func Modes() []string { return []string{ModeIPIP, ModeL2DSR, ModeGUE} }

// Backend states as the data path sees them. A backend's State is derived
// from its admin Drain flag and its health: draining wins over down, because
// an operator who drained a host wants it out regardless of health.
const (
	StateActive   = "active"   // in the Maglev table, gets new flows
	StateDraining = "draining" // out of the table; established flows continue via conntrack
	StateDown     = "down"     // failed its health checks; out of the table
	StateRemoved  = "removed"  // deleted from the desired state (reported only transiently)
)

// DefaultTableSize is the Maglev table size used when a VIPSpec leaves it 0.
const DefaultTableSize = 65537

// VIP is one virtual service and its backends (L7 hosts) as the daemon
// currently runs it.
type VIP struct {
	Key       VIPKey    `json:"key"`
	Mode      string    `json:"mode"`      // ModeIPIP or ModeL2DSR
	TableSize uint32    `json:"tableSize"` // Maglev table size M (prime)
	Backends  []Backend `json:"backends"`
	// FailingOpen: too few backends pass their health checks (none, or
	// fewer than health.fail_open_below), and the daemon sends new flows
	// to every backend not drained rather than to those few or nowhere
	// (health.all_down: fail_open).
	FailingOpen bool `json:"failingOpen,omitempty"`
	// FailOpen is the fail-open policy and the figures it decides on; nil
	// with health.all_down: drop.
	FailOpen *FailOpen `json:"failOpen,omitempty"`
}

// FailOpen is a VIP's health.all_down: fail_open policy at work.
type FailOpen struct {
	// Below is health.fail_open_below in percent; 0 fails open only while
	// no backend passes.
	Below int `json:"below,omitempty"`
	// Checked counts the backends the decision counts: not drained, of
	// weight above 0, checked at least once. Passing of them pass.
	Passing int `json:"passing"`
	Checked int `json:"checked"`
}

// Backend is one L7 host of a VIP with its admin settings, health and share
// of the Maglev table.
type Backend struct {
	Addr   netip.Addr `json:"addr"`
	Weight uint32     `json:"weight"`
	// Drain is the operator's flag (xlb backend drain/undrain); State is the
	// effective result of Drain and health.
	Drain   bool   `json:"drain"`
	State   string `json:"state"` // StateActive, StateDraining, StateDown
	Healthy bool   `json:"healthy"`
	// TableSlots is how many of the VIP's TableSize Maglev entries point at
	// this backend right now (0 unless active).
	TableSlots int `json:"tableSlots"`
	// LastCheck is when the last health check finished; LastError is its
	// error, empty when it passed. LastTransition is when Healthy last flipped.
	LastCheck      time.Time `json:"lastCheck,omitzero"`
	LastError      string    `json:"lastError,omitempty"`
	LastTransition time.Time `json:"lastTransition,omitzero"`
}

// VIPSpec is what `xlb vip add` asks for.
type VIPSpec struct {
	Key       VIPKey        `json:"key"`
	Mode      string        `json:"mode,omitempty"`      // "" = ModeIPIP
	TableSize uint32        `json:"tableSize,omitempty"` // 0 = DefaultTableSize
	Backends  []BackendSpec `json:"backends,omitempty"`  // optional initial backends
}

// BackendSpec is what `xlb backend add` asks for.
type BackendSpec struct {
	Addr   netip.Addr `json:"addr"`
	Weight uint32     `json:"weight,omitempty"` // 0 = 1
	Drain  bool       `json:"drain,omitempty"`  // add it drained: known but not yet taking flows
}

// Interface is a NIC the XDP program is attached to.
type Interface struct {
	Name string `json:"name"`
	// Mode is the XDP mode the program runs in on this NIC: AttachNative,
	// AttachGeneric (several times slower), AttachUnknown when the kernel
	// did not say, or empty when not attached. ConfiguredMode is what the
	// config asked for (auto, native or generic).
	Mode           string `json:"mode,omitempty"`
	ConfiguredMode string `json:"configuredMode"`
	// Attached is false when the daemon could not attach (or adopt) the
	// program on it; Error then says why.
	Attached bool   `json:"attached"`
	Error    string `json:"error,omitempty"`
	// MTU is the interface's MTU, the default limit of an encapsulated
	// packet (0: unknown).
	MTU int `json:"mtu,omitempty"`
}

// Next-hop modes of NextHops.Mode.
const (
	NextHopFIB    = "fib"    // per frame from the kernel's FIB and neighbour table
	NextHopStatic = "static" // dataplane.next_hop_mac overrides the FIB
)

// NextHops says how encapsulated frames find their next hop.
type NextHops struct {
	Mode string `json:"mode"` // NextHopFIB or NextHopStatic
	// MAC is the configured next hop (NextHopStatic only).
	MAC string `json:"mac,omitempty"`
	// Hosts is the kernel's view of every L7 host's next hop (NextHopFIB
	// only), one entry per distinct backend address.
	Hosts []NextHop `json:"hosts,omitempty"`
}

// NextHop is the route and neighbour entry towards one L7 host.
type NextHop struct {
	Backend netip.Addr `json:"backend"`
	Iface   string     `json:"iface,omitempty"`
	Gateway netip.Addr `json:"gateway,omitzero"`
	MAC     string     `json:"mac,omitempty"`
	// State is the neighbour entry's state (reachable, stale, permanent,
	// incomplete, failed, none), "no route" or "local"; Resolved says
	// whether frames to the host go out now.
	State    string `json:"state"`
	Resolved bool   `json:"resolved"`
}

// XDP modes an Interface reports.
const (
	AttachNative  = "native"  // in the driver: the fast path
	AttachGeneric = "generic" // on the kernel's skb path: works everywhere, several times slower
	AttachUnknown = "unknown"
)

// Status is the daemon's overall view: `xlb status`.
type Status struct {
	// Time is when the daemon took this snapshot; the CLI shows ages
	// ("2s ago") relative to it.
	Time       time.Time `json:"time,omitzero"`
	Version    string    `json:"version"`
	StartTime  time.Time `json:"startTime,omitzero"`
	ConfigPath string    `json:"configPath,omitempty"`
	StatePath  string    `json:"statePath,omitempty"`
	// Store says where desired state lives and whether it is reachable.
	Store      StoreStatus `json:"store,omitzero"`
	Interfaces []Interface `json:"interfaces"`
	// NextHops is empty when the daemon predates next-hop reporting.
	NextHops NextHops `json:"nextHops,omitzero"`
	// OuterSource is the outer source address of IP-in-IP frames, per
	// family (invalid: that family is not configured).
	OuterSourceV4 netip.Addr `json:"outerSourceV4,omitzero"`
	OuterSourceV6 netip.Addr `json:"outerSourceV6,omitzero"`
	// Adopted is true when this daemon took over a pinned data path from a
	// previous instance instead of loading a fresh one.
	Adopted bool `json:"adopted"`
	// LastReconcile is when the data path last matched desired state × health;
	// LastReconcileError is the error of the latest attempt, empty if it passed.
	LastReconcile      time.Time `json:"lastReconcile,omitzero"`
	LastReconcileError string    `json:"lastReconcileError,omitempty"`
	VIPs               []VIP     `json:"vips"`
	// BGP is the speaker announcing the VIPs; nil when BGP is off.
	BGP *BGPStatus `json:"bgp,omitempty"`
	// Conntrack is the connection table's occupancy.
	Conntrack ConntrackUsage `json:"conntrack,omitzero"`
}

// ConntrackUsage is how full the connection table is (l4.ConnTableUsage):
// Entries ways hold a flow, of Capacity. Entries are replaced, never
// removed, so ended flows count until replaced; a table near its capacity
// replaces live flows' entries (size dataplane.conntrack_entries at twice
// the live flows per CPU). Unless Exact, Entries is estimated from a sample
// of SampledSets sets of 4 ways.
type ConntrackUsage struct {
	Entries     uint64 `json:"entries"`
	Capacity    uint64 `json:"capacity"`
	SampledSets uint32 `json:"sampledSets"`
	Exact       bool   `json:"exact"`
}

// Counter is a packets/bytes pair summed over all CPUs.
type Counter struct {
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

// Stats is one snapshot of the data path's cumulative counters. Rates are
// computed by the client from two snapshots and their Time.
type Stats struct {
	Time time.Time  `json:"time"`
	VIPs []VIPStats `json:"vips"`
	// Reasons counts packets per drop/pass reason (the l4 reason names, also
	// the `reason` label of xlb_l4_drops_total).
	Reasons map[string]uint64 `json:"reasons,omitempty"`
	// Conntrack hits and misses of the connection table lookup.
	ConntrackHits   uint64 `json:"conntrackHits"`
	ConntrackMisses uint64 `json:"conntrackMisses"`
}

// VIPStats are the counters of one VIP.
type VIPStats struct {
	Key      VIPKey         `json:"key"`
	Counter                 // packets and bytes received for the VIP
	NewFlows uint64         `json:"newFlows"` // flows that took a Maglev decision (conntrack misses)
	Backends []BackendStats `json:"backends"`
}

// BackendStats are the counters of one backend: packets and bytes forwarded to it.
type BackendStats struct {
	Addr netip.Addr `json:"addr"`
	Counter
}

// FlowQuery asks which backend the data path would pick for a flow from Src
// to VIP: `xlb flow SRC:PORT VIP:PORT/PROTO`.
type FlowQuery struct {
	Src netip.AddrPort `json:"src"`
	VIP VIPKey         `json:"vip"`
	// DstPort is the destination port for an any-port VIP (VIP.Port == 0);
	// otherwise it is ignored and VIP.Port is used.
	DstPort uint16 `json:"dstPort,omitempty"`
}

// FlowAnswer is the data path's answer to a FlowQuery.
type FlowAnswer struct {
	// Backend is the chosen L7 host; invalid (zero) when the VIP has no
	// usable backend and the packet would be dropped.
	Backend netip.Addr `json:"backend,omitzero"`
	// Via says how it was chosen: "conntrack" (an existing flow entry) or
	// "maglev" (a table lookup for a new flow).
	Via string `json:"via"`
	// Slot is the Maglev table index the flow hashes to (Via == "maglev").
	Slot uint32 `json:"slot"`
	// Hash is the flow hash the program computed.
	Hash uint32 `json:"hash"`
}

// Flow sources reported in FlowAnswer.Via.
const (
	ViaConntrack = "conntrack"
	ViaMaglev    = "maglev"
)

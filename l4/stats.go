package l4

import (
	"fmt"

	"github.com/cilium/ebpf"
)

// Counter is a per-reason counter slot (enum xlb_counter in
// bpf/include/consts.h). Its String is the `reason` metric label.
type Counter uint32

// Counters of the balancer. The XDP action counters count verdicts, at the
// single exit of the program; the others count why.
const (
	CounterNotVIP          = Counter(xlbXlbCounterXLB_CNT_NOT_VIP)
	CounterNoBackend       = Counter(xlbXlbCounterXLB_CNT_NO_BACKEND)
	CounterMalformed       = Counter(xlbXlbCounterXLB_CNT_MALFORMED)
	CounterConnHit         = Counter(xlbXlbCounterXLB_CNT_CT_HIT)
	CounterConnMissSYN     = Counter(xlbXlbCounterXLB_CNT_CT_MISS_SYN)
	CounterConnMissNonSYN  = Counter(xlbXlbCounterXLB_CNT_CT_MISS_NON_SYN)
	CounterConnExpired     = Counter(xlbXlbCounterXLB_CNT_CT_EXPIRED)
	CounterConnHitOtherCPU = Counter(xlbXlbCounterXLB_CNT_CT_HIT_OTHER_CPU)
	CounterEncapFail       = Counter(xlbXlbCounterXLB_CNT_ENCAP_FAIL)
	CounterTooBig          = Counter(xlbXlbCounterXLB_CNT_TOO_BIG)
	CounterFragment        = Counter(xlbXlbCounterXLB_CNT_FRAGMENT)
	CounterXDPAborted      = Counter(xlbXlbCounterXLB_CNT_XDP_ABORTED)
	CounterXDPDrop         = Counter(xlbXlbCounterXLB_CNT_XDP_DROP)
	CounterXDPPass         = Counter(xlbXlbCounterXLB_CNT_XDP_PASS)
	CounterXDPTx           = Counter(xlbXlbCounterXLB_CNT_XDP_TX)
	CounterXDPRedirect     = Counter(xlbXlbCounterXLB_CNT_XDP_REDIRECT)
	// Next-hop resolution through the kernel's FIB (no NextHopMAC
	// configured): each failure passes the packet to the kernel.
	CounterFIBNoNeigh     = Counter(xlbXlbCounterXLB_CNT_FIB_NO_NEIGH)
	CounterFIBNoRoute     = Counter(xlbXlbCounterXLB_CNT_FIB_NO_ROUTE)
	CounterFIBFwdDisabled = Counter(xlbXlbCounterXLB_CNT_FIB_FWD_DISABLED)
	CounterFIBOtherIface  = Counter(xlbXlbCounterXLB_CNT_FIB_OTHER_IFACE)
	CounterFIBOther       = Counter(xlbXlbCounterXLB_CNT_FIB_OTHER)
	// An L2 DSR VIP's backend is not on the segment: passed.
	CounterL2DSRNotOnLink = Counter(xlbXlbCounterXLB_CNT_L2DSR_NOT_ON_LINK)
	// Passed, and not the balancer's, by cause (CounterNotVIP keeps the
	// TCP/UDP packets that no VIP matches).
	CounterShortFrame  = Counter(xlbXlbCounterXLB_CNT_SHORT_FRAME)
	CounterNotIP       = Counter(xlbXlbCounterXLB_CNT_NOT_IP)
	CounterVLANStacked = Counter(xlbXlbCounterXLB_CNT_VLAN_STACKED)
	CounterOtherL4     = Counter(xlbXlbCounterXLB_CNT_OTHER_L4)
	// A too_big packet answered with ICMP frag-needed / packet-too-big.
	CounterICMPTooBig = Counter(xlbXlbCounterXLB_CNT_ICMP_TOO_BIG)
	// A new flow above Config.NewFlowRateLimit: forwarded by the Maglev
	// table, no connection entry written.
	CounterConnInsertSkipped = Counter(xlbXlbCounterXLB_CNT_CT_INSERT_SKIPPED)
	// An ICMP error about a VIP flow (unreachable, fragmentation needed,
	// packet too big) sent to that flow's L7 host.
	CounterICMPSteered = Counter(xlbXlbCounterXLB_CNT_ICMP_STEERED)
	numCounters        = int(xlbXlbCounterXLB_CNT_MAX)
)

// CounterKind says what a counter slot counts; metrics export each kind
// as its own metric.
type CounterKind int

const (
	// KindReason counts why a packet was passed or dropped (not_vip,
	// no_backend, malformed, ...).
	KindReason CounterKind = iota
	// KindConn counts a connection-table event (hit, miss, expiry).
	KindConn
	// KindVerdict counts the XDP action the program returned, at its
	// single exit: every packet is counted in exactly one verdict.
	KindVerdict
)

func (k CounterKind) String() string {
	switch k {
	case KindReason:
		return "reason"
	case KindConn:
		return "conn"
	case KindVerdict:
		return "verdict"
	}
	return fmt.Sprintf("kind%d", int(k))
}

// counterInfo names a slot: name is its String (unique across kinds),
// label its name within its kind (the metric label).
type counterInfo struct {
	name, label string
	kind        CounterKind
}

var counterInfos = [...]counterInfo{
	CounterNotVIP:            {"not_vip", "not_vip", KindReason},
	CounterNoBackend:         {"no_backend", "no_backend", KindReason},
	CounterMalformed:         {"malformed", "malformed", KindReason},
	CounterConnHit:           {"conn_hit", "hit", KindConn},
	CounterConnMissSYN:       {"conn_miss_syn", "miss_syn", KindConn},
	CounterConnMissNonSYN:    {"conn_miss_non_syn", "miss_non_syn", KindConn},
	CounterConnExpired:       {"conn_expired", "expired", KindConn},
	CounterConnHitOtherCPU:   {"conn_hit_other_cpu", "hit_other_cpu", KindConn},
	CounterEncapFail:         {"encap_fail", "encap_fail", KindReason},
	CounterTooBig:            {"too_big", "too_big", KindReason},
	CounterFragment:          {"fragment", "fragment", KindReason},
	CounterXDPAborted:        {"xdp_aborted", "aborted", KindVerdict},
	CounterXDPDrop:           {"xdp_drop", "drop", KindVerdict},
	CounterXDPPass:           {"xdp_pass", "pass", KindVerdict},
	CounterXDPTx:             {"xdp_tx", "tx", KindVerdict},
	CounterXDPRedirect:       {"xdp_redirect", "redirect", KindVerdict},
	CounterFIBNoNeigh:        {"fib_no_neigh", "fib_no_neigh", KindReason},
	CounterFIBNoRoute:        {"fib_no_route", "fib_no_route", KindReason},
	CounterFIBFwdDisabled:    {"fib_fwd_disabled", "fib_fwd_disabled", KindReason},
	CounterFIBOtherIface:     {"fib_other_iface", "fib_other_iface", KindReason},
	CounterFIBOther:          {"fib_other", "fib_other", KindReason},
	CounterL2DSRNotOnLink:    {"l2dsr_not_on_link", "l2dsr_not_on_link", KindReason},
	CounterShortFrame:        {"short_frame", "short_frame", KindReason},
	CounterNotIP:             {"not_ip", "not_ip", KindReason},
	CounterVLANStacked:       {"vlan_stacked", "vlan_stacked", KindReason},
	CounterOtherL4:           {"other_l4", "other_l4", KindReason},
	CounterICMPTooBig:        {"icmp_too_big", "icmp_too_big", KindReason},
	CounterConnInsertSkipped: {"conn_insert_skipped", "insert_skipped", KindConn},
	CounterICMPSteered:       {"icmp_steered", "icmp_steered", KindReason},
}

// The verdict slots must be XLB_CNT_XDP_ABORTED + the XDP action, the way
// xlb_ingress counts its verdict: each line stops the build (a negative
// constant or an index out of range) if the C enum is reordered.
var (
	_ = [1]struct{}{}[CounterXDPDrop-CounterXDPAborted-Counter(abiXlbXdpActionXLB_ABI_XDP_DROP)]
	_ = [1]struct{}{}[CounterXDPPass-CounterXDPAborted-Counter(abiXlbXdpActionXLB_ABI_XDP_PASS)]
	_ = [1]struct{}{}[CounterXDPTx-CounterXDPAborted-Counter(abiXlbXdpActionXLB_ABI_XDP_TX)]
	_ = [1]struct{}{}[CounterXDPRedirect-CounterXDPAborted-Counter(abiXlbXdpActionXLB_ABI_XDP_REDIRECT)]
	_ = [1]struct{}{}[Counter(abiXlbXdpActionXLB_ABI_XDP_ABORTED)]
)

// pairActions and pairRows shape pair_stats_map (XLB_PAIR in
// bpf/include/consts.h): slot row*pairActions+action counts packets whose
// main reason was counter row-1 (row 0: none) and whose verdict was the
// XDP action; Stats adds each slot to both counters.
const (
	pairActions = int(abiXlbAbiXLB_ABI_PAIR_ACTIONS)
	pairRows    = int(abiXlbAbiXLB_ABI_PAIR_ROWS)
)

// Every counter has a row, and every verdict a column: a negative array
// length stops the build otherwise.
var (
	_ [pairRows - 1 - numCounters]struct{}
	_ [pairActions - 1 - int(CounterXDPRedirect-CounterXDPAborted)]struct{}
)

func (c Counter) info() (counterInfo, bool) {
	if int(c) < len(counterInfos) && counterInfos[c].name != "" {
		return counterInfos[c], true
	}
	return counterInfo{}, false
}

// String is the counter's name, unique across kinds (conn_hit, xdp_tx).
func (c Counter) String() string {
	if i, ok := c.info(); ok {
		return i.name
	}
	return fmt.Sprintf("counter%d", uint32(c))
}

// Kind says what the counter counts. A slot without a name (a C counter
// Go does not know yet) is a reason.
func (c Counter) Kind() CounterKind {
	i, _ := c.info()
	return i.kind
}

// Label is the counter's name within its kind, the value of its metric's
// label: the reason (not_vip), the connection-table result (hit) or the
// XDP action (tx).
func (c Counter) Label() string {
	if i, ok := c.info(); ok {
		return i.label
	}
	return c.String()
}

// AllCounters lists every counter slot in order.
func AllCounters() []Counter {
	out := make([]Counter, numCounters)
	for i := range out {
		out[i] = Counter(i)
	}
	return out
}

// Count is a packets/bytes pair, summed over CPUs.
type Count struct {
	Packets uint64
	Bytes   uint64
}

// VIPCount is a VIP's traffic and the connection entries it created.
type VIPCount struct {
	Packets  uint64
	Bytes    uint64
	NewFlows uint64
}

// Stats is a snapshot of every counter, summed over CPUs. Bytes are frame
// bytes as received (before encapsulation).
type Stats struct {
	Counters map[Counter]Count
	VIPs     map[VIP]VIPCount
	Backends map[BackendID]Count
}

// Stats reads all counters. Per-CPU slots are summed; nothing is reset.
func (d *Dataplane) Stats() (Stats, error) {
	// Only the id sets are read under the lock: the per-CPU map reads (one
	// syscall per VIP and per backend) run without it, so a metrics scrape
	// never holds up a table install. Map reads are safe concurrently.
	d.mu.Lock()
	vips := make(map[VIP]uint32, len(d.vips))
	for v, st := range d.vips {
		vips[v] = st.id
	}
	backends := make([]BackendID, 0, len(d.backends))
	for id := range d.backends {
		backends = append(backends, id)
	}
	d.mu.Unlock()

	s := Stats{
		Counters: make(map[Counter]Count, numCounters),
		VIPs:     make(map[VIP]VIPCount, len(vips)),
		Backends: make(map[BackendID]Count, len(backends)),
	}
	for _, c := range AllCounters() {
		n, err := sumStat(d.objs.StatsMap, uint32(c))
		if err != nil {
			return Stats{}, fmt.Errorf("read counter %s: %w", c, err)
		}
		s.Counters[c] = n
	}
	// The pair slots of every counter row that exists and every verdict.
	for row := 0; row <= numCounters; row++ {
		for act := CounterXDPAborted; act <= CounterXDPRedirect; act++ {
			n, err := sumStat(d.objs.PairStatsMap, uint32(row*pairActions+int(act-CounterXDPAborted)))
			if err != nil {
				return Stats{}, fmt.Errorf("read pair counters of row %d, %s: %w", row, act, err)
			}
			if n == (Count{}) {
				continue
			}
			add := []Counter{act}
			if row > 0 {
				add = append(add, Counter(row-1))
			}
			for _, c := range add {
				s.Counters[c] = Count{s.Counters[c].Packets + n.Packets, s.Counters[c].Bytes + n.Bytes}
			}
		}
	}
	for v, id := range vips {
		var per []xlbVipStat
		if err := d.objs.VipStatsMap.Lookup(id, &per); err != nil {
			return Stats{}, fmt.Errorf("read counters of vip %s: %w", v, err)
		}
		var n VIPCount
		for _, p := range per {
			n.Packets += p.Packets
			n.Bytes += p.Bytes
			n.NewFlows += p.NewFlows
		}
		s.VIPs[v] = n
	}
	for _, id := range backends {
		n, err := sumStat(d.objs.BackendStatsMap, uint32(id))
		if err != nil {
			return Stats{}, fmt.Errorf("read counters of backend %d: %w", id, err)
		}
		s.Backends[id] = n
	}
	return s, nil
}

func sumStat(m *ebpf.Map, key uint32) (Count, error) {
	var per []xlbXlbStat
	if err := m.Lookup(key, &per); err != nil {
		return Count{}, err
	}
	var n Count
	for _, p := range per {
		n.Packets += p.Packets
		n.Bytes += p.Bytes
	}
	return n, nil
}

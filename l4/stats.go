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
	numCounters           = int(xlbXlbCounterXLB_CNT_MAX)
)

var counterNames = [...]string{
	CounterNotVIP:          "not_vip",
	CounterNoBackend:       "no_backend",
	CounterMalformed:       "malformed",
	CounterConnHit:         "conn_hit",
	CounterConnMissSYN:     "conn_miss_syn",
	CounterConnMissNonSYN:  "conn_miss_non_syn",
	CounterConnExpired:     "conn_expired",
	CounterConnHitOtherCPU: "conn_hit_other_cpu",
	CounterEncapFail:       "encap_fail",
	CounterTooBig:          "too_big",
	CounterFragment:        "fragment",
	CounterXDPAborted:      "xdp_aborted",
	CounterXDPDrop:         "xdp_drop",
	CounterXDPPass:         "xdp_pass",
	CounterXDPTx:           "xdp_tx",
	CounterXDPRedirect:     "xdp_redirect",
	CounterFIBNoNeigh:      "fib_no_neigh",
	CounterFIBNoRoute:      "fib_no_route",
	CounterFIBFwdDisabled:  "fib_fwd_disabled",
	CounterFIBOtherIface:   "fib_other_iface",
	CounterFIBOther:        "fib_other",
	CounterL2DSRNotOnLink:  "l2dsr_not_on_link",
}

func (c Counter) String() string {
	if int(c) < len(counterNames) {
		return counterNames[c]
	}
	return fmt.Sprintf("counter%d", uint32(c))
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

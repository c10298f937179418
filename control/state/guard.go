package state

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/xlbproject/xlb/control/api"
)

// Risks lists what going from cur to next would do that cuts traffic, each
// saying what would happen; the daemon refuses such a change unless the
// operator forces it:
//   - a new VIP on one of this host's own addresses (local says whether an
//     address is one, and on which interface): the host's own traffic to
//     that port (SSH on :22) would go to the L7 hosts instead;
//   - a new loopback backend: no other host is reached there;
//   - a VIP left without an active backend (by a drain, a delete or a
//     weight of 0): every new flow of the VIP would be dropped;
//   - a VIP deleted while it has an active backend: its packets are no
//     longer a VIP's, so established connections break too, which a drain
//     would have let finish.
//
// up says whether a backend of a VIP passes its health checks: a backend
// counts as active when it is up, not drained and of weight above 0.
func Risks(cur, next Desired, up func(api.VIPKey, netip.Addr) bool, local func(netip.Addr) (string, bool)) []string {
	var out []string
	for _, nv := range next.VIPs {
		cv, existed := cur.VIP(nv.Key)
		if !existed {
			if ifname, ok := local(nv.Key.Addr); ok {
				out = append(out, fmt.Sprintf("vip %s: %s is an address of this host (on %s): this host's own traffic to %s would go to the L7 hosts instead",
					nv.Key, nv.Key.Addr, ifname, portText(nv.Key)))
			}
		}
		for _, b := range nv.Backends {
			if _, had := findBackend(cv.Backends, b.Addr); !had && b.Addr.IsLoopback() {
				out = append(out, fmt.Sprintf("vip %s: backend %s is a loopback address: no L7 host can be reached there", nv.Key, b.Addr))
			}
		}
		if !existed {
			continue
		}
		before := activeBackends(cv, up)
		if len(before) > 0 && len(activeBackends(nv, up)) == 0 {
			out = append(out, fmt.Sprintf("vip %s: this leaves it without an active backend (%s %s the last): every new flow to it would be dropped; established flows keep their host",
				nv.Key, strings.Join(addrStrings(before), ", "), wasWere(len(before))))
		}
	}
	for _, cv := range cur.VIPs {
		if _, kept := next.VIP(cv.Key); kept {
			continue
		}
		if active := activeBackends(cv, up); len(active) > 0 {
			out = append(out, fmt.Sprintf("vip %s: deleting it stops forwarding its traffic at once, established connections included (%s %s active); "+
				"to retire it without breaking them, drain its backends first (the last one with --force) and delete it once their flows have ended",
				cv.Key, strings.Join(addrStrings(active), ", "), isAre(len(active))))
		}
	}
	return out
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}

func activeBackends(v VIP, up func(api.VIPKey, netip.Addr) bool) []netip.Addr {
	var out []netip.Addr
	for _, b := range v.Backends {
		if !b.Drain && b.Weight > 0 && up(v.Key, b.Addr) {
			out = append(out, b.Addr)
		}
	}
	return out
}

func portText(k api.VIPKey) string {
	if k.Port == 0 {
		return "every " + k.Proto + " port"
	}
	return fmt.Sprintf("%s port %d", k.Proto, k.Port)
}

func addrStrings(as []netip.Addr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}

func wasWere(n int) string {
	if n == 1 {
		return "was"
	}
	return "were"
}

// Package failopen holds the one rule both tiers use to decide when a set
// of backends fails open (Envoy's panic threshold): the daemon for a VIP's
// L7 hosts, the proxy for a pool's app servers.
package failopen

import "fmt"

// Policy is what a VIP or pool does when its backends fail their checks.
// The zero value never fails open.
type Policy struct {
	// On: the config says all_down: fail_open.
	On bool
	// Below is fail_open_below in percent (1..100): fail open while fewer
	// than this share of the counted backends pass. 0 (unset) fails open
	// only while none passes.
	Below int
}

// Open reports whether a VIP or pool with passing backends that pass
// their checks and failing ones that fail them sends new flows to all of
// them. Only backends that take new flows when healthy are counted:
// drained ones (and, on the edge, weight 0 and not yet checked ones) are
// in neither number, so draining hosts or adding new ones never tips a
// VIP or pool into failing open. With nothing failing there is nothing to
// open to.
func (p Policy) Open(passing, failing int) bool {
	if !p.On || failing == 0 {
		return false
	}
	return passing == 0 || passing*100 < p.Below*(passing+failing)
}

// String is the policy as the config writes it, for logs and the CLI.
func (p Policy) String() string {
	switch {
	case !p.On:
		return "off"
	case p.Below == 0:
		return "when none passes"
	default:
		return fmt.Sprintf("below %d%% passing", p.Below)
	}
}

package proxy

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/xlbproject/xlb/l7/config"
	"github.com/xlbproject/xlb/l7/route"
)

// shedder is priority load shedding. Every forwarded request counts in one
// proxy-wide in-flight number; each priority class has its own ceiling, a
// percentage of shedding.max_inflight (by default low 70 %, normal 85 %,
// critical 100 %). A request is refused with 503 and Retry-After when the
// in-flight count, itself included, would pass its class's ceiling.
//
// Why thresholds on one shared count rather than a queue per class: when
// the app servers of one route slow down, its requests pile up in flight
// and the count rises for everyone. The low class hits its ceiling first
// and stops growing there, which leaves the headroom between 70 % and
// 100 % to normal and critical traffic: /browse is refused before /checkout
// sees any refusal, and checkout keeps its full ceiling as long as the
// low and normal classes cannot fill it alone. The cost on the hot path is
// two atomic adds; no queue, no timer.
type shedder struct {
	inflight atomic.Int64
}

// shedPolicy is one generation's ceilings: a reload changes them, while the
// count they are compared with keeps the requests of every generation.
type shedPolicy struct {
	ceiling    [len(config.Priorities)]int64 // by route.Route.Priority
	retryAfter []byte                        // Retry-After value, whole seconds
}

func newShedPolicy(c config.Shedding) shedPolicy {
	var s shedPolicy
	pct := [len(config.Priorities)]int{c.Low, c.Normal, c.Critical}
	for i, p := range pct {
		s.ceiling[i] = max(1, int64(c.MaxInFlight)*int64(p)/100)
	}
	secs := int64((c.RetryAfter + time.Second - 1) / time.Second)
	s.retryAfter = strconv.AppendInt(nil, max(secs, 1), 10)
	return s
}

// admit counts a request of route r in flight, or refuses it when its
// class's ceiling is reached. An admitted request must be ended with done.
func (s *shedder) admit(pol *shedPolicy, r *route.Route) bool {
	if s.inflight.Add(1) > pol.ceiling[r.Priority] {
		s.inflight.Add(-1)
		return false
	}
	return true
}

func (s *shedder) done() { s.inflight.Add(-1) }

// InFlight is the proxy-wide count shedding decides on.
func (s *shedder) InFlight() int64 { return s.inflight.Load() }

package gslb

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimit is response rate limiting over UDP: answers to one client
// network (an IPv4 /24 or IPv6 /56, where a spoofed flood's victims sit)
// beyond Rate per second (after Burst) are dropped, except every Slip-th
// one, which is sent empty with TC set so that a real client behind the
// network retries over TCP, which is never limited. A zero Rate is off.
type RateLimit struct {
	Rate  float64
	Burst int
	Slip  int // 0: drop every answer over the limit
}

// maxLimiters bounds the table of client networks; when it is full it is
// emptied, which at worst grants each network one new burst.
const maxLimiters = 100_000

type limiter struct {
	cfg  RateLimit
	mu   sync.Mutex
	nets map[netip.Prefix]*netLimit
}

type netLimit struct {
	lim     *rate.Limiter
	dropped int
}

func newLimiter(cfg RateLimit) *limiter {
	if cfg.Rate <= 0 {
		return nil
	}
	return &limiter{cfg: cfg, nets: map[netip.Prefix]*netLimit{}}
}

// Verdicts of limiter.allow.
const (
	rrlPass = iota
	rrlSlip
	rrlDrop
)

func (l *limiter) allow(client netip.Addr, now time.Time) int {
	if l == nil || !client.IsValid() {
		return rrlPass
	}
	bits := 24
	if client.Is6() {
		bits = 56
	}
	pfx, _ := client.Prefix(bits)
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.nets[pfx]
	if n == nil {
		if len(l.nets) >= maxLimiters {
			clear(l.nets)
		}
		n = &netLimit{lim: rate.NewLimiter(rate.Limit(l.cfg.Rate), max(l.cfg.Burst, 1))}
		l.nets[pfx] = n
	}
	if n.lim.AllowN(now, 1) {
		return rrlPass
	}
	n.dropped++
	if l.cfg.Slip > 0 && n.dropped%l.cfg.Slip == 0 {
		return rrlSlip
	}
	return rrlDrop
}

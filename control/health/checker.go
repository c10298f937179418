package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Spec says how a target is checked.
type Spec struct {
	// Type is "http" or "tcp".
	Type string
	// Path and Status are the HTTP GET's path and expected status.
	Path     string
	Status   int
	Interval time.Duration
	Timeout  time.Duration
	Rise     int
	Fall     int
}

// Target is one thing checked: an address and port with a Spec. Targets are
// comparable, so an L7 host behind several VIPs with the same check is
// probed once.
type Target struct {
	Addr netip.Addr
	Port uint16
	Spec Spec
}

func (t Target) String() string {
	return net.JoinHostPort(t.Addr.String(), strconv.Itoa(int(t.Port)))
}

// Status is a target's current health.
type Status struct {
	Up    bool
	Known bool // false until the first check finished
	// LastCheck is when the last check finished and LastError its error
	// ("" when it passed).
	LastCheck time.Time
	LastError string
	// LastTransition is when Up last changed (or became known).
	LastTransition time.Time
}

// ProbeFunc runs one check; nil means healthy.
type ProbeFunc func(ctx context.Context, t Target) error

// Observer receives every check's duration and result (metrics).
type Observer interface {
	ObserveCheck(t Target, d time.Duration, err error)
}

// Options configure a Checker. All fields are optional.
type Options struct {
	// OnChange is called (from a probe goroutine, without locks held) when
	// a target's state changes or first becomes known.
	OnChange func(t Target, s Status)
	Observer Observer
	// Probe replaces the real TCP/HTTP probe (tests).
	Probe ProbeFunc
	// Rand returns numbers in [0, 1) for the jitter; default math/rand/v2.
	Rand func() float64
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Checker runs one probe goroutine per target.
type Checker struct {
	log    *slog.Logger
	opts   Options
	client *http.Client

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	randMu  sync.Mutex
	targets map[Target]*prober
	// known is signalled whenever a target's first result arrives.
	known chan struct{}
}

type prober struct {
	cancel  context.CancelFunc
	machine Machine
	status  Status
}

// NewChecker returns a checker with no targets; add them with Set.
func NewChecker(log *slog.Logger, opts Options) *Checker {
	if opts.Rand == nil {
		opts.Rand = rand.Float64
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Checker{
		log:     log,
		opts:    opts,
		ctx:     ctx,
		cancel:  cancel,
		targets: map[Target]*prober{},
		known:   make(chan struct{}, 1),
	}
	// A fresh connection per check: reusing a kept-alive connection would
	// not notice a proxy that stopped accepting new ones.
	c.client = &http.Client{
		Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	if c.opts.Probe == nil {
		c.opts.Probe = c.probe
	}
	return c
}

// Set makes ts the set of checked targets: new ones start (first probe
// within a tenth of their interval), missing ones stop, the others keep
// their state.
func (c *Checker) Set(ts []Target) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx.Err() != nil {
		return
	}
	want := make(map[Target]bool, len(ts))
	for _, t := range ts {
		want[t] = true
	}
	// Targets whose check settings changed (a reload) keep their state:
	// re-learning it would take healthy hosts out of the tables.
	previous := map[netip.AddrPort]*prober{}
	for t, p := range c.targets {
		if !want[t] {
			p.cancel()
			delete(c.targets, t)
			previous[netip.AddrPortFrom(t.Addr, t.Port)] = p
		}
	}
	for _, t := range ts {
		if _, ok := c.targets[t]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(c.ctx)
		p := &prober{cancel: cancel, machine: Machine{Rise: t.Spec.Rise, Fall: t.Spec.Fall}}
		if old, ok := previous[netip.AddrPortFrom(t.Addr, t.Port)]; ok {
			p.machine.known, p.machine.up = old.machine.known, old.machine.up
			p.status = old.status
		}
		c.targets[t] = p
		c.wg.Add(1)
		go c.run(ctx, t, p)
	}
}

// Status returns a target's health; a target not checked is unknown.
func (c *Checker) Status(t Target) Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.targets[t]; ok {
		return p.status
	}
	return Status{}
}

// WaitKnown blocks until every current target has a first result, or ctx
// ends. The daemon calls it before its first reconcile so that a restart
// installs tables from real health, not from a guess.
func (c *Checker) WaitKnown(ctx context.Context) error {
	for {
		c.mu.Lock()
		all := true
		for _, p := range c.targets {
			all = all && p.status.Known
		}
		c.mu.Unlock()
		if all {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for first health results: %w", ctx.Err())
		case <-c.known:
		}
	}
}

// Close stops every probe and waits for them.
func (c *Checker) Close() error {
	c.cancel()
	c.wg.Wait()
	return nil
}

func (c *Checker) jitter(d time.Duration, spread float64) time.Duration {
	c.randMu.Lock()
	r := c.opts.Rand()
	c.randMu.Unlock()
	return time.Duration(float64(d) * spread * r)
}

func (c *Checker) run(ctx context.Context, t Target, p *prober) {
	defer c.wg.Done()
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("health probe panicked", "backend", t.String(), "panic", r)
		}
	}()
	// Start within the first tenth of the interval, then every interval
	// ±10 %, so that many targets (and many LB hosts) spread their probes.
	timer := time.NewTimer(c.jitter(t.Spec.Interval, 0.1))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		start := c.opts.Now()
		pctx, cancel := context.WithTimeout(ctx, t.Spec.Timeout)
		err := c.opts.Probe(pctx, t)
		cancel()
		if ctx.Err() != nil {
			return // stopped mid-probe: the result means nothing
		}
		end := c.opts.Now()
		if c.opts.Observer != nil {
			c.opts.Observer.ObserveCheck(t, end.Sub(start), err)
		}
		c.record(t, p, end, err)
		timer.Reset(t.Spec.Interval - t.Spec.Interval/10 + c.jitter(t.Spec.Interval, 0.2))
	}
}

func (c *Checker) record(t Target, p *prober, now time.Time, err error) {
	c.mu.Lock()
	firstResult := !p.status.Known
	changed := p.machine.Observe(err == nil)
	p.status.LastCheck = now
	p.status.LastError = ""
	if err != nil {
		p.status.LastError = err.Error()
	}
	if changed {
		p.status.Up, p.status.Known, p.status.LastTransition = p.machine.Up(), true, now
	}
	st := p.status
	c.mu.Unlock()
	if !changed {
		return
	}
	if firstResult {
		select {
		case c.known <- struct{}{}:
		default:
		}
	}
	attrs := []any{"backend", t.String(), "check", t.Spec.Type, "up", st.Up}
	if err != nil {
		attrs = append(attrs, "error", err.Error())
	}
	switch {
	case firstResult:
		c.log.Info("backend health known", attrs...)
	case st.Up:
		c.log.Info("backend up", attrs...)
	default:
		c.log.Warn("backend down", attrs...)
	}
	if c.opts.OnChange != nil {
		c.opts.OnChange(t, st)
	}
}

// probe is the real check: TCP connect, or HTTP GET expecting Status.
func (c *Checker) probe(ctx context.Context, t Target) error {
	switch t.Spec.Type {
	case "tcp":
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", t.String())
		if err != nil {
			return fmt.Errorf("connect %s: %w", t, err)
		}
		return conn.Close()
	case "http":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+t.String()+t.Spec.Path, nil)
		if err != nil {
			return fmt.Errorf("build health request: %w", err)
		}
		req.Header.Set("User-Agent", "xlb-health")
		resp, err := c.client.Do(req)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // drop net/http's repeated "Get URL:" prefix
			}
			return fmt.Errorf("get http://%s%s: %w", t, t.Spec.Path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != t.Spec.Status {
			return fmt.Errorf("get http://%s%s: status %d, want %d", t, t.Spec.Path, resp.StatusCode, t.Spec.Status)
		}
		return nil
	default:
		return fmt.Errorf("unknown check type %q", t.Spec.Type)
	}
}

package health

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/xlbproject/xlb/l7/tlsdial"
)

// StatusSetter receives state transitions. name is Target.Name.
type StatusSetter interface {
	SetStatus(name string, up bool)
}

// Target is one server to probe.
type Target struct {
	Name     string
	Addr     string // host:port
	Path     string
	Host     string // Host header; Addr when empty
	Interval time.Duration
	Timeout  time.Duration
	Rise     int
	Fall     int
	// H2C probes with HTTP/2 over cleartext (prior knowledge), for pools
	// whose servers the proxy speaks h2c to: such a server may not speak
	// HTTP/1.1 at all.
	H2C bool
	// Postgres, when set, is a libpq-style connection string without host
	// and port: the target is probed with a PostgreSQL session instead of
	// HTTP (see probePostgres), and its status goes to SetPostgres.
	Postgres string
	// ProxyV2 starts each PostgreSQL probe's connection with a PROXY
	// protocol v2 LOCAL header, for servers that demand the header on
	// every connection (the pool sends it on forwarded ones).
	ProxyV2 bool
	// TLS, when set, makes the probe HTTPS with this client configuration;
	// its NextProtos name the one protocol to speak, "h2" or "http/1.1".
	// TLSDigest stands for its content, that protocol included: a target
	// whose TLS files and protocol did not change is the same target
	// (Update keeps its history).
	TLS       *tls.Config
	TLSDigest string
}

// sameAs tells whether t probes what o probes, the same way.
func (t Target) sameAs(o Target) bool {
	t.TLS, o.TLS = nil, nil
	return t == o
}

// Checker probes targets until Close or its context ends.
//
// The first probe of a target decides its state at once (nothing is known
// before it, so hysteresis would only delay the truth); after that a state
// changes only after Rise successes or Fall failures in a row. A probe
// succeeds on any 2xx or 3xx answer within Timeout.
type Checker struct {
	client *http.Client
	h2c    *http.Client // for H2C targets
	log    *slog.Logger

	// setMu is held for reading while a probe reports, so that Update can
	// wait out reports to the old setter before it returns.
	setMu  sync.RWMutex
	setter StatusSetter

	mu      sync.Mutex
	targets []Target
	ctx     context.Context // nil until Start
	cancel  context.CancelFunc
	probes  map[string]*probe // running, by Target.Name
	wg      sync.WaitGroup
}

// probe is one target's running goroutine.
type probe struct {
	t      Target
	cancel context.CancelFunc
}

// New returns a checker; call Start to begin probing. log may be nil.
func New(setter StatusSetter, targets []Target, log *slog.Logger) *Checker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Checker{
		setter:  setter,
		targets: targets,
		log:     log,
		probes:  map[string]*probe{},
		// A fresh connection per probe: a server that stopped accepting
		// must fail its check, not ride an old connection.
		client: probeClient(&http.Transport{DisableKeepAlives: true, Proxy: nil}),
		h2c:    probeClient(h2cTransport()),
	}
}

func probeClient(tr *http.Transport) *http.Client {
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

func h2cTransport() *http.Transport {
	tr := &http.Transport{DisableKeepAlives: true, Proxy: nil}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetUnencryptedHTTP2(true)
	return tr
}

// tlsTransport probes over TLS with tc, a fresh connection (and full
// handshake) per probe, in the one protocol tc's ALPN names: the dial is
// the proxy's own (tlsdial), so a server that the proxy could not speak h2
// to fails its check the same way.
func tlsTransport(tc *tls.Config, timeout time.Duration) *http.Transport {
	require := ""
	if slices.Contains(tc.NextProtos, "h2") {
		require = "h2"
	}
	tr := &http.Transport{
		DisableKeepAlives: true,
		Proxy:             nil,
		TLSClientConfig:   tc,
		DialTLSContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return tlsdial.Dial(ctx, addr, tc, require, timeout)
		},
	}
	tr.Protocols = new(http.Protocols)
	if require == "h2" {
		tr.Protocols.SetHTTP2(true)
	} else {
		tr.Protocols.SetHTTP1(true)
	}
	return tr
}

// Start launches one probing goroutine per target. It returns an error if
// the checker is already running.
func (c *Checker) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel != nil {
		return errors.New("start health checker: already running")
	}
	c.ctx, c.cancel = context.WithCancel(ctx)
	for _, t := range c.targets {
		c.startLocked(t)
	}
	return nil
}

func (c *Checker) startLocked(t Target) {
	ctx, cancel := context.WithCancel(c.ctx)
	c.probes[t.Name] = &probe{t: t, cancel: cancel}
	c.wg.Add(1)
	go c.run(ctx, t)
}

// Update makes setter the receiver of transitions and targets the set
// probed. A target equal to a running one keeps probing with its rise/fall
// history; a changed or removed one stops, a new or changed one starts
// afresh (its first probe decides). When Update returns, no report to the
// previous setter is in progress.
func (c *Checker) Update(setter StatusSetter, targets []Target) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.targets = targets
	want := make(map[string]Target, len(targets))
	for _, t := range targets {
		want[t.Name] = t
	}
	// Stop outdated probes before switching the setter: a stopped probe
	// checks its context under setMu, so none of them can report an old
	// address's state to the new setter.
	for name, p := range c.probes {
		if t, ok := want[name]; !ok || !t.sameAs(p.t) {
			p.cancel()
			delete(c.probes, name)
		}
	}
	c.setMu.Lock()
	c.setter = setter
	c.setMu.Unlock()
	if c.ctx == nil {
		return
	}
	for _, t := range targets {
		if _, ok := c.probes[t.Name]; !ok {
			c.startLocked(t)
		}
	}
}

// Close stops all probes and waits for them to return.
func (c *Checker) Close() error {
	c.mu.Lock()
	cancel := c.cancel
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	c.wg.Wait()
	c.client.CloseIdleConnections()
	return nil
}

func (c *Checker) run(ctx context.Context, t Target) {
	defer c.wg.Done()
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("health checker panicked", "backend", t.Name, "panic", r)
		}
	}()
	st := state{rise: max(t.Rise, 1), fall: max(t.Fall, 1)}
	client := c.client
	switch {
	case t.TLS != nil:
		client = probeClient(tlsTransport(t.TLS, t.Timeout))
		defer client.CloseIdleConnections()
	case t.H2C:
		client = c.h2c
	}
	ticker := time.NewTicker(t.Interval)
	defer ticker.Stop()
	for {
		if t.Postgres != "" {
			if !c.runPostgres(ctx, t, &st) {
				return
			}
		} else if !c.runHTTP(ctx, client, t, &st) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// runPostgres probes a PostgreSQL target once and reports its status; it
// returns false once the probe was stopped.
func (c *Checker) runPostgres(ctx context.Context, t Target, st *state) bool {
	inRecovery, lag, err := probePostgres(ctx, t)
	if ctx.Err() != nil {
		return false
	}
	changed, up := st.observe(err == nil)
	ps := PostgresStatus{Up: up, InRecovery: inRecovery, Lag: lag}
	if err != nil {
		ps.Err = err.Error()
		// Keep the last known role while the rise/fall keeps it up.
		ps.InRecovery, ps.Lag = st.inRecovery, st.lag
	} else {
		st.inRecovery, st.lag = inRecovery, lag
	}
	if changed {
		if up {
			c.log.Info("health check up", "backend", t.Name, "in_recovery", inRecovery)
		} else {
			c.log.Warn("health check down", "backend", t.Name, "error", err)
		}
	}
	c.setMu.RLock()
	defer c.setMu.RUnlock()
	if ctx.Err() != nil {
		return false
	}
	if s, ok := c.setter.(PostgresSetter); ok {
		s.SetPostgres(t.Name, ps)
	} else if changed {
		c.setter.SetStatus(t.Name, up)
	}
	return true
}

// runHTTP probes an HTTP target once and reports a transition; it returns
// false once the probe was stopped.
func (c *Checker) runHTTP(ctx context.Context, client *http.Client, t Target, st *state) bool {
	err := probeHTTP(ctx, client, t)
	if ctx.Err() != nil {
		return false
	}
	if changed, up := st.observe(err == nil); changed {
		if up {
			c.log.Info("health check up", "backend", t.Name)
		} else {
			c.log.Warn("health check down", "backend", t.Name, "error", err)
		}
		c.report(ctx, t.Name, up)
	}
	return true
}

// report hands a transition to the current setter, unless the probe was
// stopped meanwhile (its target is gone from the current config).
func (c *Checker) report(ctx context.Context, name string, up bool) {
	c.setMu.RLock()
	defer c.setMu.RUnlock()
	if ctx.Err() == nil {
		c.setter.SetStatus(name, up)
	}
}

// probeHTTP asks t once, with client.
func probeHTTP(ctx context.Context, client *http.Client, t Target) error {
	ctx, cancel := context.WithTimeout(ctx, t.Timeout)
	defer cancel()
	scheme := "http://"
	if t.TLS != nil {
		scheme = "https://"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+t.Addr+t.Path, nil)
	if err != nil {
		return fmt.Errorf("build probe request: %w", err)
	}
	if t.Host != "" {
		req.Host = t.Host
	}
	req.Header.Set("User-Agent", "xlb-health/1")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("probe %s: %w", t.Addr, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("probe %s: status %d", t.Addr, resp.StatusCode)
	}
	return nil
}

// state is the rise/fall hysteresis of one target.
type state struct {
	rise, fall int
	known, up  bool
	streak     int // consecutive results disagreeing with up
	// The last successful PostgreSQL probe's answer.
	inRecovery bool
	lag        time.Duration
}

// observe records one probe result and reports a transition.
func (s *state) observe(ok bool) (changed, up bool) {
	if !s.known {
		s.known, s.up = true, ok
		return true, ok
	}
	if ok == s.up {
		s.streak = 0
		return false, s.up
	}
	s.streak++
	need := s.fall
	if ok {
		need = s.rise
	}
	if s.streak >= need {
		s.up, s.streak = ok, 0
		return true, s.up
	}
	return false, s.up
}

package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"
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
}

// Checker probes targets until Close or its context ends.
//
// The first probe of a target decides its state at once (nothing is known
// before it, so hysteresis would only delay the truth); after that a state
// changes only after Rise successes or Fall failures in a row. A probe
// succeeds on any 2xx or 3xx answer within Timeout.
type Checker struct {
	setter  StatusSetter
	targets []Target
	client  *http.Client
	log     *slog.Logger

	mu     sync.Mutex
	cancel context.CancelFunc
	wg     sync.WaitGroup
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
		client: &http.Client{
			// A fresh connection per probe: a server that stopped
			// accepting must fail its check, not ride an old connection.
			Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}
}

// Start launches one probing goroutine per target. It returns an error if
// the checker is already running.
func (c *Checker) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel != nil {
		return errors.New("start health checker: already running")
	}
	ctx, c.cancel = context.WithCancel(ctx)
	for _, t := range c.targets {
		c.wg.Add(1)
		go c.run(ctx, t)
	}
	return nil
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
	ticker := time.NewTicker(t.Interval)
	defer ticker.Stop()
	for {
		err := c.probe(ctx, t)
		if ctx.Err() != nil {
			return
		}
		if changed, up := st.observe(err == nil); changed {
			if up {
				c.log.Info("health check up", "backend", t.Name)
			} else {
				c.log.Warn("health check down", "backend", t.Name, "error", err)
			}
			c.setter.SetStatus(t.Name, up)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func (c *Checker) probe(ctx context.Context, t Target) error {
	ctx, cancel := context.WithTimeout(ctx, t.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+t.Addr+t.Path, nil)
	if err != nil {
		return fmt.Errorf("build probe request: %w", err)
	}
	if t.Host != "" {
		req.Host = t.Host
	}
	req.Header.Set("User-Agent", "xlb-health/1")
	resp, err := c.client.Do(req)
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

package health

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

var fastSpec = Spec{Type: "http", Path: "/ready", Status: 200, Interval: 10 * time.Millisecond, Timeout: 200 * time.Millisecond, Rise: 2, Fall: 2}

type transitions struct {
	mu  sync.Mutex
	got []bool
	ch  chan bool
}

func newTransitions() *transitions { return &transitions{ch: make(chan bool, 100)} }

func (tr *transitions) onChange(_ Target, s Status) {
	tr.mu.Lock()
	tr.got = append(tr.got, s.Up)
	tr.mu.Unlock()
	tr.ch <- s.Up
}

// next waits for the next transition; the bound only protects the test run.
func (tr *transitions) next(t *testing.T) bool {
	t.Helper()
	select {
	case up := <-tr.ch:
		return up
	case <-time.After(10 * time.Second):
		t.Fatal("no health transition")
		return false
	}
}

func targetOf(t *testing.T, url string, spec Spec) Target {
	t.Helper()
	ap, err := netip.ParseAddrPort(url)
	require.NoError(t, err)
	return Target{Addr: ap.Addr(), Port: ap.Port(), Spec: spec}
}

// TestHTTPReadiness runs against a real HTTP server whose /ready flips, as
// xlb proxy's does when its pools become unusable.
func TestHTTPReadiness(t *testing.T) {
	var ready atomic.Bool
	ready.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ready" && ready.Load() {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()

	tr := newTransitions()
	c := NewChecker(quietLog(), Options{OnChange: tr.onChange})
	defer c.Close()
	tgt := targetOf(t, srv.Listener.Addr().String(), fastSpec)
	c.Set([]Target{tgt})
	require.NoError(t, c.WaitKnown(context.Background()))
	assert.True(t, c.Status(tgt).Up)
	assert.True(t, tr.next(t), "first result: up")

	ready.Store(false)
	assert.False(t, tr.next(t), "503 on /ready takes the host down")
	st := c.Status(tgt)
	assert.False(t, st.Up)
	assert.Contains(t, st.LastError, "status 503, want 200")

	ready.Store(true)
	assert.True(t, tr.next(t), "comes back after rise successes")

	srv.Close()
	assert.False(t, tr.next(t), "a closed server is down")
	assert.Contains(t, c.Status(tgt).LastError, "connection refused")
}

func TestTCPCheck(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	spec := fastSpec
	spec.Type = "tcp"
	tr := newTransitions()
	c := NewChecker(quietLog(), Options{OnChange: tr.onChange})
	defer c.Close()
	tgt := targetOf(t, ln.Addr().String(), spec)
	c.Set([]Target{tgt})
	assert.True(t, tr.next(t))
	require.NoError(t, ln.Close())
	assert.False(t, tr.next(t))
}

// scripted returns results from a per-target script, then repeats the last.
type scripted struct {
	mu     sync.Mutex
	script map[netip.Addr][]bool
	calls  map[netip.Addr]int
}

func (s *scripted) probe(_ context.Context, t Target) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.script[t.Addr]
	i := min(s.calls[t.Addr], len(r)-1)
	s.calls[t.Addr]++
	if r[i] {
		return nil
	}
	return errors.New("scripted failure")
}

func TestFlappingTargetStaysUp(t *testing.T) {
	a := netip.MustParseAddr("10.0.0.1")
	s := &scripted{script: map[netip.Addr][]bool{a: {true, false, true, false, true, false, true, false, true, false, false}}, calls: map[netip.Addr]int{}}
	tr := newTransitions()
	c := NewChecker(quietLog(), Options{OnChange: tr.onChange, Probe: s.probe})
	defer c.Close()
	c.Set([]Target{{Addr: a, Port: 1, Spec: fastSpec}})
	assert.True(t, tr.next(t))
	assert.False(t, tr.next(t), "only the final two failures take it down")
	s.mu.Lock()
	assert.GreaterOrEqual(t, s.calls[a], 11)
	s.mu.Unlock()
}

func TestSetAddsAndRemovesTargets(t *testing.T) {
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	s := &scripted{script: map[netip.Addr][]bool{a: {true}, b: {false}}, calls: map[netip.Addr]int{}}
	c := NewChecker(quietLog(), Options{Probe: s.probe})
	defer c.Close()
	ta, tb := Target{Addr: a, Port: 1, Spec: fastSpec}, Target{Addr: b, Port: 1, Spec: fastSpec}
	c.Set([]Target{ta, tb})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, c.WaitKnown(ctx))
	assert.True(t, c.Status(ta).Up)
	assert.False(t, c.Status(tb).Up)
	assert.True(t, c.Status(tb).Known)

	c.Set([]Target{ta})
	assert.False(t, c.Status(tb).Known, "a removed target is no longer tracked")
	assert.True(t, c.Status(ta).Up, "a kept target keeps its state")
}

func TestObserverSeesEveryCheck(t *testing.T) {
	a := netip.MustParseAddr("10.0.0.1")
	s := &scripted{script: map[netip.Addr][]bool{a: {true}}, calls: map[netip.Addr]int{}}
	obs := &countingObserver{}
	c := NewChecker(quietLog(), Options{Probe: s.probe, Observer: obs})
	c.Set([]Target{{Addr: a, Port: 1, Spec: fastSpec}})
	require.NoError(t, c.WaitKnown(context.Background()))
	require.NoError(t, c.Close())
	s.mu.Lock()
	defer s.mu.Unlock()
	assert.Equal(t, int64(s.calls[a]), obs.n.Load())
}

type countingObserver struct{ n atomic.Int64 }

func (o *countingObserver) ObserveCheck(Target, time.Duration, error) { o.n.Add(1) }

func TestWaitKnownHonoursContext(t *testing.T) {
	block := func(ctx context.Context, _ Target) error { <-ctx.Done(); return ctx.Err() }
	c := NewChecker(quietLog(), Options{Probe: block})
	defer c.Close()
	spec := fastSpec
	spec.Timeout = time.Hour
	c.Set([]Target{{Addr: netip.MustParseAddr("10.0.0.1"), Port: 1, Spec: spec}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, c.WaitKnown(ctx), context.Canceled)
}

func TestSpecChangeKeepsState(t *testing.T) {
	a := netip.MustParseAddr("10.0.0.1")
	block := make(chan struct{})
	first := true
	var mu sync.Mutex
	probe := func(ctx context.Context, _ Target) error {
		mu.Lock()
		f := first
		first = false
		mu.Unlock()
		if f {
			return nil
		}
		select { // later probes never finish: only the carried state counts
		case <-ctx.Done():
		case <-block:
		}
		return ctx.Err()
	}
	c := NewChecker(quietLog(), Options{Probe: probe})
	defer c.Close()
	defer close(block)
	old := Target{Addr: a, Port: 1, Spec: fastSpec}
	c.Set([]Target{old})
	require.NoError(t, c.WaitKnown(context.Background()))
	spec := fastSpec
	spec.Timeout = time.Hour
	spec.Rise = 5
	next := Target{Addr: a, Port: 1, Spec: spec}
	c.Set([]Target{next})
	st := c.Status(next)
	assert.True(t, st.Known)
	assert.True(t, st.Up)
	assert.False(t, c.Status(old).Known)
}

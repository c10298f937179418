package health_test

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/internal/testcert"
	"github.com/xlbproject/xlb/l7/health"
)

type event struct {
	name string
	up   bool
}

type recorder struct {
	mu     sync.Mutex
	events []event
}

func (r *recorder) SetStatus(name string, up bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, event{name, up})
}

func (r *recorder) take() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

// lockstep is an app server whose every health answer is scripted by the
// test. A probe announces itself on arrived and then waits for its status;
// since the checker handles a result before it sends the next probe, the
// arrival of probe k+1 proves result k has been fully processed.
type lockstep struct {
	srv     *httptest.Server
	arrived chan struct{}
	script  chan int
}

func newLockstep(t *testing.T) *lockstep {
	l := &lockstep{arrived: make(chan struct{}), script: make(chan int)}
	l.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, "/healthz", r.URL.Path)
		select {
		case l.arrived <- struct{}{}:
		case <-r.Context().Done():
			return
		}
		select {
		case code := <-l.script:
			w.WriteHeader(code)
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(l.srv.Close)
	return l
}

func (l *lockstep) addr() string { return l.srv.Listener.Addr().String() }

// waitProbe waits for the next probe, which proves the previous result has
// been handled, and leaves it pending.
func (l *lockstep) waitProbe(t *testing.T) {
	t.Helper()
	select {
	case <-l.arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("no probe arrived")
	}
}

func start(t *testing.T, rec *recorder, targets ...health.Target) *health.Checker {
	c := health.New(rec, targets, nil)
	require.NoError(t, c.Start(context.Background()))
	t.Cleanup(func() { assert.NoError(t, c.Close()) })
	return c
}

func TestRiseFall(t *testing.T) {
	// Each step answers one probe and states the transitions expected once
	// that answer has been handled.
	type step struct {
		code int
		want []bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"first result decides at once (up)", []step{{200, []bool{true}}}},
		{"first result decides at once (down)", []step{{500, []bool{false}}}},
		{"fall after three failures", []step{
			{200, []bool{true}}, {500, nil}, {503, nil}, {500, []bool{false}},
		}},
		{"a success in between resets the fall streak", []step{
			{200, []bool{true}}, {500, nil}, {500, nil}, {204, nil}, {500, nil}, {500, nil}, {500, []bool{false}},
		}},
		{"rise after two successes", []step{
			{500, []bool{false}}, {200, nil}, {302, []bool{true}},
		}},
		{"flapping never rises", []step{
			{500, []bool{false}}, {200, nil}, {500, nil}, {200, nil}, {500, nil},
		}},
		{"4xx is a failure", []step{
			{200, []bool{true}}, {404, nil}, {404, nil}, {404, []bool{false}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newLockstep(t)
			rec := &recorder{}
			start(t, rec, health.Target{
				Name: "checkout/a", Addr: srv.addr(), Path: "/healthz",
				Interval: time.Millisecond, Timeout: 5 * time.Second, Rise: 2, Fall: 3,
			})
			srv.waitProbe(t)
			for i, s := range tt.steps {
				srv.script <- s.code
				srv.waitProbe(t)
				var got []bool
				for _, e := range rec.take() {
					assert.Equal(t, "checkout/a", e.name)
					got = append(got, e.up)
				}
				assert.Equal(t, s.want, got, "after step %d (status %d)", i, s.code)
			}
		})
	}
}

func TestUnreachableAndTimeout(t *testing.T) {
	// A listener that is closed at once: connection refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	refused := ln.Addr().String()
	require.NoError(t, ln.Close())

	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // never answers before the probe times out
	}))
	t.Cleanup(slow.Close)
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, "shop.test", r.Host)
	}))
	t.Cleanup(ok.Close)

	events := make(chan event, 16)
	setter := setterFunc(func(name string, up bool) { events <- event{name, up} })
	c := health.New(setter, []health.Target{
		{Name: "refused", Addr: refused, Path: "/", Interval: time.Hour, Timeout: time.Second, Rise: 1, Fall: 1},
		{Name: "slow", Addr: slow.Listener.Addr().String(), Path: "/", Interval: time.Hour, Timeout: 50 * time.Millisecond, Rise: 1, Fall: 1},
		{Name: "ok", Addr: ok.Listener.Addr().String(), Path: "/", Host: "shop.test", Interval: time.Hour, Timeout: time.Second, Rise: 1, Fall: 1},
	}, nil)
	require.NoError(t, c.Start(context.Background()))
	defer c.Close()
	got := map[string]bool{}
	for range 3 {
		select {
		case e := <-events:
			got[e.name] = e.up
		case <-time.After(10 * time.Second):
			t.Fatal("missing first results")
		}
	}
	assert.Equal(t, map[string]bool{"refused": false, "slow": false, "ok": true}, got)
	assert.Error(t, c.Start(context.Background()), "start twice")
}

type setterFunc func(name string, up bool)

func (f setterFunc) SetStatus(name string, up bool) { f(name, up) }

func TestCloseStopsProbes(t *testing.T) {
	var mu sync.Mutex
	probes := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		probes++
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	c := health.New(&recorder{}, []health.Target{
		{Name: "a", Addr: srv.Listener.Addr().String(), Path: "/", Interval: time.Millisecond, Timeout: time.Second, Rise: 1, Fall: 1},
	}, nil)
	require.NoError(t, c.Start(context.Background()))
	require.Eventually(t, func() bool { mu.Lock(); defer mu.Unlock(); return probes > 2 }, 30*time.Second, time.Millisecond)
	require.NoError(t, c.Close())
	mu.Lock()
	after := probes
	mu.Unlock()
	time.Sleep(20 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	// The probe in flight when Close was called may still reach the
	// server's handler after Close returned (its request was on the
	// wire); a probe loop still running would add one every millisecond.
	assert.LessOrEqual(t, probes-after, 1, "no new probe after Close returned")
}

func (r *recorder) names() map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]bool{}
	for _, e := range r.events {
		out[e.name] = true
	}
	return out
}

// TestUpdateKeepsUnchangedProbes: after Update, an unchanged target keeps
// probing with its history (its first-probe report is not repeated to the
// new setter), a new target is probed and reported to the new setter, and
// a removed one stops.
func TestUpdateKeepsUnchangedProbes(t *testing.T) {
	var mu sync.Mutex
	hits := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits[r.URL.Path]++
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	count := func(path string) int {
		mu.Lock()
		defer mu.Unlock()
		return hits[path]
	}
	addr := srv.Listener.Addr().String()
	target := func(name string) health.Target {
		return health.Target{Name: name, Addr: addr, Path: "/" + name, Interval: 10 * time.Millisecond, Timeout: 50 * time.Millisecond, Rise: 1, Fall: 1}
	}
	first := &recorder{}
	c := health.New(first, []health.Target{target("a"), target("b")}, nil)
	require.NoError(t, c.Start(t.Context()))
	t.Cleanup(func() { _ = c.Close() })
	require.Eventually(t, func() bool { return len(first.names()) == 2 }, 30*time.Second, 5*time.Millisecond)

	second := &recorder{}
	c.Update(second, []health.Target{target("a"), target("c")})
	require.Eventually(t, func() bool { return second.names()["c"] }, 30*time.Second, 5*time.Millisecond, "new target c is probed")
	// A restarted probe of a would report at its first probe; a few more
	// probes of a without a report show it kept its history.
	n := count("/a")
	require.Eventually(t, func() bool { return count("/a") > n+3 }, 30*time.Second, 5*time.Millisecond)
	assert.False(t, second.names()["a"], "unchanged target a was restarted")
	assert.Len(t, first.take(), 2, "nothing more reaches the old setter")
	b := count("/b")
	n = count("/a")
	require.Eventually(t, func() bool { return count("/a") > n+3 }, 30*time.Second, 5*time.Millisecond)
	assert.Equal(t, b, count("/b"), "removed target b is no longer probed")
}

// A TLS target is the same target while its digest is: a reload builds a
// new *tls.Config from unchanged files, and the probe keeps its history;
// another digest (a renewed certificate, another protocol) starts afresh.
// The probes speak TLS: the server sees a handshake for each.
func TestUpdateKeepsTLSProbes(t *testing.T) {
	ca, err := testcert.NewCA()
	require.NoError(t, err)
	kp, err := ca.KeyPair(t.TempDir(), "app", "127.0.0.1")
	require.NoError(t, err)
	var probes atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			probes.Add(1)
		}
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{kp}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	target := func(digest string) health.Target {
		return health.Target{Name: "a", Addr: srv.Listener.Addr().String(), Path: "/", Interval: 10 * time.Millisecond, Timeout: 2 * time.Second, Rise: 1, Fall: 1,
			TLS: &tls.Config{RootCAs: ca.Pool, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}}, TLSDigest: digest}
	}
	first := &recorder{}
	c := health.New(first, []health.Target{target("d1 http/1.1")}, nil)
	require.NoError(t, c.Start(t.Context()))
	t.Cleanup(func() { _ = c.Close() })
	require.Eventually(t, func() bool { return first.names()["a"] }, 30*time.Second, 5*time.Millisecond, "the TLS probe passes")

	same := &recorder{}
	c.Update(same, []health.Target{target("d1 http/1.1")})
	n := probes.Load()
	require.Eventually(t, func() bool { return probes.Load() > n+3 }, 30*time.Second, 5*time.Millisecond)
	assert.False(t, same.names()["a"], "a new *tls.Config with the same digest restarted the probe")

	renewed := &recorder{}
	c.Update(renewed, []health.Target{target("d2 http/1.1")})
	require.Eventually(t, func() bool { return renewed.names()["a"] }, 30*time.Second, 5*time.Millisecond, "another digest starts afresh (its first probe reports)")
}

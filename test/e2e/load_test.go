package e2e

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptrace"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/test/shopload"
	"github.com/xlbproject/xlb/test/topo"
)

// loadSpec is a bounded, paced HTTP load with exact per-request
// accounting, for the tests that must say which request failed and why.
// Request i asks paths[i%len(paths)], as user i%len(jars) when jars are
// given (each user keeps its cookies), on a new connection unless
// keepAlive, from src[i] when src is given.
type loadSpec struct {
	host   *topo.Host // the client's namespace
	target netip.AddrPort
	paths  []string
	// rate is requests per second over all workers; a tick finding every
	// worker busy is skipped, so a stall never turns into a burst.
	rate    float64
	workers int           // concurrent requests at most (default 4)
	max     int           // bound in count (default 10000; len(src) when src is set)
	maxTime time.Duration // bound in time (default 90s)
	timeout time.Duration // per request (default 5s)
	jars    []http.CookieJar
	// keepAlive gives each worker one keep-alive connection, reopened
	// only when the server closes it.
	keepAlive bool
	src       []netip.AddrPort
}

// reqResult is what one request saw. The app servers name themselves
// (X-App), the L7 host that proxied the request (X-Via: their TCP peer)
// and the client address the proxy forwarded (X-Client: X-Forwarded-For).
type reqResult struct {
	i, user          int
	path             string
	src              netip.AddrPort // the connection's local address
	start, end       time.Time
	status           int
	retryAfter       string
	app, via, client string
	err              error
	// conns is how many connections the request got; above 1, Go's
	// client retried it on a fresh one after its reused one failed.
	conns int
}

func (r reqResult) ok() bool { return r.err == nil && r.status == http.StatusOK }

// cause is "" for a 200, the HTTP status for another answer, or
// shopload's name of the transport error.
func (r reqResult) cause() string {
	switch {
	case r.err != nil:
		return shopload.CauseOf(r.err)
	case r.status != http.StatusOK:
		return fmt.Sprint(r.status)
	}
	return ""
}

type reqLoad struct {
	spec    loadSpec
	stop    chan struct{}
	done    chan struct{}
	started time.Time
	n       atomic.Int64
	mu      sync.Mutex
	res     []reqResult
}

// startLoad runs spec in the background until its bounds or finish.
func startLoad(t *testing.T, spec loadSpec) *reqLoad {
	t.Helper()
	require.NotEmpty(t, spec.paths)
	require.Positive(t, spec.rate)
	spec.workers = cmp.Or(spec.workers, 4)
	spec.max = cmp.Or(spec.max, 10000)
	if spec.src != nil {
		spec.max = min(spec.max, len(spec.src))
	}
	spec.maxTime = cmp.Or(spec.maxTime, 90*time.Second)
	spec.timeout = cmp.Or(spec.timeout, 5*time.Second)
	l := &reqLoad{spec: spec, stop: make(chan struct{}), done: make(chan struct{}), started: time.Now()}
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range spec.workers {
		tr := &http.Transport{DialContext: l.dial, DisableKeepAlives: !spec.keepAlive, MaxIdleConnsPerHost: 1,
			DisableCompression: true}
		wg.Go(func() {
			defer tr.CloseIdleConnections()
			for i := range jobs {
				r := l.do(tr, i)
				l.mu.Lock()
				l.res = append(l.res, r)
				l.mu.Unlock()
				l.n.Add(1)
			}
		})
	}
	go func() {
		defer close(l.done)
		defer wg.Wait()
		defer close(jobs)
		tick := time.NewTicker(time.Duration(float64(time.Second) / spec.rate))
		defer tick.Stop()
		end := time.After(spec.maxTime)
		for i := 0; i < spec.max; {
			select {
			case <-l.stop:
				return
			case <-end:
				return
			case <-tick.C:
			}
			select {
			case jobs <- i:
				i++
			default: // every worker busy: skip this tick
			}
		}
	}()
	t.Cleanup(func() { l.finish() })
	return l
}

type reqCtxKey struct{}

// dial connects from the client's namespace, from the request's source
// when the spec gives one.
func (l *reqLoad) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	if i, ok := ctx.Value(reqCtxKey{}).(int); ok && l.spec.src != nil {
		d.LocalAddr = net.TCPAddrFromAddrPort(l.spec.src[i])
	}
	var c net.Conn
	err := l.spec.host.Do(func() (err error) {
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

func (l *reqLoad) do(tr *http.Transport, i int) reqResult {
	r := reqResult{i: i, path: l.spec.paths[i%len(l.spec.paths)]}
	c := &http.Client{Transport: tr, Timeout: l.spec.timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if len(l.spec.jars) > 0 {
		r.user = i % len(l.spec.jars)
		c.Jar = l.spec.jars[r.user]
	}
	ctx := context.WithValue(context.Background(), reqCtxKey{}, i)
	// GotConn runs in this goroutine, before Do returns.
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		r.conns++
		r.src = info.Conn.LocalAddr().(*net.TCPAddr).AddrPort()
	}})
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+l.spec.target.String()+r.path, nil)
	if err != nil {
		r.err = err
		return r
	}
	r.start = time.Now()
	resp, err := c.Do(req)
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		r.status = resp.StatusCode
		r.retryAfter = resp.Header.Get("Retry-After")
		r.app, r.via, r.client = resp.Header.Get("X-App"), resp.Header.Get("X-Via"), resp.Header.Get("X-Client")
	}
	r.end = time.Now()
	r.err = err
	return r
}

// count is how many requests have ended.
func (l *reqLoad) count() int64 { return l.n.Load() }

// waitMore waits until n more requests have ended than when it was called.
func (l *reqLoad) waitMore(t *testing.T, n int64) {
	t.Helper()
	want := l.count() + n
	require.Eventually(t, func() bool { return l.count() >= want }, 60*time.Second, 10*time.Millisecond,
		"load made %d of %d requests", l.count(), want)
}

// finish stops issuing requests, waits for those in flight and returns
// every result in request order.
func (l *reqLoad) finish() []reqResult {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	slices.SortFunc(l.res, func(a, b reqResult) int { return a.i - b.i })
	return slices.Clone(l.res)
}

// wait lets the load run to its bounds and returns every result.
func (l *reqLoad) wait(t *testing.T) []reqResult {
	t.Helper()
	select {
	case <-l.done:
	case <-time.After(l.spec.maxTime + l.spec.timeout + 10*time.Second):
		t.Fatal("load did not end within its bounds")
	}
	return l.finish()
}

// newJars makes n users' cookie jars.
func newJars(n int) []http.CookieJar {
	jars := make([]http.CookieJar, n)
	for i := range jars {
		jars[i], _ = cookiejar.New(nil) // never fails without options
	}
	return jars
}

// tally counts results: requests, answered 200, failures by cause, and
// answers per app server and per L7 host (named by names, when given).
type tally struct {
	n, ok    int
	retried  int // requests Go's client sent again on a fresh connection
	causes   map[string]int
	apps     map[string]int
	l7       map[string]int
	firstErr string
}

func tallyOf(res []reqResult, l7Name func(string) string) tally {
	t := tally{causes: map[string]int{}, apps: map[string]int{}, l7: map[string]int{}}
	for _, r := range res {
		t.n++
		if r.conns > 1 {
			t.retried++
		}
		if r.app != "" {
			t.apps[r.app]++
		}
		if r.via != "" {
			name := r.via
			if l7Name != nil {
				name = l7Name(r.via)
			}
			t.l7[name]++
		}
		if r.ok() {
			t.ok++
			continue
		}
		t.causes[r.cause()]++
		if t.firstErr == "" {
			if r.err != nil {
				t.firstErr = r.err.Error()
			} else {
				t.firstErr = fmt.Sprintf("%s: status %d", r.path, r.status)
			}
		}
	}
	return t
}

func (t tally) failed() int { return t.n - t.ok }

func (t tally) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d requests, %d ok, %d failed", t.n, t.ok, t.failed())
	if len(t.causes) > 0 {
		fmt.Fprintf(&b, " %v (first: %s)", t.causes, t.firstErr)
	}
	if t.retried > 0 {
		fmt.Fprintf(&b, ", %d resent by the client on a fresh connection", t.retried)
	}
	fmt.Fprintf(&b, "; per L7 host %v", t.l7)
	return b.String()
}

package director_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"path"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/l7/config"
	"github.com/xlbproject/xlb/l7/director"
	"github.com/xlbproject/xlb/l7/pool"
	"github.com/xlbproject/xlb/l7/sticky"
)

// fastPath builds the director from the shipped example config and a
// /checkout request carrying a valid sticky cookie: route match, sticky hit,
// no cookie to re-issue.
func fastPath(tb testing.TB) (*director.Director, *director.Request) {
	tb.Helper()
	cfg, err := config.Load("../example.yaml")
	require.NoError(tb, err)
	d, err := director.New(cfg)
	require.NoError(tb, err)
	var dec director.Decision
	first := &director.Request{
		Method: []byte("POST"), Host: []byte("shop.example.com"), Path: []byte("/checkout/pay"),
		ClientAddr: netip.MustParseAddr("198.51.100.7"),
		Headers:    &headers{h: map[string][]byte{}, cookies: map[string][]byte{}},
	}
	d.Decide(first, &dec)
	require.NotNil(tb, dec.SetCookie)
	d.Done(&dec, director.Outcome{Status: 200})
	r := withCookie(&director.Request{
		Method: []byte("POST"), Host: []byte("shop.example.com"), Path: []byte("/checkout/pay"),
		ClientAddr: netip.MustParseAddr("198.51.100.7"),
		Headers:    &headers{h: map[string][]byte{"User-Agent": []byte("bench")}, cookies: map[string][]byte{}},
	}, "xlb_checkout", dec.SetCookie)
	return d, r
}

func TestDecideFastPathNoAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector randomises sync.Pool, so allocation counts are meaningless")
	}
	d, r := fastPath(t)
	var dec director.Decision
	allocs := testing.AllocsPerRun(1000, func() {
		d.Decide(r, &dec)
		if dec.Sticky != director.StickyHit {
			t.Fatalf("not a sticky hit: %v", dec.Sticky)
		}
		d.Done(&dec, director.Outcome{Status: 200})
	})
	assert.Zero(t, allocs)

	// Issuing a cookie (new client) reuses the Decision's buffer.
	fresh := &director.Request{Method: r.Method, Host: r.Host, Path: []byte("/checkout//pay/../pay"),
		Headers: &headers{h: map[string][]byte{}, cookies: map[string][]byte{}}}
	allocs = testing.AllocsPerRun(1000, func() {
		d.Decide(fresh, &dec)
		if dec.SetCookie == nil {
			t.Fatal("no cookie issued")
		}
		d.Done(&dec, director.Outcome{Status: 200})
	})
	assert.Zero(t, allocs)
}

func benchDirector(b *testing.B) {
	d, r := fastPath(b)
	var dec director.Decision
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		d.Decide(r, &dec)
		d.Done(&dec, director.Outcome{Status: 200})
	}
}

// naive is the baseline: what a straightforward implementation does —
// regexp routes on strings, path.Clean, a map of pools, a fresh HMAC and
// base64 decode per cookie, a random server.
type naive struct {
	routes  []naiveRoute
	pools   map[string][]*naiveServer
	secret  []byte
	maxAge  time.Duration
	rnd     *rand.Rand
	servers map[uint64]*naiveServer
}

type naiveRoute struct {
	re     *regexp.Regexp
	method map[string]bool
	pool   string
}

type naiveServer struct {
	name     string
	key      uint64
	inflight atomic.Int64
}

func newNaive(tb testing.TB) (*naive, string) {
	cfg, err := config.Load("../example.yaml")
	require.NoError(tb, err)
	n := &naive{pools: map[string][]*naiveServer{}, servers: map[uint64]*naiveServer{},
		secret: cfg.Sticky.Keys[0].Bytes, maxAge: time.Hour, rnd: rand.New(rand.NewPCG(1, 2))}
	for _, r := range cfg.Routes {
		nr := naiveRoute{re: regexp.MustCompile("^" + regexp.QuoteMeta(r.Match.PathPrefix) + "(/.*)?$"), pool: r.Pool}
		if len(r.Match.Methods) > 0 {
			nr.method = map[string]bool{}
			for _, m := range r.Match.Methods {
				nr.method[m] = true
			}
		}
		n.routes = append(n.routes, nr)
	}
	for _, p := range cfg.Pools {
		for i, s := range p.Servers {
			ns := &naiveServer{name: s.Name, key: uint64(i + 1)}
			n.pools[p.Name] = append(n.pools[p.Name], ns)
			n.servers[ns.key] = ns
		}
	}
	return n, n.cookie(n.pools["checkout"][0].key, time.Now())
}

func (n *naive) mac(payload []byte) []byte {
	m := hmac.New(sha256.New, n.secret)
	m.Write(payload)
	return m.Sum(nil)[:16]
}

func (n *naive) cookie(key uint64, now time.Time) string {
	payload := make([]byte, 16)
	binary.BigEndian.PutUint64(payload, uint64(now.Unix()))
	binary.BigEndian.PutUint64(payload[8:], key)
	return base64.RawURLEncoding.EncodeToString(append(payload, n.mac(payload)...))
}

func (n *naive) decide(method, host, rawPath, cookie string) *naiveServer {
	p := path.Clean(strings.SplitN(rawPath, "?", 2)[0])
	var pool string
	for _, r := range n.routes {
		if r.re.MatchString(p) && (r.method == nil || r.method[method]) {
			pool = r.pool
			break
		}
	}
	if pool == "" {
		return nil
	}
	if raw, err := base64.RawURLEncoding.DecodeString(cookie); err == nil && len(raw) == 32 &&
		hmac.Equal(n.mac(raw[:16]), raw[16:]) &&
		time.Since(time.Unix(int64(binary.BigEndian.Uint64(raw)), 0)) < n.maxAge {
		if s := n.servers[binary.BigEndian.Uint64(raw[8:])]; s != nil {
			return s
		}
	}
	cands := n.pools[pool]
	return cands[n.rnd.IntN(len(cands))]
}

func benchNaive(b *testing.B) {
	n, cookie := newNaive(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		n.run(cookie)
	}
}

var (
	naiveMethod = []byte("POST")
	naiveHost   = []byte("shop.example.com")
	naivePath   = []byte("/checkout/pay")
)

func (n *naive) run(cookie string) {
	// The conversions are the naive engine's: it works on strings.
	s := n.decide(string(naiveMethod), string(naiveHost), string(naivePath), cookie)
	s.inflight.Add(1)
	s.inflight.Add(-1)
}

// BenchmarkDecide measures the decision fast path (route match + sticky
// hit on the checkout pool) next to the naive baseline, and the other
// decision shapes.
func BenchmarkDecide(b *testing.B) {
	b.Run("xlb", benchDirector)
	b.Run("naive", benchNaive)
	variant := func(method, path string) func(b *testing.B) {
		return func(b *testing.B) {
			d, r := fastPath(b)
			r.Headers = &headers{h: map[string][]byte{}, cookies: map[string][]byte{}}
			r.Method, r.Path = []byte(method), []byte(path)
			var dec director.Decision
			b.ReportAllocs()
			for b.Loop() {
				d.Decide(r, &dec)
				d.Done(&dec, director.Outcome{Status: 200})
			}
		}
	}
	// A new checkout client: P2C pick plus a freshly signed cookie.
	b.Run("xlb-p2c-new-cookie", variant("POST", "/checkout/pay"))
	// Non-sticky pools: consistent hash on the path, least-conn.
	b.Run("xlb-hash", variant("GET", "/browse/shoes"))
	b.Run("xlb-least-conn", variant("POST", "/auth/login"))
	b.Run("xlb-404", variant("GET", "/nowhere"))
	// A client pinned to a server this host does not have yet: served by a
	// stand-in, cookie kept.
	b.Run("xlb-stand-in", func(b *testing.B) {
		d, r := fastPath(b)
		cfg, err := config.Load("../example.yaml")
		require.NoError(b, err)
		ring, err := sticky.NewRing([]sticky.Key{{ID: byte(cfg.Sticky.Keys[0].ID), Secret: cfg.Sticky.Keys[0].Bytes}})
		require.NoError(b, err)
		r.Headers.(*headers).cookies["xlb_checkout"] = ring.AppendValue(nil, pool.ServerKey("checkout", "not-here-yet"), time.Now())
		var dec director.Decision
		d.Decide(r, &dec)
		require.Equal(b, director.StickyPending, dec.Sticky)
		d.Done(&dec, director.Outcome{Status: 200})
		b.ReportAllocs()
		for b.Loop() {
			d.Decide(r, &dec)
			d.Done(&dec, director.Outcome{Status: 200})
		}
	})
}

// BenchmarkDecideVsNaive runs both in the same benchmark, interleaved in
// batches so that both see the same machine state, and reports the speed-up
// (naive time ÷ xlb time), which is what survives this machine's noise.
// One op is one batch of each.
func BenchmarkDecideVsNaive(b *testing.B) {
	const batch = 1000
	d, r := fastPath(b)
	n, cookie := newNaive(b)
	var dec director.Decision
	var xlbTime, naiveTime time.Duration
	for b.Loop() {
		start := time.Now()
		for range batch {
			d.Decide(r, &dec)
			d.Done(&dec, director.Outcome{Status: 200})
		}
		mid := time.Now()
		for range batch {
			n.run(cookie)
		}
		xlbTime += mid.Sub(start)
		naiveTime += time.Since(mid)
	}
	ops := float64(b.N * batch)
	b.ReportMetric(float64(xlbTime.Nanoseconds())/ops, "xlb-ns/decision")
	b.ReportMetric(float64(naiveTime.Nanoseconds())/ops, "naive-ns/decision")
	b.ReportMetric(float64(naiveTime)/float64(max(xlbTime, 1)), "speedup")
}

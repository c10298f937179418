package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/control/api"
	"github.com/xlbproject/xlb/l7/admin"
	"github.com/xlbproject/xlb/test/topo"
)

// The shop, end to end: the edge HA bed (a router running FRR with ECMP,
// edge hosts running `xlb daemon` with XDP and BGP) with the real
// `xlb proxy` on every L7 host, in front of the shop's app servers on an
// app host. Clients reach the VIP through the router; the L7 hosts answer
// them directly.
//
//	client ──► router (ECMP) ──► lb1 | lb2 ──IP-in-IP──► l7-1 … l7-4 (xlb proxy) ──► app: checkout c1…c32, browse b1…b4, auth a1, a2
//	   ▲                                                     │
//	   └─────────────────────────────────────────────────────┘
const (
	shopEdges    = 2
	shopL7s      = 4
	shopInTable  = 2 // L7 hosts in the daemons' config; the others are added at run time
	shopCheckout = 8 // checkout servers in the proxies' config; up to 32 exist
	// shopFive is the checkout pool's consecutive_5xx: a failing server is
	// ejected by each proxy after this many 5xx in a row.
	shopFive     = 3
	shopShedding = 1000 // shedding.max_inflight outside the overload test
)

// appServer is one of the shop's app servers, run by the test in the app
// host's namespace. It names itself (X-App), its TCP peer (X-Via: the L7
// host that proxied the request) and the client address the proxy
// forwarded (X-Client), and counts what it answered per peer.
type appServer struct {
	name, pool string
	addr       netip.AddrPort
	// fail makes it answer 500 to everything; delay holds every answer.
	fail  atomic.Bool
	delay atomic.Int64
	// held counts requests being held by a ?delay= of their own.
	held atomic.Int64

	mu      sync.Mutex
	peers   map[netip.Addr]*appPeer
	clients map[string]int // X-Forwarded-For values seen
}

type appPeer struct{ reqs, errs int }

func (a *appServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		if a.fail.Load() {
			http.Error(w, "failing", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
		return
	}
	peer := netip.MustParseAddrPort(r.RemoteAddr).Addr()
	failing := a.fail.Load()
	a.mu.Lock()
	p := a.peers[peer]
	if p == nil {
		p = &appPeer{}
		a.peers[peer] = p
	}
	p.reqs++
	if failing {
		p.errs++
	}
	a.clients[r.Header.Get("X-Forwarded-For")]++
	a.mu.Unlock()
	w.Header().Set("X-App", a.name)
	w.Header().Set("X-Via", peer.String())
	w.Header().Set("X-Client", r.Header.Get("X-Forwarded-For"))
	if failing {
		http.Error(w, "failing", http.StatusInternalServerError)
		return
	}
	delay := time.Duration(a.delay.Load())
	if d, err := time.ParseDuration(r.URL.Query().Get("delay")); err == nil {
		delay = d
		a.held.Add(1)
		defer a.held.Add(-1)
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if strings.HasPrefix(r.URL.Path, "/stream") {
		a.stream(w, r, peer)
		return
	}
	fmt.Fprintf(w, "app=%s path=%s\n", a.name, r.URL.Path)
}

// stream writes a line naming the proxying L7 host every 200 ms until
// the client goes away (bounded: two minutes).
func (a *appServer) stream(w http.ResponseWriter, r *http.Request, peer netip.Addr) {
	f, _ := w.(http.Flusher)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	end := time.After(2 * time.Minute)
	for seq := 0; ; seq++ {
		if _, err := fmt.Fprintf(w, "tick %d %s\n", seq, peer); err != nil {
			return
		}
		f.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-end:
			return
		case <-tick.C:
		}
	}
}

// served is what the server answered: per peer, requests and 5xx.
func (a *appServer) served() map[netip.Addr]appPeer {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := map[netip.Addr]appPeer{}
	for k, v := range a.peers {
		out[k] = *v
	}
	return out
}

type shopBed struct {
	*haBed
	app  *topo.Host
	apps []*appServer // checkout c1…c32, browse b1…b4, auth a1, a2
	// maxInflight is shedding.max_inflight in the proxies' config files.
	maxInflight int
	// stopped L7 hosts' proxies do not run any more.
	stopped map[*ctlL7]bool
}

// newShopBed builds the shop and waits until every edge host is used by
// the router and has the configured L7 hosts active.
func newShopBed(t *testing.T) *shopBed {
	t.Helper()
	b := &shopBed{
		haBed: newHABed(t, haOptions{hold: haHold, edges: shopEdges, l7s: shopL7s, inTable: shopInTable, proxied: true,
			// A little slower than the defaults, so that a busy machine
			// does not flap healthy hosts; the proxies' drain delay (2s)
			// covers the detection time (≈ 2 × 330ms + 250ms).
			health: "  interval: 300ms\n  timeout: 250ms\n"}),
		maxInflight: shopShedding,
		stopped:     map[*ctlL7]bool{},
	}
	var err error
	b.app, err = b.tp.AddHost(topo.HostConfig{Name: "app"})
	require.NoError(t, err)
	port := uint16(9000)
	for _, pool := range []struct {
		name, prefix string
		n            int
	}{{"checkout", "c", 32}, {"browse", "b", 4}, {"auth", "a", 2}} {
		for i := 1; i <= pool.n; i++ {
			port++
			a := &appServer{name: fmt.Sprintf("%s%d", pool.prefix, i), pool: pool.name,
				addr: netip.AddrPortFrom(b.app.Addr4, port), peers: map[netip.Addr]*appPeer{}, clients: map[string]int{}}
			ln, err := b.app.Listen("tcp", a.addr.String())
			require.NoError(t, err)
			srv := &http.Server{Handler: a, ReadHeaderTimeout: 5 * time.Second}
			go func() { _ = srv.Serve(ln) }()
			t.Cleanup(func() { _ = srv.Close() })
			b.apps = append(b.apps, a)
		}
	}
	for _, l := range b.l7 {
		l.stopProxy = runProxy(t, b.bin, b.dir, l, b.proxyYAML(l))
	}
	for _, lb := range b.lbs {
		b.startLB(t, lb)
	}
	b.waitRouterUses(t, b.lbs)
	for _, l := range b.l7[:shopInTable] {
		b.waitEdges(t, l, api.StateActive)
	}
	return b
}

// proxyYAML is l's proxy config: the shop's routes and pools, the first
// shopCheckout checkout servers, one sticky key ring on every host.
func (b *shopBed) proxyYAML(l *ctlL7) string {
	pools := map[string][]string{}
	for _, a := range b.apps {
		if a.pool == "checkout" && len(pools["checkout"]) == shopCheckout {
			continue
		}
		pools[a.pool] = append(pools[a.pool], fmt.Sprintf("      - {name: %s, addr: %q}", a.name, a.addr))
	}
	return fmt.Sprintf(`listeners:
  - name: http
    addr: "%s:80"
admin:
  addr: "%s:%d"
  socket: %q
shutdown:
  drain_delay: 2s
sticky:
  keys:
    - {id: 1, secret: "dGVzdC1vbmx5LWtleS1kby1ub3QtdXNlLWluLXByb2Q="}
shedding:
  max_inflight: %d
routes:
  - {name: checkout, match: {path_prefix: /checkout}, pool: checkout, priority: critical}
  - {name: browse, match: {path_prefix: /browse}, pool: browse, priority: low}
  - {name: products, match: {path_prefix: /products}, pool: browse, priority: low}
  - {name: auth, match: {path_prefix: /auth}, pool: auth}
  - {name: stream, match: {path_prefix: /stream}, pool: browse, stream_responses: true, timeouts: {response: 150s}}
pools:
  - name: checkout
    policy: p2c
    sticky: {cookie: xlb_checkout, max_age: 1h}
    health:
      # A proxy that sees the pool's failing server answer 5xx ejects it
      # for longer than the test; one that does not (its users moved
      # away) takes it out by the active check.
      active: {path: /healthz, interval: 1s, timeout: 500ms, rise: 1, fall: 2}
      passive: {consecutive_5xx: %d, consecutive_errors: 3, base_ejection: 60s, max_ejection: 120s}
    servers:
%s
  - name: browse
    policy: round_robin
    servers:
%s
  - name: auth
    policy: least_conn
    servers:
%s
`, b.vip, l.host.Addr4, ctlAdminPort, proxySocket(b.dir, l), b.maxInflight, shopFive,
		strings.Join(pools["checkout"], "\n"), strings.Join(pools["browse"], "\n"), strings.Join(pools["auth"], "\n"))
}

// target is the VIP's HTTP address.
func (b *shopBed) target() netip.AddrPort { return netip.AddrPortFrom(b.vip, haHTTPPort) }

// vipKey is the VIP as the CLI writes it.
func (b *shopBed) vipKey() string { return b.target().String() + "/tcp" }

// liveL7 are the L7 hosts whose proxy runs.
func (b *shopBed) liveL7() []*ctlL7 {
	var out []*ctlL7
	for _, l := range b.l7 {
		if !b.stopped[l] {
			out = append(out, l)
		}
	}
	return out
}

// servingL7 are the live L7 hosts the first live edge host's table sends
// new flows to.
func (b *shopBed) servingL7(t *testing.T) []*ctlL7 {
	t.Helper()
	v, err := b.live()[0].api.GetVIP(context.Background(), api.VIPKey{Addr: b.vip, Port: haHTTPPort, Proto: api.ProtoTCP})
	require.NoError(t, err)
	var out []*ctlL7
	for _, l := range b.liveL7() {
		for _, be := range v.Backends {
			if be.Addr == l.host.Addr4 && be.State == api.StateActive && be.TableSlots > 0 {
				out = append(out, l)
			}
		}
	}
	require.NotEmpty(t, out)
	return out
}

// l7Name names the L7 host with address addr (an X-Via value).
func (b *shopBed) l7Name(addr string) string {
	for _, l := range b.l7 {
		if l.host.Addr4.String() == addr {
			return l.host.Name
		}
	}
	return addr
}

func (b *shopBed) appServer(name string) *appServer {
	for _, a := range b.apps {
		if a.name == name {
			return a
		}
	}
	return nil
}

func (b *shopBed) pool(name string) []*appServer {
	var out []*appServer
	for _, a := range b.apps {
		if a.pool == name {
			out = append(out, a)
		}
	}
	return out
}

// cli runs the xlb CLI and returns its output; it must succeed.
func (b *shopBed) cli(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, b.bin, args...).CombinedOutput()
	require.NoError(t, err, "xlb %s: %s", strings.Join(args, " "), out)
	return string(out)
}

// waitEdges waits until every live edge host's daemon has l in state on
// the HTTP VIP, with its installed table agreeing: slots for an active
// host, none for any other.
func (b *shopBed) waitEdges(t *testing.T, l *ctlL7, state string) {
	t.Helper()
	key := api.VIPKey{Addr: b.vip, Port: haHTTPPort, Proto: api.ProtoTCP}
	for _, lb := range b.live() {
		var last []api.Backend
		require.Eventually(t, func() bool {
			v, err := lb.api.GetVIP(context.Background(), key)
			if err != nil {
				return false
			}
			last = v.Backends
			for _, be := range v.Backends {
				if be.Addr == l.host.Addr4 {
					return be.State == state && (be.TableSlots > 0) == (state == api.StateActive)
				}
			}
			return false
		}, 30*time.Second, 10*time.Millisecond, "%s: %s never became %s: %+v", lb.host.Name, l.host.Name, state, &last)
	}
}

// newFlows reads every live edge host's new-flow counter of the HTTP VIP.
func (b *shopBed) newFlows(t *testing.T) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for _, lb := range b.live() {
		out[lb.host.Name] = vipStats(t, lb, haHTTPPort).NewFlows
	}
	return out
}

// flowsSince is newFlows minus before.
func (b *shopBed) flowsSince(t *testing.T, before map[string]uint64) map[string]uint64 {
	t.Helper()
	out := b.newFlows(t)
	for k := range out {
		out[k] -= before[k]
	}
	return out
}

// proxyAdmin is a client of l's proxy admin socket.
func (b *shopBed) proxyAdmin(t *testing.T, l *ctlL7) *admin.Client {
	t.Helper()
	c := admin.NewClient(proxySocket(b.dir, l), 10*time.Second)
	t.Cleanup(c.Close)
	return c
}

// serverState is the state l's proxy gives server of pool.
func (b *shopBed) serverState(t *testing.T, l *ctlL7, pool, server string) string {
	t.Helper()
	s, err := b.proxyAdmin(t, l).Server(context.Background(), pool, server, 0)
	require.NoError(t, err)
	return s.State
}

// setShedding writes max_inflight into every live proxy's config file
// and reloads it with `xlb proxy reload`.
func (b *shopBed) setShedding(t *testing.T, maxInflight int) {
	t.Helper()
	b.maxInflight = maxInflight
	for _, l := range b.liveL7() {
		require.NoError(t, os.WriteFile(proxyConfig(b.dir, l), []byte(b.proxyYAML(l)), 0o600))
		b.cli(t, "proxy", "reload", "--proxy", proxySocket(b.dir, l))
	}
}

// metric sums the values of every series of l's proxy's /metrics whose
// line starts with prefix (a name and, optionally, the start of its
// labels in exposition order).
func (b *shopBed) metric(t *testing.T, l *ctlL7, prefix string) float64 {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: l.host.Dialer()}}
	resp, err := hc.Get(fmt.Sprintf("http://%s/metrics", netip.AddrPortFrom(l.host.Addr4, ctlAdminPort)))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	sum := 0.0
	for line := range strings.Lines(string(body)) {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		var v float64
		_, err := fmt.Sscan(line[strings.LastIndexByte(strings.TrimSpace(line), ' ')+1:], &v)
		require.NoError(t, err, "metric line %q", line)
		sum += v
	}
	return sum
}

// startHTTPStreams opens n long-lived streamed responses through the VIP
// (GET /stream: an app server line every 200 ms, forwarded as it comes by
// the proxy); a stream that errs, stalls or changes L7 host is broken.
func (b *shopBed) startHTTPStreams(t *testing.T, n int) (*streams, []streamFlow) {
	t.Helper()
	var mu sync.Mutex
	var flows []streamFlow
	s := openStreams(t, n, 0, func(ctx context.Context, i int) (streamConn, error) {
		c, err := b.client.DialContext(ctx, "tcp", b.target().String())
		if err != nil {
			return nil, err
		}
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := fmt.Fprintf(c, "GET /stream?n=%d HTTP/1.1\r\nHost: shop\r\n\r\n", i); err != nil {
			c.Close()
			return nil, err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			c.Close()
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			c.Close()
			return nil, fmt.Errorf("stream %d: status %d", i, resp.StatusCode)
		}
		mu.Lock()
		flows = append(flows, streamFlow{src: c.LocalAddr().(*net.TCPAddr).AddrPort(), l7: netip.MustParseAddr(resp.Header.Get("X-Via"))})
		mu.Unlock()
		return &httpStream{Conn: c, body: bufio.NewReader(resp.Body), l7Name: b.l7Name}, nil
	})
	return s, flows
}

// streamFlow is a stream's connection: its client address and L7 host.
type streamFlow struct {
	src netip.AddrPort
	l7  netip.Addr
}

// httpStream reads one line of a streamed response per round.
type httpStream struct {
	net.Conn
	body   *bufio.Reader
	l7Name func(string) string
}

func (h *httpStream) round(int) (string, error) {
	_ = h.SetDeadline(time.Now().Add(20 * time.Second))
	line, err := h.body.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("read: %w", err)
	}
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "tick" {
		return "", fmt.Errorf("line %q", line)
	}
	return h.l7Name(f[2]), nil
}

// flowPorts asks lb which L7 host the data path picks for new flows from
// the client's ports from, from+1, ... (n of them).
func (b *shopBed) flowPorts(t *testing.T, lb *haLB, from uint16, n int) ([]netip.AddrPort, map[netip.AddrPort]netip.Addr) {
	t.Helper()
	key := api.VIPKey{Addr: b.vip, Port: haHTTPPort, Proto: api.ProtoTCP}
	var srcs []netip.AddrPort
	to := map[netip.AddrPort]netip.Addr{}
	for p := range n {
		src := netip.AddrPortFrom(b.client.Addr4, from+uint16(p))
		ans, err := lb.api.Flow(context.Background(), api.FlowQuery{Src: src, VIP: key})
		require.NoError(t, err)
		require.True(t, ans.Backend.IsValid(), "no backend for %s", src)
		srcs = append(srcs, src)
		to[src] = ans.Backend
	}
	return srcs, to
}

// tablesAgree counts, of n new flows from the client's ports from, from+1,
// ..., those that every live edge host sends to the same L7 host.
func (b *shopBed) tablesAgree(t *testing.T, from uint16, n int) int {
	t.Helper()
	live := b.live()
	_, want := b.flowPorts(t, live[0], from, n)
	agree := n
	for _, lb := range live[1:] {
		_, got := b.flowPorts(t, lb, from, n)
		for src, be := range want {
			if got[src] != be {
				agree--
			}
		}
	}
	return agree
}

// assertServedOnly checks that requests of res were answered only by
// servers of the pool their path routes to.
func (b *shopBed) assertServedOnly(t *testing.T, res []reqResult) {
	t.Helper()
	for _, r := range res {
		if r.app == "" {
			continue
		}
		want := "browse"
		switch {
		case strings.HasPrefix(r.path, "/checkout"):
			want = "checkout"
		case strings.HasPrefix(r.path, "/auth"):
			want = "auth"
		}
		a := b.appServer(r.app)
		if assert.NotNil(t, a, "unknown app server %q", r.app) {
			assert.Equal(t, want, a.pool, "%s answered by %s", r.path, r.app)
		}
	}
}

// names lists the L7 hosts' names.
func names(ls []*ctlL7) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.host.Name)
	}
	return slices.Sorted(slices.Values(out))
}

// explainFailures logs the first failed requests of res with where every
// live edge host would send each one's connection now (its connection
// entry or its Maglev slot), so that a failure can be told apart as the
// edge's (hosts disagreeing, an entry held for a removed L7 host) or the
// proxy's and app's (the times match their logs).
func (b *shopBed) explainFailures(t *testing.T, res []reqResult) {
	t.Helper()
	key := api.VIPKey{Addr: b.vip, Port: haHTTPPort, Proto: api.ProtoTCP}
	shown := 0
	for _, r := range res {
		if r.ok() {
			continue
		}
		if shown++; shown > 10 {
			return
		}
		line := fmt.Sprintf("failed: %s from %v at %s after %v: %s (%v)", r.path, r.src, r.start.Format("15:04:05.000"),
			r.end.Sub(r.start).Round(time.Millisecond), r.cause(), r.err)
		for _, lb := range b.live() {
			if !r.src.IsValid() {
				break // no connection was made
			}
			ans, err := lb.api.Flow(context.Background(), api.FlowQuery{Src: r.src, VIP: key})
			if err != nil {
				line += fmt.Sprintf("; %s: %v", lb.host.Name, err)
				continue
			}
			line += fmt.Sprintf("; %s sends it to %s by %s", lb.host.Name, b.l7Name(ans.Backend.String()), ans.Via)
		}
		t.Log(line)
	}
}

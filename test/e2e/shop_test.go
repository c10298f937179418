package e2e

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/control/api"
	"github.com/xlbproject/xlb/test/shopload"
)

// shopPaths are the shop's routes, one of each.
var shopPaths = []string{"/browse", "/products/7", "/auth", "/checkout/cart", "/checkout"}

// TestShop runs the shop end to end — client, router (ECMP), two edge
// hosts (xlb daemon, XDP, BGP), L7 hosts (xlb proxy), app servers — and
// puts it through what a flash sale does to it, one subtest per item of
// the end-to-end list in docs/testing.md, numbered as there. The
// subtests share the bed and run in an order that builds on the one
// before: 2 → 4 L7 hosts, 8 → 32 checkout servers, then the faults, which
// leave fewer hosts for the next. Each prints its figures; assertions are
// on counts, never on times.
func TestShop(t *testing.T) {
	b := newShopBed(t)

	t.Run("1 every route reaches its pool through router, XDP and an L7 host; the app sees the client", func(t *testing.T) {
		before := b.newFlows(t)
		clients := b.clientsSeen()
		const n = 250
		res := startLoad(t, loadSpec{host: b.client, target: b.target(), paths: shopPaths, rate: 100, max: n}).wait(t)
		flows := b.flowsSince(t, before)
		tl := tallyOf(res, b.l7Name)
		pools := map[string]map[string]int{}
		for _, r := range res {
			assert.True(t, r.ok(), "%s: %v (status %d)", r.path, r.err, r.status)
			assert.Equal(t, b.client.Addr4.String(), r.client, "%s: the app server's X-Forwarded-For is the client", r.path)
			if a := b.appServer(r.app); a != nil {
				if pools[r.path] == nil {
					pools[r.path] = map[string]int{}
				}
				pools[r.path][a.pool]++
			}
		}
		b.assertServedOnly(t, res)
		seen := b.clientsSeen()
		for k := range seen {
			seen[k] -= clients[k]
			if seen[k] == 0 {
				delete(seen, k)
			}
		}
		var total uint64
		for _, v := range flows {
			total += v
		}
		t.Logf("%s; pools per route %v; new flows per edge host %v; client addresses the app servers saw %v", tl, pools, flows, seen)
		assert.Equal(t, n, tl.ok)
		assert.Equal(t, map[string]int{b.client.Addr4.String(): n}, seen, "every app server saw the client's own address")
		for _, lb := range b.live() {
			assert.Positive(t, flows[lb.host.Name], "edge host %s took new flows", lb.host.Name)
		}
		assert.GreaterOrEqual(t, total, uint64(n), "every connection went through XDP on an edge host")
		assert.Equal(t, names(b.l7[:shopInTable]), slices.Sorted(maps.Keys(tl.l7)), "the L7 hosts in the table answered")
	})

	t.Run("4 scale-out from 2 to 4 L7 hosts while 100 streams flow: none broken", func(t *testing.T) {
		s, _ := b.startHTTPStreams(t, 100)
		before := s.hostCounts()
		start := time.Now()
		for _, lb := range b.live() {
			for _, l := range b.l7[shopInTable:] {
				b.cli(t, "backend", "add", b.vipKey(), l.host.Addr4.String(), "--socket", lb.socket)
			}
		}
		for _, l := range b.l7[shopInTable:] {
			b.waitEdges(t, l, api.StateActive)
		}
		took := time.Since(start)
		tl := tallyOf(startLoad(t, loadSpec{host: b.client, target: b.target(), paths: shopPaths, rate: 100, max: 200}).wait(t), b.l7Name)
		moved := s.roundsDuring(time.Second)
		broken := s.finish(t)
		t.Logf("xlb backend add of 2 L7 hosts on %d edge hosts: active everywhere after %v; 100 streams (per L7 host %v), %d lines streamed, %d in the last second, %d broken; new connections after: %s",
			len(b.live()), took.Round(time.Millisecond), before, s.rounds.Load(), moved, broken, tl)
		assert.Zero(t, broken)
		assert.Positive(t, moved, "streams still flowing")
		assert.Subset(t, names(b.l7[:shopInTable]), slices.Collect(maps.Keys(before)))
		assert.Len(t, before, shopInTable, "the streams started on the first L7 hosts")
		assert.Zero(t, tl.failed())
		assert.Equal(t, names(b.l7), slices.Sorted(maps.Keys(tl.l7)), "new connections reach all 4 L7 hosts")
	})

	t.Run("2 sticky checkout holds across L7 hosts and edge hosts, each request on a new connection", func(t *testing.T) {
		const users, each = 30, 8
		before := b.newFlows(t)
		res := startLoad(t, loadSpec{host: b.client, target: b.target(), paths: []string{"/checkout"}, rate: 100,
			max: users * each, jars: newJars(users)}).wait(t)
		flows := b.flowsSince(t, before)
		tl := tallyOf(res, b.l7Name)
		apps := map[int]map[string]bool{}
		l7s := map[int]map[string]bool{}
		ports := map[netip.AddrPort]bool{}
		for _, r := range res {
			if apps[r.user] == nil {
				apps[r.user], l7s[r.user] = map[string]bool{}, map[string]bool{}
			}
			apps[r.user][r.app] = true
			l7s[r.user][r.via] = true
			ports[r.src] = true
		}
		kept, crossed := 0, 0
		for u := range users {
			if len(apps[u]) == 1 {
				kept++
			}
			if len(l7s[u]) > 1 {
				crossed++
			}
		}
		t.Logf("%d users × %d requests: %s; %d kept their checkout server, %d of them through more than one L7 host; %d source ports; new flows per edge host %v",
			users, each, tl, kept, crossed, len(ports), flows)
		assert.Equal(t, users*each, tl.ok)
		assert.Equal(t, users, kept, "every user kept its checkout server")
		assert.Positive(t, crossed, "users were moved between L7 hosts")
		// Every request on a new connection: each is a new flow at the
		// edge (a retransmitted SYN may count twice). Distinct source
		// ports would undercount: the client may reuse a port at once
		// where the other side closed first.
		var newFlows uint64
		for _, n := range flows {
			newFlows += n
		}
		assert.GreaterOrEqual(t, newFlows, uint64(users*each), "every request on a new connection")
		for _, lb := range b.live() {
			assert.Positive(t, flows[lb.host.Name], "edge host %s carried some of the connections", lb.host.Name)
		}
	})

	t.Run("5 checkout grows from 8 to 32 servers through the CLI under shop load: no request fails", func(t *testing.T) {
		var started atomic.Int64
		cfg := shopload.Config{Target: "http://" + b.target().String(), Rate: 15, Users: 300, Duration: 10 * time.Second,
			Think: 20 * time.Millisecond, Reopen: 2, Dial: b.client.DialContext, Seed: 5,
			Progress: func(s shopload.Snapshot) { started.Store(int64(s.Started)) }}
		var sum *shopload.Summary
		var runErr error
		done := make(chan struct{})
		go func() { defer close(done); sum, runErr = shopload.Run(context.Background(), cfg) }()
		require.Eventually(t, func() bool { return started.Load() >= 10 }, 30*time.Second, 20*time.Millisecond)

		// What the proxies did with the cookies during the change: a
		// client whose cookie they rewrote to another server (repin, or
		// unknown_server and a new pin) left its server for good; a
		// stand-in (pending) kept the cookie.
		stickyCounts := func() (repinned, pending float64) {
			for _, l := range b.liveL7() {
				repinned += b.metric(t, l, `xlb_l7_sticky_total{pool="checkout",result="repin"}`) +
					b.metric(t, l, `xlb_l7_sticky_rejected_total{pool="checkout",reason="unknown_server"}`)
				pending += b.metric(t, l, `xlb_l7_sticky_total{pool="checkout",result="pending"}`)
			}
			return repinned, pending
		}
		repinned0, pending0 := stickyCounts()
		var added []string
		newServers := map[string]bool{}
		for _, a := range b.pool("checkout")[shopCheckout:] {
			added = append(added, a.name+"="+a.addr.String())
			newServers[a.name] = true
		}
		start := time.Now()
		for _, l := range b.liveL7() {
			out := b.cli(t, append([]string{"pool", "server", "add", "checkout"}, append(added, "--proxy", proxySocket(b.dir, l))...)...)
			assert.Contains(t, out, "24 servers added to pool checkout", "%s", out)
		}
		took := time.Since(start)
		for _, l := range b.liveL7() {
			p, err := b.proxyAdmin(t, l).Pool(context.Background(), "checkout")
			require.NoError(t, err)
			assert.Len(t, p.Servers, 32, "%s", l.host.Name)
			assert.Equal(t, 32, p.Available, "%s: every checkout server takes new clients", l.host.Name)
		}
		select {
		case <-done:
		case <-time.After(cfg.Duration + 30*time.Second):
			t.Fatal("shop load did not end")
		}
		require.NoError(t, runErr)
		var out strings.Builder
		require.NoError(t, sum.WriteText(&out))
		onNew := 0
		for app, n := range sum.AppServers {
			if newServers[app] {
				onNew += n
			}
		}
		// New users after the change are spread over all 32.
		pins := startLoad(t, loadSpec{host: b.client, target: b.target(), paths: []string{"/checkout"}, rate: 100, max: 64,
			jars: newJars(64)}).wait(t)
		pinnedNew := map[string]int{}
		for _, r := range pins {
			if newServers[r.app] {
				pinnedNew[r.app]++
			}
		}
		repinned, pending := stickyCounts()
		repinned, pending = repinned-repinned0, pending-pending0
		t.Logf("xlb pool server add of 24 checkout servers on %d L7 hosts took %v; %d requests answered by the new servers during the load; 64 new users after: %d pinned to %d distinct new servers; %d of %d users answered by more than one checkout server during the change; cookies rewritten to another server: %v, requests served by a stand-in with the cookie kept: %v; shop load:\n%s",
			len(b.liveL7()), took.Round(time.Millisecond), onNew, sumValues(pinnedNew), len(pinnedNew), sum.Sticky.Moved, sum.Sticky.Users, repinned, pending, out.String())
		assert.Empty(t, sum.Errors, "no request failed")
		assert.Zero(t, sum.Conns.Broken)
		assert.Equal(t, sum.Users.Started, sum.Users.Finished)
		// The servers are added one L7 host after the other: a user pinned
		// to a new server by a host that has it, and sent next to one
		// that does not have it yet, is served there by a stand-in and
		// keeps its cookie, so no proxy re-pins anyone. Such a user was
		// answered by two servers; no user pinned to a server every host
		// knows may be.
		assert.Zero(t, repinned, "no cookie rewritten to another server during the change")
		for first, n := range sum.Sticky.MovedFrom {
			assert.True(t, newServers[first], "only users pinned to a new server during the change move: %d from %s (%v)", n, first, sum.Sticky.Examples)
		}
		assert.Zero(t, tallyOf(pins, nil).failed())
		assert.Positive(t, sumValues(pinnedNew), "new users are pinned to the new servers too")
	})

	t.Run("7 a checkout server starts failing: taken out by every proxy, its users re-pinned, 5xx within the ejection threshold", func(t *testing.T) {
		const users = 40
		jars := newJars(users)
		// One request at a time: a proxy ejects the server after shopFive
		// 5xx in a row, so with nothing else in flight no proxy can let
		// more through.
		spec := loadSpec{host: b.client, target: b.target(), paths: []string{"/checkout"}, rate: 100, workers: 1, jars: jars}
		pin := spec
		pin.max = users
		pinned := map[int]string{}
		perServer := map[string]int{}
		for _, r := range startLoad(t, pin).wait(t) {
			require.True(t, r.ok(), "%v %d", r.err, r.status)
			pinned[r.user] = r.app
			perServer[r.app]++
		}
		// The server with the most users (at least two: 40 users, 32 servers).
		victim := ""
		for _, app := range slices.Sorted(maps.Keys(perServer)) {
			if perServer[app] > perServer[victim] {
				victim = app
			}
		}
		va := b.appServer(victim)
		var victimUsers []int
		for u, app := range pinned {
			if app == victim {
				victimUsers = append(victimUsers, u)
			}
		}
		live := b.liveL7()
		ejections := func() (n float64) {
			for _, l := range live {
				n += b.metric(t, l, `xlb_l7_ejections_total{pool="checkout",server="`+victim+`"}`)
			}
			return n
		}
		repins := func() (n float64) {
			for _, l := range live {
				n += b.metric(t, l, `xlb_l7_sticky_total{pool="checkout",result="repin"}`)
			}
			return n
		}
		ej0, rp0 := ejections(), repins()
		served0 := va.served()

		va.fail.Store(true)
		defer va.fail.Store(false)
		failAt := time.Now()
		l := startLoad(t, spec)
		states := map[string]string{}
		require.Eventually(t, func() bool {
			for _, l := range live {
				states[l.host.Name] = b.serverState(t, l, "checkout", victim)
			}
			for _, st := range states {
				if st != "ejected" && st != "down" {
					return false
				}
			}
			return true
		}, 60*time.Second, 50*time.Millisecond, "every proxy takes %s out: %v", victim, states)
		outAt := time.Now()
		l.waitMore(t, 4*users) // every user comes back at least four more times
		res := l.finish()
		va.fail.Store(false)

		// Count every 5xx: per L7 host as the clients saw them, and as the
		// failing server answered them.
		seen5xx := map[string]int{}
		var late5xx, other int
		answers := map[int][]string{}
		for _, r := range res {
			switch {
			case r.status == http.StatusInternalServerError:
				seen5xx[b.l7Name(r.via)]++
				if r.start.After(outAt) {
					late5xx++
				}
				assert.Equal(t, victim, r.app)
			case !r.ok():
				other++
			default:
				answers[r.user] = append(answers[r.user], r.app)
			}
		}
		answered5xx := map[string]int{}
		for peer, p := range va.served() {
			if n := p.errs - served0[peer].errs; n > 0 {
				answered5xx[b.l7Name(peer.String())] += n
			}
		}
		repinned := 0
		for _, u := range victimUsers {
			// Only the failing server answered 5xx: every answer a user
			// of it got is from the server it was re-pinned to, once.
			got := answers[u]
			if assert.GreaterOrEqual(t, len(got), 4, "user %d answered after the failure", u) &&
				assert.NotEqual(t, victim, got[0], "user %d re-pinned", u) {
				assert.Equal(t, slices.Repeat([]string{got[0]}, len(got)), got, "user %d keeps its new server", u)
				repinned++
			}
		}
		for u, app := range pinned {
			if app == victim {
				continue
			}
			for _, got := range answers[u] {
				assert.Equal(t, app, got, "user %d of a healthy server keeps it", u)
			}
		}
		total5xx := sumValues(seen5xx)
		ejected := ejections() - ej0
		t.Logf("%s failing (%d of %d users pinned to it): every proxy took it out after %v (%v; passive ejections %v); %d requests after the failure, 5xx per L7 host %v (the server answered %v), %d after every proxy had it out, %d other failures; %d of %d users re-pinned (repins counted by the proxies: %v)",
			victim, len(victimUsers), users, outAt.Sub(failAt).Round(time.Millisecond), states, ejected, len(res), seen5xx, answered5xx,
			late5xx, other, repinned, len(victimUsers), repins()-rp0)
		assert.Equal(t, answered5xx, seen5xx, "every 5xx a client saw came from the failing server")
		for name, n := range seen5xx {
			assert.LessOrEqual(t, n, shopFive, "%s let through no more 5xx than its ejection threshold", name)
		}
		assert.LessOrEqual(t, total5xx, shopFive*len(live))
		assert.Zero(t, late5xx, "no 5xx once every proxy had the server out")
		assert.Zero(t, other)
		assert.Equal(t, len(victimUsers), repinned)
		assert.GreaterOrEqual(t, repins()-rp0, float64(len(victimUsers)))
	})

	t.Run("9 overload on slow browse servers: /browse is shed, /checkout keeps at least 99 % success", func(t *testing.T) {
		// Per proxy: low (browse) is shed from 14 requests in flight,
		// critical (checkout) only at 20. 80 browse clients on keep-alive
		// connections over at most 4 L7 hosts put 20 on one of them, each
		// waiting a second for its answer; 4 checkout clients add at most
		// 4 to a host's 14.
		b.setShedding(t, 20)
		defer b.setShedding(t, shopShedding)
		for _, a := range b.pool("browse") {
			a.delay.Store(int64(time.Second))
		}
		defer func() {
			for _, a := range b.pool("browse") {
				a.delay.Store(0)
			}
		}()
		shed := func() (n float64) {
			for _, l := range b.liveL7() {
				n += b.metric(t, l, `xlb_l7_shed_total{priority="low",route="browse"}`)
			}
			return n
		}
		shed0 := shed()
		browse := startLoad(t, loadSpec{host: b.client, target: b.target(), paths: []string{"/browse"}, rate: 150, workers: 80,
			keepAlive: true, maxTime: 60 * time.Second})
		checkout := startLoad(t, loadSpec{host: b.client, target: b.target(), paths: []string{"/checkout"}, rate: 40, workers: 4,
			keepAlive: true, max: 300})
		cres := checkout.wait(t)
		bres := browse.finish()
		ct, bt := tallyOf(cres, b.l7Name), tallyOf(bres, b.l7Name)
		shed503, withRetryAfter := 0, 0
		for _, r := range bres {
			if r.status == http.StatusServiceUnavailable {
				shed503++
				if r.retryAfter != "" {
					withRetryAfter++
				}
			}
		}
		counted := shed() - shed0
		t.Logf("checkout: %s (%.1f %% ok); browse: %s; shed by the proxies: %v", ct, 100*float64(ct.ok)/float64(ct.n), bt, counted)
		assert.GreaterOrEqual(t, float64(ct.ok), 0.99*float64(ct.n), "/checkout success at least 99 %%")
		assert.Positive(t, shed503, "/browse was shed")
		assert.Equal(t, shed503, withRetryAfter, "every shed answer says when to retry")
		assert.Equal(t, float64(shed503), counted, "every 503 the clients saw was a shed one")
		assert.Positive(t, bt.ok, "/browse is still served within its share")
		assert.Equal(t, shed503, bt.failed(), "browse fails only by shedding")
	})

	t.Run("6 restarts under load: no request fails", func(t *testing.T) {
		for _, step := range []struct {
			name string
			do   func(t *testing.T)
		}{
			{"every edge daemon restarted (SIGUSR2)", func(t *testing.T) {
				for _, lb := range b.live() {
					b.stopLB(t, lb, syscall.SIGUSR2)
					assert.Equal(t, 75, lb.exitCode, "%s: SIGUSR2 exits 75 (restart)", lb.host.Name)
					b.startLB(t, lb)
					b.waitAnnounced(t, lb)
				}
			}},
			{"an edge daemon killed (SIGKILL) and started again", func(t *testing.T) {
				lb := b.live()[0]
				b.stopLB(t, lb, syscall.SIGKILL)
				b.startLB(t, lb)
				b.waitAnnounced(t, lb)
				st, err := lb.api.Status(context.Background())
				require.NoError(t, err)
				assert.True(t, st.Adopted, "%s adopted its pinned data path", lb.host.Name)
			}},
			{"every xlb proxy reloaded", func(t *testing.T) {
				for _, l := range b.liveL7() {
					out := b.cli(t, "proxy", "reload", "--proxy", proxySocket(b.dir, l))
					assert.Contains(t, out, "config reloaded", "%s", out)
				}
			}},
			{"one xlb proxy stopped (SIGTERM)", func(t *testing.T) {
				serving := b.servingL7(t)
				victim := serving[len(serving)-1]
				assert.NoError(t, victim.termProxy(), "xlb proxy exits 0 after SIGTERM")
				b.stopped[victim] = true
				b.waitEdges(t, victim, api.StateDown)
			}},
		} {
			t.Run(step.name, func(t *testing.T) {
				fresh := startLoad(t, loadSpec{host: b.client, target: b.target(), paths: shopPaths, rate: 60, jars: newJars(20)})
				kept := startLoad(t, loadSpec{host: b.client, target: b.target(), paths: shopPaths, rate: 40, keepAlive: true})
				fresh.waitMore(t, 30)
				kept.waitMore(t, 30)
				start := time.Now()
				step.do(t)
				took := time.Since(start)
				fresh.waitMore(t, 30)
				kept.waitMore(t, 30)
				ft, kt := tallyOf(fresh.finish(), b.l7Name), tallyOf(kept.finish(), b.l7Name)
				t.Logf("%s (took %v): new connection per request: %s; keep-alive: %s", step.name, took.Round(time.Millisecond), ft, kt)
				assert.Zero(t, ft.failed())
				assert.Zero(t, kt.failed())
			})
		}
	})

	t.Run("3 an L7 host dies under load: only the requests it held or was sent before the edge took it out fail", func(t *testing.T) {
		lb := b.live()[0]
		serving := b.servingL7(t)
		require.GreaterOrEqual(t, len(serving), 2, "an L7 host to lose and one to survive it (item 6 alone stops one of the first two)")
		victim := serving[len(serving)-1]
		// Which L7 host each source port's new flow goes to, asked of the
		// data path before the failure (every edge host has the same
		// table).
		srcs, to := b.flowPorts(t, lb, 20000, 1500)
		hsrcs, hto := b.flowPorts(t, lb, 25000, 200)
		var held []netip.AddrPort
		heldOnVictim := 0
		for _, src := range hsrcs {
			onVictim := hto[src] == victim.host.Addr4
			if onVictim && heldOnVictim < 4 {
				held = append(held, src)
				heldOnVictim++
			} else if !onVictim && len(held)-heldOnVictim < 4 {
				held = append(held, src)
			}
		}
		require.Len(t, held, 8)
		load := startLoad(t, loadSpec{host: b.client, target: b.target(), paths: shopPaths, rate: 80, src: srcs})
		load.waitMore(t, 40)
		// Requests in flight on every host at the moment of the failure:
		// held by the app servers for longer than the test takes to kill.
		holds := startLoad(t, loadSpec{host: b.client, target: b.target(), paths: []string{"/browse?delay=5s"}, rate: 100,
			workers: len(held), src: held, timeout: 15 * time.Second})
		require.Eventually(t, func() bool {
			var n int64
			for _, a := range b.apps {
				n += a.held.Load()
			}
			return n == int64(len(held))
		}, 30*time.Second, 5*time.Millisecond, "held requests reach the app servers")
		killAt := time.Now()
		victim.stopProxy() // SIGKILL: the host's proxy is gone at once
		b.stopped[victim] = true
		b.waitEdges(t, victim, api.StateDown)
		outAt := time.Now()
		load.waitMore(t, 80)
		res := load.finish()
		hres := holds.wait(t)

		var inFlight, inFlightFailed, sentBefore, sentBeforeFailed, after, afterFailed, elsewhereFailed int
		for _, r := range res {
			src := srcs[r.i]
			onVictim := to[src] == victim.host.Addr4
			switch {
			case r.start.Before(killAt) && r.end.After(killAt) && onVictim:
				inFlight++
				if !r.ok() {
					inFlightFailed++
				}
			case !r.start.Before(killAt) && r.start.Before(outAt) && onVictim:
				sentBefore++
				if !r.ok() {
					sentBeforeFailed++
				}
			case r.start.After(outAt):
				after++
				if !r.ok() {
					afterFailed++
				}
			}
			if !r.ok() && (!onVictim || r.end.Before(killAt)) {
				elsewhereFailed++
				t.Logf("unexpected failure: %s from %s to %s: %v %d", r.path, src, to[src], r.err, r.status)
			}
		}
		heldFailed := map[bool]int{} // by whether the dead host held it
		for _, r := range hres {
			if !r.ok() {
				heldFailed[hto[held[r.i]] == victim.host.Addr4]++
			}
		}
		tl := tallyOf(res, b.l7Name)
		t.Logf("%s killed; out of every edge host's table after %v. Paced load: %s. Failed: %d of %d in flight to it at the kill, %d of %d sent to it before it left the table, %d of %d started after; held requests: %d of 4 on it failed, %d of 4 elsewhere",
			victim.host.Name, outAt.Sub(killAt).Round(time.Millisecond), tl, inFlightFailed, inFlight, sentBeforeFailed, sentBefore,
			afterFailed, after, heldFailed[true], heldFailed[false])
		assert.Zero(t, elsewhereFailed, "no request failed that was not on its way to the dead host")
		assert.Zero(t, afterFailed, "no request failed once the host had left the table")
		assert.Positive(t, after)
		assert.Equal(t, 4, heldFailed[true], "requests the dead host held failed")
		assert.Zero(t, heldFailed[false], "requests other hosts held were answered")
		assert.Equal(t, tl.failed(), inFlightFailed+sentBeforeFailed)
	})

	t.Run("8 an edge host is lost under load: the router withdraws it, no stream breaks", func(t *testing.T) {
		s, sflows := b.startHTTPStreams(t, 100)
		victim := b.live()[len(b.live())-1]
		agree := b.tablesAgree(t, 30000, 500)
		// Where the survivor would send each stream's packets: a stale
		// connection entry of an earlier connection on the same 5-tuple
		// used to send some to another L7 host (see TestTCPEntryAfterClose).
		survivor := b.live()[0]
		key := api.VIPKey{Addr: b.vip, Port: haHTTPPort, Proto: api.ProtoTCP}
		var elsewhere []string
		for _, f := range sflows {
			ans, err := survivor.api.Flow(context.Background(), api.FlowQuery{Src: f.src, VIP: key})
			require.NoError(t, err)
			if ans.Backend != f.l7 {
				elsewhere = append(elsewhere, fmt.Sprintf("%s on %s: to %s by %s", f.src, b.l7Name(f.l7.String()), b.l7Name(ans.Backend.String()), ans.Via))
			}
		}
		before := vipStats(t, victim, haHTTPPort).Packets
		s.roundsDuring(time.Second)
		share := vipStats(t, victim, haHTTPPort).Packets - before
		require.Positive(t, share, "the victim carries streams")
		gone := b.loseLB(t, victim)
		moved := s.roundsDuring(2 * time.Second)
		broken := s.finish(t)
		after := startLoad(t, loadSpec{host: b.client, target: b.target(), paths: shopPaths, rate: 100, max: 100}).wait(t)
		tl := tallyOf(after, b.l7Name)
		b.explainFailures(t, after)
		t.Logf("edge host %s lost (hold time %v): the router stopped using it after %v; 100 streams (per L7 host %v; %d packets a second through the lost host before; edge tables agree on %d of 500 flows; streams the survivor would send to another L7 host: %v), %d lines in 2 s after, %d broken; new connections after: %s",
			victim.host.Name, b.hold, gone.Round(time.Millisecond), s.hostCounts(), share, agree, elsewhere, moved, broken, tl)
		assert.Equal(t, 500, agree, "every edge host sends a flow to the same L7 host")
		assert.Zero(t, broken)
		assert.Positive(t, moved)
		assert.Zero(t, tl.failed())
	})
}

// clientsSeen sums the X-Forwarded-For values every app server saw.
func (b *shopBed) clientsSeen() map[string]int {
	out := map[string]int{}
	for _, a := range b.apps {
		a.mu.Lock()
		for k, v := range a.clients {
			out[k] += v
		}
		a.mu.Unlock()
	}
	return out
}

func sumValues[K comparable](m map[K]int) (n int) {
	for _, v := range m {
		n += v
	}
	return n
}

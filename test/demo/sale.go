package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/xlbproject/xlb/control/api"
	"github.com/xlbproject/xlb/l7/admin"
	"github.com/xlbproject/xlb/test/fleet"
	"github.com/xlbproject/xlb/test/shopload"
)

// The shape of the sale. Waits are generous: they end as soon as their
// condition holds, and only bound a machine that never gets there.
const (
	ramp       = 15 * time.Second // steady → sale and back
	window     = 8 * time.Second  // steady-state measurement
	settle     = 3 * time.Second  // load after a fault before counting it
	edgeSettle = 8 * time.Second  // TCP retransmits outlive the BGP hold time
	peakHold   = 25 * time.Second // the sale at full rate before the faults
	waitLimit  = 60 * time.Second
	errTarget  = 0.003 // the shop's error rate after moving to xlb
)

// figures are what the summary reports beyond the load generator's table.
type figures struct {
	saleReqs, saleErrs int
	saleCauses         map[string]int
	l7Table, l7Users   time.Duration
	l7Failed           int
	l7Causes           map[string]int
	appEject           time.Duration
	app5xx             int
	appVictim          string
	edgeWithdraw       time.Duration
	edgeBroken         int
	edgeErrs           int
	cpuSteady, cpuPeak usage
}

func (d *demo) loadConfig(peak, level float64, dur time.Duration, progress func(shopload.Snapshot)) shopload.Config {
	return shopload.Config{
		Target: "http://" + d.f.VIP.String(), Rate: peak, Level: level, Duration: dur, Grace: 15 * time.Second,
		Pages: 8, Think: 200 * time.Millisecond, Reopen: 6, Timeout: 60 * time.Second,
		Dial: d.f.Client.DialContext, Progress: progress,
	}
}

func progressLine(s shopload.Snapshot) string {
	var b strings.Builder
	var rps float64
	for _, r := range s.Routes {
		rps += r.PerSecond
	}
	fmt.Fprintf(&b, "load %5.0fs  users %3d  %4.0f req/s  p99 ms:", s.Elapsed.Seconds(), s.Active, rps)
	for _, r := range s.Routes {
		fmt.Fprintf(&b, " %s %.1f", strings.TrimPrefix(r.Route, "/"), float64(r.P99.Microseconds())/1000)
	}
	n := 0
	for _, v := range s.Errors {
		n += v
	}
	fmt.Fprintf(&b, "  errors %d", n)
	return b.String()
}

func (d *demo) sale(ctx context.Context) error {
	d.con.printf("xlb demo: a flash sale, end to end, in network namespaces %s-* on this machine", prefix)
	d.con.step("0. The site")
	f, err := fleet.New(ctx, fleet.Options{
		Bin: d.bin, Prefix: prefix, EdgeHosts: 3, L7Hosts: 3, Checkout: 4, Browse: 4, Progress: d.con,
	})
	if f != nil {
		d.f = f
	}
	if err != nil {
		return fmt.Errorf("build the site: %w", err)
	}
	d.con.printf("  edge hosts %s; L7 hosts %s; app servers %s", d.hostList(edgeHosts(f.Edges)), d.hostList(l7Hosts(f.L7s)), appRange(f.Apps))
	d.con.printf("  commands below run in %s (sockets lbN/xlb.sock, l7-N/proxy.sock)", f.Dir())

	load, err := shopload.Start(ctx, d.loadConfig(4*d.steady, 0.25, 10*time.Minute, func(s shopload.Snapshot) { d.con.progress(progressLine(s)) }))
	if err != nil {
		return err
	}
	d.load = load
	d.con.printf("  load: %.0f users/s arrive (Poisson); each browses, looks at 8 products, logs in, adds to cart, checks out,", d.steady)
	d.con.printf("  200 ms think time, a new connection every 6 requests, its own cookies")

	steps := []func(context.Context) error{d.steadyState, d.saleStarts, d.killL7, d.failApp, d.loseEdge, d.saleEnds}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return d.summary()
}

// 1. Steady state.
func (d *demo) steadyState(ctx context.Context) error {
	d.con.step("1. Steady state: %.0f users/s", d.steady)
	lb1 := d.f.Edges[0]
	if _, err := d.xlb(ctx, "--socket", d.sock(lb1.Socket), "status"); err != nil {
		return err
	}
	if err := sleep(ctx, 3*time.Second); err != nil { // every pool sees users
		return err
	}
	t0, c0 := d.load.Totals(), d.readCPU()
	if err := sleep(ctx, window); err != nil {
		return err
	}
	t1, c1 := d.load.Totals(), d.readCPU()
	d.figs.cpuSteady = c1.since(c0)
	w := t1.Sub(t0)

	d.con.cmd("xlb --socket lbN/xlb.sock stats -o json --interval 200ms   (each edge host)")
	flows := map[string]uint64{}
	for _, e := range d.f.Edges {
		r, err := xlbJSON[api.StatsRates](ctx, d, "--socket", d.sock(e.Socket), "stats", "--interval", "200ms")
		if err != nil {
			return err
		}
		for _, v := range r.Current.VIPs {
			if v.Key == d.f.Key {
				flows[e.Name] = v.NewFlows
			}
		}
	}
	d.con.check(allPositive(flows, names(edgeHosts(d.f.Edges))), "the router spreads flows over every edge host: new flows %s", tally(flows))
	l7 := d.byHost(w.L7s)
	d.con.check(allPositive(l7, names(l7Hosts(d.f.L7s))), "every L7 host serves: %s", tally(l7))
	d.con.check(allPositive(w.Apps, appNames(d.f.Apps)), "every app server serves: %s", tally(w.Apps))
	d.con.check(t1.StickyUsers > 0 && t1.StickyMoved == 0, "sticky checkout: %d users finished, every one kept its checkout server (%d moved)", t1.StickyUsers, t1.StickyMoved)
	d.con.check(w.ErrorCount() == 0, "%d requests in %s, %d failed; CPU: %s", w.Requests, window, w.ErrorCount(), d.figs.cpuSteady)
	return nil
}

// 2. The sale starts: load ×4, the app tier 8 → 32, a fourth L7 host.
func (d *demo) saleStarts(ctx context.Context) error {
	d.con.step("2. The sale starts: load ×4 over %s, app servers 8 → 32, a fourth L7 host", ramp)
	d.saleStart = d.load.Totals()
	rampDone := time.Now().Add(ramp)
	d.load.SetLevel(1, ramp)
	d.con.printf("  load: ramping to %.0f users/s", 4*d.steady)

	l7 := d.f.L7s[0]
	var added []*fleet.App
	for _, pool := range []string{fleet.PoolCheckout, fleet.PoolBrowse} {
		apps, err := d.f.AddApps(ctx, pool, 12)
		if err != nil {
			return err
		}
		added = append(added, apps...)
		args := []string{"--proxy", d.sock(l7.Socket), "pool", "server", "add", pool}
		for _, a := range apps {
			args = append(args, a.Name+"="+a.Addr.String())
		}
		d.con.printf("  started %s (each its own host)", appRange(apps))
		if _, err := d.xlb(ctx, args...); err != nil {
			d.con.check(false, "add %d servers to %s", len(apps), pool)
			return err
		}
	}
	d.added = added
	start := time.Now()
	d.con.cmd("xlb --proxy l7-N/proxy.sock pool list -o json   (each L7 host, until every server is up)")
	err := d.waitPools(ctx, 16)
	d.con.check(err == nil, "every L7 host has 16 checkout + 16 browse servers taking clients, %s after the add (one command, through etcd)%s", since(start), errIf(err))

	nl7, err := d.f.AddL7Host(ctx)
	if err != nil {
		return err
	}
	d.con.printf("  started %s (%s): xlb decap, xlb proxy (its pools come from the same etcd)", nl7.Name, nl7.Host.Addr4)
	if _, err := d.xlb(ctx, "--socket", d.sock(d.f.Edges[0].Socket), "backend", "add", d.f.Key.String(), nl7.Host.Addr4.String()); err != nil {
		d.con.check(false, "add %s to the VIP", nl7.Name)
		return err
	}
	start = time.Now()
	d.con.cmd("xlb --socket lbN/xlb.sock backend list " + d.f.Key.String() + " -o json   (each edge host, until it is in the table)")
	err = d.waitBackend(ctx, nl7.Host.Addr4.String(), func(b api.Backend) bool { return b.Healthy && b.TableSlots > 0 })
	d.con.check(err == nil, "%s is healthy and in the Maglev table of every edge host, %s after the add%s", nl7.Name, since(start), errIf(err))
	if _, err := d.xlb(ctx, "--socket", d.sock(d.f.Edges[1].Socket), "backend", "list", d.f.Key.String()); err != nil {
		return err
	}

	if err := sleep(ctx, time.Until(rampDone)); err != nil {
		return err
	}
	base := d.load.Totals()
	c0 := d.readCPU()
	all := appNames(d.f.Apps)
	var w shopload.Totals
	err = fleet.Wait(ctx, waitLimit, "answers from every app server and "+nl7.Name, func() error {
		w = d.load.Totals().Sub(base)
		if !allPositive(w.Apps, all) || w.L7s[nl7.Host.Addr4.String()] == 0 {
			return fmt.Errorf("%d of %d app servers answered", len(w.Apps), len(all))
		}
		return nil
	})
	if err == nil {
		err = sleep(ctx, peakHold-w.Elapsed) // the sale at full rate, and a CPU sample of it
	}
	d.figs.cpuPeak = d.readCPU().since(c0)
	w = d.load.Totals().Sub(base)
	d.con.check(allPositive(w.Apps, all), "at the sale's rate every one of the %d app servers serves (%d requests in %s)", len(all), w.Requests, w.Elapsed.Round(time.Second))
	l7s := d.byHost(w.L7s)
	d.con.check(allPositive(l7s, names(l7Hosts(d.f.L7s))), "every L7 host serves, %s included: %s", nl7.Name, tally(l7s))
	sofar := d.load.Totals().Sub(d.saleStart)
	d.con.check(sofar.ErrorCount() == 0, "scaling out under load: %d requests, %d failed; CPU at the sale's rate: %s", sofar.Requests, sofar.ErrorCount(), d.figs.cpuPeak)
	return err
}

// 3a. An L7 host dies.
func (d *demo) killL7(ctx context.Context) error {
	victim := d.f.L7s[1]
	d.con.step("3. Faults at the sale's rate")
	d.con.printf("  a) the L7 host %s dies", victim.Name)
	before := d.load.Totals()
	d.con.cmd(fmt.Sprintf("kill -9 %d   # xlb proxy on %s", victim.Proxy.Pid(), victim.Name))
	killed := time.Now()
	if err := d.f.KillProxy(victim); err != nil {
		return err
	}
	d.con.cmd("xlb --socket lbN/xlb.sock backend list " + d.f.Key.String() + " -o json   (each edge host, until it is out)")
	err := d.waitBackend(ctx, victim.Host.Addr4.String(), func(b api.Backend) bool { return !b.Healthy && b.TableSlots == 0 })
	out := time.Since(killed)
	d.figs.l7Table = out
	d.con.check(err == nil, "%s is down and out of every edge host's table %s after the kill%s", victim.Name, out.Round(10*time.Millisecond), errIf(err))
	if err := sleep(ctx, settle); err != nil {
		return err
	}
	w := d.load.Totals().Sub(before)
	d.figs.l7Failed, d.figs.l7Causes = w.ErrorCount(), w.Errors
	late := 0
	for _, f := range w.Failures {
		if f.End.After(killed) && f.End.Sub(killed) > d.figs.l7Users {
			d.figs.l7Users = f.End.Sub(killed)
		}
		if f.Start.After(killed.Add(out)) {
			late++
		}
	}
	d.con.printf("  %d requests failed (%s), the last %s after the kill: in flight on %s or sent to it before the edge hosts saw it die",
		w.ErrorCount(), causes(w.Errors), d.figs.l7Users.Round(10*time.Millisecond), victim.Name)
	d.con.check(late == 0, "no request started after the failover failed (%d did); %d requests in the %s after the kill", late, w.Requests, w.Elapsed.Round(time.Second))
	return nil
}

// 3b. An app server starts failing.
func (d *demo) failApp(ctx context.Context) error {
	// A shopper of our own, to follow one sticky session through it.
	jar, _ := cookiejar.New(nil)
	probe := &http.Client{Jar: jar, Timeout: 20 * time.Second, Transport: &http.Transport{DialContext: d.f.Client.DialContext, DisableKeepAlives: true}}
	pinned, code, err := d.post(ctx, probe, "/auth")
	if err != nil || code != http.StatusOK {
		return fmt.Errorf("probe shopper's log in: %d %v", code, err)
	}
	var victim *fleet.App
	for _, a := range d.f.Apps {
		if a.Name == pinned {
			victim = a
		}
	}
	if victim == nil {
		return fmt.Errorf("probe shopper pinned to unknown server %q", pinned)
	}
	d.figs.appVictim = victim.Name
	d.con.printf("  b) the checkout server %s starts failing; a shopper of ours logged in and is pinned to it", victim.Name)
	before := d.load.Totals()
	d.con.cmd(fmt.Sprintf("kill -USR1 %d   # app server %s answers 500 from now on", victim.Proc.Pid(), victim.Name))
	failed := time.Now()
	if err := victim.Fail(); err != nil {
		return err
	}
	d.con.cmd("xlb --proxy l7-N/proxy.sock pool show checkout -o json   (each L7 host, until it is out)")
	live := d.liveL7s()
	err = fleet.Wait(ctx, waitLimit, victim.Name+" out of every proxy's pool", func() error {
		for _, l := range live {
			p, err := xlbJSON[admin.Pool](ctx, d, "--proxy", d.sock(l.Socket), "pool", "show", fleet.PoolCheckout)
			if err != nil {
				return err
			}
			for _, s := range p.Servers {
				if s.Name == victim.Name && s.State != "ejected" && s.State != "down" {
					return fmt.Errorf("%s: %s is %s", l.Name, s.Name, s.State)
				}
			}
		}
		return nil
	})
	d.figs.appEject = time.Since(failed)
	d.con.check(err == nil, "%s is ejected on every L7 host %s after it started failing%s", victim.Name, d.figs.appEject.Round(10*time.Millisecond), errIf(err))
	now, code, err := d.post(ctx, probe, "/checkout/cart")
	d.con.check(err == nil && code == http.StatusOK && now != victim.Name && now != "",
		"our shopper's next request is answered by %s (status %d): re-pinned%s", now, code, errIf(err))
	if err := sleep(ctx, settle); err != nil {
		return err
	}
	w := d.load.Totals().Sub(before)
	after := 0
	for _, f := range w.Failures {
		if f.App == victim.Name && f.Cause == shopload.Cause5xx {
			d.figs.app5xx++
			if f.Start.After(failed.Add(d.figs.appEject)) {
				after++
			}
		}
	}
	d.con.printf("  %d shoppers saw its 500s before the L7 hosts ejected it (ejection: %d in a row on each of %d L7 hosts)",
		d.figs.app5xx, fleet.Consecutive5xx, len(live))
	d.con.check(after == 0, "no 500 from %s to requests sent after its ejection (%d were); %d requests failed in all", victim.Name, after, w.ErrorCount())
	return nil
}

// post makes one request of the probe shopper and names who answered.
func (d *demo) post(ctx context.Context, c *http.Client, path string) (string, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+d.f.VIP.String()+path, strings.NewReader(url.Values{"user": {"probe"}}.Encode()))
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.Header.Get("X-App"), resp.StatusCode, nil
}

// 3c. An edge host is lost.
func (d *demo) loseEdge(ctx context.Context) error {
	victim := d.f.Edges[1]
	d.con.printf("  c) the edge host %s is lost (cable pulled, daemon killed): the router hears nothing more", victim.Name)
	before := d.load.Totals()
	d.con.cmd(fmt.Sprintf("ip link del %s; kill -9 %d   # %s's cable, xlb daemon on %s", victim.Host.Port, victim.Daemon.Pid(), victim.Name, victim.Name))
	lost := time.Now()
	if err := d.f.Lose(victim); err != nil {
		return err
	}
	err := d.f.WaitRouter(ctx)
	d.figs.edgeWithdraw = time.Since(lost)
	hops, _ := d.f.NextHops()
	d.con.check(err == nil, "the router withdrew %s after %s (BGP hold time 3s); next hops now %v%s", victim.Name, d.figs.edgeWithdraw.Round(10*time.Millisecond), hops, errIf(err))
	if err := sleep(ctx, edgeSettle); err != nil {
		return err
	}
	w := d.load.Totals().Sub(before)
	for _, f := range w.Failures {
		if f.Broken {
			d.figs.edgeBroken++
		}
	}
	d.figs.edgeErrs = w.ErrorCount()
	d.con.check(d.figs.edgeBroken == 0, "0 broken connections: the flows %s carried reach the same L7 hosts through the others (%d requests, %d failed)",
		victim.Name, w.Requests, w.ErrorCount())
	return nil
}

// 4. The sale ends: back to the steady rate, drain and remove the extra
// servers.
func (d *demo) saleEnds(ctx context.Context) error {
	d.con.step("4. The sale ends: back to %.0f users/s, drain and remove the 24 extra app servers", d.steady)
	d.load.SetLevel(0.25, ramp)
	if err := sleep(ctx, ramp); err != nil {
		return err
	}
	end := d.load.Totals()
	sale := end.Sub(d.saleStart)
	d.figs.saleReqs, d.figs.saleErrs, d.figs.saleCauses = sale.Requests, sale.ErrorCount(), sale.Errors

	l7 := d.f.L7s[0]
	var wg sync.WaitGroup
	errs := make([]error, len(d.added))
	start := time.Now()
	for _, pool := range []string{fleet.PoolCheckout, fleet.PoolBrowse} {
		d.con.cmd(fmt.Sprintf("for s in %s; do xlb --proxy %s pool server drain %s $s --wait --timeout 60s --quiet 2s & done; wait",
			strings.Join(appNames(inPool(d.added, pool)), " "), d.sock(l7.Socket), pool))
	}
	for i, a := range d.added {
		args := []string{"--proxy", d.sock(l7.Socket), "pool", "server", "drain", a.Pool, a.Name, "--wait", "--timeout", "60s", "--quiet", "2s"}
		wg.Go(func() { _, errs[i] = d.run(ctx, args...) })
	}
	wg.Wait()
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
			d.con.block(err.Error())
		}
	}
	d.con.check(failed == 0, "%d of %d drains returned drained and empty, within %s", len(d.added)-failed, len(d.added), since(start))
	d.con.cmd("xlb --proxy l7-N/proxy.sock pool show POOL -o json   (each L7 host, until every drained server is empty there too)")
	err := fleet.Wait(ctx, waitLimit, "drained servers empty on every L7 host", func() error {
		for _, l := range d.liveL7s() {
			for _, pool := range []string{fleet.PoolCheckout, fleet.PoolBrowse} {
				p, err := xlbJSON[admin.Pool](ctx, d, "--proxy", d.sock(l.Socket), "pool", "show", pool)
				if err != nil {
					return err
				}
				for _, s := range p.Servers {
					if slices.ContainsFunc(d.added, func(a *fleet.App) bool { return a.Name == s.Name }) && (s.State != "draining" || !s.Empty) {
						return fmt.Errorf("%s: %s is %s (empty %v)", l.Name, s.Name, s.State, s.Empty)
					}
				}
			}
		}
		return nil
	})
	d.con.check(err == nil, "every L7 host sees them drained and empty%s", errIf(err))
	for _, pool := range []string{fleet.PoolCheckout, fleet.PoolBrowse} {
		d.con.cmd(fmt.Sprintf("for s in %s; do xlb --proxy %s pool server del %s $s; done",
			strings.Join(appNames(inPool(d.added, pool)), " "), d.sock(l7.Socket), pool))
	}
	for _, a := range d.added {
		if _, err := d.run(ctx, "--proxy", d.sock(l7.Socket), "pool", "server", "del", a.Pool, a.Name); err != nil {
			d.con.block(err.Error())
			d.con.check(false, "remove %s", a.Name)
			return err
		}
	}
	for _, a := range d.added {
		_ = a.Proc.Stop(syscall.SIGTERM, 10*time.Second) // the server is retired
	}
	err = d.waitPools(ctx, 4)
	d.con.check(err == nil, "every L7 host is back to 4 checkout + 4 browse servers; the 24 are stopped%s", errIf(err))
	if err := sleep(ctx, 2*time.Second); err != nil {
		return err
	}
	w := d.load.Totals().Sub(end)
	d.con.check(w.ErrorCount() == 0, "draining and removing under load: %d requests, %d failed", w.Requests, w.ErrorCount())
	return nil
}

// 5. The summary.
func (d *demo) summary() error {
	d.con.step("5. Summary")
	d.load.Stop()
	sum := d.load.Wait()
	d.load = nil
	d.con.endProgress()
	sum.L7Hosts = d.byHost(sum.L7Hosts)
	var b strings.Builder
	if err := sum.WriteText(&b); err != nil {
		return err
	}
	d.con.block(b.String())
	g := d.figs
	rate := 0.0
	if g.saleReqs > 0 {
		rate = float64(g.saleErrs) / float64(g.saleReqs)
	}
	d.con.printf("")
	d.con.check(g.saleReqs > 0 && rate < errTarget, "error rate during the sale: %d of %d requests = %.3f%% (target < %.1f%%)%s",
		g.saleErrs, g.saleReqs, 100*rate, 100*errTarget, causesIf(g.saleCauses))
	var p99 []string
	for _, r := range sum.Routes {
		p99 = append(p99, fmt.Sprintf("%s %.1f ms", r.Route, r.P99))
	}
	d.con.printf("  p99 per route (whole run): %s", strings.Join(p99, ", "))
	d.con.printf("  failover: L7 host killed → out of every edge table in %s, last failed request %s after the kill, %d failed (%s)",
		g.l7Table.Round(10*time.Millisecond), g.l7Users.Round(10*time.Millisecond), g.l7Failed, causes(g.l7Causes))
	d.con.printf("            app server %s failing → ejected everywhere in %s, %d × 500 seen; sticky users re-pinned: %d",
		g.appVictim, g.appEject.Round(10*time.Millisecond), g.app5xx, sum.Sticky.MovedFrom[g.appVictim])
	d.con.printf("            edge host lost → withdrawn by the router in %s, %d broken connections, %d failed requests",
		g.edgeWithdraw.Round(10*time.Millisecond), g.edgeBroken, g.edgeErrs)
	d.con.printf("  CPU, steady: %s", g.cpuSteady)
	d.con.printf("  CPU, sale:   %s", g.cpuPeak)
	moved := 0
	for from, n := range sum.Sticky.MovedFrom {
		if from != g.appVictim {
			moved += n
		}
	}
	d.con.check(moved == 0, "sticky: only users of the failed server moved (%d moved from others)", moved)
	return nil
}

// waitPools waits until every live L7 host has n servers in each pool,
// all taking clients but a failed one.
func (d *demo) waitPools(ctx context.Context, n int) error {
	return fleet.Wait(ctx, waitLimit, fmt.Sprintf("%d servers per pool on every L7 host", n), func() error {
		for _, l := range d.liveL7s() {
			pools, err := xlbJSON[[]admin.Pool](ctx, d, "--proxy", d.sock(l.Socket), "pool", "list")
			if err != nil {
				return err
			}
			for _, p := range pools {
				want := n
				if slices.ContainsFunc(p.Servers, func(s admin.Server) bool { return s.Name == d.figs.appVictim }) {
					want-- // the failed server stays out
				}
				if len(p.Servers) != n || p.Available != want {
					return fmt.Errorf("%s: pool %s has %d servers, %d available", l.Name, p.Name, len(p.Servers), p.Available)
				}
			}
		}
		return nil
	})
}

// waitBackend waits until every live edge host's view of backend addr
// satisfies ok.
func (d *demo) waitBackend(ctx context.Context, addr string, ok func(api.Backend) bool) error {
	return fleet.Wait(ctx, waitLimit, "the edge hosts' tables", func() error {
		for _, e := range d.f.LiveEdges() {
			bs, err := xlbJSON[[]api.Backend](ctx, d, "--socket", d.sock(e.Socket), "backend", "list", d.f.Key.String())
			if err != nil {
				return err
			}
			i := slices.IndexFunc(bs, func(b api.Backend) bool { return b.Addr.String() == addr })
			if i < 0 || !ok(bs[i]) {
				return fmt.Errorf("%s: %s not there yet", e.Name, addr)
			}
		}
		return nil
	})
}

func (d *demo) liveL7s() []*fleet.L7 {
	var out []*fleet.L7
	for _, l := range d.f.L7s {
		if done, _ := l.Proxy.Exited(); !done {
			out = append(out, l)
		}
	}
	return out
}

// byHost renames a count by address to a count by host name.
func (d *demo) byHost(m map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		out[d.f.NameOf(k)] += v
	}
	return out
}

func edgeHosts(es []*fleet.Edge) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Name+" "+e.Host.Addr4.String())
	}
	return out
}

func l7Hosts(ls []*fleet.L7) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.Name+" "+l.Host.Addr4.String())
	}
	return out
}

func (d *demo) hostList(s []string) string { return strings.Join(s, ", ") }

// names keeps the first word of each "name addr".
func names(s []string) []string {
	var out []string
	for _, v := range s {
		out = append(out, strings.Fields(v)[0])
	}
	return out
}

func appNames(apps []*fleet.App) []string {
	var out []string
	for _, a := range apps {
		out = append(out, a.Name)
	}
	return out
}

func inPool(apps []*fleet.App, pool string) []*fleet.App {
	var out []*fleet.App
	for _, a := range apps {
		if a.Pool == pool {
			out = append(out, a)
		}
	}
	return out
}

func appRange(apps []*fleet.App) string {
	by := map[string][]*fleet.App{}
	var pools []string
	for _, a := range apps {
		if by[a.Pool] == nil {
			pools = append(pools, a.Pool)
		}
		by[a.Pool] = append(by[a.Pool], a)
	}
	var parts []string
	for _, p := range pools {
		as := by[p]
		parts = append(parts, fmt.Sprintf("%s %s..%s (%s..%s:%d)", p, as[0].Name, as[len(as)-1].Name,
			as[0].Host.Addr4, as[len(as)-1].Host.Addr4, fleet.AppPort))
	}
	return strings.Join(parts, ", ")
}

func allPositive[V int | uint64](m map[string]V, keys []string) bool {
	for _, k := range keys {
		if m[k] <= 0 {
			return false
		}
	}
	return len(keys) > 0
}

func tally[V int | uint64](m map[string]V) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return natLess(keys[i], keys[j]) })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

// natLess orders c2 before c10.
func natLess(a, b string) bool {
	ta, na := splitNum(a)
	tb, nb := splitNum(b)
	if ta != tb {
		return ta < tb
	}
	return na < nb
}

func splitNum(s string) (string, int) {
	i := len(s)
	for i > 0 && s[i-1] >= '0' && s[i-1] <= '9' {
		i--
	}
	n, _ := strconv.Atoi(s[i:])
	return s[:i], n
}

func causes(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	return tally(m)
}

func causesIf(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	return "; " + tally(m)
}

func errIf(err error) string {
	if err == nil {
		return ""
	}
	return ": " + err.Error()
}

func since(t time.Time) string { return time.Since(t).Round(10 * time.Millisecond).String() }

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// cpu is a sample of the machine's CPU time (/proc/stat's first line) and
// of the site's: every process in its namespaces plus this one, which
// runs the load generator. Softirq work (the XDP programs, the veths) is
// the kernel's and counts for the machine only.
type cpu struct{ busy, total, site uint64 }

func (d *demo) readCPU() cpu {
	var c cpu
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return c
	}
	f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		c.total += n
		if i != 3 && i != 4 { // idle, iowait
			c.busy += n
		}
	}
	for _, pid := range append(d.f.PIDs(), os.Getpid()) {
		c.site += procTicks(pid)
	}
	return c
}

// procTicks is a process's user + system time in clock ticks.
func procTicks(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return u + st
}

// usage is the machine's busy share and the site's share of all CPU time
// between two samples, in %.
type usage struct{ machine, site float64 }

func (c cpu) since(prev cpu) usage {
	if c.total <= prev.total {
		return usage{}
	}
	t := float64(c.total - prev.total)
	return usage{machine: 100 * float64(c.busy-prev.busy) / t, site: 100 * float64(c.site-prev.site) / t}
}

func (u usage) String() string {
	return fmt.Sprintf("the site's processes %.0f%% of the machine's %d cores (machine busy %.0f%%, shared)", u.site, runtime.NumCPU(), u.machine)
}

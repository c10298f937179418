// Command demo runs xlb's whole packet path on this machine, in network
// namespaces it creates and removes: a client, the edge host running
// `xlb daemon` (XDP balancer), a router, three L7 hosts running `xlb decap`
// and `xlb proxy`, and a host of app servers. It then walks through what an
// SRE does during a flash sale — look at the state, add an L7 host, drain
// one under a live connection — using the real `xlb` CLI.
//
// `sudo make demo` builds the binaries and runs it. Everything is bounded in
// time and torn down at the end, also on failure or Ctrl-C.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/xlbproject/xlb/control/api"
	"github.com/xlbproject/xlb/l4"
	"github.com/xlbproject/xlb/l7/admin"
	"github.com/xlbproject/xlb/test/topo"
)

// prefix names every namespace of the demo; leftovers of a killed run are
// removed at start.
const prefix = "xlbdemo"

var vip = netip.MustParseAddr("198.51.100.10")

// appServers are the shop's app servers, all in the "app" namespace.
var appServers = []struct {
	name string
	port int
}{
	{"checkout-1", 9101}, {"checkout-2", 9102}, {"checkout-3", 9103},
	{"browse-1", 9201}, {"browse-2", 9202},
	{"auth-1", 9301}, {"auth-2", 9302},
}

func main() {
	xlbBin := flag.String("xlb", "bin/xlb", "path of the xlb binary")
	appBin := flag.String("app", "bin/xlb-demo-app", "path of the demo app server binary")
	keep := flag.Duration("timeout", 4*time.Minute, "abort the demo after this long")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *keep)
	defer cancel()

	d := &demo{out: os.Stdout}
	err := d.run(ctx, *xlbBin, *appBin)
	if err != nil {
		d.dumpLogs(os.Stderr)
	}
	d.teardown()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
	fmt.Fprintln(d.out, "\nDemo finished: namespaces, pins and processes removed.")
}

type demo struct {
	out    io.Writer
	dir    string
	xlb    string
	tp     *topo.Topology
	hosts  map[string]*topo.Host
	procs  []*exec.Cmd
	socket string
	pin    string
	config string
	api    *api.Client
	key    api.VIPKey
}

func (d *demo) step(format string, args ...any) {
	fmt.Fprintf(d.out, "\n\033[1m== "+format+"\033[0m\n", args...)
}

func (d *demo) run(ctx context.Context, xlbBin, appBin string) error {
	if os.Geteuid() != 0 {
		return errors.New("the demo creates network namespaces and loads XDP programs: run it as root (sudo make demo)")
	}
	var err error
	if d.xlb, err = filepath.Abs(xlbBin); err != nil {
		return err
	}
	if appBin, err = filepath.Abs(appBin); err != nil {
		return err
	}
	for _, b := range []string{d.xlb, appBin} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("binary %s missing: run `make build` first (%w)", b, err)
		}
	}
	if d.dir, err = os.MkdirTemp("", "xlb-demo-"); err != nil {
		return fmt.Errorf("create work dir: %w", err)
	}
	d.socket = filepath.Join(d.dir, "xlb.sock")
	d.pin = "/sys/fs/bpf/" + prefix
	d.config = filepath.Join(d.dir, "xlb.yaml")
	d.key = api.VIPKey{Addr: vip, Port: 80, Proto: api.ProtoTCP}

	d.step("1. Topology: namespaces %s-* joined by a bridge", prefix)
	if err := d.buildTopology(); err != nil {
		return err
	}
	d.step("2. App servers: checkout ×3, browse ×2, auth ×2 on %s", d.hosts["app"].Addr4)
	for _, a := range appServers {
		if err := d.start(ctx, "app", a.name, appBin, "--listen", fmt.Sprintf("%s:%d", d.hosts["app"].Addr4, a.port), "--name", a.name); err != nil {
			return err
		}
	}
	d.step("3. L7 hosts l7-1, l7-2: xlb decap on eth0, xlb proxy on the VIP %s:80", vip)
	for _, name := range []string{"l7-1", "l7-2"} {
		if err := d.startL7(ctx, name); err != nil {
			return err
		}
	}
	d.step("4. Edge host: xlb daemon, VIP %s:80/tcp → l7-1, l7-2 (XDP native on eth0)", vip)
	if err := d.startDaemon(ctx); err != nil {
		return err
	}
	if err := d.waitHealthy(ctx, 2); err != nil {
		return err
	}
	d.cli(ctx, "status")

	d.step("5. 30 new connections from the client to http://%s/browse/...", vip)
	if err := d.traffic(ctx, "/browse/item-%d", 30); err != nil {
		return err
	}
	d.step("6. Sticky checkout: one cookie, 6 new connections (the L4 tier may pick another L7 host each time)")
	if err := d.sticky(ctx); err != nil {
		return err
	}

	d.step("7. Flash sale: start l7-3 and add it with the CLI")
	if err := d.startL7(ctx, "l7-3"); err != nil {
		return err
	}
	d.cli(ctx, "backend", "add", d.key.String(), d.hosts["l7-3"].Addr4.String())
	if err := d.waitHealthy(ctx, 3); err != nil {
		return err
	}
	d.cli(ctx, "backend", "list", d.key.String())
	if err := d.traffic(ctx, "/products/%d", 30); err != nil {
		return err
	}

	d.step("8. Drain the L7 host that carries a live keep-alive connection")
	if err := d.drainUnderLoad(ctx); err != nil {
		return err
	}

	d.step("9. Which L7 host gets a flow? (answered by the loaded XDP program)")
	d.cli(ctx, "flow", d.hosts["client"].Addr4.String()+":40000", d.key.String())
	d.step("10. Counters")
	d.cli(ctx, "stats")
	return nil
}

func (d *demo) buildTopology() error {
	_ = topo.Cleanup(prefix)
	_ = l4.RemovePins(d.pin)
	tp, err := topo.New(topo.Options{Prefix: prefix})
	if err != nil {
		return fmt.Errorf("create topology: %w", err)
	}
	d.tp = tp
	d.hosts = map[string]*topo.Host{}
	cfgs := []topo.HostConfig{
		{Name: "client", NoOffloads: true},
		// The balancer's link carries the wrapped frames: its MTU (the
		// daemon's default limit) is the bridge's, like the L7 side's.
		{Name: "lb", MTU: topo.BridgeMTU, PeerXDPPass: true},
		// gw is a one-armed router: the balancer's single next hop, as an
		// edge host's upstream router would be.
		{Name: "gw", MTU: topo.BridgeMTU, RPFilterOff: true, Router: true},
		{Name: "l7-1", MTU: topo.BridgeMTU, VIPs: []netip.Addr{vip}, RPFilterOff: true},
		{Name: "l7-2", MTU: topo.BridgeMTU, VIPs: []netip.Addr{vip}, RPFilterOff: true},
		{Name: "l7-3", MTU: topo.BridgeMTU, VIPs: []netip.Addr{vip}, RPFilterOff: true},
		{Name: "app"},
	}
	for _, c := range cfgs {
		h, err := tp.AddHost(c)
		if err != nil {
			return fmt.Errorf("add host %s: %w", c.Name, err)
		}
		d.hosts[c.Name] = h
		fmt.Fprintf(d.out, "   %-7s %-12s %s\n", c.Name, h.Addr4, h.NetNS)
	}
	return d.hosts["client"].AddRoute(netip.PrefixFrom(vip, 32), d.hosts["lb"].Addr4)
}

// start runs a program in a host's namespace, logging to the work dir.
func (d *demo) start(ctx context.Context, host, name, bin string, args ...string) error {
	logf, err := os.Create(filepath.Join(d.dir, name+".log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := d.hosts[host].Command(context.WithoutCancel(ctx), bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s in %s: %w", name, host, err)
	}
	d.procs = append(d.procs, cmd)
	return nil
}

func (d *demo) startL7(ctx context.Context, name string) error {
	h := d.hosts[name]
	cfg := filepath.Join(d.dir, name+"-proxy.yaml")
	if err := os.WriteFile(cfg, []byte(proxyConfig(h.Addr4, d.hosts["app"].Addr4, filepath.Join(d.dir, name+"-proxy.sock"))), 0o600); err != nil {
		return err
	}
	if err := d.start(ctx, name, name+"-decap", d.xlb, "decap", "--iface", topo.HostIfname, "--mode", "native"); err != nil {
		return err
	}
	if err := d.start(ctx, name, name+"-proxy", d.xlb, "proxy", "--config", cfg); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "   %s: xlb decap --iface eth0; xlb proxy --config %s\n", name, filepath.Base(cfg))
	// The proxy is ready as soon as it listens; a pool whose app servers
	// were still starting at its first check answers 503 until the next
	// check finds them. Wait for every pool, as an operator would with
	// `xlb pool list`, so the demo's first requests find them all.
	c := admin.NewClient(filepath.Join(d.dir, name+"-proxy.sock"), 5*time.Second)
	defer c.Close()
	return poll(ctx, 30*time.Second, name+"'s pools", func() error {
		pools, err := c.Pools(ctx)
		if err != nil {
			return err
		}
		for _, p := range pools {
			if p.Available == 0 {
				return fmt.Errorf("pool %s has no available server yet", p.Name)
			}
		}
		return nil
	})
}

func (d *demo) startDaemon(ctx context.Context) error {
	lb, gw := d.hosts["lb"], d.hosts["gw"]
	cfg := fmt.Sprintf(`interfaces:
  - name: eth0
    mode: native
outer_source:
  ipv4: %s
dataplane:
  max_vips: 16
  max_backends: 64
  conntrack_entries: 65536
  next_hop_mac: "%s"
  src_mac: "%s"
health:
  port: 9901
  path: /ready
api:
  socket: %s
metrics:
  listen: ""
state:
  path: %s
bpf:
  pin_path: %s
vips:
  - address: %s
    port: 80
    protocol: tcp
    backends:
      - address: %s
      - address: %s
`, lb.Addr4, gw.MAC, lb.MAC, d.socket, filepath.Join(d.dir, "state.json"), d.pin, vip, d.hosts["l7-1"].Addr4, d.hosts["l7-2"].Addr4)
	if err := os.WriteFile(d.config, []byte(cfg), 0o600); err != nil {
		return err
	}
	if err := d.start(ctx, "lb", "daemon", d.xlb, "daemon", "--config", d.config); err != nil {
		return err
	}
	d.api = api.NewClient(d.socket, 5*time.Second)
	return poll(ctx, 30*time.Second, "daemon API", func() error {
		_, err := d.api.Status(ctx)
		return err
	})
}

// waitHealthy waits until n backends of the VIP are healthy and in the table.
func (d *demo) waitHealthy(ctx context.Context, n int) error {
	return poll(ctx, 30*time.Second, fmt.Sprintf("%d healthy L7 hosts", n), func() error {
		v, err := d.api.GetVIP(ctx, d.key)
		if err != nil {
			return err
		}
		up := 0
		for _, b := range v.Backends {
			if b.Healthy && b.TableSlots > 0 {
				up++
			}
		}
		if up < n {
			return fmt.Errorf("%d of %d up", up, n)
		}
		return nil
	})
}

// cli runs an xlb command the way an operator would and shows its output.
func (d *demo) cli(ctx context.Context, args ...string) {
	fmt.Fprintf(d.out, "$ xlb %s\n", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, d.xlb, append(args, "--socket", d.socket)...)
	out, err := cmd.CombinedOutput()
	d.out.Write(indent(out))
	if err != nil {
		fmt.Fprintf(d.out, "   (exit: %v)\n", err)
	}
}

// traffic makes n requests, each on a new connection (a new flow for the
// balancer), and tallies which L7 host and app server answered.
func (d *demo) traffic(ctx context.Context, pathFmt string, n int) error {
	c := d.httpClient()
	byL7, byApp := map[string]int{}, map[string]int{}
	for i := 0; i < n; i++ {
		fields, err := d.get(ctx, c, fmt.Sprintf(pathFmt, i))
		if err != nil {
			return err
		}
		byL7[d.hostName(fields["via"])]++
		byApp[fields["app"]]++
	}
	fmt.Fprintf(d.out, "   %d/%d answered; by L7 host: %s; by app server: %s\n", n, n, tally(byL7), tally(byApp))
	return nil
}

func (d *demo) sticky(ctx context.Context) error {
	c := d.httpClient()
	var cookie *http.Cookie
	apps, l7s := map[string]int{}, map[string]int{}
	for i := 0; i < 6; i++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("http://%s/checkout/cart", vip), nil)
		if err != nil {
			return err
		}
		if cookie != nil {
			req.AddCookie(cookie)
		}
		resp, err := c.Do(req)
		if err != nil {
			return fmt.Errorf("checkout request %d: %w", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, ck := range resp.Cookies() {
			if ck.Name == "xlb_checkout" {
				cookie = ck
			}
		}
		f := parseAnswer(string(body))
		apps[f["app"]]++
		l7s[d.hostName(f["via"])]++
	}
	if cookie == nil {
		return errors.New("the checkout pool set no sticky cookie")
	}
	fmt.Fprintf(d.out, "   cookie %s=%.24s…; L7 hosts used: %s; app servers: %s\n", cookie.Name, cookie.Value, tally(l7s), tally(apps))
	if len(apps) != 1 {
		return fmt.Errorf("sticky session broke: answered by %s", tally(apps))
	}
	return nil
}

// drainUnderLoad keeps one keep-alive connection busy, drains the L7 host it
// landed on, and shows that the connection carries on while new connections
// go elsewhere.
func (d *demo) drainUnderLoad(ctx context.Context) error {
	// One raw TCP connection, so that every request provably travels on the
	// same flow (an http.Client might quietly dial a new one).
	conn, err := d.hosts["client"].DialContext(ctx, "tcp", netip.AddrPortFrom(vip, 80).String())
	if err != nil {
		return fmt.Errorf("open the live connection: %w", err)
	}
	defer conn.Close()
	live := &rawConn{conn: conn, r: bufio.NewReader(conn)}
	f, err := live.get("/browse/live")
	if err != nil {
		return err
	}
	victim := f["via"]
	fmt.Fprintf(d.out, "   live connection %s is on %s (%s)\n", conn.LocalAddr(), d.hostName(victim), victim)
	d.cli(ctx, "backend", "drain", d.key.String(), victim)

	ok := 0
	for i := 0; i < 20; i++ {
		f, err := live.get(fmt.Sprintf("/browse/live-%d", i))
		if err != nil {
			return fmt.Errorf("the established connection broke after the drain: %w", err)
		}
		if f["via"] != victim {
			return fmt.Errorf("the established connection moved from %s to %s", victim, f["via"])
		}
		ok++
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Fprintf(d.out, "   established connection: %d/20 requests after the drain, all still on %s\n", ok, d.hostName(victim))

	fresh := d.httpClient()
	byL7 := map[string]int{}
	for i := 0; i < 20; i++ {
		f, err := d.get(ctx, fresh, fmt.Sprintf("/browse/new-%d", i))
		if err != nil {
			return err
		}
		byL7[d.hostName(f["via"])]++
	}
	fmt.Fprintf(d.out, "   20 new connections: %s\n", tally(byL7))
	if byL7[d.hostName(victim)] > 0 {
		return fmt.Errorf("new connections still reach the drained host %s", victim)
	}
	d.cli(ctx, "backend", "list", d.key.String())
	return nil
}

// rawConn speaks HTTP/1.1 keep-alive on one TCP connection.
type rawConn struct {
	conn net.Conn
	r    *bufio.Reader
}

func (c *rawConn) get(path string) (map[string]string, error) {
	_ = c.conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := fmt.Fprintf(c.conn, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, vip); err != nil {
		return nil, fmt.Errorf("send GET %s: %w", path, err)
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		return nil, fmt.Errorf("read answer to GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read body of GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return parseAnswer(string(body)), nil
}

// httpClient opens a new connection (a new flow) for every request.
func (d *demo) httpClient() *http.Client {
	return &http.Client{
		Timeout:   3 * time.Second,
		Transport: &http.Transport{DialContext: d.hosts["client"].Dialer(), DisableKeepAlives: true},
	}
}

func (d *demo) get(ctx context.Context, c *http.Client, path string) (map[string]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s%s", vip, path), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
	}
	return parseAnswer(string(body)), nil
}

// hostName maps an address back to the demo's host name.
func (d *demo) hostName(addr string) string {
	for name, h := range d.hosts {
		if h.Addr4.String() == addr {
			return name
		}
	}
	return addr
}

// dumpLogs shows the end of every process's log, for a failed run.
func (d *demo) dumpLogs(w io.Writer) {
	if d.dir == "" {
		return
	}
	logs, _ := filepath.Glob(filepath.Join(d.dir, "*.log"))
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil || len(b) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		lines = lines[max(0, len(lines)-12):]
		fmt.Fprintf(w, "--- %s (last %d lines)\n%s\n", filepath.Base(l), len(lines), strings.Join(lines, "\n"))
	}
}

func (d *demo) teardown() {
	for _, p := range d.procs {
		_ = p.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range d.procs {
		done := make(chan struct{})
		go func() { _ = p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = p.Process.Kill()
			<-done
		}
	}
	if d.xlb != "" && d.config != "" {
		if out, err := exec.Command(d.xlb, "daemon", "--cleanup", "--config", d.config).CombinedOutput(); err != nil {
			slog.Warn("daemon cleanup", "err", err, "out", string(out))
		}
	}
	if d.pin != "" {
		_ = l4.RemovePins(d.pin)
	}
	if d.tp != nil {
		if err := d.tp.Close(); err != nil {
			slog.Warn("remove topology", "err", err)
		}
	}
	if d.dir != "" {
		_ = os.RemoveAll(d.dir)
	}
}

// proxyConfig is one L7 host's config; every host's proxy runs on this
// machine, so each gets its own admin socket.
func proxyConfig(self, app netip.Addr, socket string) string {
	return fmt.Sprintf(`listeners:
  - name: http
    addr: "0.0.0.0:80"
admin:
  addr: "%[1]s:9901"
  socket: %[3]q
access_log:
  enabled: false
sticky:
  keys:
    - id: 1
      secret: "ZGVtby1vbmx5LWtleS1kby1ub3QtdXNlLWluLXByb2Q="
routes:
  - {name: checkout, match: {path_prefix: /checkout}, pool: checkout}
  - {name: browse, match: {path_prefix: /browse}, pool: browse}
  - {name: products, match: {path_prefix: /products}, pool: browse}
  - {name: auth, match: {path_prefix: /auth}, pool: auth}
pools:
  - name: checkout
    policy: p2c
    servers:
      - {name: checkout-1, addr: "%[2]s:9101"}
      - {name: checkout-2, addr: "%[2]s:9102"}
      - {name: checkout-3, addr: "%[2]s:9103"}
    health: {active: {path: /healthz, interval: 1s, timeout: 500ms}}
    sticky: {cookie: xlb_checkout, max_age: 1h}
  - name: browse
    policy: hash
    hash_key: path
    servers:
      - {name: browse-1, addr: "%[2]s:9201"}
      - {name: browse-2, addr: "%[2]s:9202"}
    health: {active: {path: /healthz, interval: 1s, timeout: 500ms}}
  - name: auth
    policy: least_conn
    servers:
      - {name: auth-1, addr: "%[2]s:9301"}
      - {name: auth-2, addr: "%[2]s:9302"}
    health: {active: {path: /healthz, interval: 1s, timeout: 500ms}}
`, self, app, socket)
}

// parseAnswer reads the app server's "key=value ..." answer.
func parseAnswer(s string) map[string]string {
	f := map[string]string{}
	for _, kv := range strings.Fields(s) {
		if k, v, ok := strings.Cut(kv, "="); ok {
			f[k] = v
		}
	}
	return f
}

func tally(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

func indent(b []byte) []byte {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return []byte("   " + strings.Join(lines, "\n   ") + "\n")
}

// poll retries fn every 100 ms until it succeeds or limit passes.
func poll(ctx context.Context, limit time.Duration, what string, fn func() error) error {
	deadline := time.Now().Add(limit)
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("wait for %s: %w", what, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w", what, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

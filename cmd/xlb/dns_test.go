package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/internal/logbuf"
	"github.com/xlbproject/xlb/internal/statuspage/browsertest"
)

const dnsConfig = `listen: "%s"
metrics: "%s"
zones:
  - name: example.com
    records:
      - "@ IN SOA ns1 hostmaster 1 7200 3600 1209600 60"
      - "@ IN NS ns1"
      - "ns1 IN A 192.0.2.53"
%s
sites:
  - name: one
    vips: [192.0.2.10]
  - name: two
    vips: [192.0.2.20]
names:
  - name: shop.example.com
    policy: failover
    sites: [one, two]
`

func TestDNSCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "dns.yaml")
	require.NoError(t, os.WriteFile(good, []byte(fmt.Sprintf(dnsConfig, "127.0.0.1:1", "", "")), 0o600))
	code, stdout, stderr := runExit("dns", "--check", "--config", good)
	assert.Equal(t, 0, code, stderr)
	assert.Equal(t, good+": configuration is valid (1 zone, 3 records, 2 sites, 1 GSLB name)\n", stdout)

	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte(strings.Replace(fmt.Sprintf(dnsConfig, "127.0.0.1:1", "", `      - "www IN A 192.0.2.300"`), "policy: failover", "policy: failovr", 1)), 0o600))
	code, stdout, stderr = runExit("dns", "--check", "--config", bad)
	assert.Equal(t, 1, code)
	assert.Empty(t, stdout)
	assert.Contains(t, stderr, bad+":9: zones[0].records[3]")
	assert.Contains(t, stderr, bad+`:17: names[0].policy: unknown policy "failovr"`)

	code, _, stderr = runExit("dns", "--check")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "--config is required")

	// A missing file points to the installed example, as the daemon's and
	// the proxy's do.
	code, _, stderr = runExit("dns", "--check", "--config", filepath.Join(dir, "none.yaml"))
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "none.yaml does not exist: write it from the example (/etc/xlb/dns.yaml.example once xlb is installed, control/gslb/example.yaml in the source) or name another with --config")
	// And that example is valid as shipped.
	code, stdout, stderr = runExit("dns", "--check", "--config", "../../control/gslb/example.yaml")
	assert.Equal(t, 0, code, stderr)
	assert.Equal(t, "../../control/gslb/example.yaml: configuration is valid (1 zone, 5 records, 3 sites, 2 GSLB names)\n", stdout)

	// The GeoIP database is part of the file: one that is missing or is no
	// database is reported at the geoip line, in words.
	notDB := filepath.Join(dir, "not.mmdb")
	require.NoError(t, os.WriteFile(notDB, []byte("not a database"), 0o600))
	for _, tt := range []struct{ name, geoip, want string }{
		{"missing", filepath.Join(dir, "GeoLite2-City.mmdb"), "GeoIP database " + filepath.Join(dir, "GeoLite2-City.mmdb") + " does not exist"},
		{"not a database", notDB, "invalid MaxMind DB file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, "geo.yaml")
			require.NoError(t, os.WriteFile(p, []byte("geoip: "+tt.geoip+"\n"+fmt.Sprintf(dnsConfig, "127.0.0.1:1", "", "")), 0o600))
			code, stdout, stderr := runExit("dns", "--check", "--config", p)
			assert.Equal(t, 1, code)
			assert.Empty(t, stdout)
			assert.True(t, strings.HasPrefix(stderr, "xlb: "+p+":1: geoip: "), stderr)
			assert.Contains(t, stderr, tt.want)
			assert.Equal(t, 1, strings.Count(stderr, tt.geoip), "the path once: %s", stderr)
		})
	}
}

// startDNSProcess runs `xlb dns --config cfgPath` until the test ends
// (SIGTERM, then a kill after 10 s), its log shown if the test failed.
func startDNSProcess(t *testing.T, cfgPath string) (*exec.Cmd, *logbuf.Buffer) {
	t.Helper()
	logs := &logbuf.Buffer{}
	cmd := exec.Command(xlbBinary(t), "dns", "--config", cfgPath)
	cmd.Stderr = logs
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("xlb dns log:\n%s", logs.String())
		}
	})
	return cmd, logs
}

// TestDNSProcessReload runs `xlb dns` as a process: it answers over UDP
// and TCP, serves /metrics, keeps its config on a bad SIGHUP and takes a
// good one.
func TestDNSProcessReload(t *testing.T) {
	dir := t.TempDir()
	listen, metrics := freePort(t), freePort(t)
	cfgPath := filepath.Join(dir, "dns.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(dnsConfig, listen, metrics, "")), 0o600))
	cmd, logs := startDNSProcess(t, cfgPath)

	query := func(network, name string) (*dns.Msg, error) {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		c := &dns.Client{Net: network, Timeout: time.Second}
		r, _, err := c.Exchange(m, listen)
		return r, err
	}
	require.Eventually(t, func() bool { _, err := query("udp", "shop.example.com."); return err == nil }, 30*time.Second, 50*time.Millisecond)
	for _, network := range []string{"udp", "tcp"} {
		r, err := query(network, "shop.example.com.")
		require.NoError(t, err)
		require.Len(t, r.Answer, 1, network)
		assert.Equal(t, "192.0.2.10", r.Answer[0].(*dns.A).A.String())
		assert.Equal(t, uint32(30), r.Answer[0].Header().Ttl, "GSLB default TTL")
	}

	// A bad file on SIGHUP: rejected, the old answers stay.
	require.NoError(t, os.WriteFile(cfgPath, []byte("zones: [\n"), 0o600))
	require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "reload rejected") }, 30*time.Second, 20*time.Millisecond)
	r, err := query("udp", "ns1.example.com.")
	require.NoError(t, err)
	assert.Len(t, r.Answer, 1)

	// A good one: a new record is served.
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(dnsConfig, listen, metrics, `      - "www IN A 192.0.2.80"`)), 0o600))
	require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool {
		r, err := query("udp", "www.example.com.")
		return err == nil && len(r.Answer) == 1
	}, 30*time.Second, 20*time.Millisecond)

	resp, err := http.Get("http://" + metrics + "/metrics")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Contains(t, string(body), `xlb_dns_queries_total{name="shop.example.com.",policy="failover",rcode="NOERROR",site="one",type="A"} `)
	assert.Contains(t, string(body), `xlb_dns_site_up{site="one"} 1`)
}

// TestStatusPageDNSInBrowser runs a real `xlb dns` whose two sites are
// known by HTTP probes and opens its status page in a headless Chromium:
// the sites and the name are green; a failing probe turns its site red
// and the name orange without a reload, and both failing puts the
// all-down answer in the banner.
func TestStatusPageDNSInBrowser(t *testing.T) {
	var okA, okB atomic.Bool
	okA.Store(true)
	okB.Store(true)
	probe := func(ok *atomic.Bool) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if !ok.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	dir := t.TempDir()
	listen, metrics := freePort(t), freePort(t)
	cfgPath := filepath.Join(dir, "dns.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(`listen: "%s"
metrics: "%s"
zones:
  - name: example.com
    records: ["@ IN SOA ns1 hostmaster 1 7200 3600 1209600 60"]
sites:
  - {name: one, vips: [192.0.2.10], health: {probe: "%s/", interval: 100ms, timeout: 5s, rise: 1, fall: 1}}
  - {name: two, vips: [192.0.2.20], health: {probe: "%s/", interval: 100ms, timeout: 5s, rise: 1, fall: 1}}
names:
  - {name: shop.example.com, policy: failover, sites: [one, two]}
`, listen, metrics, probe(&okA), probe(&okB))), 0o600))
	startDNSProcess(t, cfgPath)
	c := &http.Client{Timeout: 2 * time.Second}
	require.Eventually(t, func() bool { return statusOf(c, "http://"+metrics+"/api/status") == http.StatusOK }, 30*time.Second, 50*time.Millisecond)

	b := browsertest.Open(t, "http://"+metrics+"/")
	for _, s := range []string{"site:one", "site:two", "name:shop.example.com."} {
		require.Eventually(t, func() bool { return b.RowState(s) == "up" }, 30*time.Second, 100*time.Millisecond,
			"%s is green; row: %q", s, b.RowText(s))
	}
	assert.Equal(t, "xlb dns", b.Text("#title"))
	assert.Contains(t, b.Text("#summary"), "DNS: 2 sites, 1 GSLB names")
	assert.Contains(t, b.RowText("site:one"), "192.0.2.10")
	assert.Contains(t, b.RowText("site:one"), "probe passed")
	b.Mark()

	okA.Store(false)
	require.Eventually(t, func() bool { return b.RowState("site:one") == "down" }, 30*time.Second, 100*time.Millisecond,
		"the site whose probe fails turns red; row: %q", b.RowText("site:one"))
	assert.Contains(t, b.RowText("site:one"), "status 503")
	assert.Equal(t, "drain", b.RowState("name:shop.example.com."), "a name with a site down is orange")
	assert.Contains(t, b.Text("#banner"), "Site one is down")

	okB.Store(false)
	require.Eventually(t, func() bool { return b.RowState("name:shop.example.com.") == "down" }, 30*time.Second, 100*time.Millisecond,
		"a name without a site up is red; row: %q", b.RowText("name:shop.example.com."))
	assert.Contains(t, b.Text("#banner"), "No site of shop.example.com. is up: it answers with every site's VIPs")
	assert.True(t, b.Marked(), "the page was not reloaded")
	b.Filter("two")
	assert.Equal(t, 1, b.VisibleRows("sites"))
	b.Filter("")
	b.Screenshot("status-dns")
}

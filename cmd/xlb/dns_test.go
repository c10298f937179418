package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
	assert.Equal(t, good+": configuration is valid (1 zones, 3 records, 2 sites, 1 GSLB names)\n", stdout)

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
}

// TestDNSProcessReload runs `xlb dns` as a process: it answers over UDP
// and TCP, serves /metrics, keeps its config on a bad SIGHUP and takes a
// good one.
func TestDNSProcessReload(t *testing.T) {
	dir := t.TempDir()
	listen, metrics := freePort(t), freePort(t)
	cfgPath := filepath.Join(dir, "dns.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(dnsConfig, listen, metrics, "")), 0o600))
	var logs lockedBuffer
	cmd := exec.Command(xlbBinary(t), "dns", "--config", cfgPath)
	cmd.Stderr = &logs
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
	})

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
	assert.Contains(t, string(body), `xlb_dns_queries_total{name="shop.example.com.",policy="failover",rcode="NOERROR",site="one"} `)
	assert.Contains(t, string(body), `xlb_dns_site_up{site="one"} 1`)
}

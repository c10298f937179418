package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/internal/testcert"
)

const tlsProcessConfig = `listeners:
  - name: https
    addr: %q
    tls:
      certificates: [{cert: shop.crt, key: shop.key}]
  - name: http
    addr: %q
admin: {addr: %q, socket: %q}
shutdown: {drain_delay: 1ms, timeout: 5s}
routes: [{name: all, match: {path_prefix: /}, pool: app}]
pools:
  - name: app
    servers:
      - {name: a, addr: %q}
`

// TestProxyProcessTLSReload runs a real `xlb proxy` with a TLS listener
// whose certificate files sit next to the config (relative paths): SIGHUP
// after the files are renewed serves the new certificate to new
// connections while an open keep-alive connection keeps working; renewed
// files with a mismatched key are rejected with file:line by SIGHUP and by
// --check, and the running certificate stays.
func TestProxyProcessTLSReload(t *testing.T) {
	var hits atomic.Int64
	app := namedApp(t, "a", &hits)
	dir := t.TempDir()
	ca, err := testcert.NewCA()
	require.NoError(t, err)
	_, _, err = ca.Leaf(dir, "shop", "shop.example.com")
	require.NoError(t, err)
	listen, plain, adminAddr, sock := freePort(t), freePort(t), freePort(t), filepath.Join(dir, "run", "proxy.sock")
	cfgPath := filepath.Join(dir, "proxy.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(tlsProcessConfig, listen, plain, adminAddr, sock, app)), 0o600))
	pp := startProxyProcess(t, cfgPath)
	c := &http.Client{Timeout: 2 * time.Second}
	require.Eventually(t, func() bool { return statusOf(c, "http://"+adminAddr+"/ready") == http.StatusOK },
		20*time.Second, 20*time.Millisecond, "proxy never became ready: %s", pp.stderr.String())

	conf := &tls.Config{RootCAs: ca.Pool, ServerName: "shop.example.com", NextProtos: []string{"http/1.1"}}
	serial := func() string {
		conn, err := tls.Dial("tcp", listen, conf)
		if err != nil {
			return "dial: " + err.Error()
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	old, err := tls.Dial("tcp", listen, conf)
	require.NoError(t, err)
	defer old.Close()
	br := bufio.NewReader(old)
	get := func() int {
		t.Helper()
		require.NoError(t, old.SetDeadline(time.Now().Add(5*time.Second)))
		_, err := fmt.Fprint(old, "GET /x HTTP/1.1\r\nHost: shop.example.com\r\n\r\n")
		require.NoError(t, err)
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		require.NoError(t, resp.Body.Close())
		return resp.StatusCode
	}
	require.Equal(t, http.StatusOK, get())
	first := old.ConnectionState().PeerCertificates[0].SerialNumber.String()
	require.Equal(t, first, serial())
	assert.Equal(t, http.StatusOK, statusOf(c, "http://"+plain+"/x"), "a cleartext listener beside the TLS one")

	// Renew and SIGHUP.
	_, _, err = ca.Leaf(dir, "shop", "shop.example.com")
	require.NoError(t, err)
	pp.signal(t, syscall.SIGHUP)
	var renewed string
	require.Eventually(t, func() bool { renewed = serial(); return renewed != first && renewed[:4] != "dial" },
		30*time.Second, 10*time.Millisecond, "new certificate never served: %s", pp.stderr.String())
	assert.Equal(t, http.StatusOK, get(), "the open connection keeps working")

	// A key that does not match: rejected, by --check and by SIGHUP.
	other := t.TempDir()
	_, otherKey, err := ca.Leaf(other, "shop", "shop.example.com")
	require.NoError(t, err)
	key, err := os.ReadFile(otherKey)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "shop.key"), key, 0o600))
	out, err := exec.Command(xlbBinary(t), "proxy", "--check", "--config", cfgPath).CombinedOutput()
	require.Error(t, err, "--check must fail: %s", out)
	assert.Contains(t, string(out), cfgPath+":5: certificate "+filepath.Join(dir, "shop.crt")+" with key "+filepath.Join(dir, "shop.key")+": the key does not match the certificate")
	pp.signal(t, syscall.SIGHUP)
	require.Eventually(t, func() bool { return strings.Contains(pp.stderr.String(), "reload rejected") }, 30*time.Second, 10*time.Millisecond)
	assert.Contains(t, pp.stderr.String(), "the key does not match the certificate")
	assert.Equal(t, renewed, serial(), "the running certificate stays")
	assert.Equal(t, http.StatusOK, get())
	require.True(t, pp.alive())

	pp.signal(t, syscall.SIGTERM)
	select {
	case err := <-pp.done:
		pp.done <- err
		assert.NoError(t, err, "exit status: %s", pp.stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatal("proxy did not exit after SIGTERM")
	}
}

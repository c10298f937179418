package main

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestFailOnSIGUSR1 runs the real binary: it answers with its name until
// SIGUSR1, then 500 to everything, its health check included.
func TestFailOnSIGUSR1(t *testing.T) {
	goBin, err := exec.LookPath("go")
	require.NoError(t, err)
	bin := filepath.Join(t.TempDir(), "app")
	out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "build: %s", out)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	cmd := exec.Command(bin, "--listen", addr, "--name", "c1")
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, ""
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.Header.Get("X-App")
	}
	require.Eventually(t, func() bool { code, _ := get("/healthz"); return code == 200 }, 30*time.Second, 20*time.Millisecond)
	code, app := get("/checkout")
	assert.Equal(t, 200, code)
	assert.Equal(t, "c1", app)

	require.NoError(t, cmd.Process.Signal(syscall.SIGUSR1))
	require.Eventually(t, func() bool { code, _ := get("/healthz"); return code == 500 }, 30*time.Second, 20*time.Millisecond)
	code, app = get("/checkout")
	assert.Equal(t, 500, code)
	assert.Equal(t, "c1", app, "a failing server still names itself")
}

package daemon

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/control/api"
)

// TestSecondDaemonStopsFirst: a second daemon started beside a running one
// (by hand while systemd runs it) stops at the API socket, before it writes
// a state file, pins or loads anything, reconciles or opens BGP sessions;
// it used to get that far and fail only when it opened the socket.
func TestSecondDaemonStopsFirst(t *testing.T) {
	e := newEnv(t, 1)
	d, stop := e.start(t)
	defer stop()

	second := *e
	second.dir = t.TempDir()
	second.cfgPath = filepath.Join(second.dir, "xlb.yaml")
	second.pin = e.pin + "-second"
	t.Cleanup(func() { _ = os.RemoveAll(second.pin) }) // should the daemon pin after all
	second.writeConfig(t, "      - address: "+e.hosts[0].addr.String()+"\n", "")
	_, err := New(context.Background(), Options{ConfigPath: second.cfgPath, Log: slog.New(slog.DiscardHandler), NoAttach: true})
	require.ErrorIs(t, err, api.ErrConflict)
	assert.Contains(t, err.Error(), "another xlb daemon is already listening on it")
	assert.NoDirExists(t, second.pin, "nothing pinned")
	assert.NoFileExists(t, filepath.Join(second.dir, "state", "state.json"), "no state file written")

	// The running daemon still answers on its socket.
	c := api.NewClient(e.socket, 10*time.Second)
	defer c.Close()
	st, err := c.Status(context.Background())
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(st.ConfigPath, e.dir), st.ConfigPath)
	_, err = d.ListVIPs(context.Background())
	assert.NoError(t, err)
}

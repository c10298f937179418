package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/l7/director"
	"github.com/xlbproject/xlb/l7/proxy"
)

const baseConfig = `listeners: [{addr: "127.0.0.1:0"}]
admin: {socket: /tmp/unused.sock}
routes:
  - {name: checkout, match: {path_prefix: /checkout}, pool: checkout}
  - {name: browse, match: {path_prefix: /browse}, pool: browse}
pools:
  - name: checkout
    servers:
      - {name: c1, addr: "127.0.0.1:9001"}
      - {name: c2, addr: "127.0.0.1:9002"%s}
  - name: browse
    servers:
      - {name: b1, addr: "127.0.0.1:9101"}
`

type fixture struct {
	m    *Manager
	p    *proxy.Proxy
	path string
}

func writeConfig(t *testing.T, path, c2extra string) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(baseConfig, c2extra)), 0o600))
}

// open starts a manager and an (unserved) proxy on the config at path.
func open(t *testing.T, path string) *fixture {
	t.Helper()
	m, err := Open(path, nil)
	require.NoError(t, err)
	dir, err := director.New(m.Config())
	require.NoError(t, err)
	t.Cleanup(func() { _ = dir.Close() })
	p, err := proxy.New(m.Config(), dir, proxy.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	m.Attach(p)
	return &fixture{m: m, p: p, path: path}
}

func servers(t *testing.T, f *fixture, pool string) map[string]Server {
	t.Helper()
	p, err := f.m.Pool(pool, DefaultQuiet)
	require.NoError(t, err)
	out := map[string]Server{}
	for _, s := range p.Servers {
		out[s.Name] = s
	}
	return out
}

func TestRuntimeChangesAndReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "proxy.yaml")
	writeConfig(t, path, "")
	f := open(t, path)
	_, dir := f.p.Running()
	dir.SetStatus("checkout/c2", false)

	require.NoError(t, f.m.AddServers("checkout", []NewServer{{Name: "c9", Addr: "127.0.0.1:9009", Weight: 2}, {Name: "c10", Addr: "127.0.0.1:9010"}}))
	require.NoError(t, f.m.SetDrain("checkout", "c1", true, false))
	require.NoError(t, f.m.SetWeight("checkout", "c2", 7))
	got := servers(t, f, "checkout")
	require.Len(t, got, 4)
	assert.Equal(t, "draining", got["c1"].State)
	assert.Equal(t, "down", got["c2"].State, "a runtime change must not reset another server's health")
	assert.Equal(t, 7, got["c2"].Weight)
	assert.Equal(t, 2, got["c9"].Weight)
	assert.True(t, got["c9"].Runtime)

	// The state file holds exactly the runtime changes.
	b, err := os.ReadFile(f.m.StatePath())
	require.NoError(t, err)
	var st State
	require.NoError(t, json.Unmarshal(b, &st))
	assert.Len(t, st.Overrides, 4)
	assert.Equal(t, filepath.Join(filepath.Dir(path), "proxy.state.json"), f.m.StatePath())

	// The file changes c2's weight: the file wins for it, and says so.
	writeConfig(t, path, ", weight: 3")
	res, err := f.m.Reload()
	require.NoError(t, err)
	require.Len(t, res.Notes, 1)
	assert.Equal(t, "pool checkout server c2: file wins: the config file changed it since the runtime did: the file's weight 3 over the runtime's 7; the runtime's other changes stay",
		res.Notes[0].String())
	got = servers(t, f, "checkout")
	assert.Equal(t, 3, got["c2"].Weight)
	assert.Equal(t, "draining", got["c1"].State, "runtime drain kept across the reload")
	assert.Len(t, got, 4)

	// An invalid file changes nothing.
	require.NoError(t, os.WriteFile(path, []byte("listeners: [{adr: x}]\n"), 0o600))
	_, err = f.m.Reload()
	require.ErrorIs(t, err, ErrInvalid)
	assert.Contains(t, err.Error(), `proxy.yaml:1: unknown key "adr" in listeners[0] (did you mean "addr"?)`)
	assert.Equal(t, got, servers(t, f, "checkout"))
	// So does a file that is gone: rejected the same way, not an
	// internal error.
	require.NoError(t, os.Rename(path, path+".moved"))
	_, err = f.m.Reload()
	require.ErrorIs(t, err, ErrInvalid)
	assert.Contains(t, err.Error(), "proxy.yaml does not exist")
	assert.Equal(t, got, servers(t, f, "checkout"))
	require.NoError(t, os.Rename(path+".moved", path))

	// A restart restores the runtime changes from the state file.
	writeConfig(t, path, ", weight: 3")
	f2 := open(t, path)
	assert.Equal(t, got["c9"].Addr, servers(t, f2, "checkout")["c9"].Addr)
	assert.Equal(t, "draining", servers(t, f2, "checkout")["c1"].State)
}

func TestRuntimeChangeRefusals(t *testing.T) {
	path := filepath.Join(t.TempDir(), "proxy.yaml")
	writeConfig(t, path, "")
	f := open(t, path)
	tests := []struct {
		name string
		do   func() error
		is   error
		msg  string
	}{
		{"unknown pool", func() error { return f.m.SetDrain("nope", "c1", true, false) }, ErrNotFound, "pool nope does not exist (list pools with `xlb pool list`)"},
		{"unknown server", func() error { return f.m.SetWeight("checkout", "c7", 2) }, ErrNotFound, "pool checkout has no server c7 (list them with `xlb pool show checkout`)"},
		{"duplicate", func() error { return f.m.AddServers("checkout", []NewServer{{Name: "c2", Addr: "127.0.0.1:1"}}) }, ErrConflict, "server c2 already exists"},
		{"duplicate in one call", func() error {
			return f.m.AddServers("checkout", []NewServer{{Name: "c5", Addr: "127.0.0.1:1"}, {Name: "c5", Addr: "127.0.0.1:2"}})
		}, ErrInvalid, "add to pool checkout: server c5 is given twice (each server once, with its own name)"},
		{"same addr as a server", func() error { return f.m.AddServers("checkout", []NewServer{{Name: "c5", Addr: "127.0.0.1:9002"}}) },
			ErrConflict, "add to pool checkout: server c2 already has addr 127.0.0.1:9002 (each app server once per pool; give it a larger share with `xlb pool server weight checkout c2 N`)"},
		{"same addr in one call", func() error {
			return f.m.AddServers("checkout", []NewServer{{Name: "c5", Addr: "127.0.0.1:9005"}, {Name: "c6", Addr: "127.0.0.1:9005"}})
		}, ErrInvalid, "add to pool checkout: servers c5 and c6 have the same addr 127.0.0.1:9005 (each app server once per pool)"},
		{"bad addr", func() error { return f.m.AddServers("checkout", []NewServer{{Name: "c5", Addr: "10.0.0.5"}}) }, ErrInvalid, `addr "10.0.0.5" is not host:port`},
		{"weight 0", func() error { return f.m.SetWeight("checkout", "c1", 0) }, ErrInvalid, "to stop new clients, drain the server"},
		{"last server drain", func() error { return f.m.SetDrain("browse", "b1", true, false) }, ErrConflict, "last server of pool browse that takes new clients"},
		{"last server delete", func() error { return f.m.DeleteServer("browse", "b1", false) }, ErrConflict, "use --force"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.do()
			require.Error(t, err)
			assert.True(t, errors.Is(err, tt.is), "%v is not %v", err, tt.is)
			assert.Contains(t, err.Error(), tt.msg)
		})
	}
	assert.NoFileExists(t, f.m.StatePath(), "refused changes write nothing")
	assert.Len(t, servers(t, f, "checkout"), 2)

	require.NoError(t, f.m.SetDrain("browse", "b1", true, true), "--force drains the last server")
	p, err := f.m.Pool("browse", DefaultQuiet)
	require.NoError(t, err)
	assert.Zero(t, p.Available)
	require.NoError(t, f.m.SetDrain("browse", "b1", false, false))
	b, err := os.ReadFile(f.m.StatePath())
	require.NoError(t, err)
	assert.JSONEq(t, `{"version": 1, "overrides": []}`, string(b), "undrain returns to the file: no override left")

	// One app server may serve several pools: the address is unique per pool.
	require.NoError(t, f.m.AddServers("browse", []NewServer{{Name: "b2", Addr: "127.0.0.1:9002"}}))
}

// TestDrainEmpty: a draining server is empty once nothing is in flight and
// no pinned client came back for the quiet period.
func TestDrainEmpty(t *testing.T) {
	path := filepath.Join(t.TempDir(), "proxy.yaml")
	writeConfig(t, path, "")
	f := open(t, path)
	require.NoError(t, f.m.SetDrain("checkout", "c1", true, false))
	_, dir := f.p.Running()
	b := dir.Pools()[0].ByName("c1")
	b.Acquire()
	s, err := f.m.Server("checkout", "c1", 0)
	require.NoError(t, err)
	assert.Equal(t, int64(1), s.InFlight)
	assert.False(t, s.Empty)
	b.Release()
	s, err = f.m.Server("checkout", "c1", 0)
	require.NoError(t, err)
	assert.True(t, s.Empty, "not sticky: empty once nothing is in flight")
}

// headers is a director.HeaderView with one cookie.
type headers struct{ name, value string }

func (h headers) Peek(string) []byte { return nil }
func (h headers) Cookie(name string) []byte {
	if name == h.name {
		return []byte(h.value)
	}
	return nil
}

// TestStickyAcrossHosts: a server added at runtime under the same name on
// two L7 hosts is the same server to a sticky cookie on both.
func TestStickyAcrossHosts(t *testing.T) {
	const sticky = `listeners: [{addr: "127.0.0.1:0"}]
admin: {socket: /tmp/unused.sock}
sticky:
  keys: [{id: 1, secret: "VKNuQ6PekEdVQxoEKhL6bukHWptxdy/xGQ5HnIZSyKQ="}]
routes: [{name: checkout, pool: checkout}]
pools:
  - name: checkout
    sticky: {cookie: s}
    servers: [{name: c1, addr: "127.0.0.1:9001"}]
`
	var hosts []*fixture
	for range 2 {
		path := filepath.Join(t.TempDir(), "proxy.yaml")
		require.NoError(t, os.WriteFile(path, []byte(sticky), 0o600))
		f := open(t, path)
		require.NoError(t, f.m.AddServers("checkout", []NewServer{{Name: "c9", Addr: "127.0.0.1:9009"}}))
		hosts = append(hosts, f)
	}
	// Host A pins a new client to c9 (c1 drained there only).
	require.NoError(t, hosts[0].m.SetDrain("checkout", "c1", true, false))
	_, dirA := hosts[0].p.Running()
	var dec director.Decision
	dirA.Decide(&director.Request{Method: []byte("GET"), Path: []byte("/"), Headers: headers{}}, &dec)
	require.Equal(t, "c9", dec.Backend.Name)
	require.NotEmpty(t, dec.SetCookie)
	cookie, _, _ := strings.Cut(strings.TrimPrefix(string(dec.SetCookie), "s="), ";")
	dirA.Done(&dec, director.Outcome{Status: 200})

	// Host B, where c1 takes new clients too, honours the cookie.
	_, dirB := hosts[1].p.Running()
	for range 10 {
		var d director.Decision
		dirB.Decide(&director.Request{Method: []byte("GET"), Path: []byte("/"), Headers: headers{"s", cookie}}, &d)
		require.NotNil(t, d.Backend)
		assert.Equal(t, "c9", d.Backend.Name)
		assert.Equal(t, director.StickyHit, d.Sticky)
		dirB.Done(&d, director.Outcome{Status: 200})
	}
}

// TestDrainEmptySticky: in a sticky pool a draining server is empty only
// once no pinned client has come back for the quiet period (or the drain
// deadline passed).
func TestDrainEmptySticky(t *testing.T) {
	const text = `listeners: [{addr: "127.0.0.1:0"}]
admin: {socket: /tmp/unused.sock}
sticky:
  keys: [{id: 1, secret: "VKNuQ6PekEdVQxoEKhL6bukHWptxdy/xGQ5HnIZSyKQ="}]
routes: [{name: checkout, pool: checkout}]
pools:
  - name: checkout
    sticky: {cookie: s, drain_timeout: 1m}
    servers: [{name: c1, addr: "127.0.0.1:9001"}, {name: c2, addr: "127.0.0.1:9002"}]
`
	path := filepath.Join(t.TempDir(), "proxy.yaml")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
	f := open(t, path)
	_, dir := f.p.Running()

	// A client pinned to c1.
	var cookie string
	for i := 0; i < 100 && cookie == ""; i++ {
		var dec director.Decision
		dir.Decide(&director.Request{Method: []byte("GET"), Path: []byte("/"), Headers: headers{}}, &dec)
		if dec.Backend.Name == "c1" {
			cookie, _, _ = strings.Cut(strings.TrimPrefix(string(dec.SetCookie), "s="), ";")
		}
		dir.Done(&dec, director.Outcome{Status: 200})
	}
	require.NotEmpty(t, cookie)

	require.NoError(t, f.m.SetDrain("checkout", "c1", true, false))
	_, dir = f.p.Running()
	var dec director.Decision
	dir.Decide(&director.Request{Method: []byte("GET"), Path: []byte("/"), Headers: headers{"s", cookie}}, &dec)
	require.Equal(t, "c1", dec.Backend.Name, "a pinned client stays while draining")
	dir.Done(&dec, director.Outcome{Status: 200})
	seen := dir.Pools()[0].ByName("c1").StickySeen()
	require.False(t, seen.IsZero())
	_, deadline := dir.Pools()[0].ByName("c1").Draining()

	c1 := func(now time.Time) Server {
		for _, p := range describe(f.p, f.m.state, now, 5*time.Second) {
			for _, s := range p.Servers {
				if s.Name == "c1" {
					return s
				}
			}
		}
		t.Fatal("c1 not found")
		return Server{}
	}
	assert.False(t, c1(seen.Add(time.Second)).Empty, "a pinned client came 1s ago")
	assert.True(t, c1(seen.Add(6*time.Second)).Empty, "none for the quiet period")
	assert.True(t, c1(deadline.Add(time.Millisecond)).Empty, "deadline passed: pinned clients move")
}

// TestReloadSameAddrAsRuntimeServer: a config file that now has a server
// at the address of one added at runtime is the one that stays; the pool
// never holds the app server twice.
func TestReloadSameAddrAsRuntimeServer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "proxy.yaml")
	writeConfig(t, path, "")
	f := open(t, path)
	require.NoError(t, f.m.AddServers("checkout", []NewServer{{Name: "c9", Addr: "127.0.0.1:9009"}}))
	file := strings.Replace(fmt.Sprintf(baseConfig, ""), `      - {name: c2, addr: "127.0.0.1:9002"}`,
		`      - {name: c2, addr: "127.0.0.1:9002"}`+"\n"+`      - {name: c5, addr: "127.0.0.1:9009"}`, 1)
	require.NoError(t, os.WriteFile(path, []byte(file), 0o600))
	res, err := f.m.Reload()
	require.NoError(t, err)
	require.Len(t, res.Notes, 1)
	assert.Equal(t, "pool checkout server c9: file wins: server c5 has its addr 127.0.0.1:9009; the runtime-added server is dropped (each app server once per pool)", res.Notes[0].String())
	got := servers(t, f, "checkout")
	assert.Len(t, got, 3)
	assert.Contains(t, got, "c5")
	assert.NotContains(t, got, "c9")
}

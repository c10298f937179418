package state

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStoreRoundTrip(t *testing.T) {
	s := NewStore(filepath.Join(t.TempDir(), "sub", "state.json"))
	_, err := s.Load()
	require.ErrorIs(t, err, os.ErrNotExist)

	f := File{
		Base:    Desired{VIPs: []VIP{vip(vip1, be(b1, 1, false))}},
		Desired: Desired{VIPs: []VIP{vip(vip1, be(b1, 1, true), be(b2, 3, false)), vip(vip6)}},
	}
	require.NoError(t, s.Save(f))
	got, err := s.Load()
	require.NoError(t, err)
	assert.Equal(t, 1, got.Version)
	assert.True(t, f.Desired.Equal(got.Desired))
	assert.True(t, f.Base.Equal(got.Base))

	st, err := os.Stat(filepath.Dir(s.Path()))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), st.Mode().Perm())
}

func TestStoreRejectsBadFiles(t *testing.T) {
	tests := []struct {
		name, content, want string
	}{
		{"garbage", "{not json", "parse state"},
		{"future version", `{"version": 7}`, "version 7, this daemon reads version 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "state.json")
			require.NoError(t, os.WriteFile(p, []byte(tt.content), 0o600))
			_, err := NewStore(p).Load()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// TestCrashBetweenWriteAndRename kills a child process with SIGKILL after it
// has written and synced the new state's temporary file and before the
// rename: the state file must still hold exactly the old state, and the next
// Save must succeed and clean up.
func TestCrashBetweenWriteAndRename(t *testing.T) {
	if dir := os.Getenv("XLB_STATE_CRASH_DIR"); dir != "" {
		s := NewStore(filepath.Join(dir, "state.json"))
		s.beforeRename = func(string) { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL) }
		_ = s.Save(File{Desired: Desired{VIPs: []VIP{vip(vip2, be(b3, 9, false))}}})
		os.Exit(3) // not reached: the kill happens first
	}
	dir := t.TempDir()
	s := NewStore(filepath.Join(dir, "state.json"))
	old := File{Desired: Desired{VIPs: []VIP{vip(vip1, be(b1, 1, false))}}}
	require.NoError(t, s.Save(old))

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashBetweenWriteAndRename$")
	cmd.Env = append(os.Environ(), "XLB_STATE_CRASH_DIR="+dir)
	err := cmd.Run()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	ws := ee.Sys().(syscall.WaitStatus)
	require.True(t, ws.Signaled() && ws.Signal() == syscall.SIGKILL, "child must die by SIGKILL inside Save, got %v", err)

	temps, _ := filepath.Glob(filepath.Join(dir, ".state.json.tmp-*"))
	assert.Len(t, temps, 1, "the crash leaves the synced temporary file behind")
	got, err := s.Load()
	require.NoError(t, err)
	assert.True(t, old.Desired.Equal(got.Desired), "state after the crash is the old one: %+v", got)

	require.NoError(t, s.RemoveTemps())
	temps, _ = filepath.Glob(filepath.Join(dir, ".state.json.tmp-*"))
	assert.Empty(t, temps)
	newer := File{Desired: Desired{VIPs: []VIP{vip(vip2)}}}
	require.NoError(t, s.Save(newer))
	got, err = s.Load()
	require.NoError(t, err)
	assert.True(t, newer.Desired.Equal(got.Desired))
}

func TestSaveFailureKeepsOldState(t *testing.T) {
	dir := t.TempDir()
	s := NewStore(filepath.Join(dir, "state.json"))
	old := File{Desired: Desired{VIPs: []VIP{vip(vip1)}}}
	require.NoError(t, s.Save(old))
	// A directory where the file should go makes the rename fail.
	s2 := NewStore(filepath.Join(dir, "blocked"))
	require.NoError(t, os.Mkdir(filepath.Join(dir, "blocked"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "blocked", "x"), nil, 0o600))
	err := s2.Save(old)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "into place")
	temps, _ := filepath.Glob(filepath.Join(dir, ".blocked.tmp-*"))
	assert.Empty(t, temps, "a failed Save removes its temporary file")
	got, err := s.Load()
	require.NoError(t, err)
	assert.True(t, old.Desired.Equal(got.Desired))
}

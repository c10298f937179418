package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStartWithMissingInterfaceTouchesNothing: a config naming an interface
// the host does not have fails with the file, line and name, before the
// state file is written or a map is pinned. It used to pin every map and
// write the state file, then fail to attach.
func TestStartWithMissingInterfaceTouchesNothing(t *testing.T) {
	requireKernel(t) // the pins must be possible, or their absence proves nothing
	dir := t.TempDir()
	pin := "/sys/fs/bpf/" + uniquePrefix(t)
	t.Cleanup(func() { _ = os.RemoveAll(pin) })
	statePath := filepath.Join(dir, "state.json")
	cfgPath := filepath.Join(dir, "xlb.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(fmt.Sprintf(`interfaces:
  - name: lo
  - name: xlbnosuch0
outer_source:
  ipv4: 10.200.0.1
api:
  socket: %s
metrics:
  listen: ""
state:
  path: %s
bpf:
  pin_path: %s
vips:
  - address: 10.200.0.10
    port: 80
    protocol: tcp
    backends:
      - address: 10.200.1.1
`, filepath.Join(dir, "xlb.sock"), statePath, pin)), 0o600))

	_, err := New(context.Background(), Options{ConfigPath: cfgPath})
	require.Error(t, err)
	assert.Contains(t, err.Error(), cfgPath+`:3: interfaces[1].name: interface "xlbnosuch0" does not exist on this host`)
	assert.NoFileExists(t, statePath)
	assert.NoDirExists(t, pin)
	assert.NoFileExists(t, filepath.Join(dir, "xlb.sock"))
}

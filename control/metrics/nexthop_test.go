package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestNextHopResolved: with next hops from the FIB, each backend's
// resolution is a gauge; with a configured next-hop MAC it is absent.
func TestNextHopResolved(t *testing.T) {
	c := NewCollector(nil, func() []BackendView {
		return []BackendView{
			{VIP: "203.0.113.10:80/tcp", Backend: "10.0.1.1", Up: true, State: "active", NextHopKnown: true, NextHopResolved: true},
			{VIP: "203.0.113.10:80/tcp", Backend: "10.0.1.2", Up: true, State: "active", NextHopKnown: true},
			{VIP: "203.0.113.10:80/tcp", Backend: "10.0.1.3", Up: true, State: "active"},
		}
	})
	want := `
# HELP xlb_backend_next_hop_resolved 1 while the L7 host's next hop (from the kernel's FIB) is resolved, 0 while its packets are passed to the kernel instead; absent with a configured next-hop MAC.
# TYPE xlb_backend_next_hop_resolved gauge
xlb_backend_next_hop_resolved{backend="10.0.1.1",vip="203.0.113.10:80/tcp"} 1
xlb_backend_next_hop_resolved{backend="10.0.1.2",vip="203.0.113.10:80/tcp"} 0
`
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(want), "xlb_backend_next_hop_resolved"))
	problems, err := testutil.CollectAndLint(c)
	require.NoError(t, err)
	assert.Empty(t, problems)
}

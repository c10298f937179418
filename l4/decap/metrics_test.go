package decap

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type failingSource struct{}

func (failingSource) Stats() (Stats, error) { return Stats{}, errors.New("map gone") }

func TestCollector(t *testing.T) {
	d := openForTest(t)
	in4 := inner(t, false, "m")
	frames := [][]byte{
		tunnel4(t, l7Addr, false, in4, nil),
		tunnel4(t, l7Addr, false, in4, nil),
		tunnel4(t, other4, false, in4, nil),
	}
	for _, f := range frames {
		_, _ = run(t, d.Program(), f)
	}
	n := len(frames[0])
	want := fmt.Sprintf(`
# HELP xlb_decap_packets_total Frames seen by the L7 host's decapsulator, by outcome (decap_v4, decap_v6, gue_v4, gue_v6, not_for_us, malformed, passed).
# TYPE xlb_decap_packets_total counter
xlb_decap_packets_total{reason="decap_v4"} 2
xlb_decap_packets_total{reason="decap_v6"} 0
xlb_decap_packets_total{reason="gue_v4"} 0
xlb_decap_packets_total{reason="gue_v6"} 0
xlb_decap_packets_total{reason="malformed"} 0
xlb_decap_packets_total{reason="not_for_us"} 1
xlb_decap_packets_total{reason="passed"} 0
# HELP xlb_decap_bytes_total Bytes (frames as received, outer header included) seen by the decapsulator, by outcome.
# TYPE xlb_decap_bytes_total counter
xlb_decap_bytes_total{reason="decap_v4"} %d
xlb_decap_bytes_total{reason="decap_v6"} 0
xlb_decap_bytes_total{reason="gue_v4"} 0
xlb_decap_bytes_total{reason="gue_v6"} 0
xlb_decap_bytes_total{reason="malformed"} 0
xlb_decap_bytes_total{reason="not_for_us"} %d
xlb_decap_bytes_total{reason="passed"} 0
# HELP xlb_decap_stats_errors_total Failed reads of the decapsulator's BPF counters since start.
# TYPE xlb_decap_stats_errors_total counter
xlb_decap_stats_errors_total 0
`, 2*n, n)
	c := NewCollector(d)
	require.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(want)))
	problems, err := testutil.CollectAndLint(c)
	require.NoError(t, err)
	assert.Empty(t, problems)
}

func TestCollectorReadError(t *testing.T) {
	c := NewCollector(failingSource{})
	want := `
# HELP xlb_decap_stats_errors_total Failed reads of the decapsulator's BPF counters since start.
# TYPE xlb_decap_stats_errors_total counter
xlb_decap_stats_errors_total 2
`
	_ = testutil.CollectAndCount(c) // first failed scrape
	assert.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(want)), "no counters, the error counted")
}

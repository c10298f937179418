package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/control/api"
)

// statsSeq is three snapshots one (daemon) second apart: rates come from the
// daemon's timestamps, so the tests need no real waiting.
func statsSeq() []api.Stats {
	snap := func(sec int, p1, p2, flows, nob uint64) api.Stats {
		return api.Stats{
			Time: clock.Add(time.Duration(sec) * time.Second),
			VIPs: []api.VIPStats{{
				Key: vip4, Counter: api.Counter{Packets: p1 + p2, Bytes: 1000 * (p1 + p2)}, NewFlows: flows,
				Backends: []api.BackendStats{
					{Addr: l7a, Counter: api.Counter{Packets: p1, Bytes: 1000 * p1}},
					{Addr: l7c, Counter: api.Counter{Packets: p2, Bytes: 1000 * p2}},
				},
			}},
			Reasons:       map[string]uint64{"no_backend": nob, "not_vip": 7, "xdp_aborted": 0},
			ConntrackHits: p1 + p2 - flows, ConntrackMisses: flows,
		}
	}
	return []api.Stats{
		snap(0, 1000, 1000, 20, 0),
		snap(1, 3000, 2500, 50, 4),
		snap(2, 3000, 5000, 80, 4), // 10.0.1.11 drained and idle: its counters stop
	}
}

func TestStatsCommand(t *testing.T) {
	seq := statsSeq()
	// -o json prints one object per line (NDJSON), also for one report.
	r1, err := json.Marshal(api.ComputeRates(seq[0], seq[1]))
	require.NoError(t, err)
	r2, err := json.Marshal(api.ComputeRates(seq[1], seq[2]))
	require.NoError(t, err)
	report1 := "" +
		"2026-11-27T10:00:01Z  (rates over 1s)\n" +
		"VIP / BACKEND    PPS   BPS    NEW FLOWS/S  PACKETS  BYTES\n" +
		"10.0.0.1:80/tcp  3.5k  28.0M  30           5500     5500000\n" +
		"  10.0.1.11      2.0k  16.0M               3000     3000000\n" +
		"  10.0.1.13      1.5k  12.0M               2500     2500000\n" +
		"\n" +
		"REASON      PPS  PACKETS\n" +
		"no_backend  4    4\n" +
		"not_vip     0    7\n" +
		"Conntrack: 5450 hits, 50 misses\n"
	report2 := "" +
		"2026-11-27T10:00:02Z  (rates over 1s)\n" +
		"VIP / BACKEND    PPS   BPS    NEW FLOWS/S  PACKETS  BYTES\n" +
		"10.0.0.1:80/tcp  2.5k  20.0M  30           8000     8000000\n" +
		"  10.0.1.11      0     0                   3000     3000000\n" +
		"  10.0.1.13      2.5k  20.0M               5000     5000000\n" +
		"\n" +
		"REASON      PPS  PACKETS\n" +
		"no_backend  0    4\n" +
		"not_vip     0    7\n" +
		"Conntrack: 7920 hits, 80 misses\n"

	newDaemon := func() *fakeDaemon { return &fakeDaemon{stats: statsSeq()} }
	runCLICases(t, newDaemon, []cliCase{
		{
			name:      "one report",
			args:      []string{"stats", "--interval", "1ms"},
			wantCalls: []call{{Method: "Stats"}, {Method: "Stats"}},
			wantOut:   report1,
		},
		{
			name:      "watch two reports",
			args:      []string{"stats", "--watch", "--count", "2", "--interval", "1ms"},
			wantCalls: []call{{Method: "Stats"}, {Method: "Stats"}, {Method: "Stats"}},
			wantOut:   report1 + "\n" + report2,
		},
		{
			name:      "watch json",
			args:      []string{"stats", "-w", "--count", "2", "--interval", "1ms", "-o", "json"},
			wantCalls: []call{{Method: "Stats"}, {Method: "Stats"}, {Method: "Stats"}},
			wantOut:   string(r1) + "\n" + string(r2) + "\n",
		},
		{name: "bad interval", args: []string{"stats", "--interval", "0s"}, wantErr: "invalid --interval 0s: must be positive"},
		{name: "bad count", args: []string{"stats", "--count", "-1"}, wantErr: "invalid --count -1"},
	})
}

// TestStatsNDJSON reads `stats -o json --watch` the way a script does: line
// by line, each line one whole report.
func TestStatsNDJSON(t *testing.T) {
	path := startDaemon(t, &fakeDaemon{stats: statsSeq()})
	stdout, _, err := runXLB(t, path, "stats", "-w", "--count", "2", "--interval", "1ms", "-o", "json")
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	require.Len(t, lines, 2)
	seq := statsSeq()
	for i, line := range lines {
		var got api.StatsRates
		require.NoError(t, json.Unmarshal([]byte(line), &got), "line %d", i+1)
		want := api.ComputeRates(seq[i], seq[i+1])
		assert.Equal(t, want.VIPs[0].PPS, got.VIPs[0].PPS, "line %d", i+1)
		assert.Equal(t, want.Current.ConntrackHits, got.Current.ConntrackHits, "line %d", i+1)
	}
}

func TestSI(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{{0, "0"}, {999, "999"}, {1000, "1.0k"}, {1_500_000, "1.5M"}, {9.1e9, "9.1G"}}
	for _, tt := range tests {
		assert.Equal(t, tt.want, si(tt.in))
	}
}

func TestAgo(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "just now"}, {250 * time.Millisecond, "250ms ago"}, {1500 * time.Millisecond, "1.5s ago"},
		{2*time.Minute + 5*time.Second, "2m05s ago"}, {3*time.Hour + 4*time.Minute, "3h04m ago"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, ago(clock, clock.Add(-tt.d)))
	}
	assert.Equal(t, "never", ago(clock, time.Time{}))
	assert.True(t, strings.HasPrefix(ago(clock, clock.Add(-72*time.Hour)), "2026-11-24T10:00:00Z"))
}

// cutStats answers Stats once, then blocks the next request until the
// context ends and fails it with the context's error, as a request cut by
// the deadline or by Ctrl-C does.
type cutStats struct {
	api.Service
	calls int
}

func (c *cutStats) Stats(ctx context.Context) (api.Stats, error) {
	c.calls++
	if c.calls == 1 {
		return statsSeq()[0], nil
	}
	<-ctx.Done()
	return api.Stats{}, fmt.Errorf("get stats: %w", ctx.Err())
}

// TestStatsWatchEndsWithContext: --watch ends cleanly when its context ends
// during a request, for a deadline as for a cancel. A deadline used to
// surface as the command's error (and failed the --help examples' test on
// a busy machine).
func TestStatsWatchEndsWithContext(t *testing.T) {
	for _, name := range []string{"deadline", "cancel"} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			if name == "cancel" {
				ctx, cancel = context.WithCancel(context.Background())
				time.AfterFunc(200*time.Millisecond, cancel)
			}
			svc := &cutStats{}
			var out strings.Builder
			err := runStats(ctx, &out, svc, statsOptions{interval: time.Millisecond, watch: true, output: outputJSON})
			assert.NoError(t, err)
			assert.Equal(t, 2, svc.calls)
			assert.Empty(t, out.String())
		})
	}
}

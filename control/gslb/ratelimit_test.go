package gslb

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRateLimitDropsAndSlips(t *testing.T) {
	// A rate so low that no token comes back during the test: exactly the
	// burst passes.
	r := start(t, "rate_limit: {responses_per_second: 0.0001, burst: 5, slip: 2}\n"+zoneConfig)
	c, err := net.Dial("udp", r.addr)
	require.NoError(t, err)
	defer c.Close()
	q, err := new(dns.Msg).SetQuestion("www.example.com.", dns.TypeA).Pack()
	require.NoError(t, err)
	var full, slipped, dropped int
	buf := make([]byte, 1500)
	for range 20 {
		_, err := c.Write(q)
		require.NoError(t, err)
		require.NoError(t, c.SetReadDeadline(time.Now().Add(300*time.Millisecond)))
		n, err := c.Read(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			dropped++
			continue
		}
		require.NoError(t, err)
		var m dns.Msg
		require.NoError(t, m.Unpack(buf[:n]))
		if m.Truncated {
			assert.Empty(t, m.Answer)
			slipped++
		} else {
			assert.Equal(t, []string{"192.0.2.80"}, addrs(&m))
			full++
		}
	}
	assert.Equal(t, 5, full, "the burst")
	assert.Equal(t, 7, slipped, "every 2nd of the 15 over the limit")
	assert.Equal(t, 8, dropped)
	assert.Equal(t, 8.0, testutil.ToFloat64(r.metrics.limited.WithLabelValues("drop")))
	assert.Equal(t, 7.0, testutil.ToFloat64(r.metrics.limited.WithLabelValues("slip")))
	// TCP is never limited: the slipped client gets its answer there.
	assert.Equal(t, []string{"192.0.2.80"}, addrs(ask(t, "tcp", r.addr, "www.example.com", dns.TypeA)))
}

func TestRateLimitConfig(t *testing.T) {
	cfg, err := Parse("dns.yaml", []byte("rate_limit: {responses_per_second: 50}\n"+zoneConfig))
	require.NoError(t, err)
	assert.Equal(t, RateLimit{Rate: 50, Burst: 100, Slip: 2}, cfg.RateLimit)
	_, err = Parse("dns.yaml", []byte("rate_limit: {responses_per_second: 0, slip: -1}\n"+zoneConfig))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "dns.yaml:1: rate_limit: responses_per_second must be more than 0")
}

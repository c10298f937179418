package gslb

import (
	"fmt"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// combined is a geo name whose nearest region has two sites sharing the
// answers 3:1, and a failover name whose first tier has two sites
// sharing them 1:1; %s are the five sites' daemons.
const combined = `
geoip: %%GEO%%
zones:
  - name: example.com
    records: [` + soa + `]
sites:
  - {name: us-a, location: {lat: 39.0, lon: -77.5}, vips: [192.0.2.10], health: {daemons: ["%s"], interval: 20ms, timeout: 5s, rise: 1, fall: 1}}
  - {name: us-b, location: {lat: 40.7, lon: -74.0}, vips: [192.0.2.11], health: {daemons: ["%s"], interval: 20ms, timeout: 5s, rise: 1, fall: 1}}
  - {name: eu, location: {lat: 53.3, lon: -6.3}, vips: [198.51.100.10], health: {daemons: ["%s"], interval: 20ms, timeout: 5s, rise: 1, fall: 1}}
  - {name: ap, location: {lat: 35.7, lon: 139.7}, vips: [203.0.113.10], health: {daemons: ["%s"], interval: 20ms, timeout: 5s, rise: 1, fall: 1}}
  - {name: dr, vips: [192.0.2.99], health: {daemons: ["%s"], interval: 20ms, timeout: 5s, rise: 1, fall: 1}}
names:
  - name: shop.example.com
    policy: geo
    sites: [us-a, us-b, eu, ap]
    nearby_km: 1000
    weights: {us-a: 3, us-b: 1}
  - name: api.example.com
    policy: failover
    sites: [us-a, us-b, dr]
    priorities: {us-a: 1, us-b: 1, dr: 2}
`

func TestCombinedPolicies(t *testing.T) {
	names := []string{"us-a", "us-b", "eu", "ap", "dr"}
	vips := []string{"192.0.2.10", "192.0.2.11", "198.51.100.10", "203.0.113.10", "192.0.2.99"}
	ds := map[string]*fakeDaemon{}
	var urls []any
	for i, n := range names {
		ds[n] = newDaemon(t, vips[i])
		urls = append(urls, ds[n].srv.URL)
	}
	r := start(t, fmt.Sprintf(combined, urls...))
	// waitUp waits until the checker sees exactly the wanted sites up.
	waitUp := func(up ...string) {
		t.Helper()
		for _, n := range names {
			ds[n].healthy.Store(false)
		}
		for _, n := range up {
			ds[n].healthy.Store(true)
		}
		require.Eventually(t, func() bool {
			for _, n := range names {
				if r.checker.Up(n) != (ds[n].healthy.Load()) {
					return false
				}
			}
			return true
		}, 30*time.Second, 10*time.Millisecond, "sites up: want %v", up)
	}
	// count asks n times and counts the answers' addresses.
	count := func(name, ecs string, n int) map[string]int {
		t.Helper()
		got := map[string]int{}
		for range n {
			m := ask(t, "udp", r.addr, name, dns.TypeA, withECS(ecs))
			require.Len(t, m.Answer, 1, "one site per answer")
			got[addrs(m)[0]]++
		}
		return got
	}
	const n = 200
	virginia, paris, tokyo := "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"

	waitUp(names...)
	us := count("shop.example.com", virginia, n)
	assert.Equal(t, n, us["192.0.2.10"]+us["192.0.2.11"], "a US client gets the US region only: %v", us)
	assert.Positive(t, us["192.0.2.11"], "the region's second site takes its share: %v", us)
	assert.Greater(t, us["192.0.2.10"], us["192.0.2.11"], "weights 3:1: %v", us)
	assert.Equal(t, map[string]int{"198.51.100.10": n}, count("shop.example.com", paris, n), "the other regions' sites are farther than nearby_km")
	assert.Equal(t, map[string]int{"203.0.113.10": n}, count("shop.example.com", tokyo, n))
	api := count("api.example.com", virginia, n)
	assert.Equal(t, n, api["192.0.2.10"]+api["192.0.2.11"], "failover: the first tier only: %v", api)
	assert.Positive(t, api["192.0.2.10"])
	assert.Positive(t, api["192.0.2.11"])

	waitUp("us-b", "eu", "ap", "dr")
	assert.Equal(t, map[string]int{"192.0.2.11": n}, count("shop.example.com", virginia, n), "one US site down: the other takes the region")
	assert.Equal(t, map[string]int{"192.0.2.11": n}, count("api.example.com", virginia, n), "one site of the tier down: the other takes it")

	waitUp("eu", "ap", "dr")
	assert.Equal(t, map[string]int{"198.51.100.10": n}, count("shop.example.com", virginia, n), "the US region down: the next nearest region")
	assert.Equal(t, map[string]int{"192.0.2.99": n}, count("api.example.com", virginia, n), "the first tier down: the next tier")

	waitUp(names...)
	assert.Equal(t, n, sum(count("shop.example.com", virginia, n), "192.0.2.10", "192.0.2.11"), "back up: the US region again")
}

func sum(m map[string]int, keys ...string) int {
	s := 0
	for _, k := range keys {
		s += m[k]
	}
	return s
}

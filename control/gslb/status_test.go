package gslb

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStatusShowsSitesAndNames(t *testing.T) {
	good, bad := newDaemon(t, "192.0.2.10"), newDaemon(t, "198.51.100.10")
	bad.healthy.Store(false)
	r := start(t, fmt.Sprintf(`
zones:
  - name: example.com
    records: [`+soa+`]
sites:
  - {name: a, vips: [192.0.2.10], health: {daemons: ["%s"], interval: 20ms, timeout: 5s, rise: 1, fall: 1}}
  - {name: b, vips: [198.51.100.10], health: {daemons: ["%s"], interval: 20ms, timeout: 5s, rise: 1, fall: 1}}
  - {name: c, vips: [203.0.113.10]}
names:
  - {name: x.example.com, sites: [a, b]}
  - {name: y.example.com, sites: [b], all_down: c}
`, good.srv.URL, bad.srv.URL))
	require.Eventually(t, func() bool { return r.checker.Up("a") && bad.requests.Load() > 0 }, 30*time.Second, 10*time.Millisecond)
	hs := httptest.NewServer(r.srv.StatusHandler("test"))
	t.Cleanup(hs.Close)

	var st Status
	require.Eventually(t, func() bool {
		resp, err := http.Get(hs.URL)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		st = Status{}
		return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&st) == nil &&
			len(st.Sites) == 3 && st.Sites[1].Checked
	}, 30*time.Second, 10*time.Millisecond)
	assert.Equal(t, "dns", st.Kind)
	assert.Equal(t, "test", st.Version)
	assert.Equal(t, Summary{Sites: 3, Up: 2, Down: 1, Names: 2, NamesAllDown: 1}, st.Summary)
	a, b, c := st.Sites[0], st.Sites[1], st.Sites[2]
	assert.Equal(t, "a", a.Name)
	assert.True(t, a.Up)
	assert.Equal(t, "daemons", a.Check)
	assert.Equal(t, []string{good.srv.URL}, a.Targets)
	assert.Contains(t, a.Reason, "1 of 1 daemons report 192.0.2.10 usable")
	assert.False(t, a.Since.IsZero())
	assert.False(t, b.Up)
	assert.Contains(t, b.Reason, "no active backend")
	assert.Equal(t, SiteState{Name: "c", VIPs: c.VIPs, Check: "none", Up: true, Checked: true}, c, "a site without health is always up")
	assert.Equal(t, []NameState{
		{Name: "x.example.com.", Policy: PolicyFailover, Sites: []string{"a", "b"}, Up: 1, AllDown: AllDownAll, TTL: 30},
		{Name: "y.example.com.", Policy: PolicyFailover, Sites: []string{"b"}, Up: 0, AllDown: "c", TTL: 30},
	}, st.Names)

	// b comes up: one change, counted.
	bad.healthy.Store(true)
	require.Eventually(t, func() bool { return r.checker.Up("b") }, 30*time.Second, 10*time.Millisecond)
	st = r.srv.Status("test")
	assert.Equal(t, uint64(1), st.Sites[1].Transitions)
	assert.Equal(t, 0, st.Summary.NamesAllDown)
}

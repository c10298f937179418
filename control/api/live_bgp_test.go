package api

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/internal/statuspage"
	"github.com/xlbproject/xlb/internal/statuspage/browsertest"
)

func bgpFixture(peer2Up bool) *BGPStatus {
	state := "active"
	if peer2Up {
		state = "established"
	}
	return &BGPStatus{
		ASN: 65001, RouterID: netip.MustParseAddr("192.0.2.10"),
		Announced: []netip.Prefix{netip.MustParsePrefix("203.0.113.10/32")},
		Peers: []BGPPeer{
			{Addr: netip.MustParseAddr("192.0.2.1"), ASN: 65000, State: "established", Up: true, Flaps: 1},
			{Addr: netip.MustParseAddr("192.0.2.2"), ASN: 65000, State: state, Up: peer2Up, LastError: "hold timer expired"},
		},
	}
}

// TestLiveStatusCarriesBGP: the page's JSON has the speaker's sessions and
// announcements when BGP is on, and no bgp field when it is off.
func TestLiveStatusCarriesBGP(t *testing.T) {
	st := BuildLiveStatus(Status{BGP: bgpFixture(true)}, StatsRates{})
	require.NotNil(t, st.BGP)
	assert.Equal(t, uint32(65001), st.BGP.ASN)
	assert.Len(t, st.BGP.Peers, 2)
	assert.Nil(t, BuildLiveStatus(Status{}, StatsRates{}).BGP)
}

// TestStatusPageShowsBGPPeers renders an edge status with two BGP sessions
// in a real headless Chromium: both peers are listed, a session that goes
// down turns its row red and raises the banner, without a reload.
func TestStatusPageShowsBGPPeers(t *testing.T) {
	var up atomic.Bool
	up.Store(true)
	mux := http.NewServeMux()
	statuspage.Mount(mux, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		st := BuildLiveStatus(Status{Time: time.Now(), BGP: bgpFixture(up.Load())}, StatsRates{})
		statuspage.WriteJSON(w, st)
	}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	b := browsertest.Open(t, srv.URL+"/")
	require.Eventually(t, func() bool { return b.RowState("bgp:192.0.2.2") == "up" }, 20*time.Second, 100*time.Millisecond)
	assert.Contains(t, b.RowText("bgp:192.0.2.1"), "established")
	assert.Contains(t, b.Text("#view-bgp .note"), "announcing 203.0.113.10/32")
	b.Mark()

	up.Store(false)
	require.Eventually(t, func() bool { return b.RowState("bgp:192.0.2.2") == "down" }, 20*time.Second, 100*time.Millisecond)
	assert.Contains(t, b.Text("#banner"), "BGP session to 192.0.2.2 is active: hold timer expired")
	assert.True(t, b.Marked(), "updated in place, not reloaded")
	b.Screenshot("status-bgp")
}

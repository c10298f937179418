package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	gobgpapi "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/xlbproject/xlb/control/api"
)

// Families a peer can carry.
const (
	FamilyIPv4 = "ipv4"
	FamilyIPv6 = "ipv6"
)

// Config is the speaker's part of the daemon configuration.
type Config struct {
	ASN      uint32
	RouterID netip.Addr
	// ListenPort is the TCP port to accept sessions on; 0 does not listen
	// (the speaker connects to its peers itself).
	ListenPort uint16
	// NextHopV4 and NextHopV6 are this host's own addresses (the daemon's
	// outer_source): the routers send a VIP's packets there.
	NextHopV4, NextHopV6 netip.Addr
	// RestartTime is the graceful-restart time offered to the peers: how
	// long a router keeps this host's routes after the session drops
	// without a NOTIFICATION. 0 disables graceful restart.
	RestartTime time.Duration
	Peers       []Peer
	// Attrs are optional per-VIP path attributes, by VIP address.
	Attrs map[netip.Addr]Attrs
}

// Peer is one BGP neighbour (a router).
type Peer struct {
	Addr netip.Addr
	// Port is the peer's TCP port; 0 is 179.
	Port     uint16
	ASN      uint32
	Password string // TCP MD5 signature (RFC 2385); empty for none
	// HoldTime and Keepalive are the timers this side proposes; the
	// session uses the smaller hold time of the two sides.
	HoldTime  time.Duration
	Keepalive time.Duration
	// Families are FamilyIPv4 and/or FamilyIPv6.
	Families []string
}

// Attrs are extra path attributes of one VIP's route.
type Attrs struct {
	Communities []uint32 // RFC 1997, each ASN<<16 | value
	LocalPref   uint32   // 0: not sent (meaningful to iBGP peers only)
}

// importPolicy names the speaker's import policy in GoBGP.
const importPolicy = "xlb-import"

// Speaker is a running BGP speaker.
type Speaker struct {
	log *slog.Logger
	cfg Config
	srv *server.BgpServer

	stopWatch context.CancelFunc

	mu        sync.Mutex
	announced map[netip.Prefix]*apiutil.Path
	held      string
	lastErr   string
	peers     map[netip.Addr]*peerState
	stopped   bool
}

type peerState struct {
	asn     uint32
	state   bgp.FSMState
	since   time.Time
	flaps   uint64
	lastErr string
}

// Start starts the speaker and its sessions. restarting sets the
// graceful-restart "restarted" bit: a router still holding this host's
// routes from the previous daemon keeps them until this speaker has sent
// its own (End-of-RIB).
func Start(ctx context.Context, log *slog.Logger, cfg Config, restarting bool) (_ *Speaker, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// GoBGP logs every FSM step at info; keep its warnings only.
	lvl := &slog.LevelVar{}
	lvl.Set(slog.LevelWarn)
	s := &Speaker{
		log:       log,
		cfg:       cfg,
		srv:       server.NewBgpServer(server.LoggerOption(log.With("component", "gobgp"), lvl)),
		announced: map[netip.Prefix]*apiutil.Path{},
		peers:     map[netip.Addr]*peerState{},
	}
	go s.srv.Serve()
	started := false
	defer func() {
		if err != nil {
			if started {
				_ = s.srv.StopBgp(context.Background(), &gobgpapi.StopBgpRequest{})
			}
			s.srv.Stop()
		}
	}()
	port := int32(-1) // GoBGP: do not listen
	if cfg.ListenPort != 0 {
		port = int32(cfg.ListenPort)
	}
	// Families are GoBGP's config enum (0 IPv4 unicast, 1 IPv6 unicast);
	// without them the RIB would take IPv4 paths only.
	global := &gobgpapi.Global{Asn: cfg.ASN, RouterId: cfg.RouterID.String(), ListenPort: port, Families: []uint32{0, 1}}
	if err := s.srv.StartBgp(ctx, &gobgpapi.StartBgpRequest{Global: global}); err != nil {
		return nil, fmt.Errorf("start bgp: %w", err)
	}
	started = true
	// The daemon never installs learned routes; not even GoBGP's own RIB
	// keeps them. GoBGP runs its global import policy on the speaker's own
	// paths too, so those are accepted by a statement before the default
	// rejects the rest.
	pol := &gobgpapi.Policy{Name: importPolicy, Statements: []*gobgpapi.Statement{{
		Name:       importPolicy + "-local",
		Conditions: &gobgpapi.Conditions{RouteType: gobgpapi.Conditions_ROUTE_TYPE_LOCAL},
		Actions:    &gobgpapi.Actions{RouteAction: gobgpapi.RouteAction_ROUTE_ACTION_ACCEPT},
	}}}
	if err := s.srv.AddPolicy(ctx, &gobgpapi.AddPolicyRequest{Policy: pol}); err != nil {
		return nil, fmt.Errorf("add import policy: %w", err)
	}
	if err := s.srv.SetPolicyAssignment(ctx, &gobgpapi.SetPolicyAssignmentRequest{Assignment: &gobgpapi.PolicyAssignment{
		Direction:     gobgpapi.PolicyDirection_POLICY_DIRECTION_IMPORT,
		Policies:      []*gobgpapi.Policy{{Name: importPolicy}},
		DefaultAction: gobgpapi.RouteAction_ROUTE_ACTION_REJECT,
	}}); err != nil {
		return nil, fmt.Errorf("set import policy: %w", err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	s.stopWatch = cancel
	if err := s.srv.WatchEvent(wctx, server.WatchEventMessageCallbacks{OnPeerUpdate: s.onPeer}, server.WatchPeer()); err != nil {
		cancel()
		return nil, fmt.Errorf("watch bgp peers: %w", err)
	}
	for _, p := range cfg.Peers {
		s.mu.Lock()
		s.peers[p.Addr] = &peerState{asn: p.ASN, state: bgp.BGP_FSM_IDLE, since: time.Now()}
		s.mu.Unlock()
		if err := s.srv.AddPeer(ctx, &gobgpapi.AddPeerRequest{Peer: s.peerConf(p, restarting)}); err != nil {
			cancel()
			return nil, fmt.Errorf("add bgp peer %s: %w", p.Addr, err)
		}
	}
	return s, nil
}

func (s *Speaker) peerConf(p Peer, restarting bool) *gobgpapi.Peer {
	secs := func(d time.Duration) uint64 { return uint64(d.Round(time.Second) / time.Second) }
	// A peer that went away is retried after a keepalive interval, not
	// GoBGP's default two minutes: a router back from a reboot should
	// get the routes again at once.
	retry := max(secs(p.Keepalive), 1)
	gp := &gobgpapi.Peer{
		Conf: &gobgpapi.PeerConf{NeighborAddress: p.Addr.String(), PeerAsn: p.ASN, AuthPassword: p.Password},
		Timers: &gobgpapi.Timers{Config: &gobgpapi.TimersConfig{
			HoldTime: secs(p.HoldTime), KeepaliveInterval: secs(p.Keepalive),
			ConnectRetry: retry, IdleHoldTimeAfterReset: retry,
		}},
		Transport: &gobgpapi.Transport{RemotePort: uint32(p.Port)},
	}
	if p.Port == 0 {
		gp.Transport.RemotePort = 179
	}
	gr := s.cfg.RestartTime > 0
	if gr {
		gp.GracefulRestart = &gobgpapi.GracefulRestart{
			Enabled:         true,
			RestartTime:     uint32(secs(s.cfg.RestartTime)),
			LocalRestarting: restarting,
			// How long a restarted speaker waits for its peers'
			// End-of-RIB before it sends its own routes anyway.
			DeferralTime: uint32(max(secs(p.HoldTime), 1)),
		}
	}
	for _, f := range p.Families {
		fam := &gobgpapi.Family{Afi: gobgpapi.Family_AFI_IP, Safi: gobgpapi.Family_SAFI_UNICAST}
		if f == FamilyIPv6 {
			fam.Afi = gobgpapi.Family_AFI_IP6
		}
		as := &gobgpapi.AfiSafi{Config: &gobgpapi.AfiSafiConfig{Family: fam, Enabled: true}}
		if gr {
			as.MpGracefulRestart = &gobgpapi.MpGracefulRestart{Config: &gobgpapi.MpGracefulRestartConfig{Enabled: true}}
		}
		gp.AfiSafis = append(gp.AfiSafis, as)
	}
	return gp
}

// onPeer records a session's state transitions (GoBGP's watcher goroutine).
func (s *Speaker) onPeer(ev *apiutil.WatchEventMessage_PeerEvent, t time.Time) {
	if ev.Type != apiutil.PEER_EVENT_STATE {
		return
	}
	addr := ev.Peer.State.NeighborAddress
	s.mu.Lock()
	defer s.mu.Unlock()
	ps, ok := s.peers[addr]
	if !ok || ps.state == ev.Peer.State.SessionState {
		return
	}
	old := ps.state
	ps.state, ps.since = ev.Peer.State.SessionState, t
	switch {
	case ps.state == bgp.BGP_FSM_ESTABLISHED:
		s.log.Info("bgp session established", "peer", addr, "announced", len(s.announced))
	case old == bgp.BGP_FSM_ESTABLISHED:
		ps.flaps++
		ps.lastErr = ev.Peer.State.DisconnectMessage
		if ps.lastErr == "" {
			ps.lastErr = strings.ToLower(strings.TrimPrefix(ev.Peer.State.DisconnectReason.String(), "DISCONNECT_REASON_"))
		}
		if !s.stopped {
			s.log.Warn("bgp session down", "peer", addr, "state", stateName(ps.state), "reason", ps.lastErr)
		}
	}
}

// Announce makes prefixes the set of routes offered to every peer (adding
// and withdrawing the difference). held, when not empty, says why VIPs are
// not announced (shown in status).
func (s *Speaker) Announce(prefixes []netip.Prefix, held string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held = held
	if s.stopped {
		return errors.New("bgp speaker stopped")
	}
	want := map[netip.Prefix]bool{}
	for _, p := range prefixes {
		want[p.Masked()] = true
	}
	var errs []error
	for p, path := range s.announced {
		if want[p] {
			continue
		}
		if err := s.srv.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{path}}); err != nil {
			errs = append(errs, fmt.Errorf("withdraw %s: %w", p, err))
			continue
		}
		delete(s.announced, p)
		s.log.Info("bgp route withdrawn", "prefix", p)
	}
	for p := range want {
		if _, ok := s.announced[p]; ok {
			continue
		}
		path, err := s.path(p)
		if err == nil {
			_, err = s.srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{path}})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("announce %s: %w", p, err))
			continue
		}
		s.announced[p] = path
		s.log.Info("bgp route announced", "prefix", p)
	}
	err := errors.Join(errs...)
	s.lastErr = ""
	if err != nil {
		s.lastErr = err.Error()
	}
	return err
}

// path builds the route of one VIP prefix. GoBGP needs Family set on
// every path it is given ("address family is not set" otherwise).
func (s *Speaker) path(p netip.Prefix) (*apiutil.Path, error) {
	nlri, err := bgp.NewIPAddrPrefix(p)
	if err != nil {
		return nil, err
	}
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	path := &apiutil.Path{Nlri: nlri}
	if p.Addr().Is4() {
		if !s.cfg.NextHopV4.IsValid() {
			return nil, errors.New("no IPv4 next hop (outer_source.ipv4)")
		}
		nh, err := bgp.NewPathAttributeNextHop(s.cfg.NextHopV4)
		if err != nil {
			return nil, err
		}
		path.Family = bgp.RF_IPv4_UC
		attrs = append(attrs, nh)
	} else {
		if !s.cfg.NextHopV6.IsValid() {
			return nil, errors.New("no IPv6 next hop (outer_source.ipv6)")
		}
		mp, err := bgp.NewPathAttributeMpReachNLRI(bgp.RF_IPv6_UC, []bgp.PathNLRI{{NLRI: nlri}}, s.cfg.NextHopV6)
		if err != nil {
			return nil, err
		}
		path.Family = bgp.RF_IPv6_UC
		attrs = append(attrs, mp)
	}
	if a, ok := s.cfg.Attrs[p.Addr()]; ok {
		if len(a.Communities) > 0 {
			attrs = append(attrs, bgp.NewPathAttributeCommunities(a.Communities))
		}
		if a.LocalPref != 0 {
			attrs = append(attrs, bgp.NewPathAttributeLocalPref(a.LocalPref))
		}
	}
	path.Attrs = attrs
	return path, nil
}

// Stop ends every session and the speaker. restart=false is a shutdown:
// each peer gets a NOTIFICATION and drops this host's routes at once (call
// Announce(nil) and wait the drain delay first, so that they go before the
// session does). restart=true closes the sessions without NOTIFICATION so
// that graceful-restart routers keep the routes for the next daemon.
func (s *Speaker) Stop(restart bool) error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	s.mu.Unlock()
	s.stopWatch()
	err := s.srv.StopBgp(context.Background(), &gobgpapi.StopBgpRequest{AllowGracefulRestart: restart})
	s.srv.Stop()
	if err != nil {
		return fmt.Errorf("stop bgp: %w", err)
	}
	return nil
}

// Status is the speaker's state for the API.
func (s *Speaker) Status() api.BGPStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := api.BGPStatus{ASN: s.cfg.ASN, RouterID: s.cfg.RouterID, Held: s.held, LastError: s.lastErr,
		Peers: []api.BGPPeer{}, Announced: []netip.Prefix{}}
	for _, p := range s.cfg.Peers {
		ps := s.peers[p.Addr]
		st.Peers = append(st.Peers, api.BGPPeer{
			Addr: p.Addr, ASN: p.ASN, State: stateName(ps.state), Up: ps.state == bgp.BGP_FSM_ESTABLISHED,
			Since: ps.since, Flaps: ps.flaps, LastError: ps.lastErr,
		})
	}
	for p := range s.announced {
		st.Announced = append(st.Announced, p)
	}
	slices.SortFunc(st.Announced, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return st
}

// stateName is an FSM state in the words of RFC 4271 ("established").
func stateName(s bgp.FSMState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "BGP_FSM_"))
}

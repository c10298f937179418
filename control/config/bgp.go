package config

import (
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// BGP defaults. The timers are FRR's datacenter profile: a silent
// failure (a host that stops answering without its link going down) is
// detected within the hold time, 9 s; a failure the router sees as link
// down takes effect at once whatever the timers.
const (
	DefaultBGPHoldTime    = 9 * time.Second
	DefaultBGPKeepalive   = 3 * time.Second
	DefaultBGPPort        = 179
	DefaultShutdownDrain  = 2 * time.Second
	DefaultBGPRestartTime = 60 * time.Second
	minBGPHoldTime        = 3 * time.Second // RFC 4271: 0 or at least 3 s
	maxBGPRestartTime     = 4095 * time.Second
	maxShutdownDrain      = 5 * time.Minute
	maxMD5KeyLen          = 80 // TCP_MD5SIG_MAXKEYLEN
)

// BGP configures the speaker that announces the VIPs to the routers
// (nil: BGP is off).
type BGP struct {
	ASN      uint32
	RouterID netip.Addr
	// ListenPort 0: do not listen; the speaker connects to its peers.
	ListenPort uint16
	// ShutdownDrain is how long a stopping daemon keeps forwarding after
	// it withdrew its routes, so that the routers have moved the flows
	// to the other edge hosts before the sessions close.
	ShutdownDrain time.Duration
	// RestartTime is the graceful-restart time offered to the routers
	// (0 disables graceful restart).
	RestartTime time.Duration
	Peers       []BGPPeer
	VIPs        []BGPVIP
}

// BGPPeer is one router.
type BGPPeer struct {
	Addr      netip.Addr
	Port      uint16
	ASN       uint32
	Password  string
	HoldTime  time.Duration
	Keepalive time.Duration
	Families  []string // "ipv4", "ipv6"
}

// BGPVIP holds the optional path attributes of one VIP address's route.
type BGPVIP struct {
	Addr        netip.Addr
	Communities []uint32
	LocalPref   uint32
}

type fileBGP struct {
	ASN           *int64        `yaml:"asn"`
	RouterID      string        `yaml:"router_id"`
	ListenPort    *int          `yaml:"listen_port"`
	ShutdownDrain *string       `yaml:"shutdown_drain"`
	RestartTime   *string       `yaml:"restart_time"`
	Peers         []fileBGPPeer `yaml:"peers"`
	VIPs          []fileBGPVIP  `yaml:"vips"`
}

type fileBGPPeer struct {
	Address   string   `yaml:"address"`
	Port      *int     `yaml:"port"`
	ASN       *int64   `yaml:"asn"`
	Password  string   `yaml:"password"`
	HoldTime  *string  `yaml:"hold_time"`
	Keepalive *string  `yaml:"keepalive"`
	Families  []string `yaml:"families"`
}

type fileBGPVIP struct {
	Address     string   `yaml:"address"`
	Communities []string `yaml:"communities"`
	LocalPref   *int64   `yaml:"local_pref"`
}

func (v *validator) asn(path []any, val *int64) uint32 {
	switch {
	case val == nil:
		v.Errorf(path[:len(path)-1], "asn is required")
	case *val < 1 || *val > 4294967294:
		v.Errorf(path, "%d is not an AS number 1..4294967294", *val)
	case *val == 23456:
		v.Errorf(path, "23456 is AS_TRANS, which no speaker may use as its own")
	default:
		return uint32(*val)
	}
	return 0
}

func (v *validator) bgp(fb *fileBGP, cfg *Config) *BGP {
	if fb == nil {
		return nil
	}
	b := &BGP{}
	b.ASN = v.asn(p("bgp", "asn"), fb.ASN)
	b.RouterID = cfg.OuterSource.IPv4
	if fb.RouterID != "" {
		b.RouterID = v.addr(p("bgp", "router_id"), fb.RouterID, 4)
	} else if !b.RouterID.IsValid() {
		v.Errorf(p("bgp"), "router_id is required when outer_source.ipv4 is not set (a BGP identifier is an IPv4 address)")
	}
	b.ListenPort = uint16(v.intRange(p("bgp", "listen_port"), fb.ListenPort, 0, 0, 65535))
	b.ShutdownDrain = v.duration(p("bgp", "shutdown_drain"), fb.ShutdownDrain, DefaultShutdownDrain, 0)
	if b.ShutdownDrain > maxShutdownDrain {
		v.Errorf(p("bgp", "shutdown_drain"), "%v is longer than %v", b.ShutdownDrain, maxShutdownDrain)
	}
	b.RestartTime = v.duration(p("bgp", "restart_time"), fb.RestartTime, DefaultBGPRestartTime, 0)
	if b.RestartTime > maxBGPRestartTime {
		v.Errorf(p("bgp", "restart_time"), "%v is longer than graceful restart's maximum %v", b.RestartTime, maxBGPRestartTime)
	}
	if len(fb.Peers) == 0 {
		v.Errorf(p("bgp"), "at least one peer is required")
	}
	seen := map[netip.Addr]int{}
	for i := range fb.Peers {
		if pr, ok := v.bgpPeer(i, &fb.Peers[i], cfg); ok {
			if j, dup := seen[pr.Addr]; dup {
				v.Errorf(p("bgp", "peers", i, "address"), "%s is already peers[%d]", pr.Addr, j)
				continue
			}
			seen[pr.Addr] = i
			b.Peers = append(b.Peers, pr)
		}
	}
	for i, fv := range fb.VIPs {
		path := p("bgp", "vips", i)
		bv := BGPVIP{}
		a, err := netip.ParseAddr(fv.Address)
		if err != nil || a.Zone() != "" {
			v.Errorf(append(path, "address"), "%q is not an IP address", fv.Address)
		}
		bv.Addr = a
		for j, c := range fv.Communities {
			n, ok := parseCommunity(c)
			if !ok {
				v.Errorf(append(path, "communities", j), "%q is not a community ASN:VALUE (each 0..65535)", c)
				continue
			}
			bv.Communities = append(bv.Communities, n)
		}
		if fv.LocalPref != nil {
			if *fv.LocalPref < 0 || *fv.LocalPref > 4294967295 {
				v.Errorf(append(path, "local_pref"), "%d is out of range 0..4294967295", *fv.LocalPref)
			} else {
				bv.LocalPref = uint32(*fv.LocalPref)
			}
		}
		b.VIPs = append(b.VIPs, bv)
	}
	return b
}

func (v *validator) bgpPeer(i int, fp *fileBGPPeer, cfg *Config) (BGPPeer, bool) {
	nerr := v.Problems()
	path := func(f string) []any { return p("bgp", "peers", i, f) }
	pr := BGPPeer{Password: fp.Password}
	if fp.Address == "" {
		v.Errorf(p("bgp", "peers", i), "address is required")
	} else if a, err := netip.ParseAddr(fp.Address); err != nil || a.Zone() != "" || a.IsUnspecified() || a.IsMulticast() {
		v.Errorf(path("address"), "%q is not a unicast IP address", fp.Address)
	} else {
		pr.Addr = a
	}
	pr.Port = uint16(v.intRange(path("port"), fp.Port, DefaultBGPPort, 1, 65535))
	pr.ASN = v.asn(path("asn"), fp.ASN)
	if len(fp.Password) > maxMD5KeyLen {
		v.Errorf(path("password"), "%d characters; TCP MD5 keys are at most %d", len(fp.Password), maxMD5KeyLen)
	}
	pr.HoldTime = v.duration(path("hold_time"), fp.HoldTime, DefaultBGPHoldTime, minBGPHoldTime)
	def := DefaultBGPKeepalive
	if fp.HoldTime != nil {
		def = max(pr.HoldTime/3, time.Second)
	}
	pr.Keepalive = v.duration(path("keepalive"), fp.Keepalive, def, time.Second)
	if pr.Keepalive >= pr.HoldTime {
		v.Errorf(path("keepalive"), "%v is not shorter than the hold time %v (a third of it is usual)", pr.Keepalive, pr.HoldTime)
	}
	if pr.HoldTime%time.Second != 0 || pr.Keepalive%time.Second != 0 {
		v.Errorf(path("hold_time"), "BGP timers are whole seconds")
	}
	pr.Families = fp.Families
	if len(pr.Families) == 0 {
		// The families this host can be a next hop for.
		if cfg.OuterSource.IPv4.IsValid() {
			pr.Families = append(pr.Families, "ipv4")
		}
		if cfg.OuterSource.IPv6.IsValid() {
			pr.Families = append(pr.Families, "ipv6")
		}
		if len(pr.Families) == 0 {
			v.Errorf(p("bgp", "peers", i), "no family to announce: set outer_source (the routes' next hop)")
		}
	}
	seen := map[string]bool{}
	for j, f := range pr.Families {
		switch {
		case f != "ipv4" && f != "ipv6":
			v.Errorf(p("bgp", "peers", i, "families", j), "unknown family %q (want ipv4 or ipv6)", f)
		case seen[f]:
			v.Errorf(p("bgp", "peers", i, "families", j), "%s is listed twice", f)
		case f == "ipv4" && !cfg.OuterSource.IPv4.IsValid():
			v.Errorf(p("bgp", "peers", i, "families", j), "ipv4 routes need outer_source.ipv4 (their next hop)")
		case f == "ipv6" && !cfg.OuterSource.IPv6.IsValid():
			v.Errorf(p("bgp", "peers", i, "families", j), "ipv6 routes need outer_source.ipv6 (their next hop)")
		}
		seen[f] = true
	}
	return pr, v.Problems() == nerr
}

// parseCommunity reads an RFC 1997 community written ASN:VALUE.
func parseCommunity(s string) (uint32, bool) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return 0, false
	}
	hi, err1 := strconv.ParseUint(a, 10, 16)
	lo, err2 := strconv.ParseUint(b, 10, 16)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return uint32(hi)<<16 | uint32(lo), true
}

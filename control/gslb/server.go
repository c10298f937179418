package gslb

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// HealthView says whether a site is up now.
type HealthView interface {
	Up(site string) bool
}

// answerUDPSize is the largest UDP answer sent whatever the client
// advertises: the DNS flag day 2020 value, which avoids IP fragmentation.
const answerUDPSize = 1232

// maxChase bounds CNAME chains inside a zone.
const maxChase = 8

// Server answers queries for the configured zones.
type Server struct {
	log     *slog.Logger
	metrics *Metrics
	state   atomic.Pointer[state]
}

// state is everything one configuration answers from, swapped whole on
// reload so a query sees one generation only.
type state struct {
	cfg    *Config
	health HealthView
	geo    *Locator
	rrl    *limiter
	zones  []*zoneData
	names  map[string]*Name
	sites  map[string]*Site
}

type zoneData struct {
	origin string
	soa    *dns.SOA
	rrs    map[string]map[uint16][]dns.RR
	// exists holds every name with records, a GSLB name or a name below
	// it (empty non-terminals): those answer NODATA, not NXDOMAIN.
	exists map[string]bool
}

// NewServer builds a server for cfg. geo may be nil (geo names then
// answer with their default site); health nil means every site is up.
func NewServer(cfg *Config, health HealthView, geo *Locator, m *Metrics, log *slog.Logger) *Server {
	if m == nil {
		m = NewMetrics(nil)
	}
	s := &Server{log: log, metrics: m}
	s.state.Store(buildState(cfg, health, geo))
	return s
}

// Reload makes s answer from cfg, health and geo from the next query on.
func (s *Server) Reload(cfg *Config, health HealthView, geo *Locator) {
	s.state.Store(buildState(cfg, health, geo))
}

func buildState(cfg *Config, health HealthView, geo *Locator) *state {
	st := &state{cfg: cfg, health: health, geo: geo, rrl: newLimiter(cfg.RateLimit), names: map[string]*Name{}, sites: map[string]*Site{}}
	for i := range cfg.Sites {
		st.sites[cfg.Sites[i].Name] = &cfg.Sites[i]
	}
	for _, z := range cfg.Zones {
		zd := &zoneData{origin: z.Origin, soa: z.SOA, rrs: map[string]map[uint16][]dns.RR{}, exists: map[string]bool{}}
		for _, rr := range z.Records {
			h := rr.Header()
			if zd.rrs[h.Name] == nil {
				zd.rrs[h.Name] = map[uint16][]dns.RR{}
			}
			zd.rrs[h.Name][h.Rrtype] = append(zd.rrs[h.Name][h.Rrtype], rr)
			zd.markExists(h.Name)
		}
		st.zones = append(st.zones, zd)
	}
	for i := range cfg.Names {
		n := &cfg.Names[i]
		st.names[n.FQDN] = n
		if z := st.zone(n.FQDN); z != nil {
			z.markExists(n.FQDN)
		}
	}
	return st
}

func (z *zoneData) markExists(name string) {
	for n := name; dns.IsSubDomain(z.origin, n); {
		z.exists[n] = true
		off, end := dns.NextLabel(n, 0)
		if end {
			break
		}
		n = n[off:]
	}
}

func (st *state) zone(name string) *zoneData {
	var best *zoneData
	for _, z := range st.zones {
		if dns.IsSubDomain(z.origin, name) && (best == nil || len(z.origin) > len(best.origin)) {
			best = z
		}
	}
	return best
}

// Serve answers on pc (UDP) and ln (TCP) until ctx ends; it closes both.
func (s *Server) Serve(ctx context.Context, pc net.PacketConn, ln net.Listener) error {
	tcp := &dns.Server{Listener: ln, Handler: s, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second, IdleTimeout: func() time.Duration { return 10 * time.Second }}
	errc := make(chan error, 2)
	go func() { errc <- s.serveUDP(pc) }()
	go func() { errc <- tcp.ActivateAndServe() }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("dns server: %w", err)
	}
	_ = pc.Close()
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = tcp.ShutdownContext(sctx)
	return err
}

// query is what one answer is built from.
type query struct {
	name, policy, site string
	client             netip.Addr // ECS address, else the resolver's
	ecs                *dns.EDNS0_SUBNET
	scope              int
}

// ServeDNS implements dns.Handler: the TCP server's queries.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	start := time.Now()
	m := s.reply(r, w.RemoteAddr(), start)
	if m == nil {
		return
	}
	if err := w.WriteMsg(m); err != nil {
		s.log.Debug("dns write", "client", w.RemoteAddr().String(), "err", err)
	}
	s.metrics.latency.Observe(time.Since(start).Seconds())
}

// reply is the answer to r from remote, nil when none is sent (held back
// by the rate limit). Over UDP it is cut to the client's size.
func (s *Server) reply(r *dns.Msg, remote net.Addr, start time.Time) *dns.Msg {
	st := s.state.Load()
	m, q := s.answer(st, r, remote)
	if ua, isUDP := remote.(*net.UDPAddr); isUDP {
		switch st.rrl.allow(ua.AddrPort().Addr().Unmap(), start) {
		case rrlDrop:
			s.metrics.limited.WithLabelValues("drop").Inc()
			return nil
		case rrlSlip:
			s.metrics.limited.WithLabelValues("slip").Inc()
			opt := m.IsEdns0()
			m.Answer, m.Ns, m.Extra = nil, nil, nil
			if opt != nil {
				m.Extra = []dns.RR{opt}
			}
			m.Truncated = true
		}
		size := dns.MinMsgSize
		if opt := r.IsEdns0(); opt != nil {
			size = min(max(int(opt.UDPSize()), dns.MinMsgSize), answerUDPSize)
		}
		m.Truncate(size)
	}
	// Counted before the write, so that a client that has its answer
	// sees it counted.
	s.metrics.queries.WithLabelValues(q.name, typeLabel(r), q.policy, q.site, dns.RcodeToString[m.Rcode]).Inc()
	return m
}

func (s *Server) answer(st *state, r *dns.Msg, remote net.Addr) (*dns.Msg, *query) {
	m := new(dns.Msg)
	q := &query{}
	if len(r.Question) != 1 || r.Response {
		m.SetRcodeFormatError(r)
		return m, q
	}
	m.SetReply(r)
	if r.Opcode != dns.OpcodeQuery {
		m.Rcode = dns.RcodeNotImplemented
		return m, q
	}
	if ap, err := netip.ParseAddrPort(remote.String()); err == nil {
		q.client = ap.Addr().Unmap()
	}
	opt := r.IsEdns0()
	if opt != nil {
		m.SetEdns0(answerUDPSize, false)
		if opt.Version() != 0 {
			m.Rcode = dns.RcodeBadVers
			return m, q
		}
		for _, o := range opt.Option {
			if e, ok := o.(*dns.EDNS0_SUBNET); ok {
				if !s.takeECS(e, q) {
					m.Rcode = dns.RcodeFormatError
					return m, q
				}
			}
		}
	}
	qname, qtype := strings.ToLower(r.Question[0].Name), r.Question[0].Qtype
	z := st.zone(qname)
	if z == nil {
		m.Rcode = dns.RcodeRefused
		return m, q
	}
	m.Authoritative = true
	q.name, q.policy = z.origin, "static"
	s.resolve(st, z, m, qname, qtype, q)
	if q.ecs != nil {
		// RFC 7871 7.2.1: echo family, source prefix and address, with
		// the prefix length the answer is valid for.
		e := *q.ecs
		e.SourceScope = uint8(min(q.scope, int(e.SourceNetmask)))
		m.IsEdns0().Option = append(m.IsEdns0().Option, &e)
	}
	return m, q
}

// takeECS uses a Client Subnet option's address as the client's; false
// when the option is malformed (RFC 7871 7.1.2: FORMERR).
func (s *Server) takeECS(e *dns.EDNS0_SUBNET, q *query) bool {
	var bitsMax int
	switch e.Family {
	case 1:
		bitsMax = 32
	case 2:
		bitsMax = 128
	default:
		return false
	}
	if int(e.SourceNetmask) > bitsMax || e.SourceScope != 0 {
		return false
	}
	a, ok := netip.AddrFromSlice(e.Address)
	if !ok {
		return false
	}
	a = a.Unmap()
	if (bitsMax == 32) != a.Is4() {
		return false
	}
	q.ecs = e
	if e.SourceNetmask > 0 {
		// A source prefix of 0 is the client opting out: keep the
		// resolver's address.
		pfx, _ := a.Prefix(int(e.SourceNetmask))
		q.client = pfx.Addr()
	}
	return true
}

func (s *Server) resolve(st *state, z *zoneData, m *dns.Msg, qname string, qtype uint16, q *query) {
	for range maxChase {
		if n := st.names[qname]; n != nil {
			s.gslb(st, z, m, n, qtype, q)
			return
		}
		set := z.rrs[qname]
		if set == nil {
			if !z.exists[qname] {
				m.Rcode = dns.RcodeNameError
			}
			m.Ns = append(m.Ns, negativeSOA(z.soa))
			return
		}
		if cn := set[dns.TypeCNAME]; len(cn) > 0 && qtype != dns.TypeCNAME {
			m.Answer = append(m.Answer, cn[0])
			target := strings.ToLower(cn[0].(*dns.CNAME).Target)
			if st.zone(target) != z {
				return // out of this zone: the resolver follows it
			}
			qname = target
			continue
		}
		if qtype == dns.TypeANY {
			// RFC 8482: one RRset is enough.
			for _, t := range allowedTypes {
				if rrs := set[t]; len(rrs) > 0 {
					m.Answer = append(m.Answer, rrs...)
					return
				}
			}
		}
		if rrs := set[qtype]; len(rrs) > 0 {
			m.Answer = append(m.Answer, rrs...)
			return
		}
		m.Ns = append(m.Ns, negativeSOA(z.soa))
		return
	}
	s.log.Warn("dns CNAME chain too long", "name", qname)
	m.Rcode = dns.RcodeServerFailure
}

// negativeSOA is the zone's SOA for the authority section of a negative
// answer, with the TTL RFC 2308 asks for.
func negativeSOA(soa *dns.SOA) dns.RR {
	c := dns.Copy(soa).(*dns.SOA)
	c.Hdr.Ttl = min(c.Hdr.Ttl, c.Minttl)
	return c
}

func (s *Server) gslb(st *state, z *zoneData, m *dns.Msg, n *Name, qtype uint16, q *query) {
	sites, label, scope := s.choose(st, n, q.client)
	q.name, q.policy, q.site, q.scope = n.FQDN, n.Policy, label, scope
	for _, site := range sites {
		for _, vip := range site.VIPs {
			hdr := dns.RR_Header{Name: n.FQDN, Class: dns.ClassINET, Ttl: n.TTL}
			switch {
			case vip.Is4() && (qtype == dns.TypeA || qtype == dns.TypeANY):
				hdr.Rrtype = dns.TypeA
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: vip.AsSlice()})
			case vip.Is6() && (qtype == dns.TypeAAAA || qtype == dns.TypeANY):
				hdr.Rrtype = dns.TypeAAAA
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr, AAAA: vip.AsSlice()})
			}
		}
	}
	if len(m.Answer) == 0 {
		m.Ns = append(m.Ns, negativeSOA(z.soa))
	}
}

// choose picks the sites whose VIPs answer a query for n from client.
// label names the answer in metrics (a site name, or "all-down:" and the
// last-resort answer); scope is the ECS scope prefix length (0 when the
// answer does not depend on the client's address).
//
// Every policy first narrows the healthy sites to a group, then draws
// one site of the group by weight: weighted's group is every healthy
// site; failover's the healthy sites of the lowest priority; geo's the
// nearest healthy site and those within nearby_km of it. So each policy
// falls back by itself when its first group fails (the next tier, the
// next nearest region) and shares load inside a group.
func (s *Server) choose(st *state, n *Name, client netip.Addr) (sites []*Site, label string, scope int) {
	var healthy []int // indices into n.Sites
	for i, name := range n.Sites {
		if st.health == nil || st.health.Up(name) {
			healthy = append(healthy, i)
		}
	}
	if len(healthy) == 0 {
		if n.AllDown == AllDownAll {
			for _, name := range n.Sites {
				sites = append(sites, st.sites[name])
			}
			return sites, "all-down:all", 0
		}
		return []*Site{st.sites[n.AllDown]}, "all-down:" + n.AllDown, 0
	}
	var group []int
	switch n.Policy {
	case PolicyWeighted:
		group = healthy
	case PolicyFailover:
		top := n.Priorities[healthy[0]]
		for _, i := range healthy {
			top = min(top, n.Priorities[i])
		}
		for _, i := range healthy {
			if n.Priorities[i] == top {
				group = append(group, i)
			}
		}
	case PolicyGeo:
		group, scope = s.nearest(st, n, healthy, client)
	}
	pick := st.sites[n.Sites[drawByWeight(group, n.Weights)]]
	return []*Site{pick}, pick.Name, scope
}

// drawByWeight draws one of group (indices into weights) with
// probability weight / sum; the first when every weight is 0.
func drawByWeight(group []int, weights []int) int {
	if len(group) == 1 {
		return group[0]
	}
	total := 0
	for _, i := range group {
		total += weights[i]
	}
	if total == 0 {
		return group[0]
	}
	r := rand.IntN(total)
	for _, i := range group {
		if r < weights[i] {
			return i
		}
		r -= weights[i]
	}
	return group[0]
}

// nearest is the group of healthy sites nearest to client: the nearest
// one (the first listed on a tie) and every other within n.NearbyKm of
// it. When the client's location is unknown, the default site if
// healthy, else the first healthy one.
func (s *Server) nearest(st *state, n *Name, healthy []int, client netip.Addr) ([]int, int) {
	var loc Location
	var bits int
	if client.IsValid() && st.geo != nil {
		var err error
		if loc, bits, err = st.geo.Lookup(client); err != nil {
			s.log.Warn("dns geoip lookup", "client", client.String(), "err", err)
		}
	}
	if !loc.Known() {
		for _, i := range healthy {
			if n.Sites[i] == n.Default {
				return []int{i}, bits
			}
		}
		return healthy[:1], bits
	}
	dist := make([]float64, len(healthy))
	best := 0
	for k, i := range healthy {
		dist[k] = distanceKm(loc, st.sites[n.Sites[i]].Location)
		if dist[k] < dist[best] {
			best = k
		}
	}
	group := []int{healthy[best]}
	if n.NearbyKm > 0 {
		for k, i := range healthy {
			if k != best && dist[k] <= dist[best]+n.NearbyKm {
				group = append(group, i)
			}
		}
	}
	return group, bits
}

package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/xlbproject/xlb/internal/strictyaml"
)

// Error is one configuration problem, located in the file
// ("file:line: reason").
type Error = strictyaml.Error

// Load reads and parses the config file at path.
func Load(path string) (*Config, error) {
	data, err := strictyaml.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse decodes data (named file in errors), applies defaults and validates.
// All problems found are returned together, joined, each as an *Error.
func Parse(file string, data []byte) (*Config, error) {
	// Syntax, then unknown keys and values of the wrong kind, all of them,
	// in the operator's words, before the decoder would name Go types; a
	// second document would be silently ignored, so it is refused too.
	var cfg Config
	root, err := strictyaml.DecodeFile(file, data, &cfg)
	if err != nil {
		return nil, err
	}
	v := &validator{file: file, root: root}
	v.config(&cfg)
	v.store(&cfg.Store)
	if len(v.errs) > 0 {
		return nil, errors.Join(v.errs...)
	}
	return &cfg, nil
}

type validator struct {
	file string
	root *yaml.Node
	errs []error
}

// errorf records a problem at the node reached by path (keys and indices);
// when the path does not exist in the file (a missing field), the deepest
// existing node is used, which is the mapping that lacks the field.
func (v *validator) errorf(at []any, format string, args ...any) {
	v.errs = append(v.errs, &Error{File: v.file, Line: v.line(at), Reason: fmt.Sprintf(format, args...)})
}

func (v *validator) line(at []any) int { return strictyaml.LineOf(v.root, at) }

func at(p ...any) []any { return p }

func (v *validator) config(c *Config) {
	if len(c.Listeners) == 0 {
		v.errorf(at("listeners"), "at least one listener is required")
	}
	names := map[string]bool{}
	for i := range c.Listeners {
		l := &c.Listeners[i]
		if l.Name == "" {
			l.Name = l.Addr
		}
		if !validHostPort(l.Addr) {
			v.errorf(at("listeners", i, "addr"), "listener addr %q is not host:port", l.Addr)
		}
		if names[l.Name] {
			v.errorf(at("listeners", i, "name"), "duplicate listener name %q", l.Name)
		}
		names[l.Name] = true
		if l.TLS != nil {
			v.tls(i, l.TLS)
		}
		v.listenerMode(i, l)
	}
	if c.Admin.Addr != "" && !validHostPort(c.Admin.Addr) {
		v.errorf(at("admin", "addr"), "admin addr %q is not host:port", c.Admin.Addr)
	}
	if c.Admin.Socket == "" {
		c.Admin.Socket = DefaultAdminSocket
	}
	if !strings.HasPrefix(c.Admin.Socket, "/") {
		v.errorf(at("admin", "socket"), "admin socket %q is not an absolute path", c.Admin.Socket)
	}
	switch c.Readiness {
	case "":
		c.Readiness = ReadinessHost
	case ReadinessHost, ReadinessAllPools:
	default:
		v.errorf(at("readiness"), "readiness %q is not one of %s, %s", c.Readiness, ReadinessHost, ReadinessAllPools)
	}
	v.limits(&c.Limits)
	v.duration(at("shutdown", "drain_delay"), "shutdown drain_delay", &c.Shutdown.DrainDelay, DefaultDrainDelay)
	v.duration(at("shutdown", "timeout"), "shutdown timeout", &c.Shutdown.Timeout, DefaultShutdownTimeout)
	for i, s := range c.TrustedProxies {
		p, err := parsePrefix(s)
		if err != nil {
			v.errorf(at("trusted_proxies", i), "trusted proxy %q is not an address or CIDR", s)
			continue
		}
		c.TrustedPrefixes = append(c.TrustedPrefixes, p)
	}
	if c.AccessLog.Sample < 0 || c.AccessLog.Sample > 1 {
		v.errorf(at("access_log", "sample"), "access_log sample %v is not within 0..1", c.AccessLog.Sample)
	}
	if c.AccessLog.Enabled && c.AccessLog.Sample == 0 {
		c.AccessLog.Sample = 1
	}
	v.keys(&c.Sticky)
	v.shedding(&c.Shedding, c.Limits.MaxConns)

	pools := map[string]*Pool{}
	cookies := map[string]string{}
	for i := range c.Pools {
		p := &c.Pools[i]
		v.pool(i, p)
		if p.Name != "" {
			if pools[p.Name] != nil {
				v.errorf(at("pools", i, "name"), "duplicate pool name %q", p.Name)
			}
			pools[p.Name] = p
		}
		if p.Sticky != nil {
			if other, ok := cookies[p.Sticky.Cookie]; ok {
				v.errorf(at("pools", i, "sticky", "cookie"), "sticky cookie %q is already used by pool %q", p.Sticky.Cookie, other)
			}
			cookies[p.Sticky.Cookie] = p.Name
			if len(c.Sticky.Keys) == 0 {
				v.errorf(at("pools", i, "sticky"), "pool %q uses sticky sessions but sticky.keys is empty", p.Name)
			}
		}
	}
	if len(c.Pools) == 0 {
		v.errorf(at("pools"), "at least one pool is required")
	}

	httpListeners := 0
	for i := range c.Listeners {
		l := &c.Listeners[i]
		if l.Mode != ModeTCP {
			httpListeners++
			continue
		}
		if l.Pool != "" && pools[l.Pool] == nil {
			v.errorf(at("listeners", i, "pool"), "tcp listener %q names unknown pool %q", l.Name, l.Pool)
		}
		if pl := pools[l.Pool]; pl != nil && pl.TLS != nil {
			v.errorf(at("listeners", i, "pool"), "tcp listener %q uses pool %q, which sets tls: a tcp listener forwards bytes as they are (a database speaks its own TLS)", l.Name, l.Pool)
		}
	}
	if len(c.Routes) == 0 && httpListeners > 0 {
		v.errorf(at("routes"), "at least one route is required")
	}
	routeNames := map[string]bool{}
	matches := map[string]string{}
	for i := range c.Routes {
		r := &c.Routes[i]
		v.route(i, r)
		if r.Name != "" {
			if routeNames[r.Name] {
				v.errorf(at("routes", i, "name"), "duplicate route name %q", r.Name)
			}
			routeNames[r.Name] = true
		}
		if r.Pool != "" && pools[r.Pool] == nil {
			v.errorf(at("routes", i, "pool"), "route %q names unknown pool %q", r.Name, r.Pool)
		}
		if pl := pools[r.Pool]; pl != nil && pl.ProxyProtocol != "" {
			v.errorf(at("routes", i, "pool"), "route %q uses pool %q, which sets proxy_protocol: the PROXY protocol is sent on tcp listeners only", r.Name, r.Pool)
		}
		// Two routes with the same match would make "most specific wins"
		// depend on file order; make the operator choose.
		key := r.Match.key()
		if other, ok := matches[key]; ok {
			v.errorf(at("routes", i, "match"), "route %q has the same match as route %q", r.Name, other)
		}
		matches[key] = r.Name
	}
}

func (v *validator) limits(l *Limits) {
	durs := []struct {
		name string
		d    *time.Duration
		def  time.Duration
	}{
		{"read_header_timeout", &l.ReadHeaderTimeout, DefaultReadHeaderTimeout},
		{"read_timeout", &l.ReadTimeout, DefaultReadTimeout},
		{"write_timeout", &l.WriteTimeout, DefaultWriteTimeout},
		{"idle_timeout", &l.IdleTimeout, DefaultIdleTimeout},
	}
	for _, d := range durs {
		v.duration(at("limits", d.name), d.name, d.d, d.def)
	}
	v.positive(at("limits", "max_header_bytes"), "max_header_bytes", &l.MaxHeaderBytes, DefaultMaxHeaderBytes)
	v.positive(at("limits", "max_conns"), "max_conns", &l.MaxConns, DefaultMaxConns)
}

func (v *validator) keys(s *StickyKeys) {
	ids := map[int]bool{}
	for i := range s.Keys {
		k := &s.Keys[i]
		if k.ID < 1 || k.ID > 255 {
			v.errorf(at("sticky", "keys", i, "id"), "sticky key id %d is not within 1..255", k.ID)
		}
		if ids[k.ID] {
			v.errorf(at("sticky", "keys", i, "id"), "duplicate sticky key id %d", k.ID)
		}
		ids[k.ID] = true
		b, err := decodeSecret(k.Secret)
		if err != nil {
			v.errorf(at("sticky", "keys", i, "secret"), "sticky key %d secret is not base64", k.ID)
			continue
		}
		if len(b) < 16 {
			v.errorf(at("sticky", "keys", i, "secret"), "sticky key %d secret is %d bytes, need at least 16", k.ID, len(b))
			continue
		}
		k.Bytes = b
	}
}

func decodeSecret(s string) ([]byte, error) {
	s = strings.TrimRight(strings.TrimSpace(s), "=")
	if s == "" {
		return nil, errors.New("empty secret")
	}
	if b, err := base64.RawStdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawURLEncoding.DecodeString(s)
}

var (
	tokenRE     = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
	hostRE      = regexp.MustCompile(`^(\*\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?$`)
	hashKeyName = regexp.MustCompile(`^(header|cookie):(.+)$`)
)

func (v *validator) route(i int, r *Route) {
	base := func(p ...any) []any { return append([]any{"routes", i}, p...) }
	if r.Name == "" {
		v.errorf(base(), "route name is required")
	}
	if r.Pool == "" {
		v.errorf(base(), "route %q has no pool", r.Name)
	}
	m := &r.Match
	m.Host = strings.ToLower(m.Host)
	if m.Host != "" && !hostRE.MatchString(m.Host) {
		v.errorf(base("match", "host"), "route %q host %q is not a host name or *.suffix", r.Name, m.Host)
	}
	if m.Path != "" && m.PathPrefix != "" {
		v.errorf(base("match"), "route %q sets both path and path_prefix", r.Name)
	}
	if m.Path != "" && (!strings.HasPrefix(m.Path, "/") || path.Clean(m.Path) != m.Path) {
		v.errorf(base("match", "path"), "route %q path %q is not a clean absolute path", r.Name, m.Path)
	}
	if m.PathPrefix != "" {
		trimmed := strings.TrimSuffix(m.PathPrefix, "/")
		if !strings.HasPrefix(m.PathPrefix, "/") || (trimmed != "" && path.Clean(trimmed) != trimmed) {
			v.errorf(base("match", "path_prefix"), "route %q path_prefix %q is not a clean absolute path", r.Name, m.PathPrefix)
		}
	}
	for j, meth := range m.Methods {
		if !tokenRE.MatchString(meth) {
			v.errorf(base("match", "methods", j), "route %q method %q is not a token", r.Name, meth)
		}
		m.Methods[j] = strings.ToUpper(meth)
	}
	for name := range m.Headers {
		if !tokenRE.MatchString(name) {
			v.errorf(base("match", "headers", name), "route %q header name %q is not a token", r.Name, name)
		}
	}
	v.duration(base("timeouts", "dial"), "dial timeout", &r.Timeouts.Dial, DefaultDialTimeout)
	v.duration(base("timeouts", "response"), "response timeout", &r.Timeouts.Response, DefaultResponseTimeout)
	v.duration(base("timeouts", "tunnel_idle"), "tunnel_idle timeout", &r.Timeouts.TunnelIdle, DefaultTunnelIdle)
	if r.MaxBodyBytes < 0 {
		v.errorf(base("max_body_bytes"), "route %q max_body_bytes is negative", r.Name)
	}
	if r.MaxBodyBytes == 0 {
		r.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if r.StreamRequestBodyBytes < 0 || (r.StreamRequestBodyBytes > 0 && r.StreamRequestBodyBytes < MinStreamRequestBody) {
		v.errorf(base("stream_request_body_bytes"), "route %q stream_request_body_bytes is %d, must be at least %d (4 KiB: a streamed body goes out in writes of that size, the first of which checks that a kept-alive connection is still open)",
			r.Name, r.StreamRequestBodyBytes, MinStreamRequestBody)
	}
	if r.StreamRequestBodyBytes == 0 {
		r.StreamRequestBodyBytes = DefaultStreamRequestBody
	}
	switch r.Priority {
	case "":
		r.Priority = PriorityNormal
	case PriorityLow, PriorityNormal, PriorityCritical:
	default:
		v.errorf(base("priority"), "route %q priority %q is not one of critical, normal, low", r.Name, r.Priority)
	}
	rt := &r.Retries
	if rt.Max < 0 || rt.Max > 10 {
		v.errorf(base("retries", "max"), "route %q retries max %d is not within 0..10", r.Name, rt.Max)
	}
	if rt.Max == 0 {
		rt.Max = DefaultRetries
	}
	if rt.Idempotent == nil {
		on := true
		rt.Idempotent = &on
	}
	v.duration(base("retries", "per_try_timeout"), "per_try_timeout", &rt.PerTryTimeout, r.Timeouts.Response)
	if rt.PerTryTimeout > r.Timeouts.Response {
		v.errorf(base("retries", "per_try_timeout"), "route %q per_try_timeout %s exceeds the response timeout %s", r.Name, rt.PerTryTimeout, r.Timeouts.Response)
	}
}

func (v *validator) shedding(s *Shedding, maxConns int) {
	v.positive(at("shedding", "max_inflight"), "shedding max_inflight", &s.MaxInFlight, maxConns)
	pcts := []struct {
		name string
		n    *int
		def  int
	}{
		{"low", &s.Low, DefaultShedLow},
		{"normal", &s.Normal, DefaultShedNormal},
		{"critical", &s.Critical, DefaultShedCritical},
	}
	for _, p := range pcts {
		if *p.n < 0 || *p.n > 100 {
			v.errorf(at("shedding", p.name), "shedding %s %d%% is not within 1..100", p.name, *p.n)
		}
		if *p.n == 0 {
			*p.n = p.def
		}
	}
	// A higher class shed before a lower one would invert the priorities.
	if s.Low > s.Normal || s.Normal > s.Critical {
		v.errorf(at("shedding"), "shedding thresholds must rise with priority: low %d%% ≤ normal %d%% ≤ critical %d%%", s.Low, s.Normal, s.Critical)
	}
	v.duration(at("shedding", "retry_after"), "shedding retry_after", &s.RetryAfter, DefaultRetryAfter)
}

func (v *validator) retryBudget(i int, b *RetryBudget) {
	base := func(q ...any) []any { return append([]any{"pools", i, "retry_budget"}, q...) }
	if b.Percent < 0 || b.Percent > 100 {
		v.errorf(base("percent"), "retry_budget percent %d is not within 1..100", b.Percent)
	}
	if b.Percent == 0 {
		b.Percent = DefaultBudgetPercent
	}
	v.positive(base("min_per_second"), "retry_budget min_per_second", &b.MinPerSecond, DefaultBudgetMinPerSec)
	v.duration(base("window"), "retry_budget window", &b.Window, DefaultBudgetWindow)
	if b.Window > 0 && b.Window < time.Second {
		v.errorf(base("window"), "retry_budget window %s is shorter than 1s", b.Window)
	}
}

// key is a canonical form of the match, equal for equivalent matches.
func (m *Match) key() string {
	var b strings.Builder
	b.WriteString(m.Host + "\x00" + m.Path + "\x00" + m.PathPrefix + "\x00")
	methods := slices.Sorted(slices.Values(m.Methods))
	b.WriteString(strings.Join(methods, ",") + "\x00")
	hs := make([]string, 0, len(m.Headers))
	for k, val := range m.Headers {
		hs = append(hs, strings.ToLower(k)+"="+val)
	}
	slices.Sort(hs)
	b.WriteString(strings.Join(hs, "\x01"))
	return b.String()
}

func (v *validator) pool(i int, p *Pool) {
	base := func(q ...any) []any { return append([]any{"pools", i}, q...) }
	if p.Name == "" {
		v.errorf(base(), "pool name is required")
	}
	switch p.Policy {
	case "":
		p.Policy = PolicyP2C
	case PolicyP2C, PolicyLeastConn, PolicyRoundRobin:
	case PolicyHash:
		if p.HashKey == "" {
			v.errorf(base("policy"), "pool %q uses policy hash but has no hash_key", p.Name)
		}
	default:
		v.errorf(base("policy"), "pool %q policy %q is not one of p2c, least_conn, round_robin, hash", p.Name, p.Policy)
	}
	if p.HashKey != "" {
		if p.Policy != PolicyHash {
			v.errorf(base("hash_key"), "pool %q sets hash_key but its policy is %s", p.Name, p.Policy)
		}
		if p.HashKey != "client_addr" && p.HashKey != "path" {
			if sm := hashKeyName.FindStringSubmatch(p.HashKey); sm == nil || !tokenRE.MatchString(sm[2]) {
				v.errorf(base("hash_key"), "pool %q hash_key %q is not client_addr, path, header:<name> or cookie:<name>", p.Name, p.HashKey)
			}
		}
	}
	switch p.UpstreamProtocol {
	case "":
		p.UpstreamProtocol = UpstreamHTTP1
	case UpstreamHTTP1:
	case UpstreamH2C:
		if p.TLS != nil {
			v.errorf(base("upstream_protocol"), "pool %q upstream_protocol h2c is cleartext HTTP/2, but the pool sets tls: use upstream_protocol: h2", p.Name)
		}
	case UpstreamH2:
		if p.TLS == nil {
			v.errorf(base("upstream_protocol"), "pool %q upstream_protocol h2 is HTTP/2 over TLS and needs tls (h2c is the cleartext one)", p.Name)
		}
	default:
		v.errorf(base("upstream_protocol"), "pool %q upstream_protocol %q is not one of http1, h2c, h2", p.Name, p.UpstreamProtocol)
	}
	if p.TLS != nil {
		v.upstreamTLS(base("tls"), p.Name, p.TLS)
	}
	if p.SlowStart < 0 {
		v.errorf(base("slow_start"), "pool %q slow_start is negative", p.Name)
	}
	switch {
	case p.KeepaliveTimeout == 0:
		p.KeepaliveTimeout = DefaultKeepaliveTimeout
	case p.KeepaliveTimeout < MinKeepaliveTimeout:
		v.errorf(base("keepalive_timeout"), "pool %q keepalive_timeout %s is below %s", p.Name, p.KeepaliveTimeout, MinKeepaliveTimeout)
	}
	if len(p.Servers) == 0 {
		v.errorf(base("servers"), "pool %q has no servers", p.Name)
	}
	names := map[string]bool{}
	addrs := map[string]string{} // SameAddr key -> first server with it
	for j := range p.Servers {
		s := &p.Servers[j]
		if s.Name == "" {
			s.Name = s.Addr
		}
		if !validHostPort(s.Addr) {
			v.errorf(base("servers", j, "addr"), "pool %q server addr %q is not host:port", p.Name, s.Addr)
		}
		k := AddrKey(s.Addr)
		first, sameAddr := addrs[k]
		switch {
		case names[s.Name]:
			v.errorf(base("servers", j, "name"), "pool %q has duplicate server name %q", p.Name, s.Name)
		case k != "" && sameAddr:
			v.errorf(base("servers", j, "addr"), "pool %q servers %q and %q have the same addr %s: each app server once per pool (a weight gives it a larger share)", p.Name, first, s.Name, s.Addr)
		case k != "":
			addrs[k] = s.Name
		}
		names[s.Name] = true
		if s.Weight < 0 || s.Weight > 1000 {
			v.errorf(base("servers", j, "weight"), "pool %q server %q weight %d is not within 1..1000", p.Name, s.Name, s.Weight)
		}
		if s.Weight == 0 {
			s.Weight = 1
		}
	}
	if a := p.Health.Active; a != nil {
		if a.Path == "" {
			a.Path = "/"
		}
		if !strings.HasPrefix(a.Path, "/") {
			v.errorf(base("health", "active", "path"), "pool %q health path %q does not start with /", p.Name, a.Path)
		}
		v.duration(base("health", "active", "interval"), "health interval", &a.Interval, DefaultHealthInterval)
		v.duration(base("health", "active", "timeout"), "health timeout", &a.Timeout, DefaultHealthTimeout)
		if a.Timeout > a.Interval {
			v.errorf(base("health", "active", "timeout"), "pool %q health timeout %s exceeds interval %s", p.Name, a.Timeout, a.Interval)
		}
		v.positive(base("health", "active", "rise"), "rise", &a.Rise, DefaultHealthRise)
		v.positive(base("health", "active", "fall"), "fall", &a.Fall, DefaultHealthFall)
	}
	ps := &p.Health.Passive
	v.positive(base("health", "passive", "consecutive_errors"), "consecutive_errors", &ps.ConsecutiveErrors, DefaultConsecutiveErrors)
	v.positive(base("health", "passive", "consecutive_5xx"), "consecutive_5xx", &ps.Consecutive5xx, DefaultConsecutive5xx)
	v.duration(base("health", "passive", "base_ejection"), "base_ejection", &ps.BaseEjection, DefaultBaseEjection)
	v.duration(base("health", "passive", "max_ejection"), "max_ejection", &ps.MaxEjection, DefaultMaxEjection)
	if ps.MaxEjection < ps.BaseEjection {
		v.errorf(base("health", "passive", "max_ejection"), "pool %q max_ejection %s is below base_ejection %s", p.Name, ps.MaxEjection, ps.BaseEjection)
	}
	if ps.MaxEjectedPercent < 0 || ps.MaxEjectedPercent > 100 {
		v.errorf(base("health", "passive", "max_ejected_percent"), "pool %q max_ejected_percent %d is not within 0..100", p.Name, ps.MaxEjectedPercent)
	}
	if ps.MaxEjectedPercent == 0 {
		ps.MaxEjectedPercent = DefaultMaxEjectedPercent
	}
	v.retryBudget(i, &p.RetryBudget)
	v.postgres(i, p)
	switch p.Health.AllDown {
	case "":
		p.Health.AllDown = AllDownRefuse
	case AllDownRefuse:
	case AllDownFailOpen:
		if p.Health.Postgres != nil {
			v.errorf(base("health", "all_down"), "pool %q cannot fail open with a postgres check: its checks pick the primary, and a guess could send writes to a replica", p.Name)
		} else if p.CloseOnDown != nil && *p.CloseOnDown {
			v.errorf(base("health", "all_down"), "pool %q cannot fail open with close_on_down: it would close every connection it made to a failing server", p.Name)
		}
	default:
		v.errorf(base("health", "all_down"), "pool %q all_down %q is not one of fail_open, refuse", p.Name, p.Health.AllDown)
	}
	if s := p.Health.FailOpenBelow; s != "" {
		n, err := strictyaml.ParsePercent(s, 1, 100)
		switch {
		case err != nil:
			v.errorf(base("health", "fail_open_below"), "pool %q fail_open_below: %v", p.Name, err)
		case p.Health.AllDown != AllDownFailOpen:
			v.errorf(base("health", "fail_open_below"), "pool %q fail_open_below needs all_down: %s (with %s, the pool never fails open)", p.Name, AllDownFailOpen, p.Health.AllDown)
		default:
			p.Health.FailOpenBelowPercent = n
		}
	}
	if s := p.Sticky; s != nil {
		if s.Cookie == "" {
			s.Cookie = "xlb_" + p.Name
		}
		if !tokenRE.MatchString(s.Cookie) {
			v.errorf(base("sticky", "cookie"), "pool %q sticky cookie name %q is not a token", p.Name, s.Cookie)
		}
		v.duration(base("sticky", "max_age"), "sticky max_age", &s.MaxAge, DefaultStickyMaxAge)
		v.duration(base("sticky", "drain_timeout"), "sticky drain_timeout", &s.DrainTimeout, DefaultDrainTimeout)
		switch g := s.PropagationGrace; {
		case g == nil:
			def := DefaultPropagationGrace
			s.PropagationGrace = &def
		case *g < 0:
			v.errorf(base("sticky", "propagation_grace"), "pool %q sticky propagation_grace %s is negative", p.Name, *g)
		case *g > s.MaxAge:
			v.errorf(base("sticky", "propagation_grace"), "pool %q sticky propagation_grace %s is longer than max_age %s: no cookie lives that long", p.Name, *g, s.MaxAge)
		}
	}
}

// listenerMode checks a listener's mode and its TCP settings.
func (v *validator) listenerMode(i int, l *Listener) {
	switch l.Mode {
	case "":
		l.Mode = ModeHTTP
	case ModeHTTP, ModeTCP:
	default:
		v.errorf(at("listeners", i, "mode"), "listener %q mode %q is not one of http, tcp", l.Name, l.Mode)
		return
	}
	if l.Mode == ModeHTTP {
		if l.Pool != "" {
			v.errorf(at("listeners", i, "pool"), "http listener %q sets pool; http listeners use routes", l.Name)
		}
		return
	}
	if l.TLS != nil {
		v.errorf(at("listeners", i, "tls"), "tcp listener %q sets tls; tcp mode forwards bytes unchanged", l.Name)
	}
	if l.Pool == "" {
		v.errorf(at("listeners", i), "tcp listener %q needs a pool", l.Name)
	}
	v.duration(at("listeners", i, "connect_timeout"), "connect_timeout", &l.ConnectTimeout, DefaultDialTimeout)
	v.duration(at("listeners", i, "idle_timeout"), "idle_timeout", &l.IdleTimeout, DefaultTunnelIdle)
}

// postgres checks a pool's role and PostgreSQL health check and reads the
// credentials file, relative to the config file's directory.
func (v *validator) postgres(i int, p *Pool) {
	base := func(q ...any) []any { return append([]any{"pools", i}, q...) }
	switch p.Role {
	case "", RolePrimary, RoleReplica:
	default:
		v.errorf(base("role"), "pool %q role %q is not one of primary, replica", p.Name, p.Role)
	}
	pg := p.Health.Postgres
	if p.Role != "" && pg == nil {
		v.errorf(base("role"), "pool %q has role %s but no health.postgres check to learn it", p.Name, p.Role)
	}
	if p.ReplicaFallback && p.Role != RoleReplica {
		v.errorf(base("replica_fallback"), "pool %q sets replica_fallback but its role is not replica", p.Name)
	}
	switch p.ProxyProtocol {
	case "", ProxyProtocolV2:
	default:
		v.errorf(base("proxy_protocol"), "pool %q proxy_protocol %q is not v2 (the only version xlb sends)", p.Name, p.ProxyProtocol)
	}
	if p.MaxConnsPerServer < 0 {
		v.errorf(base("max_conns_per_server"), "pool %q max_conns_per_server %d is negative", p.Name, p.MaxConnsPerServer)
	}
	if p.CloseOnDown == nil {
		on := p.Role != ""
		p.CloseOnDown = &on
	}
	if pg == nil {
		return
	}
	if p.Health.Active != nil {
		v.errorf(base("health", "postgres"), "pool %q sets both health.active and health.postgres", p.Name)
	}
	v.duration(base("health", "postgres", "interval"), "health interval", &pg.Interval, DefaultHealthInterval)
	v.duration(base("health", "postgres", "timeout"), "health timeout", &pg.Timeout, DefaultHealthTimeout)
	if pg.Timeout > pg.Interval {
		v.errorf(base("health", "postgres", "timeout"), "pool %q health timeout %s exceeds interval %s", p.Name, pg.Timeout, pg.Interval)
	}
	v.positive(base("health", "postgres", "rise"), "rise", &pg.Rise, DefaultHealthRise)
	v.positive(base("health", "postgres", "fall"), "fall", &pg.Fall, DefaultHealthFall)
	if pg.MaxLag < 0 {
		v.errorf(base("health", "postgres", "max_lag"), "pool %q max_lag is negative", p.Name)
	}
	if pg.CredentialsFile == "" {
		v.errorf(base("health", "postgres"), "pool %q health.postgres needs credentials_file", p.Name)
		return
	}
	data, err := strictyaml.ReadNamed("credentials file", relTo(filepath.Dir(v.file), pg.CredentialsFile))
	if err != nil {
		v.errorf(base("health", "postgres", "credentials_file"), "pool %q: %v", p.Name, err)
		return
	}
	pg.Credentials = strings.TrimSpace(string(data))
	for _, bad := range []string{"host=", "port=", "postgres://", "postgresql://"} {
		if strings.Contains(pg.Credentials, bad) {
			v.errorf(base("health", "postgres", "credentials_file"), "pool %q credentials_file must not contain %q: the servers come from the pool", p.Name, bad)
		}
	}
}

func (v *validator) duration(where []any, name string, d *time.Duration, def time.Duration) {
	if *d < 0 {
		v.errorf(where, "%s %s is negative", name, *d)
	}
	if *d == 0 {
		*d = def
	}
}

func (v *validator) positive(where []any, name string, n *int, def int) {
	if *n < 0 {
		v.errorf(where, "%s %d is negative", name, *n)
	}
	if *n == 0 {
		*n = def
	}
}

// AddrKey is the form of a server's host:port under which two spellings of
// one address compare equal ([::1]:80 and [0::1]:80, 127.0.0.1:80 and
// ::ffff:127.0.0.1:80, a host name in any case), "" when addr is not
// host:port. A pool holds each key once: a second entry would double that
// server's share and split its health state between two names.
func AddrKey(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return ""
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(ip.Unmap(), uint16(n)).String()
	}
	return net.JoinHostPort(strings.ToLower(strings.TrimSuffix(host, ".")), strconv.FormatUint(n, 10))
}

func validHostPort(s string) bool {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n >= 0 && n <= 65535
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("parse prefix %q: %w", s, err)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("parse address %q: %w", s, err)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

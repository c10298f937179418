package config

import (
	"net/netip"
	"time"

	"github.com/xlbproject/xlb/internal/failopen"
)

// Config is the whole proxy configuration after defaults and validation.
type Config struct {
	Listeners []Listener `yaml:"listeners"`
	Admin     Admin      `yaml:"admin"`
	// Readiness says what /ready means: ReadinessHost (the default) or
	// ReadinessAllPools.
	Readiness      string     `yaml:"readiness"`
	Limits         Limits     `yaml:"limits"`
	Shutdown       Shutdown   `yaml:"shutdown"`
	TrustedProxies []string   `yaml:"trusted_proxies"`
	AccessLog      AccessLog  `yaml:"access_log"`
	Sticky         StickyKeys `yaml:"sticky"`
	Shedding       Shedding   `yaml:"shedding"`
	Routes         []Route    `yaml:"routes"`
	Pools          []Pool     `yaml:"pools"`
	// Store, when it names an etcd, keeps the runtime pool changes there,
	// shared by every L7 host, instead of in admin.state_file.
	Store Store `yaml:"store"`

	// TrustedPrefixes is TrustedProxies parsed; filled by Parse.
	TrustedPrefixes []netip.Prefix `yaml:"-"`
}

// Readiness modes accepted in Config.Readiness.
const (
	// ReadinessHost: /ready is 200 while this host can serve (listeners up,
	// config loaded, not stopping). A route whose pool has no available
	// server answers 503 for that route only.
	ReadinessHost = "host"
	// ReadinessAllPools: /ready is also 503 while any route's pool has no
	// available server. One empty pool then takes every L7 host that shares
	// the config out of the edge's table, and with them every other route.
	ReadinessAllPools = "all_pools"
)

// Listener is one client-facing HTTP listener.
type Listener struct {
	Name string `yaml:"name"`
	Addr string `yaml:"addr"`
	// TLS, when set, makes the listener speak TLS: HTTP/1.1 and, when ALPN
	// offers it, HTTP/2.
	TLS *TLS `yaml:"tls"`
	// Mode is ModeHTTP (the default) or ModeTCP: a TCP listener forwards
	// whole connections to Pool without parsing them (see docs/proxy-tcp.md).
	Mode string `yaml:"mode"`
	// Pool is the pool a TCP listener forwards to.
	Pool string `yaml:"pool"`
	// ConnectTimeout bounds the dial to a server of a TCP listener's pool.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// IdleTimeout closes a TCP connection after this long without a byte
	// in either direction.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
}

// Listener modes accepted in Listener.Mode.
const (
	ModeHTTP = "http"
	ModeTCP  = "tcp"
)

// Admin is the listener for /ready, /healthz and /metrics, kept apart from
// client traffic so it can be bound to a private address, and the unix
// socket of the admin API (`xlb pool`, `xlb proxy reload`).
type Admin struct {
	Addr string `yaml:"addr"`
	// Socket is the admin API's unix socket, created 0660 in a 0750
	// directory: file permissions are its access control.
	Socket string `yaml:"socket"`
	// Group, when set, owns the socket so that its members can use the CLI
	// without sudo.
	Group string `yaml:"group"`
	// StateFile keeps runtime pool changes across reloads and restarts;
	// empty means next to the config file (proxy.yaml → proxy.state.json).
	StateFile string `yaml:"state_file"`
}

// DefaultAdminSocket is where the admin API listens unless admin.socket
// says otherwise, and where `xlb pool --proxy` looks by default.
const DefaultAdminSocket = "/run/xlb/proxy.sock"

// Shutdown is the graceful stop on SIGTERM: /ready fails at once, the proxy
// keeps serving for DrainDelay (so the edge's health checks take the host
// out before anything is refused), then stops accepting and gives in-flight
// requests up to Timeout to finish.
type Shutdown struct {
	DrainDelay time.Duration `yaml:"drain_delay"`
	Timeout    time.Duration `yaml:"timeout"`
}

// Limits are the client-facing limits the engine enforces.
type Limits struct {
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	ReadTimeout       time.Duration `yaml:"read_timeout"`
	WriteTimeout      time.Duration `yaml:"write_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
	MaxHeaderBytes    int           `yaml:"max_header_bytes"`
	MaxConns          int           `yaml:"max_conns"`
}

// AccessLog configures the JSON access log. Sample is the fraction of
// requests logged, 0..1; errors (5xx) are always logged by the engine.
type AccessLog struct {
	Enabled bool    `yaml:"enabled"`
	Sample  float64 `yaml:"sample"`
}

// StickyKeys is the HMAC key ring shared by every L7 host. The first key
// signs new cookies; all keys verify, so a key can be rotated in by
// prepending it and retired later without logging anyone out.
type StickyKeys struct {
	Keys []StickyKey `yaml:"keys"`
}

// StickyKey is one HMAC key. ID (1..255) travels in the cookie so the
// verifier picks the key directly. Secret is base64 (std or URL, padded or
// not) and must decode to at least 16 bytes.
type StickyKey struct {
	ID     int    `yaml:"id"`
	Secret string `yaml:"secret"`

	// Bytes is the decoded secret; filled by Parse.
	Bytes []byte `yaml:"-"`
}

// Route maps a request shape to a pool.
type Route struct {
	Name         string   `yaml:"name"`
	Match        Match    `yaml:"match"`
	Pool         string   `yaml:"pool"`
	Timeouts     Timeouts `yaml:"timeouts"`
	MaxBodyBytes int64    `yaml:"max_body_bytes"`
	Retries      Retries  `yaml:"retries"`
	// Priority is the route's shedding class: critical, normal (default)
	// or low. Under overload low is refused first, critical last.
	Priority Priority `yaml:"priority"`
	// StreamRequestBodyBytes: a request body above this many bytes is
	// streamed to the app server instead of buffered first; such a request
	// can only be retried while no byte of it was sent.
	StreamRequestBodyBytes int64 `yaml:"stream_request_body_bytes"`
	// StreamResponses forwards response bodies as they arrive instead of
	// buffering them (downloads, long polls). Requests that accept
	// text/event-stream are streamed on every route. On a streamed
	// response, timeouts.response bounds the whole body too.
	StreamResponses bool `yaml:"stream_responses"`
}

// Match is what a request must look like for a route to apply. Empty fields
// match anything. Path and PathPrefix are mutually exclusive.
type Match struct {
	Host       string            `yaml:"host"`
	Path       string            `yaml:"path"`
	PathPrefix string            `yaml:"path_prefix"`
	Methods    []string          `yaml:"methods"`
	Headers    map[string]string `yaml:"headers"`
}

// Timeouts bound the upstream side of one request.
type Timeouts struct {
	Dial     time.Duration `yaml:"dial"`
	Response time.Duration `yaml:"response"`
	// TunnelIdle closes an upgraded connection (WebSocket) after this long
	// without a byte in either direction.
	TunnelIdle time.Duration `yaml:"tunnel_idle"`
}

// Policy names accepted in Pool.Policy.
const (
	PolicyP2C        = "p2c"
	PolicyLeastConn  = "least_conn"
	PolicyRoundRobin = "round_robin"
	PolicyHash       = "hash"
)

// Pool is a set of app servers and how to spread requests over them.
type Pool struct {
	Name   string `yaml:"name"`
	Policy string `yaml:"policy"`
	// HashKey selects the consistent-hash key when Policy is "hash":
	// "client_addr", "path", "header:<Name>" or "cookie:<Name>".
	HashKey   string        `yaml:"hash_key"`
	SlowStart time.Duration `yaml:"slow_start"`
	Servers   []Server      `yaml:"servers"`
	Health    Health        `yaml:"health"`
	Sticky    *Sticky       `yaml:"sticky"`
	// UpstreamProtocol is how the proxy speaks to the pool's servers:
	// UpstreamHTTP1 (the default), UpstreamH2C, or UpstreamH2 (with TLS).
	UpstreamProtocol string `yaml:"upstream_protocol"`
	// KeepaliveTimeout is how long an idle keep-alive connection to one of
	// the pool's servers stays open for the next request (HTTP pools). It
	// should be shorter than the servers' own idle timeout, so that the
	// proxy, not the server, ends an idle connection.
	KeepaliveTimeout time.Duration `yaml:"keepalive_timeout"`
	// TLS, when set, encrypts the proxy's connections to the pool's
	// servers, health checks included (HTTP pools only).
	TLS *UpstreamTLS `yaml:"tls"`
	// RetryBudget caps the retries of all routes using the pool.
	RetryBudget RetryBudget `yaml:"retry_budget"`
	// MaxConnsPerServer caps the TCP connections to each server of the
	// pool (TCP listeners only; 0 = no cap). A server at its cap gets no
	// new connection; when every server is at it, the client is refused.
	MaxConnsPerServer int `yaml:"max_conns_per_server"`
	// Role, with health.postgres, is the PostgreSQL role the pool wants:
	// RolePrimary or RoleReplica (see docs/proxy-tcp.md).
	Role string `yaml:"role"`
	// ReplicaFallback lets a replica pool use the primary while no replica
	// is usable.
	ReplicaFallback bool `yaml:"replica_fallback"`
	// CloseOnDown closes the open TCP connections of a server once it is
	// no longer usable for the pool (down, or no longer in the pool's
	// role), so clients reconnect to one that is. Default true for pools
	// with a role.
	CloseOnDown *bool `yaml:"close_on_down"`
	// ProxyProtocol, ProxyProtocolV2, sends a PROXY protocol header with
	// the client's address at the start of every connection to a server
	// (TCP listeners only), and a LOCAL one on the PostgreSQL health
	// check's connections.
	ProxyProtocol string `yaml:"proxy_protocol"`
}

// ProxyProtocolV2 is the PROXY protocol version xlb sends (the binary
// one).
const ProxyProtocolV2 = "v2"

// PostgreSQL roles accepted in Pool.Role.
const (
	RolePrimary = "primary"
	RoleReplica = "replica"
)

// Upstream protocols accepted in Pool.UpstreamProtocol.
const (
	// UpstreamHTTP1: HTTP/1.1 with keep-alive, one request per connection
	// at a time.
	UpstreamHTTP1 = "http1"
	// UpstreamH2C: HTTP/2 over cleartext TCP with prior knowledge, many
	// requests multiplexed on one connection; the server must accept h2c
	// without an Upgrade. Not with tls.
	UpstreamH2C = "h2c"
	// UpstreamH2: HTTP/2 over TLS, negotiated by ALPN; needs tls. A server
	// that answers the handshake without h2 is an error, not a silent
	// fall back to HTTP/1.1.
	UpstreamH2 = "h2"
)

// Server is one app server of a pool. Name must be unique within the pool
// and identical on every L7 host: sticky cookies name servers by a hash of
// pool and server name, so they survive reordering and other hosts.
type Server struct {
	Name   string `yaml:"name"`
	Addr   string `yaml:"addr"`
	Weight int    `yaml:"weight"`
	// Drain starts the server draining at load: no new sticky clients, and
	// existing ones are re-pinned after the pool's sticky drain_timeout.
	Drain bool `yaml:"drain"`
}

// Health configures active probes and passive ejection for a pool.
type Health struct {
	Active  *ActiveHealth `yaml:"active"`
	Passive Passive       `yaml:"passive"`
	// Postgres replaces the HTTP probe with a PostgreSQL session: connect,
	// authenticate, SELECT pg_is_in_recovery() and the replay lag.
	Postgres *PostgresHealth `yaml:"postgres"`
	// AllDown is what the pool does when its servers fail their checks:
	// AllDownRefuse (the default) answers 503 when none passes,
	// AllDownFailOpen sends new clients to every server not draining
	// while too few pass.
	AllDown string `yaml:"all_down"`
	// FailOpenBelow (with AllDownFailOpen) is the panic threshold, a
	// percentage such as "50%": the pool fails open while fewer than this
	// share of its servers not draining pass. Empty: only while none
	// passes.
	FailOpenBelow string `yaml:"fail_open_below"`
	// FailOpenBelowPercent is FailOpenBelow as Load read it (0: empty).
	FailOpenBelowPercent int `yaml:"-"`
}

// FailOpen is the pool's fail-open policy. A pool with a PostgreSQL check
// never fails open (Load refuses the combination).
func (h Health) FailOpen() failopen.Policy {
	return failopen.Policy{On: h.AllDown == AllDownFailOpen && h.Postgres == nil, Below: h.FailOpenBelowPercent}
}

// What a pool does when every server fails its checks. Refusing (503 with
// Retry-After) is the default. Failing open suits pools where checks
// failing on every server at once are more likely the prober's trouble (a
// starved proxy host, a firewall change) than every app server's; when the
// servers have all died, trying them costs the fast error the 503 would
// have given. A PostgreSQL pool never fails open: its checks decide which
// server is the primary, and a guess could send writes to a replica.
const (
	AllDownFailOpen = "fail_open"
	AllDownRefuse   = "refuse"
)

// PostgresHealth is the PostgreSQL health check of a pool. The credentials
// live in their own file, never in the proxy config.
type PostgresHealth struct {
	// CredentialsFile holds a libpq-style connection string without host
	// and port, e.g. "user=xlb_health password=secret dbname=postgres".
	CredentialsFile string        `yaml:"credentials_file"`
	Interval        time.Duration `yaml:"interval"`
	Timeout         time.Duration `yaml:"timeout"`
	Rise            int           `yaml:"rise"`
	Fall            int           `yaml:"fall"`
	// MaxLag is the replay lag above which a replica is not used by a
	// replica pool (0 = no bound).
	MaxLag time.Duration `yaml:"max_lag"`

	// Credentials is the credentials file's content; filled by Parse.
	Credentials string `yaml:"-"`
}

// ActiveHealth is an HTTP GET per server every Interval; a server goes down
// after Fall consecutive failures and up after Rise consecutive successes.
type ActiveHealth struct {
	Path     string        `yaml:"path"`
	Host     string        `yaml:"host"`
	Interval time.Duration `yaml:"interval"`
	Timeout  time.Duration `yaml:"timeout"`
	Rise     int           `yaml:"rise"`
	Fall     int           `yaml:"fall"`
}

// Passive ejects a server after consecutive connect errors or 5xx answers,
// for BaseEjection doubled on each repeated ejection up to MaxEjection.
// MaxEjectedPercent caps how much of the pool may be ejected at once, and a
// pool's last available server is never ejected.
type Passive struct {
	Disabled          bool          `yaml:"disabled"`
	ConsecutiveErrors int           `yaml:"consecutive_errors"`
	Consecutive5xx    int           `yaml:"consecutive_5xx"`
	BaseEjection      time.Duration `yaml:"base_ejection"`
	MaxEjection       time.Duration `yaml:"max_ejection"`
	MaxEjectedPercent int           `yaml:"max_ejected_percent"`
}

// Sticky turns on cookie-based session affinity for a pool.
type Sticky struct {
	Cookie       string        `yaml:"cookie"`
	MaxAge       time.Duration `yaml:"max_age"`
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// PropagationGrace is how long after a cookie was issued a server it
	// names that this host does not know is taken for one still being
	// added here (`xlb pool server add` reaches the L7 hosts one after the
	// other): the request goes to a stand-in and the cookie is left as it
	// is, so the client is back on its server once this host has it. A
	// server this host deleted, or an older cookie, is re-pinned. 0s turns
	// the grace off; nil after validation means the default.
	PropagationGrace *time.Duration `yaml:"propagation_grace"`
}

// Grace is the propagation grace in effect: the default when unset.
func (s *Sticky) Grace() time.Duration {
	if s.PropagationGrace == nil {
		return DefaultPropagationGrace
	}
	return *s.PropagationGrace
}

// Retries says when a request that failed on one app server is tried on
// another. A request that provably never reached a server (connection
// refused, dial timeout, upstream TLS handshake failure) is retried for any
// method; one whose server failed before answering (connection closed or
// reset before the first response byte, per-try timeout) only for an
// idempotent method and only when Idempotent is on. Nothing is retried once
// any byte of a response has arrived.
type Retries struct {
	// Disabled turns every retry of the route off, redispatch included.
	Disabled bool `yaml:"disabled"`
	// Max is the number of retries after the first try.
	Max int `yaml:"max"`
	// Idempotent retries GET, HEAD, OPTIONS, TRACE, PUT and DELETE whose
	// server failed before answering. Default true.
	Idempotent *bool `yaml:"idempotent"`
	// PerTryTimeout bounds one try; the route's response timeout bounds all
	// tries together. Default: the response timeout (one try uses it all).
	PerTryTimeout time.Duration `yaml:"per_try_timeout"`
}

// RetryBudget bounds retries to a share of a pool's requests over a sliding
// window, with a floor so that a quiet pool can still retry: retries are
// allowed while retries ≤ max(Percent % of requests, MinPerSecond × Window)
// in the last Window. It keeps retries from multiplying an overload.
type RetryBudget struct {
	Percent      int           `yaml:"percent"`
	MinPerSecond int           `yaml:"min_per_second"`
	Window       time.Duration `yaml:"window"`
}

// Priority is a route's shedding class.
type Priority string

// Priority classes, from first shed to last.
const (
	PriorityLow      Priority = "low"
	PriorityNormal   Priority = "normal"
	PriorityCritical Priority = "critical"
)

// Rank is the class as an index: 0 low, 1 normal, 2 critical.
func (p Priority) Rank() int {
	switch p {
	case PriorityLow:
		return 0
	case PriorityCritical:
		return 2
	}
	return 1
}

// Priorities lists the classes in Rank order.
var Priorities = [...]Priority{PriorityLow, PriorityNormal, PriorityCritical}

// Shedding refuses requests (503 with Retry-After) once the proxy has too
// many in flight, lower priority classes first: a class is refused once the
// proxy-wide in-flight count reaches its percentage of MaxInFlight.
type Shedding struct {
	// MaxInFlight is the proxy-wide limit of forwarded requests. Default:
	// limits.max_conns, so low and normal are shed as the connection limit
	// nears and critical only at it.
	MaxInFlight int `yaml:"max_inflight"`
	// Percentages of MaxInFlight at which each class is shed.
	Low      int `yaml:"low"`
	Normal   int `yaml:"normal"`
	Critical int `yaml:"critical"`
	// RetryAfter is sent with every shed 503, rounded up to whole seconds.
	RetryAfter time.Duration `yaml:"retry_after"`
}

// Defaults applied by Parse where a field is zero.
const (
	// DefaultDrainDelay is a little over the time the edge daemon needs to
	// see /ready fail with its default checks: fall (2) × interval (200 ms)
	// plus a timeout (150 ms) and jitter, about 0.6 s.
	DefaultDrainDelay        = time.Second
	DefaultShutdownTimeout   = 10 * time.Second
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	DefaultMaxHeaderBytes    = 16 << 10
	DefaultMaxConns          = 10000
	DefaultDialTimeout       = 2 * time.Second
	// DefaultKeepaliveTimeout is below the idle timeouts of most app
	// servers (Node.js and Apache 5 s, nginx 75 s), not gunicorn's 2 s.
	DefaultKeepaliveTimeout = 4 * time.Second
	// MinKeepaliveTimeout: the proxy looks for expired idle connections
	// every keepalive_timeout, and a shorter one would hardly keep a
	// connection for the next request anyway.
	MinKeepaliveTimeout      = 100 * time.Millisecond
	DefaultResponseTimeout   = 30 * time.Second
	DefaultMaxBodyBytes      = 1 << 20
	DefaultHealthInterval    = 5 * time.Second
	DefaultHealthTimeout     = 2 * time.Second
	DefaultHealthRise        = 2
	DefaultHealthFall        = 3
	DefaultConsecutiveErrors = 5
	DefaultConsecutive5xx    = 5
	DefaultBaseEjection      = 10 * time.Second
	DefaultMaxEjection       = 5 * time.Minute
	DefaultMaxEjectedPercent = 50
	DefaultStickyMaxAge      = 24 * time.Hour
	DefaultDrainTimeout      = 5 * time.Minute
	// DefaultPropagationGrace covers a rollout of one command per L7 host.
	DefaultPropagationGrace  = time.Minute
	DefaultRetries           = 2
	DefaultBudgetPercent     = 20
	DefaultBudgetMinPerSec   = 3
	DefaultBudgetWindow      = 10 * time.Second
	DefaultShedLow           = 70
	DefaultShedNormal        = 85
	DefaultShedCritical      = 100
	DefaultRetryAfter        = time.Second
	DefaultStreamRequestBody = 64 << 10
	// MinStreamRequestBody is the least stream_request_body_bytes: the
	// size of the proxy's writes to app servers, so that a streamed body's
	// first write is a whole one. The proxy checks a kept-alive connection
	// before a write of that size, as it cannot send a streamed body twice;
	// a smaller first write would go out unchecked.
	MinStreamRequestBody = 4096
	DefaultTunnelIdle    = time.Hour
)

package fleet

import (
	"fmt"
	"strings"
)

// The ports of the fleet's services.
const (
	// AppPort is where every app server listens.
	AppPort = 8080
	// AdminPort is each proxy's admin listener (/ready, /metrics, status
	// page), which the daemons health-check.
	AdminPort = 9901
	// MetricsAddr is each daemon's metrics and status page, on the edge
	// host's loopback.
	MetricsAddr = "127.0.0.1:9724"
	etcdPort    = 2379
	etcdPeer    = 2380
	routerASN   = 65000
	edgeASN     = 65001
)

// Pool names of the shop: checkout serves the session (log in, cart,
// checkout) and is sticky; browse serves the catalogue, hashed by path.
const (
	PoolCheckout = "checkout"
	PoolBrowse   = "browse"
	// StickyCookie is the checkout pool's cookie.
	StickyCookie = "xlb_checkout"
)

func (f *Fleet) daemonConfig(e *Edge) string {
	var backends strings.Builder
	for _, l := range f.L7s {
		fmt.Fprintf(&backends, "      - address: %s\n", l.Host.Addr4)
	}
	return fmt.Sprintf(`interfaces:
  - name: eth0
    mode: native
outer_source:
  ipv4: %[1]s
dataplane:
  max_vips: 8
  max_backends: 64
  conntrack_entries: 65536
health:
  port: %[2]d
  path: /ready
  interval: %[3]s
  timeout: %[4]s
  rise: 2
  fall: 3
api:
  socket: %[5]s
metrics:
  listen: %[6]s
state:
  path: %[7]s
  store: etcd
  etcd:
    endpoints: [%[8]s]
    prefix: /xlb/edge/
bpf:
  pin_path: %[9]s
vips:
  - address: %[10]s
    port: 80
    protocol: tcp
    backends:
%[11]sbgp:
  asn: %[12]d
  shutdown_drain: 1s
  restart_time: 30s
  peers:
    - address: %[13]s
      asn: %[14]d
      hold_time: %[15]s
      keepalive: %[16]s
`, e.Host.Addr4, AdminPort, f.opts.HealthInterval, f.opts.HealthInterval*4/5, e.Socket, MetricsAddr,
		e.dir+"/state.json", f.etcdURL(), e.Pin, f.VIP, backends.String(),
		edgeASN, f.Router.Addr4, routerASN, f.opts.BGPHold, f.keepalive())
}

// stickySecret signs the checkout cookie on every L7 host (a demo key).
const stickySecret = "ZGVtby1vbmx5LWtleS1kby1ub3QtdXNlLWluLXByb2Q="

func (f *Fleet) proxyConfig(l *L7) string {
	servers := func(pool string) string {
		var b strings.Builder
		for _, a := range f.Apps {
			if a.Pool == pool && a.initial {
				fmt.Fprintf(&b, "      - {name: %s, addr: \"%s\"}\n", a.Name, a.Addr)
			}
		}
		return b.String()
	}
	return fmt.Sprintf(`listeners:
  - name: http
    addr: "0.0.0.0:80"
admin:
  addr: "%[1]s:%[2]d"
  socket: %[3]q
  state_file: %[4]q
readiness: host
shutdown:
  drain_delay: 1s
  timeout: 5s
access_log:
  enabled: false
sticky:
  keys:
    - id: 1
      secret: %[5]q
routes:
  - {name: checkout, match: {path_prefix: /checkout}, pool: checkout}
  - {name: auth, match: {path_prefix: /auth}, pool: checkout}
  - {name: browse, match: {path_prefix: /browse}, pool: browse}
  - {name: products, match: {path_prefix: /products}, pool: browse}
pools:
  - name: checkout
    policy: p2c
    servers:
%[6]s    health:
      active: {path: /healthz, interval: 1s, timeout: 800ms, rise: 2, fall: 3}
      passive: {consecutive_5xx: %[9]d, consecutive_errors: 3, base_ejection: 30s, max_ejected_percent: 50}
    sticky: {cookie: %[10]s, max_age: 1h}
  - name: browse
    policy: hash
    hash_key: path
    servers:
%[7]s    health:
      active: {path: /healthz, interval: 1s, timeout: 800ms, rise: 2, fall: 3}
      passive: {consecutive_5xx: %[9]d, consecutive_errors: 3, base_ejection: 30s, max_ejected_percent: 50}
store:
  etcd:
    endpoints: [%[8]s]
    prefix: /xlb/l7/
`, l.Host.Addr4, AdminPort, l.Socket, l.dir+"/proxy.state.json", stickySecret,
		servers(PoolCheckout), servers(PoolBrowse), f.etcdURL(), Consecutive5xx, StickyCookie)
}

// Consecutive5xx is the passive-health threshold of both pools: a server
// that answers this many 5xx in a row is ejected by that proxy.
const Consecutive5xx = 2

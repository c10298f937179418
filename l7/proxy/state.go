package proxy

import (
	"crypto/x509"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xlbproject/xlb/l7/config"
	"github.com/xlbproject/xlb/l7/sticky"
)

// stateCollector exports the director's pool and server state at scrape
// time: the director keeps the numbers (atomics it needs anyway for its
// decisions) and knows nothing about Prometheus.
type stateCollector struct {
	p *Proxy
}

var _ prometheus.Collector = (*stateCollector)(nil)

var (
	inflightDesc = prometheus.NewDesc("xlb_l7_inflight_requests",
		"Requests currently forwarded to the pool's app servers.",
		[]string{"pool"}, nil)
	ejectionsDesc = prometheus.NewDesc("xlb_l7_ejections_total",
		"Passive-health ejections of an app server (consecutive connect errors or 5xx).",
		[]string{"pool", "server"}, nil)
	// Not xlb_backend_up: the control daemon exports that name for L7
	// hosts (labels vip, backend), and both are scraped into one
	// Prometheus.
	backendUpDesc = prometheus.NewDesc("xlb_l7_server_up",
		"1 when the app server passes active health checks and is not ejected, else 0.",
		[]string{"pool", "server"}, nil)
	drainingDesc = prometheus.NewDesc("xlb_l7_backend_draining",
		"1 while the app server is draining (no new clients, sticky clients until the deadline).",
		[]string{"pool", "server"}, nil)
	stickyDesc = prometheus.NewDesc("xlb_l7_sticky_total",
		"Sticky-session decisions: hit (cookie honoured), new (no usable cookie, pinned), repin (pinned server unusable, moved), pending (recent cookie naming a server this host does not have yet: served by a stand-in, cookie kept), rejected (tampered, expired or unknown cookie, treated as absent).",
		[]string{"pool", "result"}, nil)
	stickyRejectedDesc = prometheus.NewDesc("xlb_l7_sticky_rejected_total",
		"Sticky cookies treated as absent, by reason.",
		[]string{"pool", "reason"}, nil)
	readyDesc = prometheus.NewDesc("xlb_l7_ready",
		"1 while /ready answers 200 (the host can serve), else 0.",
		nil, nil)
	tlsFailuresDesc = prometheus.NewDesc("xlb_l7_tls_handshake_failures_total",
		"Client TLS handshakes that failed: no common version or cipher, timeout, not TLS at all.",
		nil, nil)
	tlsRefusedDesc = prometheus.NewDesc("xlb_l7_tls_connections_refused_total",
		"Client TLS connections closed unserved because limits.max_conns handshakes or h2 connections were already open.",
		nil, nil)
	upstreamReplacedDesc = prometheus.NewDesc("xlb_l7_upstream_connections_replaced_total",
		"Kept-alive connections to app servers found ended by the server (or with bytes nobody asked for) before a request that could not be sent again was written on them, or whose first answer to one that could was a 408 the server sent for the idle connection, and replaced by a new connection. A steady rise means the servers close idle connections before the proxy does: lower the pool's keepalive_timeout.",
		nil, nil)
	availableDesc = prometheus.NewDesc("xlb_l7_pool_available_servers",
		"App servers of the pool that pass their checks and may take new clients (up, not ejected, not draining); at 0 the pool's routes answer 503, or, while xlb_l7_pool_failing_open is 1, go to the failing servers.",
		[]string{"pool"}, nil)
	certExpiryDesc = prometheus.NewDesc("xlb_l7_tls_certificate_expiry_timestamp_seconds",
		"When a certificate the proxy presents stops being valid (its NotAfter, Unix time): use=server for a TLS listener's certificates (owner the listener, subject the certificate's first name), use=client for a pool's client certificate (owner the pool). Renewed files count from the reload that reads them.",
		[]string{"use", "owner", "subject"}, nil)
	failingOpenDesc = prometheus.NewDesc("xlb_l7_pool_failing_open",
		"1 while too few servers of the pool pass their checks (none, or fewer than health.fail_open_below) and new clients go to every server not draining (health.all_down: fail_open).",
		[]string{"pool"}, nil)
)

func newStateCollector(p *Proxy) *stateCollector {
	return &stateCollector{p: p}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{inflightDesc, ejectionsDesc, backendUpDesc, drainingDesc, stickyDesc, stickyRejectedDesc, readyDesc, availableDesc, failingOpenDesc, tlsFailuresDesc, tlsRefusedDesc, upstreamReplacedDesc, certExpiryDesc} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	dir := c.p.director()
	for _, p := range dir.Pools() {
		var inflight int64
		for _, b := range p.Backends {
			inflight += b.InFlight()
			up := b.Up() && !b.Ejected(now)
			draining, _ := b.Draining()
			ch <- prometheus.MustNewConstMetric(ejectionsDesc, prometheus.CounterValue, float64(b.Ejections()), p.Name, b.Name)
			ch <- prometheus.MustNewConstMetric(backendUpDesc, prometheus.GaugeValue, b2f(up), p.Name, b.Name)
			ch <- prometheus.MustNewConstMetric(drainingDesc, prometheus.GaugeValue, b2f(draining), p.Name, b.Name)
		}
		ch <- prometheus.MustNewConstMetric(inflightDesc, prometheus.GaugeValue, float64(inflight), p.Name)
		view := p.View(now)
		ch <- prometheus.MustNewConstMetric(availableDesc, prometheus.GaugeValue, float64(view.Passing()), p.Name)
		ch <- prometheus.MustNewConstMetric(failingOpenDesc, prometheus.GaugeValue, b2f(view.FailingOpen), p.Name)
		if !dir.Sticky(p.Index) {
			continue
		}
		s := dir.StickyStats(p.Index)
		var rejected uint64
		for r := range s.Rejected {
			n := s.Rejected[r].Load()
			rejected += n
			ch <- prometheus.MustNewConstMetric(stickyRejectedDesc, prometheus.CounterValue, float64(n), p.Name, sticky.Reason(r).String())
		}
		ch <- prometheus.MustNewConstMetric(stickyDesc, prometheus.CounterValue, float64(s.Hits.Load()), p.Name, "hit")
		ch <- prometheus.MustNewConstMetric(stickyDesc, prometheus.CounterValue, float64(s.Issued.Load()), p.Name, "new")
		ch <- prometheus.MustNewConstMetric(stickyDesc, prometheus.CounterValue, float64(s.Repins.Load()), p.Name, "repin")
		ch <- prometheus.MustNewConstMetric(stickyDesc, prometheus.CounterValue, float64(s.Pending.Load()), p.Name, "pending")
		ch <- prometheus.MustNewConstMetric(stickyDesc, prometheus.CounterValue, float64(rejected), p.Name, "rejected")
	}
	ready, _ := c.p.Ready()
	ch <- prometheus.MustNewConstMetric(readyDesc, prometheus.GaugeValue, b2f(ready))
	ch <- prometheus.MustNewConstMetric(tlsFailuresDesc, prometheus.CounterValue, float64(c.p.tlsFailures.Load()))
	ch <- prometheus.MustNewConstMetric(tlsRefusedDesc, prometheus.CounterValue, float64(c.p.tlsRefused.Load()))
	ch <- prometheus.MustNewConstMetric(upstreamReplacedDesc, prometheus.CounterValue, float64(c.p.upstreamReplaced.Load()))
	cfg, _ := c.p.Running()
	for k, notAfter := range certificateExpiries(cfg) {
		ch <- prometheus.MustNewConstMetric(certExpiryDesc, prometheus.GaugeValue, float64(notAfter.Unix()), k.use, k.owner, k.subject)
	}
}

type certKey struct{ use, owner, subject string }

// certificateExpiries is the NotAfter of every certificate cfg makes the
// proxy present; of two with the same key (the same name twice in one
// listener) the one that ends first, which is the one to renew.
func certificateExpiries(cfg *config.Config) map[certKey]time.Time {
	out := map[certKey]time.Time{}
	add := func(k certKey, leaf *x509.Certificate) {
		if leaf == nil {
			return
		}
		if t, ok := out[k]; !ok || leaf.NotAfter.Before(t) {
			out[k] = leaf.NotAfter
		}
	}
	for _, l := range cfg.Listeners {
		if l.TLS == nil {
			continue
		}
		for _, c := range l.TLS.Certificates {
			if c.Loaded != nil {
				add(certKey{"server", l.Name, certSubject(c.Loaded.Leaf)}, c.Loaded.Leaf)
			}
		}
	}
	for _, p := range cfg.Pools {
		if p.TLS == nil || p.TLS.Loaded == nil || len(p.TLS.Loaded.Certificates) == 0 {
			continue
		}
		leaf := p.TLS.Loaded.Certificates[0].Leaf
		add(certKey{"client", p.Name, certSubject(leaf)}, leaf)
	}
	return out
}

// certSubject names a certificate as an operator looks for it: its first
// DNS name, else its common name, else its first IP address.
func certSubject(c *x509.Certificate) string {
	switch {
	case c == nil:
		return ""
	case len(c.DNSNames) > 0:
		return c.DNSNames[0]
	case c.Subject.CommonName != "":
		return c.Subject.CommonName
	case len(c.IPAddresses) > 0:
		return c.IPAddresses[0].String()
	}
	return ""
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

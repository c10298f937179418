// Package promcheck tells which metric names and labels xlb's processes
// export, learnt from the collectors themselves, and checks PromQL
// expressions against them. Tests of what queries the metrics (the Grafana
// dashboards, the alert rules) use it, so that a renamed metric or label
// fails a test rather than a dashboard or an alert in production.
package promcheck

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xlbproject/xlb/control/bgp"
	"github.com/xlbproject/xlb/control/metrics"
	"github.com/xlbproject/xlb/internal/etcdstore"
	"github.com/xlbproject/xlb/internal/opsmetrics"
	"github.com/xlbproject/xlb/l7/config"
	"github.com/xlbproject/xlb/l7/director"
	"github.com/xlbproject/xlb/l7/proxy"
)

// Exported maps a metric name to its variable labels.
type Exported map[string][]string

// describer is a prometheus.Registerer that only records what each
// collector describes.
type describer struct{ labels Exported }

var _ prometheus.Registerer = (*describer)(nil)

var descRE = regexp.MustCompile(`fqName: "([a-z0-9_]+)".*variableLabels: \{([^}]*)\}`)

func (d *describer) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() {
		c.Describe(ch)
		close(ch)
	}()
	for desc := range ch {
		m := descRE.FindStringSubmatch(desc.String())
		if m == nil {
			continue
		}
		var labels []string
		if m[2] != "" {
			labels = strings.Split(m[2], ",")
		}
		d.labels[m[1]] = labels
	}
	return nil
}

func (d *describer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = d.Register(c)
	}
}

func (d *describer) Unregister(prometheus.Collector) bool { return false }

// Daemon is what the edge daemon registers: control/metrics, the build and
// reload metrics, and, when configured, the BGP speaker's and the etcd
// store's collectors (control/daemon registers them all). Describing needs
// no speaker or store.
func Daemon() (Exported, error) {
	d := &describer{labels: Exported{}}
	if _, err := metrics.New(d, nil, nil); err != nil {
		return nil, err
	}
	if _, err := opsmetrics.Register(d, "test", time.Now()); err != nil {
		return nil, err
	}
	d.MustRegister(bgp.Collector{}, etcdstore.NewCollector(nil))
	return d.labels, nil
}

// proxyConfig has a sticky pool so that every collector describes all.
const proxyConfig = `
listeners: [{addr: "127.0.0.1:0"}]
sticky:
  keys:
    - {id: 1, secret: "VKNuQ6PekEdVQxoEKhL6bukHWptxdy/xGQ5HnIZSyKQ="}
routes:
  - {name: r, match: {path_prefix: /}, pool: p}
pools:
  - name: p
    sticky: {cookie: s}
    servers:
      - {name: s1, addr: "127.0.0.1:9"}
`

// Proxy is what an L7 proxy registers: l7/proxy's collectors, the build
// and reload metrics and, with store.etcd, the store's collector (the proxy
// command registers them all). It builds a proxy but opens no socket.
func Proxy() (Exported, error) {
	cfg, err := config.Parse("proxy.yaml", []byte(proxyConfig))
	if err != nil {
		return nil, err
	}
	dir, err := director.New(cfg)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	d := &describer{labels: Exported{}}
	p, err := proxy.New(cfg, dir, proxy.Options{Registerer: d})
	if err != nil {
		return nil, err
	}
	defer p.Close()
	if _, err := opsmetrics.Register(d, "test", time.Now()); err != nil {
		return nil, err
	}
	d.MustRegister(etcdstore.NewCollector(nil))
	return d.labels, nil
}

// Union is every metric of a and b.
func Union(a, b Exported) Exported {
	out := maps.Clone(a)
	maps.Copy(out, b)
	return out
}

var (
	selectorRE = regexp.MustCompile(`(xlb_[a-z0-9_]+)(\{[^}]*\})?`)
	matcherRE  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)`)
)

// base maps histogram series names to the histogram's name.
func (e Exported) base(name string) string {
	if _, ok := e[name]; ok {
		return name
	}
	for _, suffix := range []string{"_bucket", "_count", "_sum"} {
		if b, ok := strings.CutSuffix(name, suffix); ok {
			if _, ok := e[b]; ok {
				return b
			}
		}
	}
	return name
}

// Check returns the exported metrics expr queries and what is wrong with
// it: unbalanced brackets, metrics not exported, label matchers on labels
// the metric does not have (instance and job, which a scrape adds, and le
// on histogram series are allowed).
func (e Exported) Check(expr string) (used []string, problems []string) {
	for _, p := range [][2]string{{"(", ")"}, {"{", "}"}, {"[", "]"}} {
		if strings.Count(expr, p[0]) != strings.Count(expr, p[1]) {
			problems = append(problems, fmt.Sprintf("unbalanced %s%s", p[0], p[1]))
		}
	}
	for _, m := range selectorRE.FindAllStringSubmatch(expr, -1) {
		name := e.base(m[1])
		labels, ok := e[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s is not exported", m[1]))
			continue
		}
		used = append(used, name)
		allowed := append(slices.Clone(labels), "instance", "job", "le")
		for _, lm := range matcherRE.FindAllStringSubmatch(m[2], -1) {
			if !slices.Contains(allowed, lm[1]) {
				problems = append(problems, fmt.Sprintf("%s has no label %q", name, lm[1]))
			}
		}
	}
	return used, problems
}

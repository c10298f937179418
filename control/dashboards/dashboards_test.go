package dashboards

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/control/metrics"
	"github.com/xlbproject/xlb/internal/opsmetrics"
	"github.com/xlbproject/xlb/l7/config"
	"github.com/xlbproject/xlb/l7/director"
	"github.com/xlbproject/xlb/l7/proxy"
)

type target struct {
	Expr string `json:"expr"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []target                 `json:"targets"`
}

type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []struct {
			Expr string `json:"expr"`
		} `json:"list"`
	} `json:"annotations"`
}

// describer is a prometheus.Registerer that only records what each
// collector describes, so the test learns the daemon's metric names and
// labels from control/metrics itself rather than from a copy.
type describer struct {
	labels map[string][]string // metric name → variable labels
}

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

// exported is what the edge daemon registers: control/metrics and the
// build and reload metrics (control/daemon registers both).
func exported(t *testing.T) map[string][]string {
	t.Helper()
	d := &describer{labels: map[string][]string{}}
	_, err := metrics.New(d, nil, nil)
	require.NoError(t, err)
	_, err = opsmetrics.Register(d, "test", time.Now())
	require.NoError(t, err)
	require.NotEmpty(t, d.labels)
	return d.labels
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

// exportedL7 is what a proxy registers: l7/proxy's collectors and the
// build and reload metrics (cmd/xlb's proxy command registers both).
func exportedL7(t *testing.T) map[string][]string {
	t.Helper()
	cfg, err := config.Parse("proxy.yaml", []byte(proxyConfig))
	require.NoError(t, err)
	dir, err := director.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = dir.Close() })
	d := &describer{labels: map[string][]string{}}
	p, err := proxy.New(cfg, dir, proxy.Options{Registerer: d})
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Close() })
	_, err = opsmetrics.Register(d, "test", time.Now())
	require.NoError(t, err)
	require.NotEmpty(t, d.labels)
	return d.labels
}

func load(t *testing.T, raw []byte) dashboard {
	t.Helper()
	var d dashboard
	require.NoError(t, json.Unmarshal(raw, &d))
	return d
}

// exprs returns every PromQL expression of the dashboard.
func exprs(d dashboard) []string {
	var out []string
	for _, p := range d.Panels {
		for _, t := range p.Targets {
			out = append(out, t.Expr)
		}
	}
	for _, v := range d.Templating.List {
		if v.Definition != "" {
			out = append(out, v.Definition)
		}
	}
	for _, a := range d.Annotations.List {
		out = append(out, a.Expr)
	}
	return out
}

var (
	selectorRE = regexp.MustCompile(`(xlb_[a-z0-9_]+)(\{[^}]*\})?`)
	matcherRE  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)`)
)

// baseName maps histogram series names to the histogram's name.
func baseName(name string, known map[string][]string) string {
	if _, ok := known[name]; ok {
		return name
	}
	for _, suffix := range []string{"_bucket", "_count", "_sum"} {
		if b, ok := strings.CutSuffix(name, suffix); ok {
			if _, ok := known[b]; ok {
				return b
			}
		}
	}
	return name
}

func TestDashboardQueriesExportedMetrics(t *testing.T) {
	checkQueries(t, load(t, XLB), exported(t), "the daemon")
}

func TestL7DashboardQueriesExportedMetrics(t *testing.T) {
	known := exportedL7(t)
	for _, name := range []string{"xlb_l7_requests_total", "xlb_l7_retries_total", "xlb_l7_server_up", "xlb_build_info"} {
		require.Contains(t, known, name, "the describer saw every collector")
	}
	checkQueries(t, load(t, L7), known, "the proxy")
}

// checkQueries asserts that every metric and label d queries is in known,
// and that every metric of known has a panel on d.
func checkQueries(t *testing.T, d dashboard, known map[string][]string, who string) {
	t.Helper()
	used := map[string]bool{}
	for _, e := range exprs(d) {
		assert.Equal(t, strings.Count(e, "("), strings.Count(e, ")"), "unbalanced parentheses: %s", e)
		assert.Equal(t, strings.Count(e, "{"), strings.Count(e, "}"), "unbalanced braces: %s", e)
		for _, m := range selectorRE.FindAllStringSubmatch(e, -1) {
			name := baseName(m[1], known)
			labels, ok := known[name]
			if !assert.True(t, ok, "%s is not exported by %s (in %s)", m[1], who, e) {
				continue
			}
			used[name] = true
			// Histogram series carry le; scrape adds instance and job.
			allowed := append(slices.Clone(labels), "instance", "job", "le")
			for _, lm := range matcherRE.FindAllStringSubmatch(m[2], -1) {
				assert.Contains(t, allowed, lm[1], "%s has no label %q (in %s)", name, lm[1], e)
			}
		}
	}
	for name := range known {
		assert.True(t, used[name], "metric %s has no panel on the dashboard", name)
	}
}

func TestDashboardLayout(t *testing.T) {
	checkLayout(t, load(t, XLB), "xlb-l4-control", []string{"datasource", "instance", "vip", "backend"})
}

func TestL7DashboardLayout(t *testing.T) {
	checkLayout(t, load(t, L7), "xlb-l7-proxy", []string{"datasource", "instance", "route", "pool", "server"})
}

// checkLayout asserts that d's panels tile the grid without overlap, all
// query the data source variable, and that its variables are vars.
func checkLayout(t *testing.T, d dashboard, uid string, vars []string) {
	t.Helper()
	assert.Equal(t, uid, d.UID)
	assert.NotEmpty(t, d.Title)
	ids := map[int]bool{}
	type cell struct{ x, y int }
	taken := map[cell]string{}
	for _, p := range d.Panels {
		assert.False(t, ids[p.ID], "duplicate panel id %d", p.ID)
		ids[p.ID] = true
		g := p.GridPos
		assert.True(t, g.W > 0 && g.H > 0 && g.X >= 0 && g.X+g.W <= 24, "panel %q out of the 24-column grid: %+v", p.Title, g)
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := taken[cell{x, y}]; ok {
					t.Errorf("panels %q and %q overlap at %d,%d", other, p.Title, x, y)
				}
				taken[cell{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		require.NotNil(t, p.Datasource, "panel %q", p.Title)
		assert.Equal(t, "${datasource}", p.Datasource.UID, "panel %q must use the dashboard's data source variable", p.Title)
		assert.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
	}
	var got []string
	for _, v := range d.Templating.List {
		got = append(got, v.Name)
	}
	assert.Equal(t, vars, got)
}

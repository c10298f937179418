package dashboards

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/control/metrics"
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

func exported(t *testing.T) map[string][]string {
	t.Helper()
	d := &describer{labels: map[string][]string{}}
	_, err := metrics.New(d, nil, nil)
	require.NoError(t, err)
	require.NotEmpty(t, d.labels)
	return d.labels
}

func load(t *testing.T) dashboard {
	t.Helper()
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(XLB)))
	require.NoError(t, dec.Decode(&d))
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
	known := exported(t)
	d := load(t)
	used := map[string]bool{}
	for _, e := range exprs(d) {
		assert.Equal(t, strings.Count(e, "("), strings.Count(e, ")"), "unbalanced parentheses: %s", e)
		assert.Equal(t, strings.Count(e, "{"), strings.Count(e, "}"), "unbalanced braces: %s", e)
		for _, m := range selectorRE.FindAllStringSubmatch(e, -1) {
			name := baseName(m[1], known)
			labels, ok := known[name]
			if !assert.True(t, ok, "%s is not exported by control/metrics (in %s)", m[1], e) {
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
	d := load(t)
	assert.Equal(t, "xlb-l4-control", d.UID)
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
	var vars []string
	for _, v := range d.Templating.List {
		vars = append(vars, v.Name)
	}
	assert.Equal(t, []string{"datasource", "instance", "vip", "backend"}, vars)
}

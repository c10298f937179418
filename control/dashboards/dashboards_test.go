package dashboards

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/internal/promcheck"
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

func exported(t *testing.T) promcheck.Exported {
	t.Helper()
	e, err := promcheck.Daemon()
	require.NoError(t, err)
	return e
}

func exportedL7(t *testing.T) promcheck.Exported {
	t.Helper()
	e, err := promcheck.Proxy()
	require.NoError(t, err)
	return e
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
func checkQueries(t *testing.T, d dashboard, known promcheck.Exported, who string) {
	t.Helper()
	used := map[string]bool{}
	for _, e := range exprs(d) {
		names, problems := known.Check(e)
		assert.Empty(t, problems, "%s: in %s", who, e)
		for _, n := range names {
			used[n] = true
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

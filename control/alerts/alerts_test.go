package alerts

import (
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/xlbproject/xlb/internal/promcheck"
)

type rulesFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

type testsFile struct {
	Tests []struct {
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

func load[T any](t *testing.T, raw []byte) T {
	t.Helper()
	var v T
	require.NoError(t, yaml.Unmarshal(raw, &v))
	return v
}

// Every rule queries only metrics and labels the daemon or the proxy
// exports, has a severity and a summary, and has a promtool unit test in
// which it fires and one in which it does not.
func TestRulesQueryExportedMetrics(t *testing.T) {
	d, err := promcheck.Daemon()
	require.NoError(t, err)
	p, err := promcheck.Proxy()
	require.NoError(t, err)
	known := promcheck.Union(d, p)

	raw, err := os.ReadFile("xlb-alerts_test.yaml")
	require.NoError(t, err)
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range load[testsFile](t, raw).Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}

	var names []string
	rules := load[rulesFile](t, Rules)
	require.NotEmpty(t, rules.Groups)
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			require.NotEmpty(t, r.Alert, "group %s has a rule that is not an alert", g.Name)
			assert.NotContains(t, names, r.Alert, "alert names are unique")
			names = append(names, r.Alert)
			used, problems := known.Check(r.Expr)
			assert.Empty(t, problems, "%s: %s", r.Alert, r.Expr)
			assert.NotEmpty(t, used, "%s queries no xlb metric", r.Alert)
			assert.Contains(t, []string{"warning", "critical"}, r.Labels["severity"], r.Alert)
			assert.NotEmpty(t, r.Annotations["summary"], r.Alert)
			assert.True(t, fires[r.Alert], "%s has no promtool test where it fires", r.Alert)
			assert.True(t, quiet[r.Alert], "%s has no promtool test where it stays quiet", r.Alert)
		}
	}
	for a := range fires {
		assert.Contains(t, names, a, "the tests name an alert the rules do not have")
	}
}

// promtool checks the rules' syntax and runs their unit tests.
func TestPromtool(t *testing.T) {
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (Debian: apt-get install prometheus, or make deps): the rules' unit tests did not run; TestRulesQueryExportedMetrics still checked every expression")
	}
	for _, args := range [][]string{{"check", "rules", "xlb-alerts.yaml"}, {"test", "rules", "xlb-alerts_test.yaml"}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		assert.NoError(t, err, "promtool %v:\n%s", args, out)
	}
}

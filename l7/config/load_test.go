package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/l7/config"
)

const minimal = `listeners:
  - addr: ":8080"
sticky:
  keys:
    - id: 1
      secret: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3"
routes:
  - name: checkout
    match:
      path_prefix: /checkout
    pool: checkout
pools:
  - name: checkout
    servers:
      - addr: "127.0.0.1:9001"
    sticky: {}
`

func TestParseDefaults(t *testing.T) {
	cfg, err := config.Parse("x.yaml", []byte(minimal))
	require.NoError(t, err)
	assert.Equal(t, ":8080", cfg.Listeners[0].Name)
	assert.Equal(t, config.DefaultReadHeaderTimeout, cfg.Limits.ReadHeaderTimeout)
	assert.Equal(t, config.DefaultMaxHeaderBytes, cfg.Limits.MaxHeaderBytes)
	p := cfg.Pools[0]
	assert.Equal(t, config.PolicyP2C, p.Policy)
	assert.Equal(t, "127.0.0.1:9001", p.Servers[0].Name)
	assert.Equal(t, 1, p.Servers[0].Weight)
	assert.Equal(t, config.DefaultConsecutiveErrors, p.Health.Passive.ConsecutiveErrors)
	assert.Equal(t, config.DefaultMaxEjectedPercent, p.Health.Passive.MaxEjectedPercent)
	assert.Nil(t, p.Health.Active)
	assert.Equal(t, config.DefaultKeepaliveTimeout, p.KeepaliveTimeout)
	require.NotNil(t, p.Sticky)
	assert.Equal(t, "xlb_checkout", p.Sticky.Cookie)
	assert.Equal(t, config.DefaultStickyMaxAge, p.Sticky.MaxAge)
	require.NotNil(t, p.Sticky.PropagationGrace)
	assert.Equal(t, config.DefaultPropagationGrace, *p.Sticky.PropagationGrace)
	r := cfg.Routes[0]
	assert.Equal(t, config.DefaultDialTimeout, r.Timeouts.Dial)
	assert.Equal(t, config.DefaultResponseTimeout, r.Timeouts.Response)
	assert.Equal(t, int64(config.DefaultMaxBodyBytes), r.MaxBodyBytes)
	assert.Len(t, cfg.Sticky.Keys[0].Bytes, 24)

	assert.Equal(t, config.PriorityNormal, r.Priority)
	assert.Equal(t, config.DefaultRetries, r.Retries.Max)
	require.NotNil(t, r.Retries.Idempotent)
	assert.True(t, *r.Retries.Idempotent)
	assert.Equal(t, r.Timeouts.Response, r.Retries.PerTryTimeout)
	assert.Equal(t, int64(config.DefaultStreamRequestBody), r.StreamRequestBodyBytes)
	assert.Equal(t, config.RetryBudget{Percent: 20, MinPerSecond: 3, Window: 10 * time.Second}, p.RetryBudget)
	assert.Equal(t, config.Shedding{MaxInFlight: config.DefaultMaxConns, Low: 70, Normal: 85, Critical: 100, RetryAfter: time.Second}, cfg.Shedding)
}

func TestStickyPropagationGraceOff(t *testing.T) {
	cfg, err := config.Parse("x.yaml", []byte(strings.Replace(minimal, "    sticky: {}", "    sticky: {propagation_grace: 0s}", 1)))
	require.NoError(t, err)
	assert.Zero(t, cfg.Pools[0].Sticky.Grace(), "an explicit 0s turns the grace off")
	assert.Equal(t, config.DefaultPropagationGrace, (&config.Sticky{}).Grace(), "unset means the default")
}

func TestParseValues(t *testing.T) {
	cfg, err := config.Parse("x.yaml", []byte(minimal+`    keepalive_timeout: 1500ms
    health:
      active: {path: /hc, interval: 3s, timeout: 250ms, rise: 4, fall: 1}
trusted_proxies: ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"]
`))
	require.NoError(t, err)
	a := cfg.Pools[0].Health.Active
	require.NotNil(t, a)
	assert.Equal(t, 1500*time.Millisecond, cfg.Pools[0].KeepaliveTimeout)
	assert.Equal(t, 3*time.Second, a.Interval)
	assert.Equal(t, 250*time.Millisecond, a.Timeout)
	assert.Equal(t, 4, a.Rise)
	assert.Equal(t, 1, a.Fall)
	require.Len(t, cfg.TrustedPrefixes, 3)
	assert.Equal(t, "192.0.2.7/32", cfg.TrustedPrefixes[1].String())
}

// routeExtra adds lines to minimal's route.
func routeExtra(lines string) string {
	return replace("    pool: checkout\npools:", "    pool: checkout\n"+lines+"\npools:")
}

// replace swaps one line of minimal, so each case names the line it breaks.
func replace(old, new string) string { return strings.Replace(minimal, old, new, 1) }

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string // "file:line: reason" substring
	}{
		{"empty", "", "x.yaml: empty configuration"},
		{"alias of nothing", replace("    pool: checkout", "    pool: *checkout"), "x.yaml:11: syntax error: a value that starts with * is read as a YAML alias"},
		{"unknown top-level field", minimal + "bogus: 1\n", `x.yaml:17: unknown key "bogus" (known keys: access_log, admin, limits, listeners, pools, readiness, routes, shedding, shutdown, sticky, store, trusted_proxies)`},
		{"unknown nested field", replace("      path_prefix: /checkout", "      path_prefx: /checkout"), `x.yaml:10: unknown key "path_prefx" in routes[0].match (did you mean "path_prefix"?)`},
		{"typo in a listener", replace(`  - addr: ":8080"`, `  - adr: ":8080"`), `x.yaml:2: unknown key "adr" in listeners[0] (did you mean "addr"?)`},
		{"bare number for a duration", minimal + "limits: {read_timeout: 30}\n", `x.yaml:17: limits.read_timeout: 30 is not a duration: give a unit, e.g. 30s or 30ms`},
		{"word for a duration", replace("    sticky: {}", "    sticky: {max_age: soon}"), `x.yaml:16: pools[0].sticky.max_age: "soon" is not a duration such as 500ms, 30s or 5m`},
		{"word for a number", minimal + "limits: {max_conns: many}\n", `x.yaml:17: limits.max_conns must be a whole number, not "many"`},
		{"scalar for a list", minimal + "trusted_proxies: 10.0.0.0/8\n", `x.yaml:17: trusted_proxies must be a list, not "10.0.0.0/8"`},
		{"bad readiness", minimal + "readiness: some\n", `x.yaml:17: readiness "some" is not one of host, all_pools`},
		{"tab indent", "listeners:\n\t- addr: \":80\"\n", "x.yaml:2: syntax error: a tab or a character YAML does not allow here: indent with spaces"},
		{"duplicate key", minimal + "limits: {}\nlimits: {}\n", `x.yaml:18: key "limits" appears twice (first at line 17)`},
		{"syntax", replace("    pool: checkout", "    pool: [checkout"), "x.yaml:"},
		{"no listener", replace("  - addr: \":8080\"", "  []"), "x.yaml:1: at least one listener"},
		{"bad listener addr", replace(`":8080"`, `"8080"`), `x.yaml:2: listener addr "8080" is not host:port`},
		{"unknown pool", replace("    pool: checkout", "    pool: nope"), `x.yaml:11: route "checkout" names unknown pool "nope"`},
		{"path and prefix", replace("      path_prefix: /checkout", "      path_prefix: /checkout\n      path: /checkout"), `x.yaml:9: route "checkout" sets both path and path_prefix`},
		{"unclean prefix", replace("path_prefix: /checkout", "path_prefix: /a/../checkout"), `x.yaml:10: route "checkout" path_prefix "/a/../checkout" is not a clean`},
		{"bad policy", replace("  - name: checkout\n    servers", "  - name: checkout\n    policy: random\n    servers"), `x.yaml:14: pool "checkout" policy "random" is not one of`},
		{"hash without key", replace("  - name: checkout\n    servers", "  - name: checkout\n    policy: hash\n    servers"), `x.yaml:14: pool "checkout" uses policy hash but has no hash_key`},
		{"bad hash key", replace("  - name: checkout\n    servers", "  - name: checkout\n    policy: hash\n    hash_key: body\n    servers"), `x.yaml:15: pool "checkout" hash_key "body"`},
		{"no servers", replace("      - addr: \"127.0.0.1:9001\"", "      []"), `x.yaml:14: pool "checkout" has no servers`},
		{"negative weight", replace(`      - addr: "127.0.0.1:9001"`, `      - addr: "127.0.0.1:9001"`+"\n        weight: -1"), `x.yaml:16: pool "checkout" server "127.0.0.1:9001" weight -1`},
		{"duplicate server", replace(`      - addr: "127.0.0.1:9001"`, `      - addr: "127.0.0.1:9001"`+"\n      - addr: \"127.0.0.1:9001\""), `x.yaml:16: pool "checkout" has duplicate server name`},
		{"same addr twice", replace(`      - addr: "127.0.0.1:9001"`, `      - {name: a, addr: "127.0.0.1:9001"}`+"\n      - {name: b, addr: \"127.0.0.1:9002\"}\n      - {name: c, addr: \"[::ffff:127.0.0.1]:9001\"}"),
			`x.yaml:17: pool "checkout" servers "a" and "c" have the same addr [::ffff:127.0.0.1]:9001: each app server once per pool (a weight gives it a larger share)`},
		{"same host name twice", replace(`      - addr: "127.0.0.1:9001"`, `      - {name: a, addr: "App1.example:80"}`+"\n      - {name: b, addr: \"app1.example:80\"}"),
			`x.yaml:16: pool "checkout" servers "a" and "b" have the same addr app1.example:80`},
		{"short secret", replace(`"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3"`, `"c2hvcnQ="`), "x.yaml:6: sticky key 1 secret is 5 bytes"},
		{"bad key id", replace("    - id: 1", "    - id: 300"), "x.yaml:5: sticky key id 300 is not within 1..255"},
		{"negative propagation grace", replace("    sticky: {}", "    sticky: {propagation_grace: -1s}"), `x.yaml:16: pool "checkout" sticky propagation_grace -1s is negative`},
		{"propagation grace past max age", replace("    sticky: {}", "    sticky: {max_age: 1m, propagation_grace: 2m}"), `x.yaml:16: pool "checkout" sticky propagation_grace 2m0s is longer than max_age 1m0s: no cookie lives that long`},
		{"sticky without keys", replace("    - id: 1\n      secret: \"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3\"", "    []"), `x.yaml:15: pool "checkout" uses sticky sessions but sticky.keys is empty`},
		{"timeout above interval", minimal + "    health:\n      active: {interval: 1s, timeout: 2s}\n", `x.yaml:18: pool "checkout" health timeout 2s exceeds interval 1s`},
		{"bad trusted proxy", minimal + "trusted_proxies: [\"10.0.0.0/33\"]\n", `x.yaml:17: trusted proxy "10.0.0.0/33"`},
		{"duplicate match", minimal[:strings.Index(minimal, "pools:")] + "  - name: again\n    match:\n      path_prefix: /checkout\n    pool: checkout\n" + minimal[strings.Index(minimal, "pools:"):], `x.yaml:13: route "again" has the same match as route "checkout"`},
		{"two documents", minimal + "---\nlisteners: []\n", "x.yaml:17: more than one YAML document"},
		{"bad priority", routeExtra("    priority: urgent"), `x.yaml:12: route "checkout" priority "urgent" is not one of critical, normal, low`},
		{"too many retries", routeExtra("    retries: {max: 11}"), `x.yaml:12: route "checkout" retries max 11 is not within 0..10`},
		{"per-try above response", routeExtra("    timeouts: {response: 1s}\n    retries: {per_try_timeout: 2s}"), `x.yaml:13: route "checkout" per_try_timeout 2s exceeds the response timeout 1s`},
		{"negative stream threshold", routeExtra("    stream_request_body_bytes: -1"), `x.yaml:12: route "checkout" stream_request_body_bytes is -1, must be at least 4096`},
		{"stream threshold under one write", routeExtra("    stream_request_body_bytes: 1024"), `x.yaml:12: route "checkout" stream_request_body_bytes is 1024, must be at least 4096`},
		{"keepalive timeout too short", minimal + "    keepalive_timeout: 10ms\n", `x.yaml:17: pool "checkout" keepalive_timeout 10ms is below 100ms`},
		{"negative keepalive timeout", minimal + "    keepalive_timeout: -2s\n", `x.yaml:17: pool "checkout" keepalive_timeout -2s is below 100ms`},
		{"budget percent", minimal + "    retry_budget: {percent: 150}\n", `x.yaml:17: retry_budget percent 150 is not within 1..100`},
		{"budget window", minimal + "    retry_budget: {window: 100ms}\n", `x.yaml:17: retry_budget window 100ms is shorter than 1s`},
		{"shedding inverted", minimal + "shedding: {low: 90, normal: 80}\n", `x.yaml:17: shedding thresholds must rise with priority`},
		{"shedding percent", minimal + "shedding: {critical: 120}\n", `x.yaml:17: shedding critical 120% is not within 1..100`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse("x.yaml", []byte(tt.yaml))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			var ce *config.Error
			assert.True(t, errors.As(err, &ce), "errors are *config.Error: %v", err)
		})
	}
}

// TestParseErrorsAll: every problem of the file is reported at once.
func TestParseErrorsAll(t *testing.T) {
	text := replace(`  - addr: ":8080"`, `  - adr: ":8080"`) + "limits: {idle_timeout: 60, max_conns: x}\n"
	_, err := config.Parse("proxy.yaml", []byte(text))
	require.Error(t, err)
	assert.Equal(t, `proxy.yaml:2: unknown key "adr" in listeners[0] (did you mean "addr"?)
proxy.yaml:17: limits.idle_timeout: 60 is not a duration: give a unit, e.g. 60s or 60ms
proxy.yaml:17: limits.max_conns must be a whole number, not "x"`, err.Error())
}

func TestLoadMissingFile(t *testing.T) {
	_, err := config.Load(filepath.Join(t.TempDir(), "nope.yaml"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func FuzzParse(f *testing.F) {
	example, err := os.ReadFile("../example.yaml")
	require.NoError(f, err)
	f.Add(string(example))
	f.Add(minimal)
	f.Add("listeners: [{addr: ':1'}]\nroutes: [{name: r, pool: p}]\npools: [{name: p, servers: [{addr: 'a:1'}]}]\n")
	f.Add("a: &a [*a]\n")
	f.Add("{")
	f.Fuzz(func(t *testing.T, in string) {
		cfg, err := config.Parse("f.yaml", []byte(in))
		if err != nil {
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("error is not a *config.Error: %v", err)
			}
			return
		}
		// A config that parses is complete: the invariants the rest of
		// l7 relies on without re-checking.
		if len(cfg.Listeners) == 0 || len(cfg.Routes) == 0 || len(cfg.Pools) == 0 {
			t.Fatal("accepted a config without listeners, routes or pools")
		}
		for _, p := range cfg.Pools {
			if len(p.Servers) == 0 || p.Policy == "" {
				t.Fatalf("pool %q accepted incomplete", p.Name)
			}
			for _, s := range p.Servers {
				if s.Weight < 1 {
					t.Fatalf("server %q weight %d", s.Name, s.Weight)
				}
			}
			if p.Sticky != nil && len(cfg.Sticky.Keys) == 0 {
				t.Fatal("sticky pool without keys")
			}
		}
		for _, r := range cfg.Routes {
			if r.Timeouts.Dial <= 0 || r.Timeouts.Response <= 0 || r.MaxBodyBytes <= 0 {
				t.Fatalf("route %q accepted without limits", r.Name)
			}
		}
	})
}

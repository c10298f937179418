package strictyaml

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

type inner struct {
	Addr    string        `yaml:"addr"`
	Timeout time.Duration `yaml:"timeout"`
	Weight  *int          `yaml:"weight"`
	On      bool          `yaml:"on"`
}

type doc struct {
	Items  []inner           `yaml:"items"`
	Labels map[string]string `yaml:"labels"`
	Skip   string            `yaml:"-"`
	Ratio  float64           `yaml:"ratio"`
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []Problem
	}{
		{"valid", "items: [{addr: a, timeout: 1s, weight: 2, on: true}]\nratio: 1\nlabels: {a: b}\n", nil},
		{"null keeps default", "items:\nratio:\n", nil},
		{"typo", "items:\n  - adr: x\n", []Problem{{2, `unknown key "adr" in items[0] (did you mean "addr"?)`}}},
		{"transposition", "items: [{addr: x, wieght: 1}]\n", []Problem{{1, `unknown key "wieght" in items[0] (did you mean "weight"?)`}}},
		{"far from anything", "zzzzzz: 1\n", []Problem{{1, `unknown key "zzzzzz" (known keys: items, labels, ratio)`}}},
		{"skipped field is unknown", "skip: x\n", []Problem{{1, `unknown key "skip" (known keys: items, labels, ratio)`}}},
		{"bare number duration", "items: [{timeout: 30}]\n", []Problem{{1, `items[0].timeout: 30 is not a duration: give a unit, e.g. 30s or 30ms`}}},
		{"bool", "items: [{on: yes please}]\n", []Problem{{1, `items[0].on must be true or false, not "yes please"`}}},
		{"map of list", "labels: [a]\n", []Problem{{1, `labels must be a mapping of keys to values, not a list`}}},
		{"map value", "labels: {a: [b]}\n", []Problem{{1, `labels.a must be a single value, not a list`}}},
		{"several", "items:\n  - adr: x\n  - timeout: soon\n", []Problem{
			{2, `unknown key "adr" in items[0] (did you mean "addr"?)`},
			{3, `items[1].timeout: "soon" is not a duration such as 500ms, 30s or 5m`},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n yaml.Node
			require.NoError(t, yaml.Unmarshal([]byte(tt.yaml), &n))
			assert.Equal(t, tt.want, Check(&n, &doc{}))
		})
	}
}

func TestDistance(t *testing.T) {
	assert.Equal(t, 0, distance("addr", "addr"))
	assert.Equal(t, 1, distance("adr", "addr"))
	assert.Equal(t, 1, distance("wieght", "weight"))
	assert.Equal(t, 3, distance("", "abc"))
}

func TestDuplicateKeys(t *testing.T) {
	var n yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte("ratio: 1\nitems: [{addr: a, addr: b}]\nratio: 2\n"), &n))
	assert.Equal(t, []Problem{
		{3, `key "ratio" appears twice (first at line 1)`},
		{2, `key "addr" appears twice in items[0] (first at line 2)`},
	}, Check(&n, &doc{}))
}

func TestExplain(t *testing.T) {
	assert.Equal(t, "syntax error: a tab or a character YAML does not allow here: indent with spaces, and quote a value that starts with @ or ` (found character that cannot start any token)",
		Explain("found character that cannot start any token"))
	assert.Equal(t, "something else", Explain("something else"))
}

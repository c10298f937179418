package strictyaml

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

func TestLineOf(t *testing.T) {
	const doc = `listeners:
  - name: a
    addr: ":80"
  - name: b

pools:
  - name: shop
    servers:
      - addr: x
`
	var root yaml.Node
	require.NoError(t, yaml.Unmarshal([]byte(doc), &root))
	for _, tc := range []struct {
		path []any
		want int
	}{
		{nil, 1},
		{[]any{"listeners"}, 1},
		{[]any{"listeners", 0, "addr"}, 3},
		{[]any{"listeners", 1}, 4},
		{[]any{"listeners", 1, "addr"}, 4}, // missing: the mapping that lacks it
		{[]any{"listeners", 7}, 1},         // no such element: the sequence's key
		{[]any{"pools", 0, "servers", 0, "addr"}, 9},
		{[]any{"nosuch"}, 1},
	} {
		assert.Equal(t, tc.want, LineOf(&root, tc.path), "%v", tc.path)
	}
}

func TestDecodeProblems(t *testing.T) {
	var v struct {
		N int `yaml:"n"`
		M int `yaml:"m"`
	}
	err := yaml.Unmarshal([]byte("n: x\nm: y\n"), &v)
	require.Error(t, err)
	probs := DecodeProblems(err)
	require.Len(t, probs, 2)
	assert.Equal(t, 1, probs[0].Line)
	assert.Equal(t, 2, probs[1].Line)
	assert.Contains(t, probs[0].Reason, "x")

	err = yaml.Unmarshal([]byte("a:\n\tb: 1\n"), &v)
	require.Error(t, err)
	probs = DecodeProblems(err)
	require.Len(t, probs, 1)
	assert.Equal(t, 2, probs[0].Line)
	assert.Contains(t, probs[0].Reason, "syntax error: a tab")
}

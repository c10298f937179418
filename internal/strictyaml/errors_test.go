package strictyaml

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

type target struct {
	Name  string `yaml:"name"`
	Ports []int  `yaml:"ports"`
}

func TestDecodeFile(t *testing.T) {
	var v target
	root, err := DecodeFile("a.yaml", []byte("name: x\nports: [1, 2]\n"), &v)
	require.NoError(t, err)
	assert.Equal(t, target{Name: "x", Ports: []int{1, 2}}, v)
	assert.Equal(t, 2, LineOf(root, []any{"ports"}))

	for _, tc := range []struct{ name, doc, want string }{
		{"empty", "", "a.yaml: empty configuration"},
		{"comments only", "# nothing\n", "a.yaml: empty configuration"},
		{"syntax", "name: x\n\tports: 1\n", "a.yaml:2: "},
		{"unknown keys, all", "nme: x\nprts: [1]\n", "a.yaml:1: unknown key \"nme\""},
		// The YAML library's own words, each put in an operator's.
		{"tab in the indentation", "name:\n  - x\n\tports: 1\n", "a.yaml:2: syntax error: a tab in the indentation: indent with spaces only"},
		{"an & without a name", "ports: [1]\nname: &\n", "a.yaml:2: syntax error: a * or & without a name after it"},
		{"a list opened at the end", "name: x\nports: [\n", "a.yaml:2: syntax error: a value is missing where one must come: a '[' or '{' that is not closed, or a ',' with nothing after it (did not find expected node content)"},
		{"an alias of nothing", "name: x\nports:\n  - *web\n", "a.yaml:3: syntax error: a value that starts with * is read as a YAML alias, and no &anchor of that name comes before it: quote the value (unknown anchor 'web' referenced)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeFile("a.yaml", []byte(tc.doc), &target{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			var fe *Error
			assert.True(t, errors.As(err, &fe), "%v is an *Error", err)
		})
	}
	_, err = DecodeFile("a.yaml", []byte("name: x\n---\nname: y\n"), &target{})
	assert.EqualError(t, err, "a.yaml:2: more than one YAML document", "a second document is refused, not ignored")
	_, err = DecodeFile("a.yaml", []byte("nme: x\nprts: [1]\n"), &target{})
	assert.Contains(t, err.Error(), "a.yaml:2: unknown key \"prts\"", "every problem, not just the first")
}

func TestDecodeOne(t *testing.T) {
	doc := []byte("name: x\n---\nname: y\n")
	probs := DecodeOne(doc, mustParse(t, doc), &target{})
	require.Len(t, probs, 1)
	assert.Equal(t, Problem{Line: 2, Reason: "more than one YAML document"}, probs[0])

	one := []byte("name: x\n")
	var v target
	assert.Empty(t, DecodeOne(one, mustParse(t, one), &v))
	assert.Equal(t, "x", v.Name)
}

func TestErrorf(t *testing.T) {
	doc := []byte("name: x\nports:\n  - 1\n  - 2\n")
	e := Errorf("a.yaml", mustParse(t, doc), []any{"ports", 1}, "port %d is taken", 2)
	assert.Equal(t, "a.yaml:4: ports[1]: port 2 is taken", e.Error())
	assert.Equal(t, "a.yaml: empty", (&Error{File: "a.yaml", Reason: "empty"}).Error())
	assert.Equal(t, "vips[0].backends[2].port", PathString([]any{"vips", 0, "backends", 2, "port"}))
	assert.NoError(t, FileError("a.yaml", nil))
}

func mustParse(t *testing.T, data []byte) *yaml.Node {
	t.Helper()
	var root yaml.Node
	require.NoError(t, yaml.Unmarshal(data, &root))
	return &root
}

func TestDoc(t *testing.T) {
	var v target
	doc, err := NewDoc("a.yaml", []byte("name: x\nports:\n  - 1\n"), &v)
	require.NoError(t, err)
	assert.Equal(t, "x", v.Name)
	assert.NoError(t, doc.Err(), "no problem recorded yet")
	doc.Errorf([]any{"ports", 0}, "port %d is taken", 1)
	doc.Errorf([]any{"name"}, "bad")
	assert.Equal(t, 2, doc.Problems())
	assert.EqualError(t, doc.Err(), "a.yaml:3: ports[0]: port 1 is taken\na.yaml:1: name: bad")

	_, err = NewDoc("a.yaml", []byte("nme: x\n"), &v)
	assert.ErrorContains(t, err, `a.yaml:1: unknown key "nme"`, "decoding problems come before any validation")
}

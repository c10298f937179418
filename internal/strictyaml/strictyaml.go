// Package strictyaml checks a YAML document against the Go type it will be
// decoded into, before decoding, and says what is wrong in an operator's
// words: the key path, the line, and the fix ("unknown key "adr" in
// listeners[0] (did you mean "addr"?)", "30 is not a duration: give a unit,
// e.g. 30s"). The YAML library's own messages name Go types instead
// ("field adr not found in type config.Listener") and stop at the first
// problem of a kind.
//
// Check knows the shapes yaml.v3 decodes: structs by their yaml tags,
// pointers, slices, maps with string keys, time.Duration, strings, bools,
// integers and floats. Anything else is left to the decoder.
package strictyaml

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Problem is one mistake in the document.
type Problem struct {
	Line   int
	Reason string
}

// Check walks doc (a document or its content node) against the type of v
// (a pointer to, or a value of, the decode target) and returns every
// problem found: unknown and duplicate keys, values of the wrong kind.
func Check(doc *yaml.Node, v any) []Problem {
	n := doc
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		n = n.Content[0]
	}
	c := &checker{}
	c.walk(n, reflect.TypeOf(v), "")
	return c.problems
}

type checker struct{ problems []Problem }

func (c *checker) add(n *yaml.Node, format string, args ...any) {
	c.problems = append(c.problems, Problem{Line: n.Line, Reason: fmt.Sprintf(format, args...)})
}

var durationType = reflect.TypeOf(time.Duration(0))

// where renders a key path for messages: "listeners[0].addr", or "the top
// level" for the root.
func where(path string) string {
	if path == "" {
		return "the top level"
	}
	return path
}

func (c *checker) walk(n *yaml.Node, t reflect.Type, path string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an empty value keeps the default
	}
	if t == durationType {
		c.duration(n, path)
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			c.add(n, "%s must be a mapping of keys to values, not %s", where(path), describe(n))
			return
		}
		fields := yamlFields(t)
		c.duplicates(n, path)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			f, ok := fields[k.Value]
			if !ok {
				c.unknown(k, path, fields)
				continue
			}
			c.walk(val, f.Type, join(path, k.Value))
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			c.add(n, "%s must be a list, not %s", where(path), describe(n))
			return
		}
		for i, e := range n.Content {
			c.walk(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			c.add(n, "%s must be a mapping of keys to values, not %s", where(path), describe(n))
			return
		}
		c.duplicates(n, path)
		for i := 0; i+1 < len(n.Content); i += 2 {
			c.walk(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value))
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			c.add(n, "%s must be a single value, not %s", where(path), describe(n))
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			c.add(n, "%s must be true or false, not %s", where(path), describe(n))
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			c.add(n, "%s must be a whole number, not %s", where(path), describe(n))
		}
	case reflect.Float32, reflect.Float64:
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!float" && n.Tag != "!!int") {
			c.add(n, "%s must be a number, not %s", where(path), describe(n))
		}
	}
}

// duplicates reports a key given twice in one mapping: the decoder would
// keep one of them silently or stop with a message about Go types.
func (c *checker) duplicates(n *yaml.Node, path string) {
	first := map[string]int{}
	in := ""
	if path != "" {
		in = " in " + path
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if line, ok := first[k.Value]; ok {
			c.add(k, "key %q appears twice%s (first at line %d)", k.Value, in, line)
			continue
		}
		first[k.Value] = k.Line
	}
}

func (c *checker) duration(n *yaml.Node, path string) {
	if n.Kind != yaml.ScalarNode {
		c.add(n, "%s must be a duration such as 500ms, 30s or 5m, not %s", where(path), describe(n))
		return
	}
	if n.Tag == "!!int" || n.Tag == "!!float" {
		c.add(n, "%s: %s is not a duration: give a unit, e.g. %ss or %sms", where(path), n.Value, n.Value, n.Value)
		return
	}
	if _, err := time.ParseDuration(n.Value); err != nil {
		c.add(n, "%s: %q is not a duration such as 500ms, 30s or 5m", where(path), n.Value)
	}
}

func (c *checker) unknown(k *yaml.Node, path string, fields map[string]reflect.StructField) {
	in := ""
	if path != "" {
		in = " in " + path
	}
	if s := suggest(k.Value, fields); s != "" {
		c.add(k, "unknown key %q%s (did you mean %q?)", k.Value, in, s)
		return
	}
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	slices.Sort(names)
	c.add(k, "unknown key %q%s (known keys: %s)", k.Value, in, strings.Join(names, ", "))
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// describe names what a node is, for "must be X, not Y".
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 || n.Tag == "!!str" {
		return strconv.Quote(n.Value)
	}
	return n.Value
}

// yamlFields maps a struct's YAML keys to its fields, as yaml.v3 names
// them: the tag's name, else the lowercased field name; "-" is skipped.
func yamlFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range yamlFields(ft) {
					out[k] = v
				}
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f
	}
	return out
}

// suggest returns the known key closest to key when it is a likely typo
// (edit distance at most 2, or 1 for short keys), else "".
func suggest(key string, fields map[string]reflect.StructField) string {
	best, bestD := "", 0
	for name := range fields {
		d := distance(strings.ToLower(key), name)
		if best == "" || d < bestD || (d == bestD && name < best) {
			best, bestD = name, d
		}
	}
	limit := 2
	if len(key) <= 3 {
		limit = 1
	}
	if best != "" && bestD <= limit {
		return best
	}
	return ""
}

// distance is the Levenshtein distance with adjacent transpositions counted
// as one edit (optimal string alignment).
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}

// syntaxWords puts the YAML parser's syntax errors in an operator's words.
var syntaxWords = []struct{ raw, words string }{
	{"found character that cannot start any token", "a tab or a character YAML does not allow here: indent with spaces, and quote a value that starts with @ or `"},
	{"did not find expected key", "the indentation is off, or a key lacks its ':'"},
	{"mapping values are not allowed in this context", "an unexpected ':': quote a value that contains ': ', or fix the indentation"},
	{"could not find expected ':'", "a key without ':' after it"},
	{"did not find expected ',' or ']'", "a list in [ ] is not closed with ']'"},
	{"did not find expected ',' or '}'", "a mapping in { } is not closed with '}'"},
	{"did not find expected '-' indicator", "a list item without '-', or a key at the indentation of a list"},
	{"found unexpected end of stream", "the file ends inside a quoted string or a bracket: close it"},
	{"did not find expected node content", "a value is missing where one must come: a '[' or '{' that is not closed, or a ',' with nothing after it"},
	{"found unknown escape character", "an unknown \\ escape in a double-quoted string: use single quotes, or write \\\\"},
	{"found a tab character", "a tab in the indentation: indent with spaces only"},
	{"did not find expected alphabetic or numeric character", "a * or & without a name after it (YAML reads them as an alias and an anchor): quote a value that starts with * or &, and check that every quote before this line is closed"},
	{"unknown anchor", "a value that starts with * is read as a YAML alias, and no &anchor of that name comes before it: quote the value"},
}

// Explain returns the YAML parser's message reason in an operator's words,
// keeping the parser's own phrase in parentheses; an unknown message is
// returned as it is.
func Explain(reason string) string {
	for _, s := range syntaxWords {
		if strings.Contains(reason, s.raw) {
			return "syntax error: " + s.words + " (" + reason + ")"
		}
	}
	return reason
}

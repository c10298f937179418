package strictyaml

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// DecodeProblems turns an error of the YAML library (a syntax error, or a
// *yaml.TypeError's list) into Problems: the line it names and the reason in
// an operator's words (Explain; "field x not found in type T" becomes
// `unknown key "x"`). A message without a line gets line 0.
func DecodeProblems(err error) []Problem {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	probs := make([]Problem, 0, len(msgs))
	for _, m := range msgs {
		p := Problem{Reason: strings.TrimPrefix(m, "yaml: ")}
		if sm := yamlLineRE.FindStringSubmatch(m); sm != nil {
			p.Line, _ = strconv.Atoi(sm[1])
			p.Reason = sm[2]
		}
		p.Reason = Explain(p.Reason)
		if f, ok := strings.CutPrefix(p.Reason, "field "); ok {
			if name, _, ok := strings.Cut(f, " not found in type"); ok {
				p.Reason = fmt.Sprintf("unknown key %q", name)
			}
		}
		probs = append(probs, p)
	}
	return probs
}

// LineOf returns the line of the node that path reaches in doc (a document
// or its content node): strings are mapping keys (the key's line is
// given), ints sequence indexes. Where the path ends early — a key the file
// does not have — it is the line of the deepest node found, the mapping
// that lacks the key, which is where an operator adds it.
func LineOf(doc *yaml.Node, path []any) int {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, p := range path {
		var next *yaml.Node
		switch k := p.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == k {
						next = n.Content[i+1]
						line = n.Content[i].Line
						break
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && k >= 0 && k < len(n.Content) {
				next = n.Content[k]
				line = next.Line
			}
		}
		if next == nil {
			return line
		}
		n = next
	}
	return line
}

// DecodeOne decodes data, already parsed into root, into v (a pointer)
// the strict way: every unknown key and value of the wrong kind first, in
// the operator's words (Check), then the decoder with unknown keys
// refused. data must hold one document: a second one, which the decoder
// would silently ignore, is a problem too. It returns the problems; none
// means v holds the document.
func DecodeOne(data []byte, root *yaml.Node, v any) []Problem {
	probs, dec := decode(data, root, v)
	if len(probs) > 0 {
		return probs
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return []Problem{{Line: extra.Line, Reason: "more than one YAML document"}}
	}
	return nil
}

// decode is DecodeOne's first document, also returning the decoder (nil
// after a problem) so that DecodeOne can read on.
func decode(data []byte, root *yaml.Node, v any) ([]Problem, *yaml.Decoder) {
	if probs := Check(root, v); len(probs) > 0 {
		return probs, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return DecodeProblems(err), nil
	}
	return nil, dec
}

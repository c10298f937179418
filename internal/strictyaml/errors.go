package strictyaml

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Error is one problem found in a configuration file, as an operator reads
// it: "file:line: field: reason". Every xlb configuration (the daemon's,
// the DNS server's, the L7 proxy's) reports its problems as *Error values,
// so callers tell a bad file from a failed read with errors.As.
type Error struct {
	File   string
	Line   int    // 0 when the problem has no position (empty file)
	Field  string // the key path, when a validator names one
	Reason string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Reason)
	return b.String()
}

// FileError joins probs as *Error values naming file (nil for none).
func FileError(file string, probs []Problem) error {
	errs := make([]error, len(probs))
	for i, p := range probs {
		errs[i] = &Error{File: file, Line: p.Line, Reason: p.Reason}
	}
	return errors.Join(errs...)
}

// DecodeFile parses data, named file in errors, and decodes its one
// document into v the strict way (DecodeOne: a second document is refused,
// not ignored). It returns the document node, which
// locates what a validator finds later (Errorf), or every problem at once,
// joined as *Error values; an empty file is one problem.
func DecodeFile(file string, data []byte, v any) (*yaml.Node, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		probs := DecodeProblems(err)
		for i := range probs {
			if probs[i].Line == 0 {
				probs[i].Line = aliasLine(data, err)
			}
		}
		return nil, FileError(file, probs)
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil, &Error{File: file, Reason: "empty configuration"}
	}
	// Unknown keys (with the key a typo meant) and values of the wrong
	// kind, all of them, before the decoder would stop at Go type names.
	if probs := DecodeOne(data, &root, v); len(probs) > 0 {
		return nil, FileError(file, probs)
	}
	return &root, nil
}

var unknownAnchorRE = regexp.MustCompile(`unknown anchor '([^']*)' referenced`)

// aliasLine finds the line of the alias an "unknown anchor" error is
// about, which the YAML library reports without one: the first line with
// *name on it (0 when err is another error or no line has it).
func aliasLine(data []byte, err error) int {
	m := unknownAnchorRE.FindStringSubmatch(err.Error())
	if m == nil {
		return 0
	}
	for i, line := range strings.Split(string(data), "\n") {
		if strings.Contains(line, "*"+m[1]) {
			return i + 1
		}
	}
	return 0
}

// Errorf is the problem a validator finds at path (map keys and sequence
// indexes, as for LineOf) in the document root of file.
func Errorf(file string, root *yaml.Node, path []any, format string, args ...any) *Error {
	return &Error{
		File:   file,
		Line:   LineOf(root, path),
		Field:  PathString(path),
		Reason: fmt.Sprintf(format, args...),
	}
}

// PathString writes path as an operator spells it: "vips[0].port".
func PathString(path []any) string {
	var b strings.Builder
	for _, e := range path {
		switch e := e.(type) {
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(e)
		case int:
			fmt.Fprintf(&b, "[%d]", e)
		}
	}
	return b.String()
}

// Doc is a configuration file under validation: its name, its document
// (which locates a problem by its path) and the problems found so far.
// A validator embeds it, records every problem with Errorf and ends with
// Err, so that one run lists everything to fix.
type Doc struct {
	File string
	Root *yaml.Node
	errs []error
}

// NewDoc decodes data, named file, into v (DecodeFile) and returns the
// document to validate it against.
func NewDoc(file string, data []byte, v any) (*Doc, error) {
	root, err := DecodeFile(file, data, v)
	if err != nil {
		return nil, err
	}
	return &Doc{File: file, Root: root}, nil
}

// Errorf records a problem at path (Errorf, the function).
func (d *Doc) Errorf(path []any, format string, args ...any) {
	d.errs = append(d.errs, Errorf(d.File, d.Root, path, format, args...))
}

// Problems counts the problems recorded so far: a part of a validator
// compares it before and after to tell whether that part was valid.
func (d *Doc) Problems() int { return len(d.errs) }

// Err is every problem recorded, joined (nil for none).
func (d *Doc) Err() error { return errors.Join(d.errs...) }

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// docCommand is one xlb command line the operator's pages show: in a code
// block (an example, `$ ` lines of a console block) or in inline code (a
// synopsis such as `xlb backend drain\|undrain VIP ADDR`).
type docCommand struct {
	where string   // file:line
	words []string // the shell words after "xlb", in synopsis notation
	// wantErr is the error a console block shows right after the
	// command ("xlb: …" without "xlb: "), "" when it shows none.
	wantErr string
	// mention is inline code in a sentence, which may name a command
	// or a flag without its arguments (`xlb backend add`, `xlb decap
	// --gue-port`); what it does give is checked.
	mention bool
}

// docMistakes are command lines the prose shows on purpose as mistakes,
// with the error each must give.
var docMistakes = map[string]string{
	"backend drian VIP HOST -o json": `unknown command "drian" for "xlb backend"`,
	"version --socket X":             "unknown flag: --socket",
}

// TestDocCommandsParse checks every xlb command line of README.md and
// docs/*.md against the command tree, without running any: each command
// path exists, each flag exists on its command and takes the value shown,
// and the number of arguments fits. Synopsis notation is expanded and
// every form must hold: `a|b` is each alternative, `[…]` with and without,
// `X...` one X; a placeholder (VIP, N, D) stands for an argument, and for
// a flag's value of a typed flag (--weight N) the flag's default is used.
// A console block that shows the command failing with an error the command
// line itself causes must show that error.
func TestDocCommandsParse(t *testing.T) {
	files, err := filepath.Glob("../../docs/*.md")
	require.NoError(t, err)
	files = append(files, "../../README.md")
	var cmds []docCommand
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		cmds = append(cmds, docCommands(strings.TrimPrefix(f, "../../"), string(b))...)
	}
	require.Greater(t, len(cmds), 50, "the pages show more xlb commands than were found: the extraction broke")

	for _, c := range cmds {
		line := strings.Join(c.words, " ")
		t.Run(c.where+" "+line, func(t *testing.T) {
			want, mistake := docMistakes[line]
			if !mistake {
				want = c.wantErr
			}
			variants, err := expandSynopsis(c.words)
			require.NoError(t, err)
			for _, args := range variants {
				err := parseCommandLine(args, c.mention)
				switch {
				case err == nil && mistake:
					assert.Fail(t, "shown as a mistake, but it parses", "%s: xlb %s", c.where, strings.Join(args, " "))
				case err == nil:
				case want == "":
					assert.NoError(t, err, "%s: xlb %s", c.where, strings.Join(args, " "))
				default:
					// The page shows this failure: it must be the one xlb gives.
					got, _, _ := strings.Cut(err.Error(), "\n")
					shown, _, _ := strings.Cut(want, "\n")
					assert.Equal(t, shown, got, "%s: xlb %s", c.where, strings.Join(args, " "))
				}
			}
		})
	}
	t.Logf("%d command lines checked", len(cmds))
}

// parseCommandLine does what cobra does with a command line up to running
// it: find the command, parse its flags, check its arguments and flag
// groups. A mention that gives no argument is not held to their number,
// nor a flag it ends with to a value.
func parseCommandLine(args []string, mention bool) error {
	root := newRootCmd()
	cmd, rest, err := root.Find(args)
	if err != nil {
		return err
	}
	cmd.InitDefaultHelpFlag()
	if n := len(rest); mention && n > 0 && strings.HasPrefix(rest[n-1], "-") {
		if f := lookupFlag(cmd, rest[n-1]); f != nil && f.NoOptDefVal == "" {
			rest = rest[:n-1] // `xlb decap --gue-port`: the flag, named
		}
	}
	if err := cmd.ParseFlags(rest); err != nil {
		return cmd.FlagErrorFunc()(cmd, err)
	}
	if help, _ := cmd.Flags().GetBool("help"); help {
		return nil
	}
	if mention && cmd.Flags().NArg() == 0 {
		return cmd.ValidateFlagGroups()
	}
	if err := cmd.ValidateArgs(cmd.Flags().Args()); err != nil {
		return err
	}
	if err := cmd.ValidateRequiredFlags(); err != nil {
		return err
	}
	return cmd.ValidateFlagGroups()
}

// lookupFlag finds the flag that word (--name, -x) names on cmd, nil for
// none.
func lookupFlag(cmd *cobra.Command, word string) *pflag.Flag {
	if name, ok := strings.CutPrefix(word, "--"); ok {
		return cmd.Flag(name)
	}
	if sh, ok := strings.CutPrefix(word, "-"); ok && len(sh) == 1 {
		if f := cmd.Flags().ShorthandLookup(sh); f != nil {
			return f
		}
		return cmd.InheritedFlags().ShorthandLookup(sh)
	}
	return nil
}

var inlineCode = regexp.MustCompile("`([^`]+)`")

// docCommands finds the xlb command lines of one Markdown page.
func docCommands(file, text string) []docCommand {
	var out []docCommand
	lines := strings.Split(text, "\n")
	var prose strings.Builder // the text outside code blocks, lines kept
	inBlock, console := false, false
	for i := 0; i < len(lines); i++ {
		trimmed := strings.TrimSpace(lines[i])
		if strings.HasPrefix(trimmed, "```") {
			inBlock = !inBlock
			console = inBlock && strings.TrimPrefix(trimmed, "```") == "console"
			prose.WriteString("\n")
			continue
		}
		if !inBlock {
			prose.WriteString(lines[i] + "\n")
			continue
		}
		prose.WriteString("\n")
		start := i
		for strings.HasSuffix(trimmed, "\\") && i+1 < len(lines) { // continued line
			i++
			prose.WriteString("\n")
			trimmed = strings.TrimSuffix(trimmed, "\\") + " " + strings.TrimSpace(lines[i])
		}
		cmdline, isPrompt := strings.CutPrefix(trimmed, "$ ")
		if console && !isPrompt {
			continue // output
		}
		wantErr := ""
		if console && i+1 < len(lines) {
			wantErr, _ = strings.CutPrefix(strings.TrimSpace(lines[i+1]), "xlb: ")
			if wantErr == strings.TrimSpace(lines[i+1]) {
				wantErr = ""
			}
		}
		for _, words := range shellCommands(cmdline) {
			if len(words) > 0 && words[0] == "sudo" {
				words = words[1:]
			}
			if len(words) < 2 || words[0] != "xlb" {
				continue
			}
			out = append(out, docCommand{where: fmt.Sprintf("%s:%d", file, start+1), words: words[1:], wantErr: wantErr})
		}
	}
	p := prose.String()
	for _, m := range inlineCode.FindAllStringSubmatchIndex(p, -1) {
		code := strings.Join(strings.Fields(p[m[2]:m[3]]), " ")
		code = strings.ReplaceAll(code, `\|`, "|") // a | inside a table cell
		code = strings.TrimPrefix(code, "sudo ")
		if !strings.HasPrefix(code, "xlb ") {
			continue
		}
		line := strings.Count(p[:m[0]], "\n") + 1
		for _, words := range shellCommands(code) {
			if len(words) < 2 || words[0] != "xlb" {
				continue
			}
			out = append(out, docCommand{where: fmt.Sprintf("%s:%d", file, line), words: words[1:], mention: true})
		}
	}
	return out
}

// shellCommands splits a shell line into its simple commands' words: quotes
// and $(…) stay inside one word, a comment ends the line, ; && || and a
// pipe end a command, and a redirection is dropped with its target. A |
// inside a word (drain|undrain, table|json) is synopsis, not a pipe.
func shellCommands(line string) [][]string {
	var cmds [][]string
	var words []string
	var w strings.Builder
	inWord, quote, depth := false, rune(0), 0
	endWord := func() {
		if inWord {
			words = append(words, w.String())
		}
		w.Reset()
		inWord = false
	}
	endCmd := func() {
		endWord()
		if len(words) > 0 {
			cmds = append(cmds, words)
		}
		words = nil
	}
	rs := []rune(line)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				w.WriteRune(r)
			}
			continue
		case depth > 0:
			w.WriteRune(r)
			if r == '(' {
				depth++
			} else if r == ')' {
				depth--
			}
			continue
		}
		switch {
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == '$' && i+1 < len(rs) && rs[i+1] == '(':
			w.WriteString("$(")
			i++
			depth, inWord = 1, true
		case r == ' ' || r == '\t':
			endWord()
		case r == '#' && !inWord:
			endCmd()
			return cmds
		case r == ';':
			endCmd()
		case r == '&' && i+1 < len(rs) && rs[i+1] == '&', r == '|' && !inWord:
			if i+1 < len(rs) && rs[i+1] == r {
				i++
			}
			endCmd()
		case r == '>' || r == '<':
			// 2>&1, > file, >> file: drop the redirection and its target.
			if inWord && (w.String() == "2" || w.String() == "1") {
				w.Reset()
				inWord = false
			}
			if i+2 < len(rs) && rs[i+1] == '&' && (rs[i+2] == '1' || rs[i+2] == '2') {
				i += 2
				continue
			}
			for i+1 < len(rs) && rs[i+1] == '>' {
				i++
			}
			for i+1 < len(rs) && rs[i+1] == ' ' {
				i++
			}
			for i+1 < len(rs) && rs[i+1] != ' ' {
				i++
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	endCmd()
	return cmds
}

// synopsis is a parsed synopsis: a sequence of words and optional groups.
type synopsis []synItem

type synItem struct {
	word     string   // a word, "" for a group
	optional synopsis // the group's content
}

var slashAlternatives = regexp.MustCompile(`^[a-z]+(/[a-z]+)+$`)

var ipv6Literal = regexp.MustCompile(`^\[[0-9a-fA-F:.]*:[0-9a-fA-F:.]*\]`)

// expandSynopsis turns synopsis words into every command line they stand
// for (see TestDocCommandsParse).
func expandSynopsis(words []string) ([][]string, error) {
	var toks []string
	for _, w := range words {
		if ipv6Literal.MatchString(w) { // [2001:db8::1]:443/tcp is an argument
			toks = append(toks, w)
			continue
		}
		for strings.HasPrefix(w, "[") {
			toks = append(toks, "[")
			w = w[1:]
		}
		w = strings.TrimSuffix(strings.TrimSuffix(w, "..."), "…")
		closing := 0
		for strings.HasSuffix(w, "]") {
			closing++
			w = strings.TrimSuffix(w, "]")
		}
		if slashAlternatives.MatchString(w) {
			w = strings.ReplaceAll(w, "/", "|") // prose: `xlb vip add/del`
		}
		if w != "" {
			toks = append(toks, w)
		}
		for range closing {
			toks = append(toks, "]")
		}
	}
	syn, rest, err := parseSynopsis(toks)
	if err != nil {
		return nil, err
	}
	if len(rest) > 0 {
		return nil, fmt.Errorf("unbalanced ] in %q", strings.Join(words, " "))
	}
	var out [][]string
	for _, v := range syn.expand() {
		out = append(out, withPlaceholderValues(v))
		if len(out) > 256 {
			return nil, fmt.Errorf("synopsis %q has too many forms", strings.Join(words, " "))
		}
	}
	return out, nil
}

func parseSynopsis(toks []string) (synopsis, []string, error) {
	var s synopsis
	for len(toks) > 0 {
		t := toks[0]
		toks = toks[1:]
		switch t {
		case "[":
			inner, rest, err := parseSynopsis(toks)
			if err != nil {
				return nil, nil, err
			}
			if len(rest) == 0 {
				return nil, nil, fmt.Errorf("unclosed [")
			}
			s = append(s, synItem{optional: inner})
			toks = rest[1:]
		case "]":
			return s, append([]string{"]"}, toks...), nil
		default:
			s = append(s, synItem{word: t})
		}
	}
	return s, nil, nil
}

// expand lists every command line of s: each alternative of an a|b word,
// each optional group left out and put in.
func (s synopsis) expand() [][]string {
	out := [][]string{nil}
	for _, it := range s {
		var next [][]string
		for _, prefix := range out {
			var choices [][]string
			if it.word != "" {
				for _, alt := range strings.Split(it.word, "|") {
					choices = append(choices, []string{alt})
				}
			} else {
				choices = append([][]string{nil}, it.optional.expand()...)
			}
			for _, c := range choices {
				next = append(next, append(append([]string(nil), prefix...), c...))
			}
		}
		out = next
	}
	return out
}

var placeholder = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

// withPlaceholderValues replaces a placeholder given as the value of a
// typed flag (--weight N, --timeout D) with the flag's default, which the
// flag accepts; a string flag takes the placeholder as it is.
func withPlaceholderValues(args []string) []string {
	cmd, _, err := newRootCmd().Find(args)
	if err != nil {
		return args
	}
	out := append([]string(nil), args...)
	for i := 0; i+1 < len(out); i++ {
		name, isFlag := strings.CutPrefix(out[i], "--")
		if !isFlag || strings.Contains(name, "=") || !placeholder.MatchString(out[i+1]) {
			continue
		}
		f := cmd.Flag(name)
		if f == nil || f.NoOptDefVal != "" {
			continue
		}
		switch f.Value.Type() {
		case "string", "stringArray", "stringSlice":
		default:
			out[i+1] = f.DefValue
		}
	}
	return out
}

// TestDocCommandsParseCatches: the check refuses what a stale page would
// show, in each of the ways a page goes stale.
func TestDocCommandsParseCatches(t *testing.T) {
	tests := []struct {
		name, line, want string
	}{
		{"unknown subcommand", "xlb backend drian VIP ADDR", `unknown command "drian" for "xlb backend"`},
		{"one alternative unknown", "xlb backend drain|undrian VIP ADDR", `unknown command "undrian" for "xlb backend"`},
		{"unknown flag in an optional group", "xlb pool server drain POOL NAME [--wait [--timout D]]", "unknown flag: --timout"},
		{"an argument too many", "xlb backend weight VIP ADDR N EXTRA", "accepts 3 arg(s), received 4"},
		{"an optional argument that is required", "xlb pool server undrain|weight POOL NAME [N]", "accepts 3 arg(s), received 2"},
		{"a value the flag refuses", "xlb vip list -o table|yaml", `invalid argument "yaml" for "-o, --output" flag: unknown output format "yaml": use table or json`},
		{"a typed flag's value", "xlb stats --interval 1", `invalid --interval "1": give a unit, e.g. 1s or 1ms`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmds := shellCommands(tt.line)
			require.Len(t, cmds, 1)
			variants, err := expandSynopsis(cmds[0][1:])
			require.NoError(t, err)
			var errs []string
			for _, v := range variants {
				if err := parseCommandLine(v, false); err != nil {
					errs = append(errs, err.Error())
				}
			}
			require.NotEmpty(t, errs, "every form of %q parses", tt.line)
			assert.Contains(t, strings.Join(errs, "\n"), tt.want)
		})
	}

	// And it reads pages as written: prompts, sudo, comments, chains,
	// redirections, $(…), inline code across a line break, table cells.
	page := "```console\n$ sudo xlb stats -o json --count 2 > r.ndjson 2>&1 && xlb status # done\n" +
		"$ xlb vip list -o yaml\nxlb: invalid argument\n```\n" +
		"```sh\nxlb pool server add checkout $(seq 9 32 | sed 's/^/c/; s/$/=10.0.2.9:8080/')\n```\n" +
		"Run `xlb\n  reload` or | `xlb backend drain\\|undrain VIP ADDR` |\n"
	var got []string
	for _, c := range docCommands("p.md", page) {
		got = append(got, c.where+" "+strings.Join(c.words, " ")+" => "+c.wantErr)
	}
	assert.Equal(t, []string{
		"p.md:2 stats -o json --count 2 => ",
		"p.md:2 status => ",
		"p.md:3 vip list -o yaml => invalid argument",
		"p.md:7 pool server add checkout $(seq 9 32 | sed 's/^/c/; s/$/=10.0.2.9:8080/') => ",
		"p.md:9 reload => ",
		"p.md:10 backend drain|undrain VIP ADDR => ",
	}, got)
}

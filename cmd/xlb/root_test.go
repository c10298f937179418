package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runExit runs a command line the way main does and returns its exit status
// and output.
func runExit(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// commandPaths lists every command of the tree below root as its argument
// path (["backend", "drain"]), groups and leaves alike.
func commandPaths(root *cobra.Command) (groups, leaves [][]string) {
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		for _, sub := range c.Commands() {
			if !sub.IsAvailableCommand() {
				continue
			}
			p := append(append([]string(nil), path...), sub.Name())
			if sub.HasAvailableSubCommands() {
				groups = append(groups, p)
			} else {
				leaves = append(leaves, p)
			}
			walk(sub, p)
		}
	}
	walk(root, nil)
	return groups, leaves
}

// typo swaps two letters of a name, the commonest slip ("drain" → "drian").
func typo(name string) string {
	b := []byte(name)
	i := len(b) / 2
	if i+1 < len(b) {
		b[i], b[i+1] = b[i+1], b[i]
	}
	return string(b)
}

// TestTyposFailEverywhere runs, for every command group of the tree, an
// unknown subcommand and a typo of a real one, and for every command an
// unknown flag: each must exit 1 and say what was wrong, never print help and
// succeed.
func TestTyposFailEverywhere(t *testing.T) {
	groups, leaves := commandPaths(newRootCmd())
	require.NotEmpty(t, groups)
	require.NotEmpty(t, leaves)
	socket := filepath.Join(t.TempDir(), "none.sock") // nothing may reach a daemon

	code, _, stderr := runExit("nosuchcommand")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, `unknown command "nosuchcommand" for "xlb"`)

	root := newRootCmd()
	for _, g := range groups {
		t.Run(strings.Join(g, " ")+" unknown", func(t *testing.T) {
			args := withSocket(socket, g)
			code, stdout, stderr := runExit(append(args, "nosuchcommand", "x")...)
			assert.Equal(t, 1, code)
			assert.Contains(t, stderr, `unknown command "nosuchcommand" for "xlb `+strings.Join(g, " ")+`"`)
			assert.Empty(t, stdout)
		})
		group, _, err := root.Find(g)
		require.NoError(t, err)
		first := group.Commands()[0].Name()
		if typo(first) == first {
			continue
		}
		t.Run(strings.Join(g, " ")+" typo", func(t *testing.T) {
			args := withSocket(socket, g)
			code, _, stderr := runExit(append(args, typo(first))...)
			assert.Equal(t, 1, code)
			assert.Contains(t, stderr, "Did you mean this?\n\t"+first)
		})
	}
	for _, l := range leaves {
		if l[0] == "completion" || l[0] == "help" {
			continue // cobra's own, with cobra's own flag handling
		}
		t.Run(strings.Join(l, " ")+" unknown flag", func(t *testing.T) {
			args := withSocket(socket, l)
			code, stdout, stderr := runExit(append(args, "--no-such-flag")...)
			assert.Equal(t, 1, code)
			assert.Contains(t, stderr, "unknown flag: --no-such-flag")
			assert.Empty(t, stdout)
			// After arguments too: the flag is the mistake, not the words.
			code, stdout, stderr = runExit(append(args, "10.0.0.1:80/tcp", "10.0.1.1", "--no-such-flag")...)
			assert.Equal(t, 1, code)
			assert.Contains(t, stderr, "unknown flag: --no-such-flag")
			assert.NotContains(t, stderr, "unknown command")
			assert.Empty(t, stdout)
		})
	}
}

// TestGroupWithoutArgsShowsHelp: `xlb vip` alone is a request for help, not
// a mistake.
func TestGroupWithoutArgsShowsHelp(t *testing.T) {
	code, stdout, _ := runExit("backend")
	assert.Equal(t, 0, code)
	assert.Contains(t, stdout, "Available Commands:")
}

// TestJSONErrors: under -o json a failure is one JSON object on stderr, and
// the exit status is 1.
func TestJSONErrors(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "none.sock")
	code, stdout, stderr := runExit("--socket", socket, "status", "-o", "json")
	assert.Equal(t, 1, code)
	assert.Empty(t, stdout)
	var e struct {
		Error string `json:"error"`
	}
	require.NoError(t, json.Unmarshal([]byte(stderr), &e), "stderr: %s", stderr)
	assert.Contains(t, e.Error, "cannot reach xlb daemon at "+socket)

	code, _, stderr = runExit("--socket", socket, "status")
	assert.Equal(t, 1, code)
	assert.True(t, strings.HasPrefix(stderr, "xlb: cannot reach xlb daemon"), stderr)
}

// TestFlagUsageHasNoBackquotes: pflag takes a `quoted` word of a flag's
// usage as the name of its value, which ran help lines together
// ("--drain xlb backend undrain").
func TestFlagUsageHasNoBackquotes(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			assert.NotContains(t, f.Usage, "`", "%s --%s", c.CommandPath(), f.Name)
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd())
}

// TestJSONErrorsBeforeFlagParsing: a typo'd subcommand followed by the
// flags of the subcommand meant fails as the unknown word (not as "unknown
// shorthand flag: 'o'", the group's own flag parser's complaint), and under
// -o json as one JSON object on stderr, at every group of the tree.
func TestJSONErrorsBeforeFlagParsing(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "none.sock")
	groups, _ := commandPaths(newRootCmd())
	for _, g := range append([][]string{nil}, groups...) {
		for _, out := range [][]string{{"-o", "json"}, {"-ojson"}, {"--output=json"}, {"--output", "json"}} {
			line := append(append(append([]string(nil), g...), "nosuchcommand", "x"), out...)
			args := append(withSocket(socket, g), line[len(g):]...)
			t.Run(strings.Join(line, " "), func(t *testing.T) {
				code, stdout, stderr := runExit(args...)
				assert.Equal(t, 1, code)
				assert.Empty(t, stdout)
				var e struct {
					Error string `json:"error"`
				}
				require.NoError(t, json.Unmarshal([]byte(stderr), &e), "stderr: %s", stderr)
				assert.Contains(t, e.Error, `unknown command "nosuchcommand" for "`+strings.Join(append([]string{"xlb"}, g...), " ")+`"`)
			})
		}
	}
	// Without -o json the same mistake is text, and -o table stays text.
	code, _, stderr := runExit("--socket", socket, "backend", "drian", "x", "-o", "table")
	assert.Equal(t, 1, code)
	assert.True(t, strings.HasPrefix(stderr, `xlb: unknown command "drian" for "xlb backend"`), stderr)
	assert.Contains(t, stderr, "Did you mean this?\n\tdrain")
	// A bad flag on a command that has -o: the flag is named, as JSON.
	code, _, stderr = runExit("--socket", socket, "stats", "-o", "json", "--no-such-flag")
	assert.Equal(t, 1, code)
	assert.JSONEq(t, `{"error":"unknown flag: --no-such-flag"}`, stderr)
}

// TestHelpAndCompletionTypos: cobra's own `help` and `completion` commands
// fail on a word that names nothing, like every other command, instead of
// printing help and exiting 0; a real topic still prints its help.
func TestHelpAndCompletionTypos(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // on stderr; "" for success
	}{
		{"help of a typo'd subcommand", []string{"help", "vip", "lst"}, "unknown command \"lst\" for \"xlb vip\"\n\nDid you mean this?\n\tlist"},
		{"help of an unknown command", []string{"help", "bogus"}, `unknown command "bogus" for "xlb"`},
		{"completion for an unknown shell", []string{"completion", "tcsh"}, `unknown command "tcsh" for "xlb completion"`},
		{"help of a group", []string{"help", "vip"}, ""},
		{"help of a leaf", []string{"help", "pool", "server", "drain"}, ""},
		{"completion of a shell", []string{"completion", "bash"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runExit(tt.args...)
			if tt.want == "" {
				assert.Equal(t, 0, code, stderr)
				assert.NotEmpty(t, stdout)
				assert.Empty(t, stderr)
				return
			}
			assert.Equal(t, 1, code)
			assert.Empty(t, stdout)
			assert.Contains(t, stderr, tt.want)
		})
	}
}

// TestFlagValueErrors: a typed flag that refuses its value says what it
// takes, not the Go parser's text, on commands at the root and in groups.
func TestFlagValueErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"decap", "--iface", "lo", "--gue-port", "70000"}, `xlb: invalid --gue-port "70000": out of range (0..65535)`},
		{[]string{"decap", "--iface", "lo", "--gue-port", "x"}, `xlb: invalid --gue-port "x": not a whole number (0..65535)`},
		{[]string{"decap", "--iface", "lo", "--stats-interval", "5"}, `xlb: invalid --stats-interval "5": give a unit, e.g. 5s or 5ms`},
		{[]string{"stats", "--interval", "soon"}, `xlb: invalid --interval "soon": not a duration such as 500ms, 30s or 5m`},
		{[]string{"vip", "add", "10.0.0.1:80/tcp", "--table-size", "-5"}, `xlb: invalid --table-size "-5": not a whole number (0..4294967295)`},
		{[]string{"pool", "server", "add", "web", "w1", "10.0.2.1:80", "--weight", "x"}, `xlb: invalid --weight "x": not a whole number`},
		{[]string{"pool", "server", "drain", "web", "w1", "--wait", "--timeout", "10"}, `xlb: invalid --timeout "10": give a unit, e.g. 10s or 10ms`},
		{[]string{"backend", "weight", "10.0.0.1:80/tcp", "10.0.1.1", "-1"}, "xlb: -1: negative numbers are not accepted (weights, ports and counts are 0 or more)"},
		// A flag's own message stays.
		{[]string{"vip", "list", "-o", "yaml"}, `xlb: invalid argument "yaml" for "-o, --output" flag: unknown output format "yaml": use table or json`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := runExit(withSocket(filepath.Join(t.TempDir(), "none.sock"), tt.args)...)
			assert.Equal(t, 1, code)
			assert.Empty(t, stdout)
			assert.Equal(t, tt.want+"\n", stderr)
		})
	}
}

// TestNoFileCompletions: the shell offers file names only for the flags
// that take a path; every argument and every other flag value completes to
// what xlb knows (or to nothing), at every command of the tree.
func TestNoFileCompletions(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "none.sock")
	directive := func(args ...string) string {
		code, stdout, stderr := runExit(withSocket(socket, append([]string{"__complete"}, args...))...)
		require.Equal(t, 0, code, stderr)
		lines := strings.Split(strings.TrimSpace(stdout), "\n")
		return lines[len(lines)-1]
	}
	groups, leaves := commandPaths(newRootCmd())
	root := newRootCmd()
	for _, path := range append(groups, leaves...) {
		cmd, _, err := root.Find(path)
		require.NoError(t, err)
		assert.NotEqual(t, ":0", directive(append(path, "")...), "xlb %s <TAB> offers files", strings.Join(path, " "))
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if f.NoOptDefVal != "" || f.Name == "help" {
				return
			}
			d := directive(append(path, "--"+f.Name, "")...)
			if pathFlags[f.Name] {
				assert.Equal(t, ":0", d, "xlb %s --%s <TAB> takes a path", strings.Join(path, " "), f.Name)
				return
			}
			assert.NotEqual(t, ":0", d, "xlb %s --%s <TAB> offers files", strings.Join(path, " "), f.Name)
		})
	}
}

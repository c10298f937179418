package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/control/api"
	"github.com/xlbproject/xlb/internal/adminsock"
)

// longRunning are the commands whose examples would start a process that
// serves until stopped (and attach XDP): their examples are checked with
// --help appended, which parses every flag and stops there.
var longRunning = map[string]bool{"daemon": true, "proxy": true, "decap": true}

// exampleArgs turns one example line into the argument list a shell would
// pass to xlb: the comment and anything after && or a redirection are cut,
// and $(...) is expanded by bash (run in dir, so nothing lands elsewhere).
func exampleArgs(t *testing.T, dir, line string) []string {
	t.Helper()
	line = strings.TrimSpace(line)
	if i := strings.Index(line, " #"); i >= 0 {
		line = line[:i]
	}
	for _, cut := range []string{"&&", ">", "|"} {
		if i := strings.Index(line, " "+cut+" "); i >= 0 {
			line = line[:i]
		}
	}
	rest, ok := strings.CutPrefix(line, "xlb ")
	require.True(t, ok, "example does not start with xlb: %q", line)
	cmd := exec.Command("bash", "-c", `printf '%s\0' `+rest)
	cmd.Dir = dir
	out, err := cmd.Output()
	require.NoError(t, err, "expand %q", line)
	return strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
}

// TestHelpExamplesRun runs every example of every command's --help the way
// an operator would paste it: against a daemon (the fake one) that has the
// docs' VIPs, and no proxy. An example may fail only because of what the
// daemon answered (not found, already exists) or because no proxy runs;
// never because the command line itself is wrong (unknown flag, wrong
// argument count, unparsable VIP), which is what a stale example would be.
func TestHelpExamplesRun(t *testing.T) {
	socket := startDaemon(t, &fakeDaemon{vips: shopVIPs(), stats: statsSeq()})
	proxySock := filepath.Join(t.TempDir(), "no-proxy.sock")
	dir := t.TempDir()

	var cmds []*cobra.Command
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Example != "" {
			cmds = append(cmds, c)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd())
	require.NotEmpty(t, cmds)

	ran := 0
	for _, c := range cmds {
		for _, line := range strings.Split(c.Example, "\n") {
			if strings.TrimSpace(line) == "" {
				continue
			}
			args := exampleArgs(t, dir, line)
			if longRunning[args[0]] {
				args = append(args, "--help")
			}
			if args[0] == "pool" {
				args = append(args, "--proxy", proxySock)
			}
			ran++
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				defer cancel()
				root := newRootCmd()
				var out, errb bytes.Buffer
				root.SetOut(&out)
				root.SetErr(&errb)
				root.SetArgs(withSocket(socket, args))
				err := root.ExecuteContext(ctx) // `stats --watch` ends with the context
				if err == nil {
					return
				}
				assert.True(t, errors.Is(err, api.ErrNotFound) || errors.Is(err, api.ErrConflict) ||
					errors.Is(err, adminsock.ErrUnreachable),
					"the example's command line is wrong: %v", err)
			})
		}
	}
	t.Logf("%d examples of %d commands run", ran, len(cmds))
	_ = os.Remove(filepath.Join(dir, "rates.ndjson"))
}

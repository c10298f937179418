package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/xlbproject/xlb/control/api"
)

// socketFlag names the daemon's API socket, on every command that talks
// to the daemon.
const socketFlag = "socket"

// addSocketFlag registers --socket on cmd, and on its subcommands for a
// group of daemon commands.
func addSocketFlag(cmd *cobra.Command) {
	f := cmd.Flags()
	if cmd.HasSubCommands() {
		f = cmd.PersistentFlags()
	}
	f.String(socketFlag, api.DefaultSocketPath, "path of the xlb daemon's API socket (its api.socket)")
}

// apiTimeout bounds one API call: a reload or a VIP with many backends takes
// milliseconds, so anything near this is a hung daemon.
const apiTimeout = 30 * time.Second

// newClient connects the command to the daemon named by --socket.
func newClient(cmd *cobra.Command) (*api.Client, error) {
	path, err := cmd.Flags().GetString(socketFlag)
	if err != nil {
		return nil, fmt.Errorf("read --%s: %w", socketFlag, err)
	}
	return api.NewClient(path, apiTimeout), nil
}

// show runs one API call and prints its result: the API's JSON for
// -o json, else the text that print renders. get takes the client first so
// that method expressions such as (*api.Client).Status fit.
func show[T any](cmd *cobra.Command, output outputFormat, get func(*api.Client, context.Context) (T, error), print func(io.Writer, T) error) error {
	c, err := newClient(cmd)
	if err != nil {
		return err
	}
	defer c.Close()
	v, err := get(c, cmd.Context())
	if err != nil {
		return explain(err)
	}
	if output == outputJSON {
		return printJSON(cmd.OutOrStdout(), v)
	}
	return print(cmd.OutOrStdout(), v)
}

// explain adds the next step to errors whose fix is another command: a
// VIP or backend that is not found (the daemon's message starts with the
// VIP), not any not-found (`bgp is not configured`).
func explain(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, api.ErrNotFound) && strings.HasPrefix(err.Error(), "vip "):
		return fmt.Errorf("%w (list what exists with `xlb vip list` or `xlb backend list VIP`)", err)
	}
	return err
}

// outputFormat is the -o flag. It validates while flags are parsed, so an
// unknown format fails before anything is sent to the daemon.
type outputFormat string

const (
	outputTable outputFormat = "table"
	outputJSON  outputFormat = "json"
)

func (o *outputFormat) String() string { return string(*o) }
func (o *outputFormat) Type() string   { return "format" }
func (o *outputFormat) Set(s string) error {
	switch f := outputFormat(s); f {
	case outputTable, outputJSON:
		*o = f
		return nil
	}
	return fmt.Errorf("unknown output format %q: use table or json", s)
}

// addOutputFlag registers -o on cmd, defaulting to table.
func addOutputFlag(cmd *cobra.Command, o *outputFormat) {
	*o = outputTable
	cmd.Flags().VarP(o, "output", "o", "output format: table or json")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(
		[]string{string(outputTable), string(outputJSON)}, cobra.ShellCompDirectiveNoFileComp))
}

// printJSON writes v as the API's JSON, indented for people.
func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

// printJSONLine writes v as one line of JSON: the form of a stream of
// reports (`-o json --watch`), one object per line (NDJSON), so `jq` and
// line-oriented tools read it as it arrives.
func printJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode json: %w", err)
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

// newTable returns a tabwriter for aligned columns; call Flush when done.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// row writes one tab-separated table row.
func row(w io.Writer, cols ...any) {
	s := make([]string, len(cols))
	for i, c := range cols {
		s[i] = fmt.Sprint(c)
	}
	fmt.Fprintln(w, strings.Join(s, "\t"))
}

// parseVIPArg parses a VIP argument for a command, naming the argument.
func parseVIPArg(s string) (api.VIPKey, error) {
	k, err := api.ParseVIPKey(s)
	if err != nil {
		return api.VIPKey{}, fmt.Errorf("invalid VIP argument: %w", err)
	}
	// The API takes port 0 for "every port"; on a command line it is
	// more likely a slip (":0" for ":80"), and `xlb vip add` would take
	// every port of the address.
	if k.Port == 0 && !strings.Contains(s, "*") {
		return api.VIPKey{}, fmt.Errorf("invalid VIP argument %q: port 0 is no port; a VIP of every port is written with * (%s)", s, k)
	}
	return k, nil
}

// ago renders how long before now t was, coarsely, for tables.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Second:
		return fmt.Sprintf("%dms ago", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1fs ago", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds ago", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm ago", int(d.Hours()), int(d.Minutes())%60)
	}
	return t.UTC().Format(time.RFC3339)
}

// count writes n of a regular noun: "1 VIP", "3 VIPs".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// configExists says, when the config file a long-running command names is
// missing, where its example is: installed, the first step of every
// deployment guide is writing it from there.
func configExists(path, installed, source string) error {
	_, err := os.Stat(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return nil // a file, or a problem the loader words (permissions, a directory)
	}
	return fmt.Errorf("config file %s does not exist: write it from the example (%s once xlb is installed, %s in the source) "+
		"or name another with --config", path, installed, source)
}

// printValid is the one line `--check` prints for a valid file.
func printValid(cmd *cobra.Command, file string, counts ...string) {
	fmt.Fprintf(cmd.OutOrStdout(), "%s: configuration is valid (%s)\n", file, strings.Join(counts, ", "))
}

// si formats a rate with an SI suffix (1.5k, 2.3M, 9.1G): stats tables are
// read at a glance.
func si(v float64) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%.1fG", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"
)

// addLogFlags registers --log-level on cmd, and --log-format when format
// is not nil, with their values offered to shell completion.
func addLogFlags(cmd *cobra.Command, level, format *string) {
	f := cmd.Flags()
	f.StringVar(level, "log-level", *level, "log level. One of: debug, info, warn, error")
	_ = cmd.RegisterFlagCompletionFunc("log-level", cobra.FixedCompletions(
		[]string{"debug", "info", "warn", "error"}, cobra.ShellCompDirectiveNoFileComp))
	if format == nil {
		return
	}
	f.StringVar(format, "log-format", *format, "log format. One of: text, json")
	_ = cmd.RegisterFlagCompletionFunc("log-format", cobra.FixedCompletions(
		[]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
}

// newLogger builds the slog logger of a long-running subcommand from its
// --log-format and --log-level flags, rejecting unknown values with the
// accepted ones.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("invalid --log-level %q: one of debug, info, warn, error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("invalid --log-format %q: one of text, json", format)
	}
}

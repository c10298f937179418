package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is stamped by the Makefile with -ldflags "-X main.version=...".
// It is a link-time constant, not mutable state.
var version = "dev"

// versionInfo is what `xlb version -o json` prints.
type versionInfo struct {
	Version   string `json:"version"`
	GoVersion string `json:"goVersion"`
	Commit    string `json:"commit,omitempty"`
	Platform  string `json:"platform"`
}

func currentVersion() versionInfo {
	v := versionInfo{Version: version, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				v.Commit = s.Value
			}
		}
	}
	return v
}

// String is the line `xlb version` and `xlb --version` print.
func (v versionInfo) String() string {
	return fmt.Sprintf("xlb %s (%s, %s)", v.Version, v.GoVersion, v.Platform)
}

// setVersionFlag gives root cobra's --version, printing what `xlb version`
// does: operators try the flag first, and it was an unknown flag.
func setVersionFlag(root *cobra.Command) {
	v := currentVersion()
	root.Version = v.Version
	// The template is the line itself, as a quoted template constant, so
	// that nothing in a version string is read as template syntax.
	root.SetVersionTemplate(fmt.Sprintf("{{%q}}\n", v.String()))
	// Now rather than when the command line runs, as for help: the flag
	// is then under every check of the tree (completion, the docs' tests).
	root.InitDefaultVersionFlag()
}

func newVersionCmd() *cobra.Command {
	var output outputFormat
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the xlb version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := currentVersion()
			if output == outputJSON {
				return printJSON(cmd.OutOrStdout(), v)
			}
			_, err := fmt.Fprintln(cmd.OutOrStdout(), v)
			return err
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

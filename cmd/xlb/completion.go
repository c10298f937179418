package main

import (
	"io"

	"github.com/spf13/cobra"
)

// newCompletionCmd is `xlb completion SHELL`. Cobra would add its own, but
// only while the command line runs, bound to the output of that moment
// and outside the checks newRootCmd puts on every group (`xlb completion
// tcsh` printed help and exited 0); this one is part of the tree and
// writes to the command's output.
func newCompletionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "completion",
		Short: "Generate the autocompletion script for the specified shell",
		Long: `Generate the shell completion script of xlb: commands, flags, and the VIPs
and backends of the running daemon. The packages install it for bash, zsh
and fish; to load it by hand in the current shell: source <(xlb completion bash).`,
	}
	shells := []struct {
		name, load string
		gen        func(root *cobra.Command, w io.Writer, desc bool) error
	}{
		{"bash", "source <(xlb completion bash)   # needs the bash-completion package",
			func(root *cobra.Command, w io.Writer, desc bool) error { return root.GenBashCompletionV2(w, desc) }},
		{"zsh", "source <(xlb completion zsh)   # after compinit",
			func(root *cobra.Command, w io.Writer, desc bool) error {
				if desc {
					return root.GenZshCompletion(w)
				}
				return root.GenZshCompletionNoDesc(w)
			}},
		{"fish", "xlb completion fish | source",
			func(root *cobra.Command, w io.Writer, desc bool) error { return root.GenFishCompletion(w, desc) }},
		{"powershell", "xlb completion powershell | Out-String | Invoke-Expression",
			func(root *cobra.Command, w io.Writer, desc bool) error {
				if desc {
					return root.GenPowerShellCompletionWithDesc(w)
				}
				return root.GenPowerShellCompletion(w)
			}},
	}
	for _, sh := range shells {
		var noDesc bool
		sub := &cobra.Command{
			Use:               sh.name,
			Short:             "Generate the autocompletion script for " + sh.name,
			Long:              "Generate the autocompletion script for " + sh.name + ". To load it in the current shell:\n\n\t" + sh.load,
			Args:              cobra.NoArgs,
			ValidArgsFunction: cobra.NoFileCompletions,
			RunE: func(c *cobra.Command, _ []string) error {
				return sh.gen(c.Root(), c.OutOrStdout(), !noDesc)
			},
		}
		sub.Flags().BoolVar(&noDesc, "no-descriptions", false, "leave the descriptions out of the completions")
		cmd.AddCommand(sub)
	}
	return cmd
}

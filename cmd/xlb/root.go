package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// newRootCmd builds the whole command tree. Each command group lives in its
// own file with a newXCmd constructor; nothing here holds package state.
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "xlb",
		Short: "xlb is an XDP layer-4 and Go layer-7 load balancer",
		Long: `xlb balances traffic in two tiers: an XDP program on the edge host's NIC
picks an L7 proxy host per flow with Maglev consistent hashing, and the L7
proxy routes each HTTP request to an app-server pool.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// --socket, --proxy and -o are on the commands that use them
	// (addSocketFlag, addProxyFlag, addOutputFlag), not on the root: a
	// flag that `xlb version --help` lists but the command ignores tells
	// the operator it pointed somewhere it did not.
	root.AddCommand(newVersionCmd())
	setVersionFlag(root)
	root.AddCommand(newDaemonCmd())
	root.AddCommand(newVIPCmd(), newBackendCmd(), newStatusCmd(), newStatsCmd(), newFlowCmd(), newReloadCmd(), newBGPCmd())
	root.AddCommand(newProxyCmd(), newPoolCmd(), newDecapCmd())
	root.AddCommand(newDNSCmd(), newCompletionCmd())
	// Cobra adds `help` only when the command line runs; adding it now
	// puts it under the same checks as every other command: `xlb help vip
	// lst` fails like any typo instead of printing help and exiting 0.
	root.InitDefaultHelpCmd()
	strictHelp(root)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return explainFlagError(err) })
	rejectUnknownSubcommands(root)
	noFileCompletions(root)
	return root
}

// pathFlags are the flags whose values are files: the shell completes
// them as files, and nothing else.
var pathFlags = map[string]bool{"config": true, "socket": true, "proxy": true, "pin-path": true}

// noFileCompletions stops the shell from offering file names where xlb
// takes none: cobra's default for an argument or a flag value without a
// completion of its own (`xlb stats --interval <TAB>` listed the current
// directory). No xlb argument is a file; only pathFlags' values are.
func noFileCompletions(cmd *cobra.Command) {
	for _, c := range cmd.Commands() {
		noFileCompletions(c)
	}
	if cmd.ValidArgsFunction == nil && len(cmd.ValidArgs) == 0 {
		cmd.ValidArgsFunction = cobra.NoFileCompletions
	}
	cmd.LocalFlags().VisitAll(func(f *pflag.Flag) {
		if pathFlags[f.Name] || f.NoOptDefVal != "" || f.Name == "help" {
			return
		}
		if _, ok := cmd.GetFlagCompletionFunc(f.Name); !ok {
			_ = cmd.RegisterFlagCompletionFunc(f.Name, cobra.NoFileCompletions)
		}
	})
}

// strictHelp makes `xlb help TOPIC` fail, with suggestions, on a topic that
// names no command. Cobra's own help prints "Unknown help topic" and the
// root's usage, or the help of the deepest command it found ignoring the
// rest, and exits 0 either way.
func strictHelp(root *cobra.Command) {
	for _, help := range root.Commands() {
		if help.Name() != "help" {
			continue
		}
		help.Run = nil
		help.RunE = func(c *cobra.Command, args []string) error {
			cmd, rest, err := c.Root().Find(args)
			if err != nil {
				return err
			}
			if len(rest) > 0 {
				return noSubcommandArgs(cmd, rest)
			}
			cmd.InitDefaultHelpFlag()
			return cmd.Help()
		}
	}
}

// rejectUnknownSubcommands makes every command group (a command with
// subcommands and no action of its own) fail on an argument that names no
// subcommand. Cobra only checks this at the root: `xlb backend drian …`
// would otherwise print help and exit 0, and a runbook would report a drain
// that never happened. A group called with no argument still prints its
// help.
func rejectUnknownSubcommands(cmd *cobra.Command) {
	for _, c := range cmd.Commands() {
		rejectUnknownSubcommands(c)
	}
	if cmd == cmd.Root() || !cmd.HasSubCommands() {
		return
	}
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra's own default, which it only sets at the root
	}
	// `xlb backend drian x -o json`: the group has no -o, so its flag
	// parser fails before Args runs. The mistake is the word, not the flag
	// (which belongs to the subcommand meant); the parser has collected the
	// words it passed. Every group takes subcommands, never words.
	group := cmd
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		// Cobra hands a command's flag error func down to its subcommands;
		// a leaf's words are its arguments, and its flag error stands.
		if words := c.Flags().Args(); c == group && len(words) > 0 {
			return noSubcommandArgs(c, words)
		}
		return explainFlagError(err)
	})
	if cmd.Runnable() {
		return // `xlb proxy` runs itself and checks its arguments with noSubcommandArgs
	}
	cmd.Args = noSubcommandArgs
	cmd.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
}

// noSubcommandArgs refuses any argument of a command that takes none but
// has subcommands, suggesting the subcommand a typo meant.
func noSubcommandArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
	}
	return fmt.Errorf("%s\n\nRun '%s --help' for its commands", msg, cmd.CommandPath())
}

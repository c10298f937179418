package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/xlbproject/xlb/control/api"
)

func newReloadCmd() *cobra.Command {
	var output outputFormat
	cmd := &cobra.Command{
		Use:   "reload",
		Short: "Make the daemon re-read its config file and apply the difference",
		Long: `Make the daemon re-read its config file and apply the difference (the same
as sending it SIGHUP, but this waits for the answer). A config with an error
is rejected as a whole and the running state stays as it was.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.Reload(cmd.Context()); err != nil {
				if errors.Is(err, api.ErrInvalid) {
					return fmt.Errorf("config rejected, running state unchanged: %w", err)
				}
				return err
			}
			if output == outputJSON {
				st, err := c.Status(cmd.Context())
				if err != nil {
					return explain(err)
				}
				return printJSON(cmd.OutOrStdout(), st)
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), "config reloaded")
			return err
		},
	}
	addOutputFlag(cmd, &output)
	addSocketFlag(cmd)
	return cmd
}

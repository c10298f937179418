package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/xlbproject/xlb/control/api"
)

func newBackendCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "backend",
		Aliases: []string{"be"},
		Short:   "Add, delete, drain and weigh a VIP's backends (L7 hosts)",
		Long: `A backend is an L7 host (running xlb proxy) that a VIP's flows are spread over.

Draining takes a backend out of the Maglev table: it gets no new flows, but
its established connections continue through the connection table. Undrain
puts it back. Deleting is a drain followed by forgetting the backend.

` + vipArgHelp,
	}
	cmd.AddCommand(newBackendAddCmd(), newBackendDelCmd(), newBackendDrainCmd(true), newBackendDrainCmd(false),
		newBackendWeightCmd(), newBackendListCmd())
	addSocketFlag(cmd)
	return cmd
}

type backendAddOptions struct {
	weight uint32
	drain  bool
	output outputFormat
}

func newBackendAddCmd() *cobra.Command {
	var o backendAddOptions
	cmd := &cobra.Command{
		Use:   "add VIP BACKEND",
		Short: "Add an L7 host to a VIP",
		Example: `  xlb backend add 10.0.0.1:80/tcp 10.0.1.11
  xlb backend add 10.0.0.1:80/tcp 10.0.1.14 --weight 2 --drain   # known, but no flows until undrained`,
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: completeVIPs,
		RunE: func(cmd *cobra.Command, args []string) error {
			key, addr, err := parseVIPBackendArgs(args)
			if err != nil {
				return err
			}
			return change(cmd, o.output, key, fmt.Sprintf("backend %s added to vip %s", addr, key),
				func(ctx context.Context, c *api.Client) error {
					return c.AddBackend(ctx, key, api.BackendSpec{Addr: addr, Weight: o.weight, Drain: o.drain})
				})
		},
	}
	cmd.Flags().Uint32Var(&o.weight, "weight", 1, "relative share of the VIP's flows")
	cmd.Flags().BoolVar(&o.drain, "drain", false, "add it drained: no flows until xlb backend undrain")
	addOutputFlag(cmd, &o.output)
	addForceFlag(cmd)
	return cmd
}

func newBackendDelCmd() *cobra.Command {
	var output outputFormat
	cmd := &cobra.Command{
		Use:               "del VIP BACKEND",
		Aliases:           []string{"delete", "rm"},
		Short:             "Remove an L7 host from a VIP",
		Long:              "Remove an L7 host from a VIP. To let its connections finish first, drain it and wait.",
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: completeBackends,
		RunE: func(cmd *cobra.Command, args []string) error {
			key, addr, err := parseVIPBackendArgs(args)
			if err != nil {
				return err
			}
			return change(cmd, output, key, fmt.Sprintf("backend %s deleted from vip %s", addr, key),
				func(ctx context.Context, c *api.Client) error { return c.DeleteBackend(ctx, key, addr) })
		},
	}
	addOutputFlag(cmd, &output)
	addForceFlag(cmd)
	return cmd
}

func newBackendDrainCmd(drain bool) *cobra.Command {
	var output outputFormat
	use, short, done := "undrain", "Let a drained L7 host take new flows again", "undrained"
	if drain {
		use, short, done = "drain", "Stop new flows to an L7 host; its established flows continue", "draining"
	}
	cmd := &cobra.Command{
		Use:               use + " VIP BACKEND",
		Short:             short,
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: completeBackends,
		RunE: func(cmd *cobra.Command, args []string) error {
			key, addr, err := parseVIPBackendArgs(args)
			if err != nil {
				return err
			}
			return change(cmd, output, key, fmt.Sprintf("backend %s of vip %s %s", addr, key, done),
				func(ctx context.Context, c *api.Client) error { return c.SetBackendState(ctx, key, addr, drain) })
		},
	}
	addOutputFlag(cmd, &output)
	if drain {
		addForceFlag(cmd)
	}
	return cmd
}

func newBackendWeightCmd() *cobra.Command {
	var output outputFormat
	cmd := &cobra.Command{
		Use:               "weight VIP BACKEND WEIGHT",
		Short:             "Set an L7 host's relative share of a VIP's new flows (0 = none)",
		Example:           "  xlb backend weight 10.0.0.1:80/tcp 10.0.1.11 3",
		Args:              cobra.ExactArgs(3),
		ValidArgsFunction: completeBackends,
		RunE: func(cmd *cobra.Command, args []string) error {
			key, addr, err := parseVIPBackendArgs(args[:2])
			if err != nil {
				return err
			}
			w, err := strconv.ParseUint(args[2], 10, 32)
			if err != nil {
				return fmt.Errorf("invalid WEIGHT %q: want a whole number (0 keeps the backend known but out of the table)", args[2])
			}
			return change(cmd, output, key, fmt.Sprintf("backend %s of vip %s now has weight %d", addr, key, w),
				func(ctx context.Context, c *api.Client) error { return c.SetBackendWeight(ctx, key, addr, uint32(w)) })
		},
	}
	addOutputFlag(cmd, &output)
	addForceFlag(cmd)
	return cmd
}

func newBackendListCmd() *cobra.Command {
	var output outputFormat
	cmd := &cobra.Command{
		Use:               "list VIP",
		Aliases:           []string{"ls"},
		Short:             "List a VIP's L7 hosts with state, health and table share",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeVIPs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return showVIP(cmd, output, args[0], func(v api.VIP) backendList { return backendList(v) },
				func(out io.Writer, l backendList) error { return printBackends(out, api.VIP(l)) })
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

// backendList is what `xlb backend list` shows: the VIP's backends, which
// -o json prints alone; the table needs the VIP's table size for shares.
type backendList api.VIP

// MarshalJSON prints the backends alone, [] when there are none.
func (l backendList) MarshalJSON() ([]byte, error) {
	bs := l.Backends
	if bs == nil {
		bs = []api.Backend{}
	}
	return json.Marshal(bs)
}

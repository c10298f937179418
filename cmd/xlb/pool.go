package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/xlbproject/xlb/l7/admin"
)

func newPoolCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pool",
		Short: "List the L7 proxy's app-server pools and change their servers live",
		Long: `Talk to a running xlb proxy through its admin socket (--proxy, the
config's admin.socket). Changes apply at once, without a reload and without
resetting the other servers' health, ejection or slow-start state; they are
kept in the proxy's runtime state file and survive reloads and restarts.

Servers are named per pool; sticky cookies name a server by pool and name,
so a server added under the same name on every L7 host keeps its clients
whichever host they reach.`,
	}
	addProxyFlag(cmd)
	cmd.AddCommand(newPoolListCmd(), newPoolShowCmd(), newPoolServerCmd())
	return cmd
}

// completePools offers the proxy's pools for a command's first argument;
// without a proxy it offers nothing (and no file names).
func completePools(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	pools, err := withProxy(cmd, func(ctx context.Context, c *admin.Client) ([]admin.Pool, error) { return c.Pools(ctx) })
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	names := make([]string, len(pools))
	for i, p := range pools {
		names[i] = p.Name
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// completeServers offers the pools, then the pool's servers.
func completeServers(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	switch len(args) {
	case 0:
		return completePools(cmd, args, toComplete)
	case 1:
	default:
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	p, err := withProxy(cmd, func(ctx context.Context, c *admin.Client) (admin.Pool, error) { return c.Pool(ctx, args[0]) })
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	names := make([]string, len(p.Servers))
	for i, s := range p.Servers {
		names[i] = s.Name
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// withProxy runs one call against the proxy named by --proxy.
func withProxy[T any](cmd *cobra.Command, call func(context.Context, *admin.Client) (T, error)) (T, error) {
	c, err := newProxyClient(cmd)
	if err != nil {
		var zero T
		return zero, err
	}
	defer c.Close()
	return call(cmd.Context(), c)
}

func newPoolListCmd() *cobra.Command {
	var output outputFormat
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List pools with their routes and how many servers take new clients",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pools, err := withProxy(cmd, func(ctx context.Context, c *admin.Client) ([]admin.Pool, error) { return c.Pools(ctx) })
			if err != nil {
				return err
			}
			if output == outputJSON {
				return printJSON(cmd.OutOrStdout(), pools)
			}
			return printPools(cmd.OutOrStdout(), pools)
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func printPools(w io.Writer, pools []admin.Pool) error {
	tw := newTable(w)
	row(tw, "POOL", "POLICY", "STICKY", "ROUTES", "AVAILABLE", "SERVERS")
	for _, p := range pools {
		avail := strconv.Itoa(p.Available)
		switch {
		case p.FailingOpen:
			avail += " (FAIL-OPEN: sent to every server not draining)"
		case p.Available == 0:
			avail += " (routes answer 503)"
		}
		row(tw, p.Name, p.Policy, p.Sticky, strings.Join(p.Routes, ","), avail, len(p.Servers))
	}
	return tw.Flush()
}

func newPoolShowCmd() *cobra.Command {
	var output outputFormat
	cmd := &cobra.Command{
		Use:               "show POOL",
		ValidArgsFunction: completePools,
		Short:             "Show a pool's servers: address, weight, state, requests in flight",
		Args:              cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := withProxy(cmd, func(ctx context.Context, c *admin.Client) (admin.Pool, error) { return c.Pool(ctx, args[0]) })
			if err != nil {
				return err
			}
			if output == outputJSON {
				return printJSON(cmd.OutOrStdout(), p)
			}
			return printPool(cmd.OutOrStdout(), p)
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func printPool(w io.Writer, p admin.Pool) error {
	fmt.Fprintf(w, "pool %s  policy %s  sticky %t  routes %s  available %d of %d\n",
		p.Name, p.Policy, p.Sticky, strings.Join(p.Routes, ","), p.Available, len(p.Servers))
	if p.Role != "" {
		fmt.Fprintf(w, "role %s\n", p.Role)
	}
	if p.FailOpen != nil {
		fmt.Fprintf(w, "fail open %s\n", failOpenRule(p.FailOpen.Below, "servers not draining"))
	}
	if p.Problem != "" {
		fmt.Fprintf(w, "PROBLEM: %s\n", p.Problem)
	}
	tw := newTable(w)
	row(tw, "SERVER", "ADDR", "WEIGHT", "STATE", "IN-FLIGHT", "SOURCE")
	for _, s := range p.Servers {
		state := s.State
		if s.State == "draining" && s.Empty {
			state = "draining (empty)"
		}
		src := "file"
		if s.Runtime {
			src = "runtime"
		}
		if s.DB != nil {
			switch {
			case s.DB.Error != "":
				state += " (" + s.DB.Error + ")"
			case s.DB.InRecovery:
				state += fmt.Sprintf(" (standby, lag %.1fs)", s.DB.LagSeconds)
			default:
				state += " (primary)"
			}
		}
		row(tw, s.Name, s.Addr, s.Weight, state, s.InFlight, src)
	}
	return tw.Flush()
}

func newPoolServerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Add, drain, undrain, delete or weigh a pool's servers",
	}
	cmd.AddCommand(newPoolServerAddCmd(), newPoolServerDrainCmd(), newPoolServerUndrainCmd(),
		newPoolServerDelCmd(), newPoolServerWeightCmd())
	return cmd
}

// parseServerArgs reads the servers of `xlb pool server add POOL ...`:
// either NAME ADDR, or any number of NAME=ADDR.
func parseServerArgs(args []string, weight int) ([]admin.NewServer, error) {
	if len(args) == 2 && !strings.Contains(args[0], "=") && !strings.Contains(args[1], "=") {
		return []admin.NewServer{{Name: args[0], Addr: args[1], Weight: weight}}, nil
	}
	out := make([]admin.NewServer, 0, len(args))
	for _, a := range args {
		name, addr, ok := strings.Cut(a, "=")
		if !ok || name == "" || addr == "" {
			return nil, fmt.Errorf("invalid server %q: give NAME ADDR for one server, or NAME=ADDR for each of several (e.g. c9=10.0.2.9:8080)", a)
		}
		out = append(out, admin.NewServer{Name: name, Addr: addr, Weight: weight})
	}
	return out, nil
}

func newPoolServerAddCmd() *cobra.Command {
	var (
		weight int
		output outputFormat
	)
	cmd := &cobra.Command{
		Use:               "add POOL NAME ADDR | POOL NAME=ADDR [NAME=ADDR...]",
		ValidArgsFunction: completePools,
		Short:             "Add one or several servers to a pool (all or none)",
		Example: `  xlb pool server add checkout c9 10.0.2.9:8080
  xlb pool server add checkout c9=10.0.2.9:8080 c10=10.0.2.10:8080 --weight 2
  xlb pool server add checkout $(for i in $(seq 9 32); do printf 'c%d=10.0.2.%d:8080 ' $i $i; done)`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			// The API reads weight 0 as "not given" (1): --weight 0
			// would add servers that take clients at once.
			if weight < 1 || weight > 1000 {
				return fmt.Errorf("invalid --weight %d: a pool server's weight is 1..1000; to add a server that takes no new clients, add it and drain it (xlb pool server drain POOL NAME)", weight)
			}
			servers, err := parseServerArgs(args[1:], weight)
			if err != nil {
				return err
			}
			p, err := withProxy(cmd, func(ctx context.Context, c *admin.Client) (admin.Pool, error) {
				return c.AddServers(ctx, args[0], servers)
			})
			if err != nil {
				return err
			}
			if output == outputJSON {
				return printJSON(cmd.OutOrStdout(), p)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s added to pool %s; it has %d, %d taking new clients\n",
				count(len(servers), "server"), p.Name, len(p.Servers), p.Available)
			return nil
		},
	}
	cmd.Flags().IntVar(&weight, "weight", 1, "relative share of the pool's new clients, 1..1000, for every server added")
	addOutputFlag(cmd, &output)
	return cmd
}

type drainOptions struct {
	force   bool
	wait    bool
	timeout time.Duration
	quiet   time.Duration
	output  outputFormat
}

func newPoolServerDrainCmd() *cobra.Command {
	o := drainOptions{timeout: 10 * time.Minute, quiet: admin.DefaultQuiet}
	cmd := &cobra.Command{
		Use:               "drain POOL NAME",
		ValidArgsFunction: completeServers,
		Short:             "Stop new clients to a server; its in-flight requests and sticky clients finish",
		Long: `Stop new clients to a server. Requests in flight finish; sticky clients pinned
to it stay until the pool's sticky drain_timeout, then move. With --wait the
command returns once the server is empty: nothing in flight and no pinned
client seen for --quiet (or the drain deadline passed). Draining the last
server of a pool that takes new clients is refused unless --force.`,
		Example: `  xlb pool server drain checkout c3 --wait --timeout 5m && systemctl stop app@c3`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Without --wait the command returns at once: a timeout
			// given alone would read as "drain for 5m" and do nothing.
			for _, f := range []string{"timeout", "quiet"} {
				if cmd.Flags().Changed(f) && !o.wait {
					return fmt.Errorf("--%s goes with --wait (the drain itself has no deadline of its own: "+
						"the pool's sticky.drain_timeout moves its sticky clients); add --wait to wait for the server to empty", f)
				}
			}
			pool, name := args[0], args[1]
			c, err := newProxyClient(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			s, err := c.Drain(cmd.Context(), pool, name, o.force)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if o.wait {
				ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
				defer cancel()
				s, err = c.WaitEmpty(ctx, pool, name, o.quiet, 100*time.Millisecond, nil)
				if err != nil {
					return fmt.Errorf("%w (it stays draining; check it with `xlb pool show %s`)", err, pool)
				}
			}
			if o.output == outputJSON {
				return printJSON(out, s)
			}
			switch {
			case o.wait:
				fmt.Fprintf(out, "server %s of pool %s drained and empty\n", name, pool)
			default:
				fmt.Fprintf(out, "server %s of pool %s draining (%d in flight)\n", name, pool, s.InFlight)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.force, "force", false, "drain even the last server of the pool that takes new clients (its routes then answer 503)")
	f.BoolVar(&o.wait, "wait", false, "return only once the server is empty")
	f.DurationVar(&o.timeout, "timeout", o.timeout, "with --wait: give up (exit 1, the server stays draining) after this long")
	f.DurationVar(&o.quiet, "quiet", o.quiet, "with --wait, sticky pools: no pinned client for this long counts as none left")
	addOutputFlag(cmd, &o.output)
	return cmd
}

func newPoolServerUndrainCmd() *cobra.Command {
	var output outputFormat
	cmd := &cobra.Command{
		Use:               "undrain POOL NAME",
		ValidArgsFunction: completeServers,
		Short:             "Let a drained server take new clients again",
		Args:              cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := withProxy(cmd, func(ctx context.Context, c *admin.Client) (admin.Server, error) {
				return c.Undrain(ctx, args[0], args[1])
			})
			if err != nil {
				return err
			}
			if output == outputJSON {
				return printJSON(cmd.OutOrStdout(), s)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "server %s of pool %s takes new clients (%s)\n", args[1], args[0], s.State)
			return nil
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func newPoolServerDelCmd() *cobra.Command {
	var (
		force  bool
		output outputFormat
	)
	cmd := &cobra.Command{
		Use:               "del POOL NAME",
		ValidArgsFunction: completeServers,
		Aliases:           []string{"delete", "rm"},
		Short:             "Remove a server from a pool (drain it with --wait first to let its clients finish)",
		Args:              cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := withProxy(cmd, func(ctx context.Context, c *admin.Client) (admin.Pool, error) {
				return c.DeleteServer(ctx, args[0], args[1], force)
			})
			if err != nil {
				return err
			}
			if output == outputJSON {
				return printJSON(cmd.OutOrStdout(), p)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "server %s deleted from pool %s; it has %d, %d taking new clients\n",
				args[1], args[0], len(p.Servers), p.Available)
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "delete even the last server of the pool that takes new clients (its routes then answer 503)")
	addOutputFlag(cmd, &output)
	return cmd
}

func newPoolServerWeightCmd() *cobra.Command {
	var output outputFormat
	cmd := &cobra.Command{
		Use:               "weight POOL NAME WEIGHT",
		ValidArgsFunction: completeServers,
		Short:             "Set a server's relative share of the pool's new clients (1..1000)",
		Example:           "  xlb pool server weight checkout c9 3",
		Args:              cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			w, err := strconv.Atoi(args[2])
			if err != nil {
				return fmt.Errorf("invalid WEIGHT %q: want a whole number 1..1000 (to stop new clients, use `xlb pool server drain`)", args[2])
			}
			s, err := withProxy(cmd, func(ctx context.Context, c *admin.Client) (admin.Server, error) {
				return c.SetWeight(ctx, args[0], args[1], w)
			})
			if err != nil {
				return err
			}
			if output == outputJSON {
				return printJSON(cmd.OutOrStdout(), s)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "server %s of pool %s now has weight %d\n", args[1], args[0], s.Weight)
			return nil
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

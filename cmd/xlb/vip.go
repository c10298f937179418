package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/spf13/cobra"

	"github.com/xlbproject/xlb/control/api"
)

const vipArgHelp = `VIP is ADDR:PORT/PROTO: 10.0.0.1:80/tcp, [2001:db8::1]:443/tcp, or
10.0.0.1:*/udp for every port of the address. /tcp may be left out.`

func newVIPCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "vip",
		Short: "Add, delete and inspect virtual services (VIPs)",
		Long:  "A VIP is an address, port and protocol the edge host balances over L7 hosts.\n\n" + vipArgHelp,
	}
	cmd.AddCommand(newVIPAddCmd(), newVIPDelCmd(), newVIPListCmd(), newVIPShowCmd())
	addSocketFlag(cmd)
	return cmd
}

type vipAddOptions struct {
	mode      string
	tableSize uint32
	backends  []string
	output    outputFormat
}

func newVIPAddCmd() *cobra.Command {
	var o vipAddOptions
	cmd := &cobra.Command{
		Use:   "add VIP",
		Short: "Add a VIP, optionally with its first backends",
		Long:  "Add a VIP. Backends can be given now (--backend, repeatable) or later with `xlb backend add`.\n\n" + vipArgHelp,
		Example: `  xlb vip add 10.0.0.1:80/tcp
  xlb vip add [2001:db8::1]:443/tcp --backend 2001:db8::11 --backend 2001:db8::12
  xlb vip add 10.0.0.2:*/udp --mode l2dsr`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := parseVIPArg(args[0])
			if err != nil {
				return err
			}
			spec := api.VIPSpec{Key: key, Mode: o.mode, TableSize: o.tableSize}
			for _, b := range o.backends {
				addr, err := api.ParseBackendAddr(b)
				if err != nil {
					return fmt.Errorf("invalid --backend: %w", err)
				}
				spec.Backends = append(spec.Backends, api.BackendSpec{Addr: addr})
			}
			if err := spec.Validate(); err != nil {
				return fmt.Errorf("add vip: %w", err)
			}
			return change(cmd, o.output, key, fmt.Sprintf("vip %s added", key),
				func(ctx context.Context, c *api.Client) error { return c.AddVIP(ctx, spec) })
		},
	}
	cmd.Flags().StringVar(&o.mode, "mode", "", "forwarding mode: "+strings.Join(api.Modes(), " or ")+" (default "+api.ModeIPIP+")")
	// Every VIP's table has the size of the data path's maps: the flag
	// can only restate it (a script asserting the size it was written for).
	cmd.Flags().Uint32Var(&o.tableSize, "table-size", 0, "Maglev table size; must equal the daemon's dataplane.table_size, which it defaults to")
	cmd.Flags().StringArrayVar(&o.backends, "backend", nil, "backend (L7 host) address; repeat for more")
	_ = cmd.RegisterFlagCompletionFunc("mode", cobra.FixedCompletions(api.Modes(), cobra.ShellCompDirectiveNoFileComp))
	addOutputFlag(cmd, &o.output)
	addForceFlag(cmd)
	return cmd
}

// deletedVIP is what `xlb vip del -o json` prints.
type deletedVIP struct {
	Deleted api.VIPKey `json:"deleted"`
}

func newVIPDelCmd() *cobra.Command {
	var output outputFormat
	cmd := &cobra.Command{
		Use:     "del VIP",
		Aliases: []string{"delete", "rm"},
		Short:   "Delete a VIP and all its backends",
		Long: `Delete a VIP and all its backends. Its packets stop being forwarded at once,
established connections included, so a VIP with an active backend is
refused unless --force: to retire it without breaking connections, drain
its backends first (the last one with --force) and delete it once their
flows have ended.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeVIPs,
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := parseVIPArg(args[0])
			if err != nil {
				return err
			}
			return show(cmd, output,
				func(c *api.Client, ctx context.Context) (deletedVIP, error) {
					return deletedVIP{Deleted: key}, c.DeleteVIP(withForce(cmd, ctx), key)
				},
				func(out io.Writer, d deletedVIP) error {
					_, err := fmt.Fprintf(out, "vip %s deleted\n", d.Deleted)
					return err
				})
		},
	}
	addOutputFlag(cmd, &output)
	addForceFlag(cmd)
	return cmd
}

func newVIPListCmd() *cobra.Command {
	var output outputFormat
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List VIPs with their backend counts",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return show(cmd, output, (*api.Client).ListVIPs, printVIPList)
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

func printVIPList(out io.Writer, vips []api.VIP) error {
	w := newTable(out)
	row(w, "VIP", "MODE", "TABLE", "BACKENDS", "ACTIVE", "DRAINING", "DOWN")
	for _, v := range vips {
		n := countStates(v.Backends)
		row(w, vipLabel(v), v.Mode, v.TableSize, len(v.Backends), n[api.StateActive], n[api.StateDraining], n[api.StateDown])
	}
	return w.Flush()
}

// vipLabel names a VIP in tables, marked when it fails open.
func vipLabel(v api.VIP) string {
	if v.FailingOpen {
		return v.Key.String() + " FAIL-OPEN"
	}
	return v.Key.String()
}

func countStates(bs []api.Backend) map[string]int {
	n := make(map[string]int, 3)
	for _, b := range bs {
		n[b.State]++
	}
	return n
}

func newVIPShowCmd() *cobra.Command {
	var output outputFormat
	cmd := &cobra.Command{
		Use:               "show VIP",
		Aliases:           []string{"get"},
		Short:             "Show a VIP and its backends",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeVIPs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return showVIP(cmd, output, args[0], func(v api.VIP) api.VIP { return v }, printVIP)
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}

// showVIP shows the VIP named by arg (vip show, backend list): view picks
// what of it the command prints, as JSON or through print.
func showVIP[T any](cmd *cobra.Command, output outputFormat, arg string, view func(api.VIP) T, print func(io.Writer, T) error) error {
	key, err := parseVIPArg(arg)
	if err != nil {
		return err
	}
	return show(cmd, output, func(c *api.Client, ctx context.Context) (T, error) {
		vip, err := c.GetVIP(ctx, key)
		return view(vip), err
	}, print)
}

func printVIP(out io.Writer, v api.VIP) error {
	n := countStates(v.Backends)
	fmt.Fprintf(out, "VIP:       %s\nMode:      %s\nTable:     %d entries\nBackends:  %d (%d active, %d draining, %d down)\n\n",
		v.Key, v.Mode, v.TableSize, len(v.Backends), n[api.StateActive], n[api.StateDraining], n[api.StateDown])
	if f := v.FailOpen; f != nil {
		fmt.Fprintf(out, "Fail open: %s; %d of %d pass now\n\n", failOpenRule(f.Below, "checked backends"), f.Passing, f.Checked)
	}
	if v.FailingOpen {
		fmt.Fprintf(out, "FAIL-OPEN: too few backends pass their health checks; new flows go to every backend not drained (health.all_down)\n\n")
	}
	return printBackends(out, v)
}

// failOpenRule says when a VIP or pool fails open, in the config's words;
// counted names the members the rule counts ("checked backends").
func failOpenRule(below int, counted string) string {
	if below == 0 {
		return fmt.Sprintf("while none of the %s passes (health.all_down: fail_open)", counted)
	}
	return fmt.Sprintf("while fewer than %d%% of the %s pass (health.fail_open_below)", below, counted)
}

// printBackends is the backend table of `vip show` and `backend list`.
func printBackends(out io.Writer, v api.VIP) error {
	w := newTable(out)
	row(w, "BACKEND", "WEIGHT", "STATE", "HEALTH", "TABLE SHARE", "LAST ERROR")
	for _, b := range v.Backends {
		lastErr := b.LastError
		if lastErr == "" {
			lastErr = "-"
		}
		row(w, b.Addr, b.Weight, b.State, health(b.Healthy), share(b.TableSlots, v.TableSize), lastErr)
	}
	return w.Flush()
}

func health(up bool) string {
	if up {
		return "up"
	}
	return "down"
}

// share renders a backend's part of the Maglev table, e.g. "33.3% (21846)".
func share(slots int, size uint32) string {
	if size == 0 {
		return fmt.Sprint(slots)
	}
	return fmt.Sprintf("%.1f%% (%d)", 100*float64(slots)/float64(size), slots)
}

// change runs one mutating call for the VIP key and reports it: msg, or
// with -o json the VIP as the daemon now runs it.
func change(cmd *cobra.Command, output outputFormat, key api.VIPKey, msg string, do func(context.Context, *api.Client) error) error {
	c, err := newClient(cmd)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := do(withForce(cmd, cmd.Context()), c); err != nil {
		return explain(err)
	}
	if output == outputJSON {
		vip, err := c.GetVIP(cmd.Context(), key)
		if err != nil {
			return explain(err)
		}
		return printJSON(cmd.OutOrStdout(), vip)
	}
	_, err = fmt.Fprintln(cmd.OutOrStdout(), msg)
	return err
}

// forceFlag is --force, on the commands whose change the daemon may refuse
// as dangerous (api.Service).
const forceFlag = "force"

// withForce marks ctx as forced when the command line gave --force.
func withForce(cmd *cobra.Command, ctx context.Context) context.Context {
	if f := cmd.Flags().Lookup(forceFlag); f != nil && f.Value.String() == "true" {
		return api.WithForce(ctx)
	}
	return ctx
}

func addForceFlag(cmd *cobra.Command) {
	cmd.Flags().Bool(forceFlag, false, "do it even though it cuts traffic (a VIP on one of the host's own addresses, "+
		"a loopback backend, leaving a VIP without an active backend, or deleting a VIP that has one); the daemon says what would happen")
}

// completeVIPs offers the daemon's VIPs for the first argument.
func completeVIPs(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return complete(cmd, (*api.Client).ListVIPs, func(v api.VIP) string { return v.Key.String() })
}

// completeBackends offers the VIP's backends for the second argument.
func completeBackends(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) == 0 {
		return completeVIPs(cmd, args, toComplete)
	}
	if len(args) > 1 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	key, err := api.ParseVIPKey(args[0])
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return complete(cmd, func(c *api.Client, ctx context.Context) ([]api.Backend, error) {
		vip, err := c.GetVIP(ctx, key)
		return vip.Backends, err
	}, func(b api.Backend) string { return b.Addr.String() })
}

// complete asks the daemon for a list and offers the name of each item;
// without a daemon it offers nothing rather than failing the shell.
func complete[T any](cmd *cobra.Command, list func(*api.Client, context.Context) ([]T, error), name func(T) string) ([]string, cobra.ShellCompDirective) {
	c, err := newClient(cmd)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer c.Close()
	items, err := list(c, cmd.Context())
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	names := make([]string, len(items))
	for i, it := range items {
		names[i] = name(it)
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// parseVIPBackendArgs parses the "VIP BACKEND" argument pair.
func parseVIPBackendArgs(args []string) (api.VIPKey, netip.Addr, error) {
	key, err := parseVIPArg(args[0])
	if err != nil {
		return api.VIPKey{}, netip.Addr{}, err
	}
	addr, err := api.ParseBackendAddr(args[1])
	if err != nil {
		return api.VIPKey{}, netip.Addr{}, fmt.Errorf("invalid BACKEND argument: %w", err)
	}
	return key, addr, nil
}

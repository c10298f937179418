package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/xlbproject/xlb/control/api"
)

type flowOptions struct {
	dport  uint16
	output outputFormat
}

func newFlowCmd() *cobra.Command {
	var o flowOptions
	cmd := &cobra.Command{
		Use:   "flow SRC:PORT VIP",
		Short: "Ask the data path which L7 host a flow goes to",
		Long: `Ask the data path which L7 host a flow goes to. The answer comes from the
loaded XDP program's own maps: the connection table if the flow is known,
otherwise the VIP's Maglev table.

` + vipArgHelp,
		Example: `  xlb flow 192.0.2.7:40000 10.0.0.1:80/tcp
  xlb flow [2001:db8:ffff::7]:40000 [2001:db8::1]:443/tcp
  xlb flow 192.0.2.7:5353 10.0.0.2:*/udp --dport 53`,
		Args: cobra.ExactArgs(2),
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 1 { // SRC:PORT is anyone's; the VIP is the daemon's
				return completeVIPs(cmd, nil, toComplete)
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := api.ParseFlowSource(args[0])
			if err != nil {
				return fmt.Errorf("invalid SRC:PORT argument: %w", err)
			}
			key, err := parseVIPArg(args[1])
			if err != nil {
				return err
			}
			if src.Addr().Is4() != key.Addr.Is4() {
				return fmt.Errorf("source %s and vip %s are of different address families", src, key)
			}
			if key.Port == 0 && o.dport == 0 {
				return fmt.Errorf("vip %s listens on every port: say which with --dport", key)
			}
			// The daemon answers for the VIP's own port: another
			// --dport would be answered as if it were that one.
			if key.Port != 0 && o.dport != 0 && o.dport != key.Port {
				return fmt.Errorf("vip %s listens on port %d only, so a packet to port %d is not its own; --dport is for a VIP of every port (ADDR:*/PROTO)", key, key.Port, o.dport)
			}
			q := api.FlowQuery{Src: src, VIP: key, DstPort: o.dport}
			return show(cmd, o.output,
				func(c *api.Client, ctx context.Context) (api.FlowAnswer, error) { return c.Flow(ctx, q) },
				func(out io.Writer, ans api.FlowAnswer) error { return printFlow(out, q, ans) })
		},
	}
	cmd.Flags().Uint16Var(&o.dport, "dport", 0, "destination port, for a VIP that listens on every port (ADDR:*/PROTO)")
	addOutputFlag(cmd, &o.output)
	addSocketFlag(cmd)
	return cmd
}

func printFlow(out io.Writer, q api.FlowQuery, a api.FlowAnswer) error {
	if !a.Backend.IsValid() {
		_, err := fmt.Fprintf(out, "%s → %s: no backend; the VIP has no active L7 host, so the packet would be dropped\n", q.Src, q.VIP)
		return err
	}
	w := newTable(out)
	row(w, "SOURCE", "VIP", "BACKEND", "VIA", "SLOT", "HASH")
	slot := "-"
	if a.Via == api.ViaMaglev {
		slot = fmt.Sprint(a.Slot)
	}
	row(w, q.Src, q.VIP, a.Backend, a.Via, slot, fmt.Sprintf("%#08x", a.Hash))
	return w.Flush()
}

package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/xlbproject/xlb/control/api"
)

func newBGPCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bgp",
		Short: "The daemon's BGP sessions and the VIP routes it announces",
	}
	var output outputFormat
	peers := &cobra.Command{
		Use:   "peers",
		Short: "Show each BGP peer's session state and flaps, and the announced prefixes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return show(cmd, output, (*api.Client).BGP, func(out io.Writer, st api.BGPStatus) error {
				return printBGP(out, st, time.Now())
			})
		},
	}
	addOutputFlag(peers, &output)
	cmd.AddCommand(peers)
	addSocketFlag(cmd)
	return cmd
}

// printBGP writes the speaker's summary line, its peers as a table and
// the announced prefixes; `xlb status` shows the same.
func printBGP(out io.Writer, st api.BGPStatus, now time.Time) error {
	announced := make([]string, len(st.Announced))
	for i, p := range st.Announced {
		announced[i] = p.String()
	}
	a := strings.Join(announced, ", ")
	if a == "" {
		a = "nothing"
	}
	statusLine(out, "BGP", "AS %d, router id %s; announcing %s", st.ASN, st.RouterID, a)
	if st.Held != "" {
		statusLine(out, "BGP held", "%s", st.Held)
	}
	if st.LastError != "" {
		statusLine(out, "BGP error", "%s", st.LastError)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tASN\tSTATE\tSINCE\tFLAPS\tLAST ERROR")
	for _, p := range st.Peers {
		state := p.State
		if !p.Up {
			state = strings.ToUpper(state)
		}
		last := p.LastError
		if last == "" {
			last = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%s\n", p.Addr, p.ASN, state, ago(now, p.Since), p.Flaps, last)
	}
	return tw.Flush()
}

package main

import (
	"github.com/spf13/cobra"
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
	root.AddCommand(newVersionCmd())
	return root
}

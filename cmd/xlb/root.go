package main

import (
	"github.com/spf13/cobra"

	"github.com/xlbproject/xlb/control/api"
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
	// Every operator command talks to the daemon through this socket.
	root.PersistentFlags().String(socketFlag, api.DefaultSocketPath, "path of the xlb daemon's API socket")
	root.AddCommand(newVersionCmd())
	root.AddCommand(newDaemonCmd())
	root.AddCommand(newVIPCmd(), newBackendCmd(), newStatusCmd(), newStatsCmd(), newFlowCmd(), newReloadCmd())
	root.AddCommand(newProxyCmd(), newDecapCmd())
	return root
}

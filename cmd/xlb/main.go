// Command xlb is the single binary of the xlb load balancer: the L4 daemon,
// the L7 proxy and the operator CLI that talks to the daemon.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "xlb:", err)
		os.Exit(1)
	}
}

// Command xlb is the single binary of the xlb load balancer: the L4 daemon,
// the L7 proxy and the operator CLI that talks to the daemon.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line and returns the process's exit status: 0 on
// success, 1 on any error. The error goes to stderr as "xlb: …", or as one
// JSON object ({"error": "…"}) when the command was asked for -o json, so a
// script that parses the output also gets a parseable failure.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteC()
	if err == nil {
		return 0
	}
	if wantsJSON(cmd, args) {
		b, _ := json.Marshal(struct {
			Error string `json:"error"`
		}{err.Error()})
		fmt.Fprintln(stderr, string(b))
		return 1
	}
	fmt.Fprintln(stderr, "xlb:", err)
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

// wantsJSON tells whether the failed command line asked for -o json. When
// cobra stopped before parsing the command's flags (an unknown subcommand,
// a bad flag), the flag has no value yet, so the arguments are read as the
// flag parser would: -o json, -ojson, --output json, --output=json.
func wantsJSON(cmd *cobra.Command, args []string) bool {
	if f := cmd.Flags().Lookup("output"); f != nil && f.Changed {
		return f.Value.String() == string(outputJSON)
	}
	json := false
	for i, a := range args {
		if a == "--" {
			break
		}
		switch {
		case a == "-o" || a == "--output":
			json = i+1 < len(args) && args[i+1] == string(outputJSON)
		case a == "-o"+string(outputJSON) || a == "--output="+string(outputJSON) || a == "-o="+string(outputJSON):
			json = true
		case strings.HasPrefix(a, "-o") && !strings.HasPrefix(a, "--") || strings.HasPrefix(a, "--output="):
			json = false
		}
	}
	return json
}

// exitRestart is the exit status of `xlb daemon` stopped for a restart
// (SIGUSR2); EX_TEMPFAIL, "try again".
const exitRestart = 75

// exitError is an error that ends the process with its own status.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/xlbproject/xlb/control/api"
)

// printStore says where desired state lives; an etcd store that does not
// answer is said loudly, since changes are refused until it does.
func printStore(out io.Writer, now time.Time, s api.StoreStatus) {
	if s.Kind != "etcd" {
		return
	}
	where := fmt.Sprintf("etcd %s prefix %s", strings.Join(s.Endpoints, ","), s.Prefix)
	if s.Up {
		statusLine(out, "Store", "%s, up (revision %d)", where, s.Revision)
		return
	}
	statusLine(out, "Store", "%s, UNREACHABLE since %s (%s): changes are refused, the data path keeps its last state (revision %d): %s",
		where, s.Since.UTC().Format(time.RFC3339), ago(now, s.Since), s.Revision, s.Error)
}

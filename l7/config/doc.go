// Package config holds the YAML configuration of `xlb proxy`: listeners,
// client-side limits, trusted proxies, the admin listener, routes, pools and
// the sticky-session key ring.
//
// Load and Parse reject unknown fields and report every problem as
// "file:line: reason", so an operator can jump straight to the bad line.
// Defaults are applied by Parse; the returned Config is complete and
// validated, and the rest of l7 never re-checks it.
package config

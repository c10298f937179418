// Package alerts ships the suggested Prometheus alert rules for xlb
// (xlb-alerts.yaml) and their promtool unit tests (xlb-alerts_test.yaml).
// The Go test checks every expression against the metrics the daemon and
// the proxy export and runs `promtool test rules` where promtool exists.
package alerts

import _ "embed"

// Rules is the alert rules file (control/alerts/xlb-alerts.yaml).
//
//go:embed xlb-alerts.yaml
var Rules []byte

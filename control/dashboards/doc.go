// Package dashboards ships the Grafana dashboard for the xlb daemon's
// metrics (control/metrics). xlb.json is imported into Grafana as is; the
// test checks that every metric and label it queries is one the daemon
// exports, and that every exported metric has a panel.
package dashboards

import _ "embed"

// XLB is the dashboard JSON (control/dashboards/xlb.json).
//
//go:embed xlb.json
var XLB []byte

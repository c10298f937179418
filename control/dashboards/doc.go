// Package dashboards ships the Grafana dashboards for xlb's metrics: xlb.json
// for the edge daemon (control/metrics) and xlb-l7.json for the L7 proxies
// (l7/proxy). Both are imported into Grafana as they are; the tests check
// that every metric and label they query is one the process exports, and
// that every exported metric has a panel.
package dashboards

import _ "embed"

// XLB is the edge daemon's dashboard (control/dashboards/xlb.json).
//
//go:embed xlb.json
var XLB []byte

// L7 is the L7 proxies' dashboard (control/dashboards/xlb-l7.json).
//
//go:embed xlb-l7.json
var L7 []byte

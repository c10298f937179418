// Package metrics exports the daemon's Prometheus metrics. The data path's
// per-CPU BPF counters are read at scrape time by a Collector that sums
// them (l4.Dataplane.Stats) — no polling loop, no stale values, nothing
// reset. Backend health and table fill are read from the daemon's current
// view at scrape time too. Health-check durations and reconcile results are
// ordinary histograms and counters fed by the daemon as they happen.
package metrics

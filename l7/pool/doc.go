// Package pool keeps the membership and health state of app-server pools:
// per-server atomic in-flight counters, weights with slow start, the active
// health view, passive ejection with exponential back-off and an eject cap,
// and draining.
//
// The hot path reads an immutable snapshot of the available servers
// (Pool.Available), rebuilt only on state transitions, so picking a server
// takes no lock and allocates nothing.
package pool

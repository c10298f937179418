// Package reconcile keeps the data path true to desired state × health:
// for every VIP it builds the Maglev table of its usable backends (active,
// healthy, weight > 0) with the maglev package and installs it whole
// through the data path, rebuilding only the VIPs whose input changed.
//
// Backend states: active (in the table), draining (out of the table, but
// still known to the data path so the connection table keeps forwarding its
// established flows), down (failed health, out of the table), removed
// (deleted from the data path once no table names it). A VIP without a
// usable backend gets an empty table, which the data path treats as "drop
// and count" — never a stale table, unless its fail-open policy
// (internal/failopen, SetFailOpen) puts every backend not drained back in
// it because too few pass. A backend no check has answered yet is neither
// passing nor failing: it is not counted and keeps the place it had.
package reconcile

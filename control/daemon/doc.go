// Package daemon is `xlb daemon`: it wires the configuration, the persisted
// desired state, the health checker, the reconciler, the l4 data path, the
// metrics and the API together, and implements api.Service.
//
// Every acknowledged change is persisted (state.Store.Save) and then
// reconciled before the API answers, so when `xlb backend drain` returns,
// the new table is live in the kernel and survives a crash. A restarted
// daemon adopts the pinned data path (forwarding never stops), reloads the
// state file, learns health with one round of checks and reconciles.
package daemon

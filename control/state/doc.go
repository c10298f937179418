// Package state holds the daemon's desired state — the VIPs, their backends
// (L7 hosts), weights and drain flags — and persists it atomically.
//
// Desired state is the configuration file plus every change made through the
// API. The state file keeps both the desired state and the configuration it
// was last rebased on, so that a reload (or a restart with an edited file)
// applies only what changed in the file and keeps the operator's API changes
// to everything else (a three-way merge, see Rebase).
//
// Persistence writes a temporary file in the same directory, fsyncs it,
// renames it over the state file and fsyncs the directory: after a crash at
// any point the file holds either the old or the new state, never a mix.
package state

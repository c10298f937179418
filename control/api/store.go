package api

import "time"

// StoreStatus is the desired-state store as the daemon sees it.
type StoreStatus struct {
	// Kind is "file" or "etcd".
	Kind string `json:"kind"`
	// Endpoints and Prefix locate an etcd store.
	Endpoints []string `json:"endpoints,omitempty"`
	Prefix    string   `json:"prefix,omitempty"`
	// Up: the store answers (a file store always does). While it is down
	// the data path keeps its last state and changes are refused.
	Up bool `json:"up"`
	// Since is when Up last changed; Error is the last failure while down.
	Since time.Time `json:"since,omitzero"`
	Error string    `json:"error,omitempty"`
	// Revision is the etcd revision the daemon's state was last applied
	// from.
	Revision int64 `json:"revision,omitempty"`
}

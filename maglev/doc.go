// Package maglev builds Maglev consistent-hashing lookup tables (Eisenbud et
// al., "Maglev: A Fast and Reliable Software Network Load Balancer", NSDI
// 2016).
//
// A table has M slots (M prime); each slot names one backend. A flow is
// mapped to a backend by hash(flow) mod M. Building a table is deterministic:
// the same set of (name, weight) pairs gives the same table in every process
// on every machine, whatever the input order, so two load balancer hosts with
// the same configuration agree slot for slot. When the backend set changes,
// only a small part of the table moves (about 1/N for one backend added or
// removed), which keeps most flows on their backend even without connection
// tracking.
//
// The package is pure Go with no I/O. The L4 control loop uses it to fill the
// XDP program's per-VIP tables; the L7 proxy uses it for its consistent-hash
// balancing policy.
package maglev

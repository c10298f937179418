// Package fleet builds a whole xlb site out of network namespaces and the
// real binaries, the way the demo and end-to-end drivers need it:
//
//	client ──► router (FRR: bgpd + zebra, ECMP over the edge hosts)
//	             │ BGP: each edge host announces the VIP
//	             ├─► lb1 | lb2 | lb3   xlb daemon, XDP, desired state in etcd
//	             │        │ IP-in-IP
//	             │        ▼
//	             │   l7-1 | l7-2 | ...  xlb decap + xlb proxy (VIP on lo, DSR)
//	             │        │ pools in etcd
//	             │        ▼
//	             └── app-c1.. (checkout pool), app-b1.. (browse pool)
//
// plus an etcd host running one embedded etcd member (the fleet/etcd
// command) that every daemon and every proxy shares: one `xlb backend add`
// or `xlb pool server add` changes every host.
//
// New starts everything and waits until it serves: each app server
// answers its health check, each proxy has every pool available, each
// daemon has every L7 host healthy in its table and the router spreads the
// VIP over every edge host. Close stops every process it started (SIGTERM,
// then SIGKILL), removes the daemons' XDP programs and pins, FRR's run
// directories, the namespaces and the work directory, also after a
// failure. Cleanup removes what a killed run of the same prefix left.
//
// Every namespace, pin and FRR directory carries the fleet's prefix; all
// traffic stays inside the namespaces.
package fleet

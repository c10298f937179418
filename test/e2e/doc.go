// Package e2e holds end-to-end tests that run xlb for real in network
// namespaces built by test/topo: the XDP balancer on an LB host's veth, the
// decapsulator on the L7 hosts' veths, real TCP in between; `xlb daemon` and
// `xlb proxy` as processes; an FRR router with ECMP in front of several edge
// hosts; and, in TestShop, the whole shop with counted faults. They need
// root and skip without it. docs/testing.md lists them with their figures.
package e2e

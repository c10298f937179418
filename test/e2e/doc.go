// Package e2e holds end-to-end tests that run xlb's data path for real in
// network namespaces built by test/topo: the XDP balancer on an LB host's
// veth, the decapsulator on the L7 hosts' veths, real TCP in between. They
// need root and skip without it.
package e2e

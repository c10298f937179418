// Package topo builds xlb's test topology out of network namespaces: one
// namespace holding a bridge, and one namespace per host (client, lb, l7-N,
// app-N, ...) joined to the bridge by a veth pair.
//
//	ns <prefix>-br:     br0 ── p-client, p-lb, p-l7-1, ...   (bridge ports, MTU 1600)
//	ns <prefix>-client: eth0 (10.99.0.1/24, fd00:99::1/64) ── p-client
//	ns <prefix>-lb:     eth0 (10.99.0.2/24, ...)           ── p-lb
//
// Everything lives inside namespaces whose names start with the topology's
// unique prefix (DefaultBase + random), so nothing is created in the
// caller's namespace and concurrent runs cannot collide. Close removes the
// namespaces (and with them every link); New from a test registers Close
// with t.Cleanup, and CleanupStale removes what crashed runs left behind.
//
// The package knows the traps of XDP on veth (see TESTBED.md): the bridge
// and its ports get MTU 1600 so IP-in-IP frames fit (HostConfig.MTU sets
// the host side), HostConfig.PeerXDPPass puts a trivial XDP_PASS program on
// the bridge-side port so native XDP_TX from the host is delivered, and
// HostConfig.NoOffloads turns off TX checksum, TSO and GSO so frames that an
// XDP program forwards carry complete checksums and no GSO super-packets.
//
// Code runs inside a host's namespace through Host.Do (a locked OS thread
// that enters the namespace and returns to the original one). Sockets keep
// their namespace: a listener or connection made by Host.Listen or
// Host.DialContext works from any goroutine afterwards. Host.Command runs a
// program with nsenter --net, which, unlike `ip netns exec`, keeps the
// caller's /sys (and so its bpffs pins).
package topo

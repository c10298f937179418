// Package bgp is the edge host's BGP speaker: an embedded GoBGP server that
// offers each VIP's host prefix (/32 or /128) to the routers in front of
// the edge hosts, with this host's own address as the next hop, so that the
// routers spread the VIPs' packets over every edge host that announces
// them (ECMP).
//
// The speaker only speaks: its import policy rejects every route it
// learns, and it installs nothing in the kernel. What to announce is the
// daemon's decision (Speaker.Announce takes the whole set each time); the
// speaker diffs it against what it announced and sends the difference.
//
// Stopping has two meanings. Stop(false) is a shutdown: the sessions are
// closed with a NOTIFICATION, so the routers drop this host's routes at
// once. Stop(true) is a restart: the sessions are closed without one, and a
// router that negotiated graceful restart (RFC 4724) keeps the routes,
// marked stale, while the next daemon (started with Restarting) reconnects
// and re-announces them; the pinned XDP program forwards meanwhile.
package bgp

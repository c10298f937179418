// Package director is the engine-independent brain of the L7 proxy: a
// request view goes in, a decision comes out (route, server, cookie to set,
// or a status to answer with), and the outcome of the forwarded request
// comes back through Done for in-flight accounting and passive health.
//
// Both HTTP engines (fasthttp for HTTP/1.1, net/http for HTTP/2) share one
// Director, so routing, balancing, stickiness and health behave the same
// whatever the protocol. The fast path — route match, P2C pick, valid sticky
// cookie, and the stand-in for a server not on this host yet — allocates
// nothing.
package director

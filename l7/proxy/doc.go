// Package proxy is the HTTP/1.1 engine of the xlb L7 tier: a fasthttp server
// for clients and one fasthttp.HostClient per app server, wired to the
// engine-independent decision code in l7/director.
//
// The hot path is one handler that builds a director.Request view over the
// fasthttp request (no copies), asks the director for a decision, rewrites
// the forwarding headers in place, and forwards the request with the
// backend's HostClient into the client's own response object. Nothing taken
// from the fasthttp.RequestCtx outlives the handler.
//
// Safe defaults live here because they are engine behaviour: read, idle and
// write timeouts, header size limit, per-route body limit, upstream dial and
// response timeouts, hop-by-hop header removal, rejection of request
// smuggling shapes with 400, and X-Forwarded-*/Forwarded headers trusted
// from configured CIDRs only.
//
// The admin listener serves /ready, /healthz and /metrics.
package proxy

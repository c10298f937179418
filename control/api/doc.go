// Package api is the contract between the xlb daemon and its clients: the
// wire types, the Service interface the daemon implements, the HTTP/JSON
// handler that serves it on versioned /v1/... paths over a unix socket, and
// the Go client the CLI uses.
//
// The client implements Service too, so the CLI is written against the same
// interface the daemon implements and the round trip handler→client can be
// tested for equality.
//
// Access control is the socket's file mode (0660) and group: whoever can
// connect may change the load balancer, so the API has no authentication of
// its own.
package api

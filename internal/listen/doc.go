// Package listen opens the TCP and UDP sockets that xlb's long-running
// processes bind from their configs, and words a failure as what the
// operator does next: which config key named the address, who holds a
// port already, that an address is not this host's (on an L7 host, the
// VIP not yet on loopback), or that a low port needs a capability.
package listen

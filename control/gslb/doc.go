// Package gslb is `xlb dns`: an authoritative DNS server for the zones in
// its config that answers GSLB names with the VIPs of a site chosen per
// query — the first healthy site of an ordered list (failover), the
// nearest healthy site to the client (geo, from a MaxMind-format
// database and the EDNS Client Subnet option), or a weighted share of the
// healthy sites. A site's health comes from its own xlb daemons' status
// JSON (GET /api/status) or an HTTP probe, with rise/fall. See
// docs/gslb.md.
package gslb

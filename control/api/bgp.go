package api

import (
	"net/netip"
	"time"
)

// BGPStatus is the daemon's BGP speaker as `xlb bgp peers` and `xlb status`
// show it: the sessions with the routers and the VIP prefixes this host
// announces.
type BGPStatus struct {
	ASN      uint32     `json:"asn"`
	RouterID netip.Addr `json:"routerId"`
	Peers    []BGPPeer  `json:"peers"`
	// Announced are the VIP prefixes (/32, /128) offered to every peer.
	Announced []netip.Prefix `json:"announced"`
	// Held says why nothing is announced although VIPs exist (e.g. the
	// first reconcile has not completed); empty when announcing normally.
	Held string `json:"held,omitempty"`
	// LastError is the latest failure to announce or withdraw, empty if
	// the latest attempt succeeded.
	LastError string `json:"lastError,omitempty"`
}

// BGPPeer is one BGP session.
type BGPPeer struct {
	Addr netip.Addr `json:"addr"`
	ASN  uint32     `json:"asn"`
	// State is the session's FSM state: idle, connect, active, opensent,
	// openconfirm or established.
	State string `json:"state"`
	Up    bool   `json:"up"`
	// Since is when the session last entered State.
	Since time.Time `json:"since,omitzero"`
	// Flaps counts how often an established session went down.
	Flaps uint64 `json:"flaps"`
	// LastError is the reason the session last went down.
	LastError string `json:"lastError,omitempty"`
}

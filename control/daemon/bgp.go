package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/xlbproject/xlb/control/api"
	"github.com/xlbproject/xlb/control/bgp"
	"github.com/xlbproject/xlb/control/config"
	"github.com/xlbproject/xlb/control/reconcile"
)

// bgpConfig is the speaker's configuration from the daemon's.
func bgpConfig(cfg *config.Config) bgp.Config {
	b := cfg.BGP
	out := bgp.Config{
		ASN: b.ASN, RouterID: b.RouterID, ListenPort: b.ListenPort, RestartTime: b.RestartTime,
		NextHopV4: cfg.OuterSource.IPv4, NextHopV6: cfg.OuterSource.IPv6,
		Attrs: map[netip.Addr]bgp.Attrs{},
	}
	for _, p := range b.Peers {
		out.Peers = append(out.Peers, bgp.Peer{Addr: p.Addr, Port: p.Port, ASN: p.ASN, Password: p.Password,
			HoldTime: p.HoldTime, Keepalive: p.Keepalive, Families: p.Families})
	}
	for _, v := range b.VIPs {
		out.Attrs[v.Addr] = bgp.Attrs{Communities: v.Communities, LocalPref: v.LocalPref}
	}
	return out
}

// startBGP starts the speaker once the data path is attached and the first
// reconcile has run, and announces what that reconcile made servable. A
// daemon that adopted a pinned data path is a restart: the speaker says so
// (graceful restart), and a router that kept the previous daemon's routes
// keeps them until this one has sent its own.
func (d *Daemon) startBGP(ctx context.Context) error {
	if d.cfg.BGP == nil {
		return nil
	}
	sp, err := bgp.Start(ctx, d.log.With("component", "bgp"), bgpConfig(d.cfg), d.adopted)
	if err != nil {
		return err
	}
	d.bgp = sp
	if err := d.reg.Register(sp.Collector()); err != nil {
		return fmt.Errorf("register bgp metrics: %w", err)
	}
	d.mu.Lock()
	d.announceLocked()
	d.mu.Unlock()
	return nil
}

// announceLocked offers the routers the VIP prefixes this host can serve
// now: the data path is attached, a reconcile has succeeded (the tables
// match the desired state), and the VIP has a usable backend (healthy and
// not drained; a VIP that forwards only because every backend failed open
// does not count, so that the routers prefer hosts that see a healthy
// one). While a reconcile fails, nothing is added but nothing announced is
// withdrawn either: the tables of those VIPs are still the last good ones.
func (d *Daemon) announceLocked() {
	if d.bgp == nil {
		return
	}
	var held string
	var want []netip.Prefix
	switch {
	case d.stopping:
		held = "daemon stopping"
	case d.lastReconcile.IsZero():
		held = "first reconcile not done"
	default:
		want = d.servableLocked()
		if d.lastErr != nil {
			cur := d.bgp.Status().Announced
			want = slices.DeleteFunc(want, func(p netip.Prefix) bool { return !slices.Contains(cur, p) })
			held = "reconcile failing: no new routes until it succeeds"
		} else if len(want) == 0 && len(d.file.Desired.VIPs) > 0 {
			held = "no vip has a usable backend"
		}
	}
	if err := d.bgp.Announce(want, held); err != nil {
		d.log.Error("bgp announce failed", "error", err)
	}
}

// servableLocked is the host prefix of every desired VIP address with a
// usable backend; several VIPs (ports) on one address share a route.
func (d *Daemon) servableLocked() []netip.Prefix {
	seen := map[netip.Addr]bool{}
	var out []netip.Prefix
	for _, v := range d.file.Desired.VIPs {
		if seen[v.Key.Addr] || !d.usableLocked(v.Key) {
			continue
		}
		seen[v.Key.Addr] = true
		out = append(out, netip.PrefixFrom(v.Key.Addr, v.Key.Addr.BitLen()))
	}
	return out
}

func (d *Daemon) usableLocked(k api.VIPKey) bool {
	v, ok := d.file.Desired.VIP(k)
	if !ok {
		return false
	}
	slots := d.rec.Slots(k)
	for _, b := range v.Backends {
		if b.Drain || b.Weight == 0 {
			continue
		}
		// A host whose check starts over (its port changed) keeps its
		// place in the table, and so the route.
		switch d.healthLocked(k, b.Addr) {
		case reconcile.Passing:
			return true
		case reconcile.Unchecked:
			if slots[b.Addr] > 0 && !d.rec.FailingOpen(k) {
				return true
			}
		}
	}
	return false
}

// Shutdown ends the daemon's BGP sessions; call it after Run returns.
// restart=false (SIGTERM, SIGINT: the host stops serving) withdraws every
// route, keeps forwarding for bgp.shutdown_drain while the routers move
// the flows to the other edge hosts, then closes the sessions. restart=true
// (SIGUSR2: a restart or upgrade) withdraws nothing and closes the sessions
// without NOTIFICATION, so that graceful-restart routers keep using this
// host, whose pinned program keeps forwarding, until the next daemon is up.
func (d *Daemon) Shutdown(restart bool) error {
	if d.bgp == nil {
		return nil
	}
	if restart {
		d.log.Info("restart: closing bgp sessions for graceful restart; routes stay with the routers", "restart_time", d.cfg.BGP.RestartTime)
		return d.bgp.Stop(true)
	}
	d.mu.Lock()
	d.stopping = true
	d.announceLocked()
	d.mu.Unlock()
	drain := d.cfg.BGP.ShutdownDrain
	d.log.Info("stopping: routes withdrawn; forwarding while the routers move the flows", "drain", drain)
	time.Sleep(drain)
	return d.bgp.Stop(false)
}

// BGPStatus is the speaker's state; nil when BGP is not configured.
func (d *Daemon) bgpStatus() *api.BGPStatus {
	if d.bgp == nil {
		return nil
	}
	st := d.bgp.Status()
	return &st
}

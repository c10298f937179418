package main

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/xlbproject/xlb/control/api"
)

func newStatusCmd() *cobra.Command {
	var output outputFormat
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the daemon, its interfaces, and every VIP's backends with health and table share",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return show(cmd, output, (*api.Client).Status, printStatus)
		},
	}
	addOutputFlag(cmd, &output)
	addSocketFlag(cmd)
	return cmd
}

// statusLabelWidth is the column at which the values of the lines above
// `xlb status`'s tables start: room for the longest label and its colon
// ("Interfaces:", "Outer src:") and a space. A label is at most 12
// characters with its colon, so that every value lines up.
const statusLabelWidth = 13

// statusLine prints one "Label:  value" line of `xlb status`.
func statusLine(out io.Writer, label, format string, args ...any) {
	fmt.Fprintf(out, "%-*s", statusLabelWidth, label+":")
	fmt.Fprintf(out, format+"\n", args...)
}

func printStatus(out io.Writer, st api.Status) error {
	now := st.Time
	if now.IsZero() {
		now = time.Now()
	}
	uptime := "unknown"
	if !st.StartTime.IsZero() {
		uptime = now.Sub(st.StartTime).Truncate(time.Second).String()
	}
	dataPath := "loaded fresh"
	if st.Adopted {
		dataPath = "adopted from the previous daemon"
	}
	statusLine(out, "Daemon", "xlb %s, up %s", st.Version, uptime)
	statusLine(out, "Data path", "%s", dataPath)
	if ct := st.Conntrack; ct.Capacity > 0 {
		approx := "about "
		if ct.Exact {
			approx = ""
		}
		statusLine(out, "Conntrack", "%s%d of %d entries in use (%.1f %%)", approx, ct.Entries, ct.Capacity, 100*float64(ct.Entries)/float64(ct.Capacity))
	}
	ifaces := make([]string, 0, len(st.Interfaces))
	for _, i := range st.Interfaces {
		mtu := ""
		if i.MTU > 0 {
			mtu = fmt.Sprintf(", mtu %d", i.MTU)
		}
		ifaces = append(ifaces, i.Name+" ("+ifaceMode(i)+mtu+")")
	}
	if len(ifaces) == 0 {
		ifaces = append(ifaces, "none")
	}
	statusLine(out, "Interfaces", "%s", strings.Join(ifaces, ", "))
	printNextHopMode(out, st.NextHops)
	var srcs []string
	for _, a := range []netip.Addr{st.OuterSourceV4, st.OuterSourceV6} {
		if a.IsValid() {
			srcs = append(srcs, a.String())
		}
	}
	if len(srcs) > 0 {
		statusLine(out, "Outer src", "%s", strings.Join(srcs, ", "))
	}
	statusLine(out, "Reconciled", "%s", ago(now, st.LastReconcile))
	if st.LastReconcileError != "" {
		statusLine(out, "Reconcile", "FAILED: %s", st.LastReconcileError)
	}
	if st.ConfigPath != "" {
		statusLine(out, "Config", "%s", st.ConfigPath)
	}
	if st.StatePath != "" {
		statusLine(out, "State", "%s", st.StatePath)
	}
	printStore(out, now, st.Store)
	fmt.Fprintln(out)
	if err := printNextHops(out, st.NextHops); err != nil {
		return err
	}
	if st.BGP != nil {
		if err := printBGP(out, *st.BGP, now); err != nil {
			return err
		}
		fmt.Fprintln(out)
	}
	if len(st.VIPs) == 0 {
		_, err := fmt.Fprintln(out, "No VIPs. Add one with `xlb vip add VIP`.")
		return err
	}
	w := newTable(out)
	row(w, "VIP", "BACKEND", "WEIGHT", "STATE", "HEALTH", "TABLE SHARE", "LAST CHECK", "LAST ERROR")
	for _, v := range st.VIPs {
		if len(v.Backends) == 0 {
			row(w, v.Key, "-", "-", "-", "-", "-", "-", "no backends: traffic is dropped")
			continue
		}
		for i, b := range v.Backends {
			vip := ""
			if i == 0 {
				vip = vipLabel(v)
			}
			lastErr := b.LastError
			if lastErr == "" {
				lastErr = "-"
			}
			row(w, vip, b.Addr, b.Weight, b.State, health(b.Healthy), share(b.TableSlots, v.TableSize), ago(now, b.LastCheck), lastErr)
		}
	}
	return w.Flush()
}

// printNextHopMode says where forwarded frames get their next hop from,
// and how many L7 hosts cannot be reached now.
func printNextHopMode(out io.Writer, nh api.NextHops) {
	switch nh.Mode {
	case api.NextHopStatic:
		statusLine(out, "Next hop", "%s for every frame (dataplane.next_hop_mac)", nh.MAC)
	case api.NextHopFIB:
		unresolved := 0
		for _, h := range nh.Hosts {
			if !h.Resolved {
				unresolved++
			}
		}
		msg := "all resolved"
		if unresolved > 0 {
			msg = fmt.Sprintf("%d of %d UNRESOLVED: their packets are passed to the kernel, not forwarded", unresolved, len(nh.Hosts))
		}
		statusLine(out, "Next hops", "kernel FIB per frame; %s", msg)
	}
}

// printNextHops lists each L7 host's next hop when they come from the FIB.
func printNextHops(out io.Writer, nh api.NextHops) error {
	if nh.Mode != api.NextHopFIB || len(nh.Hosts) == 0 {
		return nil
	}
	w := newTable(out)
	row(w, "BACKEND", "INTERFACE", "VIA", "MAC", "NEXT HOP")
	for _, h := range nh.Hosts {
		iface, via, mac := dash(h.Iface), "on-link", dash(h.MAC)
		if h.Gateway.IsValid() {
			via = h.Gateway.String()
		}
		if h.Iface == "" {
			via = "-"
		}
		state := h.State
		if !h.Resolved {
			state = "UNRESOLVED: " + h.State
		}
		row(w, h.Backend, iface, via, mac, state)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(out)
	return err
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ifaceMode says in which XDP mode the program runs on i. Generic mode is
// spelled out as slow: it is the silent result of "auto" on a NIC without
// native XDP, and the operator has to notice it.
func ifaceMode(i api.Interface) string {
	switch {
	case !i.Attached:
		return fmt.Sprintf("%s, NOT ATTACHED: %s", i.ConfiguredMode, i.Error)
	case i.Mode == api.AttachGeneric && i.ConfiguredMode != api.AttachGeneric:
		return "GENERIC: no native XDP on this NIC, several times slower"
	case i.Mode == api.AttachGeneric:
		return "generic, as configured: several times slower than native"
	case i.Mode == api.AttachUnknown:
		return fmt.Sprintf("mode unknown, configured %s", i.ConfiguredMode)
	}
	return i.Mode
}

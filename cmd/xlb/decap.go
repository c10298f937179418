package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/xlbproject/xlb/l4/decap"
	"github.com/xlbproject/xlb/l4/xdplink"
)

// decapOptions are the flags of `xlb decap`.
type decapOptions struct {
	iface    string
	pinPath  string
	cleanup  bool
	mode     string
	addrs    []string
	guePort  uint16
	interval time.Duration
}

// newDecapCmd runs the L7-host side of the tunnel: the decapsulator stays
// attached while the command runs, independent of `xlb proxy`, so restarting
// the proxy never drops tunnelled packets on the floor.
func newDecapCmd() *cobra.Command {
	o := decapOptions{mode: "auto", interval: time.Minute}
	cmd := &cobra.Command{
		Use:   "decap --iface IFACE [--addr ADDR]...",
		Short: "Run the IP-in-IP and GUE decapsulator on an L7 host (foreground)",
		Long: `Attach xlb's XDP decapsulator to the L7 host's interface and keep it
attached until SIGINT/SIGTERM. It strips the tunnel header (IP-in-IP, and
with --gue-port also GUE: IP directly in UDP) from packets the edge hosts'
balancer sends to one of this host's addresses and passes the inner packet
(client address → VIP) up to the stack, where xlb proxy listens on the VIP
(put the VIP on lo with arp_ignore=1, arp_announce=2).

Without --addr, the interface's own addresses are used, loopback and
link-local ones skipped (no edge host can tunnel to them); an interface
with no other address, such as lo, is refused.

Without --pin-path the decapsulator is detached when the command exits. With
--pin-path it stays attached (tunnelled traffic keeps flowing while the
command is restarted or upgraded) and the next run adopts it; --cleanup
removes it.`,
		Example: `  xlb decap --iface eth0
  xlb decap --iface eth0 --addr 10.0.1.1 --addr 2001:db8:1::1 --mode native
  xlb decap --iface eth0 --gue-port 6080
  xlb decap --iface eth0 --pin-path /sys/fs/bpf/xlb-decap
  xlb decap --pin-path /sys/fs/bpf/xlb-decap --cleanup`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.cleanup {
				if o.pinPath == "" {
					return fmt.Errorf("--cleanup needs --pin-path: it removes what is pinned there")
				}
				return decap.RemovePins(o.pinPath)
			}
			mode, addrs, err := o.complete()
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return o.run(ctx, cmd, log, mode, addrs)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.iface, "iface", "", "interface that receives the tunnelled packets (required)")
	_ = cmd.RegisterFlagCompletionFunc("iface", completeInterfaces)
	f.StringVar(&o.mode, "mode", o.mode, "XDP attach mode. One of: auto (native, falling back to generic), native, generic")
	_ = cmd.RegisterFlagCompletionFunc("mode", cobra.FixedCompletions(
		[]string{"auto", "native", "generic"}, cobra.ShellCompDirectiveNoFileComp))
	f.Uint16Var(&o.guePort, "gue-port", 0, "UDP port of GUE tunnels (IP directly in UDP) to decapsulate as well; must match the balancer's (0: IP-in-IP only)")
	f.StringArrayVar(&o.addrs, "addr", nil, "local tunnel endpoint address (repeatable; default: the interface's addresses)")
	f.DurationVar(&o.interval, "stats-interval", o.interval, "how often to log the counters (0 disables)")
	f.StringVar(&o.pinPath, "pin-path", "", "bpffs directory to pin into (e.g. /sys/fs/bpf/xlb-decap): the decapsulator then stays attached when the command exits and the next run adopts it")
	f.BoolVar(&o.cleanup, "cleanup", false, "remove the pins under --pin-path (detaches the decapsulator) and exit")
	return cmd
}

func (o *decapOptions) complete() (xdplink.Mode, []netip.Addr, error) {
	if o.iface == "" {
		return 0, nil, fmt.Errorf("--iface is required: the interface that receives the tunnelled packets")
	}
	mode, err := xdplink.ParseMode(o.mode)
	if err != nil {
		return 0, nil, fmt.Errorf("invalid --mode: %w", err)
	}
	if len(o.addrs) > 0 {
		addrs := make([]netip.Addr, 0, len(o.addrs))
		for _, s := range o.addrs {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return 0, nil, fmt.Errorf("invalid --addr %q: want an IPv4 or IPv6 address", s)
			}
			a = a.Unmap()
			if a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsMulticast() || a.IsUnspecified() {
				return 0, nil, fmt.Errorf("invalid --addr %q: %s", s, notEndpoint)
			}
			addrs = append(addrs, a)
		}
		return mode, addrs, nil
	}
	addrs, skipped, err := decap.InterfaceAddrs(o.iface)
	if err != nil {
		return 0, nil, err // it names the interface and what to check
	}
	if len(addrs) == 0 {
		had := "no address at all"
		if len(skipped) > 0 {
			had = "only " + joinAddrs(skipped)
		}
		return 0, nil, fmt.Errorf("interface %q has no address an edge host can tunnel to (it has %s; %s): "+
			"give the interface the edge hosts reach this host through (e.g. --iface eth0), "+
			"or --addr with this host's IPv4 and IPv6 addresses as the daemon's backends name them", o.iface, had, notEndpoint)
	}
	return mode, addrs, nil
}

// notEndpoint says why an address is never a tunnel endpoint: the edge
// hosts' balancer sends to the L7 host's routable address, and a loopback
// or link-local one is nowhere it can route to.
const notEndpoint = "a loopback or link-local address is never the outer destination of the edge hosts' IP-in-IP or GUE packets"

func joinAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

// completeInterfaces offers this host's interfaces (of the shell's network
// namespace).
func completeInterfaces(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	names := make([]string, len(ifs))
	for i, it := range ifs {
		names[i] = it.Name
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

func (o *decapOptions) run(ctx context.Context, cmd *cobra.Command, log *slog.Logger, mode xdplink.Mode, addrs []netip.Addr) error {
	d, err := decap.Open(decap.Config{Logger: log, PinPath: o.pinPath, GUEPort: o.guePort})
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.SetAddrs(addrs); err != nil {
		return err
	}
	if err := d.Attach(o.iface, mode); err != nil {
		return err
	}
	log.Info("decapsulator attached", "iface", o.iface, "mode", d.Mode().String(), "addrs", fmt.Sprint(addrs))

	var tick <-chan time.Time
	if o.interval > 0 {
		t := time.NewTicker(o.interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return o.printStats(cmd, d)
		case <-tick:
			if s, err := d.Stats(); err == nil {
				log.Info("decapsulator counters", "iface", o.iface,
					"decap_v4", s.DecapV4.Packets, "decap_v6", s.DecapV6.Packets,
					"gue_v4", s.GUEV4.Packets, "gue_v6", s.GUEV6.Packets,
					"not_for_us", s.NotForUs.Packets, "malformed", s.Malformed.Packets)
			}
		}
	}
}

// printStats writes the final counters to stdout as JSON when the command
// stops, so scripts can see what went through.
func (o *decapOptions) printStats(cmd *cobra.Command, d *decap.Decap) error {
	s, err := d.Stats()
	if err != nil {
		return fmt.Errorf("read decapsulator counters: %w", err)
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode counters: %w", err)
	}
	_, err = fmt.Fprintln(cmd.OutOrStdout(), string(b))
	return err
}

package topo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

const (
	frrDir     = "/usr/lib/frr"
	frrRunDir  = "/var/run/frr"
	frrStopFor = 5 * time.Second
)

// FRRConfig is the BGP side of a router host: FRR's bgpd and zebra, which
// installs the routes bgpd chooses (ECMP over every edge host announcing
// a VIP) into the router's namespace.
type FRRConfig struct {
	ASN      uint32
	RouterID netip.Addr
	// Listen is the range the router accepts sessions from (dynamic
	// neighbours: an edge host added later needs no router change), each
	// of AS PeerASN.
	Listen  netip.Prefix
	PeerASN uint32
	// Keepalive and HoldTime are the router's BGP timers (whole seconds;
	// the session uses the smaller hold time of the two sides).
	Keepalive, HoldTime time.Duration
	// MaximumPaths bounds the ECMP width (default 16).
	MaximumPaths int
}

// FRR is a running bgpd + zebra pair in a host's namespace, with its own
// pathspace (sockets under /var/run/frr/<pathspace>/).
type FRR struct {
	host      *Host
	Pathspace string
	dir       string
	procs     []*exec.Cmd
	done      []chan error
}

// FRRAvailable says whether Debian's frr package is installed.
func FRRAvailable() bool {
	for _, d := range []string{"zebra", "bgpd"} {
		if _, err := os.Stat(filepath.Join(frrDir, d)); err != nil {
			return false
		}
	}
	_, err := exec.LookPath("vtysh")
	return err == nil
}

// StartFRRT starts FRR on h for a test (skipped when FRR is not installed)
// and stops it when the test ends, also on failure.
func (h *Host) StartFRRT(t testing.TB, cfg FRRConfig) *FRR {
	t.Helper()
	if !FRRAvailable() {
		t.Skip("FRR is not installed (make deps installs Debian's frr)")
	}
	f, err := h.StartFRR(cfg)
	if err != nil {
		t.Fatalf("start frr on %s: %v", h.Name, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range []string{"bgpd.log", "zebra.log"} {
				if b, err := os.ReadFile(filepath.Join(f.dir, n)); err == nil {
					t.Logf("%s:\n%s", n, lastLines(b, 60))
				}
			}
		}
		if err := f.Close(); err != nil {
			t.Errorf("stop frr: %v", err)
		}
	})
	return f
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// StartFRR starts zebra and bgpd in h's namespace with the pathspace
// "<topology prefix>-<host>": their sockets, configuration and logs all
// live in /var/run/frr/<pathspace>/, owned by the frr user the daemons
// run as, and Close removes it. No vty TCP port is opened. The router's
// namespace gets an L4 multipath hash, so ECMP spreads flows, not hosts.
func (h *Host) StartFRR(cfg FRRConfig) (_ *FRR, err error) {
	if cfg.MaximumPaths == 0 {
		cfg.MaximumPaths = 16
	}
	for _, kv := range [][2]string{
		{"net.ipv4.fib_multipath_hash_policy", "1"},
		{"net.ipv6.fib_multipath_hash_policy", "1"},
	} {
		if err := h.SetSysctl(kv[0], kv[1]); err != nil {
			return nil, err
		}
	}
	usr, err := user.Lookup("frr")
	if err != nil {
		return nil, fmt.Errorf("frr user: %w", err)
	}
	uid, _ := strconv.Atoi(usr.Uid)
	gid, _ := strconv.Atoi(usr.Gid)
	f := &FRR{host: h, Pathspace: h.NetNS, dir: filepath.Join(frrRunDir, h.NetNS)}
	defer func() {
		if err != nil {
			err = errors.Join(err, f.Close())
		}
	}()
	dir := f.dir
	for _, d := range []string{frrRunDir, dir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("create frr run directory: %w", err)
		}
		if err := os.Chown(d, uid, gid); err != nil {
			return nil, fmt.Errorf("give %s to frr: %w", d, err)
		}
	}
	zebraConf := filepath.Join(dir, "zebra.conf")
	bgpdConf := filepath.Join(dir, "bgpd.conf")
	if err := os.WriteFile(zebraConf, []byte("hostname "+h.Name+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write zebra config: %w", err)
	}
	if err := os.WriteFile(bgpdConf, []byte(cfg.bgpd(h.Name)), 0o600); err != nil {
		return nil, fmt.Errorf("write bgpd config: %w", err)
	}
	for _, p := range []string{zebraConf, bgpdConf} {
		if err := os.Chown(p, uid, gid); err != nil {
			return nil, fmt.Errorf("give %s to frr: %w", p, err)
		}
	}
	for _, d := range []struct{ name, conf string }{{"zebra", zebraConf}, {"bgpd", bgpdConf}} {
		args := []string{"-N", f.Pathspace, "-f", d.conf, "-P", "0",
			"-i", filepath.Join(dir, d.name+".pid"), "--log", "file:" + filepath.Join(dir, d.name+".log")}
		cmd := h.Command(context.Background(), filepath.Join(frrDir, d.name), args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start %s: %w", d.name, err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		f.procs, f.done = append(f.procs, cmd), append(f.done, done)
		// Each daemon is up once its vty socket answers; bgpd needs
		// zebra's socket when it starts.
		deadline := time.Now().Add(20 * time.Second)
		for {
			if _, err := f.Vtysh("show daemons"); err == nil {
				if out, _ := f.Vtysh("show daemons"); strings.Contains(out, d.name) {
					break
				}
			}
			select {
			case werr := <-done:
				done <- werr
				return nil, fmt.Errorf("%s exited (%v): %s", d.name, werr, out.String())
			default:
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("%s did not come up", d.name)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return f, nil
}

func (cfg FRRConfig) bgpd(hostname string) string {
	secs := func(d time.Duration) int { return int(d / time.Second) }
	var b strings.Builder
	fmt.Fprintf(&b, `frr defaults datacenter
hostname %s
!
router bgp %d
 bgp router-id %s
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 neighbor EDGE peer-group
 neighbor EDGE remote-as %d
`, hostname, cfg.ASN, cfg.RouterID, cfg.PeerASN)
	if cfg.HoldTime > 0 {
		fmt.Fprintf(&b, " neighbor EDGE timers %d %d\n", secs(cfg.Keepalive), secs(cfg.HoldTime))
	}
	fmt.Fprintf(&b, ` bgp listen range %s peer-group EDGE
 address-family ipv4 unicast
  neighbor EDGE activate
  maximum-paths %[2]d
 exit-address-family
 address-family ipv6 unicast
  neighbor EDGE activate
  maximum-paths %[2]d
 exit-address-family
!
`, cfg.Listen, cfg.MaximumPaths)
	return b.String()
}

// Vtysh runs vtysh commands against this instance.
func (f *FRR) Vtysh(cmds ...string) (string, error) {
	args := []string{"-N", f.Pathspace}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// stdout only: vtysh warns on stderr that the pathspace has no
	// vtysh.conf of its own.
	cmd := f.host.Command(ctx, "vtysh", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("vtysh %s: %w: %s%s", strings.Join(cmds, "; "), err, out, stderr.Bytes())
	}
	return string(out), nil
}

// Established is how many BGP sessions are up.
func (f *FRR) Established() (int, error) {
	out, err := f.Vtysh("show bgp ipv4 unicast summary json")
	if err != nil {
		return 0, err
	}
	var sum struct {
		Peers map[string]struct {
			State string `json:"state"`
		} `json:"peers"`
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		return 0, fmt.Errorf("parse bgp summary: %w", err)
	}
	n := 0
	for _, p := range sum.Peers {
		if p.State == "Established" {
			n++
		}
	}
	return n, nil
}

// NextHops are the gateways of the router's kernel route to dst (what
// zebra installed from bgpd's choice): one per edge host the router sends
// dst's packets to, none when there is no route.
func (f *FRR) NextHops(dst netip.Prefix) ([]netip.Addr, error) {
	var out []netip.Addr
	err := f.host.netlink(func(nl *netlink.Handle) error {
		family := netlink.FAMILY_V4
		if dst.Addr().Is6() {
			family = netlink.FAMILY_V6
		}
		routes, err := nl.RouteListFiltered(family, &netlink.Route{Dst: prefixNet(dst)}, netlink.RT_FILTER_DST)
		if err != nil {
			return fmt.Errorf("list routes to %s: %w", dst, err)
		}
		for _, r := range routes {
			if r.Gw != nil {
				a, _ := netip.AddrFromSlice(r.Gw)
				out = append(out, a.Unmap())
			}
			for _, nh := range r.MultiPath {
				a, _ := netip.AddrFromSlice(nh.Gw)
				out = append(out, a.Unmap())
			}
		}
		return nil
	})
	return out, err
}

// Close stops bgpd and zebra (SIGTERM, then SIGKILL) and removes the
// pathspace's run directory. Idempotent.
func (f *FRR) Close() error {
	var errs []error
	for i := len(f.procs) - 1; i >= 0; i-- {
		p := f.procs[i]
		if p.Process == nil {
			continue
		}
		_ = p.Process.Signal(syscall.SIGTERM)
		select {
		case <-f.done[i]:
		case <-time.After(frrStopFor):
			_ = p.Process.Kill()
			<-f.done[i]
			errs = append(errs, fmt.Errorf("%s did not stop on SIGTERM", filepath.Base(p.Path)))
		}
	}
	f.procs, f.done = nil, nil
	if f.Pathspace != "" {
		errs = append(errs, os.RemoveAll(filepath.Join(frrRunDir, f.Pathspace)))
	}
	return errors.Join(errs...)
}

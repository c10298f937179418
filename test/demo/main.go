// Command demo plays a flash sale on xlb, on this machine, in network
// namespaces it creates and removes: a router (FRR) spreading the shop's
// VIP over three edge hosts (xlb daemon, XDP, BGP), three L7 hosts (xlb
// decap + xlb proxy), eight app servers and a load generator shaped like
// the shop's users. With the public CLI only it then walks through the
// sale: the steady state, the sale starting (load ×4, the app tier 8 → 32
// servers, a fourth L7 host), faults (an L7 host killed, an app server
// failing, an edge host lost) and the end of the sale (drain and remove
// the extra servers), and prints the load generator's summary with the
// error rate during the sale, p99 per route and the failover times.
//
// Every check prints ✓ or ✗; any ✗ makes the demo exit 1. `sudo make demo`
// builds the binaries and runs it; `make demo KEEP=1` leaves the site up
// until Ctrl-C. Everything is removed at the end, also on failure or
// Ctrl-C. See docs/demo.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/xlbproject/xlb/test/fleet"
	"github.com/xlbproject/xlb/test/shopload"
)

// prefix names every namespace, pin and FRR directory of the demo;
// leftovers of a killed run are removed at start.
const prefix = "xlbdemo"

func main() {
	var bin fleet.Binaries
	flag.StringVar(&bin.XLB, "xlb", "bin/xlb", "path of the xlb binary")
	flag.StringVar(&bin.App, "app", "bin/xlb-demo-app", "path of the demo app server (test/demo/app)")
	flag.StringVar(&bin.Etcd, "etcd", "bin/xlb-demo-etcd", "path of the fleet's etcd (test/fleet/etcd)")
	keep := flag.Bool("keep", false, "leave the site up after the sale, with light load, until Ctrl-C")
	rate := flag.Float64("rate", 6, "steady arrival rate of users per second (the sale offers 4 times as many)")
	limit := flag.Duration("timeout", 6*time.Minute, "abort the sale after this long")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	con := newConsole(os.Stdout)
	d := &demo{con: con, bin: bin, steady: *rate, began: time.Now()}
	err := d.play(ctx, *limit, *keep)
	if err != nil {
		con.endProgress()
		if ctx.Err() != nil {
			err = fmt.Errorf("interrupted: %w", err)
		}
		con.printf("\ndemo stopped: %v", err)
		if d.f != nil && !errors.Is(err, context.Canceled) {
			d.dumpLogs(os.Stderr)
		}
	}
	if cerr := d.teardown(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if err != nil {
		os.Exit(1)
	}
	if !d.verdict() {
		os.Exit(1)
	}
}

// verdict prints how the checks went and reports whether all passed.
func (d *demo) verdict() bool {
	if len(d.con.failed) > 0 {
		d.con.printf("\n%d of %d checks failed:", len(d.con.failed), d.con.checks)
		for _, f := range d.con.failed {
			d.con.printf("  ✗ %s", f)
		}
		return false
	}
	d.con.printf("\nAll %d checks passed in %s.", d.con.checks, time.Since(d.began).Round(time.Second))
	return true
}

type demo struct {
	con    *console
	bin    fleet.Binaries
	f      *fleet.Fleet
	load   *shopload.Load
	steady float64
	began  time.Time
	figs   figures
	// saleStart are the load's totals when the sale began; added are the
	// app servers the sale added.
	saleStart shopload.Totals
	added     []*fleet.App
}

func (d *demo) play(ctx context.Context, limit time.Duration, keep bool) error {
	if os.Geteuid() != 0 {
		return errors.New("the demo creates network namespaces and loads XDP programs: run it as root (sudo make demo)")
	}
	for _, p := range []*string{&d.bin.XLB, &d.bin.App, &d.bin.Etcd} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		if _, err := os.Stat(abs); err != nil {
			return fmt.Errorf("binary %s missing: `make demo` builds it (%w)", abs, err)
		}
		*p = abs
	}
	sale, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	if err := d.sale(sale); err != nil {
		return err
	}
	if keep {
		if !d.verdict() {
			return errors.New("a check failed: not keeping the site up")
		}
		return d.keep(ctx)
	}
	return nil
}

// teardown stops the load and removes the site, and says so.
func (d *demo) teardown() error {
	if d.load != nil {
		d.load.Stop()
		d.load.Wait()
		d.con.endProgress()
	}
	if d.f == nil {
		return nil
	}
	d.con.printf("\nRemoving the site: %d processes, the XDP programs and pins, FRR, namespaces %s-*...", len(d.f.Procs()), prefix)
	err := d.f.Close()
	var left []string
	for _, p := range []string{"/run/netns/" + prefix + "-*", "/sys/fs/bpf/" + prefix + "-*", "/var/run/frr/" + prefix + "-*"} {
		m, _ := filepath.Glob(p)
		left = append(left, m...)
	}
	if err != nil {
		d.con.printf("  removal reported: %v", err)
	}
	d.con.check(len(left) == 0, "nothing left behind (namespaces, pins, FRR directories)%s", listIf(left))
	return nil
}

func listIf(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return fmt.Sprintf(": %v", s)
}

// dumpLogs shows the end of every process's log, for a failed run.
func (d *demo) dumpLogs(w io.Writer) {
	for _, p := range d.f.Procs() {
		if t := p.Tail(8); t != "" {
			fmt.Fprintf(w, "--- %s (last lines of %s)\n%s\n", p.Name, filepath.Base(p.Log), t)
		}
	}
}

// keep leaves the site up with light load and the commands to explore
// it, until Ctrl-C.
func (d *demo) keep(ctx context.Context) error {
	load, err := shopload.Start(ctx, d.loadConfig(d.steady, 1, 8*time.Hour, nil))
	if err != nil {
		return err
	}
	d.load = load
	lb, l7 := d.f.LiveEdges()[0], d.f.L7s[0]
	edgePage := d.forward(ctx, "127.0.0.1:9724", func(ctx context.Context) (net.Conn, error) {
		return lb.Host.DialContext(ctx, "tcp", fleet.MetricsAddr)
	})
	proxyPage := d.forward(ctx, "127.0.0.1:9901", func(ctx context.Context) (net.Conn, error) {
		return l7.Host.DialContext(ctx, "tcp", fmt.Sprintf("%s:%d", l7.Host.Addr4, fleet.AdminPort))
	})
	x := d.bin.XLB
	d.con.step("The site stays up (light load, %.0f users/s) until Ctrl-C", d.steady)
	d.con.printf(`  cd %s
  sudo %s --socket %s status
  sudo %s --socket %s stats --watch
  sudo %s --socket %s backend list %s
  sudo %s --proxy %s pool show checkout
  sudo nsenter --net=%s curl -si http://%s/browse
  status pages: %s (edge host %s), %s (L7 host %s)`,
		d.f.Dir(), x, d.sock(lb.Socket), x, d.sock(lb.Socket), x, d.sock(lb.Socket), d.f.Key,
		x, d.sock(l7.Socket), d.f.Client.NetNSPath(), d.f.VIP, edgePage, lb.Name, proxyPage, l7.Name)
	<-ctx.Done()
	d.con.endProgress()
	return nil
}

// forward serves a root-namespace loopback address that leads into a
// namespace, so a browser on this machine opens a status page; it
// returns the URL, or a note when the address is taken.
func (d *demo) forward(ctx context.Context, addr string, dial func(context.Context) (net.Conn, error)) string {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Sprintf("(%s is taken: %v)", addr, err)
	}
	go func() { <-ctx.Done(); ln.Close() }()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := dial(ctx)
				if err != nil {
					return
				}
				defer up.Close()
				go func() { _, _ = io.Copy(up, c) }()
				_, _ = io.Copy(c, up)
			}()
		}
	}()
	return "http://" + addr + "/"
}

// Command shopload plays virtual shoppers against an HTTP target and prints
// a line of progress per second and a summary at the end. See
// docs/shopload.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/xlbproject/xlb/test/shopload"
)

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "shopload:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	var cfg shopload.Config
	fs := flag.NewFlagSet("shopload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Target, "target", "", "base URL of the shop, e.g. http://10.0.0.1 (required)")
	fs.StringVar(&cfg.Flow, "flow", shopload.FlowShop, "what a user does: shop (browse, products, auth, cart, checkout) or get (GET -path -pages times)")
	fs.StringVar(&cfg.Path, "path", "/", "path of the get flow")
	fs.Float64Var(&cfg.Rate, "rate", 0, "open loop: new users per second at the plateau (Poisson arrivals)")
	fs.IntVar(&cfg.Concurrency, "concurrency", 0, "closed loop: users running at once (excludes -rate)")
	fs.IntVar(&cfg.MaxActive, "max-active", 10000, "open loop: users running at once before arrivals are dropped")
	fs.DurationVar(&cfg.RampUp, "ramp-up", 0, "open loop: time to ramp the rate from 0 to -rate")
	fs.DurationVar(&cfg.RampDown, "ramp-down", 0, "open loop: time to ramp the rate back to 0 at the end of -duration")
	fs.IntVar(&cfg.Users, "users", 0, "stop starting users after this many (0: no bound, then -duration is needed)")
	fs.DurationVar(&cfg.Duration, "duration", 0, "stop starting users after this long (0: no bound, then -users is needed)")
	fs.DurationVar(&cfg.Grace, "grace", 0, "time running users get to finish after -duration (default 5s)")
	fs.IntVar(&cfg.Pages, "pages", 3, "product pages a shopper looks at; requests per user in the get flow")
	fs.DurationVar(&cfg.Think, "think", 0, "mean think time between a user's requests (exponential)")
	fs.IntVar(&cfg.Reopen, "reopen", 0, "a user reopens its connection after every this many requests (0: never)")
	fs.DurationVar(&cfg.Timeout, "timeout", 0, "per-request timeout (default 5s)")
	fs.StringVar(&cfg.AppHeader, "app-header", "X-App", "response header naming the app server")
	fs.StringVar(&cfg.L7Header, "l7-header", "X-Via", "response header naming the L7 host")
	sticky := fs.String("sticky-routes", shopload.RouteCart+","+shopload.RouteCheckout, "routes whose app server must stay the same for a user")
	fs.Uint64Var(&cfg.Seed, "seed", 0, "seed for arrivals and think times (0: from the clock)")
	output := fs.String("o", "text", "summary format: text or json")
	quiet := fs.Bool("q", false, "no progress lines")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *output != "text" && *output != "json" {
		return fmt.Errorf("-o %q: want text or json", *output)
	}
	if cfg.Target == "" {
		return fmt.Errorf("-target is required")
	}
	cfg.StickyRoutes = strings.Split(*sticky, ",")
	if !*quiet {
		cfg.Progress = func(s shopload.Snapshot) { fmt.Fprintln(stderr, s) }
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := shopload.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(sum)
	}
	return sum.WriteText(stdout)
}

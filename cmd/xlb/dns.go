package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/xlbproject/xlb/control/gslb"
	"github.com/xlbproject/xlb/internal/listen"
	"github.com/xlbproject/xlb/internal/statuspage"
)

// dnsOptions are the flags of `xlb dns`.
type dnsOptions struct {
	config    string
	check     bool
	logLevel  string
	logFormat string
}

// geoCloseDelay is how long a replaced GeoIP database stays open after a
// reload: queries that loaded the old generation finish well before.
const geoCloseDelay = 10 * time.Second

func newDNSCmd() *cobra.Command {
	o := dnsOptions{logLevel: "info", logFormat: "text"}
	cmd := &cobra.Command{
		Use:   "dns --config FILE [--check]",
		Short: "Run the authoritative DNS server for global load balancing across sites",
		Long: `Run xlb's authoritative DNS server (UDP and TCP on listen): the zones of the
config are served as configured, and each GSLB name answers with the VIPs of
the site its policy picks among the healthy ones — failover (the first in
order), geo (the nearest to the client, from a MaxMind-format database and
the EDNS Client Subnet option) or weighted. Site health comes from the
sites' xlb daemons (GET /api/status on their metrics listener) or an HTTP
probe, with rise/fall. On the metrics address: /metrics, and the status
page (/, its JSON at /api/status).

SIGHUP reloads the config: validated completely and swapped in whole, or
rejected with every problem while the running config stays (listen and
metrics changes need a restart). ` + "`xlb dns --check --config FILE`" + ` validates
the file and the GeoIP database and exits (0 valid, 1 not). See docs/gslb.md.`,
		Args: noSubcommandArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.config == "" {
				return errors.New("--config is required")
			}
			if err := configExists(o.config, "/etc/xlb/dns.yaml.example", "control/gslb/example.yaml"); err != nil {
				return err
			}
			log, err := newLogger(cmd.ErrOrStderr(), o.logFormat, o.logLevel)
			if err != nil {
				return err
			}
			if o.check {
				return o.runCheck(cmd)
			}
			return o.run(cmd, log)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.config, "config", "c", "", "path to the DNS server's YAML config (required)")
	f.BoolVar(&o.check, "check", false, "validate the config and the GeoIP database and exit; binds nothing")
	addLogFlags(cmd, &o.logLevel, &o.logFormat)
	return cmd
}

// load parses the config and opens its GeoIP database.
func (o *dnsOptions) load() (*gslb.Config, *gslb.Locator, error) {
	cfg, err := gslb.Load(o.config)
	if err != nil {
		return nil, nil, err
	}
	geo, err := cfg.OpenGeoIP()
	if err != nil {
		return nil, nil, err
	}
	return cfg, geo, nil
}

func (o *dnsOptions) runCheck(cmd *cobra.Command) error {
	cfg, geo, err := o.load()
	if err != nil {
		return err
	}
	if geo != nil {
		_ = geo.Close()
	}
	records := 0
	for _, z := range cfg.Zones {
		records += len(z.Records)
	}
	printValid(cmd, o.config, count(len(cfg.Zones), "zone"), count(records, "record"),
		count(len(cfg.Sites), "site"), count(len(cfg.Names), "GSLB name"))
	return nil
}

func (o *dnsOptions) run(cmd *cobra.Command, log *slog.Logger) error {
	// Catch SIGHUP first: its default action kills the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	cfg, geo, err := o.load()
	if err != nil {
		return err
	}
	pc, err := listen.UDP(cfg.Listen, "listen")
	if err != nil {
		return err
	}
	ln, err := listen.TCP(cfg.Listen, "listen")
	if err != nil {
		_ = pc.Close()
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := gslb.NewMetrics(reg)

	parent := cmd.Context()
	if parent == nil {
		parent = context.Background()
	}
	ctx, stop := signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	var serving atomic.Pointer[gslb.Server]
	if cfg.Metrics != "" {
		mln, err := listen.TCP(cfg.Metrics, "metrics")
		if err != nil {
			_ = pc.Close()
			_ = ln.Close()
			return err
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		// The status page, once the server answers (after the first
		// health round).
		statuspage.Mount(mux, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if s := serving.Load(); s != nil {
				s.StatusHandler(version).ServeHTTP(w, r)
				return
			}
			statuspage.WriteError(w, http.StatusServiceUnavailable, errors.New("starting: waiting for the first health round"))
		}))
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = hs.Serve(mln) }()
		defer hs.Close()
	}

	// Health first, and the first round of every site before answering, so
	// that a restart does not answer "all down" for a moment.
	chkCtx, chkStop := context.WithCancel(ctx)
	checker := gslb.NewChecker(cfg.Sites, metrics, log, nil)
	go checker.Run(chkCtx)
	wait := time.NewTimer(firstRoundWait(cfg))
	select {
	case <-checker.Ready():
	case <-wait.C:
		log.Warn("dns: some sites had no health result in time; they count as down until they do")
	case <-ctx.Done():
	}
	wait.Stop()

	srv := gslb.NewServer(cfg, checker, geo, metrics, log)
	serving.Store(srv)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ctx, pc, ln) }()
	log.Info("dns serving", "listen", cfg.Listen, "zones", len(cfg.Zones), "sites", len(cfg.Sites), "names", len(cfg.Names), "metrics", cfg.Metrics)

	for {
		select {
		case err := <-errc:
			chkStop()
			return err
		case <-ctx.Done():
			chkStop()
			err := <-errc
			log.Info("dns stopped")
			return err
		case <-hup:
			next, nextGeo, err := o.load()
			if err != nil {
				log.Error("reload rejected, running config unchanged", "signal", "SIGHUP", "err", err)
				continue
			}
			if next.Listen != cfg.Listen || next.Metrics != cfg.Metrics {
				log.Warn("reload: listen and metrics addresses change on restart only", "listen", cfg.Listen, "metrics", cfg.Metrics)
			}
			nextCtx, nextStop := context.WithCancel(ctx)
			nextChecker := gslb.NewChecker(next.Sites, metrics, log, checker)
			go nextChecker.Run(nextCtx)
			srv.Reload(next, nextChecker, nextGeo)
			chkStop()
			if geo != nil {
				old := geo
				time.AfterFunc(geoCloseDelay, func() { _ = old.Close() })
			}
			cfg, geo, checker, chkStop = next, nextGeo, nextChecker, nextStop
			log.Info("reload on SIGHUP done", "zones", len(cfg.Zones), "sites", len(cfg.Sites), "names", len(cfg.Names))
		}
	}
}

// firstRoundWait bounds the wait for the first health round: the longest
// check timeout, times the daemons checked one after the other.
func firstRoundWait(cfg *gslb.Config) time.Duration {
	d := time.Second
	for _, s := range cfg.Sites {
		if s.Health != nil {
			d = max(d, s.Health.Timeout*time.Duration(max(len(s.Health.Daemons), 1)))
		}
	}
	return d + time.Second
}

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/xlbproject/xlb/l7/config"
	"github.com/xlbproject/xlb/l7/director"
	"github.com/xlbproject/xlb/l7/proxy"
)

// proxyOptions are the flags of `xlb proxy`.
type proxyOptions struct {
	config   string
	metrics  bool
	logLevel string
	log      *slog.Logger // built from logLevel by validate
}

func newProxyCmd() *cobra.Command {
	o := proxyOptions{metrics: true, logLevel: "info"}
	cmd := &cobra.Command{
		Use:   "proxy --config FILE",
		Short: "Run the L7 HTTP proxy",
		Long: `Run the L7 proxy: route each HTTP request to an app-server pool, with
sticky sessions, health checks and Prometheus metrics on the admin listener
(/ready, /healthz, /metrics). Stops gracefully on SIGINT or SIGTERM.

Logs (JSON) go to stderr; the access log, when enabled in the config, goes
to stdout.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(cmd); err != nil {
				return err
			}
			return o.run(cmd)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.config, "config", "c", "", "path to the proxy's YAML config (required)")
	f.BoolVar(&o.metrics, "metrics", o.metrics, "count every request in Prometheus metrics (false only to measure their cost)")
	f.StringVar(&o.logLevel, "log-level", o.logLevel, "log level. One of: debug, info, warn, error")
	return cmd
}

func (o *proxyOptions) validate(cmd *cobra.Command) error {
	if o.config == "" {
		return errors.New("--config is required")
	}
	log, err := newLogger(cmd.ErrOrStderr(), "json", o.logLevel)
	if err != nil {
		return err
	}
	o.log = log
	return nil
}

func (o *proxyOptions) run(cmd *cobra.Command) error {
	log := o.log

	cfg, err := config.Load(o.config)
	if err != nil {
		return err
	}
	dir, err := director.New(cfg, director.WithLogger(log))
	if err != nil {
		return err
	}
	defer dir.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	opts := proxy.Options{
		Log:              log,
		Registerer:       reg,
		Gatherer:         reg,
		NoRequestMetrics: !o.metrics,
	}
	if cfg.AccessLog.Enabled {
		opts.AccessLog = slog.New(slog.NewJSONHandler(cmd.OutOrStdout(), nil))
	}
	p, err := proxy.New(cfg, dir, opts)
	if err != nil {
		return err
	}
	defer p.Close()

	parent := cmd.Context()
	if parent == nil { // Execute rather than ExecuteContext
		parent = context.Background()
	}
	ctx, stop := signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := dir.Start(ctx); err != nil {
		return err
	}
	log.Info("proxy starting", "config", o.config, "routes", len(cfg.Routes), "pools", len(cfg.Pools))
	if err := p.Run(ctx); err != nil {
		return fmt.Errorf("run proxy: %w", err)
	}
	log.Info("proxy stopped")
	return nil
}

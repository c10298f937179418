package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/xlbproject/xlb/internal/etcdstore"
	"github.com/xlbproject/xlb/internal/opsmetrics"
	"github.com/xlbproject/xlb/internal/statuspage"
	"github.com/xlbproject/xlb/l7/admin"
	"github.com/xlbproject/xlb/l7/config"
	"github.com/xlbproject/xlb/l7/director"
	"github.com/xlbproject/xlb/l7/proxy"
)

// proxyOptions are the flags of `xlb proxy`.
type proxyOptions struct {
	config   string
	check    bool
	metrics  bool
	logLevel string
	log      *slog.Logger // built from logLevel by validate
}

func newProxyCmd() *cobra.Command {
	o := proxyOptions{metrics: true, logLevel: "info"}
	cmd := &cobra.Command{
		Use:   "proxy --config FILE [--check]",
		Short: "Run the L7 HTTP proxy",
		Long: `Run the L7 proxy: route each HTTP request to an app-server pool, with
sticky sessions, health checks and Prometheus metrics on the admin listener
(/ready, /healthz, /metrics), and the admin API on admin.socket (` + "`xlb pool`" + `,
` + "`xlb proxy reload`" + `).

SIGHUP reloads the config file (like ` + "`xlb proxy reload`" + `): it is validated
completely and applied in one swap, or rejected with every problem while the
running config stays. SIGINT/SIGTERM stop gracefully: /ready fails at once,
requests are still served for shutdown.drain_delay, then the listeners close
and in-flight requests get shutdown.timeout to finish.
` + "`xlb proxy --check --config FILE`" + ` validates the file and exits (0 valid,
1 not) without binding anything.

Logs (JSON) go to stderr; the access log, when enabled in the config, goes
to stdout.`,
		Args: noSubcommandArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.validate(cmd); err != nil {
				return err
			}
			if o.check {
				return o.runCheck(cmd)
			}
			return o.run(cmd)
		},
	}
	cmd.AddCommand(newProxyReloadCmd())
	f := cmd.Flags()
	f.StringVarP(&o.config, "config", "c", "", "path to the proxy's YAML config (required)")
	f.BoolVar(&o.check, "check", false, "validate the config (and the runtime state file next to it) and exit; binds nothing")
	f.BoolVar(&o.metrics, "metrics", o.metrics, "count every request in Prometheus metrics (false only to measure their cost)")
	addLogFlags(cmd, &o.logLevel, nil) // the proxy logs JSON
	return cmd
}

func (o *proxyOptions) validate(cmd *cobra.Command) error {
	if o.config == "" {
		return errors.New("--config is required")
	}
	if err := configExists(o.config, "/etc/xlb/proxy.yaml.example", "l7/example.yaml"); err != nil {
		return err
	}
	log, err := newLogger(cmd.ErrOrStderr(), "json", o.logLevel)
	if err != nil {
		return err
	}
	o.log = log
	return nil
}

// runCheck is `xlb proxy --check`: the file, the runtime state merged on
// it, and the director built from the result, with no socket opened.
func (o *proxyOptions) runCheck(cmd *cobra.Command) error {
	m, err := admin.Open(o.config, nil)
	if err != nil {
		return err
	}
	cfg := m.Config()
	dir, err := director.New(cfg)
	if err != nil {
		return fmt.Errorf("%s: %w", o.config, err)
	}
	defer dir.Close()
	servers := 0
	for _, p := range cfg.Pools {
		servers += len(p.Servers)
	}
	printValid(cmd, o.config, count(len(cfg.Listeners), "listener"), count(len(cfg.Routes), "route"),
		count(len(cfg.Pools), "pool"), count(servers, "server"))
	return nil
}

func (o *proxyOptions) run(cmd *cobra.Command) error {
	log := o.log
	// Catch SIGHUP before anything else: its default action kills the
	// process, and an init system may send it as soon as the unit starts.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	// The admin socket, then the listeners, before anything with an
	// effect outside this process: a second proxy started beside a
	// running one (same admin.socket, same ports) stops at them, having
	// written no state file, joined no store and probed no app server.
	file, err := config.Load(o.config)
	if err != nil {
		return err
	}
	sock, err := admin.Listen(file.Admin.Socket, file.Admin.Group, log)
	if err != nil {
		return err
	}
	defer sock.Close()
	lns, err := proxy.Listen(file)
	if err != nil {
		return err
	}
	defer lns.Close() // Run's once it runs; closing again does nothing
	m, err := admin.OpenConfig(o.config, file, log)
	if err != nil {
		return err
	}
	defer m.Close()
	cfg := m.Config()
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
	if st := m.Store(); st != nil {
		reg.MustRegister(etcdstore.NewCollector(st))
	}
	reloads, err := opsmetrics.Register(reg, version, time.Now())
	if err != nil {
		return fmt.Errorf("register metrics: %w", err)
	}
	m.RecordReloads(reloads)
	opts := proxy.Options{
		Log:              log,
		Registerer:       reg,
		Gatherer:         reg,
		NoRequestMetrics: !o.metrics,
		// The read-only status page (docs/status-page.md).
		AdminMount: func(mux *http.ServeMux) { statuspage.Mount(mux, m.LiveHandler(reg, version)) },
		Listeners:  lns,
	}
	// The access log writer exists even when the file has it off, so that
	// a reload can switch it on.
	opts.AccessLog = slog.New(slog.NewJSONHandler(cmd.OutOrStdout(), nil))
	p, err := proxy.New(cfg, dir, opts)
	if err != nil {
		return err
	}
	defer p.Close()
	m.Attach(p)

	parent := cmd.Context()
	if parent == nil { // Execute rather than ExecuteContext
		parent = context.Background()
	}
	ctx, stop := signal.NotifyContext(parent, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// Health checks start before anything can reload: a reload hands the
	// running checker over to the next generation.
	if err := dir.Start(ctx); err != nil {
		return err
	}

	// Runtime pool changes made through any L7 host (store.etcd).
	go func() {
		defer recoverLog(log)
		m.Follow(ctx)
	}()

	go func() {
		defer recoverLog(log)
		if err := sock.Serve(ctx, m); err != nil {
			log.Error("admin socket stopped", "err", err)
		}
	}()
	go func() {
		defer recoverLog(log)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				res, err := m.Reload()
				if err != nil {
					log.Error("reload rejected, running config unchanged", "signal", "SIGHUP", "err", err)
					continue
				}
				log.Info("reload on SIGHUP done", "overrides", res.Overrides, "restart_needed", res.Restart)
			}
		}
	}()

	log.Info("proxy starting", "config", o.config, "routes", len(cfg.Routes), "pools", len(cfg.Pools),
		"admin_socket", sock.Path(), "state_file", m.StatePath())
	if err := p.Run(ctx); err != nil {
		return fmt.Errorf("run proxy: %w", err)
	}
	log.Info("proxy stopped")
	return nil
}

func recoverLog(log *slog.Logger) {
	if r := recover(); r != nil {
		log.Error("goroutine panicked", "panic", r)
	}
}

// proxyFlag names the admin socket of the proxy a command talks to.
const proxyFlag = "proxy"

func addProxyFlag(cmd *cobra.Command) {
	cmd.PersistentFlags().String(proxyFlag, config.DefaultAdminSocket, "path of the xlb proxy's admin socket (its admin.socket)")
}

// newProxyClient connects the command to the proxy named by --proxy.
func newProxyClient(cmd *cobra.Command) (*admin.Client, error) {
	path, err := cmd.Flags().GetString(proxyFlag)
	if err != nil {
		return nil, fmt.Errorf("read --%s: %w", proxyFlag, err)
	}
	return admin.NewClient(path, apiTimeout), nil
}

func newProxyReloadCmd() *cobra.Command {
	var output outputFormat
	cmd := &cobra.Command{
		Use:   "reload",
		Short: "Make a running proxy re-read its config file and apply it in one swap",
		Long: `Make the proxy re-read its config file (the same as sending it SIGHUP, but
this waits for the answer). The file is validated completely; a file with an
error is rejected with every file:line problem and the running config stays.
Runtime pool changes (xlb pool) are merged on top; where the file changed a
server since the runtime did, the file's change wins and the answer says so.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newProxyClient(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			res, err := c.Reload(cmd.Context())
			if err != nil {
				if errors.Is(err, admin.ErrInvalid) {
					return fmt.Errorf("config rejected, running config unchanged:\n%w", err)
				}
				return err
			}
			if output == outputJSON {
				return printJSON(cmd.OutOrStdout(), res)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "config reloaded (%s in force)\n", count(res.Overrides, "runtime change"))
			for _, n := range res.Notes {
				fmt.Fprintln(out, n.String())
			}
			for _, r := range res.Restart {
				fmt.Fprintf(out, "%s changed: takes effect when the proxy restarts\n", r)
			}
			return nil
		},
	}
	addProxyFlag(cmd)
	addOutputFlag(cmd, &output)
	return cmd
}

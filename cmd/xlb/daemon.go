package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/xlbproject/xlb/control/config"
	"github.com/xlbproject/xlb/control/daemon"
)

// daemonOptions are the flags of `xlb daemon`.
type daemonOptions struct {
	config    string
	cleanup   bool
	force     bool
	check     bool
	logFormat string
	logLevel  string
}

func newDaemonCmd() *cobra.Command {
	o := daemonOptions{config: "/etc/xlb/xlb.yaml", logFormat: "text", logLevel: "info"}
	cmd := &cobra.Command{
		Use:   "daemon [--config FILE] [--cleanup | --check]",
		Short: "Run the L4 control daemon (health checks, reconcile, API, metrics)",
		Long: `Run the edge host's control daemon: load (or adopt) the XDP balancer,
health-check the L7 hosts, keep every VIP's Maglev table true to the desired
state and health, serve the API on its unix socket and /metrics.

SIGHUP re-reads the config (like ` + "`xlb reload`" + `). SIGINT/SIGTERM stop the
daemon (with bgp: withdraw every route, keep forwarding for
bgp.shutdown_drain, close the sessions); SIGUSR2 stops it for a restart
(routes stay with graceful-restart routers, exit status 75). Neither stops
the data path: the program, links and maps stay pinned and
keep forwarding, and the next ` + "`xlb daemon`" + ` adopts them (hitless restart
and upgrade). ` + "`xlb daemon --cleanup`" + ` removes the pins, which detaches
the program once no daemon holds it. ` + "`xlb daemon --check`" + ` validates the
config and exits (0 valid, 1 not) without touching the kernel, the pins or
the state file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := o.validate(cmd)
			if err != nil {
				return err
			}
			if err := configExists(o.config, "/etc/xlb/xlb.yaml.example", "control/example.yaml"); err != nil {
				return err
			}
			if o.check {
				return o.runCheck(cmd)
			}
			if o.cleanup {
				return o.runCleanup(cmd, log)
			}
			return o.run(cmd.Context(), log)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.config, "config", "c", o.config, "path of the daemon's YAML config")
	f.BoolVar(&o.check, "check", false, "validate the config (syntax, values, interfaces present on this host, the state file, the pin path on bpffs, a next hop for forwarded frames) and exit; changes nothing")
	f.BoolVar(&o.cleanup, "cleanup", false, "remove everything the daemon pinned under bpffs (detaches the program) and exit; refused while a daemon answers on the config's api.socket")
	f.BoolVar(&o.force, "force", false, "with --cleanup: remove the pins even though a daemon is running")
	addLogFlags(cmd, &o.logLevel, &o.logFormat)
	return cmd
}

// runCheck is `xlb daemon --check`: everything a start would refuse before
// it touches the kernel (the file, its values, the interfaces it names and
// their next hops), with nothing loaded, pinned or written.
func (o *daemonOptions) runCheck(cmd *cobra.Command) error {
	cfg, err := config.Load(o.config)
	if err != nil {
		return err
	}
	if err := daemon.CheckHost(cfg); err != nil {
		return err
	}
	backends := 0
	for _, v := range cfg.VIPs {
		backends += len(v.Backends)
	}
	printValid(cmd, cfg.File, count(len(cfg.Interfaces), "interface"), count(len(cfg.VIPs), "VIP"), count(backends, "backend"))
	return nil
}

func (o *daemonOptions) validate(cmd *cobra.Command) (*slog.Logger, error) {
	// Said here rather than with cobra's flag groups, whose message
	// ("if any flags in the group [check cleanup] are set none of the
	// others can be") does not say why.
	if o.check && o.cleanup {
		return nil, errors.New("--check and --cleanup cannot be used together: --check changes nothing, --cleanup removes the pinned data path")
	}
	if o.force && !o.cleanup {
		return nil, errors.New("--force goes with --cleanup (to remove the pins while a daemon runs)")
	}
	return newLogger(cmd.ErrOrStderr(), o.logFormat, o.logLevel)
}

func (o *daemonOptions) runCleanup(cmd *cobra.Command, log *slog.Logger) error {
	cfg, err := config.Load(o.config)
	if err != nil {
		return err
	}
	// The running daemon would go on forwarding from its own handles with
	// nothing pinned: a restart could no longer adopt the data path, and
	// its exit would stop forwarding when nobody expects it.
	if conn, err := net.DialTimeout("unix", cfg.API.Socket, time.Second); err == nil {
		_ = conn.Close()
		if !o.force {
			return fmt.Errorf("a daemon is running on %s: --cleanup would leave it without pins, so a restart could not adopt the data path and its exit would stop forwarding; stop it first (systemctl stop xlb-daemon), or use --force", cfg.API.Socket)
		}
	}
	if _, err := os.Stat(cfg.PinPath); errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(cmd.OutOrStdout(), "nothing pinned under %s: nothing to remove\n", cfg.PinPath)
		return nil
	}
	if err := daemon.Cleanup(cfg); err != nil {
		return err
	}
	log.Info("removed pinned data path", "pin_path", cfg.PinPath)
	fmt.Fprintf(cmd.OutOrStdout(), "removed %s\n", cfg.PinPath)
	return nil
}

func (o *daemonOptions) run(parent context.Context, log *slog.Logger) error {
	if parent == nil {
		parent = context.Background()
	}
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	// SIGTERM/SIGINT stop the host serving (BGP withdraws, drains, then
	// closes); SIGUSR2 is a restart that keeps the routes (graceful
	// restart) for the next daemon. Both leave the data path pinned.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	var restart atomic.Bool
	go func() {
		select {
		case sig := <-sigs:
			restart.Store(sig == syscall.SIGUSR2)
			log.Info("signal received", "signal", sig.String(), "restart", restart.Load())
			cancel()
		case <-ctx.Done():
		}
	}()
	d, err := daemon.New(ctx, daemon.Options{ConfigPath: o.config, Log: log, Version: version})
	if err != nil {
		return err
	}
	defer d.Close()

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				// Reload logs its own outcome; a bad file leaves the
				// running state as it is.
				if err := d.Reload(ctx); err != nil && !errors.Is(err, context.Canceled) {
					log.Error("SIGHUP reload failed", "error", err)
				}
			}
		}
	}()
	if err := d.Run(ctx); err != nil {
		return err
	}
	if err := d.Shutdown(restart.Load()); err != nil {
		log.Error("bgp shutdown", "error", err)
	}
	log.Info("daemon stopped; the data path keeps forwarding (pinned)")
	if restart.Load() {
		return errRestart
	}
	return nil
}

// errRestart ends `xlb daemon` after SIGUSR2 with exitRestart, which the
// systemd unit restarts on (RestartForceExitStatus).
var errRestart = exitError{code: exitRestart, msg: "stopped for a restart (SIGUSR2): start the daemon again within bgp.restart_time"}

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/xlbproject/xlb/control/api"
)

type statsOptions struct {
	watch    bool
	interval time.Duration
	count    int
	output   outputFormat
}

func newStatsCmd() *cobra.Command {
	var o statsOptions
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Show per-VIP and per-backend packet and bit rates",
		Long: `Show per-VIP and per-backend packet and bit rates, new flows per second and
drop/pass reasons, computed from two snapshots of the data path's counters
taken --interval apart (timed by the daemon's clock). --watch repeats until
interrupted or --count reports were printed.`,
		Example: `  xlb stats
  xlb stats --watch --interval 2s
  xlb stats -o json --watch --count 10 > rates.ndjson`,
		Args: cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error {
			if o.interval <= 0 {
				return fmt.Errorf("invalid --interval %s: must be positive", o.interval)
			}
			if o.count < 0 {
				return fmt.Errorf("invalid --count %d: must be ≥ 0", o.count)
			}
			if !o.watch && o.count == 0 {
				o.count = 1
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			c, err := newClient(cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			return runStats(ctx, cmd.OutOrStdout(), c, o)
		},
	}
	cmd.Flags().BoolVarP(&o.watch, "watch", "w", false, "keep printing a report every interval")
	cmd.Flags().DurationVar(&o.interval, "interval", time.Second, "time between the two snapshots of a report")
	cmd.Flags().IntVar(&o.count, "count", 0, "stop after this many reports (default 1, or unlimited with --watch)")
	addOutputFlag(cmd, &o.output)
	addSocketFlag(cmd)
	return cmd
}

func runStats(ctx context.Context, out io.Writer, svc api.Service, o statsOptions) error {
	prev, err := svc.Stats(ctx)
	if err != nil {
		return explain(err)
	}
	t := time.NewTicker(o.interval)
	defer t.Stop()
	for n := 0; o.count == 0 || n < o.count; n++ {
		select {
		case <-ctx.Done():
			// Interrupted while watching: that is how --watch ends.
			return nil
		case <-t.C:
		}
		cur, err := svc.Stats(ctx)
		if err != nil && ctx.Err() != nil {
			// Interrupted (or past the caller's deadline) during a
			// request: the same end of --watch, whatever error the cut
			// request surfaced as.
			return nil
		}
		if err != nil {
			return explain(err)
		}
		r := api.ComputeRates(prev, cur)
		if o.output == outputJSON {
			err = printJSONLine(out, r)
		} else {
			if n > 0 {
				fmt.Fprintln(out)
			}
			err = printRates(out, r)
		}
		if err != nil {
			return err
		}
		prev = cur
	}
	return nil
}

func printRates(out io.Writer, r api.StatsRates) error {
	fmt.Fprintf(out, "%s  (rates over %s)\n", r.To.UTC().Format(time.RFC3339), r.To.Sub(r.From).Round(time.Millisecond))
	w := newTable(out)
	row(w, "VIP / BACKEND", "PPS", "BPS", "NEW FLOWS/S", "PACKETS", "BYTES")
	// ComputeRates keeps r.Current's VIPs and backends, in its order: the
	// totals are at the same indexes.
	for i, v := range r.VIPs {
		cv := r.Current.VIPs[i]
		row(w, v.Key, si(v.PPS), si(v.BPS), si(v.NewFlowsPS), cv.Packets, cv.Bytes)
		for j, b := range v.Backends {
			c := cv.Backends[j]
			row(w, "  "+b.Addr.String(), si(b.PPS), si(b.BPS), "", c.Packets, c.Bytes)
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	// Only reasons that ever counted a packet: the data path reports every
	// counter slot, and a wall of zeros hides the one that matters.
	names := make([]string, 0, len(r.Reasons))
	for k := range r.Reasons {
		if r.Current.Reasons[k] > 0 {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	if len(names) > 0 {
		fmt.Fprintln(out)
		w = newTable(out)
		row(w, "REASON", "PPS", "PACKETS")
		for _, k := range names {
			row(w, k, si(r.Reasons[k]), r.Current.Reasons[k])
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintf(out, "Conntrack: %d hits, %d misses\n", r.Current.ConntrackHits, r.Current.ConntrackMisses)
	return err
}

// Package opsmetrics exports what every xlb process says about itself
// rather than about traffic: which build it is and how its configuration
// reloads went. The daemon and the proxy both register it, so one alert
// rule and one dashboard panel cover both.
package opsmetrics

import (
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names, for tests and documentation.
const (
	BuildInfo         = "xlb_build_info"
	Reloads           = "xlb_config_reloads_total"
	LastSuccess       = "xlb_config_last_reload_success_timestamp_seconds"
	LastReloadSuccess = "xlb_config_last_reload_successful"
	resultOK          = "ok"
	resultErr         = "error"
)

// Config records configuration reloads. A nil *Config records nothing, so
// code that reloads need not care whether metrics are on.
type Config struct {
	reloads    *prometheus.CounterVec
	lastOK     prometheus.Gauge
	successful prometheus.Gauge
}

// Register registers xlb_build_info for version and the reload metrics on
// reg. loaded is when the running configuration was first loaded: it
// counts as the last successful load until a reload happens, so that
// "time since the configuration was last loaded" has a value from start.
func Register(reg prometheus.Registerer, version string, loaded time.Time) (*Config, error) {
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: BuildInfo,
		Help: "Always 1; the labels say which xlb build runs (version, Go version).",
	}, []string{"version", "goversion"})
	info.WithLabelValues(version, runtime.Version()).Set(1)
	c := &Config{
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: Reloads,
			Help: "Configuration reloads (SIGHUP or the reload command), by result (ok, or error: the running configuration stayed).",
		}, []string{"result"}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: LastSuccess,
			Help: "Unix time the running configuration was loaded (at start or by the last successful reload).",
		}),
		successful: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: LastReloadSuccess,
			Help: "1 if the last reload succeeded (or none was tried since start), 0 if it failed and the file on disk is not what runs.",
		}),
	}
	// Both results exist from start, so that increase() sees the first one.
	c.reloads.WithLabelValues(resultOK)
	c.reloads.WithLabelValues(resultErr)
	c.lastOK.Set(unix(loaded))
	c.successful.Set(1)
	for _, col := range []prometheus.Collector{info, c.reloads, c.lastOK, c.successful} {
		if err := reg.Register(col); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Observe records one reload that finished at now with err (nil: applied).
func (c *Config) Observe(err error, now time.Time) {
	if c == nil {
		return
	}
	if err != nil {
		c.reloads.WithLabelValues(resultErr).Inc()
		c.successful.Set(0)
		return
	}
	c.reloads.WithLabelValues(resultOK).Inc()
	c.successful.Set(1)
	c.lastOK.Set(unix(now))
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

package shopload

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"
)

// Flow names what a virtual user does.
const (
	// FlowShop: browse, products, log in, add to cart, check out.
	FlowShop = "shop"
	// FlowGet: GET Config.Path Pages times; for measuring the generator
	// itself against a plain HTTP benchmark.
	FlowGet = "get"
)

// Config describes one run. The zero value is not usable: Target and one
// of Rate or Concurrency must be set, and Users or Duration bounds the run.
type Config struct {
	// Target is the base URL, e.g. http://10.0.0.1:80.
	Target string
	// Flow is FlowShop (default) or FlowGet.
	Flow string
	// Path is the path FlowGet requests.
	Path string

	// Rate is the open-loop arrival rate of new users per second at the
	// plateau (Poisson arrivals). Zero selects closed loop.
	Rate float64
	// Concurrency is the number of users kept running in closed loop
	// (Rate == 0); each one that finishes is replaced at once.
	Concurrency int
	// MaxActive caps users running at once in open loop; an arrival over
	// the cap is dropped and counted, so the arrival rate stays honest.
	MaxActive int
	// Level is the share of Rate offered at the start (0 < Level ≤ 1;
	// 0 means 1); Load.SetLevel moves it while the run goes, e.g. from a
	// quarter of Rate to all of it when a sale starts.
	Level float64
	// RampUp and RampDown shape the open-loop rate linearly from 0 to Rate
	// and back to 0 at the end of Duration.
	RampUp, RampDown time.Duration

	// Users bounds the number of users started; 0 means no bound.
	Users int
	// Duration bounds the time users are started in; 0 means no bound.
	// Users still running at the end get Grace to finish, then are cut.
	Duration time.Duration
	Grace    time.Duration

	// Pages is the number of /products pages a shopper looks at (and the
	// number of GETs in FlowGet).
	Pages int
	// Think is the mean think time between a user's requests
	// (exponentially distributed); 0 means none.
	Think time.Duration
	// Reopen closes a user's idle connections after every Reopen requests,
	// so the next request opens a new one; 0 never reopens.
	Reopen int
	// Timeout bounds each request.
	Timeout time.Duration

	// AppHeader and L7Header name the response headers that identify the
	// app server and the L7 host that answered (the demo app sets X-App
	// and X-Via).
	AppHeader, L7Header string
	// StickyRoutes are the routes whose app server must stay the same for
	// a user (the sticky checkout pool).
	StickyRoutes []string

	// Dial opens connections; nil uses a net.Dialer. test/topo's
	// Host.DialContext runs it from inside a network namespace.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Seed makes arrivals and think times reproducible; 0 picks one.
	Seed uint64
	// Progress gets one line per second while the run goes; nil for none.
	Progress func(Snapshot)
}

func (c *Config) setDefaults() {
	if c.Flow == "" {
		c.Flow = FlowShop
	}
	if c.Level == 0 {
		c.Level = 1
	}
	if c.Path == "" {
		c.Path = "/"
	}
	if c.Pages == 0 {
		c.Pages = 3
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	if c.Grace == 0 {
		c.Grace = 5 * time.Second
	}
	if c.AppHeader == "" {
		c.AppHeader = "X-App"
	}
	if c.L7Header == "" {
		c.L7Header = "X-Via"
	}
	if c.StickyRoutes == nil {
		c.StickyRoutes = []string{RouteCart, RouteCheckout}
	}
	if c.MaxActive == 0 {
		c.MaxActive = 10000
	}
	if c.Dial == nil {
		var d net.Dialer
		c.Dial = d.DialContext
	}
}

func (c *Config) validate() error {
	u, err := url.Parse(c.Target)
	if err != nil {
		return fmt.Errorf("target %q: %w", c.Target, err)
	}
	if u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("target %q: want http://host:port", c.Target)
	}
	if c.Flow != FlowShop && c.Flow != FlowGet {
		return fmt.Errorf("flow %q: want %q or %q", c.Flow, FlowShop, FlowGet)
	}
	if c.Level < 0 || c.Level > 1 {
		return fmt.Errorf("level %v: want a share of the rate in (0, 1]", c.Level)
	}
	if c.Rate < 0 || c.Concurrency < 0 || c.Users < 0 || c.Duration < 0 || c.Pages < 0 || c.Reopen < 0 {
		return errors.New("rate, concurrency, users, duration, pages and reopen must not be negative")
	}
	if c.Rate == 0 && c.Concurrency == 0 {
		return errors.New("set a rate (open loop) or a concurrency (closed loop)")
	}
	if c.Rate > 0 && c.Concurrency > 0 {
		return errors.New("rate and concurrency exclude each other")
	}
	if c.Users == 0 && c.Duration == 0 {
		return errors.New("unbounded run: set users or duration")
	}
	if c.RampUp+c.RampDown > c.Duration && c.Duration > 0 {
		return fmt.Errorf("ramp up %s + ramp down %s exceed duration %s", c.RampUp, c.RampDown, c.Duration)
	}
	if (c.RampUp > 0 || c.RampDown > 0) && c.Duration == 0 {
		return errors.New("ramps need a duration")
	}
	return nil
}

// rateAt is the open-loop arrival rate at elapsed time t.
func (c *Config) rateAt(t time.Duration) float64 {
	r := c.Rate
	if c.RampUp > 0 && t < c.RampUp {
		return r * float64(t) / float64(c.RampUp)
	}
	if c.RampDown > 0 && c.Duration > 0 && t > c.Duration-c.RampDown {
		left := c.Duration - t
		if left < 0 {
			return 0
		}
		return r * float64(left) / float64(c.RampDown)
	}
	return r
}

package gslb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/xlbproject/xlb/control/api"
)

// Checker keeps every site's health: a site with a health section is
// checked every interval, and its state flips after rise consecutive
// good rounds or fall consecutive bad ones. The first round decides at
// once, so a freshly started server answers from facts, not a guess. A
// site without a health section is always up.
type Checker struct {
	log     *slog.Logger
	metrics *Metrics
	client  *http.Client
	mu      sync.Mutex
	sites   map[string]*siteHealth
	pending int           // checked sites without a first round yet
	ready   chan struct{} // closed when pending reaches 0
}

type siteHealth struct {
	site    Site
	checked bool // a first round has completed
	up      bool
	streak  int // consecutive rounds disagreeing with up
	reason  string
	last    string    // the latest round's result, whatever the state
	since   time.Time // of the first round or the last change
	flips   uint64    // changes since this checker (or the one it took over from) started
}

// NewChecker prepares checks for sites; Run starts them. A site that prev
// (the checker of the configuration being replaced, or nil) checked the
// same way keeps its state and counts, so a reload neither forgets a
// down site nor waits for a first round again.
func NewChecker(sites []Site, m *Metrics, log *slog.Logger, prev *Checker) *Checker {
	if m == nil {
		m = NewMetrics(nil)
	}
	c := &Checker{log: log, metrics: m, client: &http.Client{}, sites: map[string]*siteHealth{}, ready: make(chan struct{})}
	for _, s := range sites {
		sh := &siteHealth{site: s, up: s.Health == nil, checked: s.Health == nil}
		if old := prev.lookup(s.Name); old != nil && sameHealth(old.site.Health, s.Health) {
			sh.checked, sh.up, sh.streak, sh.reason, sh.since, sh.flips = old.checked, old.up, old.streak, old.reason, old.since, old.flips
		}
		if !sh.checked {
			c.pending++
		}
		c.sites[s.Name] = sh
		m.siteUp.WithLabelValues(s.Name).Set(b2f(sh.up))
	}
	if c.pending == 0 {
		close(c.ready)
	}
	if prev != nil {
		prev.mu.Lock()
		for name := range prev.sites {
			if c.sites[name] == nil {
				m.siteUp.DeleteLabelValues(name) // removed from the config
			}
		}
		prev.mu.Unlock()
	}
	return c
}

// lookup returns a copy of a site's state; nil on a nil checker.
func (c *Checker) lookup(site string) *siteHealth {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if sh := c.sites[site]; sh != nil {
		cp := *sh
		return &cp
	}
	return nil
}

func sameHealth(a, b *Health) bool {
	if a == nil || b == nil {
		return a == b
	}
	return slices.Equal(a.Daemons, b.Daemons) && a.VIP == b.VIP && a.MinHosts == b.MinHosts && a.BGP == b.BGP && a.Probe == b.Probe
}

// Ready is closed once every checked site has had its first round.
func (c *Checker) Ready() <-chan struct{} { return c.ready }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Up implements HealthView. A site not checked yet is down.
func (c *Checker) Up(site string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	sh := c.sites[site]
	return sh != nil && sh.up
}

// detail fills in what the checker knows of ss.Name beyond up or down.
func (c *Checker) detail(ss *SiteState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sh := c.sites[ss.Name]
	if sh == nil {
		return
	}
	ss.Up, ss.Checked, ss.Reason, ss.LastRound, ss.Since, ss.Transitions = sh.up, sh.checked, sh.reason, sh.last, sh.since, sh.flips
}

// Run checks every site until ctx ends.
func (c *Checker) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, sh := range c.sites {
		if sh.site.Health == nil {
			continue
		}
		wg.Go(func() { c.loop(ctx, sh.site) })
	}
	wg.Wait()
}

func (c *Checker) loop(ctx context.Context, s Site) {
	t := time.NewTicker(s.Health.Interval)
	defer t.Stop()
	for {
		ok, reason := c.check(ctx, s)
		if ctx.Err() != nil {
			return
		}
		c.record(s.Name, ok, reason)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// record applies one round's result with rise/fall.
func (c *Checker) record(site string, ok bool, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sh := c.sites[site]
	h := sh.site.Health
	sh.last = reason
	if !sh.checked {
		sh.checked, sh.up, sh.reason, sh.since = true, ok, reason, time.Now()
		c.log.Info("dns site health", "site", site, "up", ok, "reason", reason)
		c.metrics.siteUp.WithLabelValues(site).Set(b2f(ok))
		if c.pending--; c.pending == 0 {
			close(c.ready)
		}
		return
	}
	if ok == sh.up {
		sh.streak = 0
		return
	}
	sh.streak++
	need := h.Fall
	if ok {
		need = h.Rise
	}
	if sh.streak < need {
		return
	}
	sh.up, sh.streak, sh.reason, sh.since = ok, 0, reason, time.Now()
	sh.flips++
	to := "down"
	if ok {
		to = "up"
	}
	c.log.Warn("dns site health changed", "site", site, "up", ok, "reason", reason, "rounds", need)
	c.metrics.siteUp.WithLabelValues(site).Set(b2f(ok))
	c.metrics.siteFlip.WithLabelValues(site, to).Inc()
}

// check runs one round for s: ok and, when not, why.
func (c *Checker) check(ctx context.Context, s Site) (bool, string) {
	h := s.Health
	if h.Probe != "" {
		if err := c.probe(ctx, h.Probe, h.Timeout); err != nil {
			return false, err.Error()
		}
		return true, "probe passed"
	}
	good := 0
	var last string
	for _, d := range h.Daemons {
		if err := c.daemon(ctx, d, h); err != nil {
			last = err.Error()
			continue
		}
		good++
	}
	if good >= h.MinHosts {
		return true, fmt.Sprintf("%d of %d daemons report %s usable", good, len(h.Daemons), h.VIP)
	}
	return false, fmt.Sprintf("%d of %d daemons report %s usable, %d needed; last: %s", good, len(h.Daemons), h.VIP, h.MinHosts, last)
}

func (c *Checker) get(ctx context.Context, url string, timeout time.Duration) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("request %s: %w", url, err)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("get %s: %w", url, err)
	}
	resp.Body = cancelBody{resp.Body, cancel}
	return resp, nil
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b cancelBody) Close() error { err := b.ReadCloser.Close(); b.cancel(); return err }

func (c *Checker) probe(ctx context.Context, url string, timeout time.Duration) error {
	resp, err := c.get(ctx, url, timeout)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 399 {
		return fmt.Errorf("probe %s: status %d", url, resp.StatusCode)
	}
	return nil
}

// daemon asks one xlb daemon's status page whether it serves h.VIP with
// at least one active backend and, when it speaks BGP, whether the
// routers hear about it: a session established and the VIP's prefix
// announced. A host whose routers do not send it the VIP's packets is
// not serving it, however healthy its backends.
func (c *Checker) daemon(ctx context.Context, base string, h *Health) error {
	url := base + "/api/status"
	resp, err := c.get(ctx, url, h.Timeout)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: status %d", url, resp.StatusCode)
	}
	var st api.LiveStatus
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&st); err != nil {
		return fmt.Errorf("%s: decode: %w", url, err)
	}
	if err := vipUsable(st.VIPs, h.VIP); err != nil {
		return fmt.Errorf("%s: %w", base, err)
	}
	if err := bgpServes(st.BGP, h); err != nil {
		return fmt.Errorf("%s: %w", base, err)
	}
	return nil
}

// vipUsable says why vip is not served with an active backend; nil when
// it is.
func vipUsable(vips []api.LiveVIP, vip netip.Addr) error {
	found := false
	for _, v := range vips {
		if v.Key.Addr != vip {
			continue
		}
		found = true
		if v.Active > 0 {
			return nil
		}
	}
	if !found {
		return fmt.Errorf("daemon does not serve VIP %s", vip)
	}
	return fmt.Errorf("VIP %s has no active backend", vip)
}

// bgpServes says why a daemon's BGP speaker does not bring h.VIP's
// packets to it; nil when it does, or when its BGP state does not count.
func bgpServes(b *api.BGPStatus, h *Health) error {
	switch {
	case h.BGP == BGPIgnore:
		return nil
	case b == nil && h.BGP == BGPRequired:
		return errors.New("daemon does not run BGP (bgp: required)")
	case b == nil:
		return nil
	}
	established := 0
	for _, p := range b.Peers {
		if p.Up {
			established++
		}
	}
	if established == 0 {
		return fmt.Errorf("no established BGP session (%d peers)", len(b.Peers))
	}
	if !slices.Contains(b.Announced, netip.PrefixFrom(h.VIP, h.VIP.BitLen())) {
		why := ""
		if b.Held != "" {
			why = " (" + b.Held + ")"
		}
		return fmt.Errorf("VIP %s is not announced over BGP%s", h.VIP, why)
	}
	return nil
}

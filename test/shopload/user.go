package shopload

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptrace"
	"net/url"
	"slices"
	"strings"
	"time"
)

func userName(id int) string { return fmt.Sprintf("user-%d", id) }

// step is one request a user makes.
type step struct {
	route, method, path string
	form                url.Values
}

// steps is what user id does, in order.
func (c *Config) steps(id int, rng *rand.Rand) []step {
	if c.Flow == FlowGet {
		s := make([]step, c.Pages)
		for i := range s {
			s[i] = step{route: c.Path, method: http.MethodGet, path: c.Path}
		}
		return s
	}
	s := []step{{route: RouteBrowse, method: http.MethodGet, path: "/browse"}}
	for range c.Pages {
		s = append(s, step{route: RouteProducts, method: http.MethodGet, path: fmt.Sprintf("/products/%d", rng.IntN(1000))})
	}
	return append(s,
		step{route: RouteAuth, method: http.MethodPost, path: "/auth", form: url.Values{"user": {userName(id)}}},
		step{route: RouteCart, method: http.MethodPost, path: "/checkout/cart", form: url.Values{"item": {fmt.Sprint(rng.IntN(1000))}}},
		step{route: RouteCheckout, method: http.MethodPost, path: "/checkout"},
	)
}

// user plays one virtual user: its own cookie jar and its own connections,
// which it closes after every Reopen requests so the next one is new.
func (r *runner) user(ctx context.Context, id int, rng *rand.Rand) {
	jar, _ := cookiejar.New(nil) // never fails without options
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := r.cfg.Dial(ctx, network, addr)
			if err == nil {
				r.rec.dialed()
			}
			return conn, err
		},
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport: tr,
		Jar:       jar,
		Timeout:   r.cfg.Timeout,
		// A redirect is an answer of its own; following it would hide it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	var sticky []string // the distinct sticky-route servers, in order seen
	for i, st := range r.cfg.steps(id, rng) {
		if i > 0 && !r.think(ctx, rng) {
			break
		}
		if r.cfg.Reopen > 0 && i > 0 && i%r.cfg.Reopen == 0 {
			tr.CloseIdleConnections()
		}
		res := r.do(ctx, client, st)
		r.rec.add(res)
		if res.app != "" && slices.Contains(r.cfg.StickyRoutes, st.route) && !slices.Contains(sticky, res.app) {
			sticky = append(sticky, res.app)
		}
		if ctx.Err() != nil {
			break
		}
	}
	r.rec.userDone(id, ctx.Err() != nil, sticky)
}

// think waits an exponentially distributed time around Config.Think; false
// if the run ended meanwhile.
func (r *runner) think(ctx context.Context, rng *rand.Rand) bool {
	if r.cfg.Think <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(time.Duration(rng.ExpFloat64() * float64(r.cfg.Think)))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (r *runner) do(ctx context.Context, client *http.Client, st step) result {
	res := result{route: st.route}
	var body io.Reader
	if st.form != nil {
		body = strings.NewReader(st.form.Encode())
	}
	established := false
	trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { established = true }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), st.method, r.base+st.path, body)
	if err != nil {
		res.cause = CauseOther
		return res
	}
	if st.form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	start := time.Now()
	res.start = start
	resp, err := client.Do(req)
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	res.lat = time.Since(start)
	if err != nil {
		res.cause = classify(err)
		if ctx.Err() != nil {
			// The run's end cut it (its deadline reads as a timeout).
			res.cause = CauseCanceled
		}
		res.broken = established && res.cause != CauseCanceled
		if res.cause == CauseOther {
			r.log.Debug("request failed", "route", st.route, "err", err)
		}
		if resp == nil {
			return res
		}
	}
	res.answered = true
	res.app = resp.Header.Get(r.cfg.AppHeader)
	res.l7 = resp.Header.Get(r.cfg.L7Header)
	if res.cause == "" {
		res.cause = causeOfStatus(resp.StatusCode)
	}
	return res
}

package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The admin listener runs on net/http: it serves a handful of requests a
// second to the L4 control loop and Prometheus, and promhttp speaks net/http.

// AdminHandler serves /ready, /healthz and /metrics.
//
//   - /ready is 200 while this host can serve (see Ready) and 503 with the
//     reason otherwise; the L4 control loop takes the host out of the
//     Maglev table on 503. Routes whose pool is empty are listed in the
//     body either way: they answer 503 themselves.
//   - /healthz is 200 while the process serves HTTP at all (liveness).
//   - /metrics is the Prometheus exposition of the configured Gatherer.
//
// Options.AdminMount adds more (the status page at / and /api/status).
func (p *Proxy) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		ok, reason := p.Ready()
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready: %s\n", reason)
		} else {
			fmt.Fprintln(w, "ready")
		}
		for _, e := range p.director().EmptyRoutes() {
			if e.FailingOpen {
				fmt.Fprintf(w, "route %s: pool %s has no healthy server (failing open: sent to servers that fail their checks)\n", e.Route, e.Pool)
				continue
			}
			fmt.Fprintf(w, "route %s: pool %s has no available server (answering 503)\n", e.Route, e.Pool)
		}
		for _, e := range p.director().PartlyOpenRoutes() {
			fmt.Fprintf(w, "route %s: pool %s is failing open: %d of %d servers pass their checks (sent to all of them)\n", e.Route, e.Pool, e.Passing, e.Servers)
		}
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintln(w, "ok")
	})
	if p.gather != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(p.gather, promhttp.HandlerOpts{
			ErrorLog:          slogPrintln{p.log},
			ErrorHandling:     promhttp.ContinueOnError,
			EnableOpenMetrics: true,
		}))
	}
	if p.mount != nil {
		p.mount(mux)
	}
	return mux
}

type slogPrintln struct {
	log interface{ Error(string, ...any) }
}

func (s slogPrintln) Println(v ...any) { s.log.Error("serve metrics", "err", fmt.Sprint(v...)) }

// ServeAdmin serves the admin endpoints on ln until Close.
func (p *Proxy) ServeAdmin(ln net.Listener) error {
	srv := &http.Server{
		Handler:           p.AdminHandler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		_ = ln.Close()
		return errors.New("serve admin: proxy closed")
	}
	p.admin = srv
	p.mu.Unlock()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve admin on %s: %w", ln.Addr(), err)
	}
	return nil
}

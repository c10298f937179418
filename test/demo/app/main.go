// Command app is the demo's stand-in for the shop's app servers: it answers
// every request with its own name, the path and the client address it saw,
// so the demo can show which tier chose what. SIGUSR1 makes it fail: from
// then on it answers 500 to everything, its health check included, as an
// app server with a broken dependency does.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:8080", "address to listen on")
	name := flag.String("name", "app", "name reported in every answer")
	flag.Parse()

	var failing atomic.Bool
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		for range usr1 {
			failing.Store(true)
			slog.Warn("failing from now on: every answer is 500", "name", *name)
		}
	}()

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if failing.Load() {
			http.Error(w, "failing", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		// via is the peer that connected: the L7 host that proxied the
		// request; xff is the client address the proxy saw (DSR keeps it).
		// Both go in headers too, for the load generator to count.
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		w.Header().Set("X-App", *name)
		w.Header().Set("X-Via", host)
		if failing.Load() {
			http.Error(w, "app="+*name+" failing", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "app=%s path=%s via=%s xff=%s\n", *name, r.URL.Path, host, r.Header.Get("X-Forwarded-For"))
	})
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		slog.Error("serve", "addr", *addr, "err", err)
		os.Exit(1)
	}
}

package proxy

import (
	"context"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/xlbproject/xlb/l7/director"
)

// accessLog writes one JSON record per sampled request. Sampling is
// deterministic (every n-th request) so that it needs no random source on
// the hot path; server errors (5xx) and retried requests are always logged
// because they are what an operator looks for. Records are built only for requests that are
// logged, so the unsampled path costs one atomic add.
type accessLog struct {
	log   *slog.Logger
	every uint64 // log one request in every; 0 = only 5xx
	n     atomic.Uint64
}

func newAccessLog(log *slog.Logger, sample float64) *accessLog {
	a := &accessLog{log: log}
	if sample > 0 {
		a.every = uint64(math.Max(1, math.Round(1/math.Min(sample, 1))))
	}
	return a
}

func (a *accessLog) sampled(status int) bool {
	if status >= 500 {
		return true
	}
	return a.every > 0 && a.n.Add(1)%a.every == 0
}

func (a *accessLog) record(ctx *fasthttp.RequestCtx, dec *director.Decision, res result, d time.Duration) {
	if !a.sampled(res.status) && res.tries <= 1 {
		return
	}
	// A streamed body is being closed here: reading ctx.Response.Body()
	// would read the stream.
	if !res.streamed {
		res.bytes = int64(len(ctx.Response.Body()))
	}
	a.write(entryOf(ctx), dec, res, d)
}

// logEntry is the request side of a record, copied out of fasthttp's
// buffers.
type logEntry struct {
	method, host, path, client string
}

func entryOf(ctx *fasthttp.RequestCtx) logEntry {
	return logEntry{
		method: string(ctx.Method()),
		host:   string(ctx.Host()),
		path:   string(ctx.Path()),
		client: remoteAddr(ctx).String(),
	}
}

func (a *accessLog) write(e logEntry, dec *director.Decision, res result, d time.Duration) {
	attrs := []slog.Attr{
		slog.String("method", e.method),
		slog.String("host", e.host),
		slog.String("path", e.path),
		slog.Int("status", res.status),
		slog.Float64("duration_ms", float64(d.Microseconds())/1000),
		slog.String("client", e.client),
		slog.Int64("bytes", res.bytes),
	}
	if dec.Route != nil {
		attrs = append(attrs, slog.String("route", dec.Route.Name), slog.String("pool", dec.Route.Pool))
	}
	if res.server != nil {
		attrs = append(attrs, slog.String("backend", res.server.Name))
	}
	// termination is why the request ended (see docs/proxy-traffic.md);
	// tries counts the servers tried, more than 1 after a retry.
	attrs = append(attrs, slog.String("termination", res.cause.String()), slog.Int("tries", res.tries))
	// The record is fully built from copies here, so a slow or asynchronous
	// slog handler never sees fasthttp's recycled buffers.
	a.log.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs...)
}

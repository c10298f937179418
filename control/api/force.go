package api

import (
	"context"
	"net/http"
)

// The operator's --force travels with the request, not in each method's
// arguments: it is one flag that applies to whatever the request changes,
// the way a dry-run flag would. Client sends it as the query parameter
// force=true; the handler puts it back into the request's context.

type forceKey struct{}

// forceParam is the query parameter that carries --force.
const forceParam = "force"

// WithForce marks ctx's request as forced: the daemon does what it would
// otherwise refuse as dangerous (see Service).
func WithForce(ctx context.Context) context.Context {
	return context.WithValue(ctx, forceKey{}, true)
}

// Forced says whether ctx's request is forced.
func Forced(ctx context.Context) bool {
	f, _ := ctx.Value(forceKey{}).(bool)
	return f
}

// withForceFromQuery is the handler side of WithForce.
func withForceFromQuery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get(forceParam) == "true" {
			r = r.WithContext(WithForce(r.Context()))
		}
		next.ServeHTTP(w, r)
	})
}

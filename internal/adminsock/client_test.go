package adminsock

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var testPeer = Peer{Name: "xlb thing", NotRunning: "is `xlb thing` running?"}

// TestClientRoundTrip serves a JSON API on a real socket made by Listen:
// a body goes in, an answer comes out, an error answer is a StatusError
// with the server's message, and one without a JSON body names the peer.
func TestClientRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "thing.sock")
	s, err := Listen(path, "", "xlb thing")
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/echo", func(w http.ResponseWriter, r *http.Request) {
		var in map[string]int
		require.NoError(t, json.NewDecoder(r.Body).Decode(&in))
		in["n"]++
		_ = json.NewEncoder(w).Encode(in)
	})
	mux.HandleFunc("GET /v1/missing", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "no such thing (list them with `xlb thing list`)"})
	})
	mux.HandleFunc("GET /v1/plain", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(s) }()
	t.Cleanup(func() { _ = srv.Close(); _ = s.Remove() })

	c := NewClient(path, 5*time.Second, testPeer)
	defer c.Close()
	ctx := context.Background()
	var out map[string]int
	require.NoError(t, c.Do(ctx, http.MethodPost, "/v1/echo", map[string]int{"n": 41}, &out))
	assert.Equal(t, 42, out["n"])

	var se *StatusError
	err = c.Do(ctx, http.MethodGet, "/v1/missing", nil, nil)
	require.ErrorAs(t, err, &se)
	assert.Equal(t, http.StatusNotFound, se.Code)
	assert.Equal(t, "no such thing (list them with `xlb thing list`)", err.Error())

	err = c.Do(ctx, http.MethodGet, "/v1/plain", nil, nil)
	require.ErrorAs(t, err, &se)
	assert.Equal(t, "xlb thing answered 500 Internal Server Error: boom", err.Error())
}

// TestClientUnreachable: nothing on the socket is ErrUnreachable with the
// peer's own hint, not the HTTP client's URL-wrapped text.
func TestClientUnreachable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none.sock")
	c := NewClient(path, time.Second, testPeer)
	err := c.Do(context.Background(), http.MethodGet, "/v1/x", nil, nil)
	require.ErrorIs(t, err, ErrUnreachable)
	assert.NotErrorIs(t, err, ErrPermission)
	assert.Contains(t, err.Error(), "cannot reach xlb thing at "+path+": is `xlb thing` running?")
	assert.NotContains(t, err.Error(), "http://")
}

// TestSentinelsRoundTrip: a server's tagged error answers with its
// sentinel's status, keeps its own message, and the client's StatusError
// for that status unwraps to the same sentinel.
func TestSentinelsRoundTrip(t *testing.T) {
	cause := errors.New("disk full")
	for _, kind := range []error{ErrNotFound, ErrInvalid, ErrConflict, ErrUnavailable} {
		err := Errorf(kind, "vip %s: %w", "10.0.0.1:80/tcp", cause)
		assert.Equal(t, "vip 10.0.0.1:80/tcp: disk full", err.Error())
		assert.ErrorIs(t, err, kind)
		assert.ErrorIs(t, err, cause)
		code := StatusOf(err)
		assert.NotEqual(t, http.StatusInternalServerError, code, "%v", kind)
		assert.ErrorIs(t, &StatusError{Code: code, Message: err.Error()}, kind)
	}
	assert.Equal(t, http.StatusInternalServerError, StatusOf(cause))
	assert.NoError(t, errors.Unwrap(&StatusError{Code: http.StatusInternalServerError}))
}

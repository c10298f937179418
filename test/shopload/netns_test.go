package shopload

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/test/topo"
)

// Users run from inside a test namespace through Host.DialContext: the
// server, in another namespace, sees every request come from the client
// host's address.
func TestFromNamespace(t *testing.T) {
	tp := topo.NewT(t, topo.Options{})
	client, err := tp.AddHost(topo.HostConfig{Name: "client"})
	require.NoError(t, err)
	app, err := tp.AddHost(topo.HostConfig{Name: "app"})
	require.NoError(t, err)

	ln, err := app.Listen("tcp", net.JoinHostPort(app.Addr4.String(), "0"))
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		w.Header().Set("X-App", "app-1")
		w.Header().Set("X-Via", host)
	}))
	srv.Listener = ln
	srv.Start()
	defer srv.Close()

	sum, err := Run(context.Background(), Config{Target: fmt.Sprintf("http://%s", ln.Addr()), Concurrency: 2, Users: 6,
		Reopen: 3, Dial: client.DialContext, Seed: 12})
	require.NoError(t, err)
	assert.Equal(t, 6*7, sum.Requests)
	assert.Empty(t, sum.Errors)
	assert.Equal(t, map[string]int{client.Addr4.String(): 6 * 7}, sum.L7Hosts, "every request came from the client namespace")
	assert.Equal(t, 6*3, sum.Conns.Opened, "reopen 3 over 7 requests: 3 connections per user")
}

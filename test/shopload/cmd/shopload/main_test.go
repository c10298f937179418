package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/test/shopload"
)

func TestJSONSummary(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-App", "app-1")
	}))
	defer srv.Close()
	var stdout, stderr strings.Builder
	require.NoError(t, run([]string{"-target", srv.URL, "-concurrency", "2", "-users", "4", "-o", "json", "-q"}, &stdout, &stderr))
	var sum shopload.Summary
	require.NoError(t, json.Unmarshal([]byte(stdout.String()), &sum), stdout.String())
	assert.Equal(t, 4*7, sum.Requests)
	assert.Equal(t, map[string]int{"app-1": 4 * 7}, sum.AppServers)
	assert.Empty(t, stderr.String())
}

func TestBadInvocation(t *testing.T) {
	for name, args := range map[string][]string{
		"typo flag":    {"-target", "http://127.0.0.1:1", "-usres", "3"},
		"no target":    {"-rate", "1", "-users", "1"},
		"bad output":   {"-target", "http://127.0.0.1:1", "-rate", "1", "-users", "1", "-o", "yaml"},
		"extra arg":    {"-target", "http://127.0.0.1:1", "-rate", "1", "-users", "1", "now"},
		"unbounded":    {"-target", "http://127.0.0.1:1", "-rate", "1"},
		"both loops":   {"-target", "http://127.0.0.1:1", "-rate", "1", "-concurrency", "1", "-users", "1"},
		"ramps > time": {"-target", "http://127.0.0.1:1", "-rate", "1", "-duration", "1s", "-ramp-up", "2s"},
	} {
		var stdout, stderr strings.Builder
		assert.Error(t, run(args, &stdout, &stderr), name)
		assert.Empty(t, stdout.String(), name)
	}
}

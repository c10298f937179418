package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/xlbproject/xlb/control/api"
)

func TestPrintStore(t *testing.T) {
	now := time.Date(2026, 12, 1, 17, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		s    api.StoreStatus
		want string
	}{
		{"file says nothing", api.StoreStatus{Kind: "file", Up: true}, ""},
		{"etcd up", api.StoreStatus{Kind: "etcd", Endpoints: []string{"https://10.0.0.5:2379"}, Prefix: "/xlb/edge/", Up: true, Revision: 42},
			"Store:       etcd https://10.0.0.5:2379 prefix /xlb/edge/, up (revision 42)\n"},
		{"etcd down", api.StoreStatus{Kind: "etcd", Endpoints: []string{"https://10.0.0.5:2379"}, Prefix: "/xlb/edge/",
			Since: now.Add(-90 * time.Second), Error: "context deadline exceeded", Revision: 42},
			"Store:       etcd https://10.0.0.5:2379 prefix /xlb/edge/, UNREACHABLE since 2026-12-01T16:58:30Z (" + ago(now, now.Add(-90*time.Second)) +
				"): changes are refused, the data path keeps its last state (revision 42): context deadline exceeded\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			printStore(&b, now, tt.s)
			assert.Equal(t, tt.want, b.String())
		})
	}
}

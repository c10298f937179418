package daemon

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/control/api"
	"github.com/xlbproject/xlb/control/config"
)

// TestRestartNeeded: a reload that changes what only a start applies is
// refused naming each key and what to run; --cleanup is asked for only
// when a pinned map's size changed.
func TestRestartNeeded(t *testing.T) {
	base := func() *config.Config {
		c := &config.Config{File: "/etc/xlb/xlb.yaml"}
		c.Dataplane = config.Dataplane{MaxVIPs: 512, MaxBackends: 4096, ConntrackEntries: 262144, TableSize: 65537,
			UDPIdleTimeout: 30 * time.Second, TCPCloseTimeout: 10 * time.Second}
		c.API.Socket = "/run/xlb/xlb.sock"
		return c
	}
	tests := []struct {
		name    string
		change  func(*config.Config)
		want    string
		cleanup bool
	}{
		{name: "nothing", change: func(*config.Config) {}},
		{name: "a timeout", change: func(c *config.Config) { c.Dataplane.UDPIdleTimeout = time.Minute },
			want: "/etc/xlb/xlb.yaml: dataplane.udp_idle_timeout changed, which only a start of the daemon applies: " +
				"restart it (systemctl restart xlb-daemon; forwarding continues through a restart)"},
		{name: "a map size and the api", change: func(c *config.Config) { c.Dataplane.ConntrackEntries = 4096; c.API.Socket = "/run/x.sock" },
			want: "/etc/xlb/xlb.yaml: dataplane.conntrack_entries, api changed, which only a start of the daemon applies: " +
				"restart it (systemctl restart xlb-daemon; forwarding continues through a restart); dataplane.conntrack_entries is the size " +
				"of a pinned map, so stop the daemon and run `xlb daemon --cleanup --config /etc/xlb/xlb.yaml` before the start, which stops forwarding until then",
			cleanup: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next := base()
			tt.change(next)
			err := restartNeeded(base(), next)
			if tt.want == "" {
				assert.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, api.ErrInvalid)
			assert.Equal(t, tt.want, err.Error())
			assert.Equal(t, tt.cleanup, strings.Contains(err.Error(), "--cleanup"))
		})
	}
}

// TestDataplaneKeysNameEveryField: each dataplane setting is named by its
// key, so a new field cannot be reported as a bare "dataplane".
func TestDataplaneKeysNameEveryField(t *testing.T) {
	typ := reflect.TypeOf(config.Dataplane{})
	a := config.Dataplane{}
	for i := range typ.NumField() {
		b := config.Dataplane{}
		f := reflect.ValueOf(&b).Elem().Field(i)
		switch f.Kind() {
		case reflect.Int, reflect.Int64:
			f.SetInt(1)
		case reflect.Uint16, reflect.Uint32:
			f.SetUint(1)
		case reflect.Slice:
			f.Set(reflect.ValueOf([]byte{2, 0, 0, 0, 0, 1}))
		default:
			t.Fatalf("field %s of kind %s: teach this test to change it", typ.Field(i).Name, f.Kind())
		}
		keys := dataplaneKeys(a, b)
		require.Len(t, keys, 1, typ.Field(i).Name)
		assert.NotEqual(t, "dataplane", keys[0], "field %s has no key in dataplaneKeys", typ.Field(i).Name)
	}
}

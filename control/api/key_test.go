package api

import (
	"encoding/json"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseVIPKey(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    VIPKey
		wantStr string // canonical form, "" = same as in
		wantErr string
	}{
		{name: "ipv4 tcp", in: "10.0.0.1:80/tcp", want: VIPKey{netip.MustParseAddr("10.0.0.1"), 80, "tcp"}},
		{name: "ipv6 tcp", in: "[2001:db8::1]:443/tcp", want: VIPKey{netip.MustParseAddr("2001:db8::1"), 443, "tcp"}},
		{name: "any port udp", in: "10.0.0.1:*/udp", want: VIPKey{netip.MustParseAddr("10.0.0.1"), 0, "udp"}},
		{name: "port zero is any", in: "10.0.0.1:0/udp", want: VIPKey{netip.MustParseAddr("10.0.0.1"), 0, "udp"}, wantStr: "10.0.0.1:*/udp"},
		{name: "proto defaults to tcp", in: "10.0.0.1:80", want: VIPKey{netip.MustParseAddr("10.0.0.1"), 80, "tcp"}, wantStr: "10.0.0.1:80/tcp"},
		{name: "proto case folded", in: "10.0.0.1:53/UDP", want: VIPKey{netip.MustParseAddr("10.0.0.1"), 53, "udp"}, wantStr: "10.0.0.1:53/udp"},
		{name: "ipv6 canonicalised", in: "[2001:DB8:0::1]:443/tcp", want: VIPKey{netip.MustParseAddr("2001:db8::1"), 443, "tcp"}, wantStr: "[2001:db8::1]:443/tcp"},
		{name: "empty", in: "", wantErr: "missing :PORT"},
		{name: "no port", in: "10.0.0.1/tcp", wantErr: "missing :PORT"},
		{name: "empty port", in: "10.0.0.1:/tcp", wantErr: "missing :PORT"},
		{name: "bad address", in: "10.0.0.300:80/tcp", wantErr: `invalid IP address "10.0.0.300"`},
		{name: "hostname", in: "shop.example:80/tcp", wantErr: `invalid IP address "shop.example"`},
		{name: "bad port", in: "10.0.0.1:http/tcp", wantErr: `port "http" is not a number`},
		{name: "port too big", in: "10.0.0.1:65536/tcp", wantErr: `port "65536" is not a number`},
		{name: "bad proto", in: "10.0.0.1:80/sctp", wantErr: `protocol "sctp": use tcp or udp`},
		{name: "unbracketed ipv6", in: "2001:db8::1:443/tcp", wantErr: "must be in brackets"},
		{name: "unclosed bracket", in: "[2001:db8::1:443/tcp", wantErr: "missing ]"},
		{name: "bracket without port", in: "[2001:db8::1]/tcp", wantErr: "missing :PORT after [2001:db8::1]"},
		{name: "zone", in: "[fe80::1%eth0]:80/tcp", wantErr: "zone"},
		{name: "unspecified", in: "0.0.0.0:80/tcp", wantErr: "unspecified address"},
		{name: "multicast", in: "224.0.0.1:80/udp", wantErr: "multicast address"},
		{name: "mapped", in: "[::ffff:10.0.0.1]:80/tcp", wantErr: "write it as 10.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseVIPKey(tt.in)
			if tt.wantErr != "" {
				assert.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			wantStr := tt.wantStr
			if wantStr == "" {
				wantStr = tt.in
			}
			assert.Equal(t, wantStr, got.String())
		})
	}
}

func TestVIPKeyJSON(t *testing.T) {
	k := VIPKey{netip.MustParseAddr("2001:db8::1"), 443, "tcp"}
	b, err := json.Marshal(map[string]any{"key": k, "m": map[VIPKey]int{k: 1}})
	require.NoError(t, err)
	assert.JSONEq(t, `{"key":"[2001:db8::1]:443/tcp","m":{"[2001:db8::1]:443/tcp":1}}`, string(b))

	var back struct{ Key VIPKey }
	require.NoError(t, json.Unmarshal([]byte(`{"Key":"[2001:db8::1]:443/tcp"}`), &back))
	assert.Equal(t, k, back.Key)
	assert.ErrorContains(t, json.Unmarshal([]byte(`{"Key":"nope"}`), &back), "parse vip")
}

func TestParseFlowSource(t *testing.T) {
	tests := []struct {
		in      string
		want    netip.AddrPort
		wantErr string
	}{
		{in: "192.0.2.7:40000", want: netip.MustParseAddrPort("192.0.2.7:40000")},
		{in: "[2001:db8::7]:40000", want: netip.MustParseAddrPort("[2001:db8::7]:40000")},
		{in: "192.0.2.7", wantErr: "missing :PORT"},
		{in: "192.0.2.7:*", wantErr: "not a number"},
		{in: "x:1", wantErr: "invalid IP address"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseFlowSource(tt.in)
			if tt.wantErr != "" {
				assert.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseBackendAddr(t *testing.T) {
	tests := []struct{ in, wantErr string }{
		{in: "10.0.1.1"},
		{in: "2001:db8::11"},
		{in: "10.0.1.1:80", wantErr: "invalid IP address"},
		{in: "::", wantErr: "unspecified"},
		{in: "ff02::1", wantErr: "multicast"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			a, err := ParseBackendAddr(tt.in)
			if tt.wantErr != "" {
				assert.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, netip.MustParseAddr(tt.in), a)
		})
	}
}

func TestVIPSpecValidate(t *testing.T) {
	key := VIPKey{netip.MustParseAddr("10.0.0.1"), 80, "tcp"}
	b1 := BackendSpec{Addr: netip.MustParseAddr("10.0.1.1")}
	tests := []struct {
		name    string
		spec    VIPSpec
		wantErr string
	}{
		{name: "minimal", spec: VIPSpec{Key: key}},
		{name: "full", spec: VIPSpec{Key: key, Mode: ModeL2DSR, TableSize: 251, Backends: []BackendSpec{b1}}},
		{name: "zero key", spec: VIPSpec{}, wantErr: "vip address: address is missing"},
		{name: "bad mode", spec: VIPSpec{Key: key, Mode: "gre"}, wantErr: `forwarding mode "gre"`},
		{name: "dup backend", spec: VIPSpec{Key: key, Backends: []BackendSpec{b1, b1}}, wantErr: "backend 10.0.1.1 listed twice"},
		{name: "bad backend", spec: VIPSpec{Key: key, Backends: []BackendSpec{{}}}, wantErr: "backend address: address is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.spec.Validate()
			if tt.wantErr != "" {
				assert.ErrorContains(t, err, tt.wantErr)
				return
			}
			assert.NoError(t, err)
		})
	}
}

// FuzzParseVIPKey checks that whatever parses formats back to a string that
// parses to the same key, and that parsing never panics.
func FuzzParseVIPKey(f *testing.F) {
	for _, s := range []string{"10.0.0.1:80/tcp", "[2001:db8::1]:443/tcp", "10.0.0.1:*/udp", "[::1]:1", "1.2.3.4:0", "[", ":/", "a:b/c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseVIPKey(s)
		if err != nil {
			return
		}
		require.NoError(t, k.Validate())
		again, err := ParseVIPKey(k.String())
		require.NoError(t, err, "reparse %q (from %q)", k.String(), s)
		require.Equal(t, k, again)
	})
}

// FuzzParseFlowSource checks that a parsed source formats back to itself.
func FuzzParseFlowSource(f *testing.F) {
	for _, s := range []string{"192.0.2.7:40000", "[2001:db8::7]:1", "1.2.3.4:", "[::]:0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ap, err := ParseFlowSource(s)
		if err != nil {
			return
		}
		again, err := ParseFlowSource(ap.String())
		require.NoError(t, err, "reparse %q (from %q)", ap.String(), s)
		require.Equal(t, ap, again)
	})
}

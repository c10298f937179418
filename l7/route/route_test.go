package route_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/l7/config"
	"github.com/xlbproject/xlb/l7/route"
)

type headers map[string]string

func (h headers) Peek(name string) []byte { return []byte(h[http.CanonicalHeaderKey(name)]) }

func testTable(t *testing.T) *route.Table {
	t.Helper()
	routes := []config.Route{
		{Name: "any", Pool: "p"},
		{Name: "checkout", Pool: "p", Match: config.Match{PathPrefix: "/checkout"}},
		{Name: "checkout-pay", Pool: "p", Match: config.Match{PathPrefix: "/checkout/pay/"}},
		{Name: "checkout-exact", Pool: "p", Match: config.Match{Path: "/checkout"}},
		{Name: "checkout-post", Pool: "p", Match: config.Match{PathPrefix: "/checkout", Methods: []string{"POST"}}},
		{Name: "checkout-beta", Pool: "p", Match: config.Match{PathPrefix: "/checkout", Headers: map[string]string{"X-Beta": "1"}}},
		{Name: "browse", Pool: "p", Match: config.Match{PathPrefix: "/browse", Methods: []string{"GET", "HEAD"}}},
		{Name: "api-host", Pool: "p", Match: config.Match{Host: "api.shop.test"}},
		{Name: "wild-host", Pool: "p", Match: config.Match{Host: "*.shop.test"}},
		{Name: "wild-host-auth", Pool: "p", Match: config.Match{Host: "*.shop.test", PathPrefix: "/auth"}},
		{Name: "canary", Pool: "p", Match: config.Match{PathPrefix: "/auth", Headers: map[string]string{"X-Canary": ""}}},
	}
	tbl, err := route.NewTable(routes)
	require.NoError(t, err)
	return tbl
}

func TestMatch(t *testing.T) {
	tbl := testTable(t)
	tests := []struct {
		name, host, path, method string
		hdr                      headers
		want                     string
	}{
		{"fallback", "shop.test", "/", "GET", nil, "any"},
		{"prefix", "shop.test", "/checkout/cart", "GET", nil, "checkout"},
		{"exact beats prefix", "shop.test", "/checkout", "GET", nil, "checkout-exact"},
		{"longer prefix wins", "shop.test", "/checkout/pay/now", "GET", nil, "checkout-pay"},
		{"prefix with trailing slash covers the bare directory", "shop.test", "/checkout/pay", "GET", nil, "checkout-pay"},
		{"prefix is segment aware", "shop.test", "/checkoutfoo", "GET", nil, "any"},
		{"header beats method", "shop.test", "/checkout/x", "POST", headers{"X-Beta": "1"}, "checkout-beta"},
		{"method", "shop.test", "/checkout/x", "POST", nil, "checkout-post"},
		{"header value must match", "shop.test", "/checkout/x", "GET", headers{"X-Beta": "2"}, "checkout"},
		{"method mismatch falls through", "shop.test", "/browse/shoes", "POST", nil, "any"},
		{"method match", "shop.test", "/browse/shoes", "HEAD", nil, "browse"},
		{"exact host beats everything", "API.shop.test:8443", "/checkout", "GET", nil, "api-host"},
		{"wildcard host", "www.shop.test", "/checkout", "GET", nil, "wild-host"},
		{"wildcard host with path", "www.shop.test", "/auth/login", "GET", nil, "wild-host-auth"},
		{"wildcard does not match apex", "shop.test", "/auth/login", "GET", nil, "any"},
		{"header presence", "shop.test", "/auth/login", "GET", headers{"X-Canary": "yes"}, "canary"},
		{"ipv6 host with port", "[::1]:80", "/checkout/a", "GET", nil, "checkout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.hdr
			if h == nil {
				h = headers{}
			}
			r := tbl.Match([]byte(tt.host), []byte(tt.path), []byte(tt.method), h)
			require.NotNil(t, r)
			assert.Equal(t, tt.want, r.Name)
		})
	}
}

func TestMatchNone(t *testing.T) {
	tbl, err := route.NewTable([]config.Route{{Name: "c", Pool: "p", Match: config.Match{PathPrefix: "/checkout"}}})
	require.NoError(t, err)
	assert.Nil(t, tbl.Match([]byte("h"), []byte("/browse"), []byte("GET"), headers{}))
	assert.Equal(t, 0, tbl.Routes()[0].Index)
}

func TestCleanPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/", "/"},
		{"", "/"},
		{"/checkout/pay", "/checkout/pay"},
		{"/checkout/", "/checkout/"},
		{"checkout", "/checkout"},
		{"//checkout///pay", "/checkout/pay"},
		{"/browse/../checkout", "/checkout"},
		{"/./checkout/.", "/checkout/"},
		{"/../../checkout", "/checkout"},
		{"/a/b/..", "/a/"},
		{"/checkout?x=/../auth", "/checkout"},
		{"/checkout#frag", "/checkout"},
		{"/%2e%2e/auth", "/auth"},
		{"/browse/%2E%2E/auth", "/auth"},
		{"/%63heckout", "/checkout"},
		{"/a%2Fb", "/a%2Fb"},
		{"/a%2", "/a%252"},
		{"/a%zz", "/a%25zz"},
		{"/..a/b", "/..a/b"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var buf [64]byte
			assert.Equal(t, tt.want, string(route.CleanPath(buf[:0], []byte(tt.in))))
		})
	}
}

func TestCleanPathNoAlloc(t *testing.T) {
	in := []byte("/browse/../checkout//pay")
	clean := []byte("/checkout/pay")
	allocs := testing.AllocsPerRun(100, func() {
		var buf [128]byte
		_ = route.CleanPath(buf[:0], in)
		_ = route.CleanPath(buf[:0], clean)
	})
	assert.Zero(t, allocs)
}

func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"/", "/a/../b", "//x/./y/", "/%2e%2e/", "a?b", "/..", "/%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var buf [64]byte
		out := route.CleanPath(buf[:0], []byte(in))
		if len(out) == 0 || out[0] != '/' {
			t.Fatalf("CleanPath(%q) = %q: not absolute", in, out)
		}
		again := route.CleanPath(nil, out)
		if string(again) != string(out) {
			t.Fatalf("CleanPath not idempotent: %q -> %q -> %q", in, out, again)
		}
		for _, seg := range splitSegments(string(out)) {
			if seg == "." || seg == ".." {
				t.Fatalf("CleanPath(%q) = %q keeps a dot segment", in, out)
			}
		}
	})
}

func splitSegments(p string) []string {
	var segs []string
	start := 1
	for i := 1; i <= len(p); i++ {
		if i == len(p) || p[i] == '/' {
			segs = append(segs, p[start:i])
			start = i + 1
		}
	}
	return segs
}

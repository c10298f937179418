package sticky_test

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/xlbproject/xlb/l7/sticky"
)

var (
	keyOld = sticky.Key{ID: 1, Secret: []byte("old-secret-0123456789abcdef")}
	keyNew = sticky.Key{ID: 2, Secret: []byte("new-secret-0123456789abcdef")}
	t0     = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
)

func mustRing(t testing.TB, keys ...sticky.Key) *sticky.Ring {
	t.Helper()
	r, err := sticky.NewRing(keys)
	require.NoError(t, err)
	return r
}

func TestRoundTrip(t *testing.T) {
	r := mustRing(t, keyOld)
	v := r.AppendValue(nil, 0xdeadbeefcafe, t0)
	assert.Len(t, v, 46)
	server, issued, err := r.Decode(v, t0.Add(time.Minute), time.Hour)
	require.NoError(t, err)
	assert.Equal(t, uint64(0xdeadbeefcafe), server)
	assert.True(t, issued.Equal(t0))
}

func TestDecodeRejects(t *testing.T) {
	signer := mustRing(t, keyOld)
	good := string(signer.AppendValue(nil, 42, t0))
	raw, err := base64.RawURLEncoding.DecodeString(good)
	require.NoError(t, err)
	flip := func(i int) string {
		b := append([]byte(nil), raw...)
		b[i] ^= 1
		return base64.RawURLEncoding.EncodeToString(b)
	}
	otherKey := string(mustRing(t, sticky.Key{ID: 1, Secret: []byte("attacker-secret-0123456789")}).AppendValue(nil, 42, t0))
	tests := []struct {
		name   string
		value  string
		now    time.Time
		want   error
		reason sticky.Reason
	}{
		{"empty", "", t0, sticky.ErrMalformed, sticky.ReasonMalformed},
		{"short", good[:45], t0, sticky.ErrMalformed, sticky.ReasonMalformed},
		{"not base64", strings.Repeat("!", 46), t0, sticky.ErrMalformed, sticky.ReasonMalformed},
		{"bad version", flip(0), t0, sticky.ErrMalformed, sticky.ReasonMalformed},
		{"unknown key", flip(1), t0, sticky.ErrUnknownKey, sticky.ReasonUnknownKey},
		{"tampered time", flip(5), t0, sticky.ErrSignature, sticky.ReasonSignature},
		{"tampered server", flip(17), t0, sticky.ErrSignature, sticky.ReasonSignature},
		{"tampered mac", flip(30), t0, sticky.ErrSignature, sticky.ReasonSignature},
		{"forged with other secret", otherKey, t0, sticky.ErrSignature, sticky.ReasonSignature},
		{"expired", good, t0.Add(time.Hour + time.Second), sticky.ErrExpired, sticky.ReasonExpired},
		{"from the future", good, t0.Add(-time.Hour), sticky.ErrExpired, sticky.ReasonExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := signer.Decode([]byte(tt.value), tt.now, time.Hour)
			require.ErrorIs(t, err, tt.want)
			assert.Equal(t, tt.reason, sticky.ReasonOf(err))
		})
	}
}

func TestKeyRotation(t *testing.T) {
	before := mustRing(t, keyOld)         // only the old key
	during := mustRing(t, keyNew, keyOld) // new signs, old verifies
	after := mustRing(t, keyNew)          // old retired
	oldCookie := before.AppendValue(nil, 7, t0)
	newCookie := during.AppendValue(nil, 7, t0)

	_, _, err := during.Decode(oldCookie, t0, time.Hour)
	assert.NoError(t, err, "a cookie signed before the rotation still verifies")
	_, _, err = during.Decode(newCookie, t0, time.Hour)
	assert.NoError(t, err)
	_, _, err = after.Decode(newCookie, t0, time.Hour)
	assert.NoError(t, err)
	_, _, err = after.Decode(oldCookie, t0, time.Hour)
	assert.ErrorIs(t, err, sticky.ErrUnknownKey, "a retired key no longer verifies")
	_, _, err = before.Decode(newCookie, t0, time.Hour)
	assert.ErrorIs(t, err, sticky.ErrUnknownKey)
}

func TestSetCookie(t *testing.T) {
	r := mustRing(t, keyOld)
	tests := []struct {
		name   string
		secure bool
		suffix string
	}{
		{"plain", false, "; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax"},
		{"tls", true, "; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax; Secure"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(r.AppendSetCookie(nil, "xlb_co", 9, t0, time.Hour, tt.secure))
			require.True(t, strings.HasPrefix(got, "xlb_co="), got)
			value, attrs, _ := strings.Cut(strings.TrimPrefix(got, "xlb_co="), ";")
			assert.Equal(t, tt.suffix, ";"+attrs)
			server, _, err := r.Decode([]byte(value), t0, time.Hour)
			require.NoError(t, err)
			assert.Equal(t, uint64(9), server)
		})
	}
}

func TestNewRingErrors(t *testing.T) {
	tests := []struct {
		name string
		keys []sticky.Key
	}{
		{"none", nil},
		{"id zero", []sticky.Key{{ID: 0, Secret: keyOld.Secret}}},
		{"short", []sticky.Key{{ID: 1, Secret: []byte("short")}}},
		{"duplicate", []sticky.Key{keyOld, keyOld}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sticky.NewRing(tt.keys)
			assert.Error(t, err)
		})
	}
}

func TestNoAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector randomises sync.Pool, so allocation counts are meaningless")
	}
	r := mustRing(t, keyNew, keyOld)
	v := r.AppendValue(nil, 42, t0)
	buf := make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(200, func() {
		if _, _, err := r.Decode(v, t0, time.Hour); err != nil {
			t.Fatal(err)
		}
		buf = r.AppendSetCookie(buf[:0], "xlb_co", 42, t0, time.Hour, true)
	})
	assert.Zero(t, allocs)
}

func FuzzDecode(f *testing.F) {
	r := mustRing(f, keyNew, keyOld)
	f.Add(string(r.AppendValue(nil, 1, t0)))
	f.Add(string(mustRing(f, keyOld).AppendValue(nil, 1<<63, t0)))
	f.Add("")
	f.Add(strings.Repeat("A", 46))
	f.Add(strings.Repeat("_", 46))
	f.Fuzz(func(t *testing.T, v string) {
		server, issued, err := r.Decode([]byte(v), t0, time.Hour)
		if err != nil {
			return
		}
		// Anything accepted must be exactly what the ring would have
		// issued: no second encoding of the same cookie is valid.
		again := r.AppendValue(nil, server, issued)
		if string(again) != v {
			ks := mustRing(t, keyOld).AppendValue(nil, server, issued)
			if string(ks) != v {
				t.Fatalf("accepted %q, which the ring would encode as %q", v, again)
			}
		}
	})
}

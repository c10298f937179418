package sticky

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"sync"
	"time"
)

const (
	version  = 1
	rawLen   = 34
	macOff   = 18
	macLen   = 16
	valueLen = 46 // base64.RawURLEncoding.EncodedLen(rawLen)
	// clockSkew tolerates L7 hosts whose clocks disagree a little: a cookie
	// issued "in the future" by up to this much is still valid.
	clockSkew = 5 * time.Minute
)

// strictB64 rejects non-zero padding bits, so each cookie has exactly one
// valid spelling.
var strictB64 = base64.RawURLEncoding.Strict()

// Errors returned by Decode. A cookie failing for any of them is treated as
// absent by the director and counted by Reason.
var (
	ErrMalformed  = errors.New("malformed sticky cookie")
	ErrUnknownKey = errors.New("sticky cookie signed by unknown key")
	ErrSignature  = errors.New("sticky cookie signature mismatch")
	ErrExpired    = errors.New("sticky cookie expired")
)

// Reason is a bounded label for a rejected cookie.
type Reason int

// Rejection reasons, usable as metric label values through String.
const (
	ReasonMalformed Reason = iota
	ReasonUnknownKey
	ReasonSignature
	ReasonExpired
	ReasonUnknownServer // valid cookie naming a server the pool does not have
	NumReasons
)

func (r Reason) String() string {
	switch r {
	case ReasonMalformed:
		return "malformed"
	case ReasonUnknownKey:
		return "unknown_key"
	case ReasonSignature:
		return "signature"
	case ReasonExpired:
		return "expired"
	case ReasonUnknownServer:
		return "unknown_server"
	}
	return "reason_" + strconv.Itoa(int(r))
}

// ReasonOf maps a Decode error to its Reason.
func ReasonOf(err error) Reason {
	switch {
	case errors.Is(err, ErrUnknownKey):
		return ReasonUnknownKey
	case errors.Is(err, ErrSignature):
		return ReasonSignature
	case errors.Is(err, ErrExpired):
		return ReasonExpired
	}
	return ReasonMalformed
}

// Key is one HMAC key of the ring.
type Key struct {
	ID     byte // 1..255, carried in the cookie
	Secret []byte
}

type keyState struct {
	id   byte
	macs sync.Pool // of *macState
}

// macState is pooled so that hashing needs no per-call allocation: the
// input and output buffers live with the hash, not on the caller's stack
// (passing a stack buffer to hash.Hash's interface methods would make it
// escape).
type macState struct {
	h   hash.Hash
	in  [macOff]byte
	sum [sha256.Size]byte
}

// Ring is the key ring: the first key signs, all keys verify. It is safe for
// concurrent use.
type Ring struct {
	byID   [256]*keyState
	signer *keyState
}

// NewRing builds a ring; keys[0] signs.
func NewRing(keys []Key) (*Ring, error) {
	if len(keys) == 0 {
		return nil, errors.New("create sticky key ring: no keys")
	}
	r := &Ring{}
	for _, k := range keys {
		if k.ID == 0 {
			return nil, errors.New("create sticky key ring: key id 0 is reserved")
		}
		if r.byID[k.ID] != nil {
			return nil, fmt.Errorf("create sticky key ring: duplicate key id %d", k.ID)
		}
		if len(k.Secret) < 16 {
			return nil, fmt.Errorf("create sticky key ring: key %d shorter than 16 bytes", k.ID)
		}
		secret := append([]byte(nil), k.Secret...)
		ks := &keyState{id: k.ID}
		ks.macs.New = func() any { return &macState{h: hmac.New(sha256.New, secret)} }
		r.byID[k.ID] = ks
	}
	r.signer = r.byID[keys[0].ID]
	return r, nil
}

func (ks *keyState) mac(in []byte, out []byte) {
	ms := ks.macs.Get().(*macState)
	ms.h.Reset()
	copy(ms.in[:], in)
	ms.h.Write(ms.in[:])
	ms.h.Sum(ms.sum[:0])
	copy(out, ms.sum[:macLen])
	ks.macs.Put(ms)
}

// AppendValue appends a cookie value naming server, issued at issued.
func (r *Ring) AppendValue(dst []byte, server uint64, issued time.Time) []byte {
	var raw [rawLen]byte
	raw[0] = version
	raw[1] = r.signer.id
	binary.BigEndian.PutUint64(raw[2:10], uint64(issued.Unix()))
	binary.BigEndian.PutUint64(raw[10:18], server)
	r.signer.mac(raw[:macOff], raw[macOff:])
	return base64.RawURLEncoding.AppendEncode(dst, raw[:])
}

// Decode verifies a cookie value and returns the server key and issue time.
// maxAge bounds the cookie's age at now.
func (r *Ring) Decode(v []byte, now time.Time, maxAge time.Duration) (server uint64, issued time.Time, err error) {
	if len(v) != valueLen {
		return 0, time.Time{}, ErrMalformed
	}
	var raw [rawLen]byte
	if n, err := strictB64.Decode(raw[:], v); err != nil || n != rawLen {
		return 0, time.Time{}, ErrMalformed
	}
	if raw[0] != version {
		return 0, time.Time{}, ErrMalformed
	}
	ks := r.byID[raw[1]]
	if ks == nil {
		return 0, time.Time{}, ErrUnknownKey
	}
	var want [macLen]byte
	ks.mac(raw[:macOff], want[:])
	if subtle.ConstantTimeCompare(want[:], raw[macOff:]) != 1 {
		return 0, time.Time{}, ErrSignature
	}
	secs := int64(binary.BigEndian.Uint64(raw[2:10]))
	if secs < 0 || secs > 1<<40 {
		return 0, time.Time{}, ErrMalformed
	}
	issued = time.Unix(secs, 0)
	age := now.Sub(issued)
	if age > maxAge || age < -clockSkew {
		return 0, time.Time{}, ErrExpired
	}
	return binary.BigEndian.Uint64(raw[10:18]), issued, nil
}

// AppendSetCookie appends a full Set-Cookie header value: the cookie name,
// a freshly signed value, and the attributes Path=/, Max-Age, HttpOnly,
// SameSite=Lax, and Secure when the request came over TLS (a cookie set
// Secure on plain HTTP would never come back).
func (r *Ring) AppendSetCookie(dst []byte, name string, server uint64, now time.Time, maxAge time.Duration, secure bool) []byte {
	dst = append(dst, name...)
	dst = append(dst, '=')
	dst = r.AppendValue(dst, server, now)
	dst = append(dst, "; Path=/; Max-Age="...)
	dst = strconv.AppendInt(dst, int64(maxAge/time.Second), 10)
	dst = append(dst, "; HttpOnly; SameSite=Lax"...)
	if secure {
		dst = append(dst, "; Secure"...)
	}
	return dst
}

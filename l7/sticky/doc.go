// Package sticky encodes and verifies the session-affinity cookie.
//
// Value format, version 1, base64url without padding (46 characters):
//
//	byte 0      version (1)
//	byte 1      key ID that signed it
//	bytes 2-9   issue time, Unix seconds, big endian
//	bytes 10-17 server key (pool.ServerKey: a hash of pool and server name,
//	            never an address)
//	bytes 18-33 HMAC-SHA256(key, bytes 0-17), truncated to 128 bits
//
// The first key of the ring signs; every key verifies, so rotating a key in
// (prepend) and later out (remove) logs nobody out. The issue time also
// bounds how long a host that does not have the server yet keeps the cookie
// as it is (the pool's sticky propagation_grace, in the director): only a
// host that has a server writes a cookie naming it. Any L7 host with the
// same ring and server names honours any other host's cookie. Verification
// allocates nothing.
package sticky

package maglev

// The two permutation hashes are fixed by their definition here — FNV-1a 64
// over a domain-separation prefix and the name, finished with MurmurHash3's
// fmix64 — so every build of xlb on every machine derives the same
// permutations. Changing either function changes every table and makes
// LB hosts running different versions disagree: the golden test guards it.

const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

func fnv1a(prefix, s string) uint64 {
	h := uint64(fnvOffset64)
	for i := 0; i < len(prefix); i++ {
		h ^= uint64(prefix[i])
		h *= fnvPrime64
	}
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime64
	}
	return h
}

// fmix64 is MurmurHash3's 64-bit finaliser: it spreads FNV's weak low bits.
func fmix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

func offsetHash(name string) uint64 { return fmix64(fnv1a("xlb/maglev/offset\x00", name)) }
func skipHash(name string) uint64   { return fmix64(fnv1a("xlb/maglev/skip\x00", name)) }

package datasets

import (
	"encoding/binary"
	"math/bits"
)

// Split domains keep the holdout draw and the fold draw independent for the
// same seed: otherwise the holdout ids would cluster in some folds.
const (
	domainHoldout = 'h'
	domainFold    = 'f'
)

// splitHash is FNV-1a 64 over the seed (8 bytes, little-endian), a domain
// byte and the id, followed by the murmur3 64-bit finalizer. FNV-1a alone
// mixes a change in the last bytes of the id (the row number in
// "mmlu/anatomy/17") only into the low bits, and the split uses the high
// bits. Everything here is fixed and portable, so a split never changes
// between runs, machines or Go releases (unlike hash/maphash).
func splitHash(seed uint64, domain byte, id string) uint64 {
	const (
		offset64 = 14695981039346656037
		prime64  = 1099511628211
	)
	h := uint64(offset64)
	var sb [8]byte
	binary.LittleEndian.PutUint64(sb[:], seed)
	for _, c := range sb {
		h ^= uint64(c)
		h *= prime64
	}
	h ^= uint64(domain)
	h *= prime64
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= prime64
	}
	// murmur3 fmix64.
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// InHoldout says whether id belongs to the held-out share frac of the data
// for seed. The answer depends only on (id, seed, frac), so a record stays on
// the same side across runs and as the log grows; a larger frac only moves
// records into the holdout, never out. frac <= 0 holds out nothing, frac >= 1
// everything.
func InHoldout(id string, seed uint64, frac float64) bool {
	if frac <= 0 {
		return false
	}
	if frac >= 1 {
		return true
	}
	// The top 53 bits as a uniform float in [0,1).
	u := float64(splitHash(seed, domainHoldout, id)>>11) * 0x1p-53
	return u < frac
}

// Fold assigns id to one of k cross-validation folds, 0..k-1, for seed. It
// panics if k < 1 (a programmer error).
func Fold(id string, seed uint64, k int) int {
	if k < 1 {
		panic("datasets: Fold needs k >= 1")
	}
	// Multiply-high maps the hash onto [0,k) without the modulo bias's
	// dependence on the low bits.
	hi, _ := bits.Mul64(splitHash(seed, domainFold, id), uint64(k))
	return int(hi)
}

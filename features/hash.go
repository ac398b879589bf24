package features

import (
	"encoding/binary"
	"math/bits"
)

// The hash is written out here rather than taken from hash/maphash (seeded
// per process) or hash/fnv (a multiply per byte): vectors must be identical
// across runs and machines, and the char block hashes three grams per input
// byte. Odd 64-bit constants from splitmix64 / Murmur3; part of SpecVersion.
const (
	k1 = 0x9e3779b97f4a7c15
	k2 = 0xbf58476d1ce4e5b9
	k3 = 0x94d049bb133111eb
)

// Block tags keep the blocks in separate hash spaces: the same string as a
// word, a char gram and a meta value lands on unrelated slots.
const (
	tagWordBase = 0x100 // token hash seed
	tagWordN    = 0x110 // + n: word n-gram of length n
	tagCharN    = 0x200 // + n: char n-gram of length n
	tagMeta     = 0x300
)

// mix64 is the splitmix64 finaliser: a bijection with full avalanche.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= k2
	x ^= x >> 27
	x *= k3
	x ^= x >> 31
	return x
}

// blockSeed derives the seed of one block from the spec seed.
func blockSeed(seed uint32, tag uint64) uint64 {
	return mix64(uint64(seed)<<32 | tag)
}

// slot maps a 64-bit key to the hashed space: multiply, fold, multiply and
// keep the top bits, which depend on every key bit. Two multiplies are
// enough because keys are either packed bytes xored with a mixed seed or
// already mixed hashes.
func slot(x uint64, shift uint) int32 {
	x *= k1
	x ^= x >> 29
	x *= k2
	return int32(x >> shift)
}

// combine folds the next token hash into an n-gram hash; order matters, so
// "a b" and "b a" differ.
func combine(g, u uint64) uint64 {
	return bits.RotateLeft64(g*k3, 27) ^ u
}

// tailMask[r] keeps the low r bytes of a word.
var tailMask = [9]uint64{0, 0xff, 0xffff, 0xffffff, 0xffffffff, 0xffffffffff, 0xffffffffffff, 0xffffffffffffff, 0xffffffffffffffff}

// tokenHash hashes the token p[s:e] eight bytes at a time. p must hold at
// least 8 bytes past e (the extractor pads its text) so every read is a
// whole word, masked to the token. Tokens hold no zero byte, so the masked
// words determine the token and its length need not be mixed in. The
// result is only xor-folded: slot and combine do the rest of the mixing,
// which keeps the latency per token short.
func tokenHash(p []byte, s, e int, seed uint64) uint64 {
	x := binary.LittleEndian.Uint64(p[s:s+8]) & tailMask[min(e-s, 8)]
	h := (x ^ seed) * k1
	for i := s + 8; i < e; i += 8 { // tokens over 8 bytes: the rare case
		y := binary.LittleEndian.Uint64(p[i:i+8]) & tailMask[min(e-i, 8)]
		h = (h ^ h>>29 ^ y) * k1
	}
	return h ^ h>>32
}

// hashString hashes a meta key or value, length included, with a full
// finaliser.
func hashString(s string, seed uint64) uint64 {
	h := seed ^ uint64(len(s))*k3
	for len(s) >= 8 {
		x := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
			uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
		h = (h ^ x) * k1
		h ^= h >> 32
		s = s[8:]
	}
	if len(s) > 0 {
		var x uint64
		for i := len(s) - 1; i >= 0; i-- {
			x = x<<8 | uint64(s[i])
		}
		h = (h ^ x) * k1
		h ^= h >> 32
	}
	return mix64(h)
}

package features

import (
	"errors"
	"fmt"
)

// SpecVersion is the feature recipe new specs are written with. It pins
// every choice that is code rather than data: the hash function and block
// tags, text normalisation, tokenisation, the numeric slots and their
// scaling constants, and the meta caps. Changing any of them changes the
// vectors a saved model was trained on, so it must bump SpecVersion, and
// the recipes of earlier versions stay readable (MinSpecVersion).
//
// Version 2 added SplitCJK and MetaBits; a version 1 spec has neither and
// extracts exactly what it always did.
const SpecVersion = 2

// MinSpecVersion is the oldest recipe this build still extracts.
const MinSpecVersion = 1

// Normalisation modes for Spec.Normalize.
const (
	// NormalizeL2 weights every occurrence in a text block (word n-grams,
	// char n-grams) by 1/sqrt(number of n-grams in the block), so a block
	// whose n-grams are all distinct has L2 norm 1 and a long prompt does not
	// outvote a short one by sheer length.
	NormalizeL2 = "l2"
	// NormalizeNone gives every occurrence weight 1 (raw counts).
	NormalizeNone = "none"
)

// Limits checked by Validate.
const (
	MinHashBits = 10
	MaxHashBits = 24
	// MaxWordN is the longest word n-gram supported.
	MaxWordN = 4
	// MaxCharN is the longest char n-gram: a gram is packed into a uint64.
	MaxCharN = 8
	// MaxMaxBytes bounds Spec.MaxBytes so one extractor's scratch stays small.
	MaxMaxBytes = 1 << 24
	// MinMetaBits and MaxMetaBits bound Spec.MetaBits when it is set.
	MinMetaBits = 4
	MaxMetaBits = 16
)

// Defaults used by DefaultSpec.
const (
	DefaultHashBits = 18
	DefaultMaxBytes = 8 << 10
	// DefaultMetaBits gives meta 4,096 slots of its own: logs carry tens
	// to hundreds of distinct key=value pairs, so they rarely share one.
	DefaultMetaBits = 12
)

// ErrInvalidSpec is wrapped by every error Validate returns.
var ErrInvalidSpec = errors.New("invalid feature spec")

// Spec is the feature recipe. It is data, saved inside a model artifact, so
// the server extracts exactly the features the model was trained on.
type Spec struct {
	// Version is the recipe: MinSpecVersion..SpecVersion.
	Version int `json:"version"`
	// HashBits sets the hashed space to 1<<HashBits slots (MinHashBits..MaxHashBits).
	HashBits int `json:"hash_bits"`
	// Seed perturbs every hash; two specs differing only in Seed collide on
	// different n-grams.
	Seed uint32 `json:"seed"`
	// WordNgrams is the inclusive range of word n-gram lengths, 1..MaxWordN;
	// {0, 0} turns word features off.
	WordNgrams [2]int `json:"word_ngrams"`
	// CharNgrams is the inclusive range of byte n-gram lengths, 1..MaxCharN;
	// {0, 0} turns char features off.
	CharNgrams [2]int `json:"char_ngrams"`
	// Numeric adds the scaled numeric slots (lengths, digit share, code and
	// math markers, questions, turns) after the hashed space.
	Numeric bool `json:"numeric"`
	// Meta adds one indicator per meta key=value pair.
	Meta bool `json:"meta"`
	// MetaKeys restricts Meta to these keys; nil or empty means every key
	// the input carries. Listing keys is safer when serving traffic may
	// carry keys the training logs did not.
	MetaKeys []string `json:"meta_keys,omitempty"`
	// Normalize is NormalizeL2 or NormalizeNone.
	Normalize string `json:"normalize"`
	// MaxBytes caps the text the n-gram blocks read (the first MaxBytes bytes
	// of the prompt); length features still see the full length.
	MaxBytes int `json:"max_bytes"`
	// SplitCJK (version 2) makes every Chinese, Japanese or Korean
	// character its own word token. Those scripts do not put spaces
	// between words, so without it a whole clause is one token that no
	// other prompt shares; with it, word bigrams are character bigrams,
	// the usual unit for CJK text.
	SplitCJK bool `json:"split_cjk,omitempty"`
	// MetaBits (version 2), when not 0, gives meta its own block of
	// 1<<MetaBits slots after the numeric slots instead of hashing it into
	// the text's slots, so a trainer can tell meta from text and penalise
	// each by its own strength. 0 keeps meta among the hashed slots.
	MetaBits int `json:"meta_bits,omitempty"`
}

// DefaultSpec returns the recipe new models are trained with. The values are
// a starting point meant to be tuned on data, not constants of the code.
func DefaultSpec() Spec {
	return Spec{
		Version:    SpecVersion,
		HashBits:   DefaultHashBits,
		WordNgrams: [2]int{1, 2},
		CharNgrams: [2]int{0, 0},
		Numeric:    true,
		Meta:       true,
		Normalize:  NormalizeL2,
		MaxBytes:   DefaultMaxBytes,
		SplitCJK:   true,
		MetaBits:   DefaultMetaBits,
	}
}

// Validate reports the first thing wrong with s, wrapping ErrInvalidSpec.
func (s Spec) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidSpec, fmt.Sprintf(format, args...))
	}
	if s.Version < MinSpecVersion || s.Version > SpecVersion {
		return bad("version is %d, this build reads versions %d..%d; retrain the model with this build or use the build that trained it", s.Version, MinSpecVersion, SpecVersion)
	}
	if s.Version < 2 && (s.SplitCJK || s.MetaBits != 0) {
		return bad("split_cjk and meta_bits need version 2, the spec says version %d", s.Version)
	}
	if s.MetaBits != 0 && (s.MetaBits < MinMetaBits || s.MetaBits > MaxMetaBits) {
		return bad("meta_bits is %d, want 0 (meta among the hashed slots) or %d..%d", s.MetaBits, MinMetaBits, MaxMetaBits)
	}
	if s.HashBits < MinHashBits || s.HashBits > MaxHashBits {
		return bad("hash_bits is %d, want %d..%d", s.HashBits, MinHashBits, MaxHashBits)
	}
	if err := checkRange("word_ngrams", s.WordNgrams, MaxWordN); err != nil {
		return bad("%v", err)
	}
	if err := checkRange("char_ngrams", s.CharNgrams, MaxCharN); err != nil {
		return bad("%v", err)
	}
	switch s.Normalize {
	case NormalizeL2, NormalizeNone:
	default:
		return bad("normalize is %q, want %q or %q", s.Normalize, NormalizeL2, NormalizeNone)
	}
	if s.MaxBytes < 1 || s.MaxBytes > MaxMaxBytes {
		return bad("max_bytes is %d, want 1..%d", s.MaxBytes, MaxMaxBytes)
	}
	seen := make(map[string]bool, len(s.MetaKeys))
	for i, k := range s.MetaKeys {
		if k == "" {
			return bad("meta_keys[%d] is empty; list meta key names, or leave meta_keys empty for all keys", i)
		}
		if seen[k] {
			return bad("meta_keys lists %q twice", k)
		}
		seen[k] = true
	}
	if len(s.MetaKeys) > 0 && !s.Meta {
		return bad("meta_keys is set but meta is false; set meta to true or drop meta_keys")
	}
	if s.WordNgrams[0] == 0 && s.CharNgrams[0] == 0 && !s.Numeric && !s.Meta {
		return bad("every feature block is off; enable word_ngrams, char_ngrams, numeric or meta")
	}
	return nil
}

func checkRange(name string, r [2]int, max int) error {
	if r == [2]int{} {
		return nil
	}
	if r[0] < 1 || r[1] < r[0] || r[1] > max {
		return fmt.Errorf("%s is [%d, %d], want 1 <= lo <= hi <= %d, or [0, 0] to turn it off", name, r[0], r[1], max)
	}
	return nil
}

// Dim is the vector length: the hashed space, the numeric slots when
// Numeric is on, and the meta block when Meta is on and MetaBits is set.
// Every index an Extractor emits is in [0, Dim).
func (s Spec) Dim() int {
	return s.MetaBase() + s.metaSlots()
}

// MetaBase is the first index of the meta block (of a spec with MetaBits
// set), just after the numeric slots.
func (s Spec) MetaBase() int {
	d := 1 << s.HashBits
	if s.Numeric {
		d += NumNumeric
	}
	return d
}

func (s Spec) metaSlots() int {
	if !s.Meta || s.MetaBits == 0 {
		return 0
	}
	return 1 << s.MetaBits
}

// String describes the spec in one line, for logs and `model show`.
func (s Spec) String() string {
	v2 := ""
	if s.Version >= 2 {
		v2 = fmt.Sprintf(" split_cjk=%t meta_bits=%d", s.SplitCJK, s.MetaBits)
	}
	return fmt.Sprintf("v%d hash_bits=%d seed=%d word=%d..%d char=%d..%d numeric=%t meta=%t%s normalize=%s max_bytes=%d%s",
		s.Version, s.HashBits, s.Seed, s.WordNgrams[0], s.WordNgrams[1], s.CharNgrams[0], s.CharNgrams[1],
		s.Numeric, s.Meta, metaKeysString(s.MetaKeys), s.Normalize, s.MaxBytes, v2)
}

func metaKeysString(keys []string) string {
	if len(keys) == 0 {
		return ""
	}
	return fmt.Sprintf(" meta_keys=%q", keys)
}

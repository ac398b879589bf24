package features

import (
	"math"
	"math/bits"
	"slices"
)

// Caps on meta, pinned by SpecVersion: meta is categorical context, so a
// request carrying thousands of keys or megabyte values is noise or abuse,
// and must not cost more than a prompt.
const (
	maxMetaKeys  = 64  // with Spec.MetaKeys empty, the first 64 keys in sorted order
	maxMetaBytes = 256 // bytes of a key, and of a value, that are hashed
)

// Turn is one chat message. Role is not a feature (spec versions 1 and 2).
type Turn struct {
	Role    string
	Content string
}

// Input is what a feature vector is computed from. The text is Prompt when
// it is non-empty, else the Messages' contents joined with "\n" (the same
// rule as datasets.Record.Text), so a prompt and the one-message chat
// holding it give the same vector.
type Input struct {
	Prompt   string
	Messages []Turn
	Meta     map[string]string
}

// Vector is a sparse feature vector. Indices are in [0, Spec.Dim()) and may
// repeat: a repeated n-gram, or two n-grams that hash to one slot, appear
// twice, and consumers sum the values. This spares the extractor a sort.
type Vector struct {
	Idx []int32
	Val []float64
}

// Reset empties v and keeps its storage.
func (v *Vector) Reset() {
	v.Idx = v.Idx[:0]
	v.Val = v.Val[:0]
}

// Extractor turns inputs into vectors for one Spec. It keeps scratch
// buffers between calls, so Extract does not allocate once the buffers have
// grown to the largest input seen. It is not safe for concurrent use: give
// each goroutine its own (NewExtractor is cheap), e.g. through a sync.Pool.
type Extractor struct {
	spec     Spec
	shift    uint  // 64 - HashBits: slot keeps the top HashBits bits
	hashDim  int32 // 1 << HashBits: the first numeric slot
	l2       bool
	wordBase uint64
	wordSeed [MaxWordN + 1]uint64
	// Char grams: bytes go through the random permutation cperm, are
	// packed into a word and hashed by multiply-shift with cmul[m] for a
	// gram of m bytes; cmask[m] keeps the low m bytes.
	cperm    [256]byte
	cmul     [MaxCharN + 1]uint64
	cmask    [MaxCharN + 1]uint64
	metaSeed uint64
	metaKeys []string // sorted Spec.MetaKeys, or nil for every key
	// metaBase and metaShift place meta in its own block (Spec.MetaBits);
	// metaShift is 0 when meta shares the hashed slots.
	metaBase  int32
	metaShift uint
	splitCJK  bool
	// codeHashes are the token hashes of codeWords. codeSet[h>>56] holds
	// the one code word hash with those top bits, or codeClash when two
	// share them, or 0: one load and compare per token.
	codeHashes [len(codeWords)]uint64
	codeSet    [256]uint64
	buf        []byte   // normalised text prefix, then textPad zero bytes
	keys       []string // scratch: sorted meta keys
	toks       []uint64 // scratch: token hashes
	bounds     []int32  // scratch: token starts and ends
	text       []byte   // the normalised text of the last call, inside buf
	st         textStats
}

// NewExtractor validates spec and returns an extractor for it.
func NewExtractor(spec Spec) (*Extractor, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	e := &Extractor{
		spec:     spec,
		shift:    uint(64 - spec.HashBits),
		hashDim:  int32(1) << spec.HashBits,
		l2:       spec.Normalize == NormalizeL2,
		wordBase: blockSeed(spec.Seed, tagWordBase),
		metaSeed: blockSeed(spec.Seed, tagMeta),
		splitCJK: spec.SplitCJK,
	}
	if spec.MetaBits > 0 {
		e.metaBase = int32(spec.MetaBase())
		e.metaShift = uint(64 - spec.MetaBits)
	}
	e.spec.MetaKeys = slices.Clone(spec.MetaKeys)
	for n := 1; n <= MaxWordN; n++ {
		e.wordSeed[n] = blockSeed(spec.Seed, tagWordN+uint64(n))
	}
	base := blockSeed(spec.Seed, tagCharN)
	for c := range e.cperm {
		e.cperm[c] = byte(c)
	}
	for c := 255; c > 0; c-- { // Fisher-Yates, driven by the seed
		r := int(mix64(base+uint64(c)) % uint64(c+1))
		e.cperm[c], e.cperm[r] = e.cperm[r], e.cperm[c]
	}
	for m := 1; m <= MaxCharN; m++ {
		e.cmul[m] = blockSeed(spec.Seed, tagCharN+uint64(m)) | 1 // odd
		e.cmask[m] = math.MaxUint64 >> (64 - 8*uint(m))
	}
	for i, w := range codeWords {
		p := append([]byte(w), make([]byte, 8)...)
		h := tokenHash(p, 0, len(w), e.wordBase)
		e.codeHashes[i] = h
		if e.codeSet[h>>56] == 0 {
			e.codeSet[h>>56] = h
		} else {
			e.codeSet[h>>56] = codeClash
		}
	}
	if len(spec.MetaKeys) > 0 {
		e.metaKeys = slices.Clone(spec.MetaKeys)
		slices.Sort(e.metaKeys)
	}
	return e, nil
}

// Spec returns the spec the extractor was built with.
func (e *Extractor) Spec() Spec {
	s := e.spec
	s.MetaKeys = slices.Clone(s.MetaKeys)
	return s
}

// Extract resets dst and fills it with the features of in. Blocks come in
// a fixed order (word n-grams, char n-grams, numeric, meta), each in text
// order, so the output is byte-identical across runs and machines.
func (e *Extractor) Extract(dst *Vector, in Input) {
	if dst == nil {
		panic("features: Extract called with a nil *Vector")
	}
	text, padded := e.prepare(in)
	e.reserve(dst, len(text), in.Meta)
	idx, val := dst.Idx[:0], dst.Val[:0]

	start := len(idx)
	idx = e.words(idx, text, padded)
	val = e.weigh(val, len(idx)-start)

	start = len(idx)
	idx = e.chars(idx, text)
	val = e.weigh(val, len(idx)-start)

	if e.spec.Numeric {
		nv := numericValues(&e.st)
		for i, x := range nv {
			if x != 0 {
				idx = append(idx, e.hashDim+int32(i))
				val = append(val, x)
			}
		}
	}
	if e.spec.Meta && len(in.Meta) > 0 {
		for _, k := range e.sortedMetaKeys(in.Meta) {
			v, ok := in.Meta[k]
			if !ok {
				continue
			}
			idx = append(idx, e.metaSlot(k, v))
			val = append(val, 1)
		}
	}
	dst.Idx, dst.Val = idx, val
}

// textPad is the number of zero bytes after the text in e.buf, so word
// masks and token hashes can read whole 64-byte blocks and 8-byte words.
const textPad = 64

// prepare normalises the first MaxBytes bytes of the input text into e.buf
// and fills e.st. It returns the text and the same bytes followed by
// textPad zero bytes.
func (e *Extractor) prepare(in Input) (text, padded []byte) {
	e.st = textStats{}
	st := &e.st
	useMessages := in.Prompt == "" && len(in.Messages) > 0
	if useMessages {
		st.turns = len(in.Messages)
		st.fullLen = len(in.Messages) - 1 // the "\n" separators
		for _, m := range in.Messages {
			st.fullLen += len(m.Content)
		}
	} else {
		st.fullLen = len(in.Prompt)
		if in.Prompt != "" {
			st.turns = 1
		}
	}
	need := min(st.fullLen, e.spec.MaxBytes) + textPad
	if cap(e.buf) < need {
		e.buf = make([]byte, need)
	}
	buf := e.buf[:need]
	var ss scanState
	budget := e.spec.MaxBytes
	feed := func(s string) {
		take := min(len(s), budget)
		ss = scan(buf, s[:take], ss, st)
		budget -= take
		st.scanned += take
	}
	if useMessages {
		for i, m := range in.Messages {
			if i > 0 {
				feed("\n")
			}
			feed(m.Content)
		}
	} else {
		feed(in.Prompt)
	}
	// Trim leading and trailing whitespace (already collapsed into runs
	// that alternate ' ' and '\n' at worst).
	i, j := 0, ss.j
	for i < j && (buf[i] == ' ' || buf[i] == '\n') {
		i++
	}
	for j > i && (buf[j-1] == ' ' || buf[j-1] == '\n') {
		j--
	}
	clear(buf[j : j+textPad])
	e.text = buf[i:j]
	return buf[i:j], buf[i : j+textPad]
}

// reserve grows dst once to an upper bound of what Extract will write, so
// the appends that follow never reallocate.
func (e *Extractor) reserve(dst *Vector, n int, meta map[string]string) {
	bound := 0
	if lo, hi := e.spec.CharNgrams[0], e.spec.CharNgrams[1]; hi > 0 {
		bound += n * (hi - lo + 1)
	}
	if lo, hi := e.spec.WordNgrams[0], e.spec.WordNgrams[1]; hi > 0 {
		bound += (n + 1) / 2 * (hi - lo + 1) // a token and its separator take 2 bytes
	}
	if e.spec.Numeric {
		bound += NumNumeric
	}
	if e.spec.Meta {
		if e.metaKeys != nil {
			bound += min(len(meta), len(e.metaKeys))
		} else {
			bound += min(len(meta), maxMetaKeys)
		}
	}
	if cap(dst.Idx) < bound {
		dst.Idx = make([]int32, 0, bound)
	}
	if cap(dst.Val) < bound {
		dst.Val = make([]float64, 0, bound)
	}
}

// weigh appends the weight of a text block of n occurrences to val.
func (e *Extractor) weigh(val []float64, n int) []float64 {
	if n == 0 {
		return val
	}
	w := 1.0
	if e.l2 {
		w = 1 / math.Sqrt(float64(n))
	}
	start := len(val)
	val = slices.Grow(val, n)[:start+n] // reserve made room; Grow is a no-op
	// Fill by doubling copies: memmove's wide stores beat a scalar loop.
	block := val[start:]
	block[0] = w
	for done := 1; done < n; done *= 2 {
		copy(block[done:], block[:done])
	}
	return val
}

// words appends the word n-gram slots, all unigrams first, then all
// bigrams, and so on.
func (e *Extractor) words(idx []int32, text, padded []byte) []int32 {
	toks := e.tokenize(text, padded)
	lo, hi := e.spec.WordNgrams[0], e.spec.WordNgrams[1]
	if hi == 0 {
		return idx
	}
	shift := e.shift
	for m := lo; m <= min(hi, len(toks)); m++ {
		k := len(idx)
		cnt := len(toks) - m + 1
		idx = slices.Grow(idx, cnt)[:k+cnt] // reserve made room; Grow is a no-op
		out := idx[k:]
		seed := e.wordSeed[m]
		switch m {
		case 1:
			for i, h := range toks {
				out[i] = slot(h^seed, shift)
			}
		case 2:
			for i, h := range toks[1:] {
				out[i] = slot(combine(h, toks[i])^seed, shift)
			}
		default:
			for i := range out {
				// The hash of the m-gram ending at token i+m-1, built
				// from the right; the nesting keeps the order of tokens.
				end := i + m - 1
				g := toks[end]
				for j := end - 1; j >= i; j-- {
					g = combine(g, toks[j])
				}
				out[i] = slot(g^seed, shift)
			}
		}
	}
	return idx
}

// tokenize hashes the tokens of text (runs of a-z, 0-9 and bytes >= 0x80)
// into e.toks and counts them and the code words among them. It works in
// three tight loops rather than one: the compiler keeps each one's few
// variables in registers.
func (e *Extractor) tokenize(text, padded []byte) []uint64 {
	// Token boundaries, from a 64-bit word-byte mask per 64-byte block:
	// bounds alternates start, end. The padding is not word bytes, so the
	// last token ends inside the last block.
	bounds := e.bounds[:0]
	var carry uint64 // 1 when the previous block ended inside a token
	for base := 0; base <= len(text); base += 64 {
		w := wordMask64(padded[base : base+64])
		ev := w ^ (w<<1 | carry) // a bit where a token starts or ends
		carry = w >> 63
		for ev != 0 {
			bounds = append(bounds, int32(base+bits.TrailingZeros64(ev)))
			ev &= ev - 1
		}
	}
	e.bounds = bounds

	toks := e.toks[:0]
	seed := e.wordBase
	for i := 0; i+1 < len(bounds); i += 2 {
		s, end := int(bounds[i]), int(bounds[i+1])
		if e.splitCJK && hasHighByte(padded, s, end) {
			cjkSpans(padded, s, end, func(s, end int) {
				toks = append(toks, tokenHash(padded, s, end, seed))
			})
			continue
		}
		toks = append(toks, tokenHash(padded, s, end, seed))
	}
	e.toks = toks

	code := 0
	for _, h := range toks {
		if c := e.codeSet[h>>56]; c == h || c == codeClash && e.isCodeWord(h) {
			code++
		}
	}
	e.st.tokens = len(toks)
	e.st.code += code
	return toks
}

// codeClash marks a codeSet entry shared by two code words (a token hash
// equal to it is merely checked against the list).
const codeClash = 1

func (e *Extractor) isCodeWord(h uint64) bool {
	return slices.Contains(e.codeHashes[:], h)
}

// chars appends the byte n-gram slots, position by position, shortest
// gram first. The last 8 bytes, each mapped through a random permutation,
// live in one register, so a gram of m bytes is its low m bytes, hashed by
// multiply-shift (Dietzfelbinger et al.): one multiply per gram. The
// permutation matters: plain multiply-shift on raw bytes collides up to
// 1.7 times as often as a random function on structured keys such as runs
// of digits; with it, as often (see TestHashSpreadsStructuredKeys).
func (e *Extractor) chars(idx []int32, text []byte) []int32 {
	lo, hi := e.spec.CharNgrams[0], e.spec.CharNgrams[1]
	if hi == 0 {
		return idx
	}
	n := len(text)
	count := 0
	for m := lo; m <= hi; m++ {
		count += max(0, n-m+1)
	}
	k := len(idx)
	idx = slices.Grow(idx, count)[:k+count] // reserve made room; Grow is a no-op
	out := idx[k:]
	shift := e.shift
	perm := &e.cperm
	var reg uint64
	fast := lo == 3 && hi == 5
	end := n
	if fast {
		end = min(n, hi-1) // the general loop does the warm-up
	}
	p, i := 0, 0
	for ; i < end; i++ {
		reg = reg<<8 | uint64(perm[text[i]])
		for m := lo; m <= min(hi, i+1); m++ {
			out[p] = int32(reg & e.cmask[m] * e.cmul[m] >> shift)
			p++
		}
	}
	if fast && i < n {
		chars35(out[p:], text[i:], &e.cperm, e.cmul[3], e.cmul[4], e.cmul[5], shift, reg)
	}
	return idx
}

// chars35 is the char loop for the default 3..5 range, alone in a function
// with constant masks so the compiler keeps every variable in a register;
// inlined into chars, it would share chars' spilled registers again.
//
//go:noinline
func chars35(out []int32, text []byte, perm *[256]byte, a3, a4, a5 uint64, shift uint, reg uint64) {
	shift &= 63 // lets the compiler drop its shift-overflow handling
	out = out[:3*len(text)]
	for i, c := range text {
		reg = reg<<8 | uint64(perm[c])
		o := out[3*i : 3*i+3 : 3*i+3]
		o[0] = int32(reg & 0xffffff * a3 >> shift)
		o[1] = int32(reg & 0xffffffff * a4 >> shift)
		o[2] = int32(reg & 0xffffffffff * a5 >> shift)
	}
}

// sortedMetaKeys returns the meta keys to emit, in sorted order, without
// allocating once e.keys has grown.
func (e *Extractor) sortedMetaKeys(meta map[string]string) []string {
	if e.metaKeys != nil {
		return e.metaKeys
	}
	keys := e.keys[:0]
	if len(meta) <= maxMetaKeys {
		for k := range meta {
			keys = append(keys, k)
		}
		slices.Sort(keys)
	} else {
		// Keep the maxMetaKeys smallest keys: a sorted window in which a
		// smaller key displaces the largest.
		for k := range meta {
			if len(keys) < maxMetaKeys {
				keys = append(keys, k)
				if len(keys) == maxMetaKeys {
					slices.Sort(keys)
				}
				continue
			}
			if k >= keys[len(keys)-1] {
				continue
			}
			j, _ := slices.BinarySearch(keys, k)
			copy(keys[j+1:], keys[j:len(keys)-1])
			keys[j] = k
		}
	}
	e.keys = keys
	return keys
}

// metaSlot hashes "key=value": the value is hashed with the key's hash as
// its seed, and both hashes include the length, so ("a=b", "c") and
// ("a", "b=c") differ.
func (e *Extractor) metaSlot(k, v string) int32 {
	h := hashString(truncate(k), e.metaSeed)
	h = hashString(truncate(v), h^k2)
	if e.metaShift != 0 {
		return e.metaBase + slot(h, e.metaShift)
	}
	return slot(h, e.shift)
}

func truncate(s string) string {
	if len(s) > maxMetaBytes {
		return s[:maxMetaBytes]
	}
	return s
}

package features

import (
	"encoding/binary"
	"math"
)

// Only ASCII is case-folded and classified; bytes >= 0x80 pass through
// unchanged and count as word bytes, so UTF-8 words in any script tokenise,
// and invalid UTF-8 is just bytes.

// Read-only lookup tables, built once.
var (
	lowerTab = func() (t [256]byte) {
		for c := range 256 {
			t[c] = byte(c)
			if c >= 'A' && c <= 'Z' {
				t[c] = byte(c) + 'a' - 'A'
			}
		}
		return t
	}()
	// wordTab marks the bytes a token is made of in the normalised text.
	wordTab = func() (t [256]bool) {
		for c := range 256 {
			t[c] = c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c >= 0x80
		}
		return t
	}()
)

// isOp reports the operators that, next to a digit, count as a math marker.
func isOp(c byte) bool {
	switch c {
	case '+', '-', '*', '/', '^', '=', '<', '>':
		return true
	}
	return false
}

// textStats are the counts behind the numeric slots.
type textStats struct {
	fullLen   int // bytes of the whole text, separators included
	scanned   int // bytes read (at most MaxBytes)
	tokens    int // tokens in the scanned prefix
	turns     int
	digits    int
	nonASCII  int
	newlines  int
	questions int
	code      int
	math      int
}

// byteInfo holds all the scan needs about a byte in one word, so the loop
// does one table load, one add and no data-dependent branch:
//
//	bits  0-7   the normalised byte: ASCII lowercased, whitespace but
//	            '\n' to ' '
//	bits  8-9   1 for ' ' and the like, 2 for '\n'
//	bits 24-31  1 for a digit        } counters, summed over chunks of at
//	bits 32-39  1 for a byte >= 0x80 } most scanChunk bytes so the 8-bit
//	bits 40-47  1 for '\n'           } fields cannot overflow (the low 24
//	bits 48-55  1 for '?'            } bits absorb the sum of bits 0-8)
//	bits 56-63  1 for a byte that may complete a code or math marker
var byteInfo = func() (t [256]uint64) {
	for c := range 256 {
		v := uint64(lowerTab[c])
		switch {
		case c >= '0' && c <= '9':
			v |= 1 << 24
		case c >= 0x80:
			v |= 1 << 32
		case c == '\n':
			v |= 1<<40 | infoNewline
		case c == '?':
			v |= 1 << 48
		case c == ' ', c == '\t', c == '\r', c == '\v', c == '\f':
			v = ' ' | infoSpace
		case c == ';', c == '{', c == '}', c == '`', c == ':', c == '&', c == '|', c == '$', c == '!', c == '\\', isOp(byte(c)):
			v |= 1 << 56
		}
		t[c] = v
	}
	return t
}()

const (
	infoSpace   = 1 << 8
	infoNewline = 2 << 8
	scanChunk   = 255
)

// scanState carries the scan across message boundaries.
type scanState struct {
	j           int    // next write position in buf
	sp          uint64 // bits 8-9 of the byteInfo of the last byte written
	prev, prev2 byte   // the last two raw bytes
}

// scan writes the normalised form of s into buf at ss.j and updates st:
// ASCII is lowercased and every run of spaces and tabs becomes one ' ', and
// every run of newlines one '\n'. Collapsing runs keeps indentation and
// blank lines from flooding the char block while keeping line structure.
// buf must have room for len(s) more bytes. A byte continuing a run is
// written over the previous one, which needs no branch. Locals are all
// 64-bit and few, and markers are counted in a second pass over the chunks
// that have any: otherwise the compiler spills registers on every byte.
func scan(buf []byte, s string, ss scanState, st *textStats) scanState {
	j, sp := ss.j, ss.sp
	for off := 0; off < len(s); off += scanChunk {
		chunk := s[off:min(len(s), off+scanChunk)]
		var acc uint64
		j, sp, acc = scanBytes(buf, chunk, j, sp)
		st.digits += int(acc >> 24 & 0xff)
		st.nonASCII += int(acc >> 32 & 0xff)
		st.newlines += int(acc >> 40 & 0xff)
		st.questions += int(acc >> 48 & 0xff)
		if acc>>56 != 0 {
			scanMarks(s, off, off+len(chunk), int(acc>>56), ss.prev, ss.prev2, st)
		}
		if len(chunk) >= 2 {
			ss.prev, ss.prev2 = chunk[len(chunk)-1], chunk[len(chunk)-2]
		} else {
			ss.prev, ss.prev2 = chunk[0], ss.prev
		}
	}
	ss.j, ss.sp = j, sp
	return ss
}

// scanBytes is scan's per-byte loop, alone in a function so that its few
// variables stay in registers (inlined, the compiler spilled the loop
// counter and kept it in memory, costing a store-to-load per byte).
//
//go:noinline
func scanBytes(buf []byte, chunk string, j int, sp uint64) (int, uint64, uint64) {
	var acc uint64
	for i := 0; i < len(chunk); i++ {
		info := byteInfo[chunk[i]]
		acc += info
		csp := info >> 8 & 3
		j -= int((csp&sp + 1) >> 1) // 1 when continuing a run
		buf[j] = byte(info)
		j++
		sp = csp
	}
	return j, sp, acc
}

// scanMarks calls mark for the n bytes of s[from:to] that may complete a
// marker; p1 and p2 are the two raw bytes before s[from] and the look-ahead
// stops at the end of s. Markers are rare in prose, so the loop only tests
// a table bit, looks around when it hits, and stops after the n-th.
func scanMarks(s string, from, to, n int, p1, p2 byte, st *textStats) {
	for i := from; i < to && n > 0; i++ {
		if byteInfo[s[i]]>>56 == 0 {
			continue
		}
		n--
		b1, b2 := p1, p2 // the bytes before s[i]
		if i-1 >= from {
			b1, b2 = s[i-1], p1
			if i-2 >= from {
				b2 = s[i-2]
			}
		}
		var next, next2 byte
		if i+1 < len(s) {
			next = s[i+1]
		}
		if i+2 < len(s) {
			next2 = s[i+2]
		}
		mark(s[i], b1, b2, next, next2, st)
	}
}

// mark counts the code and math markers that byte c, preceded by p1 and p2
// and followed by next and next2, completes. The look-behind crosses
// message boundaries, the look-ahead does not.
func mark(c, p1, p2, next, next2 byte, st *textStats) {
	switch c {
	case ';':
		if next == '\n' || next == '\r' && next2 == '\n' {
			st.code++ // a statement ends the line
		}
	case '{', '}':
		st.code++
	case '`':
		if p1 == '`' && p2 == '`' {
			st.code++ // a ``` fence
		}
	case '=':
		st.math++
		if p1 == '=' || p1 == '!' {
			st.code++ // == !=
		}
	case '>':
		if p1 == '-' || p1 == '=' {
			st.code++ // -> =>
		}
	case ':':
		if p1 == ':' {
			st.code++
		}
	case '&':
		if p1 == '&' {
			st.code++
		}
	case '|':
		if p1 == '|' {
			st.code++
		}
	case '+', '^', '$':
		st.math++
	case '\\':
		if next|0x20 >= 'a' && next|0x20 <= 'z' {
			st.math++ // a LaTeX command: \frac, \sqrt, ...
		}
	}
	if isOp(c) {
		// An operator touching a digit: 3+4, x^2, 2*x.
		if p1 >= '0' && p1 <= '9' {
			st.math++
		}
		if next >= '0' && next <= '9' {
			st.math++
		}
	}
}

// codeWords are tokens far more common in code than in prose. Words like
// "return", "import" and "function" are left out: they are everyday words
// in economics and mathematics questions.
var codeWords = [...]string{"def", "elif", "lambda", "int", "void", "const", "func", "std", "cout", "printf", "println", "null", "nullptr"}

const lsb = 0x0101010101010101 // one in every byte

// wordMask64 returns one bit per byte of p[:64] (bit i for p[i]) set when
// the byte is a token byte of normalised text: a-z, 0-9 or >= 0x80. It
// works eight bytes at a time (SWAR): on bytes below 0x80, adding 0x80-c
// sets the high bit exactly when the byte is >= c; a multiply gathers the
// eight high bits. Written out in one function so it inlines nothing and
// calls nothing.
func wordMask64(p []byte) uint64 {
	const hi = lsb * 0x80
	p = p[:64]
	var m uint64
	for k := 0; k < 64; k += 8 {
		x := binary.LittleEndian.Uint64(p[k : k+8])
		v := x &^ hi
		letter := (v + lsb*(0x80-'a')) &^ (v + lsb*(0x80-'z'-1))
		digit := (v + lsb*(0x80-'0')) &^ (v + lsb*(0x80-'9'-1))
		w := (letter|digit)&hi | x&hi
		m |= (w >> 7) * 0x0102040810204080 >> 56 << k
	}
	return m
}

// Numeric slots, in order after the hashed space. The scaling constants put
// typical prompts in [0, 1]: log1p(x)/16 reaches 1 near 9 MB of text,
// log1p(x)/6 near 400 markers. They are part of SpecVersion.
const (
	numLenChars = iota
	numLenTokens
	numLines
	numDigitShare
	numNonASCIIShare
	numCode
	numMath
	numQuestions
	numTurns
	// NumNumeric is the number of numeric slots Spec.Numeric adds.
	NumNumeric
)

var numericNames = [NumNumeric]string{
	numLenChars:      "num:len_chars",
	numLenTokens:     "num:len_tokens",
	numLines:         "num:lines",
	numDigitShare:    "num:digit_share",
	numNonASCIIShare: "num:nonascii_share",
	numCode:          "num:code",
	numMath:          "num:math",
	numQuestions:     "num:questions",
	numTurns:         "num:turns",
}

// numericValues turns the counts into the scaled slot values.
func numericValues(st *textStats) [NumNumeric]float64 {
	var v [NumNumeric]float64
	lg := func(x float64, scale float64) float64 { return math.Log1p(x) / scale }
	tokens := float64(st.tokens)
	if st.scanned > 0 && st.scanned < st.fullLen {
		// Counting tokens in a 10 MB prompt would cost milliseconds;
		// extrapolate from the prefix instead.
		tokens *= float64(st.fullLen) / float64(st.scanned)
	}
	v[numLenChars] = lg(float64(st.fullLen), 16)
	v[numLenTokens] = lg(tokens, 14)
	v[numLines] = lg(float64(st.newlines), 8)
	if st.scanned > 0 {
		v[numDigitShare] = float64(st.digits) / float64(st.scanned)
		v[numNonASCIIShare] = float64(st.nonASCII) / float64(st.scanned)
	}
	v[numCode] = lg(float64(st.code), 6)
	v[numMath] = lg(float64(st.math), 6)
	v[numQuestions] = lg(float64(st.questions), 4)
	v[numTurns] = lg(float64(st.turns), 4)
	return v
}

// hasHighByte reports whether p[s:e] holds a byte >= 0x80, eight bytes at
// a time; p must have 8 readable bytes past e (the text's padding).
func hasHighByte(p []byte, s, e int) bool {
	const hi = lsb * 0x80
	for i := s; i < e; i += 8 {
		if binary.LittleEndian.Uint64(p[i:i+8])&tailMask[min(e-i, 8)]&hi != 0 {
			return true
		}
	}
	return false
}

// cjkSpans splits the token p[s:e] for Spec.SplitCJK: every Chinese,
// Japanese or Korean character (a three-byte UTF-8 sequence in the ranges
// of isCJK) is a span of its own, and the runs between them are spans as
// they were. fn gets the spans in order.
func cjkSpans(p []byte, s, e int, fn func(s, e int)) {
	run := -1 // start of the current run of other bytes
	for i := s; i < e; {
		if c := p[i]; c >= 0xe2 && c <= 0xef && i+2 < e && p[i+1]&0xc0 == 0x80 && p[i+2]&0xc0 == 0x80 &&
			isCJK(rune(c&0x0f)<<12|rune(p[i+1]&0x3f)<<6|rune(p[i+2]&0x3f)) {
			if run >= 0 {
				fn(run, i)
				run = -1
			}
			fn(i, i+3)
			i += 3
			continue
		}
		if run < 0 {
			run = i
		}
		i++
	}
	if run >= 0 {
		fn(run, e)
	}
}

// isCJK reports the characters Spec.SplitCJK makes tokens of their own:
// CJK radicals, symbols and punctuation, kana, the CJK unified and
// compatibility ideographs, Hangul syllables and the full-width forms.
func isCJK(r rune) bool {
	return r >= 0x2e80 && r <= 0x9fff || r >= 0xac00 && r <= 0xd7af || r >= 0xf900 && r <= 0xfaff || r >= 0xff00 && r <= 0xffef
}

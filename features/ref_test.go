package features

import (
	"math"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"
)

// refExtract is a slow, obvious implementation of Extract, written from the
// rules in the doc comments without the fast paths (no byte tables, no
// word masks, no packed counters, no chunks). Tests and the fuzzer hold
// Extract to it. It shares only the hash primitives and numericValues.
func refExtract(e *Extractor, in Input) Vector {
	spec := e.spec
	var st textStats

	// The text: Prompt, else the messages joined with "\n"; as segments,
	// because marker look-ahead stops at a message boundary.
	var segs []string
	if in.Prompt != "" || len(in.Messages) == 0 {
		segs = []string{in.Prompt}
		if in.Prompt != "" {
			st.turns = 1
		}
	} else {
		st.turns = len(in.Messages)
		for i, m := range in.Messages {
			if i > 0 {
				segs = append(segs, "\n")
			}
			segs = append(segs, m.Content)
		}
	}
	budget := spec.MaxBytes
	for i, s := range segs {
		st.fullLen += len(s)
		s = s[:min(len(s), budget)]
		budget -= len(s)
		segs[i] = s
	}
	raw := strings.Join(segs, "")
	st.scanned = len(raw)

	// Counts over the scanned prefix.
	for _, s := range segs {
		for i := 0; i < len(s); i++ {
			c := s[i]
			switch {
			case c >= '0' && c <= '9':
				st.digits++
			case c >= 0x80:
				st.nonASCII++
			case c == '\n':
				st.newlines++
			case c == '?':
				st.questions++
			}
			if strings.IndexByte("=+^$", c) >= 0 {
				st.math++
			}
			if c == '\\' && i+1 < len(s) && (s[i+1] >= 'a' && s[i+1] <= 'z' || s[i+1] >= 'A' && s[i+1] <= 'Z') {
				st.math++ // LaTeX
			}
			if strings.IndexByte("+-*/^=<>", c) >= 0 {
				if i > 0 && s[i-1] >= '0' && s[i-1] <= '9' {
					st.math++
				}
				if i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9' {
					st.math++
				}
			}
		}
		for _, marker := range []string{"{", "}", ";\n", ";\r\n", "```", "==", "!=", "->", "=>", "::", "&&", "||"} {
			for i := 0; i+len(marker) <= len(s); i++ {
				if s[i:i+len(marker)] == marker { // overlapping: "===" holds two
					st.code++
				}
			}
		}
	}

	// Normalise: lowercase ASCII, other whitespace to ' ', collapse runs
	// of ' ' and of '\n', trim.
	var norm []byte
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case c == '\t' || c == '\r' || c == '\v' || c == '\f':
			c = ' '
		}
		if (c == ' ' || c == '\n') && len(norm) > 0 && norm[len(norm)-1] == c {
			continue
		}
		norm = append(norm, c)
	}
	text := []byte(strings.Trim(string(norm), " \n"))
	padded := append(slices.Clone(text), make([]byte, 8)...)

	// Tokens.
	isWord := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c >= 0x80 }
	var toks []uint64
	for i := 0; i < len(text); {
		if !isWord(text[i]) {
			i++
			continue
		}
		s := i
		for i < len(text) && isWord(text[i]) {
			i++
		}
		if slices.Contains(codeWords[:], string(text[s:i])) {
			st.code++
		}
		if !spec.SplitCJK {
			toks = append(toks, tokenHash(padded, s, i, e.wordBase))
			continue
		}
		// Split at every CJK character, decoding runes rather than
		// matching bytes.
		run := s
		for k := s; k < i; {
			r, size := utf8.DecodeRune(text[k:i])
			cjk := size == 3 && (r >= 0x2e80 && r <= 0x9fff || r >= 0xac00 && r <= 0xd7af || r >= 0xf900 && r <= 0xfaff || r >= 0xff00 && r <= 0xffef)
			if !cjk {
				k += size
				continue
			}
			if run < k {
				toks = append(toks, tokenHash(padded, run, k, e.wordBase))
			}
			toks = append(toks, tokenHash(padded, k, k+3, e.wordBase))
			k += 3
			run = k
		}
		if run < i {
			toks = append(toks, tokenHash(padded, run, i, e.wordBase))
		}
	}
	st.tokens = len(toks)

	var v Vector
	block := func(start int) {
		w := 1.0
		if spec.Normalize == NormalizeL2 && len(v.Idx) > start {
			w = 1 / math.Sqrt(float64(len(v.Idx)-start))
		}
		for len(v.Val) < len(v.Idx) {
			v.Val = append(v.Val, w)
		}
	}
	if lo, hi := spec.WordNgrams[0], spec.WordNgrams[1]; hi > 0 {
		for m := lo; m <= hi; m++ {
			for i := 0; i+m <= len(toks); i++ {
				g := toks[i+m-1]
				for j := i + m - 2; j >= i; j-- {
					g = combine(g, toks[j])
				}
				v.Idx = append(v.Idx, slot(g^e.wordSeed[m], e.shift))
			}
		}
		block(0)
	}
	if lo, hi := spec.CharNgrams[0], spec.CharNgrams[1]; hi > 0 {
		start := len(v.Idx)
		for i := range text {
			for m := lo; m <= min(hi, i+1); m++ {
				v.Idx = append(v.Idx, e.charSlot(text[i+1-m:i+1]))
			}
		}
		block(start)
	}
	if spec.Numeric {
		for i, x := range numericValues(&st) {
			if x != 0 {
				v.Idx = append(v.Idx, int32(1<<spec.HashBits+i))
				v.Val = append(v.Val, x)
			}
		}
	}
	if spec.Meta {
		var keys []string
		if len(spec.MetaKeys) > 0 {
			for _, k := range spec.MetaKeys {
				if _, ok := in.Meta[k]; ok {
					keys = append(keys, k)
				}
			}
			sort.Strings(keys)
		} else {
			for k := range in.Meta {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			keys = keys[:min(len(keys), maxMetaKeys)]
		}
		for _, k := range keys {
			h := hashString(truncate(k), e.metaSeed)
			h = hashString(truncate(in.Meta[k]), h^k2)
			idx := slot(h, e.shift)
			if spec.MetaBits > 0 {
				idx = int32(spec.MetaBase()) + slot(h, uint(64-spec.MetaBits))
			}
			v.Idx = append(v.Idx, idx)
			v.Val = append(v.Val, 1)
		}
	}
	return v
}

// charSlot is the slot of one char gram (at most MaxCharN bytes),
// computed the plain way: the reference for the masked arithmetic of
// chars and chars35.
func (e *Extractor) charSlot(gram []byte) int32 {
	var key uint64
	for _, c := range gram {
		key = key<<8 | uint64(e.cperm[c])
	}
	return int32(key * e.cmul[len(gram)] >> e.shift)
}

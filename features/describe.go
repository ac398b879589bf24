package features

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Describe calls fn for every feature occurrence Extract would emit for in,
// in the same order and with the same index and value, plus a readable
// name: "word:foo bar", "char:abc" (quoted when it holds spaces or
// unprintable bytes, e.g. `char:" th"`), "num:len_chars",
// "meta:subject=law". It is for explaining a decision, not the serving
// path: it allocates. Like Extract, it is not safe for concurrent use.
func (e *Extractor) Describe(in Input, fn func(idx int32, val float64, name string)) {
	var v Vector
	e.Extract(&v, in)
	names := e.names(in, len(v.Idx))
	if len(names) != len(v.Idx) {
		panic("features: Describe named " + strconv.Itoa(len(names)) + " features, Extract emitted " + strconv.Itoa(len(v.Idx)))
	}
	for i, name := range names {
		fn(v.Idx[i], v.Val[i], name)
	}
}

// names walks the text Extract just prepared in e.buf the way Extract does
// and returns a name per occurrence. A test holds the two walks together.
func (e *Extractor) names(in Input, n int) []string {
	out := make([]string, 0, n)
	text := e.text

	if lo, hi := e.spec.WordNgrams[0], e.spec.WordNgrams[1]; hi > 0 {
		var toks []string
		for i := 0; i < len(text); {
			if !wordTab[text[i]] {
				i++
				continue
			}
			s := i
			for i < len(text) && wordTab[text[i]] {
				i++
			}
			if e.splitCJK {
				cjkSpans(text, s, i, func(s, end int) { toks = append(toks, show(text[s:end])) })
				continue
			}
			toks = append(toks, show(text[s:i]))
		}
		for m := lo; m <= min(hi, len(toks)); m++ {
			for i := 0; i+m <= len(toks); i++ {
				out = append(out, "word:"+strings.Join(toks[i:i+m], " "))
			}
		}
	}

	if lo, hi := e.spec.CharNgrams[0], e.spec.CharNgrams[1]; hi > 0 {
		for i := range text {
			for m := lo; m <= min(hi, i+1); m++ {
				out = append(out, "char:"+show(text[i+1-m:i+1]))
			}
		}
	}

	if e.spec.Numeric {
		for i, x := range numericValues(&e.st) {
			if x != 0 {
				out = append(out, numericNames[i])
			}
		}
	}

	if e.spec.Meta && len(in.Meta) > 0 {
		for _, k := range e.sortedMetaKeys(in.Meta) {
			if v, ok := in.Meta[k]; ok {
				out = append(out, "meta:"+truncate(k)+"="+truncate(v))
			}
		}
	}
	return out
}

// show returns b as is when it reads cleanly, else Go-quoted, so spaces,
// newlines and invalid UTF-8 are visible in an explanation.
func show(b []byte) string {
	s := string(b)
	if !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if !unicode.IsGraphic(r) || unicode.IsSpace(r) || r == '"' {
			return strconv.Quote(s)
		}
	}
	return s
}

package proxy

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"github.com/triage-router/triage/datasets"
)

// A scanner for JSON that is known to be valid (validJSON, or a
// successful json.Unmarshal of the same bytes): it finds where an
// object's members are, so the proxy can read a few fields and copy or
// replace the others as they are, instead of decoding a body into a
// map[string]json.RawMessage and encoding it again. Those round trips
// were most of the JSON work of a speculating request (about two thirds of
// BenchmarkSpeculateJSON's CPU profile, and 150 allocations where 48
// remain). On invalid input the functions report !ok instead of
// panicking; they do not validate.

// validJSON reports whether b is one valid JSON value: what json.Valid
// says (FuzzValidAgrees), in well under half its time. It was a third of
// reading a fast answer with its log-probabilities, and every request
// body and answer the proxy reads is checked with it.
func validJSON(b []byte) bool { return gjson.ValidBytes(b) }

// member is one member of a JSON object: b[start:end] is `"key": value`,
// b[val:end] the value.
type member struct {
	key             []byte // unescaped
	start, val, end int
}

func (m *member) is(name string) bool { return string(m.key) == name }

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd is the index after the string starting at b[i] == '"'. It
// jumps from quote to quote (bytes.IndexByte), and a quote ends the
// string when an even number of backslashes precede it.
func stringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			return -1
		}
		i += q
		n := 0
		for k := i - 1; b[k] == '\\'; k-- { // stops at the opening quote
			n++
		}
		if n%2 == 0 {
			return i + 1
		}
	}
	return -1
}

// structural marks the bytes valueEnd stops at inside an object or
// array: a table lookup per byte is cheaper than a switch.
var structural = [256]bool{'"': true, '{': true, '[': true, '}': true, ']': true}

// valueEnd is the index after the value starting at b[i], or -1.
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			if !structural[b[i]] {
				continue
			}
			switch b[i] {
			case '"':
				e := stringEnd(b, i)
				if e < 0 {
					return -1
				}
				i = e - 1
			case '{', '[':
				depth++
			default:
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return -1
	}
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// members appends to dst the members of the object whose first byte
// (after white space) is b[i], in order, duplicates included.
func members(dst []member, b []byte, i int) ([]member, bool) {
	prev := i // a member starts at the first quote after the last value
	end := eachMember(b, i, func(key []byte, v int) int {
		ve := valueEnd(b, v)
		if ve < 0 {
			return -1
		}
		start := prev + bytes.IndexByte(b[prev:v], '"')
		dst = append(dst, member{key: key, start: start, val: v, end: ve})
		prev = ve
		return ve
	})
	return dst, end >= 0
}

// eachMember walks the members of the object whose first byte (after
// white space) is b[i], in order, calling f with each key (unescaped)
// and the index of its value. f returns the index after the value: it
// may read the value in place as it finds its end, so a caller that
// reads nested values scans each byte once, where members, which finds
// every value's end first, makes the caller scan it again. f returns -1
// to stop the walk. eachMember returns the index after the object's '}',
// or -1.
func eachMember(b []byte, i int, f func(key []byte, v int) int) int {
	i = skipWS(b, i)
	if i >= len(b) || b[i] != '{' {
		return -1
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1
	}
	for i < len(b) && b[i] == '"' {
		ke := stringEnd(b, i)
		if ke < 0 {
			return -1
		}
		key := b[i+1 : ke-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			var k string
			if json.Unmarshal(b[i:ke], &k) != nil {
				return -1
			}
			key = []byte(k)
		}
		v := skipWS(b, ke)
		if v >= len(b) || b[v] != ':' {
			return -1
		}
		v = skipWS(b, v+1)
		if v >= len(b) {
			// Cut after the colon: there is no value for f to read.
			return -1
		}
		ve := f(key, v)
		if ve < 0 {
			return -1
		}
		i = skipWS(b, ve)
		if i < len(b) && b[i] == '}' {
			return i + 1
		}
		if i >= len(b) || b[i] != ',' {
			return -1
		}
		i = skipWS(b, i+1)
	}
	return -1
}

// eachElement walks the elements of the array whose first byte (after
// white space) is b[i], calling f with the index of each; f returns the
// index after the element, or -1 to stop. eachElement returns the index
// after the array's ']', or -1.
func eachElement(b []byte, i int, f func(v int) int) int {
	i = skipWS(b, i)
	if i >= len(b) || b[i] != '[' {
		return -1
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1
	}
	for i < len(b) {
		e := f(i)
		if e < 0 {
			return -1
		}
		i = skipWS(b, e)
		if i < len(b) && b[i] == ']' {
			return i + 1
		}
		if i >= len(b) || b[i] != ',' {
			return -1
		}
		i = skipWS(b, i+1)
	}
	return -1
}

// entriesUpTo counts the members of the object, or the elements of the
// array, at b[i], stopping at max: a cap refuses with it before one entry
// is decoded. Anything else counts 0 (the decoder says what is wrong).
func entriesUpTo(b []byte, i, max int) int {
	n := 0
	count := func(v int) int {
		if n++; n >= max {
			return -1
		}
		return valueEnd(b, v)
	}
	switch i = skipWS(b, i); {
	case i >= len(b):
	case b[i] == '{':
		eachMember(b, i, func(_ []byte, v int) int { return count(v) })
	case b[i] == '[':
		eachElement(b, i, count)
	}
	return n
}

// last is the index in ms of the last member named name, or -1: the one
// encoding/json would have decoded.
func last(ms []member, name string) int {
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].is(name) {
			return i
		}
	}
	return -1
}

// shadowed reports whether a later member of ms has ms[i]'s name.
func shadowed(ms []member, i int) bool {
	for _, m := range ms[i+1:] {
		if string(m.key) == string(ms[i].key) {
			return true
		}
	}
	return false
}

// partsText is datasets.PartsText of a message's content in a body the
// proxy has found valid, reading an array of content parts in place
// (FuzzPartsTextAgrees): decoding each part into a value cost 152 MB
// and 0.36 s for a 16 MiB body of one message of tiny text parts, and
// no cap counts parts. A string or null content is PartsText's.
func partsText(raw []byte, kinds ...string) (string, error) {
	raw = raw[skipWS(raw, 0):]
	if len(raw) == 0 || raw[0] != '[' {
		return datasets.PartsText(raw, kinds...)
	}
	text, end, ok := partsTextAt(raw, 0, kinds)
	if !ok || skipWS(raw, end) != len(raw) {
		return "", &datasets.ContentError{Kind: "array of something other than content parts"}
	}
	return text, nil
}

// partsTextAt reads the array of content parts at raw[i] as partsText
// does, and returns its text and the index after the array: a reader
// that needs the array's end (messageInPlace) finds it and the text in
// one scan. False where the array is not one of content parts, which
// partsText words.
func partsTextAt(raw []byte, i int, kinds []string) (string, int, bool) {
	var b strings.Builder
	ok := true
	end := eachElement(raw, i, func(e int) int {
		switch raw[e] {
		case 'n':
			return valueEnd(raw, e) // a null part decodes to a part of no type
		case '{':
		default:
			ok = false
			return -1
		}
		// As encoding/json reads them into PartsText's parts: the keys
		// in any case, a later one replacing an earlier one, null
		// changing nothing, and any other value than a string an error.
		var typ, text []byte
		pe := eachMember(raw, e, func(key []byte, v int) int {
			end := valueEnd(raw, v)
			if end < 0 {
				return -1
			}
			isType, isText := bytes.EqualFold(key, []byte("type")), bytes.EqualFold(key, []byte("text"))
			switch val := raw[v:end]; {
			case !isType && !isText || string(val) == "null":
			case val[0] != '"':
				ok = false
				return -1
			case isType:
				typ = val
			default:
				text = val
			}
			return end
		})
		if pe < 0 {
			ok = false
			return -1
		}
		if typ != nil && isKind(typ, kinds) {
			if b.Len() > 0 {
				b.WriteByte('\n')
			}
			switch {
			case text == nil:
			case !utf8.Valid(text):
				// encoding/json makes each invalid byte U+FFFD, and so
				// must this, or the router would see other text than
				// a log of the same request decoded by train does.
				var s string
				_ = json.Unmarshal(text, &s)
				b.WriteString(s)
			case bytes.IndexByte(text, '\\') < 0:
				b.Write(text[1 : len(text)-1])
			default:
				s, _ := scanString(text) // escaped: only then decoded
				b.WriteString(s)
			}
		}
		return pe
	})
	if !ok || end < 0 {
		return "", -1, false
	}
	return b.String(), end, true
}

// isKind reports whether the JSON string q is one of kinds, without
// allocating unless it is escaped.
func isKind(q []byte, kinds []string) bool {
	if bytes.IndexByte(q, '\\') >= 0 {
		t, _ := scanString(q)
		return slices.Contains(kinds, t)
	}
	for _, k := range kinds {
		if string(q[1:len(q)-1]) == k {
			return true
		}
	}
	return false
}

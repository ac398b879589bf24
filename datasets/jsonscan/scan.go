package jsonscan

import (
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Scanner reads JSON values from b at i. Methods that read a value expect
// i at its first byte (Object skips the white space before each value);
// on false, i is unspecified and the caller gives up.
type Scanner struct {
	b   []byte
	i   int
	buf []byte // scratch for strings with escapes
}

// New returns a Scanner at the start of b.
func New(b []byte) Scanner { return Scanner{b: b} }

// End skips white space and reports whether nothing else follows.
func (s *Scanner) End() bool {
	s.ws()
	return s.i == len(s.b)
}

func (s *Scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// consume skips white space and then c, reporting whether c was there.
func (s *Scanner) consume(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// Object reads an object, calling field for each key with s at the value;
// field reads the value and reports success (false, as for an unknown key,
// stops the scan). Keys are passed undecoded and valid only during the
// call, so a key with an escape or a non-ASCII byte, which encoding/json
// might match to a field in another spelling, makes Object fail.
func (s *Scanner) Object(field func(key []byte) bool) bool {
	return s.list('{', '}', func() bool {
		q, ok := s.Quoted()
		if !ok || !s.consume(':') {
			return false
		}
		s.ws()
		return field(q[1 : len(q)-1])
	})
}

// Fields is Object for a struct whose keys may each appear once: field
// reads the value of key and returns the key's bit (a distinct power of
// two per key, 0 for an unknown key). An unknown or repeated key fails,
// as encoding/json would decode a repeated one into what the first left,
// not into a fresh value.
func (s *Scanner) Fields(field func(key []byte) (bit uint, ok bool)) bool {
	var seen uint
	return s.Object(func(key []byte) bool {
		bit, ok := field(key)
		if !ok || bit == 0 || seen&bit != 0 {
			return false
		}
		seen |= bit
		return true
	})
}

// Array reads an array, calling elem with s at each element; elem reads
// it and reports success.
func (s *Scanner) Array(elem func() bool) bool { return s.list('[', ']', elem) }

// list reads open, elements separated by commas, and close, calling elem
// with s at each element.
func (s *Scanner) list(open, close byte, elem func() bool) bool {
	if !s.consume(open) {
		return false
	}
	if s.consume(close) {
		return true
	}
	for {
		s.ws()
		if !elem() {
			return false
		}
		if !s.consume(',') {
			return s.consume(close)
		}
	}
}

// Quoted reads a string without escapes, control characters or non-ASCII
// bytes and returns it with its quotes, as a field's UnmarshalJSON would
// receive it. Such a string decodes to its bytes.
func (s *Scanner) Quoted() ([]byte, bool) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false
	}
	for j := s.i + 1; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			q := s.b[s.i : j+1]
			s.i = j + 1
			return q, true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, false
		}
	}
	return nil, false
}

// Str reads a string as encoding/json decodes it into a Go string, except
// that invalid UTF-8 (which encoding/json replaces with U+FFFD) fails.
func (s *Scanner) Str() (string, bool) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return "", false
	}
	start := s.i + 1
	ascii := true
	for j := start; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			if !ascii && !utf8.Valid(s.b[start:j]) {
				return "", false
			}
			s.i = j + 1
			return string(s.b[start:j]), true
		case c == '\\':
			return s.escaped(start, j, ascii)
		case c < 0x20:
			return "", false
		case c >= 0x80:
			ascii = false
		}
	}
	return "", false
}

// escaped finishes Str for a string whose first escape is at j; ascii
// says whether the bytes before it were.
func (s *Scanner) escaped(start, j int, ascii bool) (string, bool) {
	if cap(s.buf) < len(s.b)-start {
		// The rest of the input bounds the string: one allocation per
		// Scanner, however many escaped strings it reads.
		s.buf = make([]byte, 0, len(s.b)-start)
	}
	out := append(s.buf[:0], s.b[start:j]...)
	for j < len(s.b) {
		c := s.b[j]
		switch {
		case c == '"':
			// Escapes append valid UTF-8; only raw bytes need the check.
			if !ascii && !utf8.Valid(out) {
				return "", false
			}
			s.i = j + 1
			return string(out), true
		case c < 0x20:
			return "", false
		case c != '\\':
			if c >= 0x80 {
				ascii = false
			}
			out = append(out, c)
			j++
			continue
		}
		if j+1 >= len(s.b) {
			return "", false
		}
		e := s.b[j+1]
		j += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r := hex4(s.b, j)
			if r < 0 {
				return "", false
			}
			j += 4
			if utf16.IsSurrogate(r) {
				// A pair decodes to one rune; anything else is U+FFFD and
				// the next escape is read on its own, as encoding/json does.
				dec := unicode.ReplacementChar
				if j+1 < len(s.b) && s.b[j] == '\\' && s.b[j+1] == 'u' {
					if r1 := hex4(s.b, j+2); r1 >= 0 {
						if dec = utf16.DecodeRune(r, r1); dec != unicode.ReplacementChar {
							j += 6
						}
					}
				}
				r = dec
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", false
		}
	}
	return "", false
}

// hex4 is the value of the four hex digits at b[i:], or -1.
func hex4(b []byte, i int) rune {
	if i+4 > len(b) {
		return -1
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// Number reads a number literal of JSON's grammar and returns its text,
// which is what json.Number holds.
func (s *Scanner) Number() ([]byte, bool) {
	b, i := s.b, s.i
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		return nil, false
	}
	if i < len(b) && b[i] == '.' {
		n := i + 1
		if i = digits(b, n); i == n {
			return nil, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		n := i
		if i = digits(b, n); i == n {
			return nil, false
		}
	}
	s.i = i
	return b[start:i], true
}

// digits is the index after the ASCII digits at b[i:].
func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// Float reads a number as encoding/json decodes it into a float64; a
// value out of range fails, as it does there.
func (s *Scanner) Float() (float64, bool) {
	lit, ok := s.Number()
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(lit), 64)
	return v, err == nil
}

// FloatPtr is Float into a new float64, as encoding/json fills a *float64.
func (s *Scanner) FloatPtr() (*float64, bool) {
	v, ok := s.Float()
	if !ok {
		return nil, false
	}
	return &v, true
}

// Int reads a number as encoding/json decodes it into an int: a fraction,
// an exponent or a value out of range fails.
func (s *Scanner) Int() (int, bool) {
	lit, ok := s.Number()
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(string(lit), 10, strconv.IntSize)
	return int(v), err == nil
}

// Literal reads the keyword lit (true, false or null).
func (s *Scanner) Literal(lit string) bool {
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

// Bool reads true or false.
func (s *Scanner) Bool() (v, ok bool) {
	switch {
	case s.Literal("true"):
		return true, true
	case s.Literal("false"):
		return false, true
	}
	return false, false
}

// StringMap reads an object as datasets.Meta's UnmarshalJSON does: string,
// number and boolean values kept as strings (a number as its literal, as
// json.Number keeps it), null meaning absent, a repeated key's last value
// winning. Unlike Object's keys, these may hold escapes.
func (s *Scanner) StringMap() (map[string]string, bool) { return s.stringMap(false) }

// UniqueStringMap is StringMap for a caller that refuses a repeated key
// (a log's meta, where the last value winning would hide which one the
// user meant): it fails on one, and the caller falls back to a decoder
// that explains.
func (s *Scanner) UniqueStringMap() (map[string]string, bool) { return s.stringMap(true) }

func (s *Scanner) stringMap(unique bool) (map[string]string, bool) {
	m := map[string]string{}
	var seen map[string]bool
	if unique {
		seen = map[string]bool{}
	}
	ok := s.list('{', '}', func() bool {
		key, ok := s.Str()
		if !ok || !s.consume(':') {
			return false
		}
		if unique {
			if seen[key] {
				return false
			}
			seen[key] = true
		}
		s.ws()
		v, null, ok := s.metaValue()
		switch {
		case !ok:
			return false
		case null:
			delete(m, key)
		default:
			m[key] = v
		}
		return true
	})
	if !ok {
		return nil, false
	}
	return m, true
}

// metaValue reads one of StringMap's values, or null.
func (s *Scanner) metaValue() (v string, null, ok bool) {
	switch c := s.peek(); {
	case c == '"':
		v, ok = s.Str()
		return v, false, ok
	case c == '-' || c >= '0' && c <= '9':
		lit, ok := s.Number()
		return string(lit), false, ok
	case s.Literal("true"):
		return "true", false, true
	case s.Literal("false"):
		return "false", false, true
	case s.Literal("null"):
		return "", true, true
	}
	return "", false, false
}

// peek is the byte at i, or 0 at the end.
func (s *Scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// message is the shape of a chat turn in both datasets and serve.
type message = struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Messages reads an array of {"role": string, "content": string} objects
// into a new slice ([] is an empty slice, not nil, as in encoding/json). A
// repeated key or another key fails.
func Messages[M ~message](s *Scanner) ([]M, bool) { return messages[M](s, false) }

// MessagesWithContent is Messages that also fails on a message without
// content, for a caller that refuses one (`"content": ""` is read).
func MessagesWithContent[M ~message](s *Scanner) ([]M, bool) { return messages[M](s, true) }

func messages[M ~message](s *Scanner, needContent bool) ([]M, bool) {
	out := []M{}
	ok := s.Array(func() bool {
		var m message
		var content bool
		// Fields: a repeated role or content is left to the caller's
		// fallback decoder, which knows what it means there; so is a
		// message without content, if the caller needs it.
		ok := s.Fields(func(key []byte) (bit uint, ok bool) {
			switch string(key) {
			case "role":
				bit = 1
				m.Role, ok = s.Str()
			case "content":
				bit = 2
				m.Content, ok = s.Str()
				content = true
			}
			return bit, ok
		})
		out = append(out, M(m))
		return ok && (content || !needContent)
	})
	if !ok {
		return nil, false
	}
	return out, true
}

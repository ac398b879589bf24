package jsonscan

import (
	"encoding/json"
	"math"
	"testing"
	"unicode/utf8"
)

func TestStr(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
		want string
	}{
		{"a plain string is its bytes", `"hello"`, true, "hello"},
		{"every short escape decodes", `"\"\\\/\b\f\n\r\t"`, true, "\"\\/\b\f\n\r\t"},
		{"a \\u escape decodes to UTF-8", `"caf\u00e9"`, true, "café"},
		{"a surrogate pair is one rune", `"\ud83d\ude00"`, true, "😀"},
		{"a lone surrogate is U+FFFD", `"\ud800x"`, true, "\uFFFDx"},
		{"a high surrogate before a non-surrogate escape keeps both", `"\ud800\u0041"`, true, "\uFFFDA"},
		{"two high surrogates are two U+FFFD", `"\ud800\ud800"`, true, "\uFFFD\uFFFD"},
		{"raw UTF-8 is kept", `"é😀"`, true, "é😀"},
		{"invalid UTF-8 is left to encoding/json", "\"\xff\"", false, ""},
		{"a control character fails", "\"a\x01\"", false, ""},
		{"a short \\u escape fails", `"\u00"`, false, ""},
		{"an unknown escape fails", `"\x"`, false, ""},
		{"an unterminated string fails", `"abc`, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New([]byte(tt.in))
			got, ok := s.Str()
			ok = ok && s.End()
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNumber(t *testing.T) {
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"zero", `0`, true},
		{"a negative fraction with an exponent", `-1.25e-3`, true},
		{"an upper-case exponent with a sign", `1E+2`, true},
		{"a leading zero fails", `01`, false},
		{"a bare minus fails", `-`, false},
		{"a dot without digits fails", `1.`, false},
		{"an exponent without digits fails", `1e`, false},
		{"a plus sign fails", `+1`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New([]byte(tt.in))
			got, ok := s.Number()
			ok = ok && s.End()
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if ok && string(got) != tt.in {
				t.Errorf("got %q, want %q", got, tt.in)
			}
		})
	}
}

// agrees fails t if read accepts b, with only white space around the
// value, and encoding/json does not decode b to the same T.
func agrees[T any](t *testing.T, b []byte, read func(*Scanner) (T, bool), same func(got, want T) bool) {
	t.Helper()
	s := New(b)
	s.ws()
	got, ok := read(&s)
	if !ok || !s.End() {
		return
	}
	var want T
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatalf("%T: scanner accepted %q, encoding/json says %v", want, b, err)
	}
	if !same(got, want) {
		t.Fatalf("%q: scanner %v, encoding/json %v", b, got, want)
	}
}

func equal[T comparable](got, want T) bool { return got == want }

var stringSeeds = []string{
	`""`, `"x"`, `"a\nb\t\"q\" \\ \/ \b\f\r"`, `"caf\u00e9 \ud83d\ude00 \ud800 \udc00x \ud800\u0041 \uD834\uDD1E"`,
	`"\ud800\ud800\udc00"`, `"\u00"`, `"\x"`, "\"a\x01\"", "\"\xff\"", `"é"`, `"abc`, ` "x" `,
}

// FuzzStringMatchesEncodingJSON: whatever Str or Quoted accepts,
// encoding/json decodes to the same string; and Str accepts whatever
// encoding/json writes for a valid UTF-8 string.
func FuzzStringMatchesEncodingJSON(f *testing.F) {
	for _, s := range stringSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		agrees(t, b, (*Scanner).Str, equal)
		agrees(t, b, func(s *Scanner) (string, bool) {
			q, ok := s.Quoted()
			if !ok {
				return "", false
			}
			return string(q[1 : len(q)-1]), true
		}, equal)
		if !utf8.Valid(b) {
			return
		}
		enc, err := json.Marshal(string(b))
		if err != nil {
			t.Fatal(err)
		}
		s := New(enc)
		if got, ok := s.Str(); !ok || !s.End() || got != string(b) {
			t.Fatalf("Str(%s) = %q, %v; want %q, true", enc, got, ok, b)
		}
	})
}

// FuzzNumberMatchesEncodingJSON: whatever Number, Float or Int accepts,
// encoding/json decodes to the same json.Number, float64 (to the bit, so
// -0 too) or int; and Float accepts whatever encoding/json writes for a
// finite float64.
func FuzzNumberMatchesEncodingJSON(f *testing.F) {
	for _, s := range []string{`0`, `-0`, `1`, `-1.25e-3`, `1E+2`, `01`, `1.`, `1e`, `-`, `1e999`, `9223372036854775808`, `1.5`, `+1`, ` 7 `} {
		f.Add([]byte(s), 0.0)
	}
	f.Add([]byte(`0`), 1e300)
	f.Add([]byte(`0`), -5e-324)
	f.Fuzz(func(t *testing.T, b []byte, x float64) {
		agrees(t, b, func(s *Scanner) (json.Number, bool) {
			lit, ok := s.Number()
			return json.Number(lit), ok
		}, equal)
		agrees(t, b, (*Scanner).Float, func(got, want float64) bool {
			return math.Float64bits(got) == math.Float64bits(want)
		})
		agrees(t, b, (*Scanner).Int, equal)
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return
		}
		enc, err := json.Marshal(x)
		if err != nil {
			t.Fatal(err)
		}
		s := New(enc)
		if got, ok := s.Float(); !ok || !s.End() || math.Float64bits(got) != math.Float64bits(x) {
			t.Fatalf("Float(%s) = %v, %v; want %v, true", enc, got, ok, x)
		}
	})
}

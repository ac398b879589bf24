package features

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestSpecJSONRoundTrip(t *testing.T) {
	for name, spec := range testSpecs() {
		t.Run(name, func(t *testing.T) {
			b, err := json.Marshal(spec)
			if err != nil {
				t.Fatal(err)
			}
			var got Spec
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, spec) {
				t.Errorf("round trip through %s:\n got %+v\nwant %+v", b, got, spec)
			}
		})
	}
}

func TestSpecJSONFieldNames(t *testing.T) {
	spec := fullSpec()
	spec.MetaKeys = []string{"subject"}
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"version":2,"hash_bits":18,"seed":0,"word_ngrams":[1,2],"char_ngrams":[3,5],"numeric":true,"meta":true,"meta_keys":["subject"],"normalize":"l2","max_bytes":32768,"split_cjk":true,"meta_bits":12}`
	if string(b) != want {
		t.Errorf("DefaultSpec with meta_keys marshals as\n%s\nwant\n%s", b, want)
	}
}

func TestValidate(t *testing.T) {
	with := func(f func(*Spec)) Spec {
		s := fullSpec()
		f(&s)
		return s
	}
	tests := []struct {
		name string
		spec Spec
		want string // substring of the error; "" for valid
	}{
		{"the default spec is valid", fullSpec(), ""},
		{"every test spec is valid", testSpecs()["only meta, seed"], ""},
		{"the zero spec names the versions", Spec{}, "version is 0, this build reads versions 1..2"},
		{"a future version is refused", with(func(s *Spec) { s.Version = 3 }), "version is 3"},
		{"version 1 is still read", v1Spec(fullSpec()), ""},
		{"version 1 cannot split CJK", with(func(s *Spec) { s.Version = 1; s.MetaBits = 0 }), "split_cjk and meta_bits need version 2"},
		{"version 1 has no meta block", with(func(s *Spec) { s.Version = 1; s.SplitCJK = false }), "split_cjk and meta_bits need version 2"},
		{"meta bits below 4", with(func(s *Spec) { s.MetaBits = 3 }), "meta_bits is 3, want 0 (meta among the hashed slots) or 4..16"},
		{"meta bits above 16", with(func(s *Spec) { s.MetaBits = 17 }), "meta_bits is 17"},
		{"meta bits 0 keeps meta among the hashed slots", with(func(s *Spec) { s.MetaBits = 0 }), ""},
		{"hash bits below 10", with(func(s *Spec) { s.HashBits = 9 }), "hash_bits is 9, want 10..24"},
		{"hash bits above 24", with(func(s *Spec) { s.HashBits = 25 }), "hash_bits is 25, want 10..24"},
		{"hash bits at the limits", with(func(s *Spec) { s.HashBits = 10 }), ""},
		{"word range reversed", with(func(s *Spec) { s.WordNgrams = [2]int{2, 1} }), "word_ngrams is [2, 1], want 1 <= lo <= hi <= 4"},
		{"word range from zero", with(func(s *Spec) { s.WordNgrams = [2]int{0, 2} }), "word_ngrams is [0, 2]"},
		{"word range too long", with(func(s *Spec) { s.WordNgrams = [2]int{1, 5} }), "word_ngrams is [1, 5]"},
		{"char range too long", with(func(s *Spec) { s.CharNgrams = [2]int{3, 9} }), "char_ngrams is [3, 9], want 1 <= lo <= hi <= 8"},
		{"char range negative", with(func(s *Spec) { s.CharNgrams = [2]int{-1, 3} }), "char_ngrams is [-1, 3]"},
		{"blocks off are fine", with(func(s *Spec) { s.CharNgrams = [2]int{}; s.WordNgrams = [2]int{} }), ""},
		{"unknown normalize", with(func(s *Spec) { s.Normalize = "L2" }), `normalize is "L2", want "l2" or "none"`},
		{"empty normalize", with(func(s *Spec) { s.Normalize = "" }), `normalize is ""`},
		{"max bytes zero", with(func(s *Spec) { s.MaxBytes = 0 }), "max_bytes is 0, want 1..16777216"},
		{"max bytes huge", with(func(s *Spec) { s.MaxBytes = 1 << 30 }), "max_bytes is 1073741824"},
		{"empty meta key", with(func(s *Spec) { s.MetaKeys = []string{"a", ""} }), "meta_keys[1] is empty"},
		{"repeated meta key", with(func(s *Spec) { s.MetaKeys = []string{"a", "b", "a"} }), `meta_keys lists "a" twice`},
		{"meta keys without meta", with(func(s *Spec) { s.Meta = false; s.MetaKeys = []string{"a"} }), "meta_keys is set but meta is false"},
		{"nothing on", Spec{Version: 1, HashBits: 12, Normalize: "none", MaxBytes: 1}, "every feature block is off"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.spec.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				if _, err := NewExtractor(tt.spec); err != nil {
					t.Fatalf("NewExtractor: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %q, want it to contain %q", err, tt.want)
			}
			if !errors.Is(err, ErrInvalidSpec) {
				t.Errorf("Validate() = %v, want it to wrap ErrInvalidSpec", err)
			}
			if _, err2 := NewExtractor(tt.spec); err2 == nil || err2.Error() != err.Error() {
				t.Errorf("NewExtractor error = %v, want %v", err2, err)
			}
		})
	}
}

func TestDim(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		want int
	}{
		{"default: 2^18 hashed slots, the numeric slots and 2^12 meta slots", fullSpec(), 1<<18 + NumNumeric + 1<<12},
		{"without numeric the meta block follows the hashed space", testSpecs()["no numeric"], 1<<18 + 1<<12},
		{"without meta no meta block", testSpecs()["no meta"], 1<<18 + NumNumeric},
		{"version 1: hashed and numeric slots", v1Spec(fullSpec()), 1<<18 + NumNumeric},
		{"10 bits", testSpecs()["hash bits 10"], 1<<10 + NumNumeric + 1<<12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.spec.Dim(); got != tt.want {
				t.Errorf("Dim() = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestExtractorSpecIsACopy(t *testing.T) {
	spec := fullSpec()
	spec.MetaKeys = []string{"b", "a"}
	e := mustExtractor(t, spec)
	spec.MetaKeys[0] = "changed"
	got := e.Spec()
	if !reflect.DeepEqual(got.MetaKeys, []string{"b", "a"}) {
		t.Errorf("Spec().MetaKeys = %q, want the keys as given, unaffected by the caller", got.MetaKeys)
	}
	got.MetaKeys[0] = "again"
	if e.Spec().MetaKeys[0] != "b" {
		t.Error("changing the returned spec changed the extractor")
	}
}

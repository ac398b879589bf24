package features

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
)

// testInputs are the inputs most tests run over: ordinary prose, the
// shapes that stress the fast paths (token and chunk boundaries, whitespace
// runs, markers at message edges) and hostile bytes.
func testInputs(tb testing.TB) map[string]Input {
	tb.Helper()
	p2k, err := os.ReadFile("testdata/prompt2k.txt")
	if err != nil {
		tb.Fatal(err)
	}
	long := strings.Repeat("a", 200)
	return map[string]Input{
		"empty":           {},
		"one word":        {Prompt: "Hello"},
		"sentence":        {Prompt: "Hello, World! How are you?"},
		"chinese":         {Prompt: "下列关于中国古代科举制度的说法，正确的是（  ）\nA. 始于唐朝 B. 始于隋朝", Meta: map[string]string{"subject": "历史"}},
		"mixed scripts":   {Prompt: "東京の天気はどうですか? Seoul 날씨 is 맑음; café naïve ｆｕｌｌ\xe4\xb8"},
		"prompt 2k":       {Prompt: string(p2k), Meta: map[string]string{"source": "bench"}},
		"mmlu":            {Prompt: "Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.\nA. 0\nB. 4\nC. 2\nD. 6\nAnswer:", Meta: map[string]string{"subject": "abstract_algebra", "source": "mmlu"}},
		"code":            {Prompt: "```go\nfunc main() {\n\tx := 1;\r\n\tif x == 2 && y != 3 || z => 4 {}\n\tstd::cout << x->y;\n}\n```\ndef f(): return lambda: None"},
		"latex":           {Prompt: `Compute \frac{1}{2} + \sqrt{x^2} = 3*4 - 5/6 $a<7$ >8 2023-11-27`},
		"whitespace only": {Prompt: " \t\n\r\n  "},
		"whitespace runs": {Prompt: "  lead\t\t tab  \n\n\n  new \r\n\r\n end  \n"},
		"invalid utf8":    {Prompt: "caf\xc3\xa9 \xff\xfe bad \xc3 tail \x80\x80\x80"},
		"nul bytes":       {Prompt: "a\x00b\x00\x00c ab\x00"},
		"long token":      {Prompt: long + " " + long[:63] + " x " + long[:64] + " " + long[:65]},
		"64 bytes":        {Prompt: strings.Repeat("abcdefg ", 8)},
		"127 bytes":       {Prompt: strings.Repeat("ab ", 42) + "c"},
		"upper":           {Prompt: "THE Quick BROWN fox"},
		"messages": {Messages: []Turn{
			{Role: "system", Content: "You are terse;"},
			{Role: "user", Content: "2+2?"},
			{Role: "assistant", Content: "4"},
			{Role: "user", Content: "And ```3*3```?"},
		}, Meta: map[string]string{"tenant": "acme"}},
		"empty messages": {Messages: []Turn{{Content: ""}, {Content: ""}}},
		"chunk edges":    {Prompt: strings.Repeat("x", scanChunk-1) + ";\n==" + strings.Repeat("y ", scanChunk) + "3+4"},
		"meta only":      {Meta: map[string]string{"b": "2", "a": "1", "": "", "c=d": "e"}},
		"unicode":        {Prompt: "Warum ist der Himmel blau? 为什么天空是蓝色的？ Ελληνικά"},
	}
}

// testSpecs are specs that exercise every switch of the recipe.
func testSpecs() map[string]Spec {
	d := fullSpec()
	with := func(f func(*Spec)) Spec {
		s := d
		f(&s)
		return s
	}
	return map[string]Spec{
		"default":         d,
		"words 1-4":       with(func(s *Spec) { s.WordNgrams = [2]int{1, 4} }),
		"words 2-3":       with(func(s *Spec) { s.WordNgrams = [2]int{2, 3} }),
		"chars 1-8":       with(func(s *Spec) { s.CharNgrams = [2]int{1, 8} }),
		"chars 4-4":       with(func(s *Spec) { s.CharNgrams = [2]int{4, 4} }),
		"words off":       with(func(s *Spec) { s.WordNgrams = [2]int{} }),
		"chars off":       with(func(s *Spec) { s.CharNgrams = [2]int{} }),
		"no numeric":      with(func(s *Spec) { s.Numeric = false }),
		"no meta":         with(func(s *Spec) { s.Meta = false }),
		"meta keys":       with(func(s *Spec) { s.MetaKeys = []string{"subject", "tenant", "a"} }),
		"normalize none":  with(func(s *Spec) { s.Normalize = NormalizeNone }),
		"max bytes 7":     with(func(s *Spec) { s.MaxBytes = 7 }),
		"max bytes 300":   with(func(s *Spec) { s.MaxBytes = 300 }),
		"hash bits 10":    with(func(s *Spec) { s.HashBits = 10; s.Seed = 99 }),
		"hash bits 24":    with(func(s *Spec) { s.HashBits = 24 }),
		"version 1":       v1Spec(d),
		"no CJK split":    with(func(s *Spec) { s.SplitCJK = false }),
		"meta bits 4":     with(func(s *Spec) { s.MetaBits = 4 }),
		"only numeric":    {Version: SpecVersion, HashBits: 12, Numeric: true, Normalize: NormalizeL2, MaxBytes: 100},
		"only meta, seed": {Version: SpecVersion, HashBits: 12, Meta: true, Seed: 7, Normalize: NormalizeNone, MaxBytes: 1},
	}
}

func mustExtractor(tb testing.TB, spec Spec) *Extractor {
	tb.Helper()
	e, err := NewExtractor(spec)
	if err != nil {
		tb.Fatalf("NewExtractor: %v", err)
	}
	return e
}

// sameVector reports the first difference between two vectors, or "".
func sameVector(got, want Vector) string {
	if len(got.Idx) != len(want.Idx) || len(got.Val) != len(want.Val) {
		return fmt.Sprintf("got %d/%d idx/val, want %d/%d", len(got.Idx), len(got.Val), len(want.Idx), len(want.Val))
	}
	for i := range got.Idx {
		if got.Idx[i] != want.Idx[i] || math.Float64bits(got.Val[i]) != math.Float64bits(want.Val[i]) {
			return fmt.Sprintf("at %d: got (%d, %v), want (%d, %v)", i, got.Idx[i], got.Val[i], want.Idx[i], want.Val[i])
		}
	}
	return ""
}

func TestExtractMatchesReference(t *testing.T) {
	for sname, spec := range testSpecs() {
		e := mustExtractor(t, spec)
		var got Vector // reused across inputs, as on the serving path
		for iname, in := range testInputs(t) {
			t.Run(sname+"/"+iname, func(t *testing.T) {
				e.Extract(&got, in)
				if d := sameVector(got, refExtract(e, in)); d != "" {
					t.Errorf("Extract differs from the reference: %s", d)
				}
			})
		}
	}
}

func TestExtractIndicesAndValuesAreValid(t *testing.T) {
	for sname, spec := range testSpecs() {
		e := mustExtractor(t, spec)
		for iname, in := range testInputs(t) {
			t.Run(sname+"/"+iname, func(t *testing.T) {
				var v Vector
				e.Extract(&v, in)
				checkVector(t, spec, v)
			})
		}
	}
}

func checkVector(tb testing.TB, spec Spec, v Vector) {
	tb.Helper()
	if len(v.Idx) != len(v.Val) {
		tb.Fatalf("len(Idx) = %d, len(Val) = %d, want equal", len(v.Idx), len(v.Val))
	}
	dim := spec.Dim()
	for i, ix := range v.Idx {
		if ix < 0 || int(ix) >= dim {
			tb.Fatalf("Idx[%d] = %d, want in [0, %d)", i, ix, dim)
		}
		if x := v.Val[i]; math.IsNaN(x) || math.IsInf(x, 0) {
			tb.Fatalf("Val[%d] = %v, want finite", i, x)
		}
	}
}

func TestDescribeMatchesExtract(t *testing.T) {
	for sname, spec := range testSpecs() {
		e := mustExtractor(t, spec)
		for iname, in := range testInputs(t) {
			t.Run(sname+"/"+iname, func(t *testing.T) {
				var want, got Vector
				e.Extract(&want, in)
				e.Describe(in, func(idx int32, val float64, name string) {
					if name == "" {
						t.Errorf("feature %d has an empty name", len(got.Idx))
					}
					got.Idx = append(got.Idx, idx)
					got.Val = append(got.Val, val)
				})
				if d := sameVector(got, want); d != "" {
					t.Errorf("Describe differs from Extract: %s", d)
				}
			})
		}
	}
}

func TestDescribeNames(t *testing.T) {
	spec := fullSpec()
	spec.CharNgrams = [2]int{3, 3}
	e := mustExtractor(t, spec)
	in := Input{Prompt: "Hi Bob\n\nhi? caf\xff", Meta: map[string]string{"subject": "law"}}
	var names []string
	e.Describe(in, func(_ int32, _ float64, name string) { names = append(names, name) })
	// Normalised text: "hi bob\nhi? caf\xff"; tokens hi, bob, hi, caf\xff.
	want := []string{
		"word:hi", "word:bob", "word:hi", `word:"caf\xff"`,
		"word:hi bob", "word:bob hi", `word:hi "caf\xff"`,
		`char:"hi "`, `char:"i b"`, `char:" bo"`, "char:bob", `char:"ob\n"`, `char:"b\nh"`, `char:"\nhi"`, "char:hi?",
		`char:"i? "`, `char:"? c"`, `char:" ca"`, "char:caf", `char:"af\xff"`,
		"num:len_chars", "num:len_tokens", "num:lines", "num:nonascii_share", "num:questions", "num:turns",
		"meta:subject=law",
	}
	if !slices.Equal(names, want) {
		t.Errorf("names:\n got %q\nwant %q", names, want)
	}
}

func TestExtractEquivalentInputs(t *testing.T) {
	tests := []struct {
		name string
		a, b Input
	}{
		{"a prompt and the one-message chat holding it give one vector",
			Input{Prompt: "What is 2+2?"}, Input{Messages: []Turn{{Role: "user", Content: "What is 2+2?"}}}},
		{"ASCII case does not matter",
			Input{Prompt: "The QUICK brown Fox"}, Input{Prompt: "the quick BROWN fox"}},
		{"whitespace runs collapse",
			Input{Prompt: "a  b\t\tc\n\n\nd"}, Input{Prompt: "a b c\nd"}},
		{"leading and trailing whitespace is ignored",
			Input{Prompt: "\n  a b  \n"}, Input{Prompt: "a b"}},
		{"the prompt wins over messages, as in datasets.Record.Text",
			Input{Prompt: "x", Messages: []Turn{{Content: "y"}, {Content: "z"}}}, Input{Prompt: "x"}},
		{"nil and empty meta are the same",
			Input{Prompt: "x", Meta: map[string]string{}}, Input{Prompt: "x"}},
	}
	spec := fullSpec()
	spec.Numeric = false // the raw lengths differ in some cases above
	e := mustExtractor(t, spec)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a, b Vector
			e.Extract(&a, tt.a)
			e.Extract(&b, tt.b)
			if d := sameVector(a, b); d != "" {
				t.Error(d)
			}
		})
	}
}

func TestExtractIsDeterministicAcrossExtractors(t *testing.T) {
	// A fresh extractor must agree with one whose buffers hold an earlier,
	// longer input: no state leaks from call to call.
	in := testInputs(t)
	used := mustExtractor(t, fullSpec())
	var v Vector
	used.Extract(&v, in["prompt 2k"])
	for name, x := range in {
		t.Run(name, func(t *testing.T) {
			var a, b Vector
			used.Extract(&a, x)
			mustExtractor(t, fullSpec()).Extract(&b, x)
			if d := sameVector(a, b); d != "" {
				t.Error(d)
			}
		})
	}
}

func TestExtractDoesNotAllocateInSteadyState(t *testing.T) {
	in := testInputs(t)["prompt 2k"]
	in.Meta = map[string]string{"b": "x", "a": "y", "c": "z"}
	for name, spec := range map[string]Spec{"default": fullSpec(), "words 1-4": testSpecs()["words 1-4"]} {
		t.Run(name, func(t *testing.T) {
			e := mustExtractor(t, spec)
			var v Vector
			e.Extract(&v, in)
			if n := testing.AllocsPerRun(20, func() { e.Extract(&v, in) }); n != 0 {
				t.Errorf("Extract allocated %v times per call, want 0", n)
			}
		})
	}
}

func TestExtractHugePromptIsBounded(t *testing.T) {
	spec := fullSpec()
	e := mustExtractor(t, spec)
	big := strings.Repeat("All work and no play makes Jack a dull boy. 12+3=15? ", 200_000) // 10.6 MB
	var v Vector
	e.Extract(&v, Input{Prompt: big})
	checkVector(t, spec, v)

	// The n-gram blocks see only MaxBytes: at most one char gram per
	// length per byte and one word gram per length per two bytes.
	bound := spec.MaxBytes*(spec.CharNgrams[1]-spec.CharNgrams[0]+1) +
		(spec.MaxBytes+1)/2*(spec.WordNgrams[1]-spec.WordNgrams[0]+1) + NumNumeric
	if len(v.Idx) > bound {
		t.Errorf("a %d-byte prompt gave %d features, want at most %d", len(big), len(v.Idx), bound)
	}
	// The length features still see the full length.
	got := numericOf(t, e, Input{Prompt: big})
	if want := math.Log1p(float64(len(big))) / 16; got["num:len_chars"] != want {
		t.Errorf("num:len_chars = %v, want %v (log1p(len)/16)", got["num:len_chars"], want)
	}
	if e.st.scanned != spec.MaxBytes {
		t.Errorf("scanned %d bytes, want MaxBytes = %d", e.st.scanned, spec.MaxBytes)
	}
	// Token count is extrapolated from the prefix: 13 tokens per 53 bytes.
	wantTok := math.Log1p(13.0*float64(len(big))/53) / 14
	if d := math.Abs(got["num:len_tokens"] - wantTok); d > 0.001 {
		t.Errorf("num:len_tokens = %v, want about %v", got["num:len_tokens"], wantTok)
	}
}

// numericOf returns the numeric features of in by name.
func numericOf(tb testing.TB, e *Extractor, in Input) map[string]float64 {
	tb.Helper()
	out := map[string]float64{}
	e.Describe(in, func(_ int32, val float64, name string) {
		if strings.HasPrefix(name, "num:") {
			out[name] = val
		}
	})
	return out
}

func TestNumericFeatures(t *testing.T) {
	// Expected values follow the definitions in text.go: counts over the
	// raw text, log1p(count)/scale or a share of the scanned bytes.
	lg := func(x, scale float64) float64 { return math.Log1p(x) / scale }
	tests := []struct {
		name string
		in   Input
		want map[string]float64
	}{
		{"empty input has no numeric feature", Input{}, map[string]float64{}},
		{"prose counts length, tokens and questions", Input{Prompt: "Why? How?"}, map[string]float64{
			"num:len_chars": lg(9, 16), "num:len_tokens": lg(2, 14), "num:questions": lg(2, 4), "num:turns": lg(1, 4)}},
		{"digits and math markers", Input{Prompt: "x^2 + 3 = 12"}, map[string]float64{
			// math: ^ + = (3), ^2, 3 =, = 12 ... digit-op adjacency: ^ before 2 (1)
			"num:len_chars": lg(12, 16), "num:len_tokens": lg(4, 14), "num:digit_share": 4.0 / 12,
			"num:math": lg(4, 6), "num:turns": lg(1, 4)}},
		{"code markers", Input{Prompt: "```\nint f() { a == b; }\n```"}, map[string]float64{
			// code: ``` twice, { }, ==, "int" = 6 ("; }" is not a line
			// end); math: each '=' of "==".
			"num:len_chars": lg(27, 16), "num:len_tokens": lg(4, 14), "num:lines": lg(2, 8),
			"num:code": lg(6, 6), "num:math": lg(2, 6), "num:turns": lg(1, 4)}},
		{"latex commands are math", Input{Prompt: `\frac{a}{b}`}, map[string]float64{
			"num:len_chars": lg(11, 16), "num:len_tokens": lg(3, 14), "num:code": lg(4, 6),
			"num:math": lg(1, 6), "num:turns": lg(1, 4)}},
		{"turns and non-ASCII share", Input{Messages: []Turn{{Content: "é"}, {Content: "b"}, {Content: "c"}}}, map[string]float64{
			// text "é\nb\nc": 6 bytes, 2 of them >= 0x80, 2 newlines.
			"num:len_chars": lg(6, 16), "num:len_tokens": lg(3, 14), "num:lines": lg(2, 8),
			"num:nonascii_share": 2.0 / 6, "num:turns": lg(3, 4)}},
	}
	e := mustExtractor(t, fullSpec())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := numericOf(t, e, tt.in)
			for name, w := range tt.want {
				if g, ok := got[name]; !ok || math.Abs(g-w) > 1e-12 {
					t.Errorf("%s = %v (present %t), want %v", name, g, ok, w)
				}
			}
			for name, g := range got {
				if _, ok := tt.want[name]; !ok {
					t.Errorf("unexpected %s = %v", name, g)
				}
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	in := Input{Prompt: "one two three four"} // 4 tokens: 4 unigrams + 3 bigrams
	tests := []struct {
		normalize string
		want      float64 // weight of a word feature
	}{
		{NormalizeL2, 1 / math.Sqrt(7)},
		{NormalizeNone, 1},
	}
	for _, tt := range tests {
		t.Run("normalize "+tt.normalize, func(t *testing.T) {
			spec := fullSpec()
			spec.Normalize = tt.normalize
			e := mustExtractor(t, spec)
			n, sumSq := 0, 0.0
			e.Describe(in, func(_ int32, val float64, name string) {
				if strings.HasPrefix(name, "word:") {
					n++
					sumSq += val * val
					if val != tt.want {
						t.Errorf("%s weighs %v, want %v", name, val, tt.want)
					}
				}
			})
			if n != 7 {
				t.Errorf("%d word features, want 7", n)
			}
			if tt.normalize == NormalizeL2 && math.Abs(sumSq-1) > 1e-12 {
				t.Errorf("word block has squared norm %v, want 1 (all n-grams distinct)", sumSq)
			}
		})
	}
}

func metaNames(tb testing.TB, e *Extractor, in Input) []string {
	tb.Helper()
	var out []string
	e.Describe(in, func(_ int32, _ float64, name string) {
		if strings.HasPrefix(name, "meta:") {
			out = append(out, name)
		}
	})
	return out
}

func TestMeta(t *testing.T) {
	meta := map[string]string{"tenant": "acme", "subject": "law", "source": "mmlu"}
	withKeys := fullSpec()
	withKeys.MetaKeys = []string{"tenant", "subject", "absent"}
	huge := map[string]string{}
	for i := range 5000 {
		huge[fmt.Sprintf("k%05d", i)] = "v"
	}
	long := strings.Repeat("x", 10<<20)
	tests := []struct {
		name string
		spec Spec
		meta map[string]string
		want []string
	}{
		{"every key, sorted", fullSpec(), meta, []string{"meta:source=mmlu", "meta:subject=law", "meta:tenant=acme"}},
		{"meta_keys selects keys", withKeys, meta, []string{"meta:subject=law", "meta:tenant=acme"}},
		{"meta off", testSpecs()["no meta"], meta, nil},
		{"many keys keep the first 64 in order", fullSpec(), huge, func() (w []string) {
			for i := range maxMetaKeys {
				w = append(w, fmt.Sprintf("meta:k%05d=v", i))
			}
			return w
		}()},
		{"long values are cut to 256 bytes", fullSpec(), map[string]string{"k": long}, []string{"meta:k=" + long[:maxMetaBytes]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustExtractor(t, tt.spec)
			in := Input{Prompt: "x", Meta: tt.meta}
			if got := metaNames(t, e, in); !slices.Equal(got, tt.want) {
				t.Errorf("got %d names %.3q, want %d %.3q", len(got), got, len(tt.want), tt.want)
			}
			var v Vector
			e.Extract(&v, in)
			if d := sameVector(v, refExtract(e, in)); d != "" {
				t.Errorf("differs from the reference: %s", d)
			}
		})
	}
}

func TestMetaSlotsSeparateKeyAndValue(t *testing.T) {
	e := mustExtractor(t, fullSpec())
	if a, b := e.metaSlot("a=b", "c"), e.metaSlot("a", "b=c"); a == b {
		t.Errorf("meta a=b=c split two ways hashes to one slot %d", a)
	}
}

func TestSeedMovesEverySlot(t *testing.T) {
	in := Input{Prompt: "the seed decides where features land", Meta: map[string]string{"k": "v"}}
	a, b := fullSpec(), fullSpec()
	b.Seed = 1
	var va, vb Vector
	mustExtractor(t, a).Extract(&va, in)
	mustExtractor(t, b).Extract(&vb, in)
	same := 0
	hash := int32(1) << a.HashBits
	for i := range va.Idx {
		if va.Idx[i] < hash && va.Idx[i] == vb.Idx[i] {
			same++
		}
	}
	// By chance about len/2^18 of them; more than 2 means the seed is
	// not reaching a block.
	if same > 2 {
		t.Errorf("%d of %d hashed slots did not move with the seed", same, len(va.Idx))
	}
}

func TestHashSpreadsStructuredKeys(t *testing.T) {
	// Distinct keys from small alphabets are the worst case for a cheap
	// hash. Compare the slots they share with what a uniformly random map
	// would give: k keys in m slots leave m(1-(1-1/m)^k) occupied.
	e := mustExtractor(t, testSpecs()["chars 1-8"])
	m := 1 << DefaultHashBits
	alpha := "abcdefghijklmnopqrstuvwxyz "
	tests := []struct {
		name string
		keys func(yield func(int32))
	}{
		{"char 3-grams", func(yield func(int32)) {
			for _, a := range alpha {
				for _, b := range alpha {
					for _, c := range alpha {
						yield(e.charSlot([]byte{byte(a), byte(b), byte(c)}))
					}
				}
			}
		}},
		{"char 8-grams of digits", func(yield func(int32)) {
			for i := range 100000 {
				yield(e.charSlot([]byte(fmt.Sprintf("x=%06d", i))))
			}
		}},
		{"char 5-grams of digits", func(yield func(int32)) {
			for i := range 100000 {
				yield(e.charSlot([]byte(fmt.Sprintf("%05d", i))))
			}
		}},
		{"word unigrams of numbers", func(yield func(int32)) {
			for i := range 50000 {
				p := append([]byte(fmt.Sprint(i)), make([]byte, 8)...)
				yield(slot(tokenHash(p, 0, len(p)-8, e.wordBase)^e.wordSeed[1], e.shift))
			}
		}},
		{"word bigrams of numbers", func(yield func(int32)) {
			h := func(i int) uint64 {
				p := append([]byte(fmt.Sprint(i)), make([]byte, 8)...)
				return tokenHash(p, 0, len(p)-8, e.wordBase)
			}
			for i := range 300 {
				for j := range 300 {
					yield(slot(combine(h(j), h(i))^e.wordSeed[2], e.shift))
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := map[int32]bool{}
			k := 0
			tt.keys(func(s int32) { seen[s] = true; k++ })
			want := float64(m) * (1 - math.Pow(1-1/float64(m), float64(k)))
			lost := float64(k) - float64(len(seen))
			wantLost := float64(k) - want
			// Allow 25% more collisions than uniform hashing.
			if lost > 1.25*wantLost+10 {
				t.Errorf("%d keys took %d slots (%.0f collisions), uniform hashing expects %.0f slots (%.0f collisions)", k, len(seen), lost, want, wantLost)
			}
		})
	}
}

func TestCodeWords(t *testing.T) {
	e := mustExtractor(t, fullSpec())
	for _, w := range codeWords {
		t.Run(w+" is a code marker", func(t *testing.T) {
			if got, want := numericOf(t, e, Input{Prompt: "x " + w + " y"})["num:code"], math.Log1p(1)/6; got != want {
				t.Errorf("num:code = %v, want %v (one marker)", got, want)
			}
		})
	}
	for _, w := range []string{"define", "de", "return", "import", "function", "nul"} {
		t.Run(w+" is not", func(t *testing.T) {
			if got := numericOf(t, e, Input{Prompt: "x " + w + " y"})["num:code"]; got != 0 {
				t.Errorf("num:code = %v, want 0", got)
			}
		})
	}
}

package features

import (
	"slices"
	"testing"
)

// FuzzExtract checks, for any text and meta: no panic, indices in
// [0, Dim), finite values, the same vector from a warm extractor, a fresh
// one and the reference implementation, and Describe agreeing with Extract.
//
//	go test -run XXX -fuzz FuzzExtract -fuzztime 60s ./features/
func FuzzExtract(f *testing.F) {
	specs := testSpecs()
	names := make([]string, 0, len(specs))
	for n := range specs {
		names = append(names, n)
	}
	slices.Sort(names)
	extractors := make([]*Extractor, len(names))
	for i, n := range names {
		extractors[i] = mustExtractor(f, specs[n])
	}

	inputs := testInputs(f)
	inNames := make([]string, 0, len(inputs))
	for n := range inputs {
		inNames = append(inNames, n)
	}
	slices.Sort(inNames)
	for i, n := range inNames {
		in := inputs[n]
		var m0, m1, k, v string
		if len(in.Messages) >= 2 {
			m0, m1 = in.Messages[0].Content, in.Messages[1].Content
		}
		for kk, vv := range in.Meta {
			k, v = kk, vv
			break
		}
		f.Add(in.Prompt, m0, m1, k, v, uint8(i))
	}

	f.Fuzz(func(t *testing.T, prompt, m0, m1, key, val string, sel uint8) {
		e := extractors[int(sel)%len(extractors)]
		spec := e.Spec()
		in := Input{Prompt: prompt, Meta: map[string]string{key: val, "fixed": m0}}
		if sel&0x80 != 0 {
			in.Messages = []Turn{{Role: "user", Content: m0}, {Role: "assistant", Content: m1}}
		}
		var a, b, c Vector
		e.Extract(&a, in)
		checkVector(t, spec, a)
		e.Extract(&b, in)
		if d := sameVector(b, a); d != "" {
			t.Fatalf("second extraction differs: %s", d)
		}
		fresh, err := NewExtractor(spec)
		if err != nil {
			t.Fatal(err)
		}
		fresh.Extract(&c, in)
		if d := sameVector(c, a); d != "" {
			t.Fatalf("a fresh extractor differs: %s", d)
		}
		if d := sameVector(refExtract(e, in), a); d != "" {
			t.Fatalf("the reference differs: %s", d)
		}
		var described Vector
		e.Describe(in, func(idx int32, v float64, _ string) {
			described.Idx = append(described.Idx, idx)
			described.Val = append(described.Val, v)
		})
		if d := sameVector(described, a); d != "" {
			t.Fatalf("Describe differs: %s", d)
		}
	})
}

package features

import (
	"bytes"
	"flag"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// TestGolden pins the vectors of fixed inputs under the default spec, so
// any change to hashing, normalisation or scaling shows up as a diff. Such
// a change alters what saved models see: bump SpecVersion, then refresh
// with go test ./features -run TestGolden -update.
func TestGolden(t *testing.T) {
	in := testInputs(t)
	type gcase struct {
		name  string
		input string
		head  int // how many features to list; the checksum covers all
	}
	cases := []gcase{
		{"sentence", "sentence", -1},
		{"mmlu", "mmlu", -1},
		{"messages", "messages", 60},
		{"code", "code", 60},
		{"invalid utf8", "invalid utf8", 60},
		{"prompt 2k", "prompt 2k", 40},
	}
	for _, g := range []struct {
		name, file string
		spec       Spec
		cases      []gcase
	}{
		// Version 1 must extract what it always did: its file predates
		// version 2 and is never refreshed for it.
		{"version 1", "extract.golden", v1Spec(fullSpec()), cases},
		{"version 2", "extract_v2.golden", fullSpec(), append(cases[:len(cases):len(cases)],
			gcase{"chinese", "chinese", -1}, gcase{"mixed scripts", "mixed scripts", -1})},
	} {
		t.Run(g.name, func(t *testing.T) {
			e := mustExtractor(t, g.spec)
			var buf bytes.Buffer
			fmt.Fprintf(&buf, "# features golden file: spec %s\n", g.spec)
			for _, c := range g.cases {
				var v Vector
				e.Extract(&v, in[c.input])
				fmt.Fprintf(&buf, "\n## %s: %d features, checksum %016x\n", c.name, len(v.Idx), checksum(v))
				i := 0
				e.Describe(in[c.input], func(idx int32, val float64, name string) {
					if c.head < 0 || i < c.head {
						fmt.Fprintf(&buf, "%d %.17g %s\n", idx, val, name)
					}
					i++
				})
			}
			compareGolden(t, filepath.Join("testdata", "golden", g.file), buf.Bytes())
		})
	}
}

// v1Spec is s as a version 1 spec: no CJK splitting, meta among the
// hashed slots.
func v1Spec(s Spec) Spec {
	s.Version, s.SplitCJK, s.MetaBits = 1, false, 0
	return s
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (create it with -update)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := bytes.Split(got, []byte("\n")), bytes.Split(want, []byte("\n"))
		for i := range max(len(gl), len(wl)) {
			var g, w []byte
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if !bytes.Equal(g, w) {
				t.Fatalf("%s:%d differs:\n got %q\nwant %q\nIf the change is meant, bump SpecVersion and rerun with -update.", path, i+1, g, w)
			}
		}
	}
}

// checksum is FNV-1a over the indices and the bits of the values.
func checksum(v Vector) uint64 {
	h := fnv.New64a()
	var b [12]byte
	for i := range v.Idx {
		u, f := uint32(v.Idx[i]), math.Float64bits(v.Val[i])
		for k := range 4 {
			b[k] = byte(u >> (8 * k))
		}
		for k := range 8 {
			b[4+k] = byte(f >> (8 * k))
		}
		h.Write(b[:])
	}
	return h.Sum64()
}

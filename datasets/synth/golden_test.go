package synth

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/triage-router/triage/datasets"
)

// TestLogIsPinned pins the bytes of small generated logs. The bundled
// sample (testdata/sample/log.jsonl), the Makefile's unseen log and the
// figures quoted in docs are all `triage synth` output: a change to the
// generator that moves these hashes moves all of them, so it must come with
// a regenerated sample and rechecked figures, never with new hashes alone.
// The Topics hashes are sha256 of `triage synth --n 300 --seed S [flags]`
// at commit 4a6ac85, before the Speculation scenario joined the package.
func TestLogIsPinned(t *testing.T) {
	for _, c := range []struct {
		name string
		opts Options
		want string
	}{
		{"a plain log keeps its bytes", Options{N: 300, Seed: 1}, "c8c51914503f653ad5c9e1733e28d96bd97f3a6d7f2c484d1ab2db81c71086d3"},
		{"a log with latency keeps its bytes", Options{N: 300, Seed: 2, Latency: true}, "c62b924ebb956bc38fae7efe60e13b5419e942033cae8228147ec3ea1457fc1c"},
		{"a log with confidence keeps its bytes", Options{N: 300, Seed: 7, Confidence: true}, "460dd3bd607d72a43e47b378a2e9b5700e3c6ec39c80c177d974bd6a7a21f27c"},
		{"a log with latency and confidence keeps its bytes", Options{N: 300, Seed: 1, Latency: true, Confidence: true}, "d8402380b6e02fb5ca70096c8f54b527c2ec3d2d1ce05754db296cdacd21c446"},
		{"naming the default scenario keeps the same bytes", Options{Scenario: Topics, N: 300, Seed: 1}, "c8c51914503f653ad5c9e1733e28d96bd97f3a6d7f2c484d1ab2db81c71086d3"},
		// bench/curves/gen -n 300 -seed 3 -prefix pin (the program this
		// scenario replaced, at commit 4a6ac85) with its tier names
		// synth/fast-8b and synth/strong-400b renamed to FastModel and
		// StrongModel: bench/curves's figures come from this log.
		{"a speculation log keeps the bytes of bench/curves/gen", Options{Scenario: Speculation, N: 300, Seed: 3, Latency: true, Confidence: true, IDPrefix: "pin"}, "e198f9a94740b842d2dbf4fc4830bdea4d0765e6de2cea200b7a4eef1e803dc0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := logHash(t, c.opts); got != c.want {
				t.Errorf("sha256 %s, want %s", got, c.want)
			}
		})
	}
}

// logHash is the sha256 of the JSONL Each writes for opts, as `triage
// synth` writes it.
func logHash(tb testing.TB, opts Options) string {
	tb.Helper()
	var buf bytes.Buffer
	w := datasets.NewWriter(&buf)
	err := Each(opts, func(rec datasets.Record, _ Truth) error { return w.Write(&rec) })
	if err != nil {
		tb.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	return hex.EncodeToString(sum[:])
}

// TestSampleIsReproducible checks that the bundled sample is exactly what
// testdata/sample/README.md says made it.
func TestSampleIsReproducible(t *testing.T) {
	want, err := os.ReadFile(filepath.Join("..", "..", "testdata", "sample", "log.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(want)
	if got := logHash(t, Options{N: 2000, Seed: 1, Latency: true, Confidence: true}); got != hex.EncodeToString(sum[:]) {
		t.Errorf("triage synth --n 2000 --seed 1 --latency --confidence hashes to %s, testdata/sample/log.jsonl to %x", got, sum)
	}
}

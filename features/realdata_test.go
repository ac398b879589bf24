package features

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"testing"

	"github.com/triage-router/triage/datasets/datasetstest"
)

// sharedDatasets is datasetstest.Dir: the shared data, or a skip.
func sharedDatasets(tb testing.TB) string { return datasetstest.Dir(tb) }

// TestMMLUPrompts runs real prompts (several MMLU subjects: prose, maths,
// code) through Extract and holds them to the reference implementation.
func TestMMLUPrompts(t *testing.T) {
	dir := filepath.Join(sharedDatasets(t), "routellm", "mmlu")
	e := mustExtractor(t, DefaultSpec())
	var v Vector
	for _, subject := range []string{"abstract_algebra", "college_computer_science", "high_school_european_history", "world_religions"} {
		t.Run(subject, func(t *testing.T) {
			f, err := os.Open(filepath.Join(dir, "mmlu_"+subject+".csv"))
			if err != nil {
				t.Skipf("%v", err)
			}
			defer f.Close()
			rows, err := csv.NewReader(f).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) < 2 || rows[0][0] != "prompt" {
				t.Fatalf("want a header starting with prompt and some rows, got %d rows", len(rows))
			}
			for i, r := range rows[1:] {
				in := Input{Prompt: r[0], Meta: map[string]string{"subject": subject}}
				e.Extract(&v, in)
				checkVector(t, e.spec, v)
				if d := sameVector(v, refExtract(e, in)); d != "" {
					t.Fatalf("row %d: Extract differs from the reference: %s", i+2, d)
				}
			}
		})
	}
}

// BenchmarkExtractMMLU extracts every MMLU prompt (14,042, mostly a few
// hundred bytes) and reports the time per prompt.
func BenchmarkExtractMMLU(b *testing.B) {
	files, err := filepath.Glob(filepath.Join(sharedDatasets(b), "routellm", "mmlu", "mmlu_*.csv"))
	if err != nil || len(files) == 0 {
		b.Skipf("no MMLU files (%v)", err)
	}
	var ins []Input
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			b.Fatal(err)
		}
		rows, err := csv.NewReader(f).ReadAll()
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range rows[1:] {
			ins = append(ins, Input{Prompt: r[0]})
		}
	}
	e := mustExtractor(b, DefaultSpec())
	var v Vector
	b.ReportAllocs()
	for b.Loop() {
		for _, in := range ins {
			e.Extract(&v, in)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ins)), "ns/prompt")
}

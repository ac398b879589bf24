package features

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"testing"
)

// sharedDatasets returns <repo root>/../shared/datasets (or
// $TRIAGE_DATASETS) and skips the test when it is absent.
func sharedDatasets(tb testing.TB) string {
	tb.Helper()
	if d := os.Getenv("TRIAGE_DATASETS"); d != "" {
		if _, err := os.Stat(d); err != nil {
			tb.Skipf("shared datasets folder %s (TRIAGE_DATASETS) is absent", d)
		}
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Skip("no go.mod above the package; cannot find ../shared/datasets")
		}
		dir = parent
	}
	d := filepath.Join(dir, "..", "shared", "datasets")
	if _, err := os.Stat(d); err != nil {
		tb.Skipf("shared datasets folder %s is absent (set TRIAGE_DATASETS to its path)", d)
	}
	return d
}

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

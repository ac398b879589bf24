package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/triage-router/triage/datasets"
)

// TestOneOfACountIsSingular runs train, eval and calibrate where each
// count they print is 1: they said "1 records skipped", "1 bad lines
// skipped" and "1 resamples".
func TestOneOfACountIsSingular(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile(sampleLog)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")[:400]
	log := writeFile(t, dir, "log.jsonl", strings.Join(lines, "")+
		`{"id":"no-strong","prompt":"x","outcomes":{"`+sampleFast+`":{"score":1}}}`+"\n"+
		"not json\n")
	model := filepath.Join(dir, "r.json")
	_, stderr, code := run(t, "train", "--data", log, "--fast", sampleFast, "--strong", sampleStrong, "--skip-bad", "--l2", "0.03", "--folds", "2", "--hash-bits", "14", "-o", model)
	if code != 0 {
		t.Fatalf("train exited %d: %s", code, stderr)
	}
	for _, want := range []string{"1 skipped without both tiers' scores", "1 bad line skipped;"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("train stderr %q, want %q", stderr, want)
		}
	}
	for _, tt := range []struct {
		name   string
		args   []string
		stream string // "stdout" or "stderr"
		want   string
	}{
		{"eval counts one skipped record", []string{"eval", "--model", model, "--data", log, "--skip-bad"}, "stderr", "triage eval: 1 record skipped without both tiers' scores"},
		{"eval --cv counts one skipped record", []string{"eval", "--cv", "2", "--data", log, "--fast", sampleFast, "--strong", sampleStrong, "--skip-bad", "--l2", "0.03", "--folds", "2", "--hash-bits", "14"}, "stderr", "triage eval: 1 record skipped without both tiers' scores"},
		{"calibrate counts one skipped record", []string{"calibrate", "--model", model, "--data", log, "--skip-bad", "--target", "strong-share=0.3", "--resamples", "100", "--grid", "10", "-o", filepath.Join(dir, "c.json")}, "both", "100 resamples):|triage calibrate: 1 record skipped without both tiers' scores"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := run(t, tt.args...)
			if code != 0 {
				t.Fatalf("exited %d: %s", code, stderr)
			}
			got := map[string]string{"stdout": stdout, "stderr": stderr, "both": stdout + stderr}[tt.stream]
			for _, want := range strings.Split(tt.want, "|") {
				if !strings.Contains(got, want) {
					t.Errorf("%s %q, want %q", tt.stream, got, want)
				}
			}
		})
	}
}

// TestOneEmptyFoldIsSingular: eval --cv on a log whose ids leave one fold
// empty said "1 of the 3 folds hold no record".
func TestOneEmptyFoldIsSingular(t *testing.T) {
	dir := t.TempDir()
	all := filepath.Join(dir, "all.jsonl")
	if _, stderr, code := run(t, "synth", "--n", "90", "-o", all); code != 0 {
		t.Fatalf("synth: %s", stderr)
	}
	b, err := os.ReadFile(all)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, line := range strings.SplitAfter(string(b), "\n") {
		var rec struct{ ID string }
		if json.Unmarshal([]byte(line), &rec) == nil && datasets.Fold(rec.ID, 1, 3) != 2 {
			kept = append(kept, line)
		}
	}
	log := writeFile(t, dir, "log.jsonl", strings.Join(kept, ""))
	_, stderr, code := run(t, "eval", "--cv", "3", "--data", log, "--fast", sampleFast, "--strong", sampleStrong, "--l2", "0.03", "--folds", "2", "--hash-bits", "14")
	if code != 0 {
		t.Fatalf("eval --cv 3 exited %d: %s", code, stderr)
	}
	if want := "1 of the 3 folds holds no record (folds are drawn by id hash), so 2 routers are trained"; !strings.Contains(stderr, want) {
		t.Errorf("stderr %q, want %q", stderr, want)
	}
}

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/triage-router/triage/datasets"
)

func writeLog(tb testing.TB, dir string, n int) string {
	tb.Helper()
	var b strings.Builder
	for i := range n {
		// Model a scores 1 on even rows, model b always 0.5: means 0.5 and 0.5
		// for even n.
		fmt.Fprintf(&b, `{"id":"r/%d","prompt":"p%d","outcomes":{"a":{"score":%d},"b":{"score":0.5}}}`+"\n", i, i, 1-i%2)
	}
	path := filepath.Join(dir, "log.jsonl")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

func ids(tb testing.TB, path string) []string {
	tb.Helper()
	recs, _, err := datasets.ReadFile(path, datasets.ReadOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

func TestSplit(t *testing.T) {
	dir := t.TempDir()
	log := writeLog(t, dir, 100)
	out := filepath.Join(dir, "work", "folds")
	counts, err := split(log, out, 5, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("each record is in the test file of its datasets.Fold and the train files of the others", func(t *testing.T) {
		total := 0
		for k := range 5 {
			test := ids(t, filepath.Join(out, fmt.Sprintf("test_%d.jsonl", k)))
			train := ids(t, filepath.Join(out, fmt.Sprintf("train_%d.jsonl", k)))
			if len(test) != counts[k] || len(test)+len(train) != 100 {
				t.Errorf("fold %d: %d test and %d train records, counts say %d; want 100 in all", k, len(test), len(train), counts[k])
			}
			for _, id := range test {
				if f := datasets.Fold(id, 1, 5); f != k {
					t.Errorf("%s is in test_%d, datasets.Fold says %d", id, k, f)
				}
			}
			for _, id := range train {
				if datasets.Fold(id, 1, 5) == k {
					t.Errorf("%s of fold %d is in train_%d", id, k, k)
				}
			}
			total += len(test)
		}
		if total != 100 {
			t.Errorf("%d test records in all, want 100", total)
		}
	})
	t.Run("the fold index lists every id in log order with its fold", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(out, "folds.tsv"))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if len(lines) != 100 {
			t.Fatalf("%d lines, want 100", len(lines))
		}
		for i, l := range lines {
			if want := fmt.Sprintf("r/%d\t%d", i, datasets.Fold(fmt.Sprintf("r/%d", i), 1, 5)); l != want {
				t.Errorf("line %d is %q, want %q", i, l, want)
			}
		}
	})
	t.Run("means.tsv has each model's outcome count and mean score", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(out, "means.tsv"))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(b), "a\t100\t0.5\nb\t100\t0.5\n"; got != want {
			t.Errorf("means.tsv %q, want %q", got, want)
		}
	})
	t.Run("a bad log is an error and leaves no folder", func(t *testing.T) {
		bad := filepath.Join(dir, "bad.jsonl")
		if err := os.WriteFile(bad, []byte(`{"id":"x","prompt":"p"}`+"\n"+`{"id":"x","prompt":"q"}`+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		badOut := filepath.Join(dir, "work", "bad")
		if _, err := split(bad, badOut, 5, 1); err == nil || !strings.Contains(err.Error(), "bad.jsonl:2") {
			t.Errorf("error %v, want one naming bad.jsonl:2 (the repeated id)", err)
		}
		entries, err := os.ReadDir(filepath.Join(dir, "work"))
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 || entries[0].Name() != "folds" {
			t.Errorf("work holds %v, want only the first run's folds", entries)
		}
	})
}

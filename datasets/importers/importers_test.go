package importers

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/triage-router/triage/datasets"
)

// collect runs an import and returns its records, checking that each one
// validates as a labelled log record.
func collect(tb testing.TB, run func(fn func(datasets.Record) error) (Stats, error)) ([]datasets.Record, Stats, error) {
	tb.Helper()
	var recs []datasets.Record
	st, err := run(func(r datasets.Record) error {
		if err := r.Validate(datasets.ValidateOptions{}); err != nil {
			tb.Errorf("record %q does not validate: %v", r.ID, err)
		}
		recs = append(recs, r)
		return nil
	})
	return recs, st, err
}

func ids(recs []datasets.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID
	}
	return out
}

// writeFiles creates files (path relative to a fresh directory -> content)
// and returns the directory.
func writeFiles(tb testing.TB, files map[string]string) string {
	tb.Helper()
	dir := tb.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}

// wantError checks that err is non-nil and contains every piece.
func wantError(tb testing.TB, err error, pieces ...string) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("no error, want one containing %q", pieces)
	}
	for _, p := range pieces {
		if !strings.Contains(err.Error(), p) {
			tb.Errorf("error %q does not contain %q", err, p)
		}
	}
}

func score(v float64) datasets.Outcome { return datasets.Outcome{Score: datasets.Float(v)} }

func scoreResp(v float64, resp string) datasets.Outcome {
	return datasets.Outcome{Score: datasets.Float(v), Response: resp}
}

func TestStatsString(t *testing.T) {
	st := Stats{
		Records:            3,
		Outcomes:           map[string]int{"b": 2, "a": 3},
		Empty:              1,
		NoGrade:            map[string]int{"a": 1, "b": 1},
		Contaminated:       4,
		ContaminatedListed: 5,
		ContaminatedFound:  2,
	}
	want := "3 records; outcomes: a 3, b 2; 1 empty cell skipped; 2 grades of -1 (judge could not grade) skipped; dropped 4 contaminated records (2 of 5 listed prompts found)"
	if got := st.String(); got != want {
		t.Errorf("String() =\n %q\nwant\n %q", got, want)
	}
	// One of each is singular: the summary said "1 records".
	st = Stats{Records: 1, NA: 1, NoGrade: map[string]int{"a": 1}, Contaminated: 1, ContaminatedListed: 1, ContaminatedFound: 1}
	want = "1 record; 1 NA cell skipped; 1 grade of -1 (judge could not grade) skipped; dropped 1 contaminated record (1 of 1 listed prompt found)"
	if got := st.String(); got != want {
		t.Errorf("String() =\n %q\nwant\n %q", got, want)
	}
	// A list none of whose prompts is in the bench is likely another
	// bench's: said, since it drops nothing without an error.
	st = Stats{Records: 2, ContaminatedListed: 5}
	if got := st.String(); !strings.Contains(got, "(0 of 5 listed prompts found): none of the listed prompts is in this bench") {
		t.Errorf("String() = %q, want the hint about another bench's list", got)
	}
}

func TestWriteToWritesJSONL(t *testing.T) {
	var b strings.Builder
	w := datasets.NewWriter(&b)
	fn := WriteTo(w)
	if err := fn(datasets.Record{ID: "a", Prompt: "p", Outcomes: map[string]datasets.Outcome{"m": score(1)}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if got, want := b.String(), `{"id":"a","prompt":"p","outcomes":{"m":{"score":1}}}`+"\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestCallbackErrorStopsTheImport(t *testing.T) {
	stop := errors.New("stop")
	for _, bench := range []string{BenchMMLU, BenchGSM8K, BenchMTBench} {
		t.Run(bench+" returns the callback's error", func(t *testing.T) {
			calls := 0
			_, err := RouteLLM(RouteLLMOptions{Bench: bench, Dir: "testdata/routellm"}, func(datasets.Record) error {
				calls++
				return stop
			})
			if !errors.Is(err, stop) || calls != 1 {
				t.Errorf("got %v after %d calls, want stop after 1", err, calls)
			}
		})
	}
	t.Run("wide-csv returns the callback's error", func(t *testing.T) {
		calls := 0
		_, err := WideCSV(WideCSVOptions{File: "testdata/wide/arena.csv", PromptCol: "prompt", ScoreScale: 10}, func(datasets.Record) error {
			calls++
			return stop
		})
		if !errors.Is(err, stop) || calls != 1 {
			t.Errorf("got %v after %d calls, want stop after 1", err, calls)
		}
	})
}

// recordChecker is an importer's callback for the fuzz tests: it fails t
// on a record that does not validate or repeats an id, and fills seen
// with the ids it was given.
func recordChecker(t *testing.T) (check func(datasets.Record) error, seen map[string]bool) {
	seen = map[string]bool{}
	return func(r datasets.Record) error {
		if err := r.Validate(datasets.ValidateOptions{}); err != nil {
			t.Fatalf("record %q does not validate: %v", r.ID, err)
		}
		if seen[r.ID] {
			t.Fatalf("id %q repeats", r.ID)
		}
		seen[r.ID] = true
		return nil
	}, seen
}

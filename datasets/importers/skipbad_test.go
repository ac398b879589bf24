package importers

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/triage-router/triage/datasets"
)

// TestSkipBadCountsOnlyTheCellsOfRowsImported: a row --skip-bad skips
// gives no outcome, so its empty, NA and -1 cells are not counted among
// those of the rows imported; the summary said "1 empty cell skipped" of a
// row that was not imported at all.
func TestSkipBadCountsOnlyTheCellsOfRowsImported(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var skipped []error
	bad := BadRows{SkipBad: true, OnSkip: func(err error) { skipped = append(skipped, err) }}
	tests := []struct {
		name string
		run  func(fn func(datasets.Record) error) (Stats, error)
		want Stats
	}{
		{"wide-csv",
			func(fn func(datasets.Record) error) (Stats, error) {
				// Row 1 has an empty cell, an NA, a -1 and then a bad cell.
				p := write("w.csv", "prompt,a,b,c,d\nhi,1,0,1,0\nho,,NA,-1,x\nhu,0,1,,1\n")
				return WideCSV(WideCSVOptions{File: p, PromptCol: "prompt", BadRows: bad}, fn)
			},
			Stats{Records: 2, Outcomes: map[string]int{"a": 2, "b": 2, "c": 1, "d": 2}, Empty: 1, NoGrade: map[string]int{}, Skipped: 1}},
		{"routellm csv",
			func(fn func(datasets.Record) error) (Stats, error) {
				p := write("gsm8k_responses.csv", "prompt,m1,m2\nq0,True,False\nq1,,maybe\nq2,False,\n")
				st := newStats()
				err := importRouteLLMCSV(p, "g/", nil, nil, nil, bad, &st, fn)
				return st, err
			},
			Stats{Records: 2, Outcomes: map[string]int{"m1": 2, "m2": 1}, Empty: 1, NoGrade: map[string]int{}, Skipped: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			skipped = nil
			_, st, err := collect(t, tt.run)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(st, tt.want) || len(skipped) != 1 {
				t.Errorf("stats %+v and %d rows skipped, want %+v and 1", st, len(skipped), tt.want)
			}
		})
	}
}

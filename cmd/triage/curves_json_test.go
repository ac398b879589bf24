package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// TestCurvesJSONPrintsTheReportsFigures: eval and calibrate print --json
// for scripts; curves had no --json, so a script comparing its figures
// with theirs had to know where in the report folder each router's
// metrics.json lies (a folder per router when there are several). With
// --json it prints them, the same as the files the report holds.
func TestCurvesJSONPrintsTheReportsFigures(t *testing.T) {
	dir := t.TempDir()
	model, data := filepath.Join(dir, "router.json"), filepath.Join(dir, "log.jsonl")
	smallRouter(t, model)
	writeLog(t, data, speculationLog(120, 2, "test"))
	tierLog := threeTierLog(t, dir, 90)
	tierModel := trainThreeTiers(t, dir, tierLog)
	for _, tc := range []struct {
		name, file string
		args       []string
		wrap       bool // the file holds one object, --json an array of them
	}{
		{"two tiers", "metrics.json", []string{"curves", "--model", model, "--data", data, "--grid", "8", "--accept-grid", "2", "--resamples", "5"}, true},
		{"N tiers", "tiers_metrics.json", []string{"curves", "--model", tierModel, "--data", tierLog}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, "report-"+tc.file)
			stdout, stderr, code := run(t, append(tc.args, "--json", "-o", out)...)
			if code != 0 {
				t.Fatalf("curves --json exited %d: %s", code, stderr)
			}
			var got []any
			if err := json.Unmarshal([]byte(stdout), &got); err != nil {
				t.Fatalf("curves --json printed %q: %v", stdout, err)
			}
			b, err := os.ReadFile(filepath.Join(out, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var want any
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatal(err)
			}
			if tc.wrap {
				want = []any{want}
			}
			if !reflect.DeepEqual(any(got), want) {
				t.Errorf("curves --json printed\n%s\nwant %s's content\n%s", stdout, tc.file, b)
			}
		})
	}
}

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestCurvesJSONPrintsTheReportsFigures: eval and calibrate print --json
// for scripts; curves had no --json, so a script comparing its figures
// with theirs had to know where in the report folder each router's
// metrics.json lies (a folder per router when there are several). With
// --json it prints them, the same as the files the report holds.
func TestCurvesJSONPrintsTheReportsFigures(t *testing.T) {
	skipSlow(t)
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
		{"two tiers", "metrics.json", []string{"curves", "--model", model, "--data", data, "--grid", "8", "--accept-grid", "2", "--resamples", "100"}, true},
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

// TestCurvesTiersLineSaysQualityRelativeToTheBestTier: calibrate's
// --target quality is relative to the best single tier; curves' N-tier
// line gave the current policy's quality on 0-100 alone ("quality
// 49.67"), where the two-tier line gives it relative to always-strong as
// well, so a user choosing a target had to divide by hand.
func TestCurvesTiersLineSaysQualityRelativeToTheBestTier(t *testing.T) {
	skipSlow(t)
	dir := t.TempDir()
	log := threeTierLog(t, dir, 90)
	model := trainThreeTiers(t, dir, log)
	stdout, stderr, code := run(t, "curves", "--model", model, "--data", log, "--json", "-o", filepath.Join(dir, "rep"))
	if code != 0 {
		t.Fatalf("curves --json exited %d: %s", code, stderr)
	}
	var ms []struct {
		Singles []struct{ Quality float64 }
		Current struct{ Quality, Cost float64 }
	}
	if err := json.Unmarshal([]byte(stdout), &ms); err != nil || len(ms) != 1 {
		t.Fatalf("curves --json printed %q: %v", stdout, err)
	}
	best := 0.0
	for _, s := range ms[0].Singles {
		best = max(best, s.Quality)
	}
	stdout, stderr, code = run(t, "curves", "--model", model, "--data", log, "-o", filepath.Join(dir, "rep"))
	if code != 0 {
		t.Fatalf("curves exited %d: %s", code, stderr)
	}
	want := fmt.Sprintf("quality %.2f, cost %.4g; quality %.3f of the best single tier's %.2f\n", 100*ms[0].Current.Quality, ms[0].Current.Cost, ms[0].Current.Quality/best, 100*best)
	if !strings.Contains(stdout, want) {
		t.Errorf("curves printed %q; want %q", stdout, want)
	}
}

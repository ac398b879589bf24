package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestCurvesAndCalibrateWarnOnFewRecords: eval warns when its figures
// rest on fewer than 100 records, and the README says such figures come
// with a warning, but calibrate set thresholds on RouterDC's 49
// HumanEval test questions, and curves drew its report on them, without
// a word.
func TestCurvesAndCalibrateWarnOnFewRecords(t *testing.T) {
	dir := t.TempDir()
	model, data := filepath.Join(dir, "router.json"), filepath.Join(dir, "log.jsonl")
	smallRouter(t, model)
	writeLog(t, data, speculationLog(60, 2, "test"))
	tierLog := threeTierLog(t, dir, 90)
	tierModel := trainThreeTiers(t, dir, tierLog)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"two-tier calibrate", []string{"calibrate", "--model", model, "--data", data, "--target", "strong-share=0.3", "--grid", "10", "--accept-grid", "2", "--resamples", "5", "-o", filepath.Join(dir, "c.json")},
			"triage calibrate: warning: the figures below rest on 60 records, too few to trust"},
		{"two-tier curves", []string{"curves", "--model", model, "--data", data, "--grid", "8", "--accept-grid", "2", "--resamples", "5", "-o", filepath.Join(dir, "rep")},
			"triage curves: warning: the figures below rest on 60 records, too few to trust"},
		{"N-tier calibrate", []string{"calibrate", "--model", tierModel, "--data", tierLog, "--target", "quality=0.5", "-o", filepath.Join(dir, "tc.json")},
			"triage calibrate: warning: the figures below rest on 90 records, too few to trust"},
		{"N-tier curves", []string{"curves", "--model", tierModel, "--data", tierLog, "-o", filepath.Join(dir, "trep")},
			"triage curves: warning: the figures below rest on 90 records, too few to trust"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := run(t, tc.args...)
			if code != 0 || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want 0 and %q", code, stderr, tc.want)
			}
		})
	}
}

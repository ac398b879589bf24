package main

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"testing"
)

// TestCalibratesPointIsARowOfTheCurves: a user reads curves.csv to
// choose, then runs calibrate with a target; the policy calibrate picks,
// with its figures, is one of the rows read. With their defaults the two
// used to search different grids (curves 100 thresholds × 10 accept
// values, calibrate 200 × 20), so calibrate's pick was most often on no
// row of the curve.
func TestCalibratesPointIsARowOfTheCurves(t *testing.T) {
	skipSlow(t)
	dir := t.TempDir()
	model, data := filepath.Join(dir, "router.json"), filepath.Join(dir, "log.jsonl")
	smallRouter(t, model)
	writeLog(t, data, speculationLog(1000, 2, "test"))
	out := filepath.Join(dir, "report")
	if _, stderr, code := run(t, "curves", "--model", model, "--data", data, "--resamples", "100", "-o", out); code != 0 {
		t.Fatalf("curves exited %d: %s", code, stderr)
	}
	header, rows := readCurves(t, filepath.Join(out, "curves.csv"))
	for _, target := range []string{"quality=0.9", "quality=0.97", "strong-share=0.3", "cost-per-1k=2", "p95-latency=3000"} {
		t.Run(target, func(t *testing.T) {
			stdout, stderr, code := run(t, "calibrate", "--model", model, "--data", data, "--target", target, "--resamples", "100", "--json", "-o", filepath.Join(t.TempDir(), "new.json"))
			if code != 0 {
				t.Fatalf("calibrate exited %d: %s", code, stderr)
			}
			type est struct {
				Value float64 `json:"value"`
			}
			var got struct {
				Policy struct {
					S float64 `json:"speculate_above"`
					E float64 `json:"escalate_above"`
					A float64 `json:"accept_confidence"`
				} `json:"policy"`
				StrongShare est `json:"strong_share"`
				Quality     est `json:"quality"`
				Cost        est `json:"cost_per_1k"`
				P95         est `json:"latency_p95_ms"`
			}
			if err := json.Unmarshal([]byte(stdout), &got); err != nil {
				t.Fatalf("calibrate --json: %v in %q", err, stdout)
			}
			for _, row := range rows {
				if num(t, row[col(header, "speculate_above")]) != got.Policy.S || num(t, row[col(header, "escalate_above")]) != got.Policy.E ||
					num(t, row[col(header, "accept_confidence")]) != got.Policy.A {
					continue
				}
				for _, c := range []struct {
					name string
					want float64
				}{{"strong_share", got.StrongShare.Value}, {"quality", got.Quality.Value}, {"cost_per_1k", got.Cost.Value}, {"latency_p95_ms", got.P95.Value}} {
					if v := num(t, row[col(header, c.name)]); !near(v, c.want) {
						t.Errorf("curves.csv's row of calibrate's policy has %s %v, calibrate says %v", c.name, v, c.want)
					}
				}
				return
			}
			t.Errorf("calibrate chose speculate_above %s, escalate_above %s, accept_confidence %s, which is no row of the %d of curves.csv",
				strconv.FormatFloat(got.Policy.S, 'g', -1, 64), strconv.FormatFloat(got.Policy.E, 'g', -1, 64), strconv.FormatFloat(got.Policy.A, 'g', -1, 64), len(rows))
		})
	}
}

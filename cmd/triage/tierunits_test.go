package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTierOutputsNameTheirUnits: an N-tier router's quality is on 0-100
// in eval --json and on [0,1] in calibrate --json and tiers_metrics.json,
// and calibrate's cost-per-1k target is per 1,000 requests where its
// result was per request; nothing in the outputs said which. Each scale
// is read by scripts and kept; the outputs now name it.
func TestTierOutputsNameTheirUnits(t *testing.T) {
	skipSlow(t)
	dir := t.TempDir()
	log := threeTierLog(t, dir, 150)
	model := trainThreeTiers(t, dir, log)

	stdout, stderr, code := run(t, "eval", "--model", model, "--data", log, "--json")
	if code != 0 {
		t.Fatalf("eval --json exited %d: %s", code, stderr)
	}
	var ev struct {
		QualityUnit string `json:"quality_unit"`
		CostUnit    string `json:"cost_unit"`
		Routed      struct{ Quality float64 }
	}
	if err := json.Unmarshal([]byte(stdout), &ev); err != nil {
		t.Fatalf("eval --json printed %q: %v", stdout, err)
	}
	if ev.QualityUnit != "mean score on 0-100" || ev.CostUnit != "tier price per request" || ev.Routed.Quality <= 1 {
		t.Errorf("eval --json: quality_unit %q, cost_unit %q, routed quality %v; want 0-100 named as such, and the tier price", ev.QualityUnit, ev.CostUnit, ev.Routed.Quality)
	}

	rep := filepath.Join(dir, "report")
	if _, stderr, code := run(t, "curves", "--model", model, "--data", log, "-o", rep); code != 0 {
		t.Fatalf("curves exited %d: %s", code, stderr)
	}
	b, err := os.ReadFile(filepath.Join(rep, "tiers_metrics.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ms []struct {
		QualityUnit string `json:"quality_unit"`
		Current     struct{ Quality float64 }
	}
	if err := json.Unmarshal(b, &ms); err != nil || len(ms) != 1 {
		t.Fatalf("tiers_metrics.json %s: %v", b, err)
	}
	if ms[0].QualityUnit != "mean score on 0-1" || ms[0].Current.Quality > 1 {
		t.Errorf("tiers_metrics.json: quality_unit %q, current quality %v; want [0,1] named as such", ms[0].QualityUnit, ms[0].Current.Quality)
	}

	args := []string{"calibrate", "--model", model, "--data", log, "--target", "cost-per-1k=2000", "-o", filepath.Join(dir, "cal.json")}
	stdout, stderr, code = run(t, append(args, "--json")...)
	if code != 0 {
		t.Fatalf("calibrate --json exited %d: %s", code, stderr)
	}
	var cal struct {
		QualityUnit string  `json:"quality_unit"`
		Quality     float64 `json:"quality"`
		Cost        float64 `json:"cost"`
		CostPer1k   float64 `json:"cost_per_1k"`
	}
	if err := json.Unmarshal([]byte(stdout), &cal); err != nil {
		t.Fatalf("calibrate --json printed %q: %v", stdout, err)
	}
	if cal.QualityUnit != "mean score on 0-1" || cal.Quality > 1 {
		t.Errorf("calibrate --json: quality_unit %q, quality %v; want [0,1] named as such", cal.QualityUnit, cal.Quality)
	}
	if math.Abs(cal.CostPer1k-1000*cal.Cost) > 1e-9*cal.CostPer1k || cal.CostPer1k <= 0 {
		t.Errorf("calibrate --json: cost_per_1k %v, cost %v; want cost_per_1k = 1000 × cost, the target's unit", cal.CostPer1k, cal.Cost)
	}
	stdout, stderr, code = run(t, args...)
	if code != 0 {
		t.Fatalf("calibrate exited %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "price units per 1k requests, as --target cost-per-1k takes it)") || !strings.Contains(stdout, " on 0-100 (") {
		t.Errorf("calibrate printed %q; want the cost per 1k requests beside the cost per request, and quality's scale", stdout)
	}
}

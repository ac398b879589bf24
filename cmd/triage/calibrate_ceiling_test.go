package main

import (
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestCalibrateUnderACeilingBuysQuality: with only ceilings (cost-per-1k,
// p95-latency) calibrate kept the cheapest policy meeting them, which is
// always-fast whatever the ceiling: on RouteLLM GSM8K with --cost, a
// budget of $10 per 1k requests gave the $0.60 of sending every request
// to the fast tier. A ceiling now buys the highest quality within it,
// and --minimize cost keeps the cheapest point for whoever asks for it.
func TestCalibrateUnderACeilingBuysQuality(t *testing.T) {
	dir := t.TempDir()
	model, data := filepath.Join(dir, "router.json"), filepath.Join(dir, "log.jsonl")
	smallRouter(t, model)
	writeLog(t, data, speculationLog(300, 2, "test"))
	type point struct {
		PolicyTarget string                  `json:"policy_target"`
		StrongShare  struct{ Value float64 } `json:"strong_share"`
		Quality      struct{ Value float64 } `json:"quality"`
		CostPer1k    struct{ Value float64 } `json:"cost_per_1k"`
	}
	calibrate := func(t *testing.T, extra ...string) point {
		t.Helper()
		args := append([]string{"calibrate", "--model", model, "--data", data, "--grid", "20", "--accept-grid", "3", "--resamples", "100", "--json", "-o", filepath.Join(dir, "new.json")}, extra...)
		stdout, stderr, code := run(t, args...)
		if code != 0 {
			t.Fatalf("calibrate %v exited %d: %s", extra, code, stderr)
		}
		var p point
		if err := json.Unmarshal([]byte(stdout), &p); err != nil {
			t.Fatalf("calibrate --json printed %q: %v", stdout, err)
		}
		return p
	}
	cheapest := calibrate(t, "--target", "strong-share=0")
	dearest := calibrate(t, "--target", "strong-share=1")
	budget := (cheapest.CostPer1k.Value + dearest.CostPer1k.Value) / 2
	ceiling := "cost-per-1k=" + strconv.FormatFloat(budget, 'g', -1, 64)

	got := calibrate(t, "--target", ceiling)
	if got.CostPer1k.Value > budget || got.Quality.Value <= cheapest.Quality.Value || got.StrongShare.Value == 0 {
		t.Errorf("--target %s: cost %v, quality %v, strong share %v; want the budget spent on quality above always-fast's %v",
			ceiling, got.CostPer1k.Value, got.Quality.Value, got.StrongShare.Value, cheapest.Quality.Value)
	}
	if !strings.Contains(got.PolicyTarget, ", maximize quality, ") {
		t.Errorf("policy_target %q; want it to say the quality was maximized", got.PolicyTarget)
	}
	if asked := calibrate(t, "--target", ceiling, "--minimize", "cost"); asked.StrongShare.Value != 0 {
		t.Errorf("--target %s --minimize cost: strong share %v; want the cheapest point, always-fast", ceiling, asked.StrongShare.Value)
	}
}

// TestCalibrateTiersUnderACeilingBuysQuality is the same for an N-tier
// router: a cost ceiling gave the cheapest λ's point however high the
// ceiling was.
func TestCalibrateTiersUnderACeilingBuysQuality(t *testing.T) {
	dir := t.TempDir()
	log := threeTierLog(t, dir, 90)
	model := trainThreeTiers(t, dir, log)
	type point struct {
		PolicyTarget string  `json:"policy_target"`
		Quality      float64 `json:"quality"`
		CostPer1k    float64 `json:"cost_per_1k"`
	}
	calibrate := func(t *testing.T, extra ...string) point {
		t.Helper()
		stdout, stderr, code := run(t, append([]string{"calibrate", "--model", model, "--data", log, "--json", "-o", filepath.Join(dir, "new.json")}, extra...)...)
		if code != 0 {
			t.Fatalf("calibrate %v exited %d: %s", extra, code, stderr)
		}
		var p point
		if err := json.Unmarshal([]byte(stdout), &p); err != nil {
			t.Fatalf("calibrate --json printed %q: %v", stdout, err)
		}
		return p
	}
	// Prices 0.1, 1 and 3 per request: 3000 per 1k buys any policy.
	cheapest := calibrate(t, "--target", "cost-per-1k=3000", "--minimize", "cost")
	got := calibrate(t, "--target", "cost-per-1k=3000")
	if got.CostPer1k > 3000 || got.Quality <= cheapest.Quality {
		t.Errorf("--target cost-per-1k=3000: cost per 1k %v, quality %v; want more quality than the cheapest point's %v (cost per 1k %v)",
			got.CostPer1k, got.Quality, cheapest.Quality, cheapest.CostPer1k)
	}
	if !strings.Contains(got.PolicyTarget, ", maximize quality, ") {
		t.Errorf("policy_target %q; want it to say the quality was maximized", got.PolicyTarget)
	}
	// The printed answer names the target and objective first, as the
	// two-tier one does; it said them only in --json and model show.
	stdout, stderr, code := run(t, "calibrate", "--model", model, "--data", log, "--target", "cost-per-1k=3000", "-o", filepath.Join(dir, "printed.json"))
	if code != 0 || !strings.HasPrefix(stdout, "calibrate: cost-per-1k=3000, maximize quality, on ") {
		t.Errorf("calibrate exited %d, printed %q (stderr %q); want the target and objective on its first line", code, stdout, stderr)
	}
}

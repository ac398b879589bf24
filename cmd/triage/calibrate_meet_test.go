package main

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestCalibrateMeetsQualityOnItsInterval: calibrate meets a quality
// target on the operating point's estimate, so the policy it picks may
// fall short of the target on new traffic about half the time; --meet
// ci95 asks for the cheapest policy whose 95% interval's lower end meets
// it, the interval calibrate prints.
func TestCalibrateMeetsQualityOnItsInterval(t *testing.T) {
	skipSlow(t)
	dir := t.TempDir()
	model := trainSample(t, dir)
	held := filepath.Join(dir, "held.jsonl")
	if _, stderr, code := run(t, "synth", "--n", "1000", "--seed", "7", "--latency", "--confidence", "-o", held); code != 0 {
		t.Fatalf("synth: %s", stderr)
	}
	type estimate struct {
		Value float64    `json:"value"`
		CI95  [2]float64 `json:"ci95"`
	}
	calibrate := func(t *testing.T, target string, flags ...string) (res struct {
		PolicyTarget string   `json:"policy_target"`
		RelQuality   estimate `json:"relative_quality"`
		CostPer1k    estimate `json:"cost_per_1k"`
	}, stderr string, code int) {
		t.Helper()
		args := append([]string{"calibrate", "--model", model, "--data", held, "--target", target, "--grid", "60", "--accept-grid", "5", "--resamples", "200", "--json", "-o", filepath.Join(t.TempDir(), "new.json")}, flags...)
		out, stderr, code := run(t, args...)
		if code == 0 {
			if err := json.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("calibrate --json: %v in %q", err, out)
			}
		}
		return res, stderr, code
	}
	const q = 0.9
	def, stderr, code := calibrate(t, "quality=0.9")
	if code != 0 {
		t.Fatalf("calibrate exited %d: %s", code, stderr)
	}
	// The default is kept: the estimate meets the target, and on this
	// log the lower end of its interval does not, so --meet has work to do.
	if def.RelQuality.Value < q || def.RelQuality.CI95[0] >= q || strings.Contains(def.PolicyTarget, "lower end") {
		t.Errorf("default: quality/strong %.4f [%.4f, %.4f], policy_target %q; want the estimate at 0.9 or above, the lower end below",
			def.RelQuality.Value, def.RelQuality.CI95[0], def.RelQuality.CI95[1], def.PolicyTarget)
	}
	ci, stderr, code := calibrate(t, "quality=0.9", "--meet", "ci95")
	if code != 0 {
		t.Fatalf("calibrate --meet ci95 exited %d: %s", code, stderr)
	}
	if ci.RelQuality.CI95[0] < q || ci.CostPer1k.Value < def.CostPer1k.Value {
		t.Errorf("--meet ci95: quality/strong %.4f [%.4f, %.4f] at $%.4g per 1k; want the lower end at 0.9 or above, at no less than the default's $%.4g",
			ci.RelQuality.Value, ci.RelQuality.CI95[0], ci.RelQuality.CI95[1], ci.CostPer1k.Value, def.CostPer1k.Value)
	}
	if want := "quality=0.9 (at the lower end of its 95% interval)"; !strings.Contains(ci.PolicyTarget, want) {
		t.Errorf("--meet ci95: policy_target %q, want it to say %q", ci.PolicyTarget, want)
	}

	t.Run("a target the estimates meet but no interval does is refused", func(t *testing.T) {
		// The best estimate any policy reaches, which the infeasible
		// error names to three decimals; just under it the estimates of
		// a few policies meet the target, and none of their intervals'
		// lower ends, some 0.01 under them, do.
		_, stderr, code := calibrate(t, "quality=2")
		m := regexp.MustCompile(`\(([0-9.]+) of always-strong\)`).FindStringSubmatch(stderr)
		if code != 1 || m == nil {
			t.Fatalf("quality=2: exit %d, stderr %q; want 1 and the closest point's quality", code, stderr)
		}
		top, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			t.Fatal(err)
		}
		target := "quality=" + strconv.FormatFloat(top-0.001, 'f', 4, 64)
		if _, stderr, code := calibrate(t, target); code != 0 {
			t.Fatalf("%s: exit %d, %s", target, code, stderr)
		}
		_, stderr, code = calibrate(t, target, "--meet", "ci95")
		if want := "at the lower end of its 95% interval on this data (--meet ci95;"; code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("%s --meet ci95: exit %d, stderr %q; want 1 and %q", target, code, stderr, want)
		}
	})
}

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// raceTierLog writes a four-tier log for the N-tier cross-check: scores
// on 0, 0.5 and 1 (so the oracle often ties, and the tied tiers cost
// differently on the request), latency with equal arrivals and upper
// tiers that answer first, a raw confidence that follows the score but
// is missing on some requests, cost_usd in the log for every tier but
// "mid2", which --cost gives, and two tiers of the same price.
func raceTierLog(t *testing.T, dir string, n int) string {
	t.Helper()
	state := uint64(29)
	rnd := func() float64 {
		state = state*6364136223846793005 + 1442695040888963407
		return float64(state>>11) / (1 << 53)
	}
	texts := []string{"say hello to the team", "summarise this short note", "prove the lemma about primes", "translate this poem into French"}
	skill := [][4]float64{{0.9, 0.8, 0.7, 0.9}, {0.4, 0.8, 0.6, 0.9}, {0.1, 0.3, 0.5, 0.9}, {0.2, 0.4, 0.9, 0.7}}
	var b strings.Builder
	for i := range n {
		k := i % len(texts)
		out := map[string]map[string]any{}
		for j, m := range []string{"small", "mid1", "mid2", "large"} {
			s := 0.0
			switch r := rnd(); {
			case r < skill[k][j]*0.8:
				s = 1
			case r < skill[k][j]:
				s = 0.5
			}
			o := map[string]any{"score": s, "latency_ms": float64(100 + 100*j + int(200*rnd()))}
			if i%7 == 0 {
				o["latency_ms"] = 300.0 // every tier at once: the gate decides
			}
			if i%11 == 0 && j > 0 {
				o["latency_ms"] = float64(50 * (4 - j)) // the upper tier first
			}
			if i%13 != 0 {
				o["confidence"] = 0.5*s + 0.5*rnd()
			}
			if m != "mid2" {
				o["cost_usd"] = 0.001 * float64(1+j) * (0.5 + rnd())
			}
			out[m] = o
		}
		line, _ := json.Marshal(map[string]any{"id": fmt.Sprintf("r%d", i), "prompt": fmt.Sprintf("%s (case %d)", texts[k], i%40), "outcomes": out})
		b.Write(line)
		b.WriteByte('\n')
	}
	return writeFile(t, dir, "race.jsonl", b.String())
}

// TestCurvesTiersMatchCheckTiers runs bench/tiers/check_tiers.py, an
// N-tier replay written in Python from the docs alone, on curves and
// eval --model of a small four-tier router that races (λ 0.02, race 0.1,
// per-tier confidence calibrations), under both cancel billings, and on
// one with a margin: every tiers_curves.csv row (quality, cost, latency,
// race and accepted shares, each tier's share, the Pareto flag), the
// reference rows (single tiers, oracle, hull), the printed AIQ and the
// eval figures keep being recomputed by a second implementation.
func TestCurvesTiersMatchCheckTiers(t *testing.T) {
	skipSlow(t)
	py := pythonWithNumpy(t, "the check_tiers.py cross-check of the N-tier curves")
	script := filepath.Join("..", "..", "bench", "tiers", "check_tiers.py")
	dir := t.TempDir()
	data := raceTierLog(t, dir, 320)
	cost := []string{"--cost", "mid2=0.0025"}
	for _, c := range []struct {
		name     string
		policy   []string
		billings []string
	}{
		{"race", []string{"--lambda", "0.02", "--race", "0.1"}, []string{"prorata", "full"}},
		{"margin", []string{"--margin", "0.05"}, []string{"prorata"}},
	} {
		model := filepath.Join(dir, c.name+".json")
		args := append([]string{"train", "--data", data, "--tiers", "small=0.1,mid1=0.3,mid2=0.3,large=1", "--folds", "3", "--l2", "0.01", "-o", model}, c.policy...)
		if _, stderr, code := run(t, args...); code != 0 {
			t.Fatalf("%s: train exited %d: %s", c.name, code, stderr)
		}
		scores, stderr, code := run(t, "score", "--model", model, "--data", data)
		if code != 0 {
			t.Fatalf("%s: score exited %d: %s", c.name, code, stderr)
		}
		scoreFile := writeFile(t, dir, c.name+".scores", scores)
		ev, stderr, code := run(t, "eval", "--model", model, "--data", data, "--json")
		if code != 0 {
			t.Fatalf("%s: eval exited %d: %s", c.name, code, stderr)
		}
		evFile := writeFile(t, dir, c.name+".eval.json", ev)
		for _, billing := range c.billings {
			out := filepath.Join(dir, c.name+"-"+billing)
			printed, stderr, code := run(t, append([]string{"curves", "--model", model, "--data", data, "--cancel-billing", billing, "-o", out}, cost...)...)
			if code != 0 {
				t.Fatalf("%s: curves --cancel-billing %s exited %d: %s", c.name, billing, code, stderr)
			}
			if c.name == "race" {
				// The log must make the gate decide: some row races and keeps lower answers.
				b, err := os.ReadFile(filepath.Join(out, "tiers_curves.csv"))
				if err != nil {
					t.Fatal(err)
				}
				accepted := false
				for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n")[1:] {
					f := strings.Split(line, ",")
					accepted = accepted || f[8] != "0" && f[9] != "0"
				}
				if !accepted {
					t.Errorf("race: no row of tiers_curves.csv races and keeps a lower answer; the log does not exercise the gate:\n%s", b)
				}
			}
			check := append([]string{script, "--log", data, "--scores", scoreFile, "--model", model,
				"--curves", filepath.Join(out, "tiers_curves.csv"), "--reference", filepath.Join(out, "tiers_reference.csv"),
				"--curves-out", writeFile(t, dir, c.name+"-"+billing+".out", printed), "--eval-json", evFile,
				"--cancel-billing", billing}, cost...)
			cmd := exec.Command(py, check...)
			cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
			got, err := cmd.CombinedOutput()
			if err != nil {
				t.Errorf("check_tiers.py on %s, --cancel-billing %s, disagrees (%v):\n%s", c.name, billing, err, got)
				continue
			}
			t.Logf("check_tiers.py on %s, --cancel-billing %s:\n%s", c.name, billing, got)
		}
	}
}

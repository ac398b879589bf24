package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/triage-router/triage/datasets/synth"
)

// TestCurvesMatchCheckReplay runs bench/curves/check_replay.py, a replay
// and metric code written in Python from DESIGN.md alone, on the curves of
// a small synthetic log, so every curves.csv column (strong_share, quality,
// pgr, cost_per_1k, latency mean/p50/p95/p99, decision shares) and the
// report's APGR, CPT and AIQ keep being recomputed by a second
// implementation. The log is edited to hold the replay's edge cases: equal
// fast and strong arrival times, a strong answer faster than the fast one,
// no confidence, latency and cost from per-model defaults, and tied p_hard
// (repeated prompts). Both cancel billings are checked.
//
// It shares smallRouter's fit with TestCurvesSmallLog, so it is slow only
// under -race and runs, like them, in make test's pass without it.
func TestCurvesMatchCheckReplay(t *testing.T) {
	skipSlow(t)
	py := pythonWithNumpy(t, "the check_replay.py cross-check of curves.csv")
	script := filepath.Join("..", "..", "bench", "curves", "check_replay.py")
	dir := t.TempDir()
	model, data := filepath.Join(dir, "router.json"), filepath.Join(dir, "log.jsonl")
	smallRouter(t, model)

	recs := speculationLog(240, 3, "chk")
	for i := range recs {
		f, s := recs[i].Outcomes[synth.FastModel], recs[i].Outcomes[synth.StrongModel]
		switch {
		case i%7 == 0: // both answers at the same moment: the gate decides
			v := *f.LatencyMS
			s.LatencyMS = &v
		case i%9 == 0: // the strong answer first
			v := *f.LatencyMS / 2
			s.LatencyMS = &v
		}
		if i%11 == 0 {
			f.Confidence = nil
		}
		if i%13 == 0 {
			f.LatencyMS = nil
		}
		if i%17 == 0 {
			s.CostUSD = nil
		}
		if i%19 == 0 && i > 0 {
			recs[i].Prompt, recs[i].Messages = recs[i-1].Prompt, recs[i-1].Messages
		}
		recs[i].Outcomes[synth.FastModel], recs[i].Outcomes[synth.StrongModel] = f, s
	}
	writeLog(t, data, recs)
	defaults := []string{"--latency", synth.FastModel + "=400", "--cost", synth.StrongModel + "=0.004"}

	scores, stderr, code := run(t, "score", "--model", model, "--data", data)
	if code != 0 {
		t.Fatalf("score exited %d: %s", code, stderr)
	}
	scoreFile := writeFile(t, dir, "scores.jsonl", scores)
	for _, billing := range []string{"prorata", "full"} {
		out := filepath.Join(dir, "report-"+billing)
		args := append([]string{"curves", "--model", model, "--data", data, "--grid", "20", "--accept-grid", "4",
			"--resamples", "100", "--cancel-billing", billing, "-o", out}, defaults...)
		if _, stderr, code := run(t, args...); code != 0 {
			t.Fatalf("curves --cancel-billing %s exited %d: %s", billing, code, stderr)
		}
		check := append([]string{script, "--log", data, "--scores", scoreFile, "--model", model,
			"--curves", filepath.Join(out, "curves.csv"), "--metrics", filepath.Join(out, "metrics.json"),
			"--cancel-billing", billing}, defaults...)
		cmd := exec.Command(py, check...)
		cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
		got, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("check_replay.py --cancel-billing %s disagrees with curves (%v):\n%s", billing, err, got)
			continue
		}
		t.Logf("check_replay.py --cancel-billing %s:\n%s", billing, got)
	}
}

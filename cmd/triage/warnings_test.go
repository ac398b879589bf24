package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/triage-router/triage/models"
)

// TestCurvesAndCalibrateWarnOnFewRecords: eval warns when its figures
// rest on fewer than 100 records, and the README says such figures come
// with a warning, but calibrate set thresholds on RouterDC's 49
// HumanEval test questions, and curves drew its report on them, without
// a word.
func TestCurvesAndCalibrateWarnOnFewRecords(t *testing.T) {
	skipSlow(t)
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
		{"two-tier calibrate", []string{"calibrate", "--model", model, "--data", data, "--target", "strong-share=0.3", "--grid", "10", "--accept-grid", "2", "--resamples", "100", "-o", filepath.Join(dir, "c.json")},
			"triage calibrate: warning: the figures below rest on 60 records, too few to trust"},
		{"two-tier curves", []string{"curves", "--model", model, "--data", data, "--grid", "8", "--accept-grid", "2", "--resamples", "100", "-o", filepath.Join(dir, "rep")},
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

// TestTrainWarnsOfARaceWithoutConfidence: without a confidence for the
// tier below, a race can never keep the cheaper answer, so it pays both
// calls for the dearer tier's answer; train --race said nothing.
func TestTrainWarnsOfARaceWithoutConfidence(t *testing.T) {
	dir := t.TempDir()
	log := threeTierLog(t, dir, 90)
	const want = "warning: --race 0.1 races tiers, but the log gives no tier below the dearest a confidence"
	for _, race := range []string{"0.1", "0"} {
		_, stderr, code := run(t, "train", "--data", log, "--tiers", "cheap=0.1,chat=1,maths=3", "--folds", "2", "--l2", "0.01", "--race", race, "-o", filepath.Join(dir, "r.json"))
		if code != 0 || strings.Contains(stderr, want) != (race != "0") {
			t.Errorf("--race %s: exit %d, stderr %q; want the warning %q only with a race", race, code, stderr, want)
		}
	}
	// With the cheaper tiers' confidence in the log, a race can keep
	// their answers: no warning.
	var b strings.Builder
	src, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(strings.TrimSpace(string(src)), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		for _, m := range []string{"cheap", "chat"} {
			o := rec["outcomes"].(map[string]any)[m].(map[string]any)
			o["confidence"] = o["score"].(float64) - 1 + 0.1*float64(i%5)
		}
		j, _ := json.Marshal(rec)
		b.Write(append(j, '\n'))
	}
	withConf := writeFile(t, dir, "conf.jsonl", b.String())
	_, stderr, code := run(t, "train", "--data", withConf, "--tiers", "cheap=0.1,chat=1,maths=3", "--folds", "2", "--l2", "0.01", "--race", "0.1", "-o", filepath.Join(dir, "c.json"))
	if code != 0 || strings.Contains(stderr, "warning: --race") {
		t.Errorf("with confidence: exit %d, stderr %q; want no race warning", code, stderr)
	}
}

// TestCalibrateNotesARouterNotShownToBeatRandom: train's default policy
// escalates every request of a router whose training log did not show
// that it beats random; calibrate's thresholds make it route, which serve
// warns of at every load, but calibrate, where the choice is made, said
// nothing.
func TestCalibrateNotesARouterNotShownToBeatRandom(t *testing.T) {
	dir := t.TempDir()
	model, data := filepath.Join(dir, "router.json"), filepath.Join(dir, "log.jsonl")
	smallRouter(t, model)
	writeLog(t, data, speculationLog(120, 2, "test"))
	args := []string{"calibrate", "--model", model, "--data", data, "--target", "strong-share=0.3", "--grid", "10", "--accept-grid", "2", "--resamples", "100", "-o", filepath.Join(dir, "c.json")}
	const want = "was not shown to beat random: out-of-fold APGR 0.550, but its 95% interval [0.450, 0.650] holds 0.5; these thresholds make it route"
	for _, significant := range []bool{false, true} {
		a, err := models.Load(model)
		if err != nil {
			t.Fatal(err)
		}
		a.Signal = &models.Signal{Routable: true, Significant: significant, APGR: 0.55, Lo: 0.45, Hi: 0.65}
		if significant {
			a.Signal.Lo = 0.52
		}
		if err := a.Save(model); err != nil {
			t.Fatal(err)
		}
		_, stderr, code := run(t, args...)
		if code != 0 || strings.Contains(stderr, want) == significant {
			t.Errorf("significant %v: exit %d, stderr %q; want the note %q only when not significant", significant, code, stderr, want)
		}
	}
}

// TestCalibrateWarnsOfARaceWithoutConfidence: calibrate keeps the race of
// the router it tunes, and the policy it writes pays both calls for the
// dearer answer as the parent's did; it said nothing where train warns.
func TestCalibrateWarnsOfARaceWithoutConfidence(t *testing.T) {
	dir := t.TempDir()
	log := threeTierLog(t, dir, 90)
	const want = "triage calibrate: warning: --race 0.1 races tiers, but the log gives no tier below the dearest a confidence"
	for _, race := range []string{"0.1", "0"} {
		model := filepath.Join(dir, "r"+race+".json")
		if _, stderr, code := run(t, "train", "--data", log, "--tiers", "cheap=0.1,chat=1,maths=3", "--folds", "2", "--l2", "0.01", "--race", race, "-o", model); code != 0 {
			t.Fatalf("train --race %s: exit %d, stderr %q", race, code, stderr)
		}
		_, stderr, code := run(t, "calibrate", "--model", model, "--data", log, "--target", "quality=1.2", "-o", filepath.Join(dir, "c"+race+".json"))
		if code != 0 || strings.Contains(stderr, want) != (race != "0") {
			t.Errorf("calibrate of a router trained with --race %s: exit %d, stderr %q; want the warning %q only with a race", race, code, stderr, want)
		}
	}
}

// TestNTierFewRecordsWarningIsTrue: the few-records warning of an N-tier
// router's figures spoke of "APGR's 95% interval", a figure N-tier
// routers do not report; it gives the bound of the quality's interval
// instead (1.96·0.5/√90 = 0.103 on 90 records).
func TestNTierFewRecordsWarningIsTrue(t *testing.T) {
	dir := t.TempDir()
	log := threeTierLog(t, dir, 90)
	model := trainThreeTiers(t, dir, log)
	const want = "triage eval: warning: the figures below rest on 90 records, too few to trust (N-tier figures carry no interval; a quality, a mean of scores in [0,1], over 90 records has a 95% interval up to ±0.10 wide, ±10 points on 0-100); evaluate on a larger log"
	_, stderr, code := run(t, "eval", "--model", model, "--data", log)
	if code != 0 || !strings.Contains(stderr, want) || strings.Contains(stderr, "APGR") {
		t.Errorf("exit %d, stderr %q; want 0, %q and no APGR", code, stderr, want)
	}
}

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/datasets/synth"
	"github.com/triage-router/triage/models"
)

// TestRetrainJudgesUnseenRecords is the README's loop in small: a router
// trained with --holdout on a log with confidences, an export of
// confidence-only traffic (nobody posted a score), and retrain on both.
// The gate must judge only on the log's records the champion did not
// train on (its id-hash holdout), the newest by time or not; the
// confidence soft labels are used; and a champion that trained on every
// scored record leaves nothing to judge, which is a refusal (exit 3).
func TestRetrainJudgesUnseenRecords(t *testing.T) {
	// Trainings and report renders whose concurrency smaller tests
	// cover under -race: 3-7 s there, a fraction without (Makefile SLOW_CMD).
	skipSlow(t)
	dir := t.TempDir()
	recs, _ := synth.Generate(synth.Options{N: 500, Seed: 7, Scenario: synth.Speculation, Latency: true, Confidence: true})
	base := writeRecords(t, dir, "log.jsonl", recs)
	// Traffic: the same kind of prompts under new ids, later, each with
	// the fast tier's confidence only, as the proxy records a fast answer.
	more, _ := synth.Generate(synth.Options{N: 150, Seed: 8, Scenario: synth.Speculation, Latency: true, Confidence: true})
	var served []datasets.Record
	for i, r := range more {
		o := r.Outcomes[synth.FastModel]
		served = append(served, datasets.Record{ID: fmt.Sprintf("req-%d", i), TS: r.TS.Add(48 * time.Hour), Prompt: r.Prompt, Meta: r.Meta,
			Decision: &datasets.Decision{Kind: "fast", PHard: 0.1, Propensity: 0.98},
			Outcomes: map[string]datasets.Outcome{synth.FastModel: {Confidence: o.Confidence, LatencyMS: o.LatencyMS}}})
	}
	export := writeRecords(t, dir, "served.jsonl", served)
	unseen := 0
	for i := range recs {
		if datasets.InHoldout(recs[i].ID, 1, 0.2) {
			unseen++
		}
	}

	model := filepath.Join(dir, "router.json")
	if _, stderr, code := run(t, "train", "--data", base, "--fast", synth.FastModel, "--strong", synth.StrongModel, "--holdout", "0.2", "--l2", "0.03", "--folds", "3", "--hash-bits", "14", "-o", model); code != 0 {
		t.Fatalf("train exited %d: %s", code, stderr)
	}
	stdout, stderr, code := run(t, "retrain", "--model", model, "--data", base, "--feedback", export, "--folds", "3", "--resamples", "200", "-o", filepath.Join(dir, "new.json"))
	if code != 0 && code != exitRefused {
		t.Fatalf("retrain exited %d: %s", code, stderr)
	}
	for _, want := range []string{
		fmt.Sprintf("not judged: %d labelled records the champion was trained on", len(recs)-unseen),
		// Every record the champion's holdout kept out judges (here 102,
		// where the newest fifth of the log is 100), and the line says
		// they are that holdout: "102 newest since" the log's first
		// minutes was untrue of records spread over the whole log.
		fmt.Sprintf("held out: %d, all kept out of the champion's training by its id-hash holdout (", unseen),
		"fast by calibrated confidence",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout does not contain %q:\n%s", want, stdout)
		}
	}
	if want := "the champion was trained on " + base + " (share kept out by id hash: 20%)"; !strings.Contains(stderr, want) {
		t.Errorf("stderr does not contain %q:\n%s", want, stderr)
	}
	t.Logf("exit %d:\n%s", code, stdout)

	// A router made by retrain records its logs' digests as train does,
	// so eval knows a byte-identical copy of a log it was trained on (it
	// said nothing, and measured the router in-sample).
	retrained := filepath.Join(dir, "forced.json")
	if _, stderr, code := run(t, "retrain", "--model", model, "--data", base, "--feedback", export, "--folds", "3", "--resamples", "100", "--force", "-o", retrained); code != 0 {
		t.Fatalf("retrain --force exited %d: %s", code, stderr)
	}
	logCopy := filepath.Join(dir, "log-copy.jsonl")
	if b, err := os.ReadFile(base); err != nil || os.WriteFile(logCopy, b, 0o644) != nil {
		t.Fatalf("copy the log: %v", err)
	}
	if _, stderr, code := run(t, "eval", "--model", retrained, "--data", logCopy); code != 0 || !strings.Contains(stderr, "ones it was trained on") {
		t.Errorf("eval of the retrained router on a copy of its log: exit %d, no in-sample warning:\n%s", code, stderr)
	}

	// The loop run again on the same files: the retrained router counts
	// every record up to the newest it trained on as its own, so nothing
	// is left to judge. The refusal said "the champion was trained on 500
	// of the 500", untrue of the slice it was judged on, and advised
	// training it with --holdout, which cannot be done to it.
	stdout, _, code = run(t, "retrain", "--model", retrained, "--data", base, "--feedback", export, "--folds", "3", "--resamples", "100", "-o", filepath.Join(dir, "again.json"))
	if code != exitRefused || strings.Contains(stdout, "was trained on") || strings.Contains(stdout, "--holdout") ||
		!strings.Contains(stdout, fmt.Sprintf("counts as its own, %d of the %d here, the slice it was judged on included", len(recs), len(recs))) {
		t.Errorf("retrain of the retrained router: exit %d, stdout %q; want a refusal (3) that says its records are counted by time", code, stdout)
	}

	// A byte-identical copy of the log under another path is known by its
	// digest as the champion's log.
	moved := filepath.Join(dir, "moved.jsonl")
	b, err := os.ReadFile(base)
	if err != nil || os.WriteFile(moved, b, 0o644) != nil {
		t.Fatalf("copy the log: %v", err)
	}
	_, stderr, code = run(t, "retrain", "--model", model, "--data", moved, "--feedback", export, "--folds", "3", "--resamples", "200", "-o", filepath.Join(dir, "new-moved.json"))
	if code != 0 && code != exitRefused {
		t.Fatalf("retrain on the copy exited %d: %s", code, stderr)
	}
	if want := "the champion was trained on " + moved + " (share kept out by id hash: 20%)"; !strings.Contains(stderr, want) {
		t.Errorf("retrain on the copy: stderr does not contain %q:\n%s", want, stderr)
	}
	// An edited copy (one more blank line) is not a file the artifact
	// names: retrain still takes it to be the champion's (so the same
	// records are not judged), and says that this is an assumption and
	// which log the artifact names.
	if err := os.WriteFile(moved, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code = run(t, "retrain", "--model", model, "--data", moved, "--feedback", export, "--folds", "3", "--resamples", "200", "-o", filepath.Join(dir, "new-moved.json"))
	if code != 0 && code != exitRefused {
		t.Fatalf("retrain on the edited copy exited %d: %s", code, stderr)
	}
	if want := fmt.Sprintf("the champion's artifact names its training data as %s, which no --data file is by path or content; %s is taken to be that data", base, moved); !strings.Contains(stderr, want) {
		t.Errorf("stderr does not contain %q:\n%s", want, stderr)
	}
	if want := fmt.Sprintf("not judged: %d labelled records the champion was trained on", len(recs)-unseen); !strings.Contains(stdout, want) {
		t.Errorf("retrain on the edited copy: stdout does not contain %q:\n%s", want, stdout)
	}

	// The same router as if trained with --holdout 0: it saw every scored record.
	a, err := models.Load(model)
	if err != nil {
		t.Fatal(err)
	}
	a.Training.HoldoutShare = 0
	all := filepath.Join(dir, "router-all.json")
	if err := a.Save(all); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code = run(t, "retrain", "--model", all, "--data", base, "--feedback", export, "--folds", "3", "--resamples", "200", "-o", filepath.Join(dir, "new2.json"))
	if code != exitRefused || !strings.Contains(stdout, "no record with both tiers' scores is left to judge on") || !strings.Contains(stderr, "challenger refused") {
		t.Errorf("exit %d, stdout %q, stderr %q; want a refusal (3): nothing left to judge on", code, stdout, stderr)
	}
	// --force cannot help (no challenger was trained), and the refusal
	// must not suggest it.
	_, stderr, code = run(t, "retrain", "--model", all, "--data", base, "--feedback", export, "--folds", "3", "--resamples", "200", "--force", "-o", filepath.Join(dir, "new3.json"))
	if code != exitRefused || strings.Contains(stderr, "--force writes it anyway") || !strings.Contains(stderr, "--force cannot write one") {
		t.Errorf("with --force: exit %d, stderr %q; want a refusal (3) that says --force cannot write a challenger", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "new3.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("new3.json: %v, want no file", err)
	}
}

// TestRetrainImputes: on one-sided feedback (fast decisions with the fast
// score, escalations with the strong score, explored requests with both),
// retrain imputes the fast tier of every escalation by default, says so
// and counts it in --json, and --impute none turns it off.
func TestRetrainImputes(t *testing.T) {
	skipSlow(t) // whole train + retrain runs: 9-13 s each under -race; make test runs them without it
	dir := t.TempDir()
	recs, _ := synth.Generate(synth.Options{N: 1000, Seed: 9})
	base := writeRecords(t, dir, "base.jsonl", recs[:400])
	var served []datasets.Record
	escalated := 0
	for i, r := range recs[400:] {
		kind, keep := "fast", synth.FastModel
		if i%3 == 0 {
			kind, keep = "escalate", synth.StrongModel
		}
		d := &datasets.Decision{Kind: kind, PHard: 0.5, Propensity: 0.9}
		o := map[string]datasets.Outcome{keep: r.Outcomes[keep]}
		if i%10 == 1 {
			d = &datasets.Decision{Kind: "speculate", PHard: 0.5, Propensity: 0.1, Explored: true}
			o = r.Outcomes
		} else if kind == "escalate" {
			escalated++
		}
		served = append(served, datasets.Record{ID: r.ID, TS: r.TS.Add(48 * time.Hour), Prompt: r.Prompt, Meta: r.Meta, Decision: d, Outcomes: o})
	}
	export := writeRecords(t, dir, "served.jsonl", served)
	model := filepath.Join(dir, "router.json")
	if _, stderr, code := run(t, "train", "--data", base, "--fast", synth.FastModel, "--strong", synth.StrongModel, "--scorer", "per-tier", "--holdout", "0.2", "--l2", "0.03", "--folds", "3", "--hash-bits", "14", "-o", model); code != 0 {
		t.Fatalf("train exited %d: %s", code, stderr)
	}
	args := []string{"retrain", "--model", model, "--data", base, "--feedback", export, "--folds", "3", "--resamples", "100", "--force", "-o", filepath.Join(dir, "new.json")}
	stdout, stderr, code := run(t, args...)
	if code != 0 {
		t.Fatalf("retrain exited %d: %s", code, stderr)
	}
	// The training side holds every escalation (the held-out slice is
	// paired records only).
	if want := fmt.Sprintf("imputed from the tier that ran: %s (%d fast, 0 strong;", count(escalated, "target"), escalated); !strings.Contains(stdout, want) {
		t.Errorf("stdout does not contain %q:\n%s", want, stdout)
	}
	stdout, _, code = run(t, append(args, "--json")...)
	if code != 0 || !strings.Contains(stdout, fmt.Sprintf(`"imputed":{"fast":%d,"strong":0}`, escalated)) {
		t.Errorf("exit %d, --json does not count %d imputed fast targets:\n%s", code, escalated, stdout)
	}
	stdout, _, code = run(t, append(args, "--impute", "none")...)
	if code != 0 || strings.Contains(stdout, "imputed") {
		t.Errorf("exit %d, --impute none still imputed:\n%s", code, stdout)
	}
}

// TestRetrainNothingToJudgeJSON: with --json, stdout holds one JSON object
// or nothing; the refusal for a champion that saw every scored record
// (exit 3) used to print its plain-text line on stdout, which a script
// reading the JSON could not parse.
func TestRetrainNothingToJudgeJSON(t *testing.T) {
	dir := t.TempDir()
	recs, _ := synth.Generate(synth.Options{N: 200, Seed: 7, Scenario: synth.Speculation})
	base := writeRecords(t, dir, "log.jsonl", recs)
	model := filepath.Join(dir, "router.json")
	if _, stderr, code := run(t, "train", "--data", base, "--fast", synth.FastModel, "--strong", synth.StrongModel, "--l2", "0.03", "--folds", "3", "--hash-bits", "12", "-o", model); code != 0 {
		t.Fatalf("train exited %d: %s", code, stderr)
	}
	stdout, stderr, code := run(t, "retrain", "--model", model, "--data", base, "--folds", "3", "--resamples", "100", "--json", "-o", filepath.Join(dir, "new.json"))
	if code != exitRefused || !strings.Contains(stderr, "left to judge on") {
		t.Fatalf("exit %d, stderr %q; want a refusal (3): nothing left to judge on", code, stderr)
	}
	if strings.TrimSpace(stdout) != "" {
		t.Errorf("--json stdout is not JSON: %q", stdout)
	}
}

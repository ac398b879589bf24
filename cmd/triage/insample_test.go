package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/models"
)

// TestInSampleFiguresAreFlagged: train fits on the whole log by default,
// so eval, curves and calibrate on that same log measure a router on
// requests it has seen. Each says so, and --unseen measures on the
// records the artifact's id-hash holdout kept out, and only those.
func TestInSampleFiguresAreFlagged(t *testing.T) {
	skipSlow(t)
	dir := t.TempDir()
	recs := sampleRecords(t)
	log := filepath.Join(dir, "log.jsonl")
	writeLog(t, log, recs[:600])
	other := filepath.Join(dir, "other.jsonl")
	writeLog(t, other, recs[600:900])

	model := filepath.Join(dir, "router.json")
	if _, stderr, code := run(t, "train", "--data", log, "--fast", sampleFast, "--strong", sampleStrong, "--holdout", "0.25", "--l2", "0.01", "-o", model); code != 0 {
		t.Fatalf("train exited %d: %s", code, stderr)
	}
	a, err := models.Load(model)
	if err != nil {
		t.Fatal(err)
	}
	held := 0
	for _, r := range recs[:600] {
		if datasets.InHoldout(r.ID, a.Training.Seed, a.Training.HoldoutShare) {
			held++
		}
	}
	if held < 100 || held > 200 {
		t.Fatalf("%d of 600 held out at share 0.25", held)
	}
	trained := 600 - held
	warning := fmt.Sprintf("warning: %s: %d of the 600 requests in --data are ones it was trained on", model, trained)

	// inSampleJSON is eval --json's count of the requests measured that
	// the router was trained on.
	inSampleJSON := func(t *testing.T, out string) int {
		t.Helper()
		var got map[string]models.Report
		if err := json.Unmarshal([]byte(out), &got); err != nil || got["router"].InSample == nil {
			t.Fatalf("eval --json %q: %v, or no router.in_sample", out, err)
		}
		return *got["router"].InSample
	}

	t.Run("eval warns on the training log, and --unseen measures the held-out share", func(t *testing.T) {
		_, stderr, code := run(t, "eval", "--model", model, "--data", log)
		if code != 0 || !strings.Contains(stderr, warning) {
			t.Errorf("eval exited %d; stderr %q lacks %q", code, stderr, warning)
		}
		// A script reading --json learns what the warning says.
		out, _, code := run(t, "eval", "--model", model, "--data", log, "--json")
		if n := inSampleJSON(t, out); code != 0 || n != trained {
			t.Errorf("eval --json on the training log: exit %d, in_sample %d; want %d", code, n, trained)
		}
		out, stderr, code = run(t, "eval", "--model", model, "--data", log, "--unseen", "--json")
		if code != 0 || strings.Contains(stderr, "warning") || !strings.Contains(stderr, fmt.Sprintf("measuring on the %d of 600 requests", held)) {
			t.Fatalf("eval --unseen exited %d: %s", code, stderr)
		}
		var got map[string]models.Report
		if err := json.Unmarshal([]byte(out), &got); err != nil || got["router"].N != held {
			t.Errorf("eval --unseen measured %d requests (%v), want the %d held out", got["router"].N, err, held)
		}
		if n := inSampleJSON(t, out); n != 0 {
			t.Errorf("eval --unseen --json: in_sample %d; want 0", n)
		}
		// A log given twice is refused (TestLogsShareNoIDs), rather than
		// measured with its records counted twice.
		if _, stderr, code = run(t, "eval", "--model", model, "--data", log+","+log, "--unseen", "--json"); code != 2 || !strings.Contains(stderr, "twice") {
			t.Errorf("eval --unseen on the log given twice: exit %d, %s; want 2 and the log named", code, stderr)
		}
		// score warns too (after its lines): figures are computed from them.
		out, stderr, code = run(t, "score", "--model", model, "--data", log)
		if code != 0 || strings.Count(out, "\n") != 600 || !strings.Contains(stderr, strings.Replace(warning, "triage eval", "triage score", 1)) || !strings.Contains(stderr, fmt.Sprintf("calibrate --unseen, which keep only the %d it was not trained on", held)) {
			t.Errorf("score exited %d; stderr %q", code, stderr)
		}
		// A log the artifact does not name is not the router's.
		if _, stderr, code := run(t, "eval", "--model", model, "--data", other); code != 0 || strings.Contains(stderr, "warning") {
			t.Errorf("eval on another log exited %d: %s", code, stderr)
		}
		out, _, code = run(t, "eval", "--model", model, "--data", other, "--json")
		if n := inSampleJSON(t, out); code != 0 || n != 0 {
			t.Errorf("eval --json on another log: exit %d, in_sample %d; want 0", code, n)
		}
	})

	t.Run("a copy of the training log elsewhere is known by its bytes", func(t *testing.T) {
		// As after moving the log and the router to another machine: the
		// path differs, the content is the same.
		moved := filepath.Join(t.TempDir(), "moved.jsonl")
		b, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(moved, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, stderr, code := run(t, "eval", "--model", model, "--data", moved); code != 0 || !strings.Contains(stderr, fmt.Sprintf("%d of the 600 requests in --data are ones it was trained on", trained)) {
			t.Errorf("eval on a copy exited %d; stderr %q lacks the in-sample warning", code, stderr)
		}
		if _, stderr, code := run(t, "eval", "--model", model, "--data", moved, "--unseen"); code != 0 || !strings.Contains(stderr, fmt.Sprintf("measuring on the %d of 600 requests", held)) {
			t.Errorf("eval --unseen on a copy exited %d: %s", code, stderr)
		}
		// Other bytes (here one more blank line) make it another log.
		if err := os.WriteFile(moved, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, stderr, code := run(t, "eval", "--model", model, "--data", moved); code != 0 || strings.Contains(stderr, "warning") {
			t.Errorf("eval on an edited copy exited %d: %s", code, stderr)
		}
	})

	t.Run("curves carries the note into the report; --unseen replays the held-out share", func(t *testing.T) {
		rep := filepath.Join(dir, "report")
		_, stderr, code := run(t, "curves", "--model", model, "--data", log, "--resamples", "100", "--grid", "20", "-o", rep)
		// curves names a router by its section, the file's base name.
		if want := strings.Replace(warning, model+":", "router:", 1); code != 0 || !strings.Contains(stderr, want) {
			t.Fatalf("curves exited %d; stderr %q lacks %q", code, stderr, want)
		}
		page, _ := os.ReadFile(filepath.Join(rep, "index.html"))
		if !strings.Contains(string(page), fmt.Sprintf("in-sample: %d of the 600 requests measured", trained)) {
			t.Errorf("index.html lacks the in-sample note")
		}
		unseen := filepath.Join(dir, "report-unseen")
		if _, stderr, code := run(t, "curves", "--model", model, "--data", log, "--unseen", "--resamples", "100", "--grid", "20", "-o", unseen); code != 0 {
			t.Fatalf("curves --unseen exited %d: %s", code, stderr)
		}
		var mj struct {
			N       int      `json:"n"`
			Sources []string `json:"sources"`
		}
		b, err := os.ReadFile(filepath.Join(unseen, "metrics.json"))
		if err != nil || json.Unmarshal(b, &mj) != nil {
			t.Fatalf("metrics.json: %v %s", err, b)
		}
		if mj.N != held || !strings.Contains(strings.Join(mj.Sources, "\n"), fmt.Sprintf("%d of the log's 600 requests were left out (--unseen)", trained)) {
			t.Errorf("curves --unseen: n %d (want %d), sources %q", mj.N, held, mj.Sources)
		}
	})

	t.Run("calibrate --unseen sets thresholds on the held-out share", func(t *testing.T) {
		out, stderr, code := run(t, "calibrate", "--model", model, "--data", log, "--unseen", "--target", "quality=0.9", "--resamples", "100", "-o", filepath.Join(dir, "cal.json"))
		if code != 0 || !strings.Contains(out, fmt.Sprintf("(%d requests,", held)) {
			t.Errorf("calibrate --unseen exited %d: %s%s", code, out, stderr)
		}
	})

	t.Run("a retrained router counts only the logs it names", func(t *testing.T) {
		// retrain records the logs it was given and the start of its
		// held-out period; every record of those logs before it (and
		// every untimed one) was trained on. A test log it does not
		// name is new to it, timed or not.
		b := *a
		b.Training.HeldSince = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC) // after every record
		re := filepath.Join(dir, "retrained.json")
		if err := b.Save(re); err != nil {
			t.Fatal(err)
		}
		if _, stderr, code := run(t, "eval", "--model", re, "--data", other); code != 0 || strings.Contains(stderr, "warning") {
			t.Errorf("eval of a retrained router on a log it does not name exited %d: %s", code, stderr)
		}
		_, stderr, code := run(t, "eval", "--model", re, "--data", log)
		if want := fmt.Sprintf("warning: %s: 600 of the 600 requests in --data are ones it was trained on", re); code != 0 || !strings.Contains(stderr, want) {
			t.Errorf("eval of a retrained router on its own log exited %d; stderr %q lacks %q", code, stderr, want)
		}
	})

	t.Run("--unseen on a router trained on every record says there is nothing left", func(t *testing.T) {
		all := filepath.Join(dir, "all.json")
		if _, stderr, code := run(t, "train", "--data", log, "--fast", sampleFast, "--strong", sampleStrong, "--l2", "0.01", "-o", all); code != 0 {
			t.Fatalf("train exited %d: %s", code, stderr)
		}
		_, stderr, code := run(t, "eval", "--model", all, "--data", log, "--unseen")
		if code != 1 || !strings.Contains(stderr, "--unseen leaves no request") {
			t.Errorf("eval --unseen exited %d: %s", code, stderr)
		}
	})
}

// TestJSONCountsTheInSampleRequests: eval --json and train --json carry
// in_sample, the requests measured that the router was trained on, since
// a script never sees the stderr warning; curves' metrics.json and
// calibrate --json, the other outputs scripts read, did not.
func TestJSONCountsTheInSampleRequests(t *testing.T) {
	skipSlow(t)
	dir := t.TempDir()
	recs := sampleRecords(t)
	log := filepath.Join(dir, "log.jsonl")
	writeLog(t, log, recs[:400])
	model := filepath.Join(dir, "router.json")
	if _, stderr, code := run(t, "train", "--data", log, "--fast", sampleFast, "--strong", sampleStrong, "--holdout", "0.25", "--l2", "0.03", "--folds", "2", "--hash-bits", "14", "-o", model); code != 0 {
		t.Fatalf("train exited %d: %s", code, stderr)
	}
	a, err := models.Load(model)
	if err != nil {
		t.Fatal(err)
	}
	trained := 0
	for _, r := range recs[:400] {
		if !datasets.InHoldout(r.ID, a.Training.Seed, a.Training.HoldoutShare) {
			trained++
		}
	}
	// score's warning said to train with --holdout 0.2, which this
	// router was: the figures it can have are --unseen's.
	_, stderr, code := run(t, "score", "--model", model, "--data", log)
	if want := fmt.Sprintf("compute figures with eval, curves or calibrate --unseen, which keep only the %d it was not trained on", 400-trained); code != 0 || !strings.Contains(stderr, want) || strings.Contains(stderr, "train with --holdout") {
		t.Errorf("score on the training log: exit %d, stderr %q; want %q", code, stderr, want)
	}
	inSample := func(t *testing.T, what string, b []byte) int {
		t.Helper()
		var got struct {
			InSample *int `json:"in_sample"`
		}
		if err := json.Unmarshal(b, &got); err != nil || got.InSample == nil {
			t.Fatalf("%s: %v, or no in_sample in %.200s", what, err, b)
		}
		return *got.InSample
	}
	for _, c := range []struct {
		name string
		flag []string
		want int
	}{
		{"on the training log", nil, trained},
		{"with --unseen", []string{"--unseen"}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			rep := filepath.Join(t.TempDir(), "report")
			args := append([]string{"curves", "--model", model, "--data", log, "--grid", "10", "--accept-grid", "2", "--resamples", "100", "-o", rep}, c.flag...)
			if _, stderr, code := run(t, args...); code != 0 {
				t.Fatalf("curves exited %d: %s", code, stderr)
			}
			b, err := os.ReadFile(filepath.Join(rep, "metrics.json"))
			if err != nil {
				t.Fatal(err)
			}
			if got := inSample(t, "metrics.json", b); got != c.want {
				t.Errorf("metrics.json in_sample %d, want %d", got, c.want)
			}
			args = append([]string{"calibrate", "--model", model, "--data", log, "--target", "strong-share=0.3", "--grid", "10", "--accept-grid", "2", "--resamples", "100", "--json", "-o", filepath.Join(t.TempDir(), "new.json")}, c.flag...)
			out, stderr, code := run(t, args...)
			if code != 0 {
				t.Fatalf("calibrate exited %d: %s", code, stderr)
			}
			if got := inSample(t, "calibrate --json", []byte(out)); got != c.want {
				t.Errorf("calibrate --json in_sample %d, want %d", got, c.want)
			}
		})
	}
}

// TestEvalTableSaysWhatItMeasured: train heads its table "out-of-fold"
// or "held-out"; eval printed the bare table, so a router measured on its
// own training log (warned on stderr only) and one measured on new
// traffic read alike on stdout.
func TestEvalTableSaysWhatItMeasured(t *testing.T) {
	dir := t.TempDir()
	recs := sampleRecords(t)
	log := filepath.Join(dir, "log.jsonl")
	writeLog(t, log, recs[:300])
	other := filepath.Join(dir, "other.jsonl")
	writeLog(t, other, recs[300:500])
	model := filepath.Join(dir, "router.json")
	small := []string{"--folds", "2", "--l2", "0.01", "--hash-bits", "14"}
	if _, stderr, code := run(t, append([]string{"train", "--data", log, "--fast", sampleFast, "--strong", sampleStrong, "--holdout", "0.25", "-o", model}, small...)...); code != 0 {
		t.Fatalf("train exited %d: %s", code, stderr)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"eval", "--model", model, "--data", log}, "in-sample: "},
		{[]string{"eval", "--model", model, "--data", log, "--unseen"}, "held-out figures (--unseen: the "},
		{[]string{"eval", "--model", model, "--data", other}, "figures on the 200 requests of --data (none found in the logs"},
		{append([]string{"eval", "--cv", "2", "--data", log, "--fast", sampleFast, "--strong", sampleStrong}, small...), "out-of-fold figures (2-fold cross-validation"},
	} {
		out, stderr, code := run(t, c.args...)
		if first, _, _ := strings.Cut(out, "\n"); code != 0 || !strings.HasPrefix(first, c.want) {
			t.Errorf("%v: exit %d, first line %q, want it to start %q (stderr %s)", c.args, code, first, c.want, stderr)
		}
	}
}

// TestUnpairedRecordsAreCountedAlike: eval counts the records it measures,
// those with both tiers' scores; curves and calibrate read every record
// and skip the others later, so on a training log of 400 paired records
// and one without the strong tier's score, eval said "400 of the 400
// requests" were in-sample and calibrate and curves "401 of the 401",
// calibrate --json and metrics.json gave in_sample 401 with n 400, and
// eval worded the skip "without both outcomes", the others "without both
// tiers' scores". score scores every record, the unpaired one too, so it
// counts 401.
func TestUnpairedRecordsAreCountedAlike(t *testing.T) {
	skipSlow(t)
	recs := sampleRecords(t)[:401]
	delete(recs[400].Outcomes, sampleStrong)
	train := func(t *testing.T, holdout string) (log, model string) {
		t.Helper()
		dir := t.TempDir()
		log, model = filepath.Join(dir, "log.jsonl"), filepath.Join(dir, "router.json")
		writeLog(t, log, recs)
		if _, stderr, code := run(t, "train", "--data", log, "--fast", sampleFast, "--strong", sampleStrong, "--holdout", holdout, "--l2", "0.03", "--folds", "2", "--hash-bits", "14", "--route-anyway", "-o", model); code != 0 {
			t.Fatalf("train exited %d: %s", code, stderr)
		}
		return log, model
	}
	// commands runs eval, calibrate and curves with --json (curves writes
	// metrics.json) and returns each one's stderr and JSON.
	commands := func(t *testing.T, log, model string, flags ...string) (stderr, js map[string]string) {
		t.Helper()
		stderr, js = map[string]string{}, map[string]string{}
		rep := filepath.Join(t.TempDir(), "report")
		for name, args := range map[string][]string{
			"eval":      {"eval", "--model", model, "--data", log, "--json"},
			"calibrate": {"calibrate", "--model", model, "--data", log, "--target", "strong-share=0.3", "--grid", "10", "--accept-grid", "2", "--resamples", "100", "--json", "-o", filepath.Join(t.TempDir(), "new.json")},
			"curves":    {"curves", "--model", model, "--data", log, "--grid", "10", "--accept-grid", "2", "--resamples", "100", "-o", rep},
		} {
			out, errs, code := run(t, append(args, flags...)...)
			if code != 0 {
				t.Fatalf("%s exited %d: %s", name, code, errs)
			}
			stderr[name], js[name] = errs, out
		}
		b, err := os.ReadFile(filepath.Join(rep, "metrics.json"))
		if err != nil {
			t.Fatal(err)
		}
		js["curves"] = string(b)
		return stderr, js
	}
	// nAndInSample reads n and in_sample: eval's under "router", the
	// others' at the top.
	nAndInSample := func(t *testing.T, name, js string) (n, inSample int) {
		t.Helper()
		var v struct {
			N        int `json:"n"`
			InSample int `json:"in_sample"`
			Router   *struct {
				N        int `json:"n"`
				InSample int `json:"in_sample"`
			} `json:"router"`
		}
		if err := json.Unmarshal([]byte(js), &v); err != nil {
			t.Fatalf("%s: %v in %.200s", name, err, js)
		}
		if v.Router != nil {
			return v.Router.N, v.Router.InSample
		}
		return v.N, v.InSample
	}

	t.Run("on the training log each says 400 of the 400 and one skipped", func(t *testing.T) {
		log, model := train(t, "0")
		stderr, js := commands(t, log, model)
		for _, name := range []string{"eval", "calibrate", "curves"} {
			if want := "400 of the 400 requests in --data are ones it was trained on"; !strings.Contains(stderr[name], want) {
				t.Errorf("%s stderr %q, want %q", name, stderr[name], want)
			}
			if want := "1 record skipped without both tiers' scores\n"; !strings.Contains(stderr[name], want) {
				t.Errorf("%s stderr %q, want %q", name, stderr[name], want)
			}
			if n, in := nAndInSample(t, name, js[name]); n != 400 || in != 400 {
				t.Errorf("%s JSON: n %d, in_sample %d; want 400 and 400", name, n, in)
			}
		}
		_, errs, code := run(t, "score", "--model", model, "--data", log, "-o", filepath.Join(t.TempDir(), "scores.jsonl"))
		if want := "401 of the 401 requests in --data"; code != 0 || !strings.Contains(errs, want) {
			t.Errorf("score exited %d, stderr %q; want %q", code, errs, want)
		}
	})
	t.Run("with --unseen each measures on the same count of the 400", func(t *testing.T) {
		log, model := train(t, "0.25")
		stderr, _ := commands(t, log, model, "--unseen")
		line := func(name string) string {
			_, rest, ok := strings.Cut(stderr[name], "triage "+name+": --unseen: ")
			if !ok {
				t.Fatalf("%s stderr %q has no --unseen line", name, stderr[name])
			}
			rest, _, _ = strings.Cut(rest, "\n")
			return rest
		}
		want := line("eval")
		if !strings.Contains(want, " of 400 requests ") {
			t.Errorf("eval: --unseen: %q, want a count of 400 requests", want)
		}
		for _, name := range []string{"calibrate", "curves"} {
			if got := line(name); got != want {
				t.Errorf("%s: --unseen: %q, eval's %q", name, got, want)
			}
		}
	})
}

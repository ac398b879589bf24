package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/features"
	"github.com/triage-router/triage/models"
	"github.com/triage-router/triage/models/retrain"
)

// sampleRouter is the artifact trainSample trains, once per test binary:
// training it took 4-5 s under -race in each of the tests that only use it.
var sampleRouter struct {
	once   sync.Once
	raw    []byte
	failed string
}

// trainSample writes a router trained on the bundled sample log to
// dir/router.json and returns its path. The first call trains it with
// the real train command; the others copy that artifact (train is
// deterministic, and the artifact records neither its output path nor
// the test that asked).
func trainSample(t *testing.T, dir string) string {
	t.Helper()
	model := filepath.Join(dir, "router.json")
	sampleRouter.once.Do(func() {
		out := filepath.Join(t.TempDir(), "router.json")
		// A fixed L2 and 3 folds keep this quick under -race; the CV
		// path is covered in models.
		_, stderr, code := run(t, "train", "--data", sampleLog, "--fast", sampleFast, "--strong", sampleStrong, "--l2", "0.03", "--folds", "3", "-o", out)
		if code != 0 {
			sampleRouter.failed = fmt.Sprintf("train exited %d: %s", code, stderr)
			return
		}
		raw, err := os.ReadFile(out)
		if err != nil {
			sampleRouter.failed = err.Error()
			return
		}
		sampleRouter.raw = raw
	})
	if sampleRouter.failed != "" {
		t.Fatal(sampleRouter.failed)
	}
	if err := os.WriteFile(model, sampleRouter.raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return model
}

// TestTrainTooFewSaysWhy: a log too small to train on is refused in one
// line; where --holdout kept the records out, the line says so instead of
// only "log more requests".
func TestTrainTooFewSaysWhy(t *testing.T) {
	out := filepath.Join(t.TempDir(), "router.json")
	_, stderr, code := run(t, "train", "--data", sampleLog, "--fast", sampleFast, "--strong", sampleStrong, "--holdout", "0.999", "-o", out)
	if code != 1 || !strings.Contains(stderr, "training needs at least 30") || !strings.Contains(stderr, "--holdout 0.999 kept 2000 of the 2000 records out") {
		t.Errorf("exit %d, stderr %q; want 1 and a line naming the size and the holdout", code, stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("an artifact was written: %v", err)
	}
}

// TestMissingTiersNamesTheLogsModels: a command not told its tiers names
// the models of the log's first records, so the user can copy them; a log
// it cannot read leaves the plain hint (the read reports why later).
func TestMissingTiersNamesTheLogsModels(t *testing.T) {
	dir := t.TempDir()
	one := writeFile(t, dir, "one.jsonl", `{"id":"a","prompt":"p","outcomes":{"m1":{"score":1},"m2":{"score":0}}}`+"\n")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"train", "--data", sampleLog, "-o", filepath.Join(dir, "r.json")}, fmt.Sprintf("the models in %s, its first 1000 records: %s (1000), %s (1000)", sampleLog, sampleFast, sampleStrong)},
		{[]string{"eval", "--cv", "5", "--data", one, "--fast", "m1"}, "the models in " + one + ", its one record: m1 (1), m2 (1)"},
		{[]string{"train", "--data", filepath.Join(dir, "absent.jsonl"), "--strong", "m2"}, "outcomes)"},
	} {
		_, stderr, code := run(t, tt.args...)
		if code != 2 || !strings.Contains(stderr, "needs --fast and --strong") || !strings.Contains(stderr, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tt.args, code, stderr, tt.want)
		}
	}
	// The log on standard input: the command stops at its usage error, so
	// the hint may read it (it named no model, and the user had to save
	// the stream to a file to learn them). gzip-compressed too.
	t.Run("a log on standard input names its models", func(t *testing.T) {
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		if _, err := zw.Write(mustRead(t, one)); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			name  string
			stdin []byte
			args  []string
		}{
			{"train", mustRead(t, one), []string{"train", "--data", "-", "-o", filepath.Join(dir, "r.json")}},
			{"eval --cv, gzip-compressed", gz.Bytes(), []string{"eval", "--cv", "5", "--data", "-", "--strong", "m2"}},
			{"export-libsvm", mustRead(t, one), []string{"export-libsvm", "--data", "-"}},
		} {
			_, stderr, code := runStdin(t, tt.stdin, tt.args...)
			if want := "the models in standard input, its one record: m1 (1), m2 (1)"; code != 2 || !strings.Contains(stderr, want) {
				t.Errorf("%s: exit %d, stderr %q; want 2 and %q", tt.name, code, stderr, want)
			}
		}
	})
}

// TestEvalModelNamesTheRoutersTier: eval --model takes its tiers from the
// artifact, so a log without one names the router's tier, not a --fast
// flag the user never gave.
func TestEvalModelNamesTheRoutersTier(t *testing.T) {
	dir := t.TempDir()
	model := serveModel(t, dir)
	a, err := models.Load(model)
	if err != nil {
		t.Fatal(err)
	}
	log := writeFile(t, dir, "other.jsonl", `{"id":"a","prompt":"p","outcomes":{"x":{"score":1},"y":{"score":0}}}`+"\n")
	// The recipe's and the fit's flags shape a training, which --model
	// does not run: refused, not ignored.
	for _, flag := range [][]string{{"--l2", "0.5"}, {"--hash-bits", "10"}, {"--scorer", "gain"}, {"--lambda", "0.1"}} {
		_, stderr, code := run(t, append([]string{"eval", "--model", model, "--data", log}, flag...)...)
		if code != 2 || !strings.Contains(stderr, flag[0]+" applies to eval --cv, not to eval --model") {
			t.Errorf("eval --model %v: exit %d, %q; want 2 and the flag named", flag, code, stderr)
		}
	}
	want := fmt.Sprintf(`the router's fast tier %q appears in no record of %s; models that do: x (1), y (1)`, a.Tiers.Fast, log)
	// curves and calibrate said "appears in no record", naming no log.
	for _, args := range [][]string{
		{"eval", "--model", model, "--data", log},
		{"curves", "--model", model, "--data", log, "-o", filepath.Join(dir, "report")},
		{"calibrate", "--model", model, "--data", log, "--target", "strong-share=0.3", "-o", filepath.Join(dir, "new.json")},
	} {
		if _, stderr, code := run(t, args...); code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("%s: exit %d, stderr %q; want 1 and %q", args[0], code, stderr, want)
		}
	}
	// A tier the user named with --fast is the flag's, not the router's.
	_, stderr, code := run(t, "eval", "--model", model, "--data", log, "--fast", "z", "--strong", "y")
	if want := `--fast model "z" appears in no record`; code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("eval --model --fast z: exit %d, stderr %q; want 1 and %q", code, stderr, want)
	}
	// --label other than the router's was ignored; it is refused.
	other := "weak-fails"
	if a.Label == other {
		other = "strong-wins"
	}
	_, stderr, code = run(t, "eval", "--model", model, "--data", log, "--label", other)
	if code != 2 || !strings.Contains(stderr, "was trained for "+a.Label) {
		t.Errorf("eval --model --label %s: exit %d, stderr %q; want 2 naming the router's label", other, code, stderr)
	}
}

// TestEvalUsageGivesTheModelFormsFlags: eval --model takes --unseen (the
// README's way to measure on what the router has not seen) and --fast
// --strong (to judge the router on another pair of the log's models), but
// its usage line gave --model FILE --data F [--json] alone, so -h read as
// if neither were taken with --model.
func TestEvalUsageGivesTheModelFormsFlags(t *testing.T) {
	stdout, _, code := run(t, "eval", "-h")
	if code != 0 {
		t.Fatalf("eval -h: exit %d", code)
	}
	line, _, _ := strings.Cut(stdout, "\n")
	for _, want := range []string{"--model FILE", "--unseen", "--fast M --strong M"} {
		if !strings.Contains(line, want) {
			t.Errorf("eval's first usage line %q does not give %s", line, want)
		}
	}
}

// TestEvalGivesTheAPGRInterval: eval printed an APGR without its
// uncertainty, so 0.564 on the 255 GSM8K requests a router never saw
// (the README's figure) read as routing better than random, where its
// 95% interval, [0.458, 0.686] in curves' metrics.json, holds 0.5. eval
// now prints the interval curves computes, says whether it holds 0.5, and
// gives it in --json as the router report's apgr_lo and apgr_hi.
func TestEvalGivesTheAPGRInterval(t *testing.T) {
	dir := t.TempDir()
	model := serveModel(t, dir)
	log := writeRecords(t, dir, "log.jsonl", sampleRecords(t)[:300])
	stdout, stderr, code := run(t, "eval", "--model", model, "--data", log, "--json")
	if code != 0 {
		t.Fatalf("eval --json exited %d: %s", code, stderr)
	}
	// The router report carries it as the signal names its interval, so
	// the object still decodes as reports of numbers.
	var got map[string]map[string]float64
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("eval --json printed %q: %v", stdout, err)
	}
	lo, okLo := got["router"]["apgr_lo"]
	hi, okHi := got["router"]["apgr_hi"]
	if apgr := got["router"]["apgr"]; !okLo || !okHi || !(lo <= apgr && apgr <= hi) {
		t.Fatalf("eval --json: router apgr_lo %v, apgr_hi %v around apgr %v; want an interval that holds it", lo, hi, apgr)
	}
	res := struct{ CI [2]float64 }{[2]float64{lo, hi}}
	stdout, stderr, code = run(t, "eval", "--model", model, "--data", log)
	if code != 0 {
		t.Fatalf("eval exited %d: %s", code, stderr)
	}
	verdict := "above 0.5"
	if !(res.CI[0] > 0.5) {
		verdict = "it holds 0.5: these requests do not show that the router beats random"
	}
	want := fmt.Sprintf("router apgr 95%% bootstrap interval [%.4f, %.4f] over these 300 requests (1000 resamples, as curves computes it); %s\n", res.CI[0], res.CI[1], verdict)
	if !strings.Contains(stdout, want) {
		t.Errorf("eval printed:\n%s\nwant the line %q", stdout, want)
	}
}

// TestTrainHoldoutGivesTheAPGRInterval: train --holdout printed its
// held-out APGR without an interval (0.564 on GSM8K's 255, whose interval
// holds 0.5) under a signal line about the out-of-fold figures; it now
// prints the held-out interval as eval does, and --json carries it.
func TestTrainHoldoutGivesTheAPGRInterval(t *testing.T) {
	dir := t.TempDir()
	log := writeRecords(t, dir, "log.jsonl", sampleRecords(t)[:400])
	args := []string{"train", "--data", log, "--fast", sampleFast, "--strong", sampleStrong, "--holdout", "0.3", "--folds", "2", "--l2", "0.03", "--hash-bits", "12", "--scorer", "label"}
	stdout, stderr, code := run(t, append(args, "--json", "-o", filepath.Join(dir, "a.json"))...)
	if code != 0 {
		t.Fatalf("train --json exited %d: %s", code, stderr)
	}
	var res struct {
		Router struct {
			N      int      `json:"n"`
			APGR   float64  `json:"apgr"`
			APGRLo *float64 `json:"apgr_lo"`
			APGRHi *float64 `json:"apgr_hi"`
		} `json:"router"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("train --json printed %q: %v", stdout, err)
	}
	r := res.Router
	if r.APGRLo == nil || r.APGRHi == nil || !(*r.APGRLo <= r.APGR && r.APGR <= *r.APGRHi) {
		t.Fatalf("train --json: router apgr_lo %v, apgr_hi %v around the held-out apgr %v; want an interval that holds it", r.APGRLo, r.APGRHi, r.APGR)
	}
	stdout, stderr, code = run(t, append(args, "-o", filepath.Join(dir, "b.json"))...)
	if code != 0 {
		t.Fatalf("train exited %d: %s", code, stderr)
	}
	if want := fmt.Sprintf("router apgr 95%% bootstrap interval [%.4f, %.4f] over these %d requests", *r.APGRLo, *r.APGRHi, r.N); !strings.Contains(stdout, want) {
		t.Errorf("train printed:\n%s\nwant %q", stdout, want)
	}
}

// TestLogsShareNoIDs: a log given twice is a usage error, and a record id
// in two logs (a copy, or overlapping exports) is an error naming both, in
// every command that trains or measures on several logs, instead of a
// record counted twice in silence.
func TestLogsShareNoIDs(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile(sampleLog)
	if err != nil {
		t.Fatal(err)
	}
	cp := writeFile(t, dir, "copy.jsonl", string(data))
	model := serveModel(t, dir)
	out := filepath.Join(dir, "r.json")
	pair := []string{"--fast", sampleFast, "--strong", sampleStrong}
	for _, args := range [][]string{
		append([]string{"train", "-o", out}, pair...),
		append([]string{"eval", "--cv", "3"}, pair...),
		{"train", "--tier", sampleFast, "--tier", sampleStrong, "-o", out},
		{"curves", "--model", model, "-o", filepath.Join(dir, "curves")},
	} {
		_, stderr, code := run(t, append(args, "--data", sampleLog+","+filepath.Join(filepath.Dir(sampleLog), ".", filepath.Base(sampleLog)))...)
		if code != 2 || !strings.Contains(stderr, "--data gives") || !strings.Contains(stderr, "twice") {
			t.Errorf("%v, one log twice: exit %d, stderr %q; want 2 and the log named", args, code, stderr)
		}
		_, stderr, code = run(t, append(args, "--data", sampleLog+","+cp)...)
		want := `id "synth/1/000000" of ` + cp + " is also in " + sampleLog
		if code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("%v, a copy: exit %d, stderr %q; want 1 and %q", args, code, stderr, want)
		}
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a router was written: %v", err)
	}
}

// TestTrainWordNgrams checks that --word-ngrams reaches the artifact's
// feature spec (so serving extracts what training saw) and model show.
func TestTrainWordNgrams(t *testing.T) {
	skipSlow(t)
	dir := t.TempDir()
	model := filepath.Join(dir, "router.json")
	_, stderr, code := run(t, "train", "--data", sampleLog, "--fast", sampleFast, "--strong", sampleStrong, "--l2", "0.03", "--folds", "3", "--hash-bits", "14", "--word-ngrams", "1,3", "-o", model)
	if code != 0 {
		t.Fatalf("train exited %d: %s", code, stderr)
	}
	stdout, stderr, code := run(t, "model", "show", model)
	if code != 0 {
		t.Fatalf("model show exited %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "word n-grams 1-3,") {
		t.Errorf("model show does not report word n-grams 1-3:\n%s", stdout)
	}
}

func TestTrainDifficulty(t *testing.T) {
	skipSlow(t)
	dir := t.TempDir()
	model := filepath.Join(dir, "router.json")
	_, stderr, code := run(t, "train", "--data", sampleLog, "--fast", sampleFast, "--strong", sampleStrong, "--l2", "0.03", "--folds", "3", "--hash-bits", "14", "--difficulty", "-o", model)
	if code != 0 {
		t.Fatalf("train exited %d: %s", code, stderr)
	}
	if !strings.Contains(stderr, "difficulty view mixed in (l2 0.03") {
		t.Errorf("train does not say the difficulty view is mixed in:\n%s", stderr)
	}
	stdout, stderr, code := run(t, "model", "show", model)
	if code != 0 {
		t.Fatalf("model show exited %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "(format 5)") || !strings.Contains(stdout, "  difficulty   mixed in at 0.25") {
		t.Errorf("model show does not report the difficulty view:\n%s", stdout)
	}
	if _, stderr, code := run(t, "score", "--model", model, "--data", sampleLog); code != 0 {
		t.Errorf("score exited %d: %s", code, stderr)
	}
	_, stderr, code = run(t, "train", "--data", sampleLog, "--tier", sampleFast, "--tier", sampleStrong, "--difficulty", "-o", filepath.Join(dir, "tiers.json"))
	if code != 2 || !strings.Contains(stderr, "--difficulty is for two tiers") {
		t.Errorf("train --tier --difficulty exited %d, want 2 and a usage error: %s", code, stderr)
	}
}

func TestTrainScoreEval(t *testing.T) {
	dir := t.TempDir()
	model := trainSample(t, dir)
	held := uniquePrompts(t, dir, 600)

	stdout, stderr, code := run(t, "eval", "--model", model, "--data", held, "--json")
	if code != 0 {
		t.Fatalf("eval exited %d: %s", code, stderr)
	}
	var got map[string]map[string]float64
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("eval --json printed %q: %v", stdout, err)
	}
	t.Run("eval --json has router, random and oracle with the documented keys", func(t *testing.T) {
		for _, r := range []string{"router", "random", "oracle"} {
			for _, k := range []string{"apgr", "cpt50", "cpt80", "cpt95", "n"} {
				if _, ok := got[r][k]; !ok {
					t.Errorf("%s lacks %q: %v", r, k, got[r])
				}
			}
		}
		for _, k := range []string{"auc", "log_loss", "brier", "ece"} {
			if _, ok := got["router"][k]; !ok {
				t.Errorf("router lacks %q", k)
			}
		}
		// A constant score is the random router: APGR 0.5 exactly.
		if a := got["random"]["apgr"]; math.Abs(a-0.5) > 1e-9 {
			t.Errorf("random APGR %v, want 0.5", a)
		}
		if got["router"]["apgr"] <= 0.55 || got["oracle"]["apgr"] <= got["router"]["apgr"] {
			t.Errorf("want random < router < oracle, got router %v oracle %v", got["router"]["apgr"], got["oracle"]["apgr"])
		}
	})

	scores, stderr, code := run(t, "score", "--model", model, "--data", held)
	if code != 0 {
		t.Fatalf("score exited %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(scores), "\n")
	t.Run("score prints one line per record with id, p_hard and decision", func(t *testing.T) {
		if len(lines) < 300 {
			t.Fatalf("%d lines, want one per held-out record", len(lines))
		}
		var l struct {
			ID       string  `json:"id"`
			PHard    float64 `json:"p_hard"`
			Decision string  `json:"decision"`
		}
		if err := json.Unmarshal([]byte(lines[0]), &l); err != nil || l.ID == "" || l.Decision == "" {
			t.Errorf("first line %q: %v", lines[0], err)
		}
	})

	t.Run("metrics.py on score output agrees with eval --json to 3 decimals", func(t *testing.T) {
		py := pythonWithNumpy(t, "the metrics.py parity check")
		// The anchors sit beside the shared datasets, found as the other
		// parity checks find them ($TRIAGE_DATASETS, else ../shared beside
		// the repository). This source file's own path missed them in a
		// checkout not beside ../shared, TRIAGE_DATASETS set or not, and
		// the check skipped.
		anchors := filepath.Join(sharedDatasets(t), "..", "anchors")
		if _, err := os.Stat(filepath.Join(anchors, "metrics.py")); err != nil {
			t.Skipf("anchors folder %s is absent; skipping", anchors)
		}
		sf := filepath.Join(dir, "scores.jsonl")
		os.WriteFile(sf, []byte(scores), 0o644)
		out, err := exec.Command(py, "testdata/parity.py", anchors, sf, held, sampleFast, sampleStrong).CombinedOutput()
		if err != nil {
			t.Fatalf("parity.py: %v: %s", err, out)
		}
		var ref map[string]float64
		if err := json.Unmarshal(out, &ref); err != nil {
			t.Fatalf("parity.py printed %q", out)
		}
		for _, k := range []string{"apgr", "cpt50"} {
			if d := math.Abs(ref[k] - got["router"][k]); d >= 5e-4 {
				t.Errorf("%s: metrics.py %.5f, eval %.5f", k, ref[k], got["router"][k])
			}
		}
	})

	t.Run("model show prints tiers, thresholds and named top features", func(t *testing.T) {
		out, stderr, code := run(t, "model", "show", model)
		if code != 0 {
			t.Fatalf("model show exited %d: %s", code, stderr)
		}
		for _, want := range []string{"tiers        fast=" + sampleFast, "policy", "top features", "signal       routes better than random", "out-of-fold  apgr="} {
			if !strings.Contains(out, want) {
				t.Errorf("model show output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("the artifact records the held-out metrics eval reproduces on the same split", func(t *testing.T) {
		a, err := models.Load(model)
		if err != nil {
			t.Fatal(err)
		}
		if a.Metrics["n"] < 300 {
			t.Errorf("held-out n %v, want about 20%% of 2000", a.Metrics["n"])
		}
	})
}

// pythonWithNumpy finds a python3 that can import numpy, or skips saying
// which check needs it. The system python comes first: a version
// manager's python3 shim without numpy takes seconds to fail.
func pythonWithNumpy(t *testing.T, check string) string {
	t.Helper()
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		if err := exec.Command(py, "-c", "import numpy").Run(); err == nil {
			return py
		}
	}
	t.Skip("no python3 with numpy on this machine; skipping " + check)
	return ""
}

// uniquePrompts writes a fresh synthetic log whose prompts are all
// different. Synthetic prompts repeat ("What is the capital of Peru?"),
// and tied scores are where metrics.py's random tie-breaks (8 draws) and
// our exact expectation differ, so the parity check uses untied scores.
func uniquePrompts(t *testing.T, dir string, n int) string {
	t.Helper()
	all := filepath.Join(dir, "all.jsonl")
	if _, stderr, code := run(t, "synth", "--n", strconv.Itoa(n), "--seed", "99", "-o", all); code != 0 {
		t.Fatalf("synth: %s", stderr)
	}
	recs, _, err := datasets.ReadFile(all, datasets.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var unique []datasets.Record
	seen := map[string]bool{}
	for _, r := range recs {
		if !seen[r.Prompt] {
			seen[r.Prompt] = true
			unique = append(unique, r)
		}
	}
	held := filepath.Join(dir, "held.jsonl")
	writeLog(t, held, unique)
	return held
}

// TestTrainStreamsTheSameRouter checks that train, which streams the log
// into feature rows, writes the router that training on every example in
// memory (the path eval --cv takes) gives.
func TestTrainStreamsTheSameRouter(t *testing.T) {
	skipSlow(t)
	dir := t.TempDir()
	extra := writeFile(t, dir, "extra.jsonl", strings.Join([]string{
		`{"id":"x1","prompt":"only the fast tier","outcomes":{"` + sampleFast + `":{"score":1}}}`,
		`{"id":"x2","prompt":"a third model too","outcomes":{"` + sampleFast + `":{"score":0,"confidence":-0.5},"` + sampleStrong + `":{"score":1},"other":{"score":1}}}`,
		`{"id":"x3","messages":[{"role":"user","content":"a chat"}],"meta":{"subject":"chat"},"outcomes":{"` + sampleFast + `":{"score":1},"` + sampleStrong + `":{"score":0}}}`,
	}, "\n")+"\n")
	paths := []string{sampleLog, extra}
	for _, holdout := range []string{"0", "0.2"} {
		t.Run("with holdout "+holdout, func(t *testing.T) {
			model := filepath.Join(dir, "router-"+holdout+".json")
			args := []string{"train", "--data", strings.Join(paths, ","), "--fast", sampleFast, "--strong", sampleStrong, "--l2", "0.03", "--folds", "3", "--holdout", holdout, "-o", model}
			_, stderr, code := run(t, args...)
			if code != 0 {
				t.Fatalf("train exited %d: %s", code, stderr)
			}
			got, err := models.Load(model)
			if err != nil {
				t.Fatal(err)
			}

			tf := trainFlags{data: paths, fast: sampleFast, strong: sampleStrong, label: "strong-wins", seed: 1, l2: 0.03, folds: 3, bits: 18}
			label, err := tf.check("train", nil)
			if err != nil {
				t.Fatal(err)
			}
			set, err := loadLabelled(paths, sampleFast, sampleStrong, datasets.ReadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			frac, _ := strconv.ParseFloat(holdout, 64)
			train, held := splitHoldout(set.examples, tf.seed, frac)
			assignFolds(train, tf.seed+1, tf.folds)
			opts := tf.options(label)
			opts.Skipped = set.missing
			opts.Now = got.CreatedAt
			want, _, err := models.Train(train, held, opts)
			if err != nil {
				t.Fatal(err)
			}
			want.Training.Sources = paths
			if want.Training.SourceDigests, err = retrain.DigestFiles(paths); err != nil {
				t.Fatal(err)
			}
			want.Training.HoldoutShare = frac
			models.NameTopFeatures(want, train, 20)

			for _, a := range []*models.Artifact{got, want} {
				a.Version, a.Checksum = "", ""
			}
			g, _ := json.Marshal(got)
			w, _ := json.Marshal(want)
			if string(g) != string(w) {
				t.Errorf("train wrote\n%.400s\nwant\n%.400s", g, w)
			}
		})
	}
}

// TestModelShowTakesTheFileEveryWay: the file before or after the flags,
// or --model FILE as every other command takes it; two files, or none,
// are usage errors.
func TestModelShowTakesTheFileEveryWay(t *testing.T) {
	dir := t.TempDir()
	model := trainSample(t, dir)
	for _, args := range [][]string{
		{model}, {model, "--json"}, {"--json", model}, {"--model", model}, {"--model", model, "--json"}, {"--json", "--model", model},
	} {
		stdout, stderr, code := run(t, append([]string{"model", "show"}, args...)...)
		if code != 0 || !strings.Contains(stdout, "format") {
			t.Errorf("model show %v exited %d (stderr %q), stdout %.80q", args, code, stderr, stdout)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{model, "--model", filepath.Join(dir, "other.json")}, "model show got two files"},
		{[]string{model, filepath.Join(dir, "other.json")}, "unexpected argument"},
		{[]string{"--json"}, "model show needs the artifact file"},
	} {
		if _, stderr, code := run(t, append([]string{"model", "show"}, tc.args...)...); code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("model show %v exited %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}

// TestCheckTrainSize: the refusal counts in words a person would write and
// suggests fewer folds only where that would be enough.
func TestCheckTrainSize(t *testing.T) {
	for _, c := range []struct {
		n, folds  int
		want, not string
	}{
		{1, 3, "1 record to train on, and training needs at least 30", "--folds"},
		{19, 3, "19 records to train on", "--folds"},
		{20, 3, "lower --folds to 2", "or fewer"},
		{29, 3, "lower --folds to 2", "or fewer"},
		// It said "to 2", the fewest, whatever the --folds asked for.
		{600, 100, "lower --folds to 60 or fewer", ""},
		{15, 2, "needs at least 20", "--folds"},
	} {
		err := checkTrainSize(c.n, c.folds)
		if err == nil {
			t.Errorf("checkTrainSize(%d, %d) = nil, want a refusal", c.n, c.folds)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || c.not != "" && strings.Contains(err.Error(), c.not) {
			t.Errorf("checkTrainSize(%d, %d) = %q, want %q and not %q", c.n, c.folds, err, c.want, c.not)
		}
	}
	if err := checkTrainSize(30, 3); err != nil {
		t.Errorf("checkTrainSize(30, 3) = %v, want nil", err)
	}
}

// TestOutputFileCheckedFirst: train, retrain and calibrate save their
// artifact at the end of minutes of work on a large log; an -o that cannot
// be written is refused before anything is read (the model and data paths
// here do not exist, so an error about them would mean the command got
// that far).
func TestOutputFileCheckedFirst(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	model, data := filepath.Join(dir, "absent.json"), filepath.Join(dir, "absent.jsonl")
	for _, c := range []struct {
		out, want string
	}{
		{filepath.Join(dir, "no-such-folder", "r.json"), "no-such-folder does not exist; create it first"},
		{filepath.Join(file, "r.json"), "a-file is not a folder"},
		{dir, "it is a directory; name a file in it"},
	} {
		for _, args := range [][]string{
			{"train", "--data", data, "--fast", sampleFast, "--strong", sampleStrong},
			{"retrain", "--model", model, "--data", data},
			{"calibrate", "--model", model, "--data", data, "--target", "quality=0.9"},
		} {
			_, stderr, code := run(t, append(args, "-o", c.out)...)
			if code != 1 || !strings.Contains(stderr, c.want) || strings.Contains(stderr, "absent") {
				t.Errorf("%s -o %s: exit %d, stderr %q; want 1 and %q before anything is read", args[0], c.out, code, stderr, c.want)
			}
		}
	}
}

// TestEvalCVSkipsEmptyFolds: --cv K with K near or above the number of
// records leaves folds empty (folds are drawn by id hash); a router
// trained without an empty fold scores nothing, so none is trained, every
// record still gets its out-of-fold score, and stderr says how many folds
// were empty.
func TestEvalCVSkipsEmptyFolds(t *testing.T) {
	skipSlow(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "log.jsonl")
	if _, stderr, code := run(t, "synth", "--n", "60", "-o", log); code != 0 {
		t.Fatalf("synth: %s", stderr)
	}
	args := []string{"eval", "--data", log, "--fast", "synthetic/fast-small", "--strong", "synthetic/strong-large", "--l2", "0.03", "--json"}
	out, stderr, code := run(t, append(args, "--cv", "200")...)
	var rep struct {
		Router struct {
			N int `json:"n"`
		} `json:"router"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || rep.Router.N != 60 {
		t.Fatalf("eval --cv 200: exit %d, stdout %q, stderr %q; want every record scored", code, out, stderr)
	}
	var empty, used int
	if _, err := fmt.Sscanf(stderr[strings.Index(stderr, "records: ")+len("records: "):], "%d of the 200 folds hold no record (folds are drawn by id hash), so %d routers", &empty, &used); err != nil || empty+used != 200 || used > 60 {
		t.Errorf("stderr %q: %d empty and %d used folds (%v); want the count of each, adding up to 200", stderr, empty, used, err)
	}
	if _, stderr, _ := run(t, append(args, "--cv", "3")...); strings.Contains(stderr, "hold no record") {
		t.Errorf("--cv 3 on 60 records: stderr %q; want no empty folds", stderr)
	}
}

// TestExportLibsvmTakesTheFeatureFlags: export-libsvm builds the vectors
// the feature flags ask for (it once ignored them for the default recipe),
// writes the gain label's soft targets as they are (an integer cut them to
// 0), and refuses the fit's flags, which would do nothing there.
func TestExportLibsvmTakesTheFeatureFlags(t *testing.T) {
	dir := t.TempDir()
	export := func(extra ...string) (lines []string) {
		t.Helper()
		out := filepath.Join(dir, "x.svm")
		args := append([]string{"export-libsvm", "--data", sampleLog, "--fast", sampleFast, "--strong", sampleStrong, "-o", out}, extra...)
		if _, stderr, code := run(t, args...); code != 0 {
			t.Fatalf("%v: exit %d: %s", extra, code, stderr)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Split(strings.TrimSpace(string(b)), "\n")
	}
	maxIndex := 0
	for _, l := range export("--hash-bits", "10", "--word-ngrams", "1,1") {
		for _, f := range strings.Fields(l)[1:] {
			j, _ := strconv.Atoi(f[:strings.IndexByte(f, ':')])
			maxIndex = max(maxIndex, j)
		}
	}
	spec := features.DefaultSpec()
	spec.HashBits, spec.WordNgrams = 10, [2]int{1, 1}
	if maxIndex > spec.Dim() || maxIndex < 1<<9 {
		t.Errorf("largest index %d with --hash-bits 10, want at most the spec's %d dimensions (and most of them used)", maxIndex, spec.Dim())
	}
	soft := 0
	for _, l := range export("--label", "gain") {
		if y, _ := strconv.ParseFloat(strings.Fields(l)[0], 64); y > 0 && y < 1 {
			soft++
		}
	}
	if soft == 0 {
		t.Errorf("--label gain wrote no soft target in (0,1)")
	}
	if _, stderr, code := run(t, "export-libsvm", "--data", sampleLog, "--fast", sampleFast, "--strong", sampleStrong, "--scorer", "gain"); code != 2 || !strings.Contains(stderr, "-scorer") {
		t.Errorf("--scorer: exit %d, %q; want a usage error", code, stderr)
	}
}

// A log whose requests all have one label has nothing to rank: train says
// so as a "cannot route" line, once prefixed ("train: train: ..." before).
func TestTrainOneLabelSaysCannotRoute(t *testing.T) {
	recs, _, err := datasets.ReadFile(sampleLog, datasets.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "allhard.jsonl")
	var b strings.Builder
	for _, r := range recs[:300] {
		r.Outcomes[sampleFast] = datasets.Outcome{Score: datasets.Float(0)}
		r.Outcomes[sampleStrong] = datasets.Outcome{Score: datasets.Float(1)}
		line, _ := json.Marshal(r)
		b.Write(append(line, '\n'))
	}
	os.WriteFile(path, []byte(b.String()), 0o644)
	_, stderr, code := run(t, "train", "--data", path, "--fast", sampleFast, "--strong", sampleStrong, "-o", filepath.Join(t.TempDir(), "m.json"))
	if code != 1 || !strings.HasPrefix(stderr, "triage train: cannot route: all 300 examples have label 1: every request is hard") {
		t.Errorf("train on a log where the strong tier wins every request: exit %d, %q", code, stderr)
	}
}

// TestModelShowSaysWhatTheWeightsAreOn: the top features' weights are
// ScoreWeights, which "explain" shows too; the header names what they are
// on for each scorer (it called a gain or blend router's weights the
// label's log-odds).
func TestModelShowSaysWhatTheWeightsAreOn(t *testing.T) {
	// Trainings and report renders whose concurrency smaller tests
	// cover under -race: 3-7 s there, a fraction without (Makefile SLOW_CMD).
	skipSlow(t)
	dir := t.TempDir()
	raw, err := os.ReadFile(sampleLog)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(raw), "\n")
	log := writeFile(t, dir, "log.jsonl", strings.Join(lines[:200], ""))
	for _, tt := range []struct{ scorer, want string }{
		{"label", "weight on the label's log-odds,"},
		{"per-tier", "weight on the strong head's log-odds minus the fast head's,"},
		{"gain", "weight on the gain head's log-odds,"},
		{"blend", "weight on the mean of the gain head's log-odds and the strong head's minus the fast head's,"},
	} {
		t.Run(tt.scorer, func(t *testing.T) {
			model := filepath.Join(dir, tt.scorer+".json")
			_, stderr, code := run(t, "train", "--data", log, "--fast", sampleFast, "--strong", sampleStrong, "--scorer", tt.scorer,
				"--l2", "0.03", "--route-anyway", "-o", model)
			if code != 0 {
				t.Fatalf("train exited %d: %s", code, stderr)
			}
			out, stderr, code := run(t, "model", "show", model)
			if code != 0 {
				t.Fatalf("model show exited %d: %s", code, stderr)
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("model show of a %s router lacks %q:\n%s", tt.scorer, tt.want, out)
			}
		})
	}
}

// TestModelShowPolicyBands: a router whose thresholds are equal has no
// speculate band, and its confidence gate never applies; model show
// printed "speculate up to" the same value and "accept fast at confidence
// >= 0.80" all the same.
func TestModelShowPolicyBands(t *testing.T) {
	dir := t.TempDir()
	log := sampleHead(t, dir, 200)
	model := filepath.Join(dir, "router.json")
	if _, stderr, code := run(t, "train", "--data", log, "--fast", sampleFast, "--strong", sampleStrong, "--l2", "0.03", "--route-anyway", "-o", model); code != 0 {
		t.Fatalf("train exited %d: %s", code, stderr)
	}
	a, err := models.Load(model)
	if err != nil {
		t.Fatal(err)
	}
	if !(a.Policy.SpeculateAbove < a.Policy.EscalateAbove) {
		t.Fatalf("policy %+v, want a speculate band (the sample log has confidences)", a.Policy)
	}
	// The same router with the band closed.
	a.Policy.SpeculateAbove = a.Policy.EscalateAbove
	noBand := filepath.Join(dir, "no-band.json")
	if err := a.Save(noBand); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		model     string
		want, not []string
	}{
		{model, []string{"; speculate up to ", "a speculation keeps the fast answer at confidence >= 0.80"}, []string{"no speculate band"}},
		{noBand, []string{"; escalate above (no speculate band)"}, []string{"speculate up to", "confidence >="}},
	} {
		out, stderr, code := run(t, "model", "show", tt.model)
		if code != 0 {
			t.Fatalf("model show exited %d: %s", code, stderr)
		}
		var policy string
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "  policy ") {
				policy = l
			}
		}
		for _, w := range tt.want {
			if !strings.Contains(policy, w) {
				t.Errorf("model show %s: policy line %q lacks %q", filepath.Base(tt.model), policy, w)
			}
		}
		for _, n := range tt.not {
			if strings.Contains(policy, n) {
				t.Errorf("model show %s: policy line %q says %q", filepath.Base(tt.model), policy, n)
			}
		}
	}
}

// TestModelShowSaysWhetherMetaIsRead: train leaves the meta group out
// where the router ranks no better with it, and then a request's meta
// changes nothing; model show named neither case, so a user sending meta
// (a proxy key's) could not tell whether the router reads it.
func TestModelShowSaysWhetherMetaIsRead(t *testing.T) {
	dir := t.TempDir()
	log := sampleHead(t, dir, 200)
	model := filepath.Join(dir, "router.json")
	if _, stderr, code := run(t, "train", "--data", log, "--fast", sampleFast, "--strong", sampleStrong, "--l2", "0.03", "-o", model); code != 0 {
		t.Fatalf("train exited %d: %s", code, stderr)
	}
	a, err := models.Load(model)
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []bool{false, true} {
		a.Training.MetaOff = off
		path := filepath.Join(dir, fmt.Sprintf("meta-off-%v.json", off))
		if err := a.Save(path); err != nil {
			t.Fatal(err)
		}
		out, stderr, code := run(t, "model", "show", path)
		if code != 0 {
			t.Fatalf("model show exited %d: %s", code, stderr)
		}
		want := map[bool]string{false: ", meta on\n", true: ", meta off ("}[off]
		var features string
		for _, l := range strings.SplitAfter(out, "\n") {
			if strings.HasPrefix(l, "  features ") {
				features = l
			}
		}
		if !strings.Contains(features, want) {
			t.Errorf("meta_off %v: features line %q lacks %q", off, features, want)
		}
	}
}

// TestTrainSaysHowTheL2WasSet: train's summary line said "(given)" for
// an L2 strength cross-validation had chosen, whenever --scorer named a
// scorer: with --scorer gain and no --l2 the grid's 0.1 was "given",
// while model show said "(by CV)".
func TestTrainSaysHowTheL2WasSet(t *testing.T) {
	dir := t.TempDir()
	log := sampleHead(t, dir, 400)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--scorer", "gain"}, "(chosen by out-of-fold APGR)"},
		{[]string{"--scorer", "gain", "--l2", "0.03"}, "l2 0.03 (given)"},
	} {
		args := append([]string{"train", "--data", log, "--fast", sampleFast, "--strong", sampleStrong, "--hash-bits", "14", "-o", filepath.Join(dir, "r.json")}, tt.args...)
		_, stderr, code := run(t, args...)
		if code != 0 || !strings.Contains(stderr, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want it to say %q", tt.args, code, stderr, tt.want)
		}
	}
}

// TestArtifactOutputIsNotStdout: "-o -" means standard output for a log
// or an export, but a router artifact is saved to a file. train took it
// for a file named "-" (and said "wrote -"); the commands that save an
// artifact refuse it before any work.
func TestArtifactOutputIsNotStdout(t *testing.T) {
	log, err := filepath.Abs(sampleLog)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	model := trainSample(t, dir)
	t.Chdir(dir)
	for _, args := range [][]string{
		{"train", "--data", log, "--fast", sampleFast, "--strong", sampleStrong, "--l2", "0.03", "--folds", "3", "-o", "-"},
		{"train", "--data", log, "--tiers", sampleFast + "," + sampleStrong, "-o", "-"},
		{"calibrate", "--model", model, "--data", log, "--target", "strong-share=0.3", "-o", "-"},
		{"retrain", "--model", model, "--data", log, "--feedback", log, "-o", "-"},
	} {
		stdout, stderr, code := run(t, args...)
		if code != 2 || !strings.Contains(stderr, "-o - is standard output") || stdout != "" {
			t.Errorf("%s -o -: exit %d, stdout %q, stderr %q; want 2, nothing on stdout and the refusal", args[0], code, stdout, stderr)
		}
		if _, err := os.Stat(filepath.Join(dir, "-")); err == nil {
			t.Fatalf("%s -o - wrote a file named -", args[0])
		}
	}
}

// TestArtifactInputIsNotStdin: --model - is not standard input either.
// With no file named "-", the hint for a missing router said to make one
// with 'train ... -o -', which train refuses.
func TestArtifactInputIsNotStdin(t *testing.T) {
	log, err := filepath.Abs(sampleLog)
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	for _, args := range [][]string{
		{"score", "--model", "-", "--data", log},
		{"model", "show", "-"},
	} {
		_, stderr, code := run(t, args...)
		if code != 1 || !strings.Contains(stderr, "a router artifact is read from a file") || strings.Contains(stderr, "-o -") {
			t.Errorf("%v: exit %d, stderr %q; want 1 and that an artifact is read from a file", args, code, stderr)
		}
	}
}

// sampleHead writes the sample log's first n lines to dir/log.jsonl: a
// log small enough to train on quickly under -race.
func sampleHead(t *testing.T, dir string, n int) string {
	t.Helper()
	raw, err := os.ReadFile(sampleLog)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, dir, "log.jsonl", strings.Join(strings.SplitAfter(string(raw), "\n")[:n], ""))
}

// TestModelShowJSONGivesTheWeightsShape: 'model show --json' prints the
// header, each head's weights as their count and how many are set. It
// printed {"dim": 0, "non_zero": 0} for the heads it left out (a router
// without weights, to a script), and the difficulty head's weights whole.
func TestModelShowJSONGivesTheWeightsShape(t *testing.T) {
	skipSlow(t)
	dir := t.TempDir()
	log := sampleHead(t, dir, 400)
	for _, tc := range []struct {
		name  string
		args  []string
		heads func(h map[string]any) []any
	}{
		{"with a difficulty view", []string{"--fast", sampleFast, "--strong", sampleStrong, "--scorer", "per-tier", "--difficulty"}, func(h map[string]any) []any {
			d, _ := h["difficulty"].(map[string]any)
			return []any{h["weights"], h["fast_weights"], d["weights"]}
		}},
		{"with N tiers", []string{"--tiers", sampleFast + "," + sampleStrong}, func(h map[string]any) []any {
			var ws []any
			heads, _ := h["tier_heads"].([]any)
			for _, th := range heads {
				m, _ := th.(map[string]any)
				ws = append(ws, m["weights"])
			}
			return ws
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			model := filepath.Join(dir, "router.json")
			args := append([]string{"train", "--data", log, "--l2", "0.03", "--folds", "2", "--hash-bits", "14", "-o", model}, tc.args...)
			if _, stderr, code := run(t, args...); code != 0 {
				t.Fatalf("train exited %d: %s", code, stderr)
			}
			stdout, stderr, code := run(t, "model", "show", model, "--json")
			if code != 0 {
				t.Fatalf("model show --json exited %d: %s", code, stderr)
			}
			if strings.Contains(stdout, `"data"`) {
				t.Errorf("model show --json prints weights:\n%.300s", stdout)
			}
			var h map[string]any
			if err := json.Unmarshal([]byte(stdout), &h); err != nil {
				t.Fatal(err)
			}
			ws := tc.heads(h)
			if len(ws) < 2 {
				t.Fatalf("model show --json names %d heads' weights, want 2 or more:\n%s", len(ws), stdout)
			}
			// Every head has a weight per feature: 2^14 hashed n-grams,
			// the meta features and the numeric ones.
			for i, w := range ws {
				m, _ := w.(map[string]any)
				d, _ := m["dim"].(float64)
				nz, _ := m["non_zero"].(float64)
				if d < 1<<14 || nz <= 0 || nz > d {
					t.Errorf("head %d's weights are %v, want a dim of 2^14 or more and some non-zero", i, w)
				}
			}
		})
	}
}

// TestOneSidedLogSaysWherePairsComeFrom: a production log usually holds
// one model's outcome per request. train, eval and curves said "no record
// has scores for both" (curves without naming the log) and left it there;
// each now names the log and says how to get records both tiers scored.
func TestOneSidedLogSaysWherePairsComeFrom(t *testing.T) {
	dir := t.TempDir()
	model := serveModel(t, dir)
	var b strings.Builder
	for i := range 20 {
		m := sampleFast
		if i%2 == 1 {
			m = sampleStrong
		}
		fmt.Fprintf(&b, `{"id":"r%d","prompt":"question %d","outcomes":{%q:{"score":1}}}`+"\n", i, i, m)
	}
	log := writeFile(t, dir, "one-sided.jsonl", b.String())
	for _, args := range [][]string{
		{"train", "--data", log, "--fast", sampleFast, "--strong", sampleStrong, "-o", filepath.Join(dir, "new.json")},
		{"eval", "--cv", "5", "--data", log, "--fast", sampleFast, "--strong", sampleStrong},
		{"eval", "--model", model, "--data", log},
		{"curves", "--model", model, "--data", log, "-o", filepath.Join(dir, "report")},
		{"calibrate", "--model", model, "--data", log, "--target", "strong-share=0.3", "-o", filepath.Join(dir, "cal.json")},
	} {
		_, stderr, code := run(t, args...)
		for _, want := range []string{"no record of " + log + " has scores for both", "score a sample of these prompts on the other tier", "docs/loop.md"} {
			if code != 1 || !strings.Contains(stderr, want) {
				t.Errorf("%s: exit %d, stderr %q; want 1 and %q", args[0], code, stderr, want)
			}
		}
	}
}

// TestExportLibsvmNamesAMisspeltTier: export-libsvm on a log whose
// records all lack a tier (a misspelt --fast, a one-sided log) wrote an
// empty file, said "0 rows" and exited 0, where train names the tier, a
// close name and the log's models. It now refuses as train does, and
// writes nothing.
func TestExportLibsvmNamesAMisspeltTier(t *testing.T) {
	dir := t.TempDir()
	log := writeFile(t, dir, "log.jsonl", `{"id":"a","prompt":"p","outcomes":{"gpt-4":{"score":1},"mixtral":{"score":0}}}`+"\n"+
		`{"id":"b","prompt":"q","outcomes":{"mixtral":{"score":1}}}`+"\n")
	oneSided := writeFile(t, dir, "one-sided.jsonl", `{"id":"b","prompt":"q","outcomes":{"mixtral":{"score":1}}}`+"\n"+
		`{"id":"c","prompt":"r","outcomes":{"gpt-4":{"score":1}}}`+"\n")
	out := filepath.Join(dir, "x.svm")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--data", log, "--fast", "mixtrl", "--strong", "gpt-4"}, `--fast model "mixtrl" appears in no record of ` + log + `; did you mean "mixtral"?`},
		{[]string{"--data", oneSided, "--fast", "mixtral", "--strong", "gpt-4"}, "no record of " + oneSided + " has scores for both"},
	} {
		_, stderr, code := run(t, append(append([]string{"export-libsvm"}, c.args...), "-o", out)...)
		if code != 1 || !strings.Contains(stderr, c.want) {
			t.Errorf("export-libsvm %v: exit %d, stderr %q; want 1 and %q", c.args, code, stderr, c.want)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("export-libsvm %v wrote %s", c.args, out)
		}
	}
	// A log with one record of both tiers still exports it, and counts the other.
	_, stderr, code := run(t, "export-libsvm", "--data", log, "--fast", "mixtral", "--strong", "gpt-4", "-o", out)
	if code != 0 || !strings.Contains(stderr, "1 row (") || !strings.Contains(stderr, "1 record skipped without both tiers' scores") {
		t.Errorf("export-libsvm of a log with one pair: exit %d, stderr %q; want 0, one row and one skipped", code, stderr)
	}
}

package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/models"
	"github.com/triage-router/triage/models/report"
)

// trainThreeTiers trains a small router over threeTierLog's three tiers on
// log, into dir/r.json, and returns that path.
func trainThreeTiers(t *testing.T, dir, log string) string {
	t.Helper()
	model := filepath.Join(dir, "r.json")
	if _, stderr, code := run(t, "train", "--data", log, "--tiers", "cheap=0.1,chat=1,maths=3", "--folds", "2", "--l2", "0.01", "-o", model); code != 0 {
		t.Fatalf("train exited %d: %s", code, stderr)
	}
	return model
}

// threeTierLog writes a log where "cheap" answers the weather, "chat" the
// poems and "maths" the algebra, each other tier mostly failing there.
func threeTierLog(t *testing.T, dir string, n int) string {
	t.Helper()
	kinds := []struct {
		text string
		p    [3]float64
	}{
		{"tell me something nice about the weather today", [3]float64{0.8, 0.6, 0.7}},
		{"write a short poem about the sea and the moon", [3]float64{0.1, 0.9, 0.3}},
		{"solve this algebra equation for x quickly", [3]float64{0.1, 0.2, 0.9}},
	}
	state := uint64(11)
	rnd := func() float64 {
		state = state*6364136223846793005 + 1442695040888963407
		return float64(state>>11) / (1 << 53)
	}
	var b strings.Builder
	for i := range n {
		k := kinds[i%3]
		out := map[string]map[string]float64{}
		for j, m := range []string{"cheap", "chat", "maths"} {
			s := 0.0
			if rnd() < k.p[j] {
				s = 1
			}
			out[m] = map[string]float64{"score": s}
		}
		line, _ := json.Marshal(map[string]any{"id": fmt.Sprintf("t%d", i), "prompt": fmt.Sprintf("%s (case %d)", k.text, i), "outcomes": out})
		b.Write(line)
		b.WriteByte('\n')
	}
	return writeFile(t, dir, "tiers.jsonl", b.String())
}

func TestTiersTrainEvalCurvesCalibrate(t *testing.T) {
	// Trainings and report renders whose concurrency smaller tests
	// cover under -race: 3-7 s there, a fraction without (Makefile SLOW_CMD).
	skipSlow(t)
	dir := t.TempDir()
	log := threeTierLog(t, dir, 600)
	model := filepath.Join(dir, "tiers.json")
	// A fixed L2 keeps this quick under -race; the L2 search is
	// covered in models.
	tiers := []string{"--tier", "cheap=0.1", "--tier", "chat=1", "--tier", "maths=3"}
	_, stderr, code := run(t, append([]string{"train", "--data", log, "--folds", "3", "--l2", "0.01", "-o", model}, tiers...)...)
	if code != 0 {
		t.Fatalf("train exited %d: %s", code, stderr)
	}
	if strings.Contains(stderr, "every tier has the price") {
		t.Errorf("priced tiers drew the unpriced warning: %s", stderr)
	}
	a, err := models.Load(model)
	if err != nil {
		t.Fatal(err)
	}
	if !a.IsMultiTier() || len(a.TierHeads) != 3 || a.TierList[2] != (models.Tier{Name: "maths", Price: 3}) {
		t.Fatalf("artifact: scorer %q, %d heads, tiers %+v", a.Scorer, len(a.TierHeads), a.TierList)
	}

	t.Run("score, eval --model and model show read the N-tier artifact", func(t *testing.T) {
		stdout, stderr, code := run(t, "score", "--model", model, "--data", log)
		if code != 0 {
			t.Fatalf("score exited %d: %s", code, stderr)
		}
		first, _, _ := strings.Cut(stdout, "\n")
		var line struct {
			ID        string    `json:"id"`
			Model     string    `json:"model"`
			Decision  string    `json:"decision"`
			Predicted []float64 `json:"predicted"`
		}
		// t0 is a weather question: the cheap tier's.
		if err := json.Unmarshal([]byte(first), &line); err != nil || line.ID != "t0" || line.Model != "cheap" || line.Decision != "fast" || len(line.Predicted) != 3 {
			t.Errorf("score's first line %q (%v), want t0 on cheap, fast, 3 predictions", first, err)
		}
		stdout, stderr, code = run(t, "eval", "--model", model, "--data", log)
		if code != 0 || !strings.Contains(stdout, "oracle") || !strings.Contains(stdout, "AIQ") {
			t.Errorf("eval --model exited %d: %s%s", code, stdout, stderr)
		}
		// It was trained on the whole log (no --holdout): the warning
		// says how to measure it instead.
		if !strings.Contains(stderr, "are ones it was trained on") || !strings.Contains(stderr, "measure the recipe with eval --cv K") {
			t.Errorf("eval --model on the training log did not warn: %s", stderr)
		}
		// --json says so too: every one of the 600 is in-sample.
		stdout, _, _ = run(t, "eval", "--model", model, "--data", log, "--json")
		var fig struct {
			N        int  `json:"n"`
			InSample *int `json:"in_sample"`
		}
		if err := json.Unmarshal([]byte(stdout), &fig); err != nil || fig.InSample == nil || *fig.InSample != fig.N || fig.N != 600 {
			t.Errorf("eval --model --json on the training log: %v, n %d, in_sample %v; want 600 of 600", err, fig.N, fig.InSample)
		}
		if _, stderr, code = run(t, "eval", "--model", model, "--data", log, "--unseen"); code != 1 || !strings.Contains(stderr, "train fits on the whole log unless --holdout keeps a share out") || !strings.Contains(stderr, "eval --cv K") {
			t.Errorf("eval --model --unseen exited %d: %s", code, stderr)
		}
		// Two-tier flags are refused, not ignored.
		if _, stderr, code = run(t, "eval", "--model", model, "--data", log, "--fast", "cheap"); code != 2 || !strings.Contains(stderr, "--fast is for two-tier routers") {
			t.Errorf("eval --model --fast on an N-tier router exited %d: %s", code, stderr)
		}
		// retrain refuses an N-tier champion before it reads a log.
		if _, stderr, code = run(t, "retrain", "--model", model, "--data", log, "-o", filepath.Join(dir, "challenger.json")); code != 1 ||
			!strings.Contains(stderr, "triage retrain: an N-tier router: retrain compares two-tier routers only") || strings.Contains(stderr, "merged") {
			t.Errorf("retrain of an N-tier champion exited %d: %s", code, stderr)
		}
		stdout, stderr, code = run(t, "model", "show", model)
		if code != 0 || !strings.Contains(stdout, "3 tiers") || !strings.Contains(stdout, "tier 2       maths, price 3") {
			t.Errorf("model show exited %d: %s%s", code, stdout, stderr)
		}
	})

	t.Run("eval --cv routes above the best single tier", func(t *testing.T) {
		stdout, stderr, code := run(t, "eval", "--cv", "3", "--folds", "2", "--l2", "0.01", "--data", log, "--tiers", "cheap=0.1,chat=1,maths=3", "--json")
		if code != 0 {
			t.Fatalf("eval exited %d: %s", code, stderr)
		}
		var fig tierFig
		if err := json.Unmarshal([]byte(stdout), &fig); err != nil {
			t.Fatalf("eval --json printed %q: %v", stdout, err)
		}
		// Each kind's best tier succeeds 80-90% of the time (mean 0.867
		// by construction); the best single tier, chat, about 0.63.
		if fig.GainOverBest < 10 || fig.Oracle < fig.Lambda0.Quality || fig.AIQ == nil || fig.AIQ.Router <= fig.AIQ.Hull {
			t.Errorf("figures %+v (AIQ %+v): want the router 10+ points over the best single tier, under the oracle, and an AIQ over the hull's", fig, fig.AIQ)
		}
	})

	t.Run("curves writes the λ sweep and the reference lines", func(t *testing.T) {
		out := filepath.Join(dir, "report")
		stdout, stderr, code := run(t, "curves", "--model", model, "--data", log, "-o", out)
		if code != 0 {
			t.Fatalf("curves exited %d: %s", code, stderr)
		}
		if !strings.Contains(stdout, "AIQ") || !strings.Contains(stdout, "convex hull of single tiers") {
			t.Errorf("stdout %q lacks the AIQ line", stdout)
		}
		// tiers_metrics.json holds what stdout prints, at full precision.
		var ms []struct {
			Router   string   `json:"router"`
			Requests int      `json:"requests"`
			AIQ      *float64 `json:"aiq"`
			HullAIQ  *float64 `json:"hull_aiq"`
			Current  struct {
				Quality float64            `json:"quality"`
				Shares  map[string]float64 `json:"shares"`
			} `json:"current"`
			Singles []struct {
				Tier string `json:"tier"`
			} `json:"singles"`
		}
		if b, err := os.ReadFile(filepath.Join(out, "tiers_metrics.json")); err != nil || json.Unmarshal(b, &ms) != nil || len(ms) != 1 {
			t.Fatalf("tiers_metrics.json: %v, %d routers", err, len(ms))
		}
		m := ms[0]
		if m.AIQ == nil || m.HullAIQ == nil || !strings.Contains(stdout, fmt.Sprintf("AIQ %.2f, convex hull of single tiers %.2f", 100**m.AIQ, 100**m.HullAIQ)) ||
			!strings.Contains(stdout, fmt.Sprintf("quality %.2f, cost", 100*m.Current.Quality)) || m.Requests != 600 || len(m.Singles) != 3 || len(m.Current.Shares) != 3 {
			t.Errorf("tiers_metrics.json %+v does not hold the figures curves printed: %s", m, stdout)
		}
		b, err := os.ReadFile(filepath.Join(out, "tiers_curves.csv"))
		if err != nil {
			t.Fatal(err)
		}
		head, rest, _ := strings.Cut(string(b), "\n")
		if want := strings.Join(report.TierCurvesColumns, ",") + ",share:cheap,share:chat,share:maths"; head != want {
			t.Errorf("tiers_curves.csv header %q, want %q", head, want)
		}
		// The log has no latency: its columns are empty (a figure the data
		// cannot give), as curves.csv leaves them, not 0 ms.
		if row, _, _ := strings.Cut(rest, "\n"); strings.Split(row, ",")[6] != "" || strings.Split(row, ",")[7] != "" {
			t.Errorf("tiers_curves.csv row %q: want the latency columns empty", row)
		}
		ref, err := os.ReadFile(filepath.Join(out, "tiers_reference.csv"))
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range []string{"single,cheap", "single,maths", "oracle,oracle", "hull,"} {
			if !strings.Contains(string(ref), w) {
				t.Errorf("tiers_reference.csv lacks %q", w)
			}
		}
		for _, f := range []string{"index.html", "quality_vs_cost.svg", "quality_vs_cost.png", "tier_shares.png"} {
			if _, err := os.Stat(filepath.Join(out, f)); err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("curves and calibrate refuse cost logged for some requests only, and take a default for the rest", func(t *testing.T) {
		// Half the requests carry each tier's cost in USD, the other half
		// none. Filling those with the tiers' prices (0.1, 1, 3: another
		// unit) made "always cheap" cost their mean, 0.05005.
		b, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for i, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if i%2 == 0 {
				var rec map[string]any
				if err := json.Unmarshal([]byte(line), &rec); err != nil {
					t.Fatal(err)
				}
				for m, c := range map[string]float64{"cheap": 0.0001, "chat": 0.001, "maths": 0.003} {
					rec["outcomes"].(map[string]any)[m].(map[string]any)["cost_usd"] = c
				}
				nb, _ := json.Marshal(rec)
				line = string(nb)
			}
			lines = append(lines, line)
		}
		partial := writeFile(t, dir, "partial-cost.jsonl", strings.Join(lines, "\n")+"\n")
		out := filepath.Join(dir, "partial-report")
		for _, args := range [][]string{{"curves", "-o", out}, {"calibrate", "--target", "quality=1.2", "-o", filepath.Join(dir, "partial.json")}} {
			_, stderr, code := run(t, append(args, "--model", model, "--data", partial)...)
			if code == 0 || !strings.Contains(stderr, "has no cost_usd for model") || !strings.Contains(stderr, "--cost '") {
				t.Errorf("%s on a log with cost for half the requests: exit %d, stderr %q; want a refusal asking for --cost", args[0], code, stderr)
			}
		}
		stdout, stderr, code := run(t, "curves", "--model", model, "--data", partial, "--cost", "cheap=0.0001,chat=0.001,maths=0.003", "-o", out)
		if code != 0 {
			t.Fatalf("curves with --cost defaults exited %d: %s", code, stderr)
		}
		if !strings.Contains(stdout, "always cheap") || !strings.Contains(stdout, "cost 0.0001\n") {
			t.Errorf("curves with --cost defaults: %s; want always cheap at cost 0.0001", stdout)
		}
	})

	t.Run("calibrate finds the cheapest λ that keeps the quality", func(t *testing.T) {
		cal := filepath.Join(dir, "cal.json")
		stdout, stderr, code := run(t, "calibrate", "--model", model, "--data", log, "--target", "quality=1.2", "--json", "-o", cal)
		if code != 0 {
			t.Fatalf("calibrate exited %d: %s", code, stderr)
		}
		var res struct {
			Policy     models.TierPolicy `json:"tier_policy"`
			RelQuality float64           `json:"relative_quality"`
			Cost       float64           `json:"cost"`
		}
		if err := json.Unmarshal([]byte(stdout), &res); err != nil {
			t.Fatalf("calibrate --json printed %q: %v", stdout, err)
		}
		b, err := models.Load(cal)
		if err != nil {
			t.Fatal(err)
		}
		if res.RelQuality < 1.2 || res.Policy.Lambda <= 0 || *b.TierPolicy != res.Policy || b.Parent != a.Version {
			t.Errorf("calibrate: %+v; artifact policy %+v parent %s", res, *b.TierPolicy, b.Parent)
		}
		// The training figures of quality, cost and shares are at the
		// parent's λ = 0; the calibrated artifact must not show them as
		// its own, and keeps the figures no policy changes.
		for k := range b.Metrics {
			if k == "quality" || k == "cost" || strings.HasPrefix(k, "share_") {
				t.Errorf("the calibrated artifact keeps its parent's %s = %v, measured at λ = %v", k, b.Metrics[k], a.TierPolicy.Lambda)
			}
		}
		if _, ok := b.Metrics["oracle"]; !ok {
			t.Errorf("the calibrated artifact lost the oracle figure: %v", b.Metrics)
		}
		if _, ok := a.Metrics["quality"]; !ok {
			t.Errorf("the trained artifact has no quality figure to drop: %v", a.Metrics)
		}
		_, stderr, code = run(t, "calibrate", "--model", model, "--data", log, "--target", "strong-share=0.3", "-o", cal)
		if code == 0 || !strings.Contains(stderr, "no single strong tier") {
			t.Errorf("a strong-share target: exit %d, stderr %q; want a refusal naming the reason", code, stderr)
		}
	})
}

// TestUnpricedTiersWarn: tiers given without prices (all 0) make cost play
// no part, which a user listing tiers seldom means: train and eval --cv say
// so.
func TestUnpricedTiersWarn(t *testing.T) {
	dir := t.TempDir()
	log := threeTierLog(t, dir, 90)
	for _, args := range [][]string{
		{"train", "--data", log, "--tiers", "cheap,chat", "--folds", "2", "--l2", "0.01", "-o", filepath.Join(dir, "r.json")},
		{"eval", "--cv", "2", "--data", log, "--tiers", "cheap=1,chat=1", "--folds", "2", "--l2", "0.01"},
	} {
		_, stderr, _ := run(t, args...)
		if !strings.Contains(stderr, "warning: every tier has the price") || !strings.Contains(stderr, "--lambda changes nothing") {
			t.Errorf("%v: stderr %q; want the unpriced warning", args[:2], stderr)
		}
	}
}

func TestTiersUsage(t *testing.T) {
	dir := t.TempDir()
	log := threeTierLog(t, dir, 60)
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"tiers and fast/strong together", []string{"train", "--data", log, "--tier", "cheap", "--tier", "chat", "--fast", "cheap", "-o", "x"}, "exclude each other"},
		{"one tier", []string{"train", "--data", log, "--tier", "cheap", "-o", "x"}, "at least two"},
		{"falling prices", []string{"train", "--data", log, "--tiers", "chat=2,cheap=1", "-o", "x"}, "cheapest first"},
		{"a bad price", []string{"train", "--data", log, "--tier", "cheap=free", "-o", "x"}, "not a number"},
		{"an unknown tier", []string{"train", "--data", log, "--tiers", "cheap,nosuch", "-o", filepath.Join(dir, "x.json")}, `"nosuch" appears in no record`},
		// A flag for the other kind of router is refused, not ignored.
		{"a two-tier scorer for N tiers", []string{"train", "--data", log, "--tiers", "cheap,chat", "--scorer", "gain", "-o", "x"}, "--scorer is for two tiers"},
		{"a two-tier label for N tiers", []string{"train", "--data", log, "--tiers", "cheap,chat", "--label", "weak-fails", "-o", "x"}, "--label is for two tiers"},
		{"--vs-two-tier outside eval --cv", []string{"train", "--data", log, "--tiers", "cheap,chat", "--vs-two-tier", "-o", "x"}, "--vs-two-tier is for eval --cv"},
		{"an N-tier knob for two tiers", []string{"train", "--data", log, "--fast", "cheap", "--strong", "chat", "--lambda", "0.1", "-o", "x"}, "--lambda is for N-tier routers"},
		{"an N-tier knob in eval --cv", []string{"eval", "--cv", "3", "--data", log, "--fast", "cheap", "--strong", "chat", "--tier-calibration", "platt"}, "--tier-calibration is for N-tier routers"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := run(t, tt.args...)
			if code == 0 || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want a failure saying %q", code, stderr, tt.want)
			}
			// The message follows "triage CMD: " once, not twice.
			if cmd := tt.args[0]; strings.Contains(stderr, "triage "+cmd+": "+cmd) {
				t.Errorf("stderr %q names the command twice", stderr)
			}
		})
	}
}

// TestTiersRefuseTwoTierReplayFlags: curves and calibrate took
// --resamples, --seed and --accept-grid for an N-tier router and did
// nothing with them (its figures have no bootstrap intervals and no
// confidence grid); like every flag for the other kind of router, they
// are refused, not ignored.
func TestTiersRefuseTwoTierReplayFlags(t *testing.T) {
	skipSlow(t)
	dir := t.TempDir()
	log := threeTierLog(t, dir, 60)
	model := trainThreeTiers(t, dir, log)
	for _, flag := range [][]string{{"--resamples", "100"}, {"--resamples", "50"}, {"--seed", "3"}, {"--accept-grid", "5"}} {
		for _, args := range [][]string{
			{"curves", "--model", model, "--data", log, "-o", filepath.Join(dir, "report")},
			{"calibrate", "--model", model, "--data", log, "--target", "quality=0.5", "-o", filepath.Join(dir, "new.json")},
		} {
			_, stderr, code := run(t, append(args, flag...)...)
			if want := flag[0] + " applies to two-tier routers, and " + model + " is an N-tier one"; code != 2 || !strings.Contains(stderr, want) {
				t.Errorf("%s %s: exit %d, stderr %q; want 2 and %q", args[0], flag[0], code, stderr, want)
			}
		}
	}
	// calibrate's --meet reads the bootstrap intervals an N-tier
	// calibration has none of.
	_, stderr, code := run(t, "calibrate", "--model", model, "--data", log, "--target", "quality=0.5", "--meet", "ci95", "-o", filepath.Join(dir, "new.json"))
	if want := "--meet applies to two-tier routers, and " + model + " is an N-tier one"; code != 2 || !strings.Contains(stderr, want) {
		t.Errorf("calibrate --meet ci95: exit %d, stderr %q; want 2 and %q", code, stderr, want)
	}
	// A strong share has no meaning for N tiers: a usage error (it exited
	// 1, after reading the log and replaying it).
	if _, stderr, code := run(t, "calibrate", "--model", model, "--data", filepath.Join(dir, "absent.jsonl"), "--target", "strong-share=0.3", "-o", filepath.Join(dir, "new.json")); code != 2 || !strings.Contains(stderr, "has no single strong tier") {
		t.Errorf("calibrate --target strong-share on N tiers: exit %d, stderr %q; want 2 before the log is read", code, stderr)
	}
	// --grid is the λ grid's size: taken.
	if _, stderr, code := run(t, "curves", "--model", model, "--data", log, "--grid", "20", "-o", filepath.Join(dir, "report")); code != 0 {
		t.Errorf("curves --grid exited %d: %s", code, stderr)
	}
}

// TestTiersInSampleAdviceCanBeTaken: on an N-tier router's own training
// log, every command's in-sample warning gives advice an N-tier router can
// take. score's said to train with --holdout 0.2 when train refused it for
// N tiers; now train takes it, and the others name eval --cv K too.
func TestTiersInSampleAdviceCanBeTaken(t *testing.T) {
	skipSlow(t)
	dir := t.TempDir()
	log := threeTierLog(t, dir, 60)
	model := trainThreeTiers(t, dir, log)
	for _, args := range [][]string{
		{"score", "--model", model, "--data", log},
		{"eval", "--model", model, "--data", log},
		{"curves", "--model", model, "--data", log, "-o", filepath.Join(dir, "report")},
	} {
		_, stderr, code := run(t, args...)
		if code != 0 || !strings.Contains(stderr, "are ones it was trained on") || !strings.Contains(stderr, "train with --holdout 0.2") {
			t.Errorf("%s on the training log: exit %d, stderr %q; want the warning with --holdout 0.2", args[0], code, stderr)
		}
		if args[0] != "score" && !strings.Contains(stderr, "measure the recipe with eval --cv K") {
			t.Errorf("%s on the training log: stderr %q lacks eval --cv K", args[0], stderr)
		}
	}
	if _, stderr, code := run(t, "train", "--data", log, "--tiers", "cheap=0.1,chat=1,maths=3", "--folds", "2", "--l2", "0.01", "--holdout", "0.2", "-o", filepath.Join(dir, "x.json")); code != 0 {
		t.Errorf("train --tiers --holdout: exit %d, %q; want it taken (the advice gives it)", code, stderr)
	}
}

// curves compares routers of one kind: a two-tier and an N-tier router
// together are refused, in either order, before the log is read (the
// two-tier-first order failed after reading it, with a library message).
func TestCurvesRefusesMixedRouterKinds(t *testing.T) {
	dir := t.TempDir()
	log := threeTierLog(t, dir, 60)
	two, n := filepath.Join(dir, "two.json"), filepath.Join(dir, "n.json")
	for _, args := range [][]string{
		{"train", "--data", log, "--fast", "cheap", "--strong", "chat", "--folds", "2", "--l2", "0.01", "--route-anyway", "-o", two},
		{"train", "--data", log, "--tiers", "cheap,chat", "--folds", "2", "--l2", "0.01", "-o", n},
	} {
		if _, stderr, code := run(t, args...); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
	}
	missing := filepath.Join(dir, "no-log.jsonl")
	for _, order := range [][]string{{two, n}, {n, two}} {
		_, stderr, code := run(t, "curves", "--model", order[0], "--model", order[1], "--data", missing, "-o", filepath.Join(dir, "c"))
		if want := two + " is a two-tier router and " + n + " an N-tier one"; code != 2 || !strings.Contains(stderr, want) || strings.Contains(stderr, "no-log.jsonl") {
			t.Errorf("curves %s then %s: exit %d, %q; want 2 and %q before the log is read", order[0], order[1], code, stderr, want)
		}
	}
}

// TestCurvesTiersBillingPerRouter: curves bills a cancelled race call pro
// rata where the log has the time it ran, in full where it has none. A
// router whose tiers have no latency in the log switched the billing of
// every router listed after it to full: the second router's figures
// changed with the order of --model.
func TestCurvesTiersBillingPerRouter(t *testing.T) {
	// Trainings and report renders whose concurrency smaller tests
	// cover under -race: 3-7 s there, a fraction without (Makefile SLOW_CMD).
	skipSlow(t)
	dir := t.TempDir()
	var b strings.Builder
	texts := []string{"what is the capital of France", "write a sonnet about autumn", "prove the prime number theorem"}
	b2f := func(ok bool) float64 {
		if ok {
			return 1
		}
		return 0
	}
	for i := range 90 {
		k := i % 3
		// small and mid log no latency; large and xl do. large is best
		// on the first two kinds, where it races xl, which answers
		// first and cancels it.
		out := map[string]map[string]float64{
			"small": {"score": b2f(k == 0)}, "mid": {"score": b2f(k < 2)},
			"large": {"score": b2f(k < 2), "latency_ms": 1000}, "xl": {"score": b2f(k == 2 || i%2 == 0), "latency_ms": 200},
		}
		line, _ := json.Marshal(map[string]any{"id": fmt.Sprintf("b%d", i), "prompt": fmt.Sprintf("%s (case %d)", texts[k], i), "outcomes": out})
		b.Write(line)
		b.WriteByte('\n')
	}
	log := writeFile(t, dir, "four.jsonl", b.String())
	small, large := filepath.Join(dir, "small-mid.json"), filepath.Join(dir, "large-xl.json")
	for _, args := range [][]string{{"--tiers", "small=0.1,mid=1", "-o", small}, {"--tiers", "large=1,xl=3", "--race", "1", "-o", large}} {
		if _, stderr, code := run(t, append([]string{"train", "--data", log, "--folds", "3", "--l2", "0.01"}, args...)...); code != 0 {
			t.Fatalf("train %v exited %d: %s", args, code, stderr)
		}
	}
	// The line curves prints for the large-xl router.
	lineOf := func(models ...string) string {
		args := []string{"curves", "--data", log, "-o", filepath.Join(t.TempDir(), "report")}
		for _, m := range models {
			args = append(args, "--model", m)
		}
		stdout, stderr, code := run(t, args...)
		if code != 0 {
			t.Fatalf("curves %v exited %d: %s", models, code, stderr)
		}
		for _, l := range strings.Split(stdout, "\n") {
			if strings.HasPrefix(l, "large-xl:") {
				return l
			}
		}
		t.Fatalf("curves %v printed no large-xl line: %s", models, stdout)
		return ""
	}
	alone, after := lineOf(large), lineOf(small, large)
	if alone != after {
		t.Errorf("the large-xl router's figures changed when listed after small-mid:\n alone: %s\n after: %s", alone, after)
	}
	// It races at every λ, so no point costs as little as one call: AIQ
	// counts quality 0 there, and curves says so rather than let it read
	// as a router worse than mixing at random.
	stdout, _, _ := run(t, "curves", "--data", log, "--model", large, "-o", filepath.Join(t.TempDir(), "report"))
	if !strings.Contains(stdout, "note: the router's cheapest point costs") || !strings.Contains(stdout, "every point races (race 1)") {
		t.Errorf("curves of a racing router does not say its curve misses the cheap end: %s", stdout)
	}
	stdout, _, _ = run(t, "curves", "--data", log, "--model", small, "-o", filepath.Join(t.TempDir(), "report"))
	if strings.Contains(stdout, "note: the router's cheapest point") {
		t.Errorf("curves of a router reaching the cheapest tier's cost carries the note: %s", stdout)
	}
}

// TestCalibrateTiersWhenEveryTierScoresZero: on a log where no tier ever
// scores, quality relative to the best single tier is undefined. The
// two-tier calibrate says so (null in --json); the N-tier one printed
// "NaN of the best single tier", and its --json failed with "json:
// unsupported value: NaN" after the artifact was written.
func TestCalibrateTiersWhenEveryTierScoresZero(t *testing.T) {
	dir := t.TempDir()
	model := trainThreeTiers(t, dir, threeTierLog(t, dir, 90))
	var b strings.Builder
	for i := range 30 {
		fmt.Fprintf(&b, `{"id": "z%d", "prompt": "solve this algebra equation for x (case %d)", "outcomes": {"cheap": {"score": 0}, "chat": {"score": 0}, "maths": {"score": 0}}}`+"\n", i, i)
	}
	zeros := writeFile(t, dir, "zeros.jsonl", b.String())
	args := []string{"calibrate", "--model", model, "--data", zeros, "--target", "cost-per-1k=5000"}

	stdout, stderr, code := run(t, append(args, "--json", "-o", filepath.Join(dir, "a.json"))...)
	if code != 0 {
		t.Fatalf("calibrate --json exited %d: %s", code, stderr)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("calibrate --json printed %q: %v", stdout, err)
	}
	if v, ok := res["relative_quality"]; !ok || v != nil {
		t.Errorf("relative_quality = %v (present %v), want null", v, ok)
	}

	stdout, stderr, code = run(t, append(args, "-o", filepath.Join(dir, "b.json"))...)
	if code != 0 {
		t.Fatalf("calibrate exited %d: %s", code, stderr)
	}
	if strings.Contains(stdout, "NaN") || !strings.Contains(stdout, "undefined") {
		t.Errorf("calibrate printed %q; want the relative quality said to be undefined, not NaN", stdout)
	}
	// The shares as eval prints them: it printed "cheap 1.000 chat 0.000
	// maths 0.000", names and numbers run together.
	if !regexp.MustCompile(`\nshares: cheap [0-9.]+%, chat [0-9.]+%, maths [0-9.]+%\n`).MatchString(stdout) {
		t.Errorf("calibrate printed %q; want a shares line of percentages between commas", stdout)
	}
}

// TestCalibrateTiersInfeasibleWithoutLatency: when no policy meets the
// targets, the message names the closest one; on a log without latency
// it said "p95 latency 0 ms", a placeholder stated as a measurement (the
// two-tier calibrate says "latency unknown").
func TestCalibrateTiersInfeasibleWithoutLatency(t *testing.T) {
	dir := t.TempDir()
	log := threeTierLog(t, dir, 90)
	model := trainThreeTiers(t, dir, log)
	_, stderr, code := run(t, "calibrate", "--model", model, "--data", log, "--target", "quality=2", "-o", filepath.Join(dir, "c.json"))
	if code != 1 || !strings.Contains(stderr, "no policy meets quality=2") {
		t.Fatalf("exit %d, stderr %q; want the infeasible target named", code, stderr)
	}
	if strings.Contains(stderr, "0 ms") || !strings.Contains(stderr, "latency unknown") {
		t.Errorf("stderr %q; want the latency said to be unknown", stderr)
	}
}

// TestModelShowTiersSaysTheMetricsUnits: model show printed an N-tier
// router's training figures as the artifact holds them
// ("best_single=0.5741 ... quality=0.5937") with only share_K explained,
// while train had printed the same figures on 0-100 (57.41, 59.37).
func TestModelShowTiersSaysTheMetricsUnits(t *testing.T) {
	dir := t.TempDir()
	model := trainThreeTiers(t, dir, threeTierLog(t, dir, 90))
	stdout, stderr, code := run(t, "model", "show", model)
	if code != 0 {
		t.Fatalf("model show exited %d: %s", code, stderr)
	}
	if want := "(quality, best_single, oracle: mean score on [0,1], which train and eval print ×100;"; !strings.Contains(stdout, want) {
		t.Errorf("model show printed:\n%s\nwant the metrics' units, %q", stdout, want)
	}
}

// TestModelShowTiersRoundsItsPolicy: model show printed a calibrated
// N-tier policy at full precision ("λ=0.3374635661660398") where train,
// curves and calibrate print λ to four figures and the two-tier policy
// line gives thresholds to four decimals; --json keeps every digit.
func TestModelShowTiersRoundsItsPolicy(t *testing.T) {
	dir := t.TempDir()
	model := trainThreeTiers(t, dir, threeTierLog(t, dir, 90))
	a, err := models.Load(model)
	if err != nil {
		t.Fatal(err)
	}
	a.TierPolicy.Lambda, a.TierPolicy.Margin = 0.3374635661660398, 0.012345678
	if err := a.Save(model); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := run(t, "model", "show", model)
	if code != 0 {
		t.Fatalf("model show exited %d: %s", code, stderr)
	}
	if want := "policy       λ=0.3375 margin=0.01235 race="; !strings.Contains(stdout, want) {
		t.Errorf("model show printed:\n%s\nwant %q", stdout, want)
	}
	stdout, _, _ = run(t, "model", "show", "--json", model)
	if !strings.Contains(stdout, "0.3374635661660398") {
		t.Errorf("model show --json lost λ's digits:\n%s", stdout)
	}
}

// TestCalibrateTiersPrintsQualityOnCurvesScale: train, eval and curves
// print an N-tier router's quality on 0-100 (docs/design.md); calibrate
// printed the policy it chose on [0,1] ("quality 0.4964" where curves had
// just said 49.68), in its answer and in its infeasible message. Its cost
// per request is also given per 1,000 requests, the unit of the
// cost-per-1k target.
func TestCalibrateTiersPrintsQualityOnCurvesScale(t *testing.T) {
	dir := t.TempDir()
	log := threeTierLog(t, dir, 90)
	model := trainThreeTiers(t, dir, log)
	args := []string{"calibrate", "--model", model, "--data", log, "--target", "cost-per-1k=5000"}
	stdout, stderr, code := run(t, append(args, "--json", "-o", filepath.Join(dir, "a.json"))...)
	if code != 0 {
		t.Fatalf("calibrate --json exited %d: %s", code, stderr)
	}
	var res struct {
		Quality float64 `json:"quality"`
		Cost    float64 `json:"cost"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("calibrate --json printed %q: %v", stdout, err)
	}
	stdout, stderr, code = run(t, append(args, "-o", filepath.Join(dir, "b.json"))...)
	if code != 0 {
		t.Fatalf("calibrate exited %d: %s", code, stderr)
	}
	want := fmt.Sprintf("quality %.2f on 0-100 (", 100*res.Quality)
	if !strings.Contains(stdout, want) {
		t.Errorf("calibrate printed %q; want %q, the --json quality on the 0-100 scale curves prints", stdout, want)
	}
	if want := fmt.Sprintf("(%.4g price units per 1k requests", 1000*res.Cost); !strings.Contains(stdout, want) {
		t.Errorf("calibrate printed %q; want the cost per 1,000 requests, %q", stdout, want)
	}

	_, stderr, code = run(t, "calibrate", "--model", model, "--data", log, "--target", "quality=2", "-o", filepath.Join(dir, "c.json"))
	if code != 1 {
		t.Fatalf("calibrate --target quality=2 exited %d: %s", code, stderr)
	}
	m := regexp.MustCompile(`with quality ([0-9.]+) on 0-100 \(([0-9.]+) of the best single tier\)`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("stderr %q; want the closest point's quality on 0-100 and relative to the best single tier", stderr)
	}
	if q, _ := strconv.ParseFloat(m[1], 64); q <= 1 {
		t.Errorf("closest point's quality printed as %s; want it on 0-100 (stderr %q)", m[1], stderr)
	}
}

// TestCalibrateTiersLambdaIsARowOfTheCurves: calibrate --json gives the λ
// it chose in full precision, tiers_curves.csv gave it to 8 significant
// figures, so a user looking for calibrate's pick among the curves'
// rows matched it only approximately. The CSV's policy columns are now
// written as --json writes a number: calibrate's λ is found verbatim.
func TestCalibrateTiersLambdaIsARowOfTheCurves(t *testing.T) {
	skipSlow(t) // 1.5 s under -race: a curves run and two calibrations
	dir := t.TempDir()
	log := threeTierLog(t, dir, 90)
	model := trainThreeTiers(t, dir, log)
	out := filepath.Join(dir, "report")
	if _, stderr, code := run(t, "curves", "--model", model, "--data", log, "-o", out); code != 0 {
		t.Fatalf("curves exited %d: %s", code, stderr)
	}
	f, err := os.Open(filepath.Join(out, "tiers_curves.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) < 2 {
		t.Fatalf("tiers_curves.csv: %d rows, %v", len(rows), err)
	}
	lambdas := map[string]bool{}
	for _, row := range rows[1:] {
		lambdas[row[slices.Index(rows[0], "lambda")]] = true
	}
	for _, target := range []string{"cost-per-1k=5000", "cost-per-1k=900"} {
		stdout, stderr, code := run(t, "calibrate", "--model", model, "--data", log, "--target", target, "--json", "-o", filepath.Join(t.TempDir(), "c.json"))
		if code != 0 {
			t.Fatalf("calibrate --target %s exited %d: %s", target, code, stderr)
		}
		var res struct {
			Policy struct {
				Lambda json.RawMessage `json:"lambda"`
			} `json:"tier_policy"`
		}
		if err := json.Unmarshal([]byte(stdout), &res); err != nil {
			t.Fatalf("calibrate --json printed %q: %v", stdout, err)
		}
		if l := string(res.Policy.Lambda); !lambdas[l] {
			t.Errorf("calibrate --target %s chose λ %s, which is no row's lambda in tiers_curves.csv (%d rows)", target, l, len(rows)-1)
		}
	}
}

// The N-tier figures' share line lists the tiers with commas between
// them; it ended in one ("... c 15.9%,").
func TestPrintTierFiguresSharesLine(t *testing.T) {
	f := tierFig{Shares: []shareFig{{Name: "small", Share: 0.841}, {Name: "mid", Share: 0}, {Name: "large", Share: 0.159}}}
	var b bytes.Buffer
	if err := printTierFigures(&b, false, f); err != nil {
		t.Fatal(err)
	}
	const want = "share of requests per tier at λ=0: small 84.1%, mid 0.0%, large 15.9%\n"
	if !strings.Contains(b.String(), want) {
		t.Errorf("figures:\n%s\nwant the line %q", b.String(), want)
	}
	// A router that ties the best tier (every request to it) is +0.00
	// points from it; a rounding error's sign made it "-0.00".
	f.BestSingle.Name, f.GainOverBest = "large", -1e-12
	b.Reset()
	if err := printTierFigures(&b, false, f); err != nil {
		t.Fatal(err)
	}
	if want := "vs the best single tier (large): +0.00 points\n"; !strings.Contains(b.String(), want) {
		t.Errorf("figures:\n%s\nwant the line ending %q", b.String(), want)
	}
}

// TestCurvesTiersReportCarriesTheInSampleNote: curves on an N-tier
// router's own training log warned on stderr only; its report (the page
// and tiers_metrics.json, read later or by someone else) showed the
// flattering figures as if measured on new traffic, where the two-tier
// report carries the note.
func TestCurvesTiersReportCarriesTheInSampleNote(t *testing.T) {
	skipSlow(t)
	dir := t.TempDir()
	log := threeTierLog(t, dir, 90)
	model := trainThreeTiers(t, dir, log)
	rep := filepath.Join(dir, "report")
	_, stderr, code := run(t, "curves", "--model", model, "--data", log, "-o", rep)
	const note = "in-sample: 90 of the 90 requests measured are ones this router was trained on"
	if code != 0 || !strings.Contains(stderr, "warning: r: 90 of the 90 requests in --data are ones it was trained on") {
		t.Fatalf("curves exited %d; stderr %q lacks the warning", code, stderr)
	}
	page, err := os.ReadFile(filepath.Join(rep, "index.html"))
	if err != nil || !strings.Contains(string(page), note) {
		t.Errorf("index.html lacks the in-sample note (%v)", err)
	}
	var ms []struct {
		Notes    []string `json:"notes"`
		InSample *int     `json:"in_sample"`
	}
	b, err := os.ReadFile(filepath.Join(rep, "tiers_metrics.json"))
	if err != nil || json.Unmarshal(b, &ms) != nil || len(ms) != 1 {
		t.Fatalf("tiers_metrics.json: %v %s", err, b)
	}
	if !strings.Contains(strings.Join(ms[0].Notes, "\n"), note) {
		t.Errorf("tiers_metrics.json notes %q; want the in-sample note", ms[0].Notes)
	}
	// The count, for a script, as eval --json's in_sample; calibrate
	// --json's too.
	if ms[0].InSample == nil || *ms[0].InSample != 90 {
		t.Errorf("tiers_metrics.json in_sample %v, want 90", ms[0].InSample)
	}
	out, stderr, code := run(t, "calibrate", "--model", model, "--data", log, "--target", "quality=0.5", "--json", "-o", filepath.Join(dir, "new.json"))
	var res struct {
		InSample *int `json:"in_sample"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.InSample == nil || *res.InSample != 90 {
		t.Errorf("calibrate --json: exit %d, %q (stderr %q); want in_sample 90", code, out, stderr)
	}
}

// TestTierFiguresRoundTheirPolicy: eval of a calibrated N-tier router
// printed its λ as calibrate had solved it, "λ=0.340163076071652", in a
// table of four-figure numbers; calibrate prints the same policy as
// λ=0.3402, and the artifact and --json keep it whole.
func TestTierFiguresRoundTheirPolicy(t *testing.T) {
	var b strings.Builder
	f := tierFig{Policy: models.TierPolicy{Lambda: 0.340163076071652}}
	if err := printTierFigures(&b, false, f); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "router at λ=0.3402 margin=0 race=0") {
		t.Errorf("printed %q; want λ to four figures", b.String())
	}
}

// TestTiersHoldout: train --tiers refused --holdout, so an N-tier user
// could not train on one log and measure on its unseen share as the
// README tells a two-tier user to; they had to split the file by hand.
// With --holdout the router is fitted on the other ids only, the artifact
// records the share and seed, and eval --unseen measures exactly the ids
// the same hash holds out; without it nothing changes.
func TestTiersHoldout(t *testing.T) {
	dir := t.TempDir()
	const n = 200
	log := threeTierLog(t, dir, n)
	const seed, share = 7, 0.2
	held := 0
	for i := range n {
		if datasets.InHoldout(fmt.Sprintf("t%d", i), seed, share) {
			held++
		}
	}
	if held == 0 || held == n {
		t.Fatalf("%d of %d ids held out at share %v: the test needs some of each", held, n, share)
	}
	model := filepath.Join(dir, "held.json")
	stdout, stderr, code := run(t, "train", "--data", log, "--tiers", "cheap=0.1,chat=1,maths=3", "--folds", "2", "--l2", "0.01",
		"--holdout", fmt.Sprint(share), "--seed", fmt.Sprint(seed), "-o", model)
	if code != 0 {
		t.Fatalf("train --tiers --holdout exited %d: %s", code, stderr)
	}
	if want := fmt.Sprintf("%d records trained on 3 tiers, %d held out", n-held, held); !strings.Contains(stderr, want) {
		t.Errorf("train's summary %q lacks %q", stderr, want)
	}
	if want := fmt.Sprintf("held-out figures (%d records, 20%% of ids kept out of training", held); !strings.Contains(stdout, want) {
		t.Errorf("train's figures %q lack %q", stdout, want)
	}
	a, err := models.Load(model)
	if err != nil {
		t.Fatal(err)
	}
	if a.Training.HoldoutShare != share || a.Training.Seed != seed {
		t.Errorf("artifact records holdout %v, seed %d; want %v, %d", a.Training.HoldoutShare, a.Training.Seed, share, seed)
	}

	t.Run("eval --unseen measures the held-out ids only", func(t *testing.T) {
		stdout, stderr, code := run(t, "eval", "--model", model, "--data", log, "--unseen", "--json")
		var fig struct {
			N        int  `json:"n"`
			InSample *int `json:"in_sample"`
		}
		if err := json.Unmarshal([]byte(stdout), &fig); code != 0 || err != nil || fig.N != held || fig.InSample == nil || *fig.InSample != 0 {
			t.Fatalf("eval --unseen --json: exit %d, %v, n %d, in_sample %v; want n %d, in_sample 0 (%s)", code, err, fig.N, fig.InSample, held, stderr)
		}
		if want := fmt.Sprintf("measuring on the %d of %d requests", held, n); !strings.Contains(stderr, want) || strings.Contains(stderr, "it was trained on") {
			t.Errorf("eval --unseen stderr %q: want %q and no in-sample warning", stderr, want)
		}
	})
	t.Run("eval without --unseen warns and says how many --unseen keeps", func(t *testing.T) {
		_, stderr, code := run(t, "eval", "--model", model, "--data", log)
		want := fmt.Sprintf("%d of the %d requests in --data are ones it was trained on", n-held, n)
		if code != 0 || !strings.Contains(stderr, want) || !strings.Contains(stderr, fmt.Sprintf("pass --unseen to measure on the %d", held)) {
			t.Errorf("eval exited %d; stderr %q lacks %q and the --unseen advice", code, stderr, want)
		}
	})
	t.Run("without --holdout the whole log trains and --unseen leaves nothing", func(t *testing.T) {
		stdout, stderr, code := run(t, "train", "--data", log, "--tiers", "cheap=0.1,chat=1,maths=3", "--folds", "2", "--l2", "0.01", "-o", filepath.Join(dir, "all.json"))
		if code != 0 || !strings.Contains(stderr, fmt.Sprintf("%d records trained on 3 tiers, 0 held out", n)) || !strings.Contains(stdout, "out-of-fold figures") {
			t.Fatalf("train exited %d: %s%s", code, stdout, stderr)
		}
		all, err := models.Load(filepath.Join(dir, "all.json"))
		if err != nil {
			t.Fatal(err)
		}
		if all.Training.HoldoutShare != 0 {
			t.Errorf("artifact records holdout %v; want 0", all.Training.HoldoutShare)
		}
		_, stderr, code = run(t, "eval", "--model", filepath.Join(dir, "all.json"), "--data", log, "--unseen")
		if code != 1 || !strings.Contains(stderr, "--unseen leaves no request") || !strings.Contains(stderr, "train with --holdout 0.2") || !strings.Contains(stderr, "eval --cv K") {
			t.Errorf("eval --unseen on a router trained on the whole log: exit %d, %q", code, stderr)
		}
	})
	t.Run("a holdout outside [0,1) is refused", func(t *testing.T) {
		for _, h := range []string{"-0.1", "1"} {
			if _, stderr, code := run(t, "train", "--data", log, "--tiers", "cheap=0.1,chat=1,maths=3", "--holdout", h, "-o", filepath.Join(dir, "x.json")); code != 2 || !strings.Contains(stderr, "--holdout is") {
				t.Errorf("--holdout %s: exit %d, %q; want a usage error", h, code, stderr)
			}
		}
	})
}

// A served request's record has the score of the tier that ran (two on a
// race or an explored request). With --partial-records, train --tiers
// fits each head on the records with its tier's score, counts them per
// head and says how many were complete; by default it skips them.
func TestTiersTrainLearnsFromServedRecords(t *testing.T) {
	dir := t.TempDir()
	base := threeTierLog(t, dir, 90)
	names := []string{"cheap", "chat", "maths"}
	var b strings.Builder
	// 60 served records: 20 per tier with that tier's score alone, 10 of
	// them raced with the next tier up, and 5 with no score at all.
	for i := range 65 {
		out := map[string]map[string]float64{}
		if i < 60 {
			k := i % 3
			out[names[k]] = map[string]float64{"score": float64(i % 2)}
			if i < 30 && k < 2 {
				out[names[k+1]] = map[string]float64{"score": 1}
			}
		}
		line, _ := json.Marshal(map[string]any{"id": fmt.Sprintf("s%d", i), "prompt": fmt.Sprintf("write a short poem about the sea and the moon (served %d)", i), "outcomes": out})
		b.Write(line)
		b.WriteByte('\n')
	}
	export := writeFile(t, dir, "export.jsonl", b.String())
	// Raced: i < 30 with k < 2, 10 of cheap's (+chat) and 10 of chat's (+maths).
	cheap, chat, maths := 90+20, 90+20+10, 90+20+10
	model := filepath.Join(dir, "served.json")
	stdout, stderr, code := run(t, "train", "--data", base+","+export, "--tiers", "cheap=0.1,chat=1,maths=3", "--folds", "2", "--l2", "0.01", "--partial-records", "-o", model)
	if code != 0 {
		t.Fatalf("train exited %d: %s", code, stderr)
	}
	for _, want := range []string{
		"150 records trained on 3 tiers, 0 held out, 5 skipped without any tier's score",
		fmt.Sprintf("records per head (those with its tier's score): cheap %d, chat %d, maths %d; 90 of the 150 records have every tier's score", cheap, chat, maths),
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("train's stderr %q lacks %q", stderr, want)
		}
	}
	if !strings.Contains(stdout, "out-of-fold figures") {
		t.Errorf("train printed no figures: %s", stdout)
	}
	// 90 complete records chose L2 and give the figures: too few, said.
	if !strings.Contains(stderr, "the figures below rest on 90 records, too few to trust") || !strings.Contains(stderr, "add records with every tier's score") {
		t.Errorf("train's stderr %q does not warn that 90 complete records give the figures", stderr)
	}
	a, err := models.Load(model)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"cheap": cheap, "chat": chat, "maths": maths, "complete": 90}
	if a.Training.Records != 150 || !maps.Equal(a.Training.HeadRecords, want) {
		t.Errorf("artifact: %d records, head_records %v; want 150, %v", a.Training.Records, a.Training.HeadRecords, want)
	}

	t.Run("a held-out served record is neither trained on nor measured", func(t *testing.T) {
		const seed, share = 7, 0.3
		heldBase, heldServed := 0, 0
		for i := range 90 {
			if datasets.InHoldout(fmt.Sprintf("t%d", i), seed, share) {
				heldBase++
			}
		}
		for i := range 60 {
			if datasets.InHoldout(fmt.Sprintf("s%d", i), seed, share) {
				heldServed++
			}
		}
		if heldBase == 0 || heldServed == 0 {
			t.Fatalf("held out %d base and %d served records; the test needs some of each", heldBase, heldServed)
		}
		stdout, stderr, code := run(t, "train", "--data", base+","+export, "--tiers", "cheap=0.1,chat=1,maths=3", "--folds", "2", "--l2", "0.01", "--partial-records",
			"--holdout", fmt.Sprint(share), "--seed", fmt.Sprint(seed), "-o", filepath.Join(dir, "h.json"))
		want := fmt.Sprintf("%d records trained on 3 tiers, %d held out (and %d without every tier's score, neither trained on nor measured)", 150-heldBase-heldServed, heldBase, heldServed)
		if code != 0 || !strings.Contains(stderr, want) || !strings.Contains(stdout, fmt.Sprintf("held-out figures (%d records,", heldBase)) {
			t.Errorf("train --holdout exited %d; want %q in stderr and %d records measured:\n%s%s", code, want, heldBase, stdout, stderr)
		}
	})
	t.Run("by default the served records are left out", func(t *testing.T) {
		_, stderr, code := run(t, "train", "--data", base+","+export, "--tiers", "cheap=0.1,chat=1,maths=3", "--folds", "2", "--l2", "0.01", "-o", filepath.Join(dir, "c.json"))
		if code != 0 || !strings.Contains(stderr, "90 records trained on 3 tiers, 0 held out, 65 skipped without every tier's score") || strings.Contains(stderr, "records per head") {
			t.Errorf("train exited %d: %s", code, stderr)
		}
	})
	t.Run("eval refuses --partial-records", func(t *testing.T) {
		if _, stderr, code := run(t, "eval", "--cv", "2", "--data", base, "--tiers", "cheap=0.1,chat=1,maths=3", "--partial-records"); code != 2 || !strings.Contains(stderr, "--partial-records is for train") {
			t.Errorf("eval --cv --partial-records: exit %d, %q; want a usage error", code, stderr)
		}
	})
}

// TestTierReplayNamesAnAbsentTier: curves and calibrate on an N-tier
// router and a log of other models said only "no record has a score for
// every tier of the router", naming no log; as for two tiers, they now
// name the tier the log lacks, the log, and the models it does have.
func TestTierReplayNamesAnAbsentTier(t *testing.T) {
	dir := t.TempDir()
	model := trainThreeTiers(t, dir, threeTierLog(t, dir, 90))
	var b strings.Builder
	for i := range 30 {
		fmt.Fprintf(&b, `{"id": "o%d", "prompt": "question %d", "outcomes": {"cheap": {"score": 1}, "chatt": {"score": 1}, "maths": {"score": 0}}}`+"\n", i, i)
	}
	other := writeFile(t, dir, "other.jsonl", b.String())
	want := `the router's tier "chat" appears in no record of ` + other + `; did you mean "chatt"?; models that do: `
	for _, args := range [][]string{
		{"curves", "--model", model, "--data", other, "-o", filepath.Join(dir, "report")},
		{"calibrate", "--model", model, "--data", other, "--target", "quality=0.9", "-o", filepath.Join(dir, "c.json")},
	} {
		if _, stderr, code := run(t, args...); code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("%s: exit %d, stderr %q; want 1 and %q", args[0], code, stderr, want)
		}
	}
}

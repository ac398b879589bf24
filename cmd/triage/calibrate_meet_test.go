package main

import (
	"cmp"
	"encoding/json"
	"io"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/triage-router/triage/models/replay"
	"github.com/triage-router/triage/models/report"
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

// TestMeetCI95FindsTheCheapestPolicyOffTheFront: --meet ci95 promises
// the cheapest policy whose estimate and 95% interval's lower end meet
// the quality target. It walked only the front of the estimates (the
// policies no other beats on both cost and estimated quality), and the
// cheapest such policy can be off it: here a policy beaten on both
// estimates by cheaper ones has the only interval that holds.
//
// The log: 200 easy requests both tiers answer (fast first), 200 where
// the tiers disagree, alternating, the fast one right on 104 and the
// strong one on 96, and 200 hard ones only the strong tier answers (all
// escalate). Sending the easy ones fast and the rest strong scores
// exactly as always-strong on every resample: relative quality 1, with
// the interval [1, 1]. Sending some of the disagreeing ones fast too is
// cheaper and scores as well or better on the estimate, so those
// policies make the front, but their intervals reach below 1.
func TestMeetCI95FindsTheCheapestPolicyOffTheFront(t *testing.T) {
	skipSlow(t) // its check bootstraps every policy cheaper than the answer: 4 s under -race
	var reqs []replay.Request
	add := func(p, fast, strong float64) {
		reqs = append(reqs, replay.Request{PHard: p, FastScore: fast, StrongScore: strong,
			FastLatencyMS: 400, StrongLatencyMS: 1800, FastCostUSD: 0.0003, StrongCostUSD: 0.006})
	}
	for i := range 200 {
		add(0.1+float64(i)*1e-4, 1, 1)
	}
	for i := range 200 {
		if i%2 == 0 || i >= 192 {
			add(0.4+float64(i)*1e-4, 1, 0) // 104 of these
		} else {
			add(0.4+float64(i)*1e-4, 0, 1)
		}
	}
	for i := range 200 {
		add(0.8+float64(i)*1e-4, 0, 1)
	}
	rp, err := replay.NewReplayer(reqs, replay.BillProrata)
	if err != nil {
		t.Fatal(err)
	}
	const q = 1.0
	// 60 cuts of 600 requests: a threshold every 10, the boundary
	// between the easy and the disagreeing ones among them.
	g := rp.QuantileGrid(60, 10)
	opts := replay.SweepOptions{NoPercentiles: true}
	sweep := func(visit func(*replay.OperatingPoint)) { rp.SweepFunc(g, opts, visit) }
	strong := make([]float64, len(rp.Requests()))
	for i, r := range rp.Requests() {
		strong[i] = r.StrongScore
	}
	rf := &replayFlags{resamples: 100, seed: 1}
	meet := func(t *testing.T, band int) (*replay.Solver, replay.OperatingPoint, report.PointIntervals) {
		t.Helper()
		solver := &replay.Solver{Targets: []replay.Target{{Kind: replay.TargetQuality, Value: q}}, Minimize: replay.MinimizeCost,
			KeepFront: true, KeepCheapest: band}
		_, solver.StrongQuality = rp.Baselines()
		sweep(solver.Consider)
		got, iv, err := meetOnInterval(t.Context(), &Env{Stdout: io.Discard, Stderr: io.Discard}, rp, solver, sweep, strong, rf)
		if err != nil {
			t.Fatalf("meetOnInterval: %v", err)
		}
		return solver, got, iv
	}
	solver, got, iv := meet(t, meetBand)
	pts := rp.Sweep(g, opts)
	// The cheapest policy whose estimate and lower end meet the target,
	// found by bootstrapping every policy of the sweep.
	slices.SortStableFunc(pts, func(a, b replay.OperatingPoint) int { return cmp.Compare(a.CostPer1k, b.CostPer1k) })
	var want *replay.OperatingPoint
	for i := range pts {
		if pts[i].Quality/solver.StrongQuality < q {
			continue
		}
		if report.BootstrapPoint(rp.Outcomes(nil, pts[i].Policy), strong, rf.resamples, rf.seed).RelQuality.Lo >= q {
			want = &pts[i]
			break
		}
	}
	if want == nil {
		t.Fatal("the construction has no policy whose lower end meets the target")
	}
	if want.FastShare != 200.0/600 || want.EscalateShare != 400.0/600 {
		t.Errorf("the construction's answer sends %.3f fast and escalates %.3f, want the easy third fast and the rest strong", want.FastShare, want.EscalateShare)
	}
	for _, f := range solver.Front() {
		if f.Policy == want.Policy {
			t.Fatalf("the cheapest qualifying policy %+v is on the front; the construction does not test what it should", want.Policy)
		}
	}
	if got.CostPer1k != want.CostPer1k || got.Quality != want.Quality {
		t.Errorf("--meet ci95 chose %+v at $%.4f per 1k, quality %.4f; want %+v at $%.4f, quality %.4f, the cheapest whose lower end meets %g",
			got.Policy, got.CostPer1k, got.Quality, want.Policy, want.CostPer1k, want.Quality, q)
	}
	if iv.RelQuality.Lo < q {
		t.Errorf("the chosen policy's interval is [%.4f, %.4f], whose lower end is below %g", iv.RelQuality.Lo, iv.RelQuality.Hi, q)
	}
	t.Run("held a few candidates at a time, it finds the same policy", func(t *testing.T) {
		// The candidates tried before it: with bands of 2 the answer
		// is some sweeps away.
		before := 0
		for i := range pts {
			if pts[i].Quality/solver.StrongQuality >= q && pts[i].CostPer1k < want.CostPer1k {
				before++
			}
		}
		if before < 4 {
			t.Fatalf("%d candidates before the answer; the bands would not be crossed", before)
		}
		_, banded, _ := meet(t, 2)
		if banded.Policy != got.Policy {
			t.Errorf("in bands of 2: %+v, want %+v", banded.Policy, got.Policy)
		}
	})
}

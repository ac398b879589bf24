package models

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/triage-router/triage/classifier"
	"github.com/triage-router/triage/datasets/synth"
	"github.com/triage-router/triage/features"
	"github.com/triage-router/triage/internal/racetest"
)

func TestAPGRSE(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	n := 2000
	score, weak, strong, w := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range n {
		// Scores on a coarse grid, so there are many ties.
		score[i] = math.Round(rng.NormFloat64()*4) / 4
		weak[i] = float64(rng.IntN(2))
		strong[i] = float64(rng.IntN(2))
		if rng.Float64() < 0.4+0.1*score[i] {
			strong[i], weak[i] = 1, 0
		}
		w[i] = float64(1 + rng.IntN(3)) // whole weights, so a weighted row is that many copies
	}
	t.Run("the estimate is classifier.APGR's, ties as a random order", func(t *testing.T) {
		got, _ := apgrSE(score, weak, strong, nil)
		// classifier.APGR integrates the expected PGR curve over random
		// tie orders by the trapezoid rule, which is exactly the mean-u form.
		if want := classifier.APGR(score, weak, strong); math.Abs(got-want) > 1e-12 {
			t.Errorf("apgrSE = %.15f, classifier.APGR = %.15f", got, want)
		}
	})
	t.Run("a row of weight k counts as k copies of it", func(t *testing.T) {
		got, _ := apgrSE(score, weak, strong, w)
		var rs, rw, rst []float64
		for i := range n {
			for range int(w[i]) {
				rs, rw, rst = append(rs, score[i]), append(rw, weak[i]), append(rst, strong[i])
			}
		}
		if want := classifier.APGR(rs, rw, rst); math.Abs(got-want) > 1e-9 {
			t.Errorf("apgrSE = %.12f, classifier.APGR of the copies = %.12f", got, want)
		}
	})
	t.Run("the standard error is close to a bootstrap's", func(t *testing.T) {
		_, se := apgrSE(score, weak, strong, nil)
		reps := make([]float64, 400)
		bs, bw, bst := make([]float64, n), make([]float64, n), make([]float64, n)
		for r := range reps {
			for i := range n {
				j := rng.IntN(n)
				bs[i], bw[i], bst[i] = score[j], weak[j], strong[j]
			}
			reps[r] = classifier.APGR(bs, bw, bst)
		}
		var m, v float64
		for _, x := range reps {
			m += x
		}
		m /= float64(len(reps))
		for _, x := range reps {
			v += (x - m) * (x - m)
		}
		boot := math.Sqrt(v / float64(len(reps)-1))
		// 400 replicates estimate an SD to about ±4%; the delta method
		// ignores the ranks' own resampling noise, which is small here.
		if se < 0.8*boot || se > 1.25*boot {
			t.Errorf("delta-method SE %.4f, bootstrap SD %.4f", se, boot)
		}
	})
	t.Run("no gain makes it undefined", func(t *testing.T) {
		if a, se := apgrSE(score, weak, weak, nil); !math.IsNaN(a) || !math.IsNaN(se) {
			t.Errorf("apgrSE with strong = weak = (%v, %v), want NaN", a, se)
		}
	})
}

// TestSelectionNull checks the shuffle null the significance check uses:
// for one ranking its 95th percentile sits where a one-sided normal
// quantile of the APGR's standard error puts it, the best of ten unrelated
// rankings reaches clearly further, and the same seed gives the same
// figure.
func TestSelectionNull(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	n := 2000
	weak, strong := make([]float64, n), make([]float64, n)
	for i := range weak {
		weak[i] = b2f(rng.Float64() < 0.5)
		strong[i] = b2f(rng.Float64() < 0.7)
	}
	rankings := make([][]float64, 10)
	for k := range rankings {
		rankings[k] = make([]float64, n)
		for i := range rankings[k] {
			rankings[k][i] = rng.Float64()
		}
	}
	_, se := apgrSE(rankings[0], weak, strong, nil)
	one := selectionNull(rankings[:1], weak, strong, nil, 1)
	// The shuffles' own percentile of one ranking is near 0.5 + 1.645 se;
	// selectionNull widens its distance from 1/2 by cvPairInflation for
	// what fitted out-of-fold rankings add (these are drawn, not fitted).
	if lo, hi := 0.5+1.2*cvPairInflation*se, 0.5+2.1*cvPairInflation*se; one < lo || one > hi {
		t.Errorf("one ranking: null 95th percentile %.4f, want within [%.4f, %.4f] (0.5 + 1.645 √2 se = %.4f)", one, lo, hi, 0.5+1.645*cvPairInflation*se)
	}
	ten := selectionNull(rankings, weak, strong, nil, 1)
	t.Logf("se %.4f; null 95th percentile: one ranking %.4f, best of ten %.4f", se, one, ten)
	if ten < one+0.25*se {
		t.Errorf("best of ten rankings: null 95th percentile %.4f, want above one ranking's %.4f by at least a quarter of a standard error (%.4f)", ten, one, 0.25*se)
	}
	if again := selectionNull(rankings, weak, strong, nil, 1); again != ten {
		t.Errorf("same seed gave %.6f then %.6f", ten, again)
	}
	if got := selectionNull(rankings, weak, weak, nil, 1); !math.IsNaN(got) {
		t.Errorf("tiers that tie: %v, want NaN", got)
	}
}

func TestPickOneSE(t *testing.T) {
	grid := []float64{1e-1, 3e-2, 1e-2, 3e-3}
	var grids [numHeads][]float64
	for h := range grids {
		grids[h] = grid
	}
	// 1,000 requests whose gain a latent difficulty drives; a candidate's
	// out-of-fold scores are that difficulty plus noise of its own.
	rng := rand.New(rand.NewPCG(7, 8))
	n := 1000
	diff, weak, strong := make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range n {
		diff[i] = rng.NormFloat64()
		strong[i] = b2f(rng.Float64() < 0.8)
		weak[i] = b2f(rng.Float64() < 0.5-0.3*math.Tanh(diff[i]))
	}
	scores := func(noise float64, seed uint64) []float64 {
		r := rand.New(rand.NewPCG(seed, 1))
		s := make([]float64, n)
		for i := range s {
			s[i] = diff[i] + noise*r.NormFloat64()
		}
		return s
	}
	none := [numHeads]int{-1, -1, -1, -1}
	mk := func(scorer string, ks map[int]int, oof []float64) *candidate {
		c := &candidate{scorer: scorer, k: none, oof: oof}
		for h, k := range ks {
			c.k[h] = k
		}
		c.apgr, c.se = apgrSE(oof, weak, strong, nil)
		return c
	}
	best := scores(0.5, 1)
	nearly := make([]float64, n) // the best's ranking, a little shuffled
	r := rand.New(rand.NewPCG(5, 5))
	for i := range nearly {
		nearly[i] = best[i] + 0.05*r.NormFloat64()
	}
	tests := []struct {
		name  string
		cands []*candidate
		want  int
	}{
		{"the stronger penalty wins within one standard error of the best",
			[]*candidate{mk(ScorerGain, map[int]int{headGain: 0}, nearly), mk(ScorerGain, map[int]int{headGain: 2}, best)}, 0},
		{"the best wins when the simpler one is clearly worse",
			[]*candidate{mk(ScorerGain, map[int]int{headGain: 0}, scores(3, 2)), mk(ScorerGain, map[int]int{headGain: 2}, best)}, 1},
		{"fewer heads beat a stronger penalty",
			[]*candidate{mk(ScorerPerTier, map[int]int{headStrong: 0, headFast: 0}, nearly), mk(ScorerGain, map[int]int{headGain: 3}, nearly), mk(ScorerBlend, map[int]int{headStrong: 2, headFast: 2, headGain: 2}, best)}, 1},
		{"a clearly better per-tier router beats the one-head ones",
			[]*candidate{mk(ScorerGain, map[int]int{headGain: 0}, scores(3, 3)), mk(ScorerPerTier, map[int]int{headStrong: 2, headFast: 2}, best)}, 1},
		{"an undefined APGR never wins",
			[]*candidate{{scorer: ScorerGain, k: [numHeads]int{-1, -1, 0, -1}, oof: best, apgr: math.NaN(), se: math.NaN()}, mk(ScorerGain, map[int]int{headGain: 1}, best)}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := pickOneSE(tt.cands, grids, weak, strong, nil)
			if got != tt.cands[tt.want] {
				t.Errorf("picked %s (APGR %.4f), want %s (APGR %.4f)", got.describe(grids), got.apgr, tt.cands[tt.want].describe(grids), tt.cands[tt.want].apgr)
			}
		})
	}
	t.Run("the paired standard error is far below either APGR's own", func(t *testing.T) {
		_, se := apgrSE(best, weak, strong, nil)
		_, pse := pairedDiff(rankShares(best, nil), rankShares(nearly, nil), weak, strong, nil)
		if !(pse < se/4) {
			t.Errorf("paired SE %.4f, SE of one APGR %.4f", pse, se)
		}
	})
}

// noSignalExamples are synthetic prompts whose outcomes are coin flips:
// the fast tier right half the time, the strong tier 70%. (Its draws are
// those the figures in docs/quality.md item 5 were measured on.)
func noSignalExamples(n int, seed uint64) []Example {
	recs, _ := synth.Generate(synth.Options{N: n, Seed: seed})
	rng := rand.New(rand.NewPCG(seed, 99))
	ex := make([]Example, len(recs))
	for i, r := range recs {
		ex[i] = Example{ID: r.ID, Input: features.Input{Prompt: r.Prompt, Meta: r.Meta},
			Fast: float64(rng.IntN(2)), Strong: float64(b2i(rng.Float64() < 0.7)), Fold: i % 3}
	}
	return ex
}

// coinFlipExamples are synthetic prompts whose outcomes are coin flips,
// right with probability pFast and pStrong whatever the prompt says.
func coinFlipExamples(n int, seed uint64, pFast, pStrong float64) []Example {
	recs, _ := synth.Generate(synth.Options{N: n, Seed: seed})
	rng := rand.New(rand.NewPCG(seed, 99))
	ex := make([]Example, len(recs))
	for i, r := range recs {
		ex[i] = Example{ID: r.ID, Input: features.Input{Prompt: r.Prompt, Meta: r.Meta},
			Fast: float64(b2i(rng.Float64() < pFast)), Strong: float64(b2i(rng.Float64() < pStrong)), Fold: i % 3}
	}
	return ex
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestRandomOutcomesCannotRoute trains on logs whose outcomes are coin
// flips (issue 10: such a log gives a router that says it cannot route and
// does not hurt). Where the strong tier is better on average but nothing in
// a request says where, the router says it is not shown to beat random,
// keeps its ranking (noise, for `calibrate` and the curves) and escalates
// every request; where the tiers are equally good it cannot route at all
// and answers p_hard 1/2 for every request.
func TestRandomOutcomesCannotRoute(t *testing.T) {
	racetest.SkipSlow(t)
	opts := TrainOptions{
		Tiers:     Tiers{Fast: "f", Strong: "s"},
		Label:     func(f, s float64) float64 { return b2f(s > f) },
		LabelName: "strong-wins",
		Now:       time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC),
	}
	// route trains on train and routes test, checking that every request
	// escalates; it returns the p_hard and the test outcomes.
	route := func(t *testing.T, a *Artifact, test []Example) (p, y, weak, strong []float64) {
		t.Helper()
		r, err := NewRouter(a)
		if err != nil {
			t.Fatal(err)
		}
		p = make([]float64, len(test))
		weak, strong, y = make([]float64, len(test)), make([]float64, len(test)), make([]float64, len(test))
		for i, e := range test {
			res := r.Route(e.Input)
			p[i] = res.PHard
			weak[i], strong[i], y[i] = e.Fast, e.Strong, b2f(e.Strong > e.Fast)
			if res.Decision != Escalate {
				t.Fatalf("%s: decision %s, want every request escalated", e.ID, res.Decision)
			}
		}
		return p, y, weak, strong
	}
	t.Run("strong better on average: not shown to beat random, in one line; escalates all; within noise of random", func(t *testing.T) {
		a, rep, err := Train(noSignalExamples(1500, 21), nil, opts)
		if err != nil {
			t.Fatal(err)
		}
		if a.Signal == nil || a.Signal.Significant || rep.Signal.Significant || !(a.Signal.Lo <= 0.5) {
			t.Fatalf("signal %+v, want one whose interval holds 0.5", a.Signal)
		}
		if s := a.Signal.String(); !strings.HasPrefix(s, "not shown to beat random: ") || !strings.Contains(s, "escalates every request") || strings.Contains(s, "\n") {
			t.Errorf("signal line %q", s)
		}
		if a.Policy != NoRoutePolicy() {
			t.Errorf("policy %+v, want every request escalated", a.Policy)
		}
		p, y, weak, strong := route(t, a, noSignalExamples(1500, 22))
		if slices.Min(p) == slices.Max(p) {
			t.Errorf("p_hard %v for every request, want the ranking kept", p[0])
		}
		// 0.1 is four standard deviations of a random ranking's APGR on
		// 1,500 such requests (docs/quality.md item 5: 0.026).
		if got := Evaluate(p, y, weak, strong).APGR; math.Abs(got-0.5) > 0.1 {
			t.Errorf("APGR on fresh random outcomes %.3f, want within noise of 0.5", got)
		}
	})
	t.Run("tiers equally good: cannot route, p_hard 1/2 for all, exactly the random router's APGR", func(t *testing.T) {
		a, _, err := Train(coinFlipExamples(1500, 23, 0.6, 0.6), nil, opts)
		if err != nil {
			t.Fatal(err)
		}
		if a.Signal == nil || a.Signal.Routable {
			t.Fatalf("signal %+v, want not routable", a.Signal)
		}
		if s := a.Signal.String(); !strings.HasPrefix(s, "cannot route: the strong tier is not measurably better") || strings.Contains(s, "\n") {
			t.Errorf("signal line %q", s)
		}
		p, y, weak, strong := route(t, a, coinFlipExamples(1500, 24, 0.5, 0.7))
		for _, v := range p {
			if v != 0.5 {
				t.Fatalf("p_hard %v, want 0.5 for every request", v)
			}
		}
		if got := Evaluate(p, y, weak, strong).APGR; math.Abs(got-0.5) > 1e-12 {
			t.Errorf("APGR on fresh random outcomes %.6f, want 0.5", got)
		}
	})
	t.Run("with --route-anyway it keeps its ranking and routes on it", func(t *testing.T) {
		o := opts
		o.RouteWithoutSignal = true
		b, _, err := Train(noSignalExamples(1500, 21), nil, o)
		if err != nil {
			t.Fatal(err)
		}
		if !b.Signal.Routable || b.Policy == NoRoutePolicy() {
			t.Errorf("signal %+v policy %+v, want a routing router", b.Signal, b.Policy)
		}
		// Its line said the default policy escalates every request,
		// while it routed.
		if s := b.Signal.String(); !strings.HasPrefix(s, "routed anyway (--route-anyway): not shown to beat random: ") || strings.Contains(s, "escalates every request") {
			t.Errorf("signal line %q, want it to say the router routes anyway, and why it is not shown to beat random", s)
		}
	})
}

// TestCoinFlipLogsEscalateByDefault trains on twenty logs of coin-flip
// outcomes (fast right half the time, strong 70%, nothing in the request
// says which): whatever the signal check finds, the router must not send
// traffic to the fast tier by default. The chosen router's out-of-fold
// APGR lands above 0.5 on about half of such logs, by chance and because
// the selection takes the best of 16 candidates, so "routable" alone
// would switch routing on for noise; only a significant router (its 95%
// interval above 0.5 and its APGR above the selection's shuffle null,
// both widened by cvPairInflation: 5 of 500 such logs by chance) keeps
// the default thresholds.
func TestCoinFlipLogsEscalateByDefault(t *testing.T) {
	racetest.SkipSlow(t)
	const logs = 20
	var routable, routes int
	for seed := uint64(22); seed < 22+logs; seed++ {
		train := noSignalExamples(1500, seed)
		a, _, err := Train(train, nil, TrainOptions{
			Tiers: Tiers{Fast: "f", Strong: "s"}, Label: func(f, s float64) float64 { return b2f(s > f) },
			LabelName: "strong-wins", Now: time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC),
		})
		if err != nil {
			t.Fatal(err)
		}
		s := a.Signal
		t.Logf("seed %d: APGR %.3f [%.3f, %.3f] (null 95th percentile %.3f) routable %v significant %v", seed, s.APGR, s.Lo, s.Hi, s.NullQ95, s.Routable, s.Significant)
		if s.Routable {
			routable++
		}
		if s.Significant {
			routes++
			continue
		}
		if a.Policy != NoRoutePolicy() {
			t.Errorf("seed %d: not significant (%s) but policy %+v, want every request escalated", seed, s, a.Policy)
		}
		r, err := NewRouter(a)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range noSignalExamples(200, seed+1000) {
			if d := r.Route(e.Input).Decision; d != Escalate {
				t.Fatalf("seed %d: %s decided %s, want escalate", seed, e.ID, d)
			}
		}
	}
	t.Logf("%d of %d coin-flip logs gave a routable ranking, %d a significant one", routable, logs, routes)
	// One in twenty is what a 95% interval lets through by chance; three
	// would say the interval is too narrow for a chosen router.
	if routes > 2 {
		t.Errorf("%d of %d coin-flip logs switched routing on by default, want at most 2", routes, logs)
	}
	if routable-routes == 0 {
		t.Errorf("no coin-flip log gave a routable ranking that is not significant: the escalate-by-default path this test is for was not exercised")
	}
}

// TestOutOfFoldIntervalHoldsNoise trains one fixed head (no choice among
// candidates) on sixty coin-flip logs and checks the width of the
// signal's interval against how far the out-of-fold APGR really spreads
// across such logs. The delta-method error alone is too narrow, because
// each request's score was fitted on the outcomes of the requests it is
// ranked against (cvPairInflation); with the widening the interval holds
// 1/2 on all but a few logs, as a 95% interval should.
func TestOutOfFoldIntervalHoldsNoise(t *testing.T) {
	racetest.SkipSlow(t)
	const logs = 60
	var apgrs, ses []float64
	misses := 0
	for seed := uint64(1000); seed < 1000+logs; seed++ {
		a, _, err := Train(noSignalExamples(1500, seed), nil, TrainOptions{
			Tiers: Tiers{Fast: "f", Strong: "s"}, Label: func(f, s float64) float64 { return b2f(s > f) },
			LabelName: "strong-wins", Scorer: ScorerGain, L2: 0.1,
			Now: time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC),
		})
		if err != nil {
			t.Fatal(err)
		}
		s := a.Signal
		apgrs = append(apgrs, s.APGR)
		ses = append(ses, (s.Hi-s.Lo)/(2*z95))
		if !(s.Lo <= 0.5 && 0.5 <= s.Hi) {
			misses++
			t.Logf("seed %d: APGR %.3f, interval [%.3f, %.3f] misses 0.5", seed, s.APGR, s.Lo, s.Hi)
		}
	}
	var mean, se float64
	for i := range apgrs {
		mean += apgrs[i] / logs
		se += ses[i] / logs
	}
	var v float64
	for _, x := range apgrs {
		v += (x - mean) * (x - mean) / (logs - 1)
	}
	sd := math.Sqrt(v)
	t.Logf("out-of-fold APGR over %d coin-flip logs: mean %.4f, sd %.4f; the interval's standard error %.4f (delta method alone %.4f); %d intervals miss 0.5", logs, mean, sd, se, se/cvPairInflation, misses)
	if raw := se / cvPairInflation; sd < 1.1*raw {
		t.Errorf("spread %.4f within 1.1 times the delta-method error %.4f: the widening is not needed", sd, raw)
	}
	if sd > 1.15*se {
		t.Errorf("spread %.4f beyond 1.15 times the interval's standard error %.4f: the interval is too narrow", sd, se)
	}
	if misses > logs/10 {
		t.Errorf("%d of %d intervals miss 0.5, want at most %d", misses, logs, logs/10)
	}
}

func TestAutoChoosesAmongScorers(t *testing.T) {
	racetest.SkipSlow(t)
	recs, _ := synth.Generate(synth.Options{N: 1500, Seed: 5})
	ex := make([]Example, len(recs))
	for i, r := range recs {
		f, s, _ := r.Scores(synth.FastModel, synth.StrongModel)
		ex[i] = Example{ID: r.ID, Input: features.Input{Prompt: r.Prompt, Meta: r.Meta}, Fast: f, Strong: s, Fold: i % 3}
	}
	opts := TrainOptions{
		Tiers:     Tiers{Fast: synth.FastModel, Strong: synth.StrongModel},
		Label:     func(f, s float64) float64 { return b2f(s > f) },
		LabelName: "strong-wins",
		Now:       time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC),
	}
	a, rep, err := Train(ex[:1200], ex[1200:], opts)
	if err != nil {
		t.Fatal(err)
	}
	// 3 gain L2s, 9 per-tier pairs, 3 blends, and the chosen one again
	// without meta: the log's subjects vary.
	if got := len(rep.Candidates); got != 16 || !rep.MetaChecked {
		t.Errorf("%d candidates compared (meta checked %v), want 16", got, rep.MetaChecked)
	}
	chosen := 0
	best := math.Inf(-1)
	for _, c := range rep.Candidates {
		best = math.Max(best, c.APGR)
		if c.Chosen {
			chosen++
			if c.Scorer != a.Scorer {
				t.Errorf("chosen candidate is %q, the artifact's scorer %q", c.Scorer, a.Scorer)
			}
			if c.APGR < best-1 {
				t.Errorf("chosen APGR %.3f", c.APGR)
			}
		}
	}
	if chosen != 1 {
		t.Fatalf("%d candidates marked chosen, want 1", chosen)
	}
	if !a.Signal.Routable {
		t.Errorf("the synthetic log has signal, got %s", a.Signal)
	}
	if a.MetricsFrom != MetricsHeldOut || rep.OOF.N != 1200 {
		t.Errorf("metrics from %q, %d out-of-fold rows", a.MetricsFrom, rep.OOF.N)
	}
	// Every scorer the selection may pick saves, loads and explains.
	for _, sc := range []string{ScorerGain, ScorerBlend, ScorerPerTier} {
		t.Run(sc+" round-trips and its explanation adds up", func(t *testing.T) {
			o := opts
			o.Scorer, o.L2 = sc, 1e-2
			b, _, err := Train(ex[:1200], nil, o)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := b.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			c, err := Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			rb, _ := NewRouter(b)
			rc, _ := NewRouter(c)
			in := ex[1300].Input
			if x, y := rb.Score(in), rc.Score(in); x != y || x < -1 || x > 1 {
				t.Fatalf("scores %v and %v, want equal and in [-1, 1]", x, y)
			}
			// The contributions add up to the log-odds model show weighs
			// by, less the biases (see Explain).
			var v features.Vector
			ext, _ := features.NewExtractor(b.Features)
			ext.Extract(&v, in)
			lin := func(m *classifier.Model) float64 { return m.Logit(v.Idx, v.Val) - m.B }
			var want float64
			switch sc {
			case ScorerGain:
				want = lin(&rb.model)
			case ScorerPerTier:
				want = lin(&rb.model) - lin(rb.fast)
			case ScorerBlend:
				want = (lin(&rb.model) - lin(rb.fast) + lin(rb.gain)) / 2
			}
			var sum float64
			for _, e := range rb.Explain(in, 0) {
				sum += e.Contribution
			}
			if math.Abs(sum-want) > 1e-9 {
				t.Errorf("contributions sum to %v, want %v", sum, want)
			}
		})
	}
}

func TestCalibrationKeepsTheOrder(t *testing.T) {
	// Scores that rank the gain well but whose label runs the other way:
	// Platt's slope comes out negative, and a calibration that turned the
	// order round would undo the ranking.
	n := 600
	z, y, w := make([]float64, n), make([]float64, n), make([]float64, n)
	folds := make([]int, n)
	for i := range n {
		z[i] = float64(i) / float64(n)
		y[i] = b2f(i%3 == 0 && i < n/2)
		w[i] = 1
		folds[i] = i % 5
	}
	cal, name, err := chooseCalibration(z, y, w, folds, 5)
	if err != nil {
		t.Fatal(err)
	}
	ps := make([]float64, n)
	for i := range z {
		ps[i] = cal.Apply(z[i])
	}
	if !sort.Float64sAreSorted(ps) {
		t.Errorf("%s calibration reverses the order of the scores", name)
	}
}

func TestMetaKeptOnlyWhereItRanksBetter(t *testing.T) {
	racetest.SkipSlow(t)
	// 1,200 requests; the text says nothing. In one log the subject decides
	// whether the strong tier gains; in the other the tenant is noise and
	// the gain follows the prompt's length.
	build := func(informative bool) []Example {
		rng := rand.New(rand.NewPCG(3, 4))
		ex := make([]Example, 1200)
		for i := range ex {
			words := 5 + rng.IntN(40)
			meta := fmt.Sprintf("s%d", rng.IntN(8))
			hard := meta < "s3"
			if !informative {
				meta = fmt.Sprintf("t%d", rng.IntN(40))
				hard = words > 30
			}
			fast := 1.0
			if hard && rng.Float64() < 0.8 || rng.Float64() < 0.1 {
				fast = 0
			}
			ex[i] = Example{ID: fmt.Sprintf("r%d", i), Input: features.Input{Prompt: strings.Repeat("lorem ipsum ", words/2), Meta: map[string]string{"k": meta}},
				Fast: fast, Strong: 1, Fold: i % 3}
		}
		return ex
	}
	for _, tc := range []struct {
		name        string
		informative bool
		wantNoMeta  bool
	}{
		{"meta that decides the gain is kept", true, false},
		{"meta that is noise is left out", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, rep, err := Train(build(tc.informative), nil, TrainOptions{
				Tiers: Tiers{Fast: "f", Strong: "s"}, Label: func(f, s float64) float64 { return b2f(s > f) },
				LabelName: "strong-wins", Now: time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC),
			})
			if err != nil {
				t.Fatal(err)
			}
			if !rep.MetaChecked {
				t.Fatal("meta varies but was not checked")
			}
			if rep.NoMeta != tc.wantNoMeta || a.Training.MetaOff != tc.wantNoMeta {
				t.Errorf("no meta %v (artifact %v), want %v; candidates %+v", rep.NoMeta, a.Training.MetaOff, tc.wantNoMeta, rep.Candidates)
			}
			if tc.wantNoMeta {
				// A router without meta has no weight on any meta slot.
				for j := a.Features.MetaBase(); j < a.Features.Dim(); j++ {
					if a.ScoreWeights()[j] != 0 {
						t.Fatalf("meta slot %d has weight %v", j, a.ScoreWeights()[j])
					}
				}
			}
		})
	}
}

// describe is the candidate in one line, for test failures.
func (c *candidate) describe(grids [numHeads][]float64) string {
	s := c.scorer
	for h, k := range c.k {
		if k >= 0 {
			s += fmt.Sprintf(" %s l2 %g", headNames[h], grids[h][k])
		}
	}
	return s
}

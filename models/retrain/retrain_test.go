package retrain

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/triage-router/triage/classifier"
	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/datasets/synth"
	"github.com/triage-router/triage/features"
	"github.com/triage-router/triage/internal/racetest"
	"github.com/triage-router/triage/models"
)

func TestWeightedAPGR(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	n := 300
	score, weak, strong := make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range score {
		// Few distinct scores, so ties are exercised.
		score[i] = float64(r.IntN(7)) / 7
		weak[i] = float64(r.IntN(2))
		strong[i] = math.Max(weak[i], float64(r.IntN(2)))
	}
	const tol = 1e-12 // same sums in a different order
	t.Run("without weights it is classifier.APGR", func(t *testing.T) {
		got, want := WeightedAPGR(score, weak, strong, nil), classifier.APGR(score, weak, strong)
		if math.Abs(got-want) > tol {
			t.Errorf("got %v, want %v", got, want)
		}
	})
	t.Run("an integer weight counts like that many copies of the request", func(t *testing.T) {
		w := make([]float64, n)
		var s2, w2, st2 []float64
		for i := range w {
			w[i] = float64(1 + r.IntN(3))
			for range int(w[i]) {
				s2, w2, st2 = append(s2, score[i]), append(w2, weak[i]), append(st2, strong[i])
			}
		}
		got, want := WeightedAPGR(score, weak, strong, w), classifier.APGR(s2, w2, st2)
		if math.Abs(got-want) > tol {
			t.Errorf("got %v, want %v (the replicated sample)", got, want)
		}
	})
	t.Run("equal tiers make it undefined", func(t *testing.T) {
		if got := WeightedAPGR([]float64{1, 0}, []float64{1, 0}, []float64{1, 0}, nil); !math.IsNaN(got) {
			t.Errorf("got %v, want NaN", got)
		}
	})
}

// rankingCase returns held-out data where good ranks the hard requests
// first and noise does not.
func rankingCase(n int, seed uint64) (good, noise, y, weak, strong []float64) {
	r := rand.New(rand.NewPCG(seed, 9))
	good, noise = make([]float64, n), make([]float64, n)
	y, weak, strong = make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range good {
		hard := r.Float64()
		weak[i] = b2f(r.Float64() > hard)
		strong[i] = math.Max(weak[i], b2f(r.Float64() > hard/3))
		y[i] = b2f(strong[i] > weak[i])
		good[i] = 0.1 + 0.8*hard
		noise[i] = 0.1 + 0.8*r.Float64()
	}
	return
}

func TestCompare(t *testing.T) {
	good, noise, y, weak, strong := rankingCase(600, 3)
	tests := []struct {
		name             string
		champ, chall     []float64
		metric           Metric
		margin           float64
		wantPromote      bool
		wantVerdictWords string
	}{
		{"a better challenger is promoted on apgr", noise, good, MetricAPGR, 0.01, true, "better by"},
		{"a worse challenger is refused on apgr", good, noise, MetricAPGR, 0.01, false, "more than the margin"},
		{"a worse challenger is refused on log loss, where lower is better", good, noise, MetricLogLoss, 0.01, false, "more than the margin"},
		{"a better challenger is promoted on log loss", noise, good, MetricLogLoss, 0.01, true, "better by"},
		{"a worse challenger is refused on auc", good, noise, MetricAUC, 0.01, false, "more than the margin"},
		{"the same router is promoted at margin 0", good, good, MetricAPGR, 0, true, "better by 0.0000"},
		{"a huge margin lets a worse challenger through", good, noise, MetricAPGR, 1, true, "worse by"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Compare(tt.champ, tt.chall, y, weak, strong, nil, CompareOptions{Metric: tt.metric, Margin: tt.margin, Bootstrap: BootstrapOptions{Resamples: 200}})
			if err != nil {
				t.Fatal(err)
			}
			if c.Promote != tt.wantPromote {
				t.Errorf("promote = %v, want %v (%s)", c.Promote, tt.wantPromote, c.Verdict)
			}
			if !strings.Contains(c.Verdict, tt.wantVerdictWords) {
				t.Errorf("verdict %q, want it to say %q", c.Verdict, tt.wantVerdictWords)
			}
			for _, mc := range c.Metrics {
				for _, iv := range []Interval{mc.Champion, mc.Challenger, mc.Gain} {
					if !(iv.Lo <= iv.Estimate && iv.Estimate <= iv.Hi) {
						t.Errorf("%s: interval %v does not contain its estimate", mc.Metric, iv)
					}
				}
			}
		})
	}
	t.Run("the same seed gives the same intervals", func(t *testing.T) {
		opts := CompareOptions{Bootstrap: BootstrapOptions{Resamples: 100, Seed: 7}}
		a, _ := Compare(good, noise, y, weak, strong, nil, opts)
		b, _ := Compare(good, noise, y, weak, strong, nil, opts)
		if a.Of(MetricAPGR) != b.Of(MetricAPGR) {
			t.Errorf("%+v != %+v", a.Of(MetricAPGR), b.Of(MetricAPGR))
		}
	})
	t.Run("the paired gain interval is narrower than either router's", func(t *testing.T) {
		// Both routers see the same resamples, so the requests' shared
		// difficulty cancels in the gain.
		c, _ := Compare(good, good, y, weak, strong, nil, CompareOptions{Bootstrap: BootstrapOptions{Resamples: 100}})
		g := c.Of(MetricAPGR)
		if g.Gain.Hi-g.Gain.Lo > 1e-12 || g.Champion.Hi-g.Champion.Lo < 0.01 {
			t.Errorf("identical routers: gain %v, champion %v; want a zero-width gain", g.Gain, g.Champion)
		}
	})
	t.Run("no held-out requests is an error", func(t *testing.T) {
		if _, err := Compare(nil, nil, nil, nil, nil, nil, CompareOptions{}); err != ErrNoHeldOut {
			t.Errorf("err = %v, want ErrNoHeldOut", err)
		}
	})
}

func rec(id string, ts int, d *datasets.Decision, outcomes map[string]datasets.Outcome) datasets.Record {
	r := datasets.Record{ID: id, Prompt: "prompt " + id, Outcomes: outcomes, Decision: d}
	if ts > 0 {
		r.TS = time.Unix(int64(ts), 0).UTC()
	}
	return r
}

func score(s float64) datasets.Outcome { return datasets.Outcome{Score: datasets.Float(s)} }

func TestMergeRecords(t *testing.T) {
	routed := &datasets.Decision{Kind: "fast", PHard: 0.2, ModelVersion: "v1", Propensity: 0.98}
	later := &datasets.Decision{Kind: "escalate", PHard: 0.9, ModelVersion: "v2", Propensity: 1}
	t.Run("outcomes for one id from two exports are unioned by model", func(t *testing.T) {
		a := []datasets.Record{rec("r1", 10, routed, map[string]datasets.Outcome{"fast": score(1)})}
		b := []datasets.Record{rec("r1", 20, nil, map[string]datasets.Outcome{"strong": score(0)})}
		got, st := MergeRecords(a, b)
		if len(got) != 1 || st.Duplicates != 1 || st.Conflicts != 0 {
			t.Fatalf("got %d records, stats %+v; want 1 record, 1 duplicate, 0 conflicts", len(got), st)
		}
		if f, s, ok := got[0].Scores("fast", "strong"); !ok || f != 1 || s != 0 {
			t.Errorf("scores %v %v %v, want 1 0 true", f, s, ok)
		}
		if got[0].Decision == nil || got[0].Decision.ModelVersion != "v1" || !got[0].TS.Equal(time.Unix(10, 0)) {
			t.Errorf("decision %+v at %v, want the routing server's (v1 at t=10)", got[0].Decision, got[0].TS)
		}
	})
	t.Run("the latest decision wins, as on one server", func(t *testing.T) {
		got, _ := MergeRecords([]datasets.Record{rec("r1", 30, later, nil)}, []datasets.Record{rec("r1", 10, routed, nil)})
		if got[0].Decision.ModelVersion != "v2" {
			t.Errorf("decision %+v, want v2 (t=30)", got[0].Decision)
		}
	})
	t.Run("at an equal time the later source's decision wins, as its outcomes do", func(t *testing.T) {
		// The first file's was kept, while a conflicting outcome of the
		// same two copies took the later file's.
		got, _ := MergeRecords([]datasets.Record{rec("r1", 30, routed, map[string]datasets.Outcome{"fast": score(1)})},
			[]datasets.Record{rec("r1", 30, later, map[string]datasets.Outcome{"fast": score(0)})})
		if got[0].Decision.ModelVersion != "v2" || *got[0].Outcomes["fast"].Score != 0 {
			t.Errorf("decision %+v, fast score %v; want the later source's (v2, 0)", got[0].Decision, *got[0].Outcomes["fast"].Score)
		}
	})
	t.Run("an outcome seen twice is merged field by field", func(t *testing.T) {
		lat := datasets.Outcome{LatencyMS: datasets.Float(120), Confidence: datasets.Float(-0.3)}
		got, st := MergeRecords([]datasets.Record{rec("r1", 1, nil, map[string]datasets.Outcome{"fast": lat})},
			[]datasets.Record{rec("r1", 1, nil, map[string]datasets.Outcome{"fast": score(1)})})
		o := got[0].Outcomes["fast"]
		if o.Score == nil || *o.Score != 1 || o.LatencyMS == nil || *o.LatencyMS != 120 || o.Confidence == nil || st.Conflicts != 0 {
			t.Errorf("outcome %+v, %d conflicts; want score, latency and confidence kept, no conflict", o, st.Conflicts)
		}
	})
	t.Run("two different scores are a counted conflict and the later source wins", func(t *testing.T) {
		got, st := MergeRecords([]datasets.Record{rec("r1", 1, nil, map[string]datasets.Outcome{"fast": score(1)})},
			[]datasets.Record{rec("r1", 1, nil, map[string]datasets.Outcome{"fast": score(0)})})
		if *got[0].Outcomes["fast"].Score != 0 || st.Conflicts != 1 || st.FirstConflict != "r1/fast" {
			t.Errorf("score %v, stats %+v; want 0, one conflict at r1/fast", *got[0].Outcomes["fast"].Score, st)
		}
	})
	t.Run("records come out in time order and the sources are untouched", func(t *testing.T) {
		a := []datasets.Record{rec("late", 50, nil, map[string]datasets.Outcome{"fast": score(1)}), rec("base", 0, nil, nil)}
		b := []datasets.Record{rec("mid", 20, nil, nil), rec("late", 50, nil, map[string]datasets.Outcome{"strong": score(1)})}
		got, _ := MergeRecords(a, b)
		var ids []string
		for _, r := range got {
			ids = append(ids, r.ID)
		}
		if want := []string{"base", "mid", "late"}; !slices.Equal(ids, want) {
			t.Errorf("order %v, want %v", ids, want)
		}
		if len(a[0].Outcomes) != 1 {
			t.Errorf("source record changed: %+v", a[0].Outcomes)
		}
	})
}

func TestLabelledExamples(t *testing.T) {
	tiers := models.Tiers{Fast: "fast", Strong: "strong"}
	both := map[string]datasets.Outcome{"fast": score(0), "strong": score(1)}
	recs := []datasets.Record{
		rec("base", 0, nil, both),
		rec("band", 1, &datasets.Decision{Kind: "speculate", Propensity: 1}, both),
		rec("explored", 2, &datasets.Decision{Kind: "speculate", Propensity: 0.02, Explored: true}, both),
		rec("rare", 3, &datasets.Decision{Kind: "speculate", Propensity: 0.001, Explored: true}, both),
		rec("old-server", 4, &datasets.Decision{Kind: "speculate"}, both),
		rec("fast-only", 5, &datasets.Decision{Kind: "fast", Propensity: 0.98}, map[string]datasets.Outcome{"fast": score(1)}),
	}
	ex, st, err := LabelledExamples(recs, ExampleOptions{Tiers: tiers})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		kind   ExampleKind
		weight float64
	}{
		"base": {KindBase, 1}, "band": {KindPolicy, 1}, "explored": {KindExplored, 50},
		"rare": {KindExplored, DefaultMaxWeight}, "old-server": {KindPolicy, 1},
	}
	if len(ex) != len(want) {
		t.Fatalf("%d examples, want %d", len(ex), len(want))
	}
	for _, e := range ex {
		w := want[e.ID]
		if e.Kind != w.kind || math.Abs(e.Weight-w.weight) > 1e-9 {
			t.Errorf("%s: kind %s weight %v, want %s %v", e.ID, e.Kind, e.Weight, w.kind, w.weight)
		}
	}
	if st.Unpaired["fast"] != 1 || st.Clipped != 1 || st.NoPropensity != 1 {
		t.Errorf("stats %+v, want 1 unpaired fast, 1 clipped, 1 without propensity", st)
	}
	t.Run("a propensity above 1 is an error naming the record", func(t *testing.T) {
		bad := []datasets.Record{rec("x", 1, &datasets.Decision{Kind: "speculate", Propensity: 1.5}, both)}
		if _, _, err := LabelledExamples(bad, ExampleOptions{Tiers: tiers}); err == nil || !strings.Contains(err.Error(), `"x"`) {
			t.Errorf("err = %v, want one naming record x", err)
		}
	})
	t.Run("the newest share is held out", func(t *testing.T) {
		tr, held, _ := splitJudged(ex, 0.4, nil, nil)
		if len(held) != 2 || held[0].ID != "rare" || held[1].ID != "old-server" || tr[0].ID != "base" {
			t.Errorf("held %v, train starts %v; want rare, old-server held and base first", held, tr[0].ID)
		}
	})
}

// simulateServing routes a synthetic log with a policy on p_hard and
// exploration eps, keeping only the outcomes a server would see: the fast
// tier's for fast, the strong tier's for escalate, both for speculate.
// The decision records the propensity of the decision taken.
func simulateServing(recs []datasets.Record, pHard []float64, pol models.Policy, eps float64, seed uint64) []datasets.Record {
	r := rand.New(rand.NewPCG(seed, 77))
	out := make([]datasets.Record, len(recs))
	for i, rc := range recs {
		d := pol.Decide(pHard[i])
		explored := r.Float64() < eps
		taken := d
		if explored {
			taken = models.Speculate
		}
		var prop float64
		switch {
		case taken == models.Speculate && d == models.Speculate:
			prop = 1 // the policy speculates and exploration only adds to it
		case taken == models.Speculate:
			prop = eps
		default:
			prop = 1 - eps
		}
		c := rc
		c.Decision = &datasets.Decision{Kind: string(taken), PHard: pHard[i], ModelVersion: "sim", Propensity: prop, Explored: explored}
		c.Outcomes = map[string]datasets.Outcome{}
		if taken != models.Escalate {
			c.Outcomes[synth.FastModel] = rc.Outcomes[synth.FastModel]
		}
		if taken != models.Fast {
			c.Outcomes[synth.StrongModel] = rc.Outcomes[synth.StrongModel]
		}
		out[i] = c
	}
	return out
}

// TestSelectionBias is the selection-bias acceptance: the routed
// outcomes of a policy are a biased sample of traffic, and exploration
// with inverse propensity weights removes the bias.
func TestSelectionBias(t *testing.T) {
	const n = 20000
	recs, truth := synth.Generate(synth.Options{N: n, Seed: 11})
	// A stand-in router that knows the difficulty up to noise, so the
	// policy's bands select on difficulty as a trained one does.
	nr := rand.New(rand.NewPCG(3, 4))
	pHard := make([]float64, n)
	for i, tr := range truth {
		pHard[i] = 1 / (1 + math.Exp(-(tr.Difficulty + 0.7*nr.NormFloat64())))
	}
	// Fast below the median, speculate up to the 75th percentile,
	// escalate above: the speculate band is the middle quarter.
	pol := models.Policy{SpeculateAbove: models.Quantile(pHard, 0.5), EscalateAbove: models.Quantile(pHard, 0.75)}
	tiers := models.Tiers{Fast: synth.FastModel, Strong: synth.StrongModel}

	estimate := func(t *testing.T, eps float64, noIPW bool) (fast, label Interval, trueFast, trueLabel float64) {
		t.Helper()
		served := simulateServing(recs, pHard, pol, eps, 5)
		// The examples and the split Run judges on: one-sided examples
		// too (they train their tier's head), and the newest half of the
		// paired ones held out (no champion was trained on them or kept
		// any out). Measuring on a split of its own, this test held out
		// examples retrain never judges on.
		ex, _, err := LabelledExamples(served, ExampleOptions{Tiers: tiers, NoIPW: noIPW, OneSided: true})
		if err != nil {
			t.Fatal(err)
		}
		_, held, _ := splitJudged(ex, 0.5, nil, nil)
		f, y, w := make([]float64, len(held)), make([]float64, len(held)), make([]float64, len(held))
		for i, e := range held {
			f[i], y[i], w[i] = e.Fast, b2f(e.Strong > e.Fast), e.Weight
		}
		bo := BootstrapOptions{Resamples: 500}
		fast, label = BootstrapMean(f, w, bo), BootstrapMean(y, w, bo)
		// The truth over the traffic of the held-out period: the expected
		// fast score, and P(strong right and fast wrong) for strong-wins
		// on 0/1 scores (synth draws the two independently).
		since := HeldSince(held)
		var k float64
		for i, tr := range truth {
			if recs[i].TS.Before(since) {
				continue
			}
			k++
			trueFast += tr.PFast
			trueLabel += tr.PStrong * (1 - tr.PFast)
		}
		return fast, label, trueFast / k, trueLabel / k
	}

	t.Run("without exploration the routed outcomes miss the truth", func(t *testing.T) {
		fast, label, tf, tl := estimate(t, 0, false)
		t.Logf("fast accuracy %v (truth %.4f), label rate %v (truth %.4f)", fast, tf, label, tl)
		if fast.Contains(tf) || label.Contains(tl) {
			t.Errorf("the speculate band's figures cover the truth; the simulated policy does not select on difficulty")
		}
		// The band holds middling requests: the fast tier does worse
		// there than on the easy half that never gets labelled.
		if fast.Hi > tf-0.1 {
			t.Errorf("fast accuracy %v, want well below the truth %.4f", fast, tf)
		}
	})
	t.Run("exploration without weights is still biased", func(t *testing.T) {
		fast, _, tf, _ := estimate(t, 0.1, true)
		t.Logf("fast accuracy %v (truth %.4f)", fast, tf)
		if fast.Contains(tf) {
			t.Errorf("unweighted estimate %v covers the truth %.4f; the band should dominate it", fast, tf)
		}
	})
	t.Run("exploration with inverse propensity weights matches the truth", func(t *testing.T) {
		fast, label, tf, tl := estimate(t, 0.1, false)
		t.Logf("fast accuracy %v (truth %.4f), label rate %v (truth %.4f)", fast, tf, label, tl)
		if !fast.Contains(tf) {
			t.Errorf("fast accuracy %v does not cover the truth %.4f", fast, tf)
		}
		if !label.Contains(tl) {
			t.Errorf("label rate %v does not cover the truth %.4f", label, tl)
		}
	})
}

// smallSpec keeps the retrain tests' fits quick.
func smallSpec() features.Spec {
	s := features.DefaultSpec()
	s.HashBits = 14
	return s
}

// synthExamples are recs' paired examples for the synthetic tiers, in
// three folds by position.
func synthExamples(t *testing.T, recs []datasets.Record) []models.Example {
	t.Helper()
	ls, _, err := LabelledExamples(recs, ExampleOptions{Tiers: models.Tiers{Fast: synth.FastModel, Strong: synth.StrongModel}})
	if err != nil {
		t.Fatal(err)
	}
	ex := Examples(ls)
	for i := range ex {
		ex[i].Fold = i % 3
	}
	return ex
}

// trainChampion fits a router on the first n synthetic records.
func trainChampion(t *testing.T, recs []datasets.Record) *models.Artifact {
	t.Helper()
	a, _, err := models.Train(synthExamples(t, recs), nil, models.TrainOptions{
		Tiers:     models.Tiers{Fast: synth.FastModel, Strong: synth.StrongModel},
		Label:     datasets.Label{}.Of,
		LabelName: "strong-wins",
		Features:  smallSpec(),
		Folds:     3,
		L2:        1e-2, // the middle of DefaultL2Grid for IDF-scaled features
		Now:       time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC),
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestRetrainGate is the promotion-gate acceptance: a challenger
// trained on shuffled outcomes is refused, a clean one is promoted.
func TestRetrainGate(t *testing.T) {
	racetest.SkipSlow(t)
	recs, _ := synth.Generate(synth.Options{N: 3600, Seed: 21})
	champion := trainChampion(t, recs[:1200])
	fresh := recs[1200:]
	opts := Options{Folds: 3, Compare: CompareOptions{Margin: DefaultMargin, SE: DefaultGateSE, Bootstrap: BootstrapOptions{Resamples: 200}}}

	t.Run("a challenger trained on shuffled outcomes is refused", func(t *testing.T) {
		// Shuffle the outcomes among the older 80%, the training side;
		// the newest 20% that judges both routers stays true.
		bad := slices.Clone(fresh)
		cut := len(bad) - int(math.Round(DefaultHoldout*float64(len(bad))))
		r := rand.New(rand.NewPCG(1, 1))
		r.Shuffle(cut, func(i, j int) { bad[i].Outcomes, bad[j].Outcomes = bad[j].Outcomes, bad[i].Outcomes })
		res, err := Run(champion, bad, opts)
		if err != nil {
			t.Fatal(err)
		}
		c := res.Comparison
		t.Logf("%s", c.Verdict)
		if c.Promote {
			t.Errorf("promoted: %s", c.Verdict)
		}
		if !strings.Contains(c.Verdict, "more than the margin") {
			t.Errorf("verdict %q, want it to say the margin was exceeded", c.Verdict)
		}
	})
	t.Run("a challenger trained on more true outcomes is promoted", func(t *testing.T) {
		res, err := Run(champion, fresh, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s", res.Comparison.Verdict)
		if !res.Comparison.Promote {
			t.Errorf("refused: %s", res.Comparison.Verdict)
		}
		a := res.Challenger
		if a.Parent != champion.Version || a.Features.HashBits != champion.Features.HashBits || a.Label != champion.Label {
			t.Errorf("challenger parent %q spec bits %d label %q, want the champion's (%q, %d, %q)", a.Parent, a.Features.HashBits, a.Label, champion.Version, champion.Features.HashBits, champion.Label)
		}
		// keepOperatingPoint matched the champion's shares on the log.
		if got, want := a.ExpectedShares[models.Escalate], champion.ExpectedShares[models.Escalate]; math.Abs(got-want) > 0.02 {
			t.Errorf("escalate share %.3f, want the champion's %.3f", got, want)
		}
	})
}

// TestKeepOperatingPointEscalateAll covers the two operating points that
// are not shares of a ranking: a champion that escalates every request
// hands that on whole (a quantile at share 1 is the lowest p_hard, which
// would have sent the requests at it to the fast tier), and a challenger
// that cannot route keeps escalating everything (its one p_hard as a
// threshold would have sent every request to the fast tier).
func TestKeepOperatingPointEscalateAll(t *testing.T) {
	racetest.SkipSlow(t)
	recs, _ := synth.Generate(synth.Options{N: 900, Seed: 31})
	decideAll := func(t *testing.T, a *models.Artifact) map[models.Decision]int {
		t.Helper()
		r, err := models.NewRouter(a)
		if err != nil {
			t.Fatal(err)
		}
		got := map[models.Decision]int{}
		for i := range recs {
			got[r.Route(RecordInput(&recs[i])).Decision]++
		}
		return got
	}
	routing := trainChampion(t, recs[:600])
	if routing.Signal == nil || !routing.Signal.Routable || routing.ExpectedShares[models.Fast] == 0 {
		t.Fatalf("the routable router: signal %+v shares %v, want one that routes", routing.Signal, routing.ExpectedShares)
	}
	t.Run("a champion that escalates everything hands it on", func(t *testing.T) {
		champion := *routing
		champion.Policy = models.NoRoutePolicy()
		champion.ExpectedShares = map[models.Decision]float64{models.Fast: 0, models.Speculate: 0, models.Escalate: 1}
		challenger := trainChampion(t, recs[300:900])
		if err := keepOperatingPoint(challenger, &champion, recs); err != nil {
			t.Fatal(err)
		}
		if got := decideAll(t, challenger); got[models.Escalate] != len(recs) {
			t.Errorf("decisions %v, want all %d escalated", got, len(recs))
		}
		if challenger.ExpectedShares[models.Escalate] != 1 || !strings.Contains(challenger.PolicyTarget, "escalates every request") {
			t.Errorf("shares %v, target %q", challenger.ExpectedShares, challenger.PolicyTarget)
		}
	})
	t.Run("a challenger that cannot route escalates everything", func(t *testing.T) {
		// Both tiers flip the same coin: the gain's interval holds 0.
		rng := rand.New(rand.NewPCG(5, 6))
		ex := synthExamples(t, recs)
		for i := range ex {
			ex[i].Fast, ex[i].Strong = float64(rng.IntN(2)), float64(rng.IntN(2))
		}
		challenger, _, err := models.Train(ex, nil, models.TrainOptions{
			Tiers: models.Tiers{Fast: synth.FastModel, Strong: synth.StrongModel}, Label: datasets.Label{}.Of,
			LabelName: "strong-wins", Features: smallSpec(), Folds: 3, L2: 1e-2,
		})
		if err != nil {
			t.Fatal(err)
		}
		if challenger.Signal.Routable {
			t.Fatalf("signal %+v, want a challenger that cannot route", challenger.Signal)
		}
		if err := keepOperatingPoint(challenger, routing, recs); err != nil {
			t.Fatal(err)
		}
		if got := decideAll(t, challenger); got[models.Escalate] != len(recs) {
			t.Errorf("decisions %v, want all %d escalated (the champion's shares were %v)", got, len(recs), routing.ExpectedShares)
		}
	})
	t.Run("otherwise the champion's shares carry over", func(t *testing.T) {
		challenger := trainChampion(t, recs[300:900])
		if err := keepOperatingPoint(challenger, routing, recs); err != nil {
			t.Fatal(err)
		}
		if got, want := challenger.ExpectedShares[models.Fast], routing.ExpectedShares[models.Fast]; math.Abs(got-want) > 0.02 {
			t.Errorf("fast share %.3f, want the champion's %.3f", got, want)
		}
	})
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func TestRetrainGivesTheChallengerTheView(t *testing.T) {
	racetest.SkipSlow(t)
	recs, _ := synth.Generate(synth.Options{N: 2400, Seed: 21})
	champion, _, err := models.Train(synthExamples(t, recs[:1200]), nil, models.TrainOptions{
		Tiers: models.Tiers{Fast: synth.FastModel, Strong: synth.StrongModel}, Label: datasets.Label{}.Of, LabelName: "strong-wins",
		Features: smallSpec(), Folds: 3, L2: 1e-2, Difficulty: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(champion, recs[1200:], Options{Folds: 3, Compare: CompareOptions{Margin: DefaultMargin, SE: DefaultGateSE, Bootstrap: BootstrapOptions{Resamples: 50}}})
	if err != nil {
		t.Fatal(err)
	}
	if champion.Difficulty == nil || res.Challenger.Difficulty == nil {
		t.Errorf("champion's view %v, challenger's %v: want both", champion.Difficulty != nil, res.Challenger.Difficulty != nil)
	}
}

func TestAbsentTierNamesTheModelsThatAppear(t *testing.T) {
	recs := []datasets.Record{
		{ID: "a", Prompt: "x", Outcomes: map[string]datasets.Outcome{"other/fast": {Score: datasets.Float(1)}, "other/strong": {Score: datasets.Float(0)}}},
		{ID: "b", Prompt: "y", Outcomes: map[string]datasets.Outcome{"other/fast": {Score: datasets.Float(0)}}},
	}
	err := absentTier(recs, models.Tiers{Fast: "other/fast", Strong: "gpt-4"})
	if err == nil || !strings.Contains(err.Error(), `strong tier "gpt-4" appears in no record; the records' models are other/fast (2), other/strong (1)`) {
		t.Errorf("absentTier = %v, want the strong tier named and the models listed with their counts", err)
	}
	if err := absentTier(recs, models.Tiers{Fast: "other/fast", Strong: "other/strong"}); err != nil {
		t.Errorf("both tiers appear: %v, want nil", err)
	}
}

// TestHeldSinceSkipsUntimedExamples: a held-out slice that mixes untimed
// records (held when too few timed ones qualify) with timed ones starts at
// its oldest time, not at the zero time the untimed ones sort under.
func TestHeldSinceSkipsUntimedExamples(t *testing.T) {
	day := func(d int) time.Time { return time.Date(2026, 11, d, 0, 0, 0, 0, time.UTC) }
	var ex []Labelled
	for i := range 10 {
		ex = append(ex, Labelled{Example: models.Example{ID: "d" + string(rune('0'+i)), TS: day(1 + i)}, Paired: true},
			Labelled{Example: models.Example{ID: "u" + string(rune('0'+i))}, Paired: true})
	}
	// The champion trained on d0-d7, so the newest half of the ten timed
	// records holds d8, d9 and three untimed ones.
	trained := func(id string) bool { return id[0] == 'd' && id[1] < '8' }
	_, held, _ := splitJudged(ex, 0.5, trained, nil)
	var untimed int
	for _, h := range held {
		if h.TS.IsZero() {
			untimed++
		}
	}
	if untimed == 0 {
		t.Fatalf("held %v: the test needs untimed records in the slice", held)
	}
	if got := HeldSince(held); !got.Equal(day(9)) {
		t.Errorf("HeldSince = %v, want %v, the oldest time in the slice", got, day(9))
	}
	if got := HeldSince([]Labelled{{Example: models.Example{ID: "u"}}}); !got.IsZero() {
		t.Errorf("HeldSince of untimed records = %v, want zero", got)
	}
}

// TestKeepOperatingPointFewRouted: a retrain on a few dozen served
// requests kept the champion's shares on those alone, and a quantile of
// a handful is noise (the README's proxy demo served 25, and its
// challenger's speculate share fell from 20% to 6% of fresh traffic).
// Below minRoutedForShares every record sets the thresholds.
func TestKeepOperatingPointFewRouted(t *testing.T) {
	recs, _ := synth.Generate(synth.Options{N: 900, Seed: 41})
	champion := trainChampion(t, recs[:600])
	challenger := trainChampion(t, recs[300:900])
	r, err := models.NewRouter(challenger)
	if err != nil {
		t.Fatal(err)
	}
	// Five routed requests, the easiest ones: on them alone the top 30%
	// is a p_hard most of the traffic is above.
	idx := make([]int, len(recs))
	p := make([]float64, len(recs))
	for i := range recs {
		idx[i], p[i] = i, r.Route(RecordInput(&recs[i])).PHard
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(p[a], p[b]) })
	log := slices.Clone(recs)
	for _, i := range idx[:5] {
		log[i].Decision = &datasets.Decision{Kind: "fast", Tier: synth.FastModel, PHard: p[i]}
	}
	if err := keepOperatingPoint(challenger, champion, log); err != nil {
		t.Fatal(err)
	}
	got := models.Shares(challenger.Policy, p)
	for _, d := range []models.Decision{models.Fast, models.Speculate, models.Escalate} {
		if want := champion.ExpectedShares[d]; math.Abs(got[d]-want) > 0.03 {
			t.Errorf("%s share %.3f of all traffic, want the champion's %.3f (policy %+v, %s)", d, got[d], want, challenger.Policy, challenger.PolicyTarget)
		}
	}
	if !strings.Contains(challenger.PolicyTarget, "5 routed, fewer than") {
		t.Errorf("policy target %q, want it to say the routed requests were too few", challenger.PolicyTarget)
	}
}

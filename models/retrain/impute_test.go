package retrain

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/datasets/synth"
	"github.com/triage-router/triage/models"
)

// imputeWorld is a log where the tiers' outcomes are coupled as on MMLU
// (the fast tier is right only on requests the strong tier gets right):
// easy requests (fast 0.9, strong 0.95) and hard ones (fast 0.15, strong
// 0.5). base paired records with no decision, then traffic routed by
// difficulty, easy to fast and hard to escalate, with exploration ε
// (explored requests carry both outcomes). all is the traffic with every
// outcome, for the truth.
func imputeWorld(seed uint64, base, traffic int, eps float64) (recs, all []datasets.Record) {
	r := rand.New(rand.NewPCG(seed, 7))
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for i := range base + traffic {
		hard := i%2 == 1
		pFast, pStrong := 0.9, 0.95
		prompt := fmt.Sprintf("easy question number %d about the weather", i)
		if hard {
			pFast, pStrong = 0.15, 0.5
			prompt = fmt.Sprintf("hard proof number %d about prime gaps", i)
		}
		u := r.Float64()
		fs, ss := b2f(u < pFast), b2f(u < pStrong)
		full := datasets.Record{ID: fmt.Sprint(i), Prompt: prompt, TS: t0.Add(time.Duration(i) * time.Second),
			Outcomes: map[string]datasets.Outcome{synth.FastModel: {Score: f64(fs)}, synth.StrongModel: {Score: f64(ss)}}}
		if i < base {
			recs = append(recs, full)
			continue
		}
		kind, ph := "fast", 0.1
		if hard {
			kind, ph = "escalate", 0.9
		}
		d := &datasets.Decision{Kind: kind, PHard: ph, Propensity: 1 - eps}
		if r.Float64() < eps {
			d = &datasets.Decision{Kind: "speculate", PHard: ph, Propensity: eps, Explored: true}
		}
		full.Decision = d
		all = append(all, full)
		recs = append(recs, observedOnly(full))
	}
	return recs, all
}

// perTierChampion trains a per-tier router on paired records.
func perTierChampion(t *testing.T, recs []datasets.Record) *models.Artifact {
	t.Helper()
	tiers := models.Tiers{Fast: synth.FastModel, Strong: synth.StrongModel}
	a, _, err := models.Train(synthExamples(t, recs), nil, models.TrainOptions{
		Tiers: tiers, Label: datasets.Label{}.Of, LabelName: "strong-wins", Scorer: models.ScorerPerTier,
		Features: smallSpec(), Folds: 3, L2: 1e-2, RouteWithoutSignal: true,
		Now: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC),
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestImputeOtherTier(t *testing.T) {
	recs, _ := imputeWorld(1, 300, 600, 0.1)
	champion := perTierChampion(t, recs[:300])
	ls, _, err := LabelledExamples(recs, ExampleOptions{Tiers: champion.Tiers, OneSided: true, Policy: champion.Policy})
	if err != nil {
		t.Fatal(err)
	}
	fresh := func() []models.Example {
		ex := Examples(ls)
		for i := range ex {
			ex[i].Weight = 1
		}
		return ex
	}
	before := fresh()
	for _, mode := range []ImputeMode{ImputeNone, ImputeFast, ImputeBoth} {
		t.Run(string(mode), func(t *testing.T) {
			ex := fresh()
			st, err := imputeOtherTier(champion, ex, mode, 0.5)
			if err != nil {
				t.Fatal(err)
			}
			var nf, ns int
			for i := range ex {
				b, a := before[i], ex[i]
				// A posted score always wins.
				if !math.IsNaN(b.Fast) && a.Fast != b.Fast || !math.IsNaN(b.Strong) && a.Strong != b.Strong {
					t.Fatalf("%s: a posted score changed: fast %v→%v strong %v→%v", a.ID, b.Fast, a.Fast, b.Strong, a.Strong)
				}
				if math.IsNaN(b.Fast) && !math.IsNaN(a.Fast) {
					nf++
					if !a.FastSoft || a.FastWeight != 0.5 || !(a.Fast > 0 && a.Fast < 1) {
						t.Errorf("%s: imputed fast %v soft %v weight %v; want a soft target in (0,1) with weight 0.5", a.ID, a.Fast, a.FastSoft, a.FastWeight)
					}
					// Fast is right only where strong is: a strong-wrong
					// request's imputed fast target is near 0.
					if a.Strong == 0 && a.Fast > 0.1 {
						t.Errorf("%s: strong wrong, imputed P(fast right) %.3f; want near 0", a.ID, a.Fast)
					}
				}
				if math.IsNaN(b.Strong) && !math.IsNaN(a.Strong) {
					ns++
					if !a.StrongSoft || a.StrongWeight != 0.5 {
						t.Errorf("%s: imputed strong soft %v weight %v", a.ID, a.StrongSoft, a.StrongWeight)
					}
					if a.Fast == 1 && a.Strong < 0.9 {
						t.Errorf("%s: fast right, imputed P(strong right) %.3f; want near 1", a.ID, a.Strong)
					}
				}
			}
			if nf != st.Fast || ns != st.Strong {
				t.Errorf("counted %d fast, %d strong; stats say %+v", nf, ns, st)
			}
			switch mode {
			case ImputeNone:
				if nf+ns != 0 {
					t.Errorf("none imputed %d fast, %d strong", nf, ns)
				}
			case ImputeFast:
				if nf == 0 || ns != 0 {
					t.Errorf("fast imputed %d fast, %d strong; want only fast ones", nf, ns)
				}
			case ImputeBoth:
				if nf == 0 || ns == 0 {
					t.Errorf("both imputed %d fast, %d strong; want both", nf, ns)
				}
			}
			if mode != ImputeNone && !(st.FastGivenStrong[1] > st.FastGivenStrong[0]+0.3) {
				t.Errorf("P(fast right | strong right) %.3f vs | wrong %.3f: the imputation model missed the coupling", st.FastGivenStrong[1], st.FastGivenStrong[0])
			}
		})
	}
	t.Run("too few paired rows", func(t *testing.T) {
		var few []models.Example
		paired := 0
		for _, e := range fresh() {
			isPaired := !math.IsNaN(e.Fast) && !math.IsNaN(e.Strong)
			if isPaired && paired >= imputeMinPaired-1 {
				continue
			}
			if isPaired {
				paired++
			}
			few = append(few, e)
		}
		st, err := imputeOtherTier(champion, few, ImputeBoth, 1)
		if err != nil || st.Fast+st.Strong != 0 {
			t.Errorf("imputed %+v (err %v) from %d paired rows; want nothing below %d", st, err, paired, imputeMinPaired)
		}
	})
	if _, err := ParseImputeMode("strong"); err == nil {
		t.Error("ParseImputeMode accepted an unknown mode")
	}
	if m, err := ParseImputeMode(""); err != nil || m != DefaultImpute {
		t.Errorf("ParseImputeMode(\"\") = %q, %v; want the default", m, err)
	}
}

// TestImputeDirection is the documented direction of the fast tier's
// imputation (docs/loop.md §4): the fast head sees the escalated (hard)
// requests only through the few base and explored records that ran the
// fast tier too, so under a strong prior it learns the hard requests'
// fast accuracy poorly, pulled towards the easy requests it sees by the
// thousand. Imputing P(fast right | strong outcome, x) for every
// escalation gives it a target on each hard request, and its mean over
// the hard traffic moves towards the truth.
func TestImputeDirection(t *testing.T) {
	recs, all := imputeWorld(2, 300, 2000, 0.02)
	champion := perTierChampion(t, recs[:300])
	var trueHard float64
	var hard []datasets.Record
	for i := range all {
		if all[i].Decision.PHard > 0.5 {
			hard = append(hard, all[i])
			trueHard += *all[i].Outcomes[synth.FastModel].Score
		}
	}
	trueHard /= float64(len(hard))
	meanFastHard := func(mode ImputeMode) (float64, ImputeStats) {
		// A large L2 given explicitly (so neither fit rescales it): the
		// head moves from its intercept only as far as many rows take it.
		res, err := Run(champion, recs, Options{Folds: 3, L2: 3, Impute: mode,
			Compare: CompareOptions{Margin: DefaultMargin, Bootstrap: BootstrapOptions{Resamples: 20}}})
		if err != nil {
			t.Fatal(err)
		}
		rt, err := models.NewRouter(res.Challenger)
		if err != nil {
			t.Fatal(err)
		}
		var m float64
		for i := range hard {
			f, _, ok := rt.TierScores(RecordInput(&hard[i]))
			if !ok {
				t.Fatal("no tier heads")
			}
			m += f
		}
		return m / float64(len(hard)), res.Imputed
	}
	none, _ := meanFastHard(ImputeNone)
	imp, st := meanFastHard(ImputeFast)
	t.Logf("fast head's mean over the escalated requests: without imputation %.3f, imputed %.3f (%d targets), truth %.3f", none, imp, st.Fast, trueHard)
	if st.Fast == 0 || st.Strong != 0 {
		t.Fatalf("imputed %+v; want fast targets only", st)
	}
	if !(imp < none-0.05) || math.Abs(imp-trueHard) >= math.Abs(none-trueHard) {
		t.Errorf("imputed %.3f, without %.3f, truth %.3f: want the imputation to move the fast head down towards the truth on the hard requests", imp, none, trueHard)
	}
}

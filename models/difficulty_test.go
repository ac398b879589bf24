package models

import (
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/triage-router/triage/datasets/synth"
	"github.com/triage-router/triage/features"
	"github.com/triage-router/triage/internal/racetest"
)

// difficultyExamples is the synthetic log with its confidences, folds by
// position.
func difficultyExamples() []Example {
	recs, _ := synth.Generate(synth.Options{N: 1500, Seed: 5})
	ex := make([]Example, len(recs))
	for i, r := range recs {
		f, s, _ := r.Scores(synth.FastModel, synth.StrongModel)
		ex[i] = Example{ID: r.ID, Input: features.Input{Prompt: r.Prompt, Meta: r.Meta}, Fast: f, Strong: s, Fold: i % 3}
	}
	return ex
}

func trainDifficulty(t *testing.T, ex []Example, on bool) (*Artifact, *TrainReport) {
	t.Helper()
	a, rep, err := Train(ex[:1200], ex[1200:], TrainOptions{
		Tiers:      Tiers{Fast: synth.FastModel, Strong: synth.StrongModel},
		Label:      func(f, s float64) float64 { return b2f(s > f) },
		LabelName:  "strong-wins",
		Folds:      3,
		Difficulty: on,
		Now:        time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC),
	})
	if err != nil {
		t.Fatal(err)
	}
	return a, rep
}

func TestDifficultyView(t *testing.T) {
	racetest.SkipSlow(t)
	ex := difficultyExamples()
	off, _ := trainDifficulty(t, ex, false)
	a, rep := trainDifficulty(t, ex, true)
	if off.Difficulty != nil {
		t.Fatal("a router trained without Difficulty has a difficulty view")
	}
	d := a.Difficulty
	if d == nil || !rep.Difficulty {
		t.Fatal("Difficulty set, but the artifact has no difficulty view")
	}

	t.Run("each tier's chance rises with the head's logit, the strong tier's above the fast one's", func(t *testing.T) {
		// The head predicts how likely a request is to be answered well;
		// on the synthetic log both tiers do better on the requests it
		// calls easy, and the strong tier better than the fast one.
		if !(d.FastC > 0 && d.StrongC > 0) {
			t.Errorf("curves fast %+.3f%+.3f·z, strong %+.3f%+.3f·z: want both slopes positive", d.FastA, d.FastC, d.StrongA, d.StrongC)
		}
		for _, z := range []float64{-2, 0, 2} {
			if g := d.gain(z); !(g > -1 && g < 1) {
				t.Errorf("gain(%v) = %v, want a value in (-1, 1)", z, g)
			}
		}
		if d.Mix != DifficultyMix || !(d.ScoreSD > 0 && d.GainSD > 0) {
			t.Errorf("mix %v, sds %v %v", d.Mix, d.ScoreSD, d.GainSD)
		}
	})

	t.Run("the score is the documented mix of the scorer and the view", func(t *testing.T) {
		r, err := NewRouter(a)
		if err != nil {
			t.Fatal(err)
		}
		plain := *a
		plain.Difficulty = nil
		rp, err := NewRouter(&plain)
		if err != nil {
			t.Fatal(err)
		}
		ext, _ := features.NewExtractor(a.Features)
		var v features.Vector
		moved := 0
		for _, e := range ex[1200:1300] {
			v.Reset()
			ext.Extract(&v, e.Input)
			var z float64
			for k, j := range v.Idx {
				z += d.Weights[j] * v.Val[k]
			}
			z += d.Bias
			s := rp.Score(e.Input)
			want := d.Mix*(s-d.ScoreMean)/d.ScoreSD + (1-d.Mix)*(d.gain(z)-d.GainMean)/d.GainSD
			if got := r.Score(e.Input); math.Abs(got-want) > 1e-9 {
				t.Fatalf("%s: score %v, want %v", e.ID, got, want)
			}
			if math.Abs(want-(s-d.ScoreMean)/d.ScoreSD) > 1e-6 {
				moved++
			}
		}
		if moved == 0 {
			t.Error("the view never moved a score: it is not mixed in")
		}
	})

	t.Run("it round-trips and an older format cannot carry it", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "router.json")
		if err := a.Save(p); err != nil {
			t.Fatal(err)
		}
		b, err := Load(p)
		if err != nil {
			t.Fatal(err)
		}
		ra, _ := NewRouter(a)
		rb, _ := NewRouter(b)
		for _, e := range ex[1200:1250] {
			if x, y := ra.Route(e.Input), rb.Route(e.Input); x != y {
				t.Fatalf("%s: saved router says %+v, loaded one %+v", e.ID, x, y)
			}
		}
		for _, tc := range []struct {
			name string
			edit func(*Artifact)
			want string
		}{
			{"format 4", func(c *Artifact) { c.FormatVersion = 4 }, "difficulty needs format_version 5"},
			{"a zero spread", func(c *Artifact) { dd := *c.Difficulty; dd.GainSD = 0; c.Difficulty = &dd }, "standard deviations"},
			{"short weights", func(c *Artifact) { dd := *c.Difficulty; dd.Weights = dd.Weights[:3]; c.Difficulty = &dd }, "3 weights"},
			{"a mix outside [0, 1]", func(c *Artifact) { dd := *c.Difficulty; dd.Mix = 1.5; c.Difficulty = &dd }, "mix 1.5"},
			{"a NaN curve", func(c *Artifact) { dd := *c.Difficulty; dd.StrongC = math.NaN(); c.Difficulty = &dd }, "not finite"},
			{"an N-tier router", func(c *Artifact) { c.Scorer = ScorerTiers }, "belongs to a two-tier router"},
		} {
			c := *a
			tc.edit(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: err = %v, want one containing %q", tc.name, err, tc.want)
			}
		}
	})

	t.Run("a tier that always answers well gets a flat curve, not a failed fit", func(t *testing.T) {
		all := difficultyExamples()
		for i := range all {
			all[i].Strong = 1
		}
		a, _ := trainDifficulty(t, all, true)
		if d := a.Difficulty; d != nil && d.StrongC != 0 {
			t.Errorf("strong curve %+.3f%+.3f·z, want a flat one", d.StrongA, d.StrongC)
		}
	})
}

// The view is a fixed recipe added after the selection: the signal check
// judges the chosen scorer with or without it, so the view cannot make a
// log of coin flips route. Judged on the mix, whose curves had been fitted
// on every row, the view changed the verdict on such logs (docs/quality.md,
// item 19).
func TestDifficultyViewKeepsTheSignalVerdict(t *testing.T) {
	racetest.SkipSlow(t)
	for _, seed := range []uint64{28, 37} {
		ex := noSignalExamples(1500, seed)
		var sig [2]Signal
		for k, on := range []bool{false, true} {
			a, _, err := Train(ex, nil, TrainOptions{
				Tiers: Tiers{Fast: "f", Strong: "s"}, Label: func(f, s float64) float64 { return b2f(s > f) },
				LabelName: "strong-wins", Difficulty: on, Now: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC),
			})
			if err != nil {
				t.Fatal(err)
			}
			if on && a.Difficulty == nil {
				t.Fatalf("seed %d: no view to test", seed)
			}
			sig[k] = *a.Signal
		}
		if sig[0] != sig[1] {
			t.Errorf("seed %d: signal without the view %+v, with it %+v: want the same verdict", seed, sig[0], sig[1])
		}
	}
}

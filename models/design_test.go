package models

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/triage-router/triage/datasets/synth"
	"github.com/triage-router/triage/features"
	"github.com/triage-router/triage/internal/racetest"
)

// designExamples is a small synthetic training set with confidences.
func designExamples(tb testing.TB, n int) []Example {
	tb.Helper()
	recs, _ := synth.Generate(synth.Options{N: n, Seed: 9, Confidence: true})
	ex := make([]Example, len(recs))
	for i, r := range recs {
		f, s, _ := r.Scores(synth.FastModel, synth.StrongModel)
		ex[i] = Example{ID: r.ID, Input: features.Input{Prompt: r.Prompt, Meta: r.Meta}, Fast: f, Strong: s, Fold: i % 3}
		if i%4 != 0 { // some without, to check the gate's subset
			c := *r.Outcomes[synth.FastModel].Confidence
			ex[i].Confidence = &c
		}
	}
	return ex
}

func designOptions(scorer string) TrainOptions {
	return TrainOptions{
		Tiers:     Tiers{Fast: synth.FastModel, Strong: synth.StrongModel},
		Label:     func(f, s float64) float64 { return b2f(s > f) },
		LabelName: "strong-wins",
		Scorer:    scorer,
		Folds:     3,
		Now:       time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC),
	}
}

// artifactJSON is the artifact without its version, which has a random
// part, and the checksum that covers it.
func artifactJSON(tb testing.TB, a *Artifact) []byte {
	tb.Helper()
	c := *a
	c.Version, c.Checksum = "", ""
	b, err := json.Marshal(&c)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestTrainDesignMatchesTrain(t *testing.T) {
	racetest.SkipSlow(t)
	// 640 to train on (above 10 and below 5,000, the Expect cases'
	// sizes) and 160 held out: enough for Train's grid, scorer and
	// calibration choices, at half the cost of 1,200 under -race.
	ex := designExamples(t, 800)
	train, held := ex[:640], ex[640:]
	// Train's artifact per scorer, fitted once: three cases compare
	// TrainDesign with the same per-tier one.
	wants := map[string]struct {
		a   *Artifact
		rep *TrainReport
	}{}
	for _, tc := range []struct {
		name   string
		scorer string
		expect int // Expect's argument, 0 for no call
	}{
		{"the label scorer gives the same artifact", ScorerLabel, 0},
		{"the per-tier scorer gives the same artifact", ScorerPerTier, 0},
		{"an expected size too small changes nothing", ScorerPerTier, 10},
		{"an expected size too large changes nothing", ScorerPerTier, 5000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, ok := wants[tc.scorer]
			if !ok {
				a, rep, err := Train(train, held, designOptions(tc.scorer))
				if err != nil {
					t.Fatal(err)
				}
				NameTopFeatures(a, train, 20)
				w.a, w.rep = a, rep
				wants[tc.scorer] = w
			}
			want, wantRep := w.a, w.rep
			d, err := NewDesign(features.Spec{})
			if err != nil {
				t.Fatal(err)
			}
			if tc.expect > 0 {
				d.Expect(tc.expect)
			}
			rx, err := NewRowExtractor(features.Spec{})
			if err != nil {
				t.Fatal(err)
			}
			// Rows made ahead of time, as the streaming loader makes them
			// on other goroutines.
			rows := make([]Row, len(train))
			for i := range train {
				rows[i] = rx.Extract(train[i].Input)
			}
			for i := range train {
				d.AddRow(rows[i], &train[i])
			}
			got, gotRep, err := TrainDesign(d, held, designOptions(tc.scorer))
			if err != nil {
				t.Fatal(err)
			}
			NameTopFeaturesFrom(got, d.Inputs(), 20)
			if g, w := artifactJSON(t, got), artifactJSON(t, want); !bytes.Equal(g, w) {
				t.Errorf("artifacts differ:\n got %.300s\nwant %.300s", g, w)
			}
			if gotRep.Calibration != wantRep.Calibration || gotRep.L2 != wantRep.L2 {
				t.Errorf("got calibration %s, l2 %g; want %s, %g", gotRep.Calibration, gotRep.L2, wantRep.Calibration, wantRep.L2)
			}
		})
	}
}

func TestTrainDesignRefuses(t *testing.T) {
	ex := designExamples(t, 300)
	build := func(spec features.Spec) *Design {
		d, err := NewDesign(spec)
		if err != nil {
			t.Fatal(err)
		}
		for i := range ex {
			d.Add(&ex[i])
		}
		return d
	}
	other := features.DefaultSpec()
	other.HashBits = 16
	used := build(features.Spec{})
	if _, _, err := TrainDesign(used, nil, designOptions(ScorerLabel)); err != nil {
		t.Fatal(err)
	}
	negative := build(features.Spec{})
	negative.weight[7] = -1
	for _, tc := range []struct {
		name string
		d    *Design
		want string
	}{
		{"a design built for another spec", build(other), "another feature spec"},
		{"a design already trained on", used, "trained on already"},
		{"a negative weight, naming the example", negative, `example "` + ex[7].ID + `": weight -1`},
	} {
		t.Run(tc.name+" is an error", func(t *testing.T) {
			_, _, err := TrainDesign(tc.d, nil, designOptions(ScorerLabel))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

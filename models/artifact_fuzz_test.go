package models

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/triage-router/triage/features"
)

// FuzzArtifact feeds changed artifacts to everything that reads one:
// Validate, then a router's Route and Explain, and Marshal and Parse. The
// checksum is left unchecked, so that the fuzzer's changes reach the
// checks behind it (a file changed by accident fails the checksum first;
// these checks are what stands between a development build's or a hand
// edit's mistake and the server). Whatever Validate accepts must route
// every request to a p_hard in [0, 1] (or a tier that exists) and a known
// decision, and save and load again; nothing may panic.
func FuzzArtifact(f *testing.F) {
	for _, a := range fuzzSeedArtifacts(f) {
		b, err := json.Marshal(a)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	inputs := []features.Input{
		{},
		{Prompt: "What is 2 + 2?"},
		{Prompt: strings.Repeat("prove that the lemma holds for every prime ", 40), Meta: map[string]string{"subject": "number theory"}},
		{Messages: []features.Turn{{Role: "system", Content: "be brief"}, {Role: "user", Content: "写一首关于秋天的诗"}}},
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var a Artifact
		if json.Unmarshal(b, &a) != nil || a.Validate() != nil {
			return
		}
		if a.IsMultiTier() {
			r, err := NewTierRouter(&a)
			if err != nil {
				t.Fatalf("Validate accepted the artifact but NewTierRouter refused it: %v", err)
			}
			for _, in := range inputs {
				res := r.Route(in)
				if res.Tier < 0 || res.Tier >= r.Len() || res.Race >= r.Len() || !knownDecision(res.Decision) {
					t.Fatalf("N-tier route of %q: tier %d, race %d of %d tiers, decision %q", in.Prompt, res.Tier, res.Race, r.Len(), res.Decision)
				}
			}
		} else {
			r, err := NewRouter(&a)
			if err != nil {
				t.Fatalf("Validate accepted the artifact but NewRouter refused it: %v", err)
			}
			for _, in := range inputs {
				res := r.Route(in)
				if !(res.PHard >= 0 && res.PHard <= 1) || !knownDecision(res.Decision) {
					t.Fatalf("route of %q: p_hard %v, decision %q; want a p_hard in [0, 1] and a known decision", in.Prompt, res.PHard, res.Decision)
				}
				for _, c := range r.Explain(in, 5) {
					if math.IsNaN(c.Value) {
						t.Fatalf("explain %q: feature %s has a NaN share", in.Prompt, c.Feature)
					}
				}
			}
		}
		raw, err := a.Marshal()
		if err != nil {
			t.Fatalf("Validate accepted the artifact but Marshal refused it: %v", err)
		}
		if _, err := Parse(raw); err != nil {
			t.Fatalf("an artifact Marshal wrote does not Parse: %v", err)
		}
	})
}

func knownDecision(d Decision) bool {
	return d == Fast || d == Speculate || d == Escalate
}

// fuzzSeedArtifacts trains one small artifact of each shape a file can
// hold: per-tier with a confidence gate, blend with the difficulty view,
// gain, label, one that cannot route, and an N-tier router. A 1,024-slot
// hashed space keeps each seed a few kilobytes.
func fuzzSeedArtifacts(tb testing.TB) []*Artifact {
	tb.Helper()
	spec := features.DefaultSpec()
	spec.HashBits = features.MinHashBits
	ex := designExamples(tb, 240)
	train := func(scorer string, edit func(*TrainOptions), ex []Example) *Artifact {
		opts := designOptions(scorer)
		opts.Features, opts.L2 = spec, 1e-2
		if edit != nil {
			edit(&opts)
		}
		a, _, err := Train(ex, nil, opts)
		if err != nil {
			tb.Fatalf("seed %s: %v", scorer, err)
		}
		return a
	}
	// Outcomes that do not depend on the request: a router that cannot
	// route, whose calibration is a constant.
	flat := make([]Example, len(ex))
	for i, e := range ex {
		e.Fast, e.Strong = float64(i%2), float64(i/2%2)
		flat[i] = e
	}
	seeds := []*Artifact{
		train(ScorerPerTier, nil, ex),
		train(ScorerBlend, func(o *TrainOptions) { o.Difficulty = true }, ex),
		train(ScorerGain, nil, ex),
		train(ScorerLabel, nil, ex),
		train(ScorerGain, nil, flat),
	}
	d, err := NewDesign(spec)
	if err != nil {
		tb.Fatal(err)
	}
	tex := tierExamples(240)
	for i := range tex {
		d.Add(&tex[i])
	}
	tiers := []Tier{{Name: "cheap", Price: 0.1}, {Name: "chat", Price: 1}, {Name: "maths", Price: 3}}
	a, _, err := TrainTiers(d, TierTrainOptions{Tiers: tiers, Features: spec, Folds: 3, L2: 1e-2, Now: time.Unix(0, 0)})
	if err != nil {
		tb.Fatalf("seed tiers: %v", err)
	}
	return append(seeds, a)
}

package models

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/triage-router/triage/features"
)

func TestParseTier(t *testing.T) {
	tests := []struct {
		in      string
		want    Tier
		wantErr string
	}{
		{in: "llama-8b", want: Tier{Name: "llama-8b"}},
		{in: "gpt-4o=2.5", want: Tier{Name: "gpt-4o", Price: 2.5}},
		{in: "odd=name=0.3", want: Tier{Name: "odd=name", Price: 0.3}},
		{in: "m=-1", wantErr: "not a number >= 0"},
		{in: "m=cheap", wantErr: "not a number >= 0"},
		{in: "=1", wantErr: "no model name"},
		{in: " ", wantErr: "empty"},
	}
	for _, tt := range tests {
		got, err := ParseTier(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseTier(%q) err = %v, want one saying %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseTier(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
	ts, err := ParseTierList("a=0.1, b=1,c=5")
	if err != nil || len(ts) != 3 || ts[1] != (Tier{Name: "b", Price: 1}) {
		t.Errorf("ParseTierList = %+v, %v", ts, err)
	}
	if err := ValidateTiers([]Tier{{Name: "a", Price: 2}, {Name: "b", Price: 1}}); err == nil || !strings.Contains(err.Error(), "cheapest first") {
		t.Errorf("falling prices: err = %v, want one saying cheapest first", err)
	}
	if err := ValidateTiers([]Tier{{Name: "a"}, {Name: "a"}}); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("a repeated tier: err = %v, want one saying twice", err)
	}
}

func TestTierPolicyChoose(t *testing.T) {
	prices := []float64{0.1, 1, 5}
	tests := []struct {
		name      string
		p         TierPolicy
		pred      []float64
		tier, rac int
	}{
		{"at lambda 0 the best predicted tier wins", TierPolicy{}, []float64{0.5, 0.8, 0.7}, 1, -1},
		{"ties go to the cheaper tier", TierPolicy{}, []float64{0.8, 0.8, 0.8}, 0, -1},
		{"a price-aware policy gives up a little quality", TierPolicy{Lambda: 0.1}, []float64{0.5, 0.8, 0.9}, 1, -1},
		{"a high lambda picks the cheapest", TierPolicy{Lambda: 1}, []float64{0.5, 0.8, 0.9}, 0, -1},
		{"a quality floor picks the cheapest within the margin", TierPolicy{Margin: 0.1}, []float64{0.7, 0.8, 0.85}, 1, -1},
		{"a wide floor takes the cheapest tier", TierPolicy{Margin: 0.2}, []float64{0.7, 0.8, 0.85}, 0, -1},
		{"a next tier up far behind is not raced", TierPolicy{Lambda: 0.1, Race: 0.05}, []float64{0.5, 0.78, 0.9}, 1, -1},
		{"a close next tier is raced", TierPolicy{Lambda: 0.1, Race: 0.05}, []float64{0.5, 0.8, 1.19}, 1, 2},
		{"the top tier has no partner", TierPolicy{Race: 1}, []float64{0.1, 0.2, 0.9}, 2, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tier, race := tt.p.Choose(tt.pred, prices)
			if tier != tt.tier || race != tt.rac {
				t.Errorf("Choose(%v) = (%d, %d), want (%d, %d)", tt.pred, tier, race, tt.tier, tt.rac)
			}
		})
	}
	if got := DecisionOf(0, -1); got != Fast {
		t.Errorf("DecisionOf(0,-1) = %s, want fast", got)
	}
	if got := DecisionOf(1, -1); got != Escalate {
		t.Errorf("DecisionOf(1,-1) = %s, want escalate", got)
	}
	if got := DecisionOf(1, 2); got != Speculate {
		t.Errorf("DecisionOf(1,2) = %s, want speculate", got)
	}
}

// testTierArtifact builds a three-tier router by hand: each tier's head
// rewards the words of its speciality, so "algebra" goes to maths,
// "poem" to chat and anything else to the cheap tier.
func testTierArtifact(tb testing.TB) *Artifact {
	tb.Helper()
	spec := features.DefaultSpec()
	a := &Artifact{
		FormatVersion: FormatVersion, Version: NewVersion(time.Unix(0, 0)), CreatedAt: time.Unix(0, 0).UTC(),
		Features: spec, Scorer: ScorerTiers,
		Tiers:      Tiers{Fast: "cheap", Strong: "maths"},
		TierList:   []Tier{{Name: "cheap", Price: 0.1}, {Name: "chat", Price: 1}, {Name: "maths", Price: 3}},
		TierPolicy: &TierPolicy{Lambda: 0.01},
	}
	ext, err := features.NewExtractor(spec)
	if err != nil {
		tb.Fatal(err)
	}
	word := func(w Weights, text string, v float64) {
		ext.Describe(features.Input{Prompt: text}, func(idx int32, _ float64, name string) {
			if strings.Contains(name, text[:4]) {
				w[idx] = v
			}
		})
	}
	for k := range a.TierList {
		h := TierHead{Weights: make(Weights, spec.Dim()), Bias: 0}
		switch k {
		case 1:
			word(h.Weights, "poem", 2)
		case 2:
			word(h.Weights, "algebra", 2)
		}
		a.TierHeads = append(a.TierHeads, h)
	}
	return a
}

func TestTierRouter(t *testing.T) {
	a := testTierArtifact(t)
	path := filepath.Join(t.TempDir(), "tiers.json")
	if err := a.Save(path); err != nil {
		t.Fatal(err)
	}
	b, err := Load(path)
	if err != nil {
		t.Fatalf("an N-tier artifact does not load back: %v", err)
	}
	r, err := NewTierRouter(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ prompt, want string }{
		{"write a poem about the sea", "chat"},
		{"solve this algebra problem", "maths"},
		{"what is the capital of France", "cheap"},
	} {
		got := r.Route(features.Input{Prompt: tt.prompt})
		if got.Model != tt.want || got.Race != -1 || !math.IsNaN(got.PHard) || len(got.Predicted) != 3 {
			t.Errorf("Route(%q) = %+v, want %s alone", tt.prompt, got, tt.want)
		}
	}
	raced := r.RouteWith(features.Input{Prompt: "write a poem about the sea"}, TierPolicy{Lambda: 0.01, Race: 0.5})
	if raced.Tier != 1 || raced.Race != 2 || raced.RaceModel != "maths" || raced.Decision != Speculate {
		t.Errorf("with a race band: %+v, want chat raced with maths", raced)
	}
	t.Run("a two-tier API refuses an N-tier artifact", func(t *testing.T) {
		_, err := NewRouter(b)
		if !errors.Is(err, ErrMultiTier) {
			t.Fatalf("NewRouter err = %v, want ErrMultiTier", err)
		}
		// Wrapped mid-sentence, so in lower case (staticcheck ST1005).
		if got, want := err.Error(), "new router: an N-tier router: the artifact routes among"; !strings.HasPrefix(got, want) {
			t.Errorf("NewRouter err = %q, want it to start %q", got, want)
		}
	})
	t.Run("an N-tier artifact with a missing head does not load", func(t *testing.T) {
		c := *a
		c.TierHeads = c.TierHeads[:2]
		if _, err := c.Marshal(); err == nil || !strings.Contains(err.Error(), "one per tier") {
			t.Errorf("err = %v, want one saying one head per tier", err)
		}
	})
}

func TestTierRouterServesTwoTierArtifacts(t *testing.T) {
	a, ex := testArtifact(t)
	two, err := NewRouter(a)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewTierRouter(a)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Names(); len(got) != 2 || got[0] != a.Tiers.Fast || got[1] != a.Tiers.Strong {
		t.Fatalf("Names = %v", got)
	}
	seen := map[Decision]bool{}
	for _, e := range ex[:300] {
		want := two.Route(e.Input)
		got := r.Route(e.Input)
		seen[got.Decision] = true
		wantTier, wantRace := map[Decision][2]int{Fast: {0, -1}, Speculate: {0, 1}, Escalate: {1, -1}}[want.Decision][0], map[Decision][2]int{Fast: {0, -1}, Speculate: {0, 1}, Escalate: {1, -1}}[want.Decision][1]
		if got.Decision != want.Decision || got.PHard != want.PHard || got.Tier != wantTier || got.Race != wantRace {
			t.Fatalf("%s: TierRouter says %+v, Router %+v", e.ID, got, want)
		}
	}
	if len(seen) < 2 {
		t.Errorf("only %v decisions seen; the comparison needs more than one", seen)
	}
}

// tierExamples is a small three-tier log: "cheap" answers the chit-chat,
// "chat" the poems and "maths" the algebra; each other tier mostly fails
// there. Scores are drawn with a fixed seed.
func tierExamples(n int) []Example {
	kinds := []struct {
		text string
		p    [3]float64 // each tier's chance of a correct answer
	}{
		{"tell me something nice about the weather today", [3]float64{0.8, 0.6, 0.7}},
		{"write a short poem about the sea and the moon", [3]float64{0.1, 0.9, 0.3}},
		{"solve this algebra equation for x quickly", [3]float64{0.1, 0.2, 0.9}},
	}
	var ex []Example
	state := uint64(7)
	rnd := func() float64 {
		state = state*6364136223846793005 + 1442695040888963407
		return float64(state>>11) / (1 << 53)
	}
	for i := range n {
		k := kinds[i%3]
		sc := make([]float64, 3)
		for t := range sc {
			sc[t] = b2f(rnd() < k.p[t])
		}
		// The cheap tier logs a confidence that says, noisily, whether it
		// was right; the others log none.
		conf := []float64{sc[0] + rnd() - 0.5, math.NaN(), math.NaN()}
		ex = append(ex, Example{ID: fmt.Sprintf("r%d", i), Input: features.Input{Prompt: fmt.Sprintf("%s (case %d)", k.text, i)}, Scores: sc, Confidences: conf, Fold: (i / 3) % 3})
	}
	return ex
}

func TestTrainTiers(t *testing.T) {
	ex := tierExamples(600)
	d, err := NewDesign(features.Spec{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range ex {
		d.Add(&ex[i])
	}
	tiers := []Tier{{Name: "cheap", Price: 0.1}, {Name: "chat", Price: 1}, {Name: "maths", Price: 3}}
	a, rep, err := TrainTiers(d, TierTrainOptions{Tiers: tiers, Folds: 3, Now: time.Unix(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.OOF) != 3*len(ex) || len(rep.Routed) != len(DefaultL2Grid) {
		t.Fatalf("report: %d out-of-fold predictions, %d routed utilities", len(rep.OOF), len(rep.Routed))
	}
	// The expected figures: the router should find each kind's tier, so
	// its out-of-fold quality nears the kinds' best chances (0.8, 0.9,
	// 0.9: mean 0.867), well above the best single tier (chat, 0.63).
	if q, bs := a.Metrics["quality"], a.Metrics["best_single"]; q < bs+0.1 {
		t.Errorf("out-of-fold routed quality %.3f, best single tier %.3f; want the router 0.1 or more above", q, bs)
	}
	if a.TierList[0].ConfidenceCalibration == nil || a.TierList[1].ConfidenceCalibration != nil {
		t.Errorf("confidence gates: cheap %v, chat %v; want one for cheap only, the tier that logged confidence", a.TierList[0].ConfidenceCalibration, a.TierList[1].ConfidenceCalibration)
	}
	r, err := NewTierRouter(a)
	if err != nil {
		t.Fatal(err)
	}
	if hi, _ := r.CalibratedConfidence(0, 1.4); hi < 0.8 {
		t.Errorf("calibrated confidence of a sure cheap answer %.2f, want >= 0.8", hi)
	}
	for _, tt := range []struct{ prompt, want string }{
		{"write a short poem about the sea and the moon (case 9001)", "chat"},
		{"solve this algebra equation for x quickly (case 9002)", "maths"},
		{"tell me something nice about the weather today (case 9003)", "cheap"},
	} {
		if got := r.Route(features.Input{Prompt: tt.prompt}); got.Model != tt.want {
			t.Errorf("Route(%q) = %s (predicted %.2f), want %s", tt.prompt, got.Model, got.Predicted, tt.want)
		}
	}
	// With a high price on quality, the cheap tier takes everything.
	if got := r.RouteWith(features.Input{Prompt: "solve this algebra equation for x quickly"}, TierPolicy{Lambda: 10}); got.Model != "cheap" {
		t.Errorf("at λ=10 the algebra prompt goes to %s, want cheap", got.Model)
	}
	t.Run("a design without tier scores is refused", func(t *testing.T) {
		d2, _ := NewDesign(features.Spec{})
		e := Example{ID: "x", Input: features.Input{Prompt: "hi"}, Fast: 1, Strong: 0}
		d2.Add(&e)
		if _, _, err := TrainTiers(d2, TierTrainOptions{Tiers: tiers}); err == nil || !strings.Contains(err.Error(), "tier scores") {
			t.Errorf("err = %v, want one about tier scores", err)
		}
	})
}

// A served request's record holds the outcome of the tier that ran
// only. TrainTiers fits each head on the rows with its tier's score:
// with tier 1's score gone from half the rows, head 1 changes, heads 0
// and 2 are the same fits bit for bit (the same rows, the same column
// scaling, one L2), and no row is skipped.
func TestTrainTiersHeadOwnRows(t *testing.T) {
	tiers := []Tier{{Name: "cheap", Price: 0.1}, {Name: "chat", Price: 1}, {Name: "maths", Price: 3}}
	train := func(drop func(i int) bool) (*Artifact, *TierTrainReport) {
		t.Helper()
		ex := tierExamples(600)
		d, err := NewDesign(features.Spec{})
		if err != nil {
			t.Fatal(err)
		}
		for i := range ex {
			if drop(i) {
				ex[i].Scores[1] = math.NaN()
			}
			d.Add(&ex[i])
		}
		a, rep, err := TrainTiers(d, TierTrainOptions{Tiers: tiers, Folds: 3, L2: 0.01, Now: time.Unix(0, 0)})
		if err != nil {
			t.Fatal(err)
		}
		return a, rep
	}
	full, frep := train(func(int) bool { return false })
	part, prep := train(func(i int) bool { return i%2 == 0 })
	for _, k := range []int{0, 2} {
		if !slices.Equal(full.TierHeads[k].Weights, part.TierHeads[k].Weights) || full.TierHeads[k].Bias != part.TierHeads[k].Bias {
			t.Errorf("head %d (%s) changed when only tier 1's scores went missing", k, tiers[k].Name)
		}
	}
	if slices.Equal(full.TierHeads[1].Weights, part.TierHeads[1].Weights) {
		t.Errorf("head 1 (chat) is the same with half its scores gone; it should be fitted on its own rows")
	}
	if part.Training.Records != 600 {
		t.Errorf("trained on %d records, want all 600 (none skipped)", part.Training.Records)
	}
	if !slices.Equal(prep.Rows, []int{600, 300, 600}) || prep.Complete != 300 {
		t.Errorf("rows per head %v, complete %d; want [600 300 600], 300", prep.Rows, prep.Complete)
	}
	if !slices.Equal(frep.Rows, []int{600, 600, 600}) || frep.Complete != 600 || full.Training.HeadRecords != nil {
		t.Errorf("complete log: rows %v, complete %d, head_records %v; want 600s and no head_records", frep.Rows, frep.Complete, full.Training.HeadRecords)
	}
	want := map[string]int{"cheap": 600, "chat": 300, "maths": 600, "complete": 300}
	if !maps.Equal(part.Training.HeadRecords, want) {
		t.Errorf("head_records %v, want %v", part.Training.HeadRecords, want)
	}
	for k, v := range part.Metrics {
		if math.IsNaN(v) {
			t.Errorf("metric %s is NaN: the incomplete rows leaked into the figures", k)
		}
	}
	// Still a router: the poem goes to chat on half of chat's scores.
	r, err := NewTierRouter(part)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Route(features.Input{Prompt: "write a short poem about the sea and the moon (case 9001)"}); got.Model != "chat" {
		t.Errorf("poem routed to %s, want chat", got.Model)
	}
}

func TestTrainTiersNeedsCompleteRows(t *testing.T) {
	tiers := []Tier{{Name: "cheap", Price: 0.1}, {Name: "chat", Price: 1}, {Name: "maths", Price: 3}}
	for _, tt := range []struct {
		name string
		drop func(i, k int) bool
		want string
	}{
		{"no complete row", func(i, k int) bool { return k == i%3 }, "no example has every tier's score"},
		{"a tier never scored", func(i, k int) bool { return k == 2 }, "no example has a score for maths"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ex := tierExamples(90)
			d, _ := NewDesign(features.Spec{})
			for i := range ex {
				for k := range ex[i].Scores {
					if tt.drop(i, k) {
						ex[i].Scores[k] = math.NaN()
					}
				}
				d.Add(&ex[i])
			}
			if _, _, err := TrainTiers(d, TierTrainOptions{Tiers: tiers, Folds: 3}); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one saying %q", err, tt.want)
			}
		})
	}
}

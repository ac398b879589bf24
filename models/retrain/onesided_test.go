package retrain

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/triage-router/triage/classifier"
	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/datasets/synth"
	"github.com/triage-router/triage/internal/racetest"
	"github.com/triage-router/triage/models"
)

func f64(x float64) *float64 { return &x }

func TestTierPropensities(t *testing.T) {
	pol := models.Policy{SpeculateAbove: 0.5, EscalateAbove: 0.7}
	tests := []struct {
		d                datasets.Decision
		wantFast, wantSt float64
	}{
		{datasets.Decision{Kind: "fast", Propensity: 0.98}, 1, 0.02},
		{datasets.Decision{Kind: "escalate", Propensity: 0.98}, 0.02, 1},
		{datasets.Decision{Kind: "speculate", Propensity: 1}, 1, 1},
		// Explored: the tier the policy would have run is sure.
		{datasets.Decision{Kind: "speculate", Propensity: 0.02, Explored: true, PHard: 0.9}, 0.02, 1},
		{datasets.Decision{Kind: "speculate", Propensity: 0.02, Explored: true, PHard: 0.1}, 1, 0.02},
		// The record's own policy wins over p_hard against the champion's
		// thresholds: a server with other thresholds (its config's, or an
		// earlier champion's) served these.
		{datasets.Decision{Kind: "speculate", Propensity: 0.02, Explored: true, PHard: 0.6, Policy: "escalate"}, 0.02, 1},
		{datasets.Decision{Kind: "speculate", Propensity: 0.02, Explored: true, PHard: 0.9, Policy: "fast"}, 1, 0.02},
		// ε = 0: the other tier cannot have run; no weight.
		{datasets.Decision{Kind: "fast", Propensity: 1}, 1, 1},
	}
	for _, tt := range tests {
		f, s := tierPropensities(&tt.d, pol)
		if math.Abs(f-tt.wantFast) > 1e-12 || math.Abs(s-tt.wantSt) > 1e-12 {
			t.Errorf("%+v: P(fast ran) %v, P(strong ran) %v; want %v, %v", tt.d, f, s, tt.wantFast, tt.wantSt)
		}
	}
}

func TestOneSidedExamples(t *testing.T) {
	tiers := models.Tiers{Fast: "f", Strong: "s"}
	cal := classifier.Calibration{Method: classifier.CalibPlatt, A: 1, B: 0}
	recs := []datasets.Record{
		{ID: "fast-only", Prompt: "a", Decision: &datasets.Decision{Kind: "fast", Propensity: 0.9},
			Outcomes: map[string]datasets.Outcome{"f": {Score: f64(1)}}},
		{ID: "strong-only", Prompt: "b", Decision: &datasets.Decision{Kind: "escalate", Propensity: 0.9},
			Outcomes: map[string]datasets.Outcome{"s": {Score: f64(0)}}},
		{ID: "confidence-only", Prompt: "c", Decision: &datasets.Decision{Kind: "fast", Propensity: 0.9},
			Outcomes: map[string]datasets.Outcome{"f": {Confidence: f64(0)}}},
		{ID: "scored-and-confident", Prompt: "d", Decision: &datasets.Decision{Kind: "fast", Propensity: 0.9},
			Outcomes: map[string]datasets.Outcome{"f": {Score: f64(0), Confidence: f64(3)}}},
		{ID: "nothing", Prompt: "e", Decision: &datasets.Decision{Kind: "fast", Propensity: 0.9}},
		// A Responses API follow-up the proxy pinned to the tier of the
		// response it continues: that tier ran because of an earlier
		// turn, so its one-sided outcome trains no head; scored on both
		// tiers it is paired like any other.
		{ID: "pinned", Prompt: "f", Decision: &datasets.Decision{Kind: "escalate", Pinned: true},
			Outcomes: map[string]datasets.Outcome{"s": {Score: f64(1)}}},
	}
	t.Run("paired only by default", func(t *testing.T) {
		ls, _, err := LabelledExamples(recs, ExampleOptions{Tiers: tiers})
		if err != nil || len(ls) != 0 {
			t.Fatalf("%d examples, err %v; want none", len(ls), err)
		}
	})
	ls, st, err := LabelledExamples(recs, ExampleOptions{Tiers: tiers, OneSided: true, SoftFast: &cal, Heads: HeadIPW})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Labelled{}
	for _, l := range ls {
		got[l.ID] = l
	}
	if len(ls) != 4 || st.FastOnly != 2 || st.StrongOnly != 1 || st.SoftFast != 1 || st.PinnedOneSided != 1 {
		t.Fatalf("%d examples, stats %+v; want 4: fast-only, scored-and-confident, strong-only, confidence-only (and the pinned one left out)", len(ls), st)
	}
	if l := got["fast-only"]; l.Fast != 1 || !math.IsNaN(l.Strong) || l.Paired || l.FastSoft {
		t.Errorf("fast-only: %+v", l)
	}
	if l := got["strong-only"]; !math.IsNaN(l.Fast) || l.Strong != 0 || math.Abs(l.FastWeight-10) > 1e-9 || l.StrongWeight != 1 {
		t.Errorf("strong-only: fast %v strong %v weights %v/%v; want NaN, 0, fast weight 1/0.1, strong 1", l.Fast, l.Strong, l.FastWeight, l.StrongWeight)
	}
	if l := got["confidence-only"]; !l.FastSoft || math.Abs(l.Fast-0.5) > 1e-9 {
		t.Errorf("confidence-only: soft %v fast %v; want the calibrated confidence 0.5 as a soft target", l.FastSoft, l.Fast)
	}
	if l := got["scored-and-confident"]; l.FastSoft || l.Fast != 0 {
		t.Errorf("a posted score must win over the confidence: soft %v fast %v", l.FastSoft, l.Fast)
	}
}

// TestHeadWeightsDirection is the documented direction of the per-tier
// heads' inverse propensity weights (docs/loop.md §4): the strong tier is
// observed on every escalated (hard) request but only on the explored
// share of the fast (easy) ones, so an unweighted head that cannot tell
// the two apart (a heavily penalised one, which is all intercept) learns
// the hard requests' strong accuracy; weighted by 1/P(strong ran) its
// mean over all traffic moves to the traffic's true strong accuracy.
func TestHeadWeightsDirection(t *testing.T) {
	const eps = 0.1
	r := rand.New(rand.NewPCG(3, 4))
	var recs []datasets.Record
	var all []datasets.Record
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	trueStrong := 0.0
	for i := range 1200 {
		hard := i%2 == 1
		pStrong, pFast := 0.95, 0.9
		kind, ph := "fast", 0.1
		if hard {
			pStrong, pFast, kind, ph = 0.45, 0.2, "escalate", 0.9
		}
		fs, ss := b2f(r.Float64() < pFast), b2f(r.Float64() < pStrong)
		trueStrong += ss
		d := &datasets.Decision{Kind: kind, PHard: ph, Propensity: 1 - eps}
		if r.Float64() < eps {
			d = &datasets.Decision{Kind: "speculate", PHard: ph, Propensity: eps, Explored: true}
		}
		prompt := fmt.Sprintf("easy question number %d about the weather", i)
		if hard {
			prompt = fmt.Sprintf("hard proof number %d about prime gaps", i)
		}
		full := datasets.Record{ID: fmt.Sprint(i), Prompt: prompt, TS: t0.Add(time.Duration(i) * time.Second), Decision: d,
			Outcomes: map[string]datasets.Outcome{synth.FastModel: {Score: f64(fs)}, synth.StrongModel: {Score: f64(ss)}}}
		all = append(all, full)
		recs = append(recs, observedOnly(full))
	}
	trueStrong /= float64(len(recs))
	pol := models.Policy{SpeculateAbove: 0.5, EscalateAbove: 0.5}
	meanStrong := func(est HeadEstimator) float64 {
		ls, _, err := LabelledExamples(recs, ExampleOptions{Tiers: models.Tiers{Fast: synth.FastModel, Strong: synth.StrongModel}, OneSided: true, Heads: est, Policy: pol})
		if err != nil {
			t.Fatal(err)
		}
		ex := Examples(ls)
		for i := range ex {
			ex[i].Fold, ex[i].Weight = i%3, 1
		}
		a, _, err := models.Train(ex, nil, models.TrainOptions{
			Tiers: models.Tiers{Fast: synth.FastModel, Strong: synth.StrongModel}, Label: datasets.Label{}.Of, LabelName: "strong-wins",
			Scorer: models.ScorerPerTier, Features: smallSpec(), Folds: 3, L2: 1e3, Now: t0, RouteWithoutSignal: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		rt, err := models.NewRouter(a)
		if err != nil {
			t.Fatal(err)
		}
		var m float64
		for i := range all {
			_, s, ok := rt.TierScores(RecordInput(&all[i]))
			if !ok {
				t.Fatal("no tier heads")
			}
			m += s
		}
		return m / float64(len(all))
	}
	unw, ipw := meanStrong(HeadUnweighted), meanStrong(HeadIPW)
	t.Logf("strong head's mean over traffic: unweighted %.3f, ipw %.3f, truth %.3f", unw, ipw, trueStrong)
	if !(ipw > unw+0.1) {
		t.Errorf("ipw %.3f is not well above unweighted %.3f: the weights should move the strong head up towards the easy requests it rarely sees", ipw, unw)
	}
	if math.Abs(ipw-trueStrong) > 0.06 || math.Abs(unw-trueStrong) < 0.1 {
		t.Errorf("ipw %.3f, unweighted %.3f, truth %.3f: want ipw near the truth and unweighted off it", ipw, unw, trueStrong)
	}
}

// TestGateJudgesUnseenRecords: the gate's slice never holds a record the
// champion was trained on, whatever their times, and with nothing else
// to judge on retrain refuses with NothingToJudgeError.
func TestGateJudgesUnseenRecords(t *testing.T) {
	racetest.SkipSlow(t)
	recs, _ := synth.Generate(synth.Options{N: 2400, Seed: 5})
	const share = 0.25
	var champRecs []datasets.Record
	for i := range recs[:1200] {
		if !datasets.InHoldout(recs[i].ID, 1, share) {
			champRecs = append(champRecs, recs[i])
		}
	}
	champion := trainChampion(t, champRecs)
	champion.Training.Sources, champion.Training.Seed, champion.Training.HoldoutShare = []string{"base.jsonl"}, 1, share
	files := map[string][]datasets.Record{"base.jsonl": recs[:1200], "export.jsonl": recs[1200:]}
	// The base log is the newest here, so a split by time alone would
	// judge on the champion's own training records.
	base := recs[:1200]
	for i := range base {
		base[i].TS = base[i].TS.Add(24 * time.Hour)
	}
	merged, _ := MergeRecords(recs[1200:], base)
	trained, matched := ChampionTrainedOn(champion, merged, files, nil)
	if len(matched) != 1 || matched[0] != "base.jsonl" {
		t.Fatalf("matched %v, want the champion's source", matched)
	}
	opts := Options{Folds: 3, ChampionTrained: trained, Compare: CompareOptions{Margin: DefaultMargin, Bootstrap: BootstrapOptions{Resamples: 100}}}
	res, err := Run(champion, merged, opts)
	if err != nil {
		t.Fatal(err)
	}
	ls, _, _ := LabelledExamples(merged, ExampleOptions{Tiers: champion.Tiers})
	_, held, _ := splitJudged(ls, DefaultHoldout, trained, nil)
	naive := 0
	_, heldByTime, _ := splitJudged(ls, DefaultHoldout, nil, nil)
	for _, h := range heldByTime {
		if trained(h.ID) {
			naive++
		}
	}
	if naive == 0 {
		t.Fatal("the newest records by time hold none of the champion's: the case does not test the rule")
	}
	for _, h := range held {
		if trained(h.ID) {
			t.Fatalf("held-out record %s was in the champion's training set", h.ID)
		}
	}
	if res.ChampionTrained == 0 || res.Comparison.N != len(held) {
		t.Errorf("champion-trained %d, compared on %d (want >0 and %d)", res.ChampionTrained, res.Comparison.N, len(held))
	}
	t.Logf("judged on %d records, %d champion-trained kept out; %s", res.Comparison.N, res.ChampionTrained, res.Comparison.Verdict)

	// Only the champion's own log: nothing to judge, a refusal.
	_, err = Run(champion, champRecs, Options{Folds: 3, ChampionTrained: func(string) bool { return true }})
	var nj *NothingToJudgeError
	if err == nil || !strings.Contains(err.Error(), "neither router was trained on") || !asNothing(err, &nj) {
		t.Errorf("err %v, want a NothingToJudgeError", err)
	}
}

func asNothing(err error, target **NothingToJudgeError) bool {
	e, ok := err.(*NothingToJudgeError)
	if ok {
		*target = e
	}
	return ok
}

// TestScaledL2: a retrain keeps the champion's prior, so each head's
// penalty shrinks with the rows it fits relative to the champion's.
func TestScaledL2(t *testing.T) {
	champ := &models.Artifact{Scorer: models.ScorerPerTier, Training: models.Fingerprint{Records: 100, L2: 0.01, FastL2: 0.1}}
	var train []Labelled
	for i := range 400 {
		l := Labelled{Example: models.Example{Fast: 1, Strong: math.NaN()}}
		if i < 200 {
			l.Strong, l.Paired = 0, true
		}
		train = append(train, l)
	}
	l2, fast := scaledL2(champ, train)
	if math.Abs(l2-0.005) > 1e-12 || math.Abs(fast-0.025) > 1e-12 {
		t.Errorf("l2 %v fast %v, want 0.01×100/200 and 0.1×100/400", l2, fast)
	}
	// A champion that fitted one-sided rows counts each head's own.
	champ.Training.HeadRecords = map[string]int{"fast": 200, "strong": 50, "paired": 50}
	l2, fast = scaledL2(champ, train)
	if math.Abs(l2-0.0025) > 1e-12 || math.Abs(fast-0.05) > 1e-12 {
		t.Errorf("l2 %v fast %v, want 0.01×50/200 and 0.1×200/400", l2, fast)
	}
}

// observedOnly is full with only the outcomes of the tiers its decision
// ran: the fast tier's on a fast decision, the strong tier's on an
// escalation, both on an explored request.
func observedOnly(full datasets.Record) datasets.Record {
	d := full.Decision
	rec := full
	rec.Outcomes = map[string]datasets.Outcome{}
	if d.Kind == "fast" || d.Explored {
		rec.Outcomes[synth.FastModel] = full.Outcomes[synth.FastModel]
	}
	if d.Kind == "escalate" || d.Explored {
		rec.Outcomes[synth.StrongModel] = full.Outcomes[synth.StrongModel]
	}
	return rec
}

// TestGainChampionChallengerIsPerTier: a gain model learns from paired
// records only, so a gain champion's challenger is trained with the
// per-tier scorer when the feedback has one-sided records, says so, and
// its heads fit those records; KeepScorer keeps gain.
func TestGainChampionChallengerIsPerTier(t *testing.T) {
	racetest.SkipSlow(t)
	recs, _ := synth.Generate(synth.Options{N: 1800, Seed: 31})
	base := recs[:600]
	champion, _, err := models.Train(synthExamples(t, base), nil, models.TrainOptions{
		Tiers: models.Tiers{Fast: synth.FastModel, Strong: synth.StrongModel}, Label: datasets.Label{}.Of, LabelName: "strong-wins",
		Scorer: models.ScorerGain, Features: smallSpec(), Folds: 3, L2: 1e-2, Now: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC),
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := models.NewRouter(champion)
	if err != nil {
		t.Fatal(err)
	}
	// The traffic as a server records it: the champion's decision, one
	// tier's outcome, both on the explored tenth.
	const eps = 0.1
	all := append([]datasets.Record(nil), base...)
	paired := len(base)
	for i, rec := range recs[600:] {
		ph := r.Route(RecordInput(&rec)).PHard
		kind := "fast"
		if ph > 0.5 {
			kind = "escalate"
		}
		rec.Decision = &datasets.Decision{Kind: kind, PHard: ph, Propensity: 1 - eps}
		if i%10 == 0 {
			rec.Decision = &datasets.Decision{Kind: "speculate", PHard: ph, Propensity: eps, Explored: true}
			paired++
		}
		all = append(all, observedOnly(rec))
	}
	opts := Options{Folds: 3, Compare: CompareOptions{Margin: DefaultMargin, Bootstrap: BootstrapOptions{Resamples: 50}}}
	res, err := Run(champion, all, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Challenger.ScorerKind(); got != models.ScorerPerTier || !strings.Contains(res.ScorerChange, "per-tier") {
		t.Fatalf("challenger scorer %q, change %q: want per-tier, and why", got, res.ScorerChange)
	}
	hr := res.Challenger.Training.HeadRecords
	if !(hr["fast"] > hr["paired"] && hr["strong"] > hr["paired"] && hr["paired"] < paired) {
		t.Errorf("head records %v: want each head to fit more than the %d paired records", hr, hr["paired"])
	}
	t.Logf("%s; head records %v; %s", res.ScorerChange, hr, res.Comparison.Verdict)

	opts.KeepScorer = true
	res, err = Run(champion, all, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Challenger.ScorerKind(); got != models.ScorerGain || res.ScorerChange != "" {
		t.Errorf("with KeepScorer: challenger scorer %q, change %q; want gain and none", got, res.ScorerChange)
	}
}

// A router made by retrain said it had trained on every record before
// its held-out period; but retrain also trains on records after that
// time (one-sided traffic, paired records the previous champion trained
// on, ties broken by id), and a later gate judged on them. Every record
// it trained on now counts as trained, and new traffic does not.
func TestRetrainedChampionCountsEveryTrainingRecord(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var ex []Labelled
	add := func(id string, h int, paired bool) {
		ex = append(ex, Labelled{Example: models.Example{ID: id, TS: t0.Add(time.Duration(h) * time.Hour)}, Paired: paired})
	}
	for i := range 10 {
		add(fmt.Sprintf("r%02d", i), i, true)
	}
	add("a-tie", 20, true)
	add("b-tie", 20, true)
	add("one-sided", 21, false)
	prevChampion := func(id string) bool { return id == "r07" || id == "r09" }
	train, held, _ := splitJudged(ex, 0.3, prevChampion, nil)
	if len(held) == 0 {
		t.Fatal("nothing held out")
	}
	var a models.Artifact
	a.Training.HeldSince, a.Training.TrainedThrough = HeldSince(held), TrainedThrough(train)
	recs := make([]datasets.Record, 0, len(ex)+1)
	for _, e := range ex {
		recs = append(recs, datasets.Record{ID: e.ID, TS: e.TS})
	}
	recs = append(recs, datasets.Record{ID: "new-traffic", TS: t0.Add(30 * time.Hour)})
	trained, _ := ChampionTrainedOn(&a, recs, nil, nil)
	for _, e := range train {
		if !trained(e.ID) {
			t.Errorf("%s (%v) trained the router but counts as unseen (held since %v)", e.ID, e.TS, a.Training.HeldSince)
		}
	}
	if trained("new-traffic") {
		t.Error("traffic newer than every training record counts as trained")
	}
	// A router made before trained_through was recorded keeps the old
	// rule: every record before its held-out period.
	old := models.Artifact{}
	old.Training.HeldSince = a.Training.HeldSince
	if trainedOld, _ := ChampionTrainedOn(&old, recs, nil, nil); !trainedOld("r00") || trainedOld("new-traffic") {
		t.Error("an artifact with held_since only: r00 should count as trained and new traffic not")
	}
}

// The held-out share of a few timestamped records can round to none
// while hundreds of unseen untimed ones exist: the refusal must say so,
// not blame the champion.
func TestNothingToJudgeSaysWhy(t *testing.T) {
	e := &NothingToJudgeError{Paired: 502, ChampionTrained: 0, Dated: 2, Holdout: 0.2}
	if msg := e.Error(); !strings.Contains(msg, "rounds to none") || strings.Contains(msg, "train the champion with --holdout") {
		t.Errorf("message %q", msg)
	}
	e = &NothingToJudgeError{Paired: 50, ChampionTrained: 50, Dated: 50, Holdout: 0.2}
	if msg := e.Error(); !strings.Contains(msg, "the champion was trained on 50 of the 50") {
		t.Errorf("message %q", msg)
	}
	// A champion made by retrain counts every record up to its
	// trained_through as its own, the slice that judged it included:
	// "trained on 2000 of the 2000" was untrue of the README's loop run
	// twice, and "train the champion with --holdout" cannot be done.
	e = &NothingToJudgeError{Paired: 2000, ChampionTrained: 2000, Dated: 2000, Holdout: 0.2, TrainedThrough: time.Date(2026, 12, 6, 6, 43, 23, 0, time.UTC)}
	if msg := e.Error(); strings.Contains(msg, "was trained on 2000") || strings.Contains(msg, "--holdout") ||
		!strings.Contains(msg, "every record up to the newest it trained on (2026-12-06T06:43:23Z) counts as its own, 2000 of the 2000 here") {
		t.Errorf("message %q", msg)
	}
}

// A retrained champion trained on every untimed record and every record
// up to trained_through. The merged record takes the time of its decision,
// so a base record it trained on whose id comes back in later traffic, or
// a decision it trained on that a second server logged again later, looked
// new and judged the champion on a record it had fitted.
func TestRetrainedChampionCountsEarliestCopy(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	paired := map[string]datasets.Outcome{"f": {Score: f64(1)}, "s": {Score: f64(0)}}
	base := []datasets.Record{{ID: "base-id", Prompt: "p", Outcomes: paired}}
	serverA := []datasets.Record{{ID: "twice", Prompt: "q", TS: t0.Add(-time.Hour), Decision: &datasets.Decision{Kind: "speculate", Propensity: 1}, Outcomes: paired}}
	later := []datasets.Record{
		{ID: "base-id", Prompt: "p", TS: t0.Add(48 * time.Hour), Decision: &datasets.Decision{Kind: "fast", Propensity: 0.98}, Outcomes: map[string]datasets.Outcome{"f": {Score: f64(1)}}},
		{ID: "twice", Prompt: "q", TS: t0.Add(47 * time.Hour), Decision: &datasets.Decision{Kind: "fast", Propensity: 0.98}},
		{ID: "new", Prompt: "r", TS: t0.Add(49 * time.Hour), Decision: &datasets.Decision{Kind: "speculate", Propensity: 1}, Outcomes: paired},
	}
	merged, _ := MergeRecords(base, serverA, later)
	var a models.Artifact
	a.Training.TrainedThrough = t0
	trained, _ := ChampionTrainedOn(&a, merged, map[string][]datasets.Record{"base.jsonl": base, "a.jsonl": serverA, "b.jsonl": later}, []string{"base.jsonl"})
	for _, id := range []string{"base-id", "twice"} {
		if !trained(id) {
			t.Errorf("%s: the champion trained on an earlier copy, but it counts as unseen", id)
		}
	}
	if trained("new") {
		t.Error("traffic newer than every training record counts as trained")
	}
}

// A champion trained with --holdout kept a share of its log out to be
// judged on. With a few timestamped explored records in the feedback, the
// slice was only the newest share of those (here 4 of 20), and the
// champion's held-out base records, which neither router had seen,
// trained the challenger instead: the gate judged on a handful of records
// while dozens it could judge on were there, and the warning's advice
// ("a champion trained with --holdout, whose held-out records then judge
// too") did nothing. They now judge, besides the newest.
func TestChampionHeldOutRecordsJudge(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tiers := models.Tiers{Fast: "f", Strong: "s"}
	paired := func(i int) map[string]datasets.Outcome {
		return map[string]datasets.Outcome{"f": {Score: f64(float64(i % 2))}, "s": {Score: f64(1)}}
	}
	var base, export []datasets.Record
	for i := range 200 {
		base = append(base, datasets.Record{ID: fmt.Sprintf("base-%03d", i), Prompt: "p", Outcomes: paired(i)})
	}
	for i := range 20 {
		export = append(export, datasets.Record{ID: fmt.Sprintf("req-%03d", i), Prompt: "q", TS: t0.Add(time.Duration(i) * time.Minute),
			Decision: &datasets.Decision{Kind: "speculate", Propensity: 0.02, Explored: true, Policy: "fast"}, Outcomes: paired(i)})
	}
	var champion models.Artifact
	champion.Tiers = tiers
	champion.Training.Sources, champion.Training.Seed, champion.Training.HoldoutShare = []string{"base.jsonl"}, 1, 0.2
	files := map[string][]datasets.Record{"base.jsonl": base, "export.jsonl": export}
	merged, _ := MergeRecords(base, export)
	trained, matched := ChampionTrainedOn(&champion, merged, files, []string{"base.jsonl"})
	heldOut := ChampionHeldOut(&champion, files, matched)
	unseen := 0
	for i := range base {
		if datasets.InHoldout(base[i].ID, 1, 0.2) {
			unseen++
		}
	}
	ls, _, err := LabelledExamples(merged, ExampleOptions{Tiers: tiers})
	if err != nil {
		t.Fatal(err)
	}
	train, held, excluded := splitJudged(ls, DefaultHoldout, trained, heldOut)
	if want := unseen + 4; len(held) != want || excluded != len(base)-unseen {
		t.Errorf("held %d, excluded %d; want the %d base records the champion held out plus the 4 newest explored, and %d excluded", len(held), excluded, unseen, len(base)-unseen)
	}
	for _, r := range train {
		if heldOut(r.ID) {
			t.Fatalf("%s, held out by the champion, trains the challenger", r.ID)
		}
	}
	// A router made by retrain counts its records by time: nothing more.
	var retrained models.Artifact
	retrained.Training = champion.Training
	retrained.Training.TrainedThrough = t0
	if ChampionHeldOut(&retrained, files, matched) != nil {
		t.Error("a router made by retrain has no id-hash holdout to judge on")
	}
}

// TestFewHeldOutWarns: the README's proxy with scored traffic, retrained
// a second time on the same export, judged on one record and promoted
// the challenger ("better by 0.0000", every resample the same) with no
// warning. A held-out slice
// under fewHeld records now gets one, saying the gate can hardly refuse.
func TestFewHeldOutWarns(t *testing.T) {
	for _, c := range []struct {
		name string
		held map[ExampleKind]int
		want bool
	}{
		{"one routed record", map[ExampleKind]int{KindPolicy: 1}, true},
		{"a few dozen explored records", map[ExampleKind]int{KindExplored: 30, KindPolicy: 5}, true},
		{"the README's 404 base records", map[ExampleKind]int{KindBase: 404}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := false
			for _, w := range dataWarnings(ExampleStats{}, c.held, false) {
				if strings.Contains(w, "too few to show a challenger worse") {
					got = true
				}
			}
			if got != c.want {
				t.Errorf("warned %v, want %v (held %v)", got, c.want, c.held)
			}
		})
	}
}

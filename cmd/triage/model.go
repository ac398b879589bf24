package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/triage-router/triage/models"
)

func init() {
	registerGroup("model", "router artifacts: model show")
	register("model show", "print a router artifact for a person", runModelShow)
}

func runModelShow(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "model show", "FILE [--json]  (or --model FILE)")
	asJSON := fs.Bool("json", false, "print the artifact's header as JSON: each head's weights left out, with their count (dim) and how many are set (non_zero)")
	model := fs.String("model", "", "the artifact file, as the other commands take it (the same as giving FILE)")
	// The file is positional, before or after the flags, or --model FILE
	// as everywhere else.
	var path string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		path, args = args[0], args[1:]
	}
	rest, err := parseFlagsRest(fs, args)
	if err != nil {
		return err
	}
	if path == "" && len(rest) > 0 {
		path, rest = rest[0], rest[1:]
	}
	if len(rest) > 0 {
		return usagef("run with -h for the flags", "unexpected argument %q", rest[0])
	}
	if *model != "" {
		if path != "" && path != *model {
			return usagef("give the file once", "model show got two files: %s and --model %s", path, *model)
		}
		path = *model
	}
	if path == "" {
		return usagef("usage: triage model show FILE", "model show needs the artifact file")
	}
	a, err := models.Load(path)
	if err != nil {
		return err
	}
	w := env.Stdout
	if *asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(headerOf(a))
	}
	if a.IsMultiTier() {
		return showTiers(w, a)
	}
	nz := 0
	for _, v := range a.ScoreWeights() {
		if v != 0 {
			nz++
		}
	}
	fmt.Fprintf(w, "router %s (format %d)\n", a.Version, a.FormatVersion)
	fmt.Fprintf(w, "  created      %s\n", a.CreatedAt.Format("2006-01-02 15:04:05 MST"))
	if a.Parent != "" {
		fmt.Fprintf(w, "  derived from %s\n", a.Parent)
	}
	fmt.Fprintf(w, "  tiers        fast=%s strong=%s\n", a.Tiers.Fast, a.Tiers.Strong)
	fmt.Fprintf(w, "  label        %s (p_hard is its calibrated probability)\n", a.Label)
	fmt.Fprintf(w, "  scorer       %s\n", scorerDescription[a.ScorerKind()])
	if d := a.Difficulty; d != nil {
		fmt.Fprintf(w, "  difficulty   mixed in at %.2f: a head on the mean of the tiers' scores (l2 %g), each tier's chance a curve of its logit (fast %+.3f%+.3f·z, strong %+.3f%+.3f·z)\n",
			1-d.Mix, d.L2, d.FastA, d.FastC, d.StrongA, d.StrongC)
	}
	if a.Signal != nil {
		fmt.Fprintf(w, "  signal       %s\n", a.Signal)
	}
	cannot := a.Signal != nil && !a.Signal.Routable
	if a.Policy.EscalateAbove <= 0 {
		// p_hard is a probability, so thresholds at 0 escalate it all.
		fmt.Fprintf(w, "  policy       escalate every request (speculate_above %.4f, escalate_above %.4f)\n",
			a.Policy.SpeculateAbove, a.Policy.EscalateAbove)
	} else if a.Policy.EscalateAbove > a.Policy.SpeculateAbove {
		fmt.Fprintf(w, "  policy       fast if p_hard <= %.4f; speculate up to %.4f; escalate above; a speculation keeps the fast answer at confidence >= %.2f\n",
			a.Policy.SpeculateAbove, a.Policy.EscalateAbove, a.Policy.AcceptConfidence)
	} else {
		// No speculate band: the confidence gate never applies.
		fmt.Fprintf(w, "  policy       fast if p_hard <= %.4f; escalate above (no speculate band)\n", a.Policy.EscalateAbove)
	}
	if a.PolicyTarget != "" {
		fmt.Fprintf(w, "  chosen by    %s\n", a.PolicyTarget)
	}
	if len(a.ExpectedShares) > 0 {
		fmt.Fprintf(w, "  shares       fast %.1f%%, speculate %.1f%%, escalate %.1f%% (on the data the thresholds were set on)\n",
			100*a.ExpectedShares[models.Fast], 100*a.ExpectedShares[models.Speculate], 100*a.ExpectedShares[models.Escalate])
	}
	t := a.Training
	l2 := l2Summary(a.ScorerKind(), t.L2, t.FastL2, t.GainL2)
	fmt.Fprintf(w, "  training     %s (%d held out, %d skipped), %s%s, seed %d, data sha256 %.16s\n",
		count(t.Records, "record"), t.Holdout, t.Skipped, l2, map[bool]string{true: " (by CV)"}[t.L2Chosen], t.Seed, t.SHA256)
	if len(t.Sources) > 0 {
		fmt.Fprintf(w, "  sources      %s\n", strings.Join(t.Sources, ", "))
	}
	f := a.Features
	chars := "off"
	if f.CharNgrams[1] > 0 {
		chars = fmt.Sprintf("%d-%d", f.CharNgrams[0], f.CharNgrams[1])
	}
	// Whether a request's meta counts: train leaves the meta group out
	// where it ranks no better with it, and a client that sends meta (a
	// proxy key's, say) should know when it is not read.
	meta := "on"
	if t.MetaOff {
		meta = "off (it ranked no better with it, so requests' meta is not read)"
	}
	fmt.Fprintf(w, "  features     spec v%d, %d dims (%s), word n-grams %d-%d, char n-grams %s, numeric %v, normalise %s, meta %s\n",
		f.Version, f.Dim(), count(nz, "non-zero weight"), f.WordNgrams[0], f.WordNgrams[1], chars, f.Numeric, f.Normalize, meta)
	if cannot {
		fmt.Fprintf(w, "  calibration  constant: p_hard %.2f for every request, as the router cannot route\n", a.Calibration.Apply(0))
	} else {
		fmt.Fprintf(w, "  calibration  %s\n", a.Calibration.Method)
	}
	if a.ConfidenceCalibration != nil {
		fmt.Fprintf(w, "  gate         fast confidence calibrated by %s\n", a.ConfidenceCalibration.Method)
	} else {
		fmt.Fprintf(w, "  gate         none (the training log had no fast-tier confidence)\n")
	}
	if len(a.Metrics) > 0 {
		from := a.MetricsFrom
		if from == "" {
			from = models.MetricsHeldOut
		}
		fmt.Fprintf(w, "  %-12s %s\n", from, metricsLine(a.Metrics))
	}
	if len(a.TopFeatures) > 0 {
		weightOn := scoreWeightOn(a.ScorerKind())
		unused := ""
		if cannot {
			unused = "; unused while the router cannot route"
		}
		fmt.Fprintf(w, "  top features (weight on %s, as \"explain\" shows it; + pushes towards the strong tier: n-grams hashed there%s)\n", weightOn, unused)
		for _, nw := range a.TopFeatures {
			names := strings.Join(nw.Names, " | ")
			if names == "" {
				names = fmt.Sprintf("(index %d, not seen in the named sample)", nw.Index)
			}
			fmt.Fprintf(w, "    %+8.4f  %s\n", nw.Weight, names)
		}
	}
	return nil
}

// scorerDescription says in a line how each scorer ranks requests.
var scorerDescription = map[string]string{
	models.ScorerPerTier: "per-tier: one model per tier predicts its score; requests rank by the predicted gain of the strong tier",
	models.ScorerGain:    "gain: one model predicts the strong tier's gain over the fast one; requests rank by it",
	models.ScorerBlend:   "blend: the mean of the per-tier and gain predictions of the strong tier's gain",
	models.ScorerLabel:   "label: one model of the label ranks the requests",
}

// l2Summary names the L2 strength of each head a scorer uses.
func l2Summary(scorer string, l2, fastL2, gainL2 float64) string {
	switch scorer {
	case models.ScorerPerTier:
		return fmt.Sprintf("l2 strong %g, fast %g", l2, fastL2)
	case models.ScorerBlend:
		return fmt.Sprintf("l2 strong %g, fast %g, gain %g", l2, fastL2, gainL2)
	}
	return fmt.Sprintf("l2 %g", l2)
}

// showTiers prints an N-tier artifact.
func showTiers(w io.Writer, a *models.Artifact) error {
	fmt.Fprintf(w, "router %s (format %d), %d tiers\n", a.Version, a.FormatVersion, len(a.TierList))
	fmt.Fprintf(w, "  created      %s\n", a.CreatedAt.Format("2006-01-02 15:04:05 MST"))
	if a.Parent != "" {
		fmt.Fprintf(w, "  derived from %s\n", a.Parent)
	}
	fmt.Fprintf(w, "  scorer       tiers: one head per tier predicts its score; the policy weighs the predictions against the prices\n")
	for k, t := range a.TierList {
		h := a.TierHeads[k]
		nz := 0
		for _, v := range h.Weights {
			if v != 0 {
				nz++
			}
		}
		cal := "σ(logit)"
		if h.Calibration != nil {
			cal = h.Calibration.Method
		}
		gate := ""
		if t.ConfidenceCalibration != nil {
			gate = ", confidence gate " + t.ConfidenceCalibration.Method
		}
		fmt.Fprintf(w, "  tier %-2d      %s, price %g (%s, predicted score by %s%s)\n", k, t.Name, t.Price, count(nz, "non-zero weight"), cal, gate)
	}
	p := a.TierPolicy
	fmt.Fprintf(w, "  policy       λ=%.4g margin=%.4g race=%.4g accept_confidence=%.2f: the cheapest tier within the margin of the best predicted score − λ·price\n", p.Lambda, p.Margin, p.Race, p.AcceptConfidence)
	if a.PolicyTarget != "" {
		fmt.Fprintf(w, "  chosen by    %s\n", a.PolicyTarget)
	}
	t := a.Training
	fmt.Fprintf(w, "  training     %s (%d skipped), l2 %g%s, seed %d, data sha256 %.16s\n",
		count(t.Records, "record"), t.Skipped, t.L2, map[bool]string{true: " (by CV)"}[t.L2Chosen], t.Seed, t.SHA256)
	if len(t.Sources) > 0 {
		fmt.Fprintf(w, "  sources      %s\n", strings.Join(t.Sources, ", "))
	}
	if len(a.Metrics) > 0 {
		// The artifact keeps quality on [0,1]; train, eval and curves
		// print it on 0-100, so "best_single=0.5741" beside train's 57.41
		// needs its unit said.
		fmt.Fprintf(w, "  %-12s %s (quality, best_single, oracle: mean score on [0,1], which train and eval print ×100; cost: mean price per request; share_K: tier K's share)\n", a.MetricsFrom, metricsLine(a.Metrics))
	}
	return nil
}

// metricsLine is an artifact's metrics as "name=value" pairs in name
// order.
func metricsLine(m map[string]float64) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%.4g", k, m[k])
	}
	return strings.Join(parts, " ")
}

// scoreWeightOn says what a top feature's weight (models.Artifact
// ScoreWeights, the weight "explain" shows) is on, for a two-tier scorer.
func scoreWeightOn(kind string) string {
	switch kind {
	case models.ScorerPerTier:
		return "the strong head's log-odds minus the fast head's"
	case models.ScorerGain:
		return "the gain head's log-odds"
	case models.ScorerBlend:
		return "the mean of the gain head's log-odds and the strong head's minus the fast head's"
	}
	return "the label's log-odds"
}

// headShape stands for a head's weights in 'model show --json': how many
// there are and how many are set, not the megabytes of the weights.
type headShape struct {
	Dim     int `json:"dim"`
	NonZero int `json:"non_zero"`
}

func shapeOf(w models.Weights) *headShape {
	if len(w) == 0 {
		return nil
	}
	s := &headShape{Dim: len(w)}
	for _, v := range w {
		if v != 0 {
			s.NonZero++
		}
	}
	return s
}

// artifactHeader is an artifact as 'model show --json' prints it: every
// field, with each head's weights replaced by their shape. The outer
// fields shadow the embedded ones of the same JSON name. Setting the
// weights to nil instead printed {"dim": 0, "non_zero": 0} for them (a
// router without weights, to a script), and missed the difficulty head,
// whose weights came out whole.
type artifactHeader struct {
	*models.Artifact
	Weights     *headShape        `json:"weights,omitempty"`
	FastWeights *headShape        `json:"fast_weights,omitempty"`
	GainWeights *headShape        `json:"gain_weights,omitempty"`
	Difficulty  *difficultyHeader `json:"difficulty,omitempty"`
	TierHeads   []tierHeadHeader  `json:"tier_heads,omitempty"`
}

type difficultyHeader struct {
	*models.Difficulty
	Weights *headShape `json:"weights,omitempty"`
}

type tierHeadHeader struct {
	*models.TierHead
	Weights *headShape `json:"weights,omitempty"`
}

func headerOf(a *models.Artifact) *artifactHeader {
	h := &artifactHeader{Artifact: a, Weights: shapeOf(a.Weights), FastWeights: shapeOf(a.FastWeights), GainWeights: shapeOf(a.GainWeights)}
	if a.Difficulty != nil {
		h.Difficulty = &difficultyHeader{Difficulty: a.Difficulty, Weights: shapeOf(a.Difficulty.Weights)}
	}
	for i := range a.TierHeads {
		h.TierHeads = append(h.TierHeads, tierHeadHeader{TierHead: &a.TierHeads[i], Weights: shapeOf(a.TierHeads[i].Weights)})
	}
	return h
}

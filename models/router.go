package models

import (
	"fmt"
	"math"
	"sort"
	"sync"

	"github.com/triage-router/triage/classifier"
	"github.com/triage-router/triage/features"
)

// Result is the router's answer for one request.
type Result struct {
	// PHard is the calibrated probability that the request needs the
	// strong tier (the label the artifact was trained on).
	PHard float64
	// Decision is the policy applied to PHard.
	Decision Decision
}

// Router scores prompts with an artifact. It is safe for concurrent use and
// allocates nothing per call in steady state: feature scratch space is
// pooled.
type Router struct {
	a     *Artifact
	model classifier.Model
	// kind is the artifact's scorer; fast and gain are its fast-tier and
	// gain heads where it has them, nil otherwise.
	kind       string
	fast, gain *classifier.Model
	// diff is the difficulty view's head (nil without one).
	diff *classifier.Model
	pool sync.Pool
}

type scratch struct {
	ext *features.Extractor
	vec features.Vector
}

// NewRouter validates the artifact and prepares a router for it.
func NewRouter(a *Artifact) (*Router, error) {
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("new router: %w", err)
	}
	if a.IsMultiTier() {
		return nil, fmt.Errorf("new router: %w: the artifact routes among %d tiers; serve it with a TierRouter (NewTierRouter)", ErrMultiTier, len(a.TierList))
	}
	// Fail now rather than inside the pool's New.
	if _, err := features.NewExtractor(a.Features); err != nil {
		return nil, fmt.Errorf("new router: %w", err)
	}
	r := &Router{a: a, model: classifier.Model{W: a.Weights, B: a.Bias}, kind: a.ScorerKind()}
	if len(a.FastWeights) > 0 {
		r.fast = &classifier.Model{W: a.FastWeights, B: a.FastBias}
	}
	if len(a.GainWeights) > 0 {
		r.gain = &classifier.Model{W: a.GainWeights, B: a.GainBias}
	}
	if d := a.Difficulty; d != nil {
		r.diff = &classifier.Model{W: d.Weights, B: d.Bias}
	}
	r.pool.New = func() any {
		ext, _ := features.NewExtractor(a.Features) // spec validated above
		return &scratch{ext: ext}
	}
	return r, nil
}

// Artifact returns the artifact the router serves. Treat it as read-only.
func (r *Router) Artifact() *Artifact { return r.a }

// Score returns the raw (uncalibrated) score of in: the logit of a label
// router, else the predicted gain of the strong tier (see rawScore),
// mixed with the difficulty view where the artifact has one
// (Difficulty.mix).
func (r *Router) Score(in features.Input) float64 {
	s := r.pool.Get().(*scratch)
	s.ext.Extract(&s.vec, in)
	var z [numHeads]float64
	first := r.model.Logit(s.vec.Idx, s.vec.Val)
	switch r.kind {
	case ScorerLabel:
		z[headLabel] = first
	case ScorerGain:
		z[headGain] = first
	default:
		z[headStrong] = first
		z[headFast] = r.fast.Logit(s.vec.Idx, s.vec.Val)
		if r.gain != nil {
			z[headGain] = r.gain.Logit(s.vec.Idx, s.vec.Val)
		}
	}
	var zd float64
	if r.diff != nil {
		zd = r.diff.Logit(s.vec.Idx, s.vec.Val)
	}
	r.pool.Put(s)
	if r.diff != nil {
		return r.a.Difficulty.mix(rawScore(r.kind, z), zd)
	}
	return rawScore(r.kind, z)
}

// Route computes p_hard and the decision for one request.
func (r *Router) Route(in features.Input) Result {
	p := r.PHard(r.Score(in))
	return Result{PHard: p, Decision: r.a.Policy.Decide(p)}
}

// PHard maps a raw score through the artifact's calibration.
func (r *Router) PHard(score float64) float64 {
	return r.a.Calibration.Apply(score)
}

// CalibratedConfidence maps the fast tier's raw confidence to P(fast answer
// correct). ok is false when the artifact has no confidence calibration, in
// which case a speculation never accepts the fast answer on confidence.
func (r *Router) CalibratedConfidence(raw float64) (p float64, ok bool) {
	if r.a.ConfidenceCalibration == nil || math.IsNaN(raw) {
		return 0, false
	}
	return r.a.ConfidenceCalibration.Apply(raw), true
}

// Contribution is one feature's share of a request's raw score.
type Contribution struct {
	Feature      string  `json:"feature"`
	Value        float64 `json:"value"`
	Weight       float64 `json:"weight"`
	Contribution float64 `json:"contribution"`
}

// Explain returns the k features that moved the raw score most, by
// absolute contribution (value times weight, summed over repeats). The
// weight is the one `triage model show` prints (Artifact.ScoreWeights):
// the feature's weight on the log-odds of the label (label router) or of
// the gain (gain router), the strong head's minus the fast head's
// (per-tier), or the mean of those two (blend). Either way a positive
// weight pushes towards the strong tier (a higher p_hard), and the
// contributions add up to that log-odds less the biases. For the scorers
// of the predicted gain p_hard follows it for most requests, though not
// always, since the predicted gain also depends on where each head sits on
// its curve. A router with a difficulty view (Artifact.Difficulty) mixes
// a second head into its score; the contributions are those of the
// chosen scorer's heads, which carry three quarters of the mix. It
// allocates; it is for people, not the hot path.
func (r *Router) Explain(in features.Input, k int) []Contribution {
	ext, _ := features.NewExtractor(r.a.Features)
	weight := func(idx int32) float64 { return r.a.scoreWeight(int(idx)) }
	byName := map[string]*Contribution{}
	var order []string
	ext.Describe(in, func(idx int32, val float64, name string) {
		c, ok := byName[name]
		if !ok {
			c = &Contribution{Feature: name, Weight: weight(idx)}
			byName[name] = c
			order = append(order, name)
		}
		c.Value += val
		c.Contribution += val * c.Weight
	})
	out := make([]Contribution, 0, len(order))
	for _, n := range order {
		if c := byName[n]; c.Contribution != 0 {
			out = append(out, *c)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		return math.Abs(out[i].Contribution) > math.Abs(out[j].Contribution)
	})
	if k > 0 && len(out) > k {
		out = out[:k]
	}
	return out
}

// TierScores returns the per-tier heads' predicted scores of in, P(fast
// answer scores 1) and P(strong answer scores 1); ok is false for a
// scorer without tier heads (label, gain). For measuring the heads (the
// replay in bench/loop), not for routing.
func (r *Router) TierScores(in features.Input) (fast, strong float64, ok bool) {
	if r.kind != ScorerPerTier && r.kind != ScorerBlend {
		return 0, 0, false
	}
	s := r.pool.Get().(*scratch)
	defer r.pool.Put(s)
	s.ext.Extract(&s.vec, in)
	return sigmoid(r.fast.Logit(s.vec.Idx, s.vec.Val)), sigmoid(r.model.Logit(s.vec.Idx, s.vec.Val)), true
}

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
	// fast is the fast tier's head of a per-tier router, nil otherwise.
	fast *classifier.Model
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
	// Fail now rather than inside the pool's New.
	if _, err := features.NewExtractor(a.Features); err != nil {
		return nil, fmt.Errorf("new router: %w", err)
	}
	r := &Router{a: a, model: classifier.Model{W: a.Weights, B: a.Bias}}
	if a.ScorerKind() == ScorerPerTier {
		r.fast = &classifier.Model{W: a.FastWeights, B: a.FastBias}
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
// router, the predicted gain σ(z_strong) − σ(z_fast) of a per-tier one.
func (r *Router) Score(in features.Input) float64 {
	s := r.pool.Get().(*scratch)
	s.ext.Extract(&s.vec, in)
	z := r.model.Logit(s.vec.Idx, s.vec.Val)
	if r.fast != nil {
		z = sigmoid(z) - sigmoid(r.fast.Logit(s.vec.Idx, s.vec.Val))
	}
	r.pool.Put(s)
	return z
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
// for a label router the feature's weight on the label's log-odds, for a
// per-tier router its weight on the strong head's log-odds minus the fast
// head's. Either way a positive weight pushes towards the strong tier (a
// higher p_hard). For a per-tier router the contributions add up to that
// log-odds gap less the heads' biases; p_hard follows the gap for most
// requests, though not always, since the predicted gain σ(z_strong) −
// σ(z_fast) also depends on where each head sits on its curve. It
// allocates; it is for people, not the hot path.
func (r *Router) Explain(in features.Input, k int) []Contribution {
	ext, _ := features.NewExtractor(r.a.Features)
	weight := func(idx int32) float64 { return r.a.Weights[idx] }
	if r.fast != nil {
		weight = func(idx int32) float64 { return r.a.Weights[idx] - r.a.FastWeights[idx] }
	}
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

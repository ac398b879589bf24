package models

import (
	"fmt"
	"math"
	"sync"

	"github.com/triage-router/triage/classifier"
	"github.com/triage-router/triage/features"
)

// TierRouter routes among an artifact's tiers. It serves N-tier artifacts
// (ScorerTiers) and two-tier ones alike, so a server needs one code path:
// a two-tier router's fast decision is tier 0, escalate tier 1, and
// speculate tier 0 raced with tier 1. It is safe for concurrent use.
type TierRouter struct {
	a      *Artifact
	two    *Router // the two-tier router, nil for an N-tier artifact
	heads  []classifier.Model
	cals   []*classifier.Calibration
	prices []float64
	names  []string
	pool   sync.Pool
}

// NewTierRouter validates the artifact and prepares a router for it.
func NewTierRouter(a *Artifact) (*TierRouter, error) {
	r := &TierRouter{a: a, names: a.TierNames()}
	if !a.IsMultiTier() {
		two, err := NewRouter(a)
		if err != nil {
			return nil, err
		}
		r.two = two
		r.prices = []float64{0, 0}
		return r, nil
	}
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("new tier router: %w", err)
	}
	if _, err := features.NewExtractor(a.Features); err != nil {
		return nil, fmt.Errorf("new tier router: %w", err)
	}
	for _, h := range a.TierHeads {
		r.heads = append(r.heads, classifier.Model{W: h.Weights, B: h.Bias})
		r.cals = append(r.cals, h.Calibration)
	}
	for _, t := range a.TierList {
		r.prices = append(r.prices, t.Price)
	}
	r.pool.New = func() any {
		ext, _ := features.NewExtractor(a.Features) // spec validated above
		return &scratch{ext: ext}
	}
	return r, nil
}

// Artifact returns the artifact the router serves. Treat it as read-only.
func (r *TierRouter) Artifact() *Artifact { return r.a }

// Len is the number of tiers.
func (r *TierRouter) Len() int { return len(r.names) }

// Names lists the tiers' model names, cheapest first. Do not modify it.
func (r *TierRouter) Names() []string { return r.names }

// Prices lists the tiers' prices, cheapest first (zeros for a two-tier
// artifact, which has none). Do not modify it.
func (r *TierRouter) Prices() []float64 { return r.prices }

// Predict writes each tier's predicted score for in into dst (grown to
// Len) and returns it. A two-tier artifact has no per-tier predictions:
// it panics, as asking is a programmer's error; check IsMultiTier.
func (r *TierRouter) Predict(dst []float64, in features.Input) []float64 {
	if r.two != nil {
		panic("models: TierRouter.Predict on a two-tier artifact")
	}
	dst = growTo(dst[:0], len(r.heads))[:len(r.heads)]
	s := r.pool.Get().(*scratch)
	s.ext.Extract(&s.vec, in)
	for k := range r.heads {
		dst[k] = predictScore(r.heads[k].Logit(s.vec.Idx, s.vec.Val), r.cals[k])
	}
	r.pool.Put(s)
	return dst
}

// predictScore maps a tier head's logit to its predicted score.
func predictScore(z float64, cal *classifier.Calibration) float64 {
	if cal == nil {
		return sigmoid(z)
	}
	return cal.Apply(z)
}

// Route answers the chosen tier, the race partner and the decision for
// one request under the artifact's policy.
func (r *TierRouter) Route(in features.Input) TierResult {
	if r.two != nil {
		res := r.two.Route(in)
		out := TierResult{Decision: res.Decision, PHard: res.PHard, Race: -1}
		switch res.Decision {
		case Speculate:
			out.Race = 1
		case Escalate:
			out.Tier = 1
		}
		return r.named(out)
	}
	return r.RouteWith(in, *r.a.TierPolicy)
}

// RouteWith is Route under another policy (an N-tier artifact only; a
// two-tier artifact's thresholds are a Policy, not a TierPolicy).
func (r *TierRouter) RouteWith(in features.Input, p TierPolicy) TierResult {
	pred := r.Predict(nil, in)
	tier, race := p.Choose(pred, r.prices)
	return r.named(TierResult{Tier: tier, Race: race, Decision: DecisionOf(tier, race), Predicted: pred, PHard: math.NaN()})
}

func (r *TierRouter) named(res TierResult) TierResult {
	res.Model = r.names[res.Tier]
	if res.Race >= 0 {
		res.RaceModel = r.names[res.Race]
	}
	return res
}

// CalibratedConfidence maps tier k's raw confidence to P(its answer is
// correct); ok is false when the artifact has no calibration for that
// tier, in which case a race never keeps tier k's answer on confidence.
// AcceptConfidence gives the gate.
func (r *TierRouter) CalibratedConfidence(k int, raw float64) (p float64, ok bool) {
	if r.two != nil {
		if k != 0 {
			return 0, false
		}
		return r.two.CalibratedConfidence(raw)
	}
	if k < 0 || k >= len(r.a.TierList) || math.IsNaN(raw) {
		return 0, false
	}
	c := r.a.TierList[k].ConfidenceCalibration
	if c == nil {
		return 0, false
	}
	return c.Apply(raw), true
}

// AcceptConfidence is the calibrated confidence a raced lower tier's answer
// needs to be kept: the policy's, for either kind of artifact.
func (r *TierRouter) AcceptConfidence() float64 {
	if r.two != nil {
		return r.a.Policy.AcceptConfidence
	}
	return r.a.TierPolicy.AcceptConfidence
}

package models

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/triage-router/triage/classifier"
)

// ScorerTiers is the N-tier router's scorer (format version 4): one
// logistic regression per tier, each predicting that tier's score, and a
// TierPolicy that chooses among the predictions by quality and price. Its
// artifact keeps Tiers.Fast and Tiers.Strong as the cheapest and the
// dearest tier's names, for listings, and leaves Weights, Calibration and
// Policy (the two-tier fields) empty.
const ScorerTiers = "tiers"

// ErrMultiTier is wrapped where a two-tier API (Router, p_hard, the
// two-tier replay) is given an N-tier artifact. Its text starts in lower
// case, as an error string does (staticcheck ST1005), since it is wrapped
// mid-sentence: "new router: an N-tier router: ...".
var ErrMultiTier = errors.New("an N-tier router")

// Tier is one model an N-tier router can send a request to.
type Tier struct {
	// Name is the model's name as in the log's outcomes and the proxy's
	// upstreams.
	Name string `json:"name"`
	// Price is what one request to the tier costs, in any unit used the
	// same way for every tier (docs and bench use USD per 1k requests).
	// 0 means unpriced: with every tier unpriced, λ has no effect.
	Price float64 `json:"price"`
	// ConfidenceCalibration maps the tier's raw confidence to P(its answer
	// is correct), the gate a race keeps this tier's answer by; nil when
	// the training log had none for this tier.
	ConfidenceCalibration *classifier.Calibration `json:"confidence_calibration,omitempty"`
}

// ParseTier reads a tier as given on the command line: "NAME" or
// "NAME=PRICE". The price is split at the last '=', so a model name may
// hold '=' as long as a price follows.
func ParseTier(s string) (Tier, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Tier{}, errors.New("tier is empty; want NAME or NAME=PRICE")
	}
	name, price, ok := s, "", false
	if i := strings.LastIndexByte(s, '='); i >= 0 {
		name, price, ok = s[:i], s[i+1:], true
	}
	if name == "" {
		return Tier{}, fmt.Errorf("tier %q has no model name; want NAME or NAME=PRICE", s)
	}
	t := Tier{Name: name}
	if ok {
		p, err := strconv.ParseFloat(price, 64)
		if err != nil || p < 0 || math.IsInf(p, 0) || math.IsNaN(p) {
			return Tier{}, fmt.Errorf("tier %q: price %q is not a number >= 0; want NAME=PRICE, e.g. gpt-4o=2.5", s, price)
		}
		t.Price = p
	}
	return t, nil
}

// ParseTierList reads a comma-separated list of tiers ("A=0.1,B=1,C=5"),
// cheapest first.
func ParseTierList(s string) ([]Tier, error) {
	var out []Tier
	for part := range strings.SplitSeq(s, ",") {
		t, err := ParseTier(part)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// ValidateTiers checks a tier list: at least two tiers, distinct non-empty
// names, finite prices >= 0 that do not fall from one tier to the next
// (the list is cheapest first, and ties go to the earlier tier).
func ValidateTiers(ts []Tier) error {
	if len(ts) < 2 {
		return fmt.Errorf("tiers: %d given, a router needs at least two", len(ts))
	}
	seen := map[string]bool{}
	for i, t := range ts {
		if t.Name == "" {
			return fmt.Errorf("tiers[%d]: the name is empty", i)
		}
		if seen[t.Name] {
			return fmt.Errorf("tiers[%d]: %q is listed twice", i, t.Name)
		}
		seen[t.Name] = true
		if t.Price < 0 || math.IsNaN(t.Price) || math.IsInf(t.Price, 0) {
			return fmt.Errorf("tiers[%d] %q: price %v, want a finite number >= 0", i, t.Name, t.Price)
		}
		if i > 0 && t.Price < ts[i-1].Price {
			return fmt.Errorf("tiers[%d] %q: price %g is below the previous tier's %g; list tiers cheapest first", i, t.Name, t.Price, ts[i-1].Price)
		}
		if t.ConfidenceCalibration != nil {
			if err := t.ConfidenceCalibration.Validate(); err != nil {
				return fmt.Errorf("tiers[%d] %q: confidence_calibration: %w", i, t.Name, err)
			}
		}
	}
	return nil
}

// TierHead is one tier's head: a logistic regression of the tier's score
// on the features, and the map from its logit to the predicted score.
type TierHead struct {
	Weights Weights `json:"weights"`
	Bias    float64 `json:"bias"`
	// Calibration maps the head's logit to the tier's expected score in
	// [0,1]; nil means σ(logit). Training fits it on out-of-fold logits
	// (isotonic), so every tier's prediction is on the same scale, the
	// mean score such requests got, which is what the policy compares
	// across tiers and subtracts prices from.
	Calibration *classifier.Calibration `json:"calibration,omitempty"`
}

// TierPolicy chooses a tier from the tiers' predicted scores s_k and
// prices c_k. With utility u_k = s_k − Lambda·c_k, the chosen tier is the
// cheapest (the first) whose utility is within Margin of the best:
//
//	chosen = min { k : u_k >= max_j u_j − Margin }
//
// so Lambda alone is willingness to pay (argmax of s − λ·c, ties to the
// cheaper tier) and Margin alone, at Lambda 0, is a quality floor (the
// cheapest tier predicted within Margin of the best). The chosen tier k
// is raced with the next one up, k+1, when Race > 0 and
// u_{k+1} >= u_k − Race: the next tier up was close to being chosen (or,
// with a Margin, was predicted better and lost on price). In a race the
// chosen tier's answer is kept when it arrives first and its calibrated
// confidence is at least AcceptConfidence, else the upper tier's answer
// is awaited, as a two-tier speculation (docs/design.md).
type TierPolicy struct {
	// Lambda is the willingness to pay: score points (on [0,1]) given up
	// per unit of price. 0 ignores price.
	Lambda float64 `json:"lambda"`
	// Margin is the quality floor's tolerance, in score (on [0,1]).
	Margin float64 `json:"margin"`
	// Race is the band below the chosen tier's utility within which the
	// next tier up is raced with it; 0 never races.
	Race float64 `json:"race"`
	// AcceptConfidence is the calibrated confidence the chosen tier's
	// answer needs to be kept in a race.
	AcceptConfidence float64 `json:"accept_confidence"`
}

// Validate checks the knobs are finite and in range.
func (p TierPolicy) Validate() error {
	for _, v := range []struct {
		name string
		x    float64
	}{{"lambda", p.Lambda}, {"margin", p.Margin}, {"race", p.Race}, {"accept_confidence", p.AcceptConfidence}} {
		if math.IsNaN(v.x) || math.IsInf(v.x, 0) {
			return fmt.Errorf("tier_policy: %s is %v, want a finite number", v.name, v.x)
		}
		if v.x < 0 {
			return fmt.Errorf("tier_policy: %s is %g, want >= 0", v.name, v.x)
		}
	}
	if p.AcceptConfidence > 1 {
		return fmt.Errorf("tier_policy: accept_confidence %g is outside [0,1]", p.AcceptConfidence)
	}
	return nil
}

// Choose applies the policy to one request's predicted scores (pred[k]
// for tier k, cheapest first) and the tiers' prices. It returns the
// chosen tier and the race partner (-1 for none). It allocates nothing.
func (p TierPolicy) Choose(pred, prices []float64) (tier, race int) {
	if len(pred) != len(prices) || len(pred) == 0 {
		panic(fmt.Sprintf("models: TierPolicy.Choose: %d predictions for %d prices", len(pred), len(prices)))
	}
	best := math.Inf(-1)
	for k, s := range pred {
		best = math.Max(best, s-p.Lambda*prices[k])
	}
	tier = len(pred) - 1
	for k, s := range pred {
		if s-p.Lambda*prices[k] >= best-p.Margin {
			tier = k
			break
		}
	}
	race = -1
	if p.Race > 0 && tier+1 < len(pred) {
		u, up := pred[tier]-p.Lambda*prices[tier], pred[tier+1]-p.Lambda*prices[tier+1]
		if up >= u-p.Race {
			race = tier + 1
		}
	}
	return tier, race
}

// DecisionOf is the decision label of a choice, the same three words a
// two-tier router answers, so metrics and logs keep one vocabulary: Fast
// when the cheapest tier runs alone, Escalate when a dearer tier runs
// alone, Speculate when two tiers race.
func DecisionOf(tier, race int) Decision {
	switch {
	case race >= 0:
		return Speculate
	case tier == 0:
		return Fast
	default:
		return Escalate
	}
}

// validateTiers checks the N-tier part of an artifact with ScorerTiers.
func (a *Artifact) validateTiers() error {
	if err := ValidateTiers(a.TierList); err != nil {
		return err
	}
	if len(a.TierHeads) != len(a.TierList) {
		return fmt.Errorf("tier_heads: %d heads for %d tiers, want one per tier", len(a.TierHeads), len(a.TierList))
	}
	for k, h := range a.TierHeads {
		name := fmt.Sprintf("tier_heads[%d] (%s)", k, a.TierList[k].Name)
		if err := checkHead(name+".weights", name+".bias", h.Weights, h.Bias, a.Features.Dim()); err != nil {
			return err
		}
		if h.Calibration != nil {
			if err := h.Calibration.Validate(); err != nil {
				return fmt.Errorf("%s.calibration: %w", name, err)
			}
		}
	}
	if a.TierPolicy == nil {
		return errors.New("tier_policy is missing")
	}
	if err := a.TierPolicy.Validate(); err != nil {
		return err
	}
	if a.Tiers.Fast != a.TierList[0].Name || a.Tiers.Strong != a.TierList[len(a.TierList)-1].Name {
		return fmt.Errorf("tiers: fast %q and strong %q, want the first and last of tier_list (%q, %q)", a.Tiers.Fast, a.Tiers.Strong, a.TierList[0].Name, a.TierList[len(a.TierList)-1].Name)
	}
	if len(a.Weights) != 0 || len(a.FastWeights) != 0 || len(a.GainWeights) != 0 {
		return errors.New("weights, fast_weights or gain_weights are set on an N-tier router; its heads are tier_heads")
	}
	return nil
}

// IsMultiTier reports whether the artifact is an N-tier router
// (ScorerTiers) rather than a two-tier one.
func (a *Artifact) IsMultiTier() bool { return a.ScorerKind() == ScorerTiers }

// TierNames lists the artifact's tiers, cheapest first: TierList for an
// N-tier router, (fast, strong) for a two-tier one.
func (a *Artifact) TierNames() []string {
	if !a.IsMultiTier() {
		return []string{a.Tiers.Fast, a.Tiers.Strong}
	}
	out := make([]string, len(a.TierList))
	for i, t := range a.TierList {
		out[i] = t.Name
	}
	return out
}

// TierResult is an N-tier router's answer for one request.
type TierResult struct {
	// Tier is the chosen tier's index, cheapest first, and Model its name.
	Tier  int
	Model string
	// Race is the tier raced with the chosen one (Tier+1), -1 for none;
	// RaceModel its name, "" for none.
	Race      int
	RaceModel string
	// Decision is DecisionOf(Tier, Race).
	Decision Decision
	// Predicted holds each tier's predicted score (N-tier routers); nil
	// for a two-tier router, whose PHard says it instead.
	Predicted []float64
	// PHard is the two-tier router's p_hard; NaN for an N-tier router.
	PHard float64
}

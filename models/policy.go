package models

import (
	"fmt"
	"math"
)

// Decision is what the router tells a caller to do with a request.
type Decision string

// The three decisions of docs/design.md.
const (
	// Fast sends the request to the fast tier only.
	Fast Decision = "fast"
	// Speculate starts both tiers; the fast answer is kept if its calibrated
	// confidence clears AcceptConfidence, else the strong one is awaited.
	Speculate Decision = "speculate"
	// Escalate sends the request to the strong tier only.
	Escalate Decision = "escalate"
)

// Tiers names the fast and strong models a router was trained for.
type Tiers struct {
	Fast   string `json:"fast"`
	Strong string `json:"strong"`
}

// Policy turns p_hard into a decision. SpeculateAbove <= EscalateAbove;
// setting them equal gives a plain fast/escalate router with no speculation.
type Policy struct {
	// SpeculateAbove: p_hard above it is at least a speculation.
	SpeculateAbove float64 `json:"speculate_above"`
	// EscalateAbove: p_hard above it goes to the strong tier only.
	EscalateAbove float64 `json:"escalate_above"`
	// AcceptConfidence: in a speculation the fast answer is kept when its
	// calibrated confidence (P(fast answer correct)) is at least this.
	AcceptConfidence float64 `json:"accept_confidence"`
}

// Decide applies the thresholds: p <= speculate_above is fast, p above
// escalate_above escalates, anything between speculates. A NaN p_hard
// (a score the model could not compute) escalates: the safe side.
func (p Policy) Decide(pHard float64) Decision {
	switch {
	case pHard > p.EscalateAbove || math.IsNaN(pHard):
		return Escalate
	case pHard > p.SpeculateAbove:
		return Speculate
	default:
		return Fast
	}
}

// Validate checks the thresholds are ordered and finite.
func (p Policy) Validate() error {
	for _, v := range []struct {
		name string
		x    float64
	}{{"speculate_above", p.SpeculateAbove}, {"escalate_above", p.EscalateAbove}, {"accept_confidence", p.AcceptConfidence}} {
		if math.IsNaN(v.x) || math.IsInf(v.x, 0) {
			return fmt.Errorf("policy: %s is %v, want a finite number", v.name, v.x)
		}
	}
	if p.SpeculateAbove > p.EscalateAbove {
		return fmt.Errorf("policy: speculate_above %.4g is above escalate_above %.4g; want speculate_above <= escalate_above", p.SpeculateAbove, p.EscalateAbove)
	}
	if p.AcceptConfidence < 0 || p.AcceptConfidence > 1 {
		return fmt.Errorf("policy: accept_confidence %.4g is outside [0,1]", p.AcceptConfidence)
	}
	return nil
}

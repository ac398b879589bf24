package models

import (
	"fmt"
	"math"

	"github.com/triage-router/triage/classifier"
)

// Signal says whether a log lets a router beat random routing: the
// out-of-fold APGR of the chosen router with its 95% interval.
//
// Two verdicts follow from it. Significant says whether the interval is
// above 0.5: whether the log shows, with 95% confidence, that the router
// beats random. Routable says whether the router routes at all. It does
// not where its out-of-fold APGR is not above 0.5 (it did no better than
// random on requests it had not seen) or where the strong tier is not
// measurably better than the fast one (APGR is then undefined): it then
// answers p_hard 1/2 for every request and its policy escalates them all,
// which cannot route worse than random. A router that beat random out of
// fold without significance keeps its ranking, whose expected gain is
// positive: withholding it cost 0.017 of mean APGR on the quality suite,
// where it silenced 143 of 205 fold routers, many with real signal
// (docs/quality.md).
type Signal struct {
	// Routable is false when the router answers one p_hard for all.
	Routable bool `json:"routable"`
	// Significant is true when the APGR interval lies above 0.5.
	Significant bool `json:"significant"`
	// APGR is the out-of-fold APGR of the chosen candidate, Lo and Hi its
	// 95% interval (normal, from the delta-method standard error).
	APGR float64 `json:"apgr"`
	Lo   float64 `json:"apgr_lo"`
	Hi   float64 `json:"apgr_hi"`
	// Gain is the strong tier's mean gain over the fast one on the
	// training log, GainLo and GainHi its 95% interval.
	Gain   float64 `json:"gain"`
	GainLo float64 `json:"gain_lo"`
	GainHi float64 `json:"gain_hi"`
	// Reason says in one sentence why the router cannot route ("" when it
	// can).
	Reason string `json:"reason,omitempty"`
}

// z95 is the normal quantile of a two-sided 95% interval.
const z95 = 1.959963984540054

// checkSignal decides whether the chosen candidate may route.
func checkSignal(c *candidate, weak, strong, w []float64) Signal {
	s := Signal{APGR: c.apgr, Lo: c.apgr - z95*c.se, Hi: c.apgr + z95*c.se}
	var sw, sg, sg2 float64
	for i := range weak {
		wi := 1.0
		if w != nil {
			wi = w[i]
		}
		g := strong[i] - weak[i]
		sw += wi
		sg += wi * g
		sg2 += wi * wi * g * g
	}
	s.Gain = sg / sw
	// The weighted mean's standard error, weights as frequencies.
	var v float64
	for i := range weak {
		wi := 1.0
		if w != nil {
			wi = w[i]
		}
		d := wi * (strong[i] - weak[i] - s.Gain)
		v += d * d
	}
	se := math.Sqrt(v) / sw
	s.GainLo, s.GainHi = s.Gain-z95*se, s.Gain+z95*se
	s.Significant = s.GainLo > 0 && s.Lo > 0.5
	switch {
	case !(s.GainLo > 0):
		s.Reason = fmt.Sprintf("the strong tier is not measurably better than the fast one on this log (mean gain %+.3f, 95%% interval [%+.3f, %+.3f]), so no ranking can show it", s.Gain, s.GainLo, s.GainHi)
	case math.IsNaN(s.APGR) || !(s.APGR > 0.5):
		s.Reason = fmt.Sprintf("the router did no better than random on requests it had not seen (out-of-fold APGR %.3f, 95%% interval [%.3f, %.3f])", s.APGR, s.Lo, s.Hi)
	default:
		s.Routable = true
	}
	return s
}

// String is the signal in one plain line.
func (s Signal) String() string {
	switch {
	case !s.Routable:
		return "cannot route: " + s.Reason + "; every request escalates to the strong tier"
	case s.Reason != "":
		return s.Reason
	case s.Significant:
		return fmt.Sprintf("routes better than random: out-of-fold APGR %.3f, 95%% interval [%.3f, %.3f]", s.APGR, s.Lo, s.Hi)
	}
	return fmt.Sprintf("not shown to beat random: out-of-fold APGR %.3f, but its 95%% interval [%.3f, %.3f] holds 0.5; it routes on its ranking, which did better than random out of fold; trust its figures only after more requests", s.APGR, s.Lo, s.Hi)
}

// constantCalibration maps every score to 1/2, the p_hard of a router
// that cannot route: it knows nothing about any request. (The label's base
// rate would look like an estimate, and differs from one training sample
// to the next, so routers trained on different samples of the same log
// would order their requests by sample; 1/2 is the same for all.) It is a
// Platt map with slope and intercept 0.
func constantCalibration() classifier.Calibration {
	return classifier.Calibration{Method: classifier.CalibPlatt}
}

// NoRoutePolicy is the policy of a router that cannot route: every
// request escalates (p_hard, the same for all, is above 0).
func NoRoutePolicy() Policy {
	return Policy{SpeculateAbove: 0, EscalateAbove: 0, AcceptConfidence: DefaultAcceptConfidence}
}

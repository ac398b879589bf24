package models

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/triage-router/triage/classifier"
)

// Signal says whether a log lets a router beat random routing: the
// out-of-fold APGR of the chosen router with its 95% interval.
//
// Two verdicts follow from it. Significant says whether the interval is
// above 0.5 and the APGR above what choosing among the candidates finds on
// shuffled outcomes one time in twenty (NullQ95): whether the log shows,
// with 95% confidence, that the router beats random. Routable says whether
// the router ranks at all. It does not where the strong tier is not
// measurably better than the fast one (APGR, which divides by the gap
// between them, is then noise or undefined): it then answers p_hard 1/2
// for every request and its policy escalates them all, which cannot route
// worse than random. A router that is not significant keeps its ranking
// (its p_hard), but its default policy escalates every request, as a
// router that cannot route does: on a log with coin-flip outcomes the
// out-of-fold APGR is above 0.5 about half the time, and a default that
// sent most requests to the fast tier would cost quality on the strength
// of noise. Thresholds set from the curves (or a config) route it. That
// holds whether its out-of-fold APGR came out above 0.5 or not: the figure
// is that of fits on two thirds of the log, noisy on a small one, and the
// ranking fitted on all of it still beat random on unseen requests on
// average. Replacing the ranking with the constant cost 0.017 of mean APGR
// on the quality suite where the APGR was above 0.5 (143 of 205 fold
// routers silenced, many with real signal), and 0.0036 on average over
// five fold splits where it was not (docs/quality.md item 21).
type Signal struct {
	// Routable is false when the router answers one p_hard for all.
	Routable bool `json:"routable"`
	// Significant is true when the APGR interval lies above 0.5 and the
	// APGR above NullQ95; only then does the default policy route (or
	// with --route-anyway).
	Significant bool `json:"significant"`
	// APGR is the out-of-fold APGR of the chosen candidate, Lo and Hi its
	// 95% interval (normal, from the delta-method standard error times
	// cvPairInflation).
	APGR float64 `json:"apgr"`
	Lo   float64 `json:"apgr_lo"`
	Hi   float64 `json:"apgr_hi"`
	// Gain is the strong tier's mean gain over the fast one on the
	// training log, GainLo and GainHi its 95% interval.
	Gain   float64 `json:"gain"`
	GainLo float64 `json:"gain_lo"`
	GainHi float64 `json:"gain_hi"`
	// NullQ95 is the 95th percentile of the best out-of-fold APGR among
	// every candidate the selection scored, on the log's outcomes shuffled
	// across its requests (selectionNull): the figure choosing among them
	// reaches by chance one time in twenty. Significant requires the
	// APGR above it as well as the interval above 0.5, because the interval
	// is that of one ranking and the chosen one is the best of several.
	NullQ95 float64 `json:"null_apgr_q95,omitempty"`
	// Reason says in one sentence why the router cannot route ("" when it
	// can).
	Reason string `json:"reason,omitempty"`
}

// signalJSON is Signal on the wire, field for field in Signal's order (the
// artifact's checksum hashes its JSON, so a finite signal must encode as
// it always has): the figures a log can leave undefined (the APGR and its
// interval when the tiers' mean scores are equal, where the gap APGR
// divides by is 0) are null, since JSON has no NaN.
type signalJSON struct {
	Routable    bool     `json:"routable"`
	Significant bool     `json:"significant"`
	APGR        *float64 `json:"apgr"`
	Lo          *float64 `json:"apgr_lo"`
	Hi          *float64 `json:"apgr_hi"`
	Gain        *float64 `json:"gain"`
	GainLo      *float64 `json:"gain_lo"`
	GainHi      *float64 `json:"gain_hi"`
	NullQ95     float64  `json:"null_apgr_q95,omitempty"`
	Reason      string   `json:"reason,omitempty"`
}

// MarshalJSON writes a NaN or infinite figure as null.
func (s Signal) MarshalJSON() ([]byte, error) {
	null := s.NullQ95
	if math.IsNaN(null) || math.IsInf(null, 0) {
		null = 0 // omitted, as where the shuffles were not run
	}
	return json.Marshal(signalJSON{
		Routable: s.Routable, Significant: s.Significant,
		APGR: finiteOrNil(s.APGR), Lo: finiteOrNil(s.Lo), Hi: finiteOrNil(s.Hi),
		Gain: finiteOrNil(s.Gain), GainLo: finiteOrNil(s.GainLo), GainHi: finiteOrNil(s.GainHi),
		NullQ95: null, Reason: s.Reason,
	})
}

// UnmarshalJSON reads a null figure as NaN (undefined).
func (s *Signal) UnmarshalJSON(b []byte) error {
	var w signalJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*s = Signal{
		Routable: w.Routable, Significant: w.Significant,
		APGR: nilToNaN(w.APGR), Lo: nilToNaN(w.Lo), Hi: nilToNaN(w.Hi),
		Gain: nilToNaN(w.Gain), GainLo: nilToNaN(w.GainLo), GainHi: nilToNaN(w.GainHi),
		NullQ95: w.NullQ95, Reason: w.Reason,
	}
	return nil
}

// z95 is the normal quantile of a two-sided 95% interval.
const z95 = 1.959963984540054

// cvPairInflation widens the standard error of an out-of-fold APGR, and
// the shuffle null's reach, for what both miss: the out-of-fold scores
// were fitted on the same outcomes they are judged on. The delta-method
// error (apgrSE) and the shuffles (selectionNull) hold the rankings fixed.
// But request i's score was fitted on the outcome of every request j in
// the other folds, and j's score on i's. In the limit of a strong penalty
// a linear head's score is s_i = Σ_j K_ij y_j over the other folds (K the
// rows' inner products, y the centred outcomes), so the figure is the
// quadratic form Σ_i s_i y_i = Σ K_ij y_i y_j, in which each pair of
// requests in different folds appears twice. On a log whose outcomes are
// noise its variance is 2 Σ K_ij² σ⁴, twice the σ⁴ Σ K_ij² that fixed
// rankings give (Bengio and Grandvalet 2004: no unbiased estimator of a
// cross-validation's variance ignores these terms). Measured on 300
// coin-flip logs of 1,500 requests with one fixed head, the out-of-fold
// APGR spread 0.0356 against a mean delta-method error of 0.0270 (ratio
// 1.32: ranks and the logistic link soften the square); docs/quality.md
// item 5. Where the log has signal the learnt part of the scores does not
// double, so √2 is exact for noise and errs wide for signal: the side a
// check that switches routing on should err on.
const cvPairInflation = math.Sqrt2

// gainInterval is the (weighted) mean gain of the strong tier over the
// fast one and its 95% interval; w nil weighs every request 1.
func gainInterval(weak, strong, w []float64) (gain, lo, hi float64) {
	var sw, sg float64
	for i := range weak {
		wi := 1.0
		if w != nil {
			wi = w[i]
		}
		sw += wi
		sg += wi * (strong[i] - weak[i])
	}
	gain = sg / sw
	// The weighted mean's standard error, weights as frequencies.
	var v float64
	for i := range weak {
		wi := 1.0
		if w != nil {
			wi = w[i]
		}
		d := wi * (strong[i] - weak[i] - gain)
		v += d * d
	}
	se := math.Sqrt(v) / sw
	return gain, gain - z95*se, gain + z95*se
}

func swappedReason(gain, lo, hi float64) string {
	return fmt.Sprintf("the strong tier is measurably worse than the fast one on this log (mean gain %+.3f, 95%% interval [%+.3f, %+.3f]); check that the tiers are not swapped (--fast, --strong)", gain, lo, hi)
}

// SwappedTiers says, when the tier named strong is measurably worse than
// the fast one on these scores (the gain's 95% interval below 0), why
// the tiers look swapped; "" otherwise. Commands that measure a router
// on a log say it as train does.
func SwappedTiers(weak, strong []float64) string {
	if len(weak) == 0 {
		return ""
	}
	if g, lo, hi := gainInterval(weak, strong, nil); hi < 0 {
		return swappedReason(g, lo, hi)
	}
	return ""
}

// checkSignal decides whether the chosen candidate may route.
//
// rankings are the out-of-fold scores of every candidate the selection
// compared (c's among them), and seed seeds the shuffles that make the
// significance check aware of that choice (selectionNull).
func checkSignal(c *candidate, rankings [][]float64, weak, strong, w []float64, seed uint64) Signal {
	se := cvPairInflation * c.se
	s := Signal{APGR: c.apgr, Lo: c.apgr - z95*se, Hi: c.apgr + z95*se}
	s.Gain, s.GainLo, s.GainHi = gainInterval(weak, strong, w)
	s.Significant = s.GainLo > 0 && s.Lo > 0.5
	if s.Significant {
		// Only worth the shuffles where the interval alone would claim it.
		s.NullQ95 = selectionNull(rankings, weak, strong, w, seed)
		s.Significant = !(s.APGR <= s.NullQ95)
	}
	switch {
	case s.GainHi < 0:
		// Routing cannot help, and escalating everything, what such a
		// router does, sends every request to the worse tier: most
		// likely the two were named the wrong way round.
		s.Reason = swappedReason(s.Gain, s.GainLo, s.GainHi)
	case !(s.GainLo > 0):
		s.Reason = fmt.Sprintf("the strong tier is not measurably better than the fast one on this log (mean gain %+.3f, 95%% interval [%+.3f, %+.3f]), so no ranking can show it", s.Gain, s.GainLo, s.GainHi)
	case math.IsNaN(s.APGR):
		s.Reason = "the router's out-of-fold APGR is undefined on this log"
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
	return s.NotShown() + "; so train's default policy escalates every request; the ranking is kept, and `triage calibrate` can set thresholds from its curves (or retrain on more requests)"
}

// NotShown says why a router that ranks is not shown to beat random, in
// one clause starting "not shown to beat random: ".
func (s Signal) NotShown() string {
	if !(s.APGR > 0.5) {
		return fmt.Sprintf("not shown to beat random: the router did no better than random on requests it had not seen (out-of-fold APGR %.3f, 95%% interval [%.3f, %.3f])", s.APGR, s.Lo, s.Hi)
	}
	if s.Lo > 0.5 {
		return fmt.Sprintf("not shown to beat random: out-of-fold APGR %.3f (95%% interval [%.3f, %.3f]), but the best of the candidates compared reaches %.3f on shuffled outcomes one time in twenty", s.APGR, s.Lo, s.Hi, s.NullQ95)
	}
	return fmt.Sprintf("not shown to beat random: out-of-fold APGR %.3f, but its 95%% interval [%.3f, %.3f] holds 0.5", s.APGR, s.Lo, s.Hi)
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

// nullPermutations is how many shuffles selectionNull draws.
const nullPermutations = 200

// selectionNull returns the 95th percentile of the best APGR among the
// rankings when the requests' outcomes are shuffled among them: the APGR
// a selection among these rankings reports, by chance one time in twenty,
// on a log whose outcomes are unrelated to the requests. The rankings
// stay as fitted; under that null they are independent of the held-out
// outcomes (each fold's model never saw its fold's), so the shuffle keeps
// what the interval of one ranking misses: how much taking the best of
// several correlated rankings lifts a figure whose expectation is 1/2.
// What holding the rankings fixed misses (each was fitted on the other
// folds' outcomes) is the same factor cvPairInflation the interval misses,
// so the percentile's distance from 1/2 is widened by it. Weights stay
// with their rows; only the gains move. It is NaN when no shuffle has a
// nonzero gain.
func selectionNull(rankings [][]float64, weak, strong, w []float64, seed uint64) float64 {
	n := len(weak)
	if n == 0 || len(rankings) == 0 {
		return math.NaN()
	}
	us := make([][]float64, len(rankings))
	for k, r := range rankings {
		us[k] = rankShares(r, w)
	}
	g := make([]float64, n)
	for i := range g {
		g[i] = strong[i] - weak[i]
	}
	rng := rand.New(rand.NewPCG(seed, 0x6e756c6c))
	best := make([]float64, 0, nullPermutations)
	for range nullPermutations {
		rng.Shuffle(n, func(i, j int) { g[i], g[j] = g[j], g[i] })
		var den float64
		for i, gi := range g {
			den += wt(w, i) * gi
		}
		if den == 0 {
			continue
		}
		m := math.Inf(-1)
		for _, u := range us {
			var num float64
			for i, gi := range g {
				num += wt(w, i) * gi * u[i]
			}
			m = max(m, num/den)
		}
		best = append(best, m)
	}
	if len(best) == 0 {
		return math.NaN()
	}
	slices.Sort(best)
	q := best[min(len(best)-1, int(0.95*float64(len(best))))]
	return 0.5 + cvPairInflation*(q-0.5)
}

package replay

import (
	"math"
	"slices"
	"testing"

	"github.com/triage-router/triage/models"
)

func TestAIQ(t *testing.T) {
	// Two single models at (1, 0.5) and (3, 0.7): the hull is the segment
	// between them, whose mean over [1,3] is 0.6.
	singles := []CurvePoint{{1, 0.5}, {3, 0.7}, {2, 0.55}}
	if got := AIQ(singles, 1, 3); math.Abs(got-0.6) > 1e-12 {
		t.Errorf("AIQ of the singles = %v, want 0.6", got)
	}
	// (2, 0.55) is under the segment, so not on the hull; (2, 0.65) is.
	if h := UpperHull(singles); len(h) != 2 {
		t.Errorf("hull = %v, want the two end points", h)
	}
	// A router at (1, 0.5), (2, 0.7): 0.6 on [1,2], then 0.7: mean 0.65.
	if got := AIQ([]CurvePoint{{1, 0.5}, {2, 0.7}, {3, 0.69}}, 1, 3); math.Abs(got-0.65) > 1e-12 {
		t.Errorf("AIQ of the router = %v, want 0.65", got)
	}
	// A curve that starts at cost 2 delivers nothing below it: 0 on
	// [1,2), 0.7 on [2,3]: mean 0.35.
	if got := AIQ([]CurvePoint{{2, 0.7}}, 1, 3); math.Abs(got-0.35) > 1e-9 {
		t.Errorf("AIQ of a curve starting at 2 = %v, want 0.35", got)
	}
}

func TestReplayTierRequest(t *testing.T) {
	prices := []float64{1, 2, 3}
	req := TierRequest{
		Pred: []float64{0.6, 0.62, 0.1}, Score: []float64{1, 0, 1},
		LatencyMS: []float64{100, 300, 900}, CostUSD: []float64{1, 2, 3},
		Confidence: []float64{0.9, math.NaN(), math.NaN()},
	}
	race := models.TierPolicy{Lambda: 0.1, Race: 0.2, AcceptConfidence: 0.8}
	// u = 0.5, 0.42, -0.2: tier 0 chosen, tier 1 within the race band.
	tier, partner, out := ReplayTierRequest(&req, prices, race, BillProrata)
	if tier != 0 || partner != 1 || !out.Accepted || out.Score != 1 || out.LatencyMS != 100 {
		t.Errorf("race with a confident lower answer: tier %d partner %d %+v; want tier 0's answer kept at 100 ms", tier, partner, out)
	}
	// The upper call ran 100 of its 300 ms: a third of its cost.
	if want := 1 + 2.0/3; math.Abs(out.CostUSD-want) > 1e-12 {
		t.Errorf("cost %v, want %v", out.CostUSD, want)
	}
	race.AcceptConfidence = 0.95
	if _, _, out := ReplayTierRequest(&req, prices, race, BillProrata); out.Accepted || out.Score != 0 || out.CostUSD != 3 || out.LatencyMS != 300 {
		t.Errorf("race below the gate: %+v; want tier 1's answer, both calls in full", out)
	}
	pt := ReplayTiers([]TierRequest{req, req}, prices, models.TierPolicy{}, BillProrata)
	if pt.Shares[1] != 1 || pt.Quality != 0 || pt.RaceShare != 0 {
		t.Errorf("at λ=0: %+v; want tier 1 (predicted best) for both", pt)
	}
}

// TestGridPointsAreNotBreakEvens: every point of LambdaGrid and MarginGrid
// replays to the same operating point as its neighbouring floats, so a
// row's λ or margin as printed (or passed back to train) gives the row's
// figures. The old grids sat on break-evens, where some request's two
// utilities are equal and a rounding moves it to the other tier. The
// predictions make every break-even exactly representable, so the tie is
// exact and the test does not hang on rounding.
func TestGridPointsAreNotBreakEvens(t *testing.T) {
	prices := []float64{1, 2}
	var reqs []TierRequest
	for _, p := range [][]float64{{0.5, 0.75}, {0.25, 0.75}, {0.5, 0.625}, {0.375, 0.875}, {0.75, 0.5}} {
		reqs = append(reqs, TierRequest{Pred: p, Score: []float64{0, 1}, LatencyMS: []float64{0, 0}, CostUSD: prices})
	}
	same := func(what string, p, q models.TierPolicy) {
		t.Helper()
		a, b := ReplayTiers(reqs, prices, p, BillFull), ReplayTiers(reqs, prices, q, BillFull)
		if !slices.Equal(a.Shares, b.Shares) {
			t.Errorf("%s: λ=%v margin=%v gives shares %v, λ=%v margin=%v gives %v", what, p.Lambda, p.Margin, a.Shares, q.Lambda, q.Margin, b.Shares)
		}
	}
	for _, n := range []int{2, 5, 100} {
		for _, l := range LambdaGrid(reqs, prices, n) {
			p := models.TierPolicy{Lambda: l}
			for _, q := range []float64{math.Nextafter(l, math.Inf(1)), math.Nextafter(l, 0)} {
				if l > 0 {
					same("LambdaGrid", p, models.TierPolicy{Lambda: q})
				}
			}
		}
		for _, m := range MarginGrid(reqs, n) {
			p := models.TierPolicy{Margin: m}
			for _, q := range []float64{math.Nextafter(m, math.Inf(1)), math.Nextafter(m, 0)} {
				if m > 0 {
					same("MarginGrid", p, models.TierPolicy{Margin: q})
				}
			}
		}
	}
}

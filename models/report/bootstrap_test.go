package report

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/triage-router/triage/models/replay"
)

// RelQualityLoAtLeast answers as BootstrapPoint's interval does, at the
// lower end itself and a float step either side of it: calibrate --meet
// ci95 checks policies with the one and prints the other.
func TestRelQualityLoAtLeastAgreesWithBootstrapPoint(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for c := range 20 {
		n := 5 + rng.IntN(200)
		if c < 2 {
			n = 4 + c // a tiny log: resamples with no strong score drawn
		}
		out := make([]replay.Replayed, n)
		strong := make([]float64, n)
		for i := range out {
			// Fractional scores, so the sums round; a few strong
			// scores of 0, so small logs have resamples whose strong
			// scores sum to 0 (a NaN ratio, left out of the interval).
			out[i] = replay.Replayed{Score: rng.Float64(), LatencyMS: float64(rng.IntN(50)), CostUSD: rng.Float64()}
			if rng.IntN(4) > 0 {
				strong[i] = rng.Float64()
			}
		}
		resamples := 100 + rng.IntN(200)
		seed := rng.Uint64()
		lo := BootstrapPoint(out, strong, resamples, seed).RelQuality.Lo
		for _, q := range []float64{lo, math.Nextafter(lo, math.Inf(1)), math.Nextafter(lo, math.Inf(-1)), lo - 0.05, lo + 0.05, math.NaN()} {
			t.Run(fmt.Sprintf("case %d, q %v", c, q), func(t *testing.T) {
				if got, want := RelQualityLoAtLeast(out, strong, resamples, seed, q), lo >= q; got != want {
					t.Errorf("RelQualityLoAtLeast %v, BootstrapPoint's lower end %v >= %v is %v", got, lo, q, want)
				}
			})
		}
	}
	t.Run("no requests meet nothing", func(t *testing.T) {
		if RelQualityLoAtLeast(nil, nil, 100, 1, 0) {
			t.Error("an empty log met quality 0")
		}
	})
}

// A RelQualityChecker answers as RelQualityLoAtLeast (and so as the
// printed interval) for every policy it is asked about, and gives
// BootstrapPoint's intervals (all, or quality/strong's) to the last bit, on logs scored 0
// or 1 (exact sums) and graded ones (close calls summed in the
// interval's order), past the resamples it keeps and with counts held
// wide, at the lower end itself and a float step either side of it.
func TestRelQualityCheckerAgreesWithRelQualityLoAtLeast(t *testing.T) {
	budget, narrow := relCheckBudget, narrowMax
	t.Cleanup(func() { relCheckBudget, narrowMax = budget, narrow })
	rng := rand.New(rand.NewPCG(5, 6))
	closeCalls := 0
	for c := range 12 {
		whole := c%2 == 0
		n := 5 + rng.IntN(200)
		if c < 2 {
			n = 4 + c // a tiny log: resamples with no strong score drawn
		}
		switch c % 6 {
		case 2, 3: // keep up to 50 resamples, draw the rest again
			relCheckBudget, narrowMax = n*(1+rng.IntN(50)), narrow
		case 4, 5: // hold counts above 1 wide
			relCheckBudget, narrowMax = budget, 1
		default:
			relCheckBudget, narrowMax = budget, narrow
		}
		score := func() float64 {
			if whole {
				return float64(rng.IntN(2))
			}
			return rng.Float64()
		}
		strong := make([]float64, n)
		for i := range strong {
			if rng.IntN(4) > 0 { // some 0s: resamples with a NaN ratio
				strong[i] = score()
			}
		}
		resamples := 100 + rng.IntN(200)
		seed := rng.Uint64()
		chk := NewRelQualityChecker(strong, resamples, seed)
		for p := range 4 {
			// A policy keeps the strong score on some requests and
			// its own on the others, at latencies of its own.
			out := make([]replay.Replayed, n)
			keep := rng.Float64()
			for i := range out {
				out[i] = replay.Replayed{Score: strong[i], LatencyMS: float64(rng.IntN(50)), CostUSD: rng.Float64()}
				if rng.Float64() < keep {
					out[i].Score = score()
				}
			}
			iv := BootstrapPoint(out, strong, resamples, seed)
			if p%2 == 1 { // its intervals, before or after its checks
				if got := chk.BootstrapPoint(out); fmt.Sprint(got) != fmt.Sprint(iv) {
					t.Errorf("log %d (whole %v, n %d), policy %d: the checker's intervals are %v, BootstrapPoint's %v", c, whole, n, p, got, iv)
				}
			}
			if got := chk.RelQuality(out); fmt.Sprint(got) != fmt.Sprint(iv.RelQuality) {
				t.Errorf("log %d (whole %v, n %d), policy %d: the checker's quality/strong interval is %v, BootstrapPoint's %v", c, whole, n, p, got, iv.RelQuality)
			}
			lo := iv.RelQuality.Lo
			for _, q := range []float64{lo, math.Nextafter(lo, math.Inf(1)), math.Nextafter(lo, math.Inf(-1)), lo - 0.05, lo + 0.05, math.NaN()} {
				got, want := chk.LoAtLeast(out, q), RelQualityLoAtLeast(out, strong, resamples, seed, q)
				if got != want || want != (lo >= q) {
					t.Errorf("log %d (whole %v, n %d), policy %d, q %v: the checker says %v, RelQualityLoAtLeast %v, the lower end %v", c, whole, n, p, q, got, want, lo)
				}
			}
			if p%2 == 0 {
				if got := chk.BootstrapPoint(out); fmt.Sprint(got) != fmt.Sprint(iv) {
					t.Errorf("log %d (whole %v, n %d), policy %d: the checker's intervals are %v, BootstrapPoint's %v", c, whole, n, p, got, iv)
				}
			}
		}
		closeCalls += chk.closeCalls
	}
	if closeCalls == 0 {
		t.Error("no resample was a close call: the graded logs do not test the fallback")
	}
	t.Run("no requests meet nothing", func(t *testing.T) {
		if NewRelQualityChecker(nil, 100, 1).LoAtLeast(nil, 0) {
			t.Error("an empty log met quality 0")
		}
	})
}

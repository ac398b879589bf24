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
		n := 5 + rng.IntN(300)
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

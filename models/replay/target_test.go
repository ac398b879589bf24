package replay

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/triage-router/triage/models"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in      string
		want    Target
		wantErr string
	}{
		{"strong-share=0.3", Target{TargetStrongShare, 0.3}, ""},
		{"cost-per-1k=$1.5", Target{TargetCostPer1k, 1.5}, ""},
		{"p95-latency=800ms", Target{TargetP95Latency, 800}, ""},
		{" quality = 0.95 ", Target{TargetQuality, 0.95}, ""},
		{"strong-share=1.3", Target{}, "a share is in [0,1] (for 1.3%, write strong-share=0.013)"},
		// Percentages, a newcomer's likeliest slip: the message gives the fraction.
		{"strong-share=30", Target{}, "a share is in [0,1] (for 30%, write strong-share=0.3)"},
		{"quality=95", Target{}, "1 is always-strong's (N tiers: the best single tier's) (for 95%, write quality=0.95)"},
		{"quality=250", Target{}, "relative quality is in (0,2]; 1 is always-strong's"},
		{"quality=0", Target{}, "relative quality"},
		{"cost-per-1k=-1", Target{}, "non-negative"},
		{"latency=3", Target{}, `kind "latency" is not known`},
		{"strong-share", Target{}, "want KIND=VALUE"},
		{"p95-latency=fast", Target{}, "is not a number"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseTarget(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// candidates is a small menu of operating points for the solver; always
// strong's quality is 0.8.
func candidates() []OperatingPoint {
	mk := func(s, share, q, cost, p95 float64) OperatingPoint {
		return OperatingPoint{Policy: models.Policy{SpeculateAbove: s, EscalateAbove: s, AcceptConfidence: 1}, StrongShare: share, Quality: q, CostPer1k: cost, LatencyP95MS: p95, LatencyMeanMS: p95 / 2}
	}
	return []OperatingPoint{
		mk(0.1, 0.10, 0.70, 1.0, 900),
		mk(0.2, 0.298, 0.74, 2.0, 1500),
		mk(0.3, 0.302, 0.75, 2.1, 1400),
		mk(0.4, 0.40, 0.77, 3.0, 1300),
		mk(0.5, 0.60, 0.79, 4.0, 1800),
	}
}

func TestSolver(t *testing.T) {
	tests := []struct {
		name     string
		targets  []Target
		minimize Objective
		want     float64 // SpeculateAbove of the chosen point
		wantErr  bool
	}{
		{"a share target picks the cheapest point within tolerance", []Target{{TargetStrongShare, 0.3}}, MinimizeCost, 0.2, false},
		{"a latency objective picks the lowest p95 within tolerance", []Target{{TargetStrongShare, 0.3}}, MinimizeLatency, 0.3, false},
		{"a quality floor is relative to always-strong", []Target{{TargetQuality, 0.95}}, MinimizeCost, 0.4, false}, // 0.76/0.8
		{"a cost ceiling and a quality floor together", []Target{{TargetCostPer1k, 3.5}, {TargetQuality, 0.9}}, MinimizeLatency, 0.4, false},
		{"a p95 ceiling", []Target{{TargetP95Latency, 1000}}, MinimizeCost, 0.1, false},
		{"a cost ceiling with the quality objective buys the best quality within it", []Target{{TargetCostPer1k, 3.5}}, MaximizeQuality, 0.4, false},
		{"a latency ceiling with the quality objective", []Target{{TargetP95Latency, 1450}}, MaximizeQuality, 0.4, false},
		{"an impossible pair is infeasible", []Target{{TargetCostPer1k, 1.5}, {TargetQuality, 0.95}}, MinimizeCost, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Solver{Targets: tc.targets, Minimize: tc.minimize, StrongQuality: 0.8}
			for _, op := range candidates() {
				s.Consider(&op)
			}
			got, err := s.Result()
			if tc.wantErr {
				var inf *InfeasibleError
				if !errors.As(err, &inf) || !errors.Is(err, ErrInfeasible) {
					t.Fatalf("got %v, want an InfeasibleError", err)
				}
				// Summed relative misses, by hand: s=0.1 misses quality only,
				// (0.95-0.70/0.8)/0.95 = 0.079; s=0.2 misses cost by 2/1.5-1 =
				// 0.33 plus quality 0.026; the others miss cost by more.
				if inf.Closest.Policy.SpeculateAbove != 0.1 || !strings.Contains(err.Error(), "closest is speculate_above=0.1") {
					t.Errorf("got closest %+v, message %q", inf.Closest.Policy, err)
				}
				return
			}
			if err != nil || got.Policy.SpeculateAbove != tc.want {
				t.Errorf("got %+v, %v; want speculate_above %v", got.Policy, err, tc.want)
			}
		})
	}
}

// TestSolverFront: with KeepFront the solver keeps the points that meet
// the targets and that no other such point beats on both cost and
// quality, cheapest first, for calibrate --meet ci95 to walk.
func TestSolverFront(t *testing.T) {
	mk := func(s, q, cost float64) OperatingPoint {
		return OperatingPoint{Policy: models.Policy{SpeculateAbove: s}, Quality: q, CostPer1k: cost}
	}
	pts := append(candidates(),
		mk(0.6, 0.73, 2.0),  // as cheap as 0.2 and worse: left out
		mk(0.7, 0.76, 3.5),  // dearer than 0.4 and worse: left out
		mk(0.8, 0.745, 2.0), // as cheap as 0.2 and better: replaces it
		mk(0.9, 0.80, 1.5),  // cheaper than 0.2-0.5 and better: replaces them all
	)
	for _, tc := range []struct {
		name string
		pts  []OperatingPoint
		want []float64 // SpeculateAbove along the front
	}{
		{"the candidates alone", pts[:5], []float64{0.2, 0.3, 0.4, 0.5}},
		{"dominated points are left out and replaced", pts[:8], []float64{0.8, 0.3, 0.4, 0.5}},
		{"a cheaper better point clears the dearer ones", pts, []float64{0.9}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// quality=0.9 of 0.8 is 0.72 at least: s=0.1 (0.70) misses it.
			s := &Solver{Targets: []Target{{TargetQuality, 0.9}}, StrongQuality: 0.8, KeepFront: true}
			for _, op := range tc.pts {
				s.Consider(&op)
			}
			var got []float64
			for _, op := range s.Front() {
				got = append(got, op.Policy.SpeculateAbove)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("front %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("without KeepFront there is none", func(t *testing.T) {
		s := &Solver{Targets: []Target{{TargetQuality, 0.9}}, StrongQuality: 0.8}
		for _, op := range pts {
			s.Consider(&op)
		}
		if f := s.Front(); f != nil {
			t.Errorf("front %v, want nil", f)
		}
	})
}

// TestSolverCheapest: with KeepCheapest the solver keeps the best points
// on the objective that meet the targets, off the front too, best first
// (ties to higher quality, then by threshold); with After it keeps the
// next ones, so sweeps in bands give every point once, in order:
// calibrate --meet ci95 checks them so.
func TestSolverCheapest(t *testing.T) {
	mk := func(s, q, cost float64) OperatingPoint {
		return OperatingPoint{Policy: models.Policy{SpeculateAbove: s}, Quality: q, CostPer1k: cost}
	}
	pts := []OperatingPoint{
		mk(0.1, 0.70, 1.0),  // misses quality=0.9 of 0.8 (0.72)
		mk(0.2, 0.80, 3.0),  // on the front
		mk(0.3, 0.74, 2.0),  // on the front
		mk(0.4, 0.73, 2.5),  // off it: 0.3 is cheaper and better
		mk(0.5, 0.75, 2.0),  // as cheap as 0.3 and better: first
		mk(0.6, 0.721, 4.0), // off it, dearest
		mk(0.7, 0.719, 0.5), // misses
		mk(0.8, 0.73, 2.5),  // ties with 0.4: after it, by threshold
	}
	want := []float64{0.5, 0.3, 0.4, 0.8, 0.2, 0.6}
	solve := func(keep int, after *OperatingPoint) []OperatingPoint {
		s := &Solver{Targets: []Target{{TargetQuality, 0.9}}, StrongQuality: 0.8, KeepCheapest: keep, After: after}
		for _, op := range pts {
			s.Consider(&op)
		}
		return s.Cheapest()
	}
	for _, keep := range []int{1, 2, 3, 100} {
		t.Run(fmt.Sprintf("in bands of %d", keep), func(t *testing.T) {
			var got []float64
			var after *OperatingPoint
			for range len(pts) + 1 {
				band := solve(keep, after)
				if len(band) > keep {
					t.Fatalf("a band of %d, want at most %d", len(band), keep)
				}
				for _, op := range band {
					got = append(got, op.Policy.SpeculateAbove)
				}
				if len(band) < keep {
					break
				}
				after = &band[len(band)-1]
			}
			if !slices.Equal(got, want) {
				t.Errorf("cheapest %v, want %v", got, want)
			}
		})
	}
	if f := solve(0, nil); f != nil {
		t.Errorf("without KeepCheapest: %v, want nil", f)
	}
}

func TestSolverNeedsPercentiles(t *testing.T) {
	tests := []struct {
		name string
		s    Solver
		want bool
	}{
		{"a share target with cost objective does not", Solver{Targets: []Target{{TargetStrongShare, 0.3}}}, false},
		{"a p95 target does", Solver{Targets: []Target{{TargetP95Latency, 900}}}, true},
		{"a latency objective does", Solver{Minimize: MinimizeLatency}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.s.NeedsPercentiles(); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestDescribePointWordsWhatIsUnknown: the closest point an infeasible
// target names is described without NaN: quality relative to an
// always-strong that scores 0 said "NaN of always-strong".
func TestDescribePointWordsWhatIsUnknown(t *testing.T) {
	nan := math.NaN()
	got := DescribePoint(&OperatingPoint{StrongShare: 0.3, Quality: 0, CostPer1k: nan, LatencyP95MS: nan}, 0)
	for _, want := range []string{"always-strong scores 0", "cost unknown", "latency unknown"} {
		if !strings.Contains(got, want) {
			t.Errorf("DescribePoint = %q, want it to say %q", got, want)
		}
	}
	if strings.Contains(got, "NaN") {
		t.Errorf("DescribePoint = %q, want no NaN", got)
	}
}

package classifier

import (
	"fmt"
	"math"
	"testing"
)

func TestRoutingMetricsMatchMetricsPy(t *testing.T) {
	g := loadGolden(t)
	for _, tc := range g.Routing {
		t.Run(tc.Name, func(t *testing.T) {
			// Scores have no ties, so metrics.py's random tie-breaking does
			// not matter and its values are exact up to summation order.
			c, q, pgr := PGRCurve(tc.Score, tc.Weak, tc.Strong)
			assertSliceClose(t, "c", c, tc.C, 1e-12)
			assertSliceClose(t, "quality", q, tc.Quality, 1e-9)
			assertSliceClose(t, "pgr", pgr, tc.PGR, 1e-9)
			assertClose(t, "APGR", APGR(tc.Score, tc.Weak, tc.Strong), tc.APGR, 1e-9)
			for _, x := range []float64{0.3, 0.5, 0.8, 0.95} {
				want := tc.CPT[fmt.Sprint(x)]
				if got := CPT(tc.Score, tc.Weak, tc.Strong, x); got != want {
					t.Errorf("CPT(%v) = %v, want %v", x, got, want)
				}
			}
			hard := make([]float64, len(tc.Weak))
			for i, v := range tc.Weak {
				if v < 0.5 {
					hard[i] = 1
				}
			}
			// sklearn roc_auc_score, with and without sample_weight.
			assertClose(t, "AUC", AUC(tc.Score, hard, nil), tc.AUCWeakFails, 1e-12)
			assertClose(t, "weighted AUC", AUC(tc.Score, hard, tc.AUCWeights), tc.AUCWeakFailsWeighted, 1e-12)
		})
	}
}

// bruteForceQuality averages the quality curve over every order of the
// rows that sorts score descending: the exact expectation under random
// tie-breaking. Exponential; for tiny inputs only.
func bruteForceQuality(score, weak, strong []float64) []float64 {
	n := len(score)
	acc := make([]float64, n+1)
	count := 0
	perm := make([]int, n)
	used := make([]bool, n)
	var rw float64
	for _, v := range weak {
		rw += v
	}
	rw /= float64(n)
	var rec func(k int)
	rec = func(k int) {
		if k == n {
			cum := 0.0
			acc[0] += rw
			for j, i := range perm {
				cum += strong[i] - weak[i]
				acc[j+1] += rw + cum/float64(n)
			}
			count++
			return
		}
		for i := range n {
			if used[i] || (k > 0 && score[i] > score[perm[k-1]]) {
				continue
			}
			used[i], perm[k] = true, i
			rec(k + 1)
			used[i] = false
		}
	}
	rec(0)
	for k := range acc {
		acc[k] /= float64(count)
	}
	return acc
}

func TestPGRCurveTies(t *testing.T) {
	tests := []struct {
		name                string
		score, weak, strong []float64
	}{
		{"two tie groups", []float64{1, 1, 1, 0, 0, 2}, []float64{0, 1, 0, 1, 0, 0}, []float64{1, 1, 0, 1, 1, 1}},
		{"all tied", []float64{3, 3, 3, 3, 3}, []float64{0, 1, 0.5, 0, 1}, []float64{1, 1, 1, 0, 0.5}},
		{"no ties", []float64{0.1, 0.4, 0.3, 0.2}, []float64{0, 1, 0, 1}, []float64{1, 1, 0, 1}},
		{"ties with fractional gains", []float64{2, 1, 2, 1, 2, 0, 1}, []float64{0.2, 0.9, 0.4, 0.1, 0.3, 0.5, 0.6}, []float64{0.8, 0.7, 1, 0.9, 0.3, 0.5, 0.2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Expected: the average over all tie-breaking orders.
			want := bruteForceQuality(tc.score, tc.weak, tc.strong)
			_, got, _ := PGRCurve(tc.score, tc.weak, tc.strong)
			assertSliceClose(t, "quality", got, want, 1e-12)
		})
	}
}

func TestAPGRConstantScoreIsRandomRouter(t *testing.T) {
	g := loadGolden(t)
	for _, tc := range g.Routing {
		t.Run(tc.Name, func(t *testing.T) {
			score := make([]float64, len(tc.Score))
			// A constant score sends a random subset: PGR(c) = c exactly in
			// expectation, so APGR is 1/2 up to rounding.
			assertClose(t, "APGR", APGR(score, tc.Weak, tc.Strong), 0.5, 1e-12)
			c, _, pgr := PGRCurve(score, tc.Weak, tc.Strong)
			assertSliceClose(t, "pgr", pgr, c, 1e-12)
		})
	}
}

func TestTiesAgainstMetricsPyDraws(t *testing.T) {
	g := loadGolden(t)
	tc := g.Ties
	// metrics.py averages 8 random tie-breaks of 400 rows in 5 score
	// levels; its APGR differs from the exact expectation by sampling noise
	// only. 0.01 is several standard deviations of that noise here.
	got := APGR(tc.Score, tc.Weak, tc.Strong)
	if math.Abs(got-tc.APGR8Draws) > 0.01 {
		t.Errorf("APGR = %v, metrics.py's 8-draw estimate is %v; want them within 0.01", got, tc.APGR8Draws)
	}
	hard := make([]float64, len(tc.Weak))
	for i, v := range tc.Weak {
		if v < 0.5 {
			hard[i] = 1
		}
	}
	// sklearn counts ties as half, as AUC does: exact.
	assertClose(t, "AUC with ties", AUC(tc.Score, hard, nil), tc.AUCWeakFails, 1e-12)
}

func TestProbabilityMetricsMatchSklearn(t *testing.T) {
	g := loadGolden(t)
	pr := g.Prob
	// sklearn.metrics log_loss (eps 1e-15) and brier_score_loss; ECE from
	// numpy in gen_golden.py.
	assertClose(t, "LogLoss", LogLoss(pr.P, pr.Y, nil), pr.LogLoss, 1e-12)
	assertClose(t, "weighted LogLoss", LogLoss(pr.P, pr.Y, pr.W), pr.LogLossWeighted, 1e-12)
	assertClose(t, "Brier", Brier(pr.P, pr.Y, nil), pr.Brier, 1e-12)
	assertClose(t, "weighted Brier", Brier(pr.P, pr.Y, pr.W), pr.BrierWeighted, 1e-12)
	assertClose(t, "ECE", ECE(pr.P, pr.Y, 10), pr.ECE10, 1e-12)
	assertClose(t, "ECE with default bins", ECE(pr.P, pr.Y, 0), pr.ECE10, 1e-12)
}

func TestMetricsEdgeCases(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name      string
		got, want float64
	}{
		{"AUC of one class is NaN", AUC([]float64{1, 2}, []float64{1, 1}, nil), nan},
		{"AUC of a NaN score is NaN", AUC([]float64{1, nan}, []float64{1, 0}, nil), nan},
		{"AUC of a perfect ranking is 1", AUC([]float64{0.1, 0.9}, []float64{0, 1}, nil), 1},
		{"AUC of all ties is 0.5", AUC([]float64{1, 1, 1}, []float64{0, 1, 0}, nil), 0.5},
		{"AUC ignores zero-weight rows", AUC([]float64{0.1, 0.5, 0.9}, []float64{0, 1, 1}, []float64{1, 1, 0}), 1},
		{"LogLoss clips p = 0 on a positive", LogLoss([]float64{0}, []float64{1}, nil), -math.Log(LogLossEps)},
		{"LogLoss of empty input is NaN", LogLoss(nil, nil, nil), nan},
		{"Brier of a sure hit is 0", Brier([]float64{1}, []float64{1}, nil), 0},
		{"ECE of p = 1 uses the last bin", ECE([]float64{1, 1}, []float64{1, 0}, 10), 0.5},
		{"ECE of empty input is NaN", ECE(nil, nil, 10), nan},
		{"APGR of equal tiers is NaN", APGR([]float64{1, 2}, []float64{1, 0}, []float64{0, 1}), nan},
		{"CPT of equal tiers is 1", CPT([]float64{1, 2}, []float64{1, 0}, []float64{0, 1}, 0.5), 1},
		{"APGR of empty input is NaN", APGR(nil, nil, nil), nan},
		{"CPT of an unreachable target is 1", CPT([]float64{1, 2}, []float64{0, 0}, []float64{1, 1}, 2), 1},
		{"APGR of the oracle on one hard row", APGR([]float64{0, 1}, []float64{1, 0}, []float64{1, 1}), 0.75},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !near(tc.got, tc.want, 1e-12) {
				t.Errorf("got %v, want %v", tc.got, tc.want)
			}
		})
	}
	t.Run("PGRCurve of a NaN score is NaN", func(t *testing.T) {
		_, q, p := PGRCurve([]float64{1, nan}, []float64{0, 0}, []float64{1, 1})
		for k := range q {
			if !math.IsNaN(q[k]) || !math.IsNaN(p[k]) {
				t.Fatalf("quality[%d], pgr[%d] = %v, %v, want NaN", k, k, q[k], p[k])
			}
		}
	})
	t.Run("mismatched lengths panic", func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Error("AUC with 2 scores and 1 label did not panic")
			}
		}()
		AUC([]float64{1, 2}, []float64{1}, nil)
	})
}

package classifier

import (
	"math"
	"strings"
	"testing"
)

// subset copies the given rows into a new matrix, for fitting folds the
// plain way.
func subset(X *Sparse, y, w []float64, rows []int) (*Sparse, []float64, []float64) {
	S := NewSparse(X.Dim)
	var ys, ws []float64
	for _, i := range rows {
		idx, val := X.Row(i)
		S.AppendRow(idx, val)
		ys = append(ys, y[i])
		ws = append(ws, w[i])
	}
	return S, ys, ws
}

func TestCrossValidateMatchesPlainFoldFits(t *testing.T) {
	X, y, _ := synthetic(t, 600, 400, 15, 23)
	w := make([]float64, len(y))
	folds := make([]int, len(y))
	for i := range y {
		w[i] = 0.5 + float64(i%4)/2
		folds[i] = (i * 7) % 3
	}
	grid := []float64{1e-3, 1e-1, 1e-2}
	opts := Options{GradTol: 1e-9}
	res, err := CrossValidate(X, y, w, folds, grid, opts)
	if err != nil {
		t.Fatal(err)
	}
	// Expected: K independent fits on copied sub-matrices per grid value,
	// each from zero (CrossValidate warm-starts and fits row subsets in
	// place, so this checks both against the simple way).
	wantLoss := make([]float64, len(grid))
	best, bestLoss := 0, math.Inf(1)
	var bestOOF []float64
	for gi, l2 := range grid {
		oof := make([]float64, len(y))
		for f := range 3 {
			var tr, te []int
			for i, g := range folds {
				if g == f {
					te = append(te, i)
				} else {
					tr = append(tr, i)
				}
			}
			Xs, ys, ws := subset(X, y, w, tr)
			o := opts
			o.L2 = l2
			m, err := Fit(Xs, ys, ws, o)
			if err != nil {
				t.Fatal(err)
			}
			for _, i := range te {
				idx, val := X.Row(i)
				oof[i] = m.Logit(idx, val)
			}
		}
		p := make([]float64, len(y))
		for i, z := range oof {
			p[i] = Sigmoid(z)
		}
		wantLoss[gi] = LogLoss(p, y, w)
		if wantLoss[gi] < bestLoss {
			best, bestLoss, bestOOF = gi, wantLoss[gi], oof
		}
	}
	// Warm starts move the stopping point within GradTol 1e-9 of the
	// optimum: values agree to ~1e-8.
	assertSliceClose(t, "cv loss", res.Loss, wantLoss, 1e-7)
	if res.Best != grid[best] {
		t.Errorf("best = %v, want %v (losses %v)", res.Best, grid[best], wantLoss)
	}
	assertSliceClose(t, "out-of-fold logits", res.OOF, bestOOF, 1e-6)

	l2, losses, err := SelectL2(X, y, w, folds, grid, opts)
	if err != nil {
		t.Fatal(err)
	}
	if l2 != res.Best {
		t.Errorf("SelectL2 chose %v, CrossValidate %v", l2, res.Best)
	}
	assertSliceClose(t, "SelectL2 losses", losses, res.Loss, 0)
}

func TestSelectL2PrefersStrongPenaltyOnNoise(t *testing.T) {
	// Labels independent of 2,000 sparse features on 300 rows: any fitted
	// weight is overfitting, so the strongest penalty must win.
	X, _, _ := synthetic(t, 300, 2000, 20, 29)
	y := make([]float64, X.Rows())
	folds := make([]int, X.Rows())
	for i := range y {
		y[i] = float64((i * 2654435761 >> 7) & 1)
		folds[i] = i % 5
	}
	best, losses, err := SelectL2(X, y, nil, folds, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	grid := DefaultL2Grid()
	if len(losses) != len(grid) {
		t.Fatalf("got %d losses for %d grid values", len(losses), len(grid))
	}
	if best != grid[len(grid)-1] {
		t.Errorf("best L2 = %v, want the largest, %v (losses %v)", best, grid[len(grid)-1], losses)
	}
}

func TestDefaultL2Grid(t *testing.T) {
	g := DefaultL2Grid()
	if len(g) != 11 || !near(g[0], 1e-6, 1e-12) || !near(g[10], 1e-1, 1e-12) {
		t.Errorf("DefaultL2Grid() = %v, want 11 values from 1e-6 to 1e-1", g)
	}
	for i := 1; i < len(g); i++ {
		assertClose(t, "grid ratio", g[i]/g[i-1], math.Sqrt(10), 1e-12)
	}
}

func TestCrossValidateRejectsBadFoldsAndGrids(t *testing.T) {
	X, y, _ := synthetic(t, 20, 10, 3, 31)
	okFolds := func() []int {
		f := make([]int, len(y))
		for i := range f {
			f[i] = i % 2
		}
		return f
	}
	tests := []struct {
		name    string
		folds   func() []int
		grid    []float64
		wantErr string
	}{
		{"a negative fold", func() []int { f := okFolds(); f[3] = -1; return f }, nil, "fold of row 3 is -1"},
		{"a single fold", func() []int { return make([]int, len(y)) }, nil, "at least 2"},
		{"a gap in the fold ids", func() []int { f := okFolds(); f[0] = 3; return f }, nil, "fold 2 has no rows"},
		{"a zero grid value", okFolds, []float64{1e-3, 0}, "grid value 0"},
		{"a NaN grid value", okFolds, []float64{math.NaN()}, "grid value NaN"},
		{"an empty grid", okFolds, []float64{}, "grid is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := SelectL2(X, y, nil, tc.folds(), tc.grid, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("SelectL2 error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

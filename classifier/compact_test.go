package classifier

import (
	"math"
	"slices"
	"testing"
)

func TestCompactColumnsGivesTheSameFits(t *testing.T) {
	// A wide, mostly empty space, as hashing gives, with some columns
	// holding only zeros, as IDF's min_df gives.
	X, y, _ := synthetic(t, 3000, 50000, 20, 21)
	for k, j := range X.Idx {
		if j%7 == 0 {
			X.Val[k] = 0
		}
	}
	folds := make([]int, len(y))
	for i := range folds {
		folds[i] = i % 3
	}
	grid := []float64{1e-3, 1e-2}
	wantM, err := Fit(X, y, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	wantCV, err := CrossValidate(X, y, nil, folds, grid, Options{})
	if err != nil {
		t.Fatal(err)
	}

	cx := &Sparse{Dim: X.Dim, Indptr: X.Indptr, Idx: slices.Clone(X.Idx), Val: X.Val}
	cols := CompactColumns(cx)
	if cols == nil {
		t.Fatal("CompactColumns kept every column of a mostly empty space")
	}
	if cx.Dim != len(cols)+1 {
		t.Errorf("compacted to %d columns, want %d in use plus one for the zeros", cx.Dim, len(cols))
	}
	t.Run("a fit on the compacted matrix expands to Fit's weights, bit for bit", func(t *testing.T) {
		m, err := Fit(cx, y, nil, Options{})
		if err != nil {
			t.Fatal(err)
		}
		got := ExpandWeights(m.W, cols, X.Dim)
		if math.Float64bits(m.B) != math.Float64bits(wantM.B) {
			t.Errorf("b = %v, want %v", m.B, wantM.B)
		}
		for j := range got {
			if math.Float64bits(got[j]) != math.Float64bits(wantM.W[j]) {
				t.Fatalf("w[%d] = %v, want %v", j, got[j], wantM.W[j])
			}
		}
	})
	t.Run("cross-validation on it gives the same losses and logits", func(t *testing.T) {
		cv, err := CrossValidate(cx, y, nil, folds, grid, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if cv.Best != wantCV.Best || !slices.Equal(cv.Loss, wantCV.Loss) || !slices.Equal(cv.OOF, wantCV.OOF) {
			t.Errorf("got best %v, losses %v; want %v, %v (or the logits differ)", cv.Best, cv.Loss, wantCV.Best, wantCV.Loss)
		}
	})
	t.Run("a dense matrix is left as it is", func(t *testing.T) {
		D, _, _ := synthetic(t, 500, 20, 10, 3)
		idx := slices.Clone(D.Idx)
		if cols := CompactColumns(D); cols != nil || D.Dim != 20 || !slices.Equal(D.Idx, idx) {
			t.Errorf("got cols %v, dim %d; want nil and the matrix unchanged", cols, D.Dim)
		}
	})
}

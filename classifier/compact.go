package classifier

// compactColumns returns X with its columns renumbered so that only those
// holding a nonzero value in some row remain, in their original order, and
// cols, the original column of each new one. Hashed feature spaces are
// mostly empty (and IDF zeroes the columns seen once), so the dense work of
// every pass (merging chunk buffers, the solver's vector algebra) and the
// cache footprint of the weights shrink to the columns in use. Entries of
// the other columns, all zero, go to one extra last column that is not in
// cols: its weight starts at zero, gets no gradient and no curvature from
// zero values, and so stays zero. The result shares Indptr and Val with X
// and has a new Idx; cols is nil (and X returned as is) when too few
// columns would go to be worth that copy.
func compactColumns(X *Sparse) (*Sparse, []int32) {
	count := make([]int32, X.Dim) // nonzero entries per column
	for k, j := range X.Idx {
		if X.Val[k] != 0 {
			count[j]++
		}
	}
	var cols []int32
	for j, c := range count {
		if c > 0 {
			cols = append(cols, int32(j))
		}
	}
	n := len(cols)
	if n+1 > X.Dim-X.Dim/8 {
		return X, nil
	}
	remap := make([]int32, X.Dim)
	for j := range remap {
		remap[j] = -1
	}
	for c, j := range cols {
		remap[j] = int32(c)
	}
	zeroOnly := false
	idx := make([]int32, len(X.Idx))
	for k, j := range X.Idx {
		c := remap[j]
		if c < 0 {
			c = int32(n)
			zeroOnly = true
		}
		idx[k] = c
	}
	dim := n
	if zeroOnly {
		dim++
	}
	return &Sparse{Dim: dim, Indptr: X.Indptr, Idx: idx, Val: X.Val}, cols
}

// compactModel returns m's weights on the columns cols of a matrix of dim
// columns (dim >= len(cols)); nil stays nil.
func compactModel(m *Model, cols []int32, dim int) *Model {
	if m == nil {
		return nil
	}
	w := make([]float64, dim)
	for c, j := range cols {
		w[c] = m.W[j]
	}
	return &Model{W: w, B: m.B}
}

// expandModel returns the model over dim columns whose weight on column
// cols[c] is m.W[c] and zero elsewhere.
func expandModel(m *Model, cols []int32, dim int) *Model {
	w := make([]float64, dim)
	for c, j := range cols {
		w[j] = m.W[c]
	}
	return &Model{W: w, B: m.B}
}

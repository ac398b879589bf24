package classifier

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
)

func TestSparseRows(t *testing.T) {
	X := NewSparse(5)
	X.AppendRow([]int32{4, 0, 4}, []float64{1, 2, 3})
	X.AppendRow(nil, nil)
	X.AppendRow([]int32{2}, []float64{-1})
	if got, want := X.Rows(), 3; got != want {
		t.Fatalf("Rows() = %d, want %d", got, want)
	}
	if got, want := X.NNZ(), 4; got != want {
		t.Errorf("NNZ() = %d, want %d", got, want)
	}
	idx, val := X.Row(0)
	if !slices.Equal(idx, []int32{4, 0, 4}) || !slices.Equal(val, []float64{1, 2, 3}) {
		t.Errorf("Row(0) = %v, %v; want [4 0 4], [1 2 3]", idx, val)
	}
	if idx, _ := X.Row(1); len(idx) != 0 {
		t.Errorf("Row(1) has %d entries, want 0", len(idx))
	}
	// Appending to a returned row must not overwrite the next row.
	idx, val = X.Row(1)
	_ = append(idx, 9)
	_ = append(val, 9)
	if idx, _ := X.Row(2); idx[0] != 2 {
		t.Errorf("appending to Row(1) changed Row(2) to %v", idx)
	}
	if err := X.Validate(); err != nil {
		t.Errorf("Validate() = %v, want nil", err)
	}
	if got := (&Sparse{}).Rows(); got != 0 {
		t.Errorf("zero Sparse has %d rows, want 0", got)
	}
}

func TestSparseValidate(t *testing.T) {
	tests := []struct {
		name    string
		s       Sparse
		wantErr string
	}{
		{"indptr not starting at zero", Sparse{Dim: 2, Indptr: []int{1, 1}}, "indptr[0]"},
		{"indptr decreasing", Sparse{Dim: 2, Indptr: []int{0, 2, 1}, Idx: []int32{0}, Val: []float64{1}}, "indptr decreases at row 1"},
		{"lengths differ", Sparse{Dim: 2, Indptr: []int{0, 1}, Idx: []int32{0}, Val: nil}, "1 indices but 0 values"},
		{"column out of range", Sparse{Dim: 2, Indptr: []int{0, 1}, Idx: []int32{2}, Val: []float64{1}}, "column 2"},
		{"NaN value", Sparse{Dim: 2, Indptr: []int{0, 1, 2}, Idx: []int32{0, 1}, Val: []float64{1, math.NaN()}}, "(row 1) is NaN"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.s.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestAppendRowPanicsOnProgrammerError(t *testing.T) {
	tests := []struct {
		name string
		idx  []int32
		val  []float64
	}{
		{"index beyond dim", []int32{3}, []float64{1}},
		{"negative index", []int32{-1}, []float64{1}},
		{"length mismatch", []int32{0, 1}, []float64{1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if s, ok := r.(string); !ok || !strings.HasPrefix(s, "classifier: ") {
					t.Errorf("recovered %v, want a panic starting with \"classifier: \"", r)
				}
			}()
			NewSparse(3).AppendRow(tc.idx, tc.val)
		})
	}
}

func TestAppendRowSummed(t *testing.T) {
	tests := []struct {
		name    string
		idx     []int32
		val     []float64
		wantIdx []int32
		wantVal []float64
	}{
		{"an empty row stays empty", nil, nil, nil, nil},
		{"distinct columns come out sorted", []int32{3, 0, 2}, []float64{1, 2, 3}, []int32{0, 2, 3}, []float64{2, 3, 1}},
		{"repeated columns are summed", []int32{4, 1, 4, 1, 4}, []float64{1, 2, 3, 4, 5}, []int32{1, 4}, []float64{6, 9}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			X := NewSparse(5)
			X.AppendRow([]int32{0}, []float64{7})
			X.AppendRowSummed(tc.idx, tc.val)
			X.AppendRow([]int32{1}, []float64{8})
			idx, val := X.Row(1)
			if !slices.Equal(idx, tc.wantIdx) || !slices.Equal(val, tc.wantVal) {
				t.Errorf("Row(1) = %v, %v; want %v, %v", idx, val, tc.wantIdx, tc.wantVal)
			}
			if idx, val := X.Row(2); !slices.Equal(idx, []int32{1}) || !slices.Equal(val, []float64{8}) {
				t.Errorf("Row(2) = %v, %v; want [1], [8]", idx, val)
			}
			if err := X.Validate(); err != nil {
				t.Errorf("Validate() = %v, want nil", err)
			}
		})
	}
}

func TestCompactColumnsKeepsTheFit(t *testing.T) {
	// Eight columns used of 64, one more holding only zeros: the fit on the
	// compacted matrix, expanded back, must be the fit on the wide one.
	wide := NewSparse(64)
	var y []float64
	for i := range 40 {
		j := int32(8 * (i % 8))
		wide.AppendRow([]int32{j, int32(8 * ((i + 3) % 8)), 63}, []float64{1, float64(i%5) / 4, 0})
		y = append(y, float64(i%3%2))
	}
	cx, cols := compactColumns(wide)
	if cols == nil {
		t.Fatal("compactColumns kept all 64 columns, want 8")
	}
	if got, want := cx.Dim, 9; got != want {
		t.Errorf("compact dim = %d, want %d (8 used + 1 for zeros)", got, want)
	}
	m, err := Fit(wide, y, nil, Options{L2: 1e-2})
	if err != nil {
		t.Fatal(err)
	}
	ref, _, err := fitRows(wide, y, nil, nil, Options{L2: 1e-2})
	if err != nil {
		t.Fatal(err)
	}
	for j := range m.W {
		if math.Abs(m.W[j]-ref.W[j]) > 1e-9 {
			t.Errorf("W[%d] = %v, want %v (the fit without compaction)", j, m.W[j], ref.W[j])
		}
	}
	if math.Abs(m.B-ref.B) > 1e-9 {
		t.Errorf("B = %v, want %v", m.B, ref.B)
	}
}

// sumRowReference is SumRow as it was before its fast path: sort.Sort,
// then repeats added in the order the sort left them.
func sumRowReference(idx []int32, val []float64) int {
	sort.Sort(entries{idx, val})
	n := 0
	for k := range idx {
		if n > 0 && idx[n-1] == idx[k] {
			val[n-1] += val[k]
			continue
		}
		idx[n], val[n] = idx[k], val[k]
		n++
	}
	return n
}

func TestSumRowMatchesTheSortItReplaced(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, tc := range []struct {
		name string
		cols int     // columns drawn from [0, cols)
		mix  float64 // share of entries with a value of their own
	}{
		{"rows whose repeats hold one value", 50, 0},
		{"rows where some repeats hold other values", 50, 0.2},
		{"rows with repeats of many values", 8, 1},
		{"rows without repeats", 1 << 20, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for r := range 2000 {
				n := rng.IntN(300) // past the stack buffer too
				idx := make([]int32, n)
				val := make([]float64, n)
				w := 1 / math.Sqrt(float64(n+1))
				for k := range idx {
					idx[k] = int32(rng.IntN(tc.cols))
					val[k] = w
					if rng.Float64() < tc.mix {
						val[k] = rng.Float64()
					}
				}
				wi, wv := slices.Clone(idx), slices.Clone(val)
				wn := sumRowReference(wi, wv)
				gn := SumRow(idx, val)
				if gn != wn || !slices.Equal(idx[:gn], wi[:wn]) {
					t.Fatalf("row %d: got columns %v, want %v", r, idx[:gn], wi[:wn])
				}
				for k := range gn {
					if math.Float64bits(val[k]) != math.Float64bits(wv[k]) {
						t.Fatalf("row %d: column %d sums to %v, want %v bit for bit", r, idx[k], val[k], wv[k])
					}
				}
			}
		})
	}
}

func BenchmarkSumRow(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 40
	idx0 := make([]int32, n)
	val0 := make([]float64, n)
	for k := range idx0 {
		idx0[k] = int32(rng.IntN(1 << 18))
		val0[k] = 0.2
	}
	idx0[7], idx0[20] = idx0[3], idx0[3] // repeated words
	idx, val := make([]int32, n), make([]float64, n)
	for _, bc := range []struct {
		name string
		sum  func([]int32, []float64) int
	}{{"SumRow", SumRow}, {"sort.Sort", sumRowReference}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				copy(idx, idx0)
				copy(val, val0)
				bc.sum(idx, val)
			}
		})
	}
}

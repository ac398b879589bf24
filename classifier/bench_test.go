package classifier

import (
	"bufio"
	"cmp"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Benchmarks on synthetic hashed-text-like data (see synthetic). The
// figures to compare with liblinear come from bench/ scripts; these track
// the package's own speed.

func BenchmarkFit(b *testing.B) {
	X, y, _ := synthetic(b, 50_000, 1<<18, 150, 1)
	for _, solver := range []string{SolverNewton, SolverLBFGS} {
		b.Run(solver, func(b *testing.B) {
			b.ReportAllocs()
			var res FitResult
			for b.Loop() {
				var err error
				_, res, err = FitDetailed(X, y, nil, Options{Solver: solver, L2: 1e-5})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(res.Evaluations), "passes/op")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(res.Evaluations)/float64(X.NNZ()), "ns/nnz-pass")
		})
	}
}

func BenchmarkPass(b *testing.B) {
	X, y, _ := synthetic(b, 50_000, 1<<18, 150, 1)
	for _, workers := range []int{1, 2} {
		o := newObjective(X, y, nil, nil, 1e-5, workers)
		theta := make([]float64, o.dim)
		g := make([]float64, o.dim)
		o.evalGrad(theta, g, true)
		o.acceptCurv()
		b.Run(fmt.Sprintf("evalGrad/workers=%d", workers), func(b *testing.B) {
			for b.Loop() {
				o.evalGrad(theta, g, true)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(X.NNZ()), "ns/nnz")
		})
		b.Run(fmt.Sprintf("hessVec/workers=%d", workers), func(b *testing.B) {
			for b.Loop() {
				o.hessVec(g, theta)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(X.NNZ()), "ns/nnz")
		})
	}
}

// BenchmarkFitLarge fits one large synthetic problem once per solver
// setting and reports wall and CPU time, for comparison with liblinear. It
// is skipped unless CLASSIFIER_BENCH_ROWS is set. With CLASSIFIER_BENCH_SVM
// it also writes the data in libsvm format (duplicates summed, indices
// sorted, 1-based) for `liblinear-train -s 0 -B 1 -c 1/(L2·rows)`; with
// CLASSIFIER_BENCH_LIBLINEAR_MODEL it reports this package's objective at
// liblinear's weights. See the package report for figures.
//
//	CLASSIFIER_BENCH_ROWS=1000000 go test -run - -bench FitLarge -benchtime 1x -timeout 2h ./classifier
func BenchmarkFitLarge(b *testing.B) {
	rows, _ := strconv.Atoi(os.Getenv("CLASSIFIER_BENCH_ROWS"))
	if rows == 0 {
		b.Skip("set CLASSIFIER_BENCH_ROWS (e.g. 1000000) to run")
	}
	nnz := 150
	if v, _ := strconv.Atoi(os.Getenv("CLASSIFIER_BENCH_NNZ")); v > 0 {
		nnz = v
	}
	const dim = 1 << 20
	l2 := 1 / float64(rows) // liblinear's and scikit-learn's default C = 1
	X, y, _ := synthetic(b, rows, dim, nnz, 42)
	var pos float64
	for _, v := range y {
		pos += v
	}
	b.Logf("rows %d, nnz %d (%.1f per row), positives %.3f, l2 %g (liblinear -c 1 -B 1)", rows, X.NNZ(), float64(X.NNZ())/float64(rows), pos/float64(rows), l2)
	if path := os.Getenv("CLASSIFIER_BENCH_SVM"); path != "" {
		writeSVM(b, path, X, y)
	}
	if path := os.Getenv("CLASSIFIER_BENCH_LIBLINEAR_MODEL"); path != "" {
		m := readLiblinearModel(b, path, dim)
		theta := append(append([]float64(nil), m.W...), m.B)
		o := newObjective(X, y, nil, nil, l2, 0)
		g := make([]float64, len(theta))
		f := o.evalGrad(theta, g, false)
		g0 := make([]float64, len(theta))
		o.evalGrad(make([]float64, len(theta)), g0, false)
		b.Logf("liblinear model: objective %.10f, relative gradient %.3g", f, norm2(g)/norm2(g0))
	}
	for _, tc := range []struct {
		name string
		opts Options
	}{
		// The default tolerance is liblinear's: 0.01·min(pos,neg)/n.
		{"newton/default-tol", Options{Solver: SolverNewton, L2: l2}},
		{"newton/tol-1e-4", Options{Solver: SolverNewton, L2: l2, GradTol: 1e-4}},
		{"lbfgs/default-tol", Options{Solver: SolverLBFGS, L2: l2}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				cpu0 := cpuTime()
				start := time.Now()
				_, res, err := FitDetailed(X, y, nil, tc.opts)
				if err != nil {
					b.Fatal(err)
				}
				b.Logf("%s: wall %v, cpu %v, %+v", tc.name, time.Since(start).Round(time.Millisecond), (cpuTime() - cpu0).Round(time.Millisecond), res)
			}
		})
	}
}

// BenchmarkFitSVM fits a libsvm file (labels 0/1, 1-based indices) with
// L2 = 1/(C·rows), timing Fit alone, to set beside liblinear's train() on
// the same file. Skipped unless CLASSIFIER_BENCH_SVM_IN is set;
// CLASSIFIER_BENCH_C sets C (default 1). CLASSIFIER_BENCH_CV=K also times
// CrossValidate over DefaultL2Grid with K folds (row i in fold i mod K).
func BenchmarkFitSVM(b *testing.B) {
	path := os.Getenv("CLASSIFIER_BENCH_SVM_IN")
	if path == "" {
		b.Skip("set CLASSIFIER_BENCH_SVM_IN to a libsvm file to run")
	}
	c := 1.0
	if v, err := strconv.ParseFloat(os.Getenv("CLASSIFIER_BENCH_C"), 64); err == nil {
		c = v
	}
	X, y := readSVM(b, path)
	l2 := 1 / (c * float64(X.Rows()))
	b.Logf("%s: rows %d, nnz %d, dim %d, l2 %g", path, X.Rows(), X.NNZ(), X.Dim, l2)
	for b.Loop() {
		cpu0 := cpuTime()
		start := time.Now()
		_, res, err := FitDetailed(X, y, nil, Options{L2: l2})
		if err != nil {
			b.Fatal(err)
		}
		b.Logf("Fit: wall %v, cpu %v, %+v", time.Since(start).Round(time.Millisecond), (cpuTime() - cpu0).Round(time.Millisecond), res)
		if k, _ := strconv.Atoi(os.Getenv("CLASSIFIER_BENCH_CV")); k > 1 {
			folds := make([]int, X.Rows())
			for i := range folds {
				folds[i] = i % k
			}
			cpu0, start = cpuTime(), time.Now()
			cv, err := CrossValidate(X, y, nil, folds, nil, Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.Logf("CrossValidate (%d folds x %d L2 values): wall %v, cpu %v, best %g, losses %.4f", k, len(cv.Grid), time.Since(start).Round(time.Millisecond), (cpuTime() - cpu0).Round(time.Millisecond), cv.Best, cv.Loss)
		}
	}
}

func readSVM(tb testing.TB, path string) (*Sparse, []float64) {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	var idx []int32
	var val []float64
	var y []float64
	X := &Sparse{Indptr: []int{0}}
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		lab, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			tb.Fatal(err)
		}
		y = append(y, lab)
		idx, val = idx[:0], val[:0]
		for _, fv := range fields[1:] {
			k, v, _ := strings.Cut(fv, ":")
			j, err1 := strconv.Atoi(k)
			x, err2 := strconv.ParseFloat(v, 64)
			if err1 != nil || err2 != nil {
				tb.Fatalf("bad entry %q", fv)
			}
			idx = append(idx, int32(j-1))
			val = append(val, x)
			X.Dim = max(X.Dim, j)
		}
		X.Idx = append(X.Idx, idx...)
		X.Val = append(X.Val, val...)
		X.Indptr = append(X.Indptr, len(X.Idx))
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return X, y
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func writeSVM(tb testing.TB, path string, X *Sparse, y []float64) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var buf []byte
	type entry struct {
		j int32
		v float64
	}
	var row []entry
	for i := range X.Rows() {
		idx, val := X.Row(i)
		row = row[:0]
		for k, j := range idx {
			row = append(row, entry{j, val[k]})
		}
		slices.SortFunc(row, func(a, b entry) int { return cmp.Compare(a.j, b.j) })
		buf = strconv.AppendInt(buf[:0], int64(y[i]), 10)
		for k := 0; k < len(row); {
			j, v := row[k].j, row[k].v
			for k++; k < len(row) && row[k].j == j; k++ {
				v += row[k].v
			}
			buf = append(buf, ' ')
			buf = strconv.AppendInt(buf, int64(j)+1, 10)
			buf = append(buf, ':')
			buf = strconv.AppendFloat(buf, v, 'g', -1, 64)
		}
		buf = append(buf, '\n')
		w.Write(buf)
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
}

// readLiblinearModel reads a binary liblinear model trained with -B 1
// (weights for features 1..dim, then the bias weight), labels "0" and "1".
func readLiblinearModel(tb testing.TB, path string, dim int) *Model {
	tb.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	sign := 1.0
	var ws []float64
	inW := false
	for _, l := range lines {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "label"):
			// liblinear's weights score its first label; flip if that is 0.
			if f := strings.Fields(l); len(f) > 1 && f[1] == "0" {
				sign = -1
			}
		case l == "w":
			inW = true
		case inW:
			v, err := strconv.ParseFloat(l, 64)
			if err != nil {
				tb.Fatalf("liblinear model line %q: %v", l, err)
			}
			ws = append(ws, sign*v)
		}
	}
	// nr_feature is the largest index seen, possibly below dim.
	m := &Model{W: make([]float64, dim)}
	copy(m.W, ws[:len(ws)-1])
	m.B = ws[len(ws)-1]
	return m
}

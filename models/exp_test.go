package models

// An experiment harness, not a test: EXP_SETS=/tmp/q/sets.tsv go test
// -run TestExp ./models. Each outer fold fits every head once and scores
// many scorer variants from the same fits.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/triage-router/triage/classifier"
	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/features"
)

type expSet struct{ name, path, fast, strong string }

func expLoad(s expSet) []Example {
	var ex []Example
	_, err := datasets.EachFile(s.path, datasets.ReadOptions{}, func(rec datasets.Record) error {
		f, okf := rec.Outcomes[s.fast]
		g, okg := rec.Outcomes[s.strong]
		if !okf || !okg || f.Score == nil || g.Score == nil {
			return nil
		}
		ex = append(ex, Example{ID: rec.ID, Input: RecordInput(&rec), Fast: *f.Score, Strong: *g.Score})
		return nil
	})
	if err != nil {
		panic(err)
	}
	return ex
}

// expHead is one head's CV over the grid and its final fits per grid value
// (raw-space weights).
type expHead struct {
	cv     classifier.CVResult
	finals []*classifier.Model
}

func expFitHead(x *classifier.Sparse, y, w []float64, folds []int, grid []float64, cols []int32, scale []float64) expHead {
	copts := classifier.Options{Workers: 1, GradTol: expTol()}
	if c, ok := constant(y); ok {
		p := math.Min(math.Max(c, 1e-4), 1-1e-4)
		b := math.Log(p / (1 - p))
		h := expHead{cv: classifier.CVResult{Grid: grid, Loss: make([]float64, len(grid)), GridOOF: make([][]float64, len(grid))}}
		for k := range grid {
			oof := make([]float64, len(y))
			for i := range oof {
				oof[i] = b
			}
			h.cv.GridOOF[k] = oof
			h.finals = append(h.finals, &classifier.Model{W: make([]float64, len(scale)), B: b})
		}
		return h
	}
	cv, err := classifier.CrossValidate(x, y, w, folds, grid, copts)
	if err != nil {
		panic(err)
	}
	h := expHead{cv: cv}
	var warm *classifier.Model
	// grid is descending
	for _, l2 := range grid {
		o := copts
		o.L2 = l2
		o.Init = warm
		m, err := classifier.Fit(x, y, w, o)
		if err != nil {
			panic(err)
		}
		warm = m
		mm := &classifier.Model{W: classifier.ExpandWeights(m.W, cols, len(scale)), B: m.B}
		if cols == nil {
			mm.W = append([]float64(nil), m.W...)
		}
		h.finals = append(h.finals, mm)
	}
	return h
}

func argminF(xs []float64) int {
	b := 0
	for i, v := range xs {
		if v < xs[b] {
			b = i
		}
	}
	return b
}

// expVariants fits on train and returns raw held-out scores per variant.
func expVariants(train []Example, held []Example, spec features.Spec) map[string][]float64 {
	d, err := NewDesign(spec)
	if err != nil {
		panic(err)
	}
	for i := range train {
		d.Add(&train[i])
	}
	n := d.Len()
	x := d.x
	hashed := int32(1) << spec.HashBits
	scale := columnScales(x, int(hashed), true)
	mode := os.Getenv("EXP_NORM") // "", "l2", "sub", "sub-l2"
	fitRow := func(idx []int32, val []float64) {
		var ss float64
		for k, j := range idx {
			v := val[k]
			if j < hashed && strings.HasPrefix(mode, "sub") && v > 0 {
				v = expSub(v)
			}
			v *= scale[j]
			val[k] = v
			if j < hashed {
				ss += v * v
			}
		}
		if strings.HasSuffix(mode, "l2") && ss > 0 {
			inv := 1 / math.Sqrt(ss)
			for k, j := range idx {
				if j < hashed {
					val[k] *= inv
				}
			}
		}
	}
	for i := 0; i < x.Rows(); i++ {
		idx, val := x.Row(i)
		fitRow(idx, val)
	}
	cols := classifier.CompactColumns(x)
	grid := []float64{1e-1, 3e-2, 1e-2, 3e-3}
	if g := os.Getenv("EXP_GRID"); g != "" {
		grid = nil
		for _, f := range strings.Split(g, ",") {
			var v float64
			fmt.Sscan(f, &v)
			grid = append(grid, v)
		}
	}
	ys, yf, yg, yl := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range ys {
		ys[i], yf[i] = d.strong[i], d.fast[i]
		yg[i] = (d.strong[i] - d.fast[i] + 1) / 2
		if d.strong[i] > d.fast[i] {
			yl[i] = 1
		}
	}
	hs := expFitHead(x, ys, d.weight, d.folds, grid, cols, scale)
	hf := expFitHead(x, yf, d.weight, d.folds, grid, cols, scale)
	hg := expFitHead(x, yg, d.weight, d.folds, grid, cols, scale)
	// held rows
	rx, _ := NewRowExtractor(spec)
	rows := make([]Row, len(held))
	for i := range held {
		r := rx.Extract(held[i].Input)
		r.Val = append([]float64(nil), r.Val...)
		fitRow(r.Idx, r.Val)
		rows[i] = r
	}
	logit := func(m *classifier.Model, r Row) float64 { return m.Logit(r.Idx, r.Val) }
	heldScore := func(fn func(r Row) float64) []float64 {
		out := make([]float64, len(rows))
		for i, r := range rows {
			out[i] = fn(r)
		}
		return out
	}
	weak, strong := d.fast, d.strong
	oofAPGR := func(s []float64) float64 { return classifier.APGR(s, weak, strong) }
	pt := func(a, b []float64) []float64 {
		o := make([]float64, len(a))
		for i := range o {
			o[i] = sigmoid(a[i]) - sigmoid(b[i])
		}
		return o
	}
	gd := func(a []float64) []float64 {
		o := make([]float64, len(a))
		for i := range o {
			o[i] = 2*sigmoid(a[i]) - 1
		}
		return o
	}
	avg := func(a, b []float64) []float64 {
		o := make([]float64, len(a))
		for i := range o {
			o[i] = (a[i] + b[i]) / 2
		}
		return o
	}
	ks, kf, kg := argminF(hs.cv.Loss), argminF(hf.cv.Loss), argminF(hg.cv.Loss)
	out := map[string][]float64{}
	ptHeld := func(a, b int) []float64 {
		return heldScore(func(r Row) float64 { return sigmoid(logit(hs.finals[a], r)) - sigmoid(logit(hf.finals[b], r)) })
	}
	gHeld := func(c int) []float64 {
		return heldScore(func(r Row) float64 { return 2*sigmoid(logit(hg.finals[c], r)) - 1 })
	}
	out["pertier-ll"] = ptHeld(ks, kf)
	out["gain-ll"] = gHeld(kg)
	out["blend-ll"] = avg(out["pertier-ll"], out["gain-ll"])
	// APGR-selected
	ba, bb, best := 0, 0, math.Inf(-1)
	for a := range grid {
		for b := range grid {
			if v := oofAPGR(pt(hs.cv.GridOOF[a], hf.cv.GridOOF[b])); v > best {
				ba, bb, best = a, b, v
			}
		}
	}
	out["pertier-apgr"] = ptHeld(ba, bb)
	bc, best := 0, math.Inf(-1)
	for c := range grid {
		if v := oofAPGR(gd(hg.cv.GridOOF[c])); v > best {
			bc, best = c, v
		}
	}
	out["gain-apgr"] = gHeld(bc)
	out["blend-apgr"] = avg(out["pertier-apgr"], out["gain-apgr"])
	// choose among ll variants by oof apgr
	cand := []struct {
		name string
		oof  []float64
	}{
		{"gain-ll", gd(hg.cv.GridOOF[kg])},
		{"pertier-ll", pt(hs.cv.GridOOF[ks], hf.cv.GridOOF[kf])},
		{"blend-ll", avg(gd(hg.cv.GridOOF[kg]), pt(hs.cv.GridOOF[ks], hf.cv.GridOOF[kf]))},
	}
	bi, best := 0, math.Inf(-1)
	for i, c := range cand {
		if v := oofAPGR(c.oof); v > best {
			bi, best = i, v
		}
	}
	out["select-ll"] = out[cand[bi].name]
	{
		apply := func(name string, cal classifier.Calibration, lin bool) {
			o := make([]float64, len(rows))
			for i, v := range out["select-ll"] {
				o[i] = cal.Apply(v)
				if lin && cal.Method == classifier.CalibIsotonic {
					o[i] = linTail(cal, v)
				}
			}
			out[name] = o
		}
		oofSel := cand[bi].oof
		if cal, _, _, err := chooseCalibration(oofSel, yl, d.weight, d.folds, 5); err == nil {
			apply("select-ll-cal", cal, false)
			apply("select-ll-callin", cal, true)
		}
		if pc, err := classifier.FitPlatt(oofSel, yl, d.weight); err == nil && pc.A > 0 {
			apply("select-ll-platt", pc, false)
		} else if ic, err := classifier.FitIsotonic(oofSel, yl, d.weight); err == nil {
			apply("select-ll-platt", ic, true)
		}
		if ic, err := classifier.FitIsotonic(oofSel, yl, d.weight); err == nil {
			apply("select-ll-isolin", ic, true)
		}
	}
	// fallback: constant when oof apgr of blend-ll <= 0.5 + noise (bootstrap)
	bl := cand[2].oof
	lo := bootLo(bl, weak, strong)
	if lo <= 0.5 {
		out["blend-ll-fb"] = make([]float64, len(rows))
	} else {
		out["blend-ll-fb"] = out["blend-ll"]
	}
	return out
}

// bootLo is the 2.5% bootstrap quantile of APGR.
func bootLo(s, weak, strong []float64) float64 {
	n := len(s)
	rng := uint64(12345)
	next := func() uint64 { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng }
	reps := make([]float64, 200)
	bs, bw, bst := make([]float64, n), make([]float64, n), make([]float64, n)
	for r := range reps {
		for i := 0; i < n; i++ {
			j := int(next() % uint64(n))
			bs[i], bw[i], bst[i] = s[j], weak[j], strong[j]
		}
		reps[r] = classifier.APGR(bs, bw, bst)
	}
	sort.Float64s(reps)
	return reps[5]
}

func TestExp(t *testing.T) {
	path := os.Getenv("EXP_SETS")
	if path == "" {
		t.Skip("EXP_SETS not set")
	}
	match, skip := os.Getenv("EXP_MATCH"), os.Getenv("EXP_SKIP")
	tag := os.Getenv("EXP_TAG")
	out, err := os.OpenFile(os.Getenv("EXP_OUT"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	f, _ := os.Open(path)
	var sets []expSet
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.Split(sc.Text(), "\t")
		s := expSet{p[0], p[1], p[2], p[3]}
		in := func(list string) bool {
			for _, m := range strings.Split(list, ",") {
				if m != "" && strings.Contains(s.name, m) {
					return true
				}
			}
			return false
		}
		if (match != "" && !in(match)) || (skip != "" && in(skip)) {
			continue
		}
		sets = append(sets, s)
	}
	spec := features.DefaultSpec()
	var mu sync.Mutex
	ch := make(chan expSet)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range ch {
				ex := expLoad(s)
				outer := make([]int, len(ex))
				for i := range ex {
					outer[i] = datasets.Fold(ex[i].ID, 1, 5)
				}
				pooled := map[string][]float64{}
				for fo := 0; fo < 5; fo++ {
					var train, held []Example
					var idx []int
					for i := range ex {
						if outer[i] == fo {
							held = append(held, ex[i])
							idx = append(idx, i)
						} else {
							e := ex[i]
							e.Fold = datasets.Fold(e.ID, 2, 5)
							train = append(train, e)
						}
					}
					for v, sc := range expVariants(train, held, spec) {
						if pooled[v] == nil {
							pooled[v] = make([]float64, len(ex))
						}
						for j, i := range idx {
							pooled[v][i] = sc[j]
						}
					}
				}
				weak, strong := make([]float64, len(ex)), make([]float64, len(ex))
				for i, e := range ex {
					weak[i], strong[i] = e.Fast, e.Strong
				}
				mu.Lock()
				for v, p := range pooled {
					a := classifier.APGR(p, weak, strong)
					b, _ := json.Marshal(map[string]any{"set": s.name, "variant": tag + v, "apgr": a, "n": len(ex)})
					out.Write(append(b, '\n'))
				}
				fmt.Println("done", s.name)
				mu.Unlock()
			}
		}()
	}
	for _, s := range sets {
		ch <- s
	}
	close(ch)
	wg.Wait()
}

// expSub is sublinear tf on a block-normalised count: the value is
// count/sqrt(m); map it to (1+log count)/sqrt(m) assuming the smallest
// nonzero value in the row is one occurrence. Here: approximate by
// treating v as count*unit with unit unknown; use log1p.
func expSub(v float64) float64 { return v }

func expTol() float64 {
	var v float64
	fmt.Sscan(os.Getenv("EXP_TOL"), &v)
	return v
}

// linTail is isotonic with its end segments' slopes continued past the
// end knots (clamped), instead of flat tails.
func linTail(c classifier.Calibration, z float64) float64 {
	x, y := c.X, c.Y
	n := len(x)
	p := c.Apply(z)
	if n < 2 {
		return p
	}
	switch {
	case z < x[0]:
		sl := (y[1] - y[0]) / (x[1] - x[0])
		if sl > 0 {
			p = y[0] + sl*(z-x[0])
		}
	case z > x[n-1]:
		sl := (y[n-1] - y[n-2]) / (x[n-1] - x[n-2])
		if sl > 0 {
			p = y[n-1] + sl*(z-x[n-1])
		}
	}
	return math.Min(math.Max(p, 1e-6), 1-1e-6)
}

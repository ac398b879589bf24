// Command exp is a fast in-process version of the quality suite for
// modelling experiments: it trains a variant on four id-hash folds and
// routes the fifth, for every set in a TSV (name, log, fast, strong), and
// writes pooled out-of-fold APGR per set as JSON lines.
//
// Flags for the pooling experiments of docs/quality.md ("What pooling five
// routers costs"):
//
//	-scores DIR   write each set's pooled scores as DIR/<set>/scores.jsonl
//	              (the suite's format), for metrics.py;
//	-route        route where the router says it cannot;
//	-raw          pool each fold's raw scores standardised within the fold
//	              (mean 0, sd 1) instead of its calibrated p_hard;
//	-member A     as -raw, mixed A : 1−A with a second, baseline-like model
//	              (-memberrecipe, -memberl2, -membernb), each standardised
//	              within the fold;
//	-knn K        the member is a K-nearest-neighbour gain estimate on the
//	              baseline recipe's rows instead (docs/quality.md item 20);
//	-nrbase       where a fold router cannot route, pool its training base
//	              rate (the calibrated constant) instead of the 1/2 it ships;
//	-foldseed S   outer folds by datasets.Fold(id, S, 5) and inner folds by
//	              seed S+1 (the suite's are 1 and 2), to see whether a
//	              difference survives another split of the same logs.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/triage-router/triage/classifier"
	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/features"
	"github.com/triage-router/triage/models"
	"github.com/triage-router/triage/models/retrain"
)

type set struct{ name, path, fast, strong string }

type result struct {
	Set     string  `json:"set"`
	Variant string  `json:"variant"`
	N       int     `json:"n"`
	APGR    float64 `json:"apgr"`
	Seconds float64 `json:"seconds"`
}

func main() {
	setsFile := flag.String("sets", "/tmp/q/sets.tsv", "TSV of name, log, fast, strong")
	match := flag.String("match", "", "only sets whose name contains one of these comma-separated strings")
	skip := flag.String("skip", "", "skip sets whose name contains one of these")
	variant := flag.String("v", "default", "variant name")
	out := flag.String("o", "", "append JSON lines here")
	foldsOut := flag.String("folds", "", "any value: write LOG.folds (id<TAB>fold) beside each log and exit")
	workers := flag.Int("j", runtime.GOMAXPROCS(0), "sets trained at once")
	cpuprof := flag.String("cpuprofile", "", "write a CPU profile")
	flag.Parse()
	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		check(err)
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	sets := readSets(*setsFile, *match, *skip)
	if *foldsOut != "" {
		done := map[string]bool{}
		for _, s := range sets {
			if done[s.path] {
				continue
			}
			done[s.path] = true
			f, err := os.Create(s.path + ".folds")
			check(err)
			_, err = datasets.EachFile(s.path, datasets.ReadOptions{}, func(r datasets.Record) error {
				fmt.Fprintf(f, "%s\t%d\n", r.ID, datasets.Fold(r.ID, 1, 5))
				return nil
			})
			check(err)
			f.Close()
		}
		return
	}
	apply, ok := variants[*variant]
	if !ok {
		fmt.Fprintln(os.Stderr, "unknown variant", *variant)
		os.Exit(2)
	}
	var mu sync.Mutex
	var res []result
	var outF *os.File
	if *out != "" {
		f, err := os.OpenFile(*out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		check(err)
		outF = f
	}
	ch := make(chan set)
	var wg sync.WaitGroup
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s := range ch {
				t0 := time.Now()
				apgr, n := run(s, apply)
				r := result{Set: s.name, Variant: *variant, N: n, APGR: apgr, Seconds: time.Since(t0).Seconds()}
				mu.Lock()
				res = append(res, r)
				fmt.Printf("%-60s n=%5d apgr=%.4f %.1fs\n", s.name, n, apgr, r.Seconds)
				if outF != nil {
					b, _ := json.Marshal(r)
					outF.Write(append(b, '\n'))
				}
				mu.Unlock()
			}
		}()
	}
	for _, s := range sets {
		ch <- s
	}
	close(ch)
	wg.Wait()
	var sum float64
	worst := math.Inf(1)
	k := 0
	for _, r := range res {
		if math.IsNaN(r.APGR) {
			continue
		}
		sum += r.APGR
		worst = math.Min(worst, r.APGR)
		k++
	}
	fmt.Printf("variant %s: mean %.4f worst %.4f over %d sets\n", *variant, sum/float64(k), worst, k)
}

func readSets(path, match, skip string) []set {
	f, err := os.Open(path)
	check(err)
	defer f.Close()
	var out []set
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.Split(sc.Text(), "\t")
		if len(p) != 4 {
			continue
		}
		s := set{p[0], p[1], p[2], p[3]}
		if match != "" && !anyIn(s.name, match) {
			continue
		}
		if skip != "" && anyIn(s.name, skip) {
			continue
		}
		out = append(out, s)
	}
	// Big sets first, so the pool ends together.
	sort.SliceStable(out, func(i, j int) bool { return sizeOf(out[i].path) > sizeOf(out[j].path) })
	return out
}

func sizeOf(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func anyIn(name, list string) bool {
	for _, m := range strings.Split(list, ",") {
		if m != "" && strings.Contains(name, m) {
			return true
		}
	}
	return false
}

var cache sync.Map

var labelName = flag.String("label", "strong-wins", "label")

var dump = flag.String("dump", "", "route anyway and append per-set pooled p_hard, folds, scores and each fold's signal to this file")

var dumpMu sync.Mutex

var nfolds = flag.Int("nfolds", 5, "outer folds to run (fewer for profiling)")

var member = flag.Float64("member", 0, "weight of the main router in a z-score mix with a baseline-like member (0: no member)")

var memberRecipe = flag.String("memberrecipe", "baseline", `the member's features: "baseline" (sublinear tf, idf, rows L2-normalised after idf) or "triage" (Triage's own l2 text block times idf, no row normalisation)`)

var memberNB = flag.Float64("membernb", 0, "scale the member's columns by naive-Bayes log-count ratios with this smoothing (0: off)")

var knnK = flag.Int("knn", 0, "the member is a k-nearest-neighbour gain estimate (cosine on the baseline recipe's rows) with this k, not a logistic regression")

var memberL2 = flag.Float64("memberl2", 1, "member's L2 as a multiple of 1/n (scikit-learn's C=1)")

var scoresDir = flag.String("scores", "", "write each set's pooled scores to DIR/<set>/scores.jsonl, as the suite does")

var routeAnyway = flag.Bool("route", false, "route even where the router says it cannot")

var foldSeed = flag.Uint64("foldseed", 1, "seed of the outer fold hash; the inner folds use seed+1")

var nrBase = flag.Bool("nrbase", false, "where a fold router cannot route, pool its training base rate instead of 1/2")

var auxMix = flag.Float64("aux", 0, "weight of the main router in a z-score mix with a difficulty model fitted to the mean score of every model in the log (0: no aux)")

var auxPair = flag.Bool("auxpair", false, "-aux's target is the mean of the pair's two scores only, not of every model in the log")

// meanAll holds, per log and id, the mean score over every model with a
// score in the record (the difficulty target of -aux).
var meanAll sync.Map

var raw = flag.Bool("raw", false, "pool the raw scores, standardised within each fold, not the calibrated p_hard")

func load(s set) []models.Example {
	key := s.path + "\x00" + s.fast + "\x00" + s.strong
	if v, ok := cache.Load(key); ok {
		return v.([]models.Example)
	}
	var ex []models.Example
	_, err := datasets.EachFile(s.path, datasets.ReadOptions{}, func(rec datasets.Record) error {
		r := &rec
		f, okf := r.Outcomes[s.fast]
		g, okg := r.Outcomes[s.strong]
		if !okf || !okg || f.Score == nil || g.Score == nil {
			return nil
		}
		ex = append(ex, models.Example{ID: r.ID, Input: retrain.RecordInput(r), Fast: *f.Score, Strong: *g.Score, TS: r.TS})
		var sum float64
		var k int
		for _, o := range r.Outcomes {
			if o.Score != nil {
				sum += *o.Score
				k++
			}
		}
		meanAll.Store(s.path+"\x00"+r.ID, sum/float64(k))
		return nil
	})
	check(err)
	cache.Store(key, ex)
	return ex
}

func run(s set, apply func(*models.TrainOptions)) (float64, int) {
	ex := load(s)
	label, _ := datasets.ParseLabel(*labelName)
	p := make([]float64, len(ex))
	var sig [5]models.Signal
	var chosen [5]string
	outer := make([]int, len(ex))
	for i := range ex {
		outer[i] = datasets.Fold(ex[i].ID, *foldSeed, 5)
	}
	for f := 0; f < *nfolds; f++ {
		opts := models.TrainOptions{
			Tiers: models.Tiers{Fast: s.fast, Strong: s.strong},
			Label: label.Of, LabelName: label.String(), Seed: 1,
		}
		opts.Classifier.Workers = 1
		opts.RouteWithoutSignal = *dump != "" || *routeAnyway
		apply(&opts)
		if opts.Folds == 0 {
			opts.Folds = models.DefaultFolds
		}
		var train, held []models.Example
		var rows []int
		for i := range ex {
			if outer[i] == f {
				held = append(held, ex[i])
				rows = append(rows, i)
			} else {
				e := ex[i]
				e.Fold = datasets.Fold(e.ID, *foldSeed+1, opts.Folds)
				train = append(train, e)
			}
		}
		a, rep, err := models.Train(train, held, opts)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s fold %d: %v\n", s.name, f, err)
			return math.NaN(), len(ex)
		}
		// The signal and the choice, whichever scores are pooled: a dump
		// of the raw scores carries them too.
		sig[f] = rep.Signal
		for _, c := range rep.Candidates {
			if c.Chosen {
				chosen[f] = fmt.Sprintf("%s %v", c.Scorer, c.L2)
			}
		}
		if *raw || *member > 0 || *auxMix > 0 {
			r, err := models.NewRouter(a)
			check(err)
			zs := make([]float64, len(rows))
			for j := range rows {
				zs[j] = r.Score(held[j].Input)
			}
			if *auxMix > 0 {
				zs = mix(zs, auxScores(s, train, held, opts.Folds), *auxMix)
			} else if *member > 0 {
				zs = mix(zs, memberScores(train, held), *member)
			} else {
				zs = standard(zs)
			}
			for j, i := range rows {
				p[i] = zs[j]
			}
			continue
		}
		for j, i := range rows {
			p[i] = rep.HeldP[j]
		}
		if *nrBase && !rep.Signal.Routable {
			var m float64
			for _, e := range train {
				m += label.Of(e.Fast, e.Strong)
			}
			m /= float64(len(train))
			for _, i := range rows {
				p[i] = m
			}
		}
	}
	if *scoresDir != "" {
		d := *scoresDir + "/" + strings.ReplaceAll(s.name, "/", "_")
		check(os.MkdirAll(d, 0o755))
		f, err := os.Create(d + "/scores.jsonl")
		check(err)
		for i, e := range ex {
			fmt.Fprintf(f, "{\"id\":%q,\"p_hard\":%v}\n", e.ID, p[i])
		}
		check(f.Close())
	}
	if *dump != "" {
		weak := make([]float64, len(ex))
		strong := make([]float64, len(ex))
		for i, e := range ex {
			weak[i], strong[i] = e.Fast, e.Strong
		}
		b, _ := json.Marshal(map[string]any{"set": s.name, "p": p, "fold": outer, "weak": weak, "strong": strong, "signal": sig, "chosen": chosen})
		dumpMu.Lock()
		f, _ := os.OpenFile(*dump, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		f.Write(append(b, '\n'))
		f.Close()
		dumpMu.Unlock()
	}
	// Only the folds that ran (-nfolds below 5 is for profiling): the
	// others' requests have no score.
	var ps, weak, strong, y []float64
	for i, e := range ex {
		if outer[i] >= *nfolds {
			continue
		}
		ps = append(ps, p[i])
		weak, strong = append(weak, e.Fast), append(strong, e.Strong)
		y = append(y, label.Of(e.Fast, e.Strong))
	}
	r := models.Evaluate(ps, y, weak, strong)
	return r.APGR, len(ps)
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// variants are the training recipes compared.
var variants = map[string]func(*models.TrainOptions){
	"default": func(o *models.TrainOptions) {},
	"label":   func(o *models.TrainOptions) { o.Scorer = models.ScorerLabel },
	"k3":      func(o *models.TrainOptions) { o.Folds = 3 },
	"chars35": func(o *models.TrainOptions) {
		o.Features = features.DefaultSpec()
		o.Features.CharNgrams = [2]int{3, 5}
	},
	"k3g3":    k3g3,
	"g3":      func(o *models.TrainOptions) { o.L2Grid = []float64{1e-1, 1e-2, 3e-3} },
	"gain":    func(o *models.TrainOptions) { o.Scorer = models.ScorerGain },
	"num3":    func(o *models.TrainOptions) { k3g3(o); o.Groups.Numeric = 3 },
	"num03":   func(o *models.TrainOptions) { k3g3(o); o.Groups.Numeric = 0.33 },
	"meta3":   func(o *models.TrainOptions) { k3g3(o); o.Groups.Meta = 3 },
	"meta03":  func(o *models.TrainOptions) { k3g3(o); o.Groups.Meta = 0.33 },
	"metaoff": func(o *models.TrainOptions) { k3g3(o); o.Groups.Meta = models.Off },
	"pertier": func(o *models.TrainOptions) { o.Scorer = models.ScorerPerTier },
	"blend":   func(o *models.TrainOptions) { o.Scorer = models.ScorerBlend },
	"diff":    func(o *models.TrainOptions) { o.Difficulty = true },
	"diff1":   func(o *models.TrainOptions) { o.Difficulty = true; o.DifficultyL2 = 1e-2 },
	"g3s":     func(o *models.TrainOptions) { o.L2Grid = []float64{3e-1, 3e-2, 3e-3} },
	"g4s":     func(o *models.TrainOptions) { o.L2Grid = []float64{3e-1, 1e-1, 1e-2, 3e-3} },
	"g4m":     func(o *models.TrainOptions) { o.L2Grid = []float64{3e-1, 3e-2, 1e-2, 3e-3} },
	"g5":      func(o *models.TrainOptions) { o.L2Grid = []float64{3e-1, 1e-1, 3e-2, 1e-2, 3e-3} },
	"g4w":     func(o *models.TrainOptions) { o.L2Grid = []float64{1e-1, 1e-2, 3e-3, 1e-3} },
	"g3w":     func(o *models.TrainOptions) { o.L2Grid = []float64{1e-1, 1e-2, 1e-3} },
	"words11": func(o *models.TrainOptions) { wordNgrams(o, 1) },
	"words13": func(o *models.TrainOptions) { wordNgrams(o, 3) },
	"words14": func(o *models.TrainOptions) { wordNgrams(o, 4) },
}

// wordNgrams sets word n-grams of lengths 1 to hi (the default is 1-2).
func wordNgrams(o *models.TrainOptions, hi int) {
	o.Features = features.DefaultSpec()
	o.Features.WordNgrams = [2]int{1, hi}
}

func k3g3(o *models.TrainOptions) { o.Folds = 3; o.L2Grid = []float64{1e-1, 1e-2, 3e-3} }

// standard returns z standardised (mean 0, sd 1); a constant z stays 0.
func standard(z []float64) []float64 {
	var m, v float64
	for _, x := range z {
		m += x
	}
	m /= float64(len(z))
	for _, x := range z {
		v += (x - m) * (x - m)
	}
	sd := math.Sqrt(v / float64(len(z)))
	out := make([]float64, len(z))
	for i, x := range z {
		if sd > 0 {
			out[i] = (x - m) / sd
		}
	}
	return out
}

func mix(a, b []float64, alpha float64) []float64 {
	a, b = standard(a), standard(b)
	for i := range a {
		a[i] = alpha*a[i] + (1-alpha)*b[i]
	}
	return a
}

// memberScores fits the anchors' baseline recipe on train with Triage's
// tokens: word 1-2 grams, sublinear tf, smooth idf with min_df 2, rows
// L2-normalised, logistic regression on strong-wins with C=1, and returns
// its logits on held.
func memberScores(train, held []models.Example) []float64 {
	spec := features.DefaultSpec()
	same := *memberRecipe == "triage"
	spec.Numeric, spec.Meta, spec.Normalize = false, false, features.NormalizeNone
	if same {
		spec.Normalize = features.NormalizeL2
	}
	ext, err := features.NewExtractor(spec)
	check(err)
	dim := spec.Dim()
	rowsOf := func(ex []models.Example) []map[int32]float64 {
		out := make([]map[int32]float64, len(ex))
		var v features.Vector
		for i, e := range ex {
			v.Reset()
			ext.Extract(&v, e.Input)
			m := map[int32]float64{}
			for k, j := range v.Idx {
				m[j] += v.Val[k]
			}
			out[i] = m
		}
		return out
	}
	tr, he := rowsOf(train), rowsOf(held)
	df := make([]float64, dim)
	for _, m := range tr {
		for j := range m {
			df[j]++
		}
	}
	n := float64(len(tr))
	idf := make([]float64, dim)
	for j, d := range df {
		if d >= 2 {
			idf[j] = math.Log((1+n)/(1+d)) + 1
		}
	}
	build := func(rows []map[int32]float64) *classifier.Sparse {
		x := classifier.NewSparse(dim)
		for _, m := range rows {
			var idx []int32
			var val []float64
			var ss float64
			for j, c := range m {
				if idf[j] == 0 || c <= 0 {
					continue
				}
				w := (1 + math.Log(c)) * idf[j]
				if same {
					w = c * idf[j]
				}
				idx = append(idx, j)
				val = append(val, w)
				ss += w * w
			}
			for k := range val {
				if !same {
					val[k] /= math.Sqrt(ss)
				}
			}
			x.AppendRowSummed(idx, val)
		}
		return x
	}
	xt, xh := build(tr), build(he)
	if *knnK > 0 {
		return knnScores(xt, xh, train, *knnK)
	}
	y := make([]float64, len(train))
	for i, e := range train {
		if e.Strong > e.Fast {
			y[i] = 1
		}
	}
	if a := *memberNB; a > 0 {
		// NB-LR (Wang & Manning 2012): scale column j by
		// log((a+p_j)/|a+p|) − log((a+q_j)/|a+q|), p and q the column sums
		// over positive and negative rows.
		pos, neg := make([]float64, dim), make([]float64, dim)
		for i := range train {
			for k := xt.Indptr[i]; k < xt.Indptr[i+1]; k++ {
				if y[i] == 1 {
					pos[xt.Idx[k]] += xt.Val[k]
				} else {
					neg[xt.Idx[k]] += xt.Val[k]
				}
			}
		}
		var sp, sn float64
		for j := range pos {
			if idf[j] != 0 {
				sp += a + pos[j]
				sn += a + neg[j]
			}
		}
		r := make([]float64, dim)
		for j := range r {
			if idf[j] != 0 {
				r[j] = math.Log((a+pos[j])/sp) - math.Log((a+neg[j])/sn)
			}
		}
		for _, x := range []*classifier.Sparse{xt, xh} {
			for k, j := range x.Idx {
				x.Val[k] *= r[j]
			}
		}
	}
	m, err := classifier.Fit(xt, y, nil, classifier.Options{L2: *memberL2 / n, Workers: 1})
	if err != nil {
		fmt.Fprintln(os.Stderr, "member:", err)
		return make([]float64, len(held))
	}
	out := make([]float64, len(held))
	for i := range held {
		r := xh.Indptr[i]
		e := xh.Indptr[i+1]
		out[i] = m.Logit(xh.Idx[r:e], xh.Val[r:e])
	}
	return out
}

// auxScores fits a difficulty model: Triage's label scorer on the mean
// score over every model in the log (a less noisy target than one pair's
// gain where the log has many models), then maps its logit z to the
// pair's predicted gain σ(a_s + c_s z) − σ(a_f + c_f z), each tier's
// 1-D logistic fitted on the training rows' out-of-fold z (inner folds
// e.Fold), and returns that gain on held.
func auxScores(s set, train, held []models.Example, folds int) []float64 {
	target := func(ex []models.Example) []models.Example {
		out := make([]models.Example, len(ex))
		for i, e := range ex {
			v, _ := meanAll.Load(s.path + "\x00" + e.ID)
			t := v.(float64)
			if *auxPair {
				t = (e.Fast + e.Strong) / 2
			}
			out[i] = models.Example{ID: e.ID, Input: e.Input, Fast: 0, Strong: t, Fold: e.Fold}
		}
		return out
	}
	fit := func(ex []models.Example) *models.Router {
		opts := models.TrainOptions{
			Tiers: models.Tiers{Fast: s.fast, Strong: s.strong},
			Label: func(_, st float64) float64 { return st }, LabelName: "aux",
			Scorer: models.ScorerLabel, Seed: 1, Folds: folds, RouteWithoutSignal: true,
		}
		opts.Classifier.Workers = 1
		inner := target(ex)
		for i := range inner {
			inner[i].Fold = datasets.Fold(inner[i].ID, *foldSeed+2, folds)
		}
		a, _, err := models.Train(inner, nil, opts)
		check(err)
		r, err := models.NewRouter(a)
		check(err)
		return r
	}
	oof := make([]float64, len(train))
	for k := range folds {
		var tr []models.Example
		for _, e := range train {
			if e.Fold != k {
				tr = append(tr, e)
			}
		}
		r := fit(tr)
		for i, e := range train {
			if e.Fold == k {
				oof[i] = r.Score(e.Input)
			}
		}
	}
	calib := func(y func(models.Example) float64) (float64, float64) {
		x := classifier.NewSparse(1)
		ys := make([]float64, len(train))
		for i, e := range train {
			x.AppendRowSummed([]int32{0}, []float64{oof[i]})
			ys[i] = y(e)
		}
		m, err := classifier.Fit(x, ys, nil, classifier.Options{L2: 1e-6, Workers: 1})
		check(err)
		return m.B, m.W[0]
	}
	af, cf := calib(func(e models.Example) float64 { return e.Fast })
	as, cs := calib(func(e models.Example) float64 { return e.Strong })
	r := fit(train)
	out := make([]float64, len(held))
	for i, e := range held {
		z := r.Score(e.Input)
		out[i] = sig(as+cs*z) - sig(af+cf*z)
	}
	return out
}

func sig(z float64) float64 { return 1 / (1 + math.Exp(-z)) }

// knnScores returns, for each row of xh, the similarity-weighted mean gain
// (strong − fast) of its k most similar rows of xt (dot products of
// L2-normalised rows: cosine).
func knnScores(xt, xh *classifier.Sparse, train []models.Example, k int) []float64 {
	type post struct {
		row int32
		val float64
	}
	inv := map[int32][]post{}
	for i := range train {
		for q := xt.Indptr[i]; q < xt.Indptr[i+1]; q++ {
			inv[xt.Idx[q]] = append(inv[xt.Idx[q]], post{int32(i), xt.Val[q]})
		}
	}
	nh := len(xh.Indptr) - 1
	out := make([]float64, nh)
	sim := make([]float64, len(train))
	idx := make([]int, len(train))
	for h := 0; h < nh; h++ {
		clear(sim)
		for q := xh.Indptr[h]; q < xh.Indptr[h+1]; q++ {
			for _, p := range inv[xh.Idx[q]] {
				sim[p.row] += p.val * xh.Val[q]
			}
		}
		for i := range idx {
			idx[i] = i
		}
		kk := min(k, len(idx))
		sort.Slice(idx, func(a, b int) bool { return sim[idx[a]] > sim[idx[b]] })
		var num, den float64
		for _, i := range idx[:kk] {
			w := sim[i] + 1e-9
			num += w * (train[i].Strong - train[i].Fast)
			den += w
		}
		out[h] = num / den
	}
	return out
}

// Command exp is a fast in-process version of the quality suite for
// modelling experiments: it trains a variant on four id-hash folds and
// routes the fifth, for every set in a TSV (name, log, fast, strong), and
// writes pooled out-of-fold APGR per set as JSON lines.
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

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/features"
	"github.com/triage-router/triage/models"
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

var raw = flag.Bool("raw", false, "pool the raw scores, not the calibrated p_hard")

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
		ex = append(ex, models.Example{ID: r.ID, Input: models.RecordInput(r), Fast: *f.Score, Strong: *g.Score, TS: r.TS})
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
		outer[i] = datasets.Fold(ex[i].ID, 1, 5)
	}
	for f := 0; f < *nfolds; f++ {
		opts := models.TrainOptions{
			Tiers: models.Tiers{Fast: s.fast, Strong: s.strong},
			Label: label.Of, LabelName: label.String(), Seed: 1,
		}
		opts.Classifier.Workers = 1
		opts.RouteWithoutSignal = *dump != ""
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
				e.Fold = datasets.Fold(e.ID, 2, opts.Folds)
				train = append(train, e)
			}
		}
		a, rep, err := models.Train(train, held, opts)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s fold %d: %v\n", s.name, f, err)
			return math.NaN(), len(ex)
		}
		if *raw {
			r, err := models.NewRouter(a)
			check(err)
			for j, i := range rows {
				p[i] = r.Score(held[j].Input)
			}
			continue
		}
		for j, i := range rows {
			p[i] = rep.HeldP[j]
		}
		sig[f] = rep.Signal
		for _, c := range rep.Candidates {
			if c.Chosen {
				chosen[f] = fmt.Sprintf("%s %v", c.Scorer, c.L2)
			}
		}
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
	weak := make([]float64, len(ex))
	strong := make([]float64, len(ex))
	y := make([]float64, len(ex))
	for i, e := range ex {
		weak[i], strong[i] = e.Fast, e.Strong
		y[i] = label.Of(e.Fast, e.Strong)
	}
	r := models.Evaluate(p, y, weak, strong)
	return r.APGR, len(ex)
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
}

func k3g3(o *models.TrainOptions) { o.Folds = 3; o.L2Grid = []float64{1e-1, 1e-2, 3e-3} }

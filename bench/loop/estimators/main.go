// Command estimators is the replay experiment behind retrain's choice of
// head estimator (docs/loop.md §4): on a real labelled log split into
// base, traffic and test (loopctl split --test-share), it replays the
// traffic through the starting router's policy with exploration ε,
// several times with different draws, keeping only the outcomes of the
// tiers each decision ran (with the propensity a server records), and
// retrains on base + that feedback with each estimator. For each it
// prints, over the replays, the mean and standard deviation of
//
//   - the per-tier heads' bias: their mean predicted score over all the
//     traffic minus the tier's true mean score there (what a head that
//     learned from a selected sample gets wrong about the population);
//   - the challenger's APGR on the test slice and its gain over the
//     starting router.
//
// A retrain that sees every outcome of the traffic is the reference.
//
//	go run ./bench/loop/estimators --start start.json --base base.jsonl \
//	    --traffic traffic.jsonl --test test.jsonl --eps 0.02 --replays 3
package main

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/models"
	"github.com/triage-router/triage/models/retrain"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "estimators:", err)
		os.Exit(1)
	}
}

type result struct {
	fastBias, strongBias, apgr, gain float64
}

func run() error {
	start := flag.String("start", "", "starting router (trained on --base)")
	basePath := flag.String("base", "", "base log the starting router was trained on")
	trafficPath := flag.String("traffic", "", "traffic log (every outcome; the replay keeps only the ones a decision ran)")
	testPath := flag.String("test", "", "test slice")
	eps := flag.Float64("eps", 0.02, "exploration ε")
	replays := flag.Int("replays", 3, "replays with different exploration draws")
	chooseL2 := flag.Bool("choose-l2", false, "let each retrain choose its L2 by cross-validation (retrain --l2 0) instead of reusing the starting router's")
	l2 := flag.Float64("l2", 0, "L2 of every retrain's heads (retrain --l2); 0 reuses the starting router's")
	impute := flag.String("impute", string(retrain.DefaultImpute), "retrain's imputation of the tier that did not run (fast, both, none), for every estimator but paired-only")
	which := flag.String("estimators", "paired-only,unweighted,ipw,clipped", "estimators to compare")
	flag.Parse()
	champ, err := models.Load(*start)
	if err != nil {
		return err
	}
	cr, err := models.NewRouter(champ)
	if err != nil {
		return err
	}
	read := func(p string) ([]datasets.Record, error) {
		r, _, err := datasets.ReadFile(p, datasets.ReadOptions{})
		return r, err
	}
	base, err := read(*basePath)
	if err != nil {
		return err
	}
	traffic, err := read(*trafficPath)
	if err != nil {
		return err
	}
	test, err := read(*testPath)
	if err != nil {
		return err
	}
	ft, st := champ.Tiers.Fast, champ.Tiers.Strong
	baseIDs := map[string]bool{}
	for i := range base {
		baseIDs[base[i].ID] = true
	}
	// The traffic's true tier accuracies, and the test slice's arrays.
	var trueFast, trueStrong float64
	for i := range traffic {
		f, s, _ := traffic[i].Scores(ft, st)
		trueFast += f
		trueStrong += s
	}
	trueFast /= float64(len(traffic))
	trueStrong /= float64(len(traffic))
	var tw, ts []float64
	var tin []*datasets.Record
	for i := range test {
		f, s, ok := test[i].Scores(ft, st)
		if ok {
			tw, ts, tin = append(tw, f), append(ts, s), append(tin, &test[i])
		}
	}
	apgrOf := func(r *models.Router) float64 {
		p := make([]float64, len(tin))
		for i, rec := range tin {
			p[i] = r.Route(retrain.RecordInput(rec)).PHard
		}
		y := make([]float64, len(p))
		for i := range y {
			y[i] = b(ts[i] > tw[i])
		}
		return models.Evaluate(p, y, tw, ts).APGR
	}
	startAPGR := apgrOf(cr)
	fmt.Printf("starting router (%s scorer): test APGR %.4f on %d; traffic %d, true fast %.4f strong %.4f; ε %.3f\n",
		champ.ScorerKind(), startAPGR, len(tin), len(traffic), trueFast, trueStrong, *eps)

	retrain := func(recs []datasets.Record, est string) (result, error) {
		opts := retrain.Options{
			Compare:         retrain.CompareOptions{Margin: retrain.DefaultMargin, Bootstrap: retrain.BootstrapOptions{Resamples: 50}},
			ChampionTrained: func(id string) bool { return baseIDs[id] },
			Now:             time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
			ChooseL2:        *chooseL2,
			L2:              *l2,
			Impute:          retrain.ImputeMode(*impute),
		}
		switch est {
		case "paired-only":
			opts.PairedOnly = true
		case "full":
		default:
			opts.Examples.Heads = retrain.HeadEstimator(est)
		}
		res, err := retrain.Run(champ, merged(base, recs), opts)
		if err != nil {
			return result{}, fmt.Errorf("%s: %w", est, err)
		}
		r, err := models.NewRouter(res.Challenger)
		if err != nil {
			return result{}, err
		}
		var out result
		var mf, ms float64
		if _, _, ok := r.TierScores(retrain.RecordInput(&traffic[0])); ok {
			for i := range traffic {
				f, s, _ := r.TierScores(retrain.RecordInput(&traffic[i]))
				mf += f
				ms += s
			}
			out.fastBias = mf/float64(len(traffic)) - trueFast
			out.strongBias = ms/float64(len(traffic)) - trueStrong
		} else {
			out.fastBias, out.strongBias = math.NaN(), math.NaN()
		}
		out.apgr = apgrOf(r)
		out.gain = out.apgr - startAPGR
		return out, nil
	}

	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	// Full information: every traffic outcome, decisions as the first replay's.
	full := replay(traffic, cr, champ, *eps, 1, t0, true)
	ref, err := retrain(full, "full")
	if err != nil {
		return err
	}
	fmt.Printf("%-12s fast-head bias %+.4f  strong-head bias %+.4f  test APGR %.4f  gain %+.4f\n", "full-info", ref.fastBias, ref.strongBias, ref.apgr, ref.gain)
	ests := strings.Split(*which, ",")
	all := map[string][]result{}
	for k := 1; k <= *replays; k++ {
		fb := replay(traffic, cr, champ, *eps, uint64(k), t0, false)
		for _, e := range ests {
			r, err := retrain(fb, e)
			if err != nil {
				return err
			}
			all[e] = append(all[e], r)
			fmt.Fprintf(os.Stderr, "replay %d %-12s fast bias %+.4f strong bias %+.4f test APGR %.4f\n", k, e, r.fastBias, r.strongBias, r.apgr)
		}
	}
	fmt.Printf("\n%-12s %-22s %-22s %-22s %s\n", "estimator", "fast-head bias", "strong-head bias", "test APGR", "gain over start (share of full-info gain)")
	for _, e := range ests {
		rs := all[e]
		fbm, fbs := meanSD(rs, func(r result) float64 { return r.fastBias })
		sbm, sbs := meanSD(rs, func(r result) float64 { return r.strongBias })
		am, as := meanSD(rs, func(r result) float64 { return r.apgr })
		gm, gs := meanSD(rs, func(r result) float64 { return r.gain })
		fmt.Printf("%-12s %+.4f ± %.4f       %+.4f ± %.4f       %.4f ± %.4f       %+.4f ± %.4f (%.0f%%)\n", e, fbm, fbs, sbm, sbs, am, as, gm, gs, 100*gm/ref.gain)
	}
	fmt.Printf("(mean ± standard deviation over %d replays; bias = the head's mean predicted score over the traffic minus the tier's true mean score)\n", *replays)
	return nil
}

// replay routes the traffic with the router's policy and exploration ε
// (draws seeded by seed) and returns the records a server would export:
// the decision with its propensity and the outcomes of the tiers it ran
// (all of them with full).
func replay(traffic []datasets.Record, r *models.Router, a *models.Artifact, eps float64, seed uint64, t0 time.Time, full bool) []datasets.Record {
	rng := rand.New(rand.NewPCG(seed, 11))
	out := make([]datasets.Record, len(traffic))
	for i := range traffic {
		rec := traffic[i]
		res := r.Route(retrain.RecordInput(&rec))
		d := &datasets.Decision{Kind: string(res.Decision), PHard: res.PHard, ModelVersion: a.Version, Propensity: 1}
		if d.Kind != "speculate" {
			d.Propensity = 1 - eps
			if rng.Float64() < eps {
				d.Kind, d.Propensity, d.Explored = "speculate", eps, true
			}
		}
		o := map[string]datasets.Outcome{}
		for m, oc := range rec.Outcomes {
			ran := full || d.Kind == "speculate" ||
				(d.Kind == "fast" && m == a.Tiers.Fast) || (d.Kind == "escalate" && m == a.Tiers.Strong)
			if ran {
				o[m] = oc
			}
		}
		rec.Outcomes, rec.Decision, rec.TS = o, d, t0.Add(time.Duration(i)*time.Second)
		out[i] = rec
	}
	return out
}

func meanSD(rs []result, f func(result) float64) (m, sd float64) {
	for _, r := range rs {
		m += f(r)
	}
	m /= float64(len(rs))
	for _, r := range rs {
		d := f(r) - m
		sd += d * d
	}
	if len(rs) > 1 {
		sd = math.Sqrt(sd / float64(len(rs)-1))
	}
	return m, sd
}

func b(x bool) float64 {
	if x {
		return 1
	}
	return 0
}

func merged(a, b []datasets.Record) []datasets.Record {
	m, _ := retrain.MergeRecords(a, b)
	return m
}

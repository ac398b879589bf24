package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"runtime"
	"sync"

	"github.com/triage-router/triage/classifier"
	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/models"
	"github.com/triage-router/triage/models/report"
)

func init() {
	register("eval", "measure a router on a held-out log, or a training recipe by cross-validation", runEval)
}

const evalUsage = "--model FILE --data F [--unseen] [--fast M --strong M] [--json]\n       triage eval --cv K --data F --fast M --strong M [--label strong-wins|weak-fails|gap:T|gain] [--json]\n       triage eval --cv K --data F --tier A[=PRICE] --tier B[=PRICE] ... [--json]"

func runEval(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "eval", evalUsage)
	var tf trainFlags
	tf.register(fs)
	fs.Lookup("seed").Usage = seedUsageEval // eval has no --holdout split
	model := fs.String("model", "", "router artifact to evaluate on --data")
	unseen := fs.Bool("unseen", false, "with --model: measure only the requests the router was not trained on (its artifact names its logs and id-hash holdout: train with --holdout 0.2 to keep a share out); without it, evaluating a router on its own training log prints a warning")
	cv := fs.Int("cv", 0, "report out-of-fold results of K-fold cross-validation instead of a given model")
	asJSON := fs.Bool("json", false, "print one JSON object: {router, random, oracle} for a two-tier router, the policy, its routed point, the single tiers, the oracle and AIQ for an N-tier one (quality on 0-100, as quality_unit says)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// --cv 0 given is a K out of range, not a missing --cv.
	cvGiven := *cv != 0 || flagsGiven(fs)["cv"]
	switch {
	case *model != "" && cvGiven:
		return usagef("use --model FILE or --cv K", "--model and --cv exclude each other")
	case *model != "":
		if err := modelOnlyFlags(fs); err != nil {
			return err
		}
		return evalModel(ctx, env, *model, tf, *unseen, *asJSON)
	case *unseen:
		return usagef("use --unseen with --model", "--unseen needs --model (--cv measures every fold on requests its router did not see)")
	case cvGiven:
		if *cv < 2 {
			return usagef("use 2 or more folds", "--cv is %d", *cv)
		}
		if tf.tier.multi() {
			return evalCVTiers(ctx, env, *cv, &tf, *asJSON)
		}
		return evalCV(ctx, env, *cv, tf, *asJSON)
	default:
		return usagef("give --model FILE, or --cv K with --fast and --strong", "eval needs --model or --cv")
	}
}

// evalModel scores a log with a trained router. The tiers and label come
// from the artifact unless given.
func evalModel(ctx context.Context, env *Env, path string, tf trainFlags, unseen, asJSON bool) error {
	if len(tf.data) == 0 {
		return usagef("give --data FILE", "eval needs --data")
	}
	a, err := models.Load(path)
	if err != nil {
		return err
	}
	if a.IsMultiTier() {
		return evalTiersModel(ctx, env, path, a, tf, unseen, asJSON)
	}
	// --fast and --strong pick the log's models to measure against (a
	// router trained on one pair, judged on another); else the router's.
	fromRouter := map[string]bool{"fast": tf.fast == "", "strong": tf.strong == ""}
	if tf.fast == "" {
		tf.fast = a.Tiers.Fast
	}
	if tf.strong == "" {
		tf.strong = a.Tiers.Strong
	}
	if tf.fast == tf.strong {
		// One flag naming the router's other tier made both tiers one
		// model: the report measured it against itself (no gap, APGR
		// undefined) and exited 0. Refused as train and eval --cv are.
		return usagef("pick two different models", "--fast and --strong are both %q (%s's tiers are %q and %q)", tf.fast, path, a.Tiers.Fast, a.Tiers.Strong)
	}
	labelName := a.Label
	if labelName == "" {
		labelName = tf.label
	} else if tf.given("label") != "" && tf.label != a.Label {
		// Refused, not ignored: the router predicts its own label, and
		// its auc, logloss and ece are measured on it.
		return usagef("leave --label out: eval --model measures the router on the label it was trained for",
			"--label %s, but %s was trained for %s", tf.label, path, a.Label)
	}
	label, err := datasets.ParseLabel(labelName)
	if err != nil {
		return fmt.Errorf("artifact label: %w", err)
	}
	r, err := models.NewRouter(a)
	if err != nil {
		return err
	}
	// Reading does not look at ctx: on a large log Ctrl-C waited for its
	// end, and eval then printed its report and exited 0.
	var set *labelledSet
	err = interruptible(ctx, func() error {
		var err error
		set, err = loadLabelled(tf.data, tf.fast, tf.strong, readOptions(env, "eval", tf.skipBad))
		return err
	})
	if at := (*absentTierError)(nil); errors.As(err, &at) {
		at.ofRouter = fromRouter[at.role] // the tier came from the artifact, not a flag
	}
	if err != nil {
		return err
	}
	keep, notes, inSample, err := screenTrained(env, "eval", unseen, []string{path}, []*models.Artifact{a}, set.keys, set.logs, nil)
	if err != nil {
		return err
	}
	set.examples = keepOnly(set.examples, keep)
	// The table says what it measured, as train's do: a figure on the
	// router's own training records reads like one on new traffic.
	heading := fmt.Sprintf("figures on the %s of --data (none found in the logs %s was trained on):", count(len(set.examples), "request"), path)
	switch {
	case keep != nil:
		heading = fmt.Sprintf("held-out figures (--unseen: the %s of --data %s was not trained on):", count(len(set.examples), "request"), path)
	case notes[0] != "":
		heading = notes[0] + ":"
	}
	p := make([]float64, len(set.examples))
	for i, e := range set.examples {
		p[i] = r.Route(e.Input).PHard
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	y, weak, strong := scoresOf(set.examples, label)
	if set.missing > 0 {
		fmt.Fprintf(env.Stderr, "triage eval: %s skipped without both tiers' scores\n", count(set.missing, "record"))
	}
	noteSkipped(env, "eval", set.bad)
	warnFew(env, "eval", len(set.examples), "evaluate on a larger log")
	warnSwapped(env, "eval", weak, strong)
	if !asJSON {
		fmt.Fprintln(env.Stdout, heading)
	}
	measured := inSample[0] // the records it was trained on
	if keep != nil {
		measured = 0 // --unseen left them out
	}
	ci := report.BootstrapAPGR(p, weak, strong, report.DefaultResamples, report.DefaultSeed)
	return printReports(env.Stdout, asJSON, nil, &ci, withInSample(models.Evaluate(p, y, weak, strong), measured), models.EvaluateRandom(y, weak, strong), models.EvaluateOracle(y, weak, strong))
}

// evalCV trains K routers, each without one fold (choosing its own L2 and
// calibration by inner CV on its training folds only), and evaluates the
// pooled out-of-fold p_hard.
func evalCV(ctx context.Context, env *Env, k int, tf trainFlags, asJSON bool) error {
	label, err := tf.check("eval --cv", env.Stdin)
	if err != nil {
		return err
	}
	set, err := loadLabelled(tf.data, tf.fast, tf.strong, readOptions(env, "eval", tf.skipBad))
	if err != nil {
		return err
	}
	// Each of the k trainings sees (k-1)/k of the records.
	if err := checkTrainSize(len(set.examples)*(k-1)/k, tf.folds); err != nil {
		return fmt.Errorf("each of the %d trainings of --cv %d leaves a fold of the %s out: %w", k, k, count(len(set.examples), "record"), err)
	}
	p, err := crossValidate(ctx, env, set.examples, k, tf, label)
	if err != nil {
		return err
	}
	y, weak, strong := scoresOf(set.examples, label)
	if set.missing > 0 {
		fmt.Fprintf(env.Stderr, "triage eval: %s skipped without both tiers' scores\n", count(set.missing, "record"))
	}
	noteSkipped(env, "eval", set.bad)
	warnFew(env, "eval", len(set.examples), "evaluate on a larger log")
	warnSwapped(env, "eval", weak, strong)
	if !asJSON {
		fmt.Fprintf(env.Stdout, "out-of-fold figures (%d-fold cross-validation by id hash: each request scored by a router trained without it):\n", k)
	}
	ci := report.BootstrapAPGR(p, weak, strong, report.DefaultResamples, report.DefaultSeed)
	return printReports(env.Stdout, asJSON, nil, &ci, withInSample(models.Evaluate(p, y, weak, strong), 0), models.EvaluateRandom(y, weak, strong), models.EvaluateOracle(y, weak, strong))
}

// crossValidate returns each example's out-of-fold p_hard. The outer folds
// are independent, so up to GOMAXPROCS of them train at once, each fit on
// one goroutine: a fold is far too small to keep several cores busy on
// its own (every pass of a fit ends in a merge all workers wait for), and
// a fit's result does not depend on its worker count, so neither does the
// output.
func crossValidate(ctx context.Context, env *Env, ex []models.Example, k int, tf trainFlags, label datasets.Label) ([]float64, error) {
	outer, used := outerFolds(env, ex, tf.seed, k)
	p := make([]float64, len(ex))
	prog, stop := newProgress(env)
	defer stop()
	var mu sync.Mutex // guards stepsDone
	// The bar counts the fitting steps of all folds (each head is
	// cross-validated, then fitted), not just the folds: a fold of MMLU
	// takes half a minute.
	heads := 2
	if sc := tf.scorer; sc == models.ScorerLabel || sc == "" && models.DefaultScorer(label.String()) == models.ScorerLabel {
		heads = 1
	}
	steps, stepsDone := len(used)*2*heads, 0
	desc := fmt.Sprintf("cross-validating: %d trainings", len(used))
	stepDone := func(_ string, done, total int) {
		if total > 0 && done == total {
			mu.Lock()
			stepsDone++
			prog(desc, stepsDone, steps)
			mu.Unlock()
		}
	}
	if prog != nil {
		prog(desc, 0, steps)
	}
	// fold trains without fold f and writes p for its rows; folds write
	// disjoint rows of p.
	spare := new(classifier.Spare)
	fold := func(f int) error {
		var train, held []models.Example
		var heldRows []int
		for i := range ex {
			if outer[i] == f {
				held = append(held, ex[i])
				heldRows = append(heldRows, i)
			} else {
				train = append(train, ex[i])
			}
		}
		assignFolds(train, tf.seed+1, tf.folds)
		opts := tf.options(label)
		opts.Classifier.Workers, opts.Classifier.Spare = 1, spare
		if prog != nil {
			opts.Progress = stepDone
		}
		_, rep, err := models.Train(train, held, opts)
		if err != nil {
			return fmt.Errorf("training without fold %d of %d: %w", f+1, k, explainTrainError(err, len(train)))
		}
		for j, i := range heldRows {
			p[i] = rep.HeldP[j]
		}
		return nil
	}
	// runFolds stops between folds; a fold's training does not look at
	// ctx, and on a large log runs for a while.
	if err := interruptible(ctx, func() error {
		return runFolds(ctx, len(used), spare, func(j int) error { return fold(used[j]) }, nil)
	}); err != nil {
		return nil, err
	}
	return p, nil
}

// outerFolds assigns each example its outer fold by id hash and lists the
// folds that hold at least one. With K near or above the number of records
// some folds are empty, and training without an empty fold fits a router
// that scores nothing (--cv 1000 on 400 records trained 1,000 routers for
// 333 folds' worth of scores); stderr says how many were skipped.
func outerFolds(env *Env, ex []models.Example, seed uint64, k int) (outer, used []int) {
	outer = make([]int, len(ex))
	size := make([]int, k)
	for i := range ex {
		outer[i] = datasets.Fold(ex[i].ID, seed, k)
		size[outer[i]]++
	}
	for f, n := range size {
		if n > 0 {
			used = append(used, f)
		}
	}
	if empty := k - len(used); empty > 0 {
		fmt.Fprintf(env.Stderr, "triage eval: --cv %d on %s: %d of the %d folds %s no record (folds are drawn by id hash), so %s %s trained, one without each fold that holds some\n",
			k, count(len(ex), "record"), empty, k, oneOr(empty, "holds", "hold"), count(len(used), "router"), oneOr(len(used), "is", "are"))
	}
	return outer, used
}

// runFolds calls fold for each of the k folds, on up to GOMAXPROCS
// goroutines (each fold's training then runs on one core). Cores no fold
// goroutine uses, at the start or once the folds run out, go to spare
// (when not nil), for the fits still running to borrow. The first
// error stops the folds not yet started and is returned, as is the
// context's error when it ends first. onDone, if not nil, is called after
// each fold with how many have finished, one call at a time.
func runFolds(ctx context.Context, k int, spare *classifier.Spare, fold func(f int) error, onDone func(done int)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		first error
		done  int
	)
	next := make(chan int)
	var wg sync.WaitGroup
	runners := min(k, runtime.GOMAXPROCS(0))
	if spare != nil {
		spare.Give(runtime.GOMAXPROCS(0) - runners)
	}
	for range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if spare != nil {
				defer spare.Give(1)
			}
			for f := range next {
				err := fold(f)
				mu.Lock()
				if err != nil && first == nil {
					first = err
					cancel()
				}
				done++
				if onDone != nil {
					onDone(done)
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for f := 0; f < k; f++ {
		select {
		case next <- f:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// evalModelFlags are the flags eval --model reads; the rest (the recipe,
// the fit and the N-tier policy knobs) shape a training, which --model does
// not run: they are refused rather than ignored.
var evalModelFlags = map[string]bool{"data": true, "fast": true, "strong": true, "label": true, "skip-bad": true, "model": true, "unseen": true, "json": true}

func modelOnlyFlags(fs *flag.FlagSet) error {
	var err error
	fs.Visit(func(f *flag.Flag) {
		if err == nil && !evalModelFlags[f.Name] {
			err = usagef("a trained router's features, fit and policy are in its artifact, and eval --model measures it as it is; triage calibrate sets its thresholds",
				"--%s applies to eval --cv, not to eval --model", f.Name)
		}
	})
	return err
}

// warnSwapped says on stderr, as train does, when the tier named strong is
// measurably worse than the fast one: the oracle below random and every
// figure reversed are otherwise all the user sees.
func warnSwapped(env *Env, cmd string, weak, strong []float64) {
	if why := models.SwappedTiers(weak, strong); why != "" {
		fmt.Fprintf(env.Stderr, "triage %s: warning: %s\n", cmd, why)
	}
}

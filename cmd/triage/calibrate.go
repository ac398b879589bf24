package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"io"
	"math"
	"strings"
	"time"

	"github.com/triage-router/triage/models"
	"github.com/triage-router/triage/models/replay"
	"github.com/triage-router/triage/models/report"
)

func init() {
	register("calibrate", "set a router's thresholds to meet a target share, cost, latency or quality", runCalibrate)
}

const calibrateUsage = "--model FILE --data F --target strong-share=0.3 | cost-per-1k=USD | p95-latency=MS | quality=0.95 [--target ...] [--minimize cost|latency] [--meet estimate|ci95] [--knob lambda|margin] -o NEW"

// How a quality target must hold (--meet): on the operating point's
// estimate, or also at the lower end of its 95% bootstrap interval.
const (
	meetEstimate = "estimate"
	meetCI95     = "ci95"
)

// calibrateResult is the --json output.
type calibrateResult struct {
	Version       string                      `json:"version"`
	Parent        string                      `json:"parent"`
	Policy        models.Policy               `json:"policy"`
	PolicyTarget  string                      `json:"policy_target"`
	Kind          replay.Kind                 `json:"kind"`
	N             int                         `json:"n"`
	InSample      int                         `json:"in_sample"`
	StrongShare   estimate                    `json:"strong_share"`
	Quality       estimate                    `json:"quality"`
	RelQuality    estimate                    `json:"relative_quality"`
	CostPer1k     estimate                    `json:"cost_per_1k"`
	LatencyP95MS  estimate                    `json:"latency_p95_ms"`
	LatencyMeanMS jfloat                      `json:"latency_mean_ms"`
	PGR           jfloat                      `json:"pgr"`
	Shares        map[models.Decision]float64 `json:"expected_shares"`
}

type estimate struct {
	Value jfloat    `json:"value"`
	CI95  [2]jfloat `json:"ci95"`
}

func est(v float64, iv report.Interval) estimate {
	return estimate{jfloat(v), [2]jfloat{jfloat(iv.Lo), jfloat(iv.Hi)}}
}

// jfloat is a float64 that encodes NaN (a PGR when both tiers tie) as null.
type jfloat float64

func (f jfloat) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return []byte("null"), nil
	}
	return json.Marshal(float64(f))
}

func runCalibrate(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "calibrate", calibrateUsage)
	var rf replayFlags
	rf.register(fs)
	model := fs.String("model", "", "router artifact whose thresholds to set")
	var targets stringList
	fs.Var(&targets, "target", "strong-share=S (two-tier routers; met within the grid's resolution), cost-per-1k=C (at most: the mean cost per 1,000 requests, in USD from the log's cost_usd or --cost, or for N tiers without them in the tiers' price units), p95-latency=MS (at most) or quality=Q (at least, relative to always-strong; for N tiers, to the best single tier); repeat for several")
	minimize := fs.String("minimize", "", "among the policies meeting every target, the lowest cost or latency (p95); by default cost, but with only ceilings (cost-per-1k, p95-latency) the highest quality within them")
	out := fs.String("o", "", "write the new artifact version to NEW")
	asJSON := fs.Bool("json", false, "print the expected operating point as one JSON object: for two tiers each estimate as {\"value\", \"ci95\": [lo, hi]} and cost_per_1k per 1,000 requests; for N tiers quality on [0,1] (quality_unit), cost per request and cost_per_1k")
	meet := fs.String("meet", meetEstimate, "how a quality target must hold (two-tier routers): estimate (the operating point's quality meets it) or ci95 (the lower end of its 95% bootstrap interval, the quality/strong interval printed, meets it too: the cheapest such policy, which costs no less; --resamples and --seed set the interval)")
	knob := fs.String("knob", "lambda", "N-tier routers: the policy knob to set, lambda (willingness to pay) or margin (the quality floor, at λ=0)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *model == "" {
		return usagef("give --model FILE", "calibrate needs --model")
	}
	if *out == "" {
		return usagef("give -o NEW", "calibrate needs an output file")
	}
	// -o may be --model itself (a new version in place, for serve
	// --watch), but not a log it reads.
	if err := checkNotInput(*out, rf.data...); err != nil {
		return err
	}
	if err := checkOutFile(*out); err != nil {
		return err
	}
	if len(targets) == 0 {
		return usagef("e.g. --target strong-share=0.3", "calibrate needs at least one --target")
	}
	solver := &replay.Solver{ShareTolerance: shareTolerance(rf.grid)}
	seen := map[replay.TargetKind]bool{}
	for _, s := range targets {
		t, err := replay.ParseTarget(s)
		if err != nil {
			return usagef("see -h for the target forms", "%v", err)
		}
		if seen[t.Kind] {
			return usagef("give each kind of target once", "--target %s appears twice", t.Kind)
		}
		seen[t.Kind] = true
		solver.Targets = append(solver.Targets, t)
	}
	switch replay.Objective(*minimize) {
	case replay.MinimizeCost, replay.MinimizeLatency:
		solver.Minimize = replay.Objective(*minimize)
	case "":
		// Under ceilings alone the cheapest policy is always-fast (the
		// cheapest tier) whatever the ceiling: a budget of $10 per 1k
		// gave the $0.60 of sending nothing to the strong tier. What a
		// budget asks for is the best quality it buys.
		solver.Minimize = replay.MinimizeCost
		if !replay.HasFloor(solver.Targets) {
			solver.Minimize = replay.MaximizeQuality
		}
	default:
		return usagef("use --minimize cost or latency", "--minimize %q is not known", *minimize)
	}
	switch {
	case *meet != meetEstimate && *meet != meetCI95:
		return usagef("use --meet estimate or ci95", "--meet %q is not known", *meet)
	case *meet == meetCI95 && !seen[replay.TargetQuality]:
		return usagef("give --target quality=Q, or leave --meet out", "--meet ci95 applies to a quality target, and none is given")
	}
	lat, cost, billing, err := rf.check("calibrate")
	if err != nil {
		return err
	}
	// The router first: what it cannot do (a wrong path, --knob on two
	// tiers, no signal to set thresholds on) fails before a long log is read.
	art, err := models.Load(*model)
	if err != nil {
		return err
	}
	if err := checkDefaultModels([]*models.Artifact{art}, lat, cost); err != nil {
		return err
	}
	if art.IsMultiTier() {
		if err := twoTierOnly(fs, *model); err != nil {
			return err
		}
		// Said before the log is read, and as the usage error it is: it
		// came after the replay, with exit 1.
		for _, t := range solver.Targets {
			if t.Kind == replay.TargetStrongShare {
				return usagef("use cost-per-1k, p95-latency or quality", "--target %s: %s is an N-tier router, which has no single strong tier", t, *model)
			}
		}
	} else {
		if flagsGiven(fs)["knob"] {
			// Refused, not ignored: the user thinks it chooses something.
			return usagef("a two-tier router's thresholds (speculate_above, escalate_above, accept_confidence) are what calibrate sets for it",
				"--knob applies to N-tier routers, and %s is a two-tier one", *model)
		}
		if err := rf.checkResamples(); err != nil {
			return err
		}
		if sig := art.Signal; sig != nil && !sig.Routable {
			return fmt.Errorf("%s cannot route, so it has no thresholds to set: %s; train on more (or more varied) requests, or pass --route-anyway to train", *model, sig.Reason)
		}
	}
	recs, err := rf.logRecords(env, "calibrate")
	if err != nil {
		return err
	}
	// Thresholds set on requests the router was trained on aim at
	// in-sample p_hard: a warning, or --unseen keeps the others.
	var inSample []int
	if recs, _, inSample, err = rf.screenReplay(env, "calibrate", []string{*model}, []*models.Artifact{art}, recs); err != nil {
		return err
	}
	if art.IsMultiTier() {
		return calibrateTiers(ctx, env, art, solver, *knob, recs, inSample[0], lat, cost, billing, &rf, *out, *asJSON)
	}
	r, rl, rp, err := loadReplay(art, rf.data, recs, lat, cost, billing)
	if err != nil {
		return err
	}
	if rl.missing > 0 {
		fmt.Fprintf(env.Stderr, "triage calibrate: %s skipped without both tiers' scores\n", count(rl.missing, "record"))
	}
	// Thresholds set on a few dozen requests follow their noise; eval
	// and train warn under the same size, and so the README promises.
	warnFew(env, "calibrate", rp.Len(), "set the thresholds on a larger log")
	if err := checkKnown(env, solver, r.Artifact().Tiers, rl); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	_, solver.StrongQuality = rp.Baselines()
	g := rp.QuantileGrid(rf.grid, rf.acceptGrid)
	solver.KeepFront = *meet == meetCI95
	if *meet == meetCI95 {
		solver.KeepCheapest = meetBand
	}
	sweepOpts := replay.SweepOptions{NoPercentiles: !solver.NeedsPercentiles()}
	prog, stop := newProgress(env)
	sweepWithProgress(rp, g, sweepOpts, prog, "searching the threshold grid", solver.Consider)
	stop()
	best, err := solver.Result()
	if err != nil {
		var inf *replay.InfeasibleError
		if asInfeasible(err, &inf) {
			// The sweep may have skipped percentiles; name the closest
			// point with all its figures.
			inf.Closest = rp.Point(inf.Closest.Policy)
			blankUnknown(&inf.Closest, nil, rl)
			return inf
		}
		return err
	}

	// The intervals before the save: computed after it, they held an
	// interrupt for their whole run (seconds on a large log with many
	// --resamples), after which calibrate printed its report and exited
	// 0 with the file written, having said "interrupted; stopping".
	reqs := rp.Requests()
	strong := make([]float64, len(reqs))
	for i := range reqs {
		strong[i] = reqs[i].StrongScore
	}
	var iv report.PointIntervals
	if *meet == meetCI95 {
		sweep := func(visit func(*replay.OperatingPoint)) { rp.SweepFunc(g, sweepOpts, visit) }
		if best, iv, err = meetOnInterval(ctx, env, rp, solver, sweep, strong, &rf); err != nil {
			return err
		}
	} else if err := interruptible(ctx, func() error {
		iv = bootstrapPoint(rp.Outcomes(nil, best.Policy), strong, rf.resamples, rf.seed)
		return nil
	}); err != nil {
		return err
	}
	op := rp.Point(best.Policy)

	a := r.Artifact().Derive(time.Now())
	a.Policy = op.Policy
	ts := make([]string, len(solver.Targets))
	for i, t := range solver.Targets {
		ts[i] = t.String()
		if t.Kind == replay.TargetQuality && *meet == meetCI95 {
			ts[i] += " (at the lower end of its 95% interval)"
		}
	}
	minimized := solver.Minimize.Describe()
	if solver.Minimize == replay.MinimizeCost && rl.noCost {
		// Cost is priced from placeholders: the fewest strong calls won.
		minimized = "minimize strong calls (the log has no cost)"
	}
	a.PolicyTarget = fmt.Sprintf("calibrate: %s, %s, on %s (%s, %s x %s)",
		strings.Join(ts, " and "), minimized, strings.Join(rf.data, ","), count(rp.Len(), "request"), count(len(g.Thresholds), "threshold"), count(max(1, len(g.Accept)), "accept value"))
	a.ExpectedShares = rp.Shares(op.Policy)
	if err := saveArtifact(ctx, a, *out); err != nil {
		return err
	}
	if sig := art.Signal; sig != nil && sig.Routable && !sig.Significant {
		// Train's default policy escalated every request; these
		// thresholds make it route, which serve warns of on every load.
		// Said here, where the choice is made, not first in a server log.
		fmt.Fprintf(env.Stderr, "triage calibrate: note: %s was %s; these thresholds make it route (serve warns of it at every load); the APGR interval curves gives on these requests says whether they show it beats random\n", *model, sig.NotShown())
	}
	blankUnknown(&op, &iv, rl)
	res := calibrateResult{
		Version: a.Version, Parent: a.Parent, Policy: op.Policy, PolicyTarget: a.PolicyTarget, Kind: op.Kind, N: op.N, InSample: inSample[0],
		StrongShare: est(op.StrongShare, iv.StrongShare), Quality: est(op.Quality, iv.Quality),
		RelQuality: est(op.Quality/solver.StrongQuality, iv.RelQuality), CostPer1k: est(op.CostPer1k, iv.CostPer1k),
		LatencyP95MS: est(op.LatencyP95MS, iv.LatencyP95MS), LatencyMeanMS: jfloat(op.LatencyMeanMS), PGR: jfloat(op.PGR),
		Shares: a.ExpectedShares,
	}
	if *asJSON {
		return json.NewEncoder(env.Stdout).Encode(res)
	}
	printCalibration(env.Stdout, &res, rf.resamples, *out)
	return nil
}

// bootstrapPoint is report.BootstrapPoint; a test replaces it to
// interrupt calibrate while the intervals are computed.
var bootstrapPoint = report.BootstrapPoint

// meetBand is how many candidates --meet ci95 holds at a time (about 9
// MiB of operating points): the default grid's policies fit in one, and
// a finer grid is swept again for each further band.
var meetBand = 1 << 16

// meetOnInterval is --meet ci95: the cheapest (or fastest) policy whose
// quality, relative to always-strong, meets the quality target at the
// lower end of its 95% bootstrap interval, with its intervals. A point
// estimate that just meets the target is as likely to fall short on new
// traffic as not; a user who must not fall short asks for this.
//
// It walks every policy that meets every target on its estimates, best
// on the objective first, and the first whose lower end meets the target
// wins. A policy whose estimate falls short is not tried: "meets it too"
// is the promise. It walked only the solver's front (the policies no
// other beats on both the objective and estimated quality), but a policy
// off it may have the narrower interval and so the higher lower end, and
// a cheaper one was then missed. Each policy is checked with a
// report.RelQualityChecker, which answers as its printed interval would,
// stops at the first resamples that rule it out and draws each resample
// once for them all; the winner's intervals are then computed in full.
// Every point shares the same resamples (one seed), and the interval
// checked is the one printed.
//
// The solver was given KeepCheapest (meetBand) for the sweep that found
// the estimate's answer; past that band, sweep replays the grid again
// for the next one.
func meetOnInterval(ctx context.Context, env *Env, rp *replay.Replayer, solver *replay.Solver, sweep func(visit func(*replay.OperatingPoint)), strong []float64, rf *replayFlags) (replay.OperatingPoint, report.PointIntervals, error) {
	var q float64
	for _, t := range solver.Targets {
		if t.Kind == replay.TargetQuality {
			q = t.Value
		}
	}
	var (
		chosen   replay.OperatingPoint
		chosenIV report.PointIntervals
		found    bool
		checked  int
	)
	// One checker for every policy and interval: it draws each resample
	// once for them all.
	chk := report.NewRelQualityChecker(strong, rf.resamples, rf.seed)
	prog, stop := newProgress(env)
	defer stop()
	err := interruptible(ctx, func() error {
		var out []replay.Replayed
		// The check reads each request's kept score, in the order of
		// the kept answers' latencies: policies that keep the same
		// scores at the same latencies get the same answer, and only
		// the first (the cheapest) of them is checked. Without a
		// confidence in the log a speculation always awaits the strong
		// answer, so every speculate band repeats a fast/escalate
		// policy's scores and latencies at a higher cost.
		seen := map[[2]uint64]bool{}
		seeds := [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}
		cands := solver.Cheapest()
		for {
			for i := range cands {
				if err := ctx.Err(); err != nil {
					return err // abandoned: stop bootstrapping
				}
				if prog != nil && checked%64 == 0 {
					prog("checking the quality intervals of the cheapest policies", checked, 0)
				}
				checked++
				out = rp.Outcomes(out[:0], cands[i].Policy)
				k := scoresAndLatencies(seeds, out)
				if seen[k] {
					continue
				}
				seen[k] = true
				if chk.LoAtLeast(out, q) {
					chosen, chosenIV, found = cands[i], chk.BootstrapPoint(out), true
					return nil
				}
			}
			if len(cands) < solver.KeepCheapest {
				return nil // that was the last band
			}
			next := solver.NextBand(&cands[len(cands)-1])
			sweep(next.Consider)
			cands = next.Cheapest()
		}
	})
	if err != nil {
		return replay.OperatingPoint{}, report.PointIntervals{}, err
	}
	if found {
		return chosen, chosenIV, nil
	}
	// None does: name the policy of the front whose lower end comes
	// closest, with its interval.
	front := solver.Front()
	var (
		closest   replay.OperatingPoint
		closestIV report.Interval
	)
	err = interruptible(ctx, func() error {
		for i := range front {
			if err := ctx.Err(); err != nil {
				return err
			}
			iv := chk.RelQuality(rp.Outcomes(nil, front[i].Policy))
			if i == 0 || iv.Lo > closestIV.Lo || math.IsNaN(closestIV.Lo) {
				closest, closestIV = front[i], iv
			}
		}
		return nil
	})
	if err != nil {
		return replay.OperatingPoint{}, report.PointIntervals{}, err
	}
	c := rp.Point(closest.Policy)
	return replay.OperatingPoint{}, report.PointIntervals{}, fmt.Errorf("no policy meets quality=%g at the lower end of its 95%% interval on this data (--meet ci95; %s %s checked, those meeting every target on their estimates); the closest is speculate_above=%.4g escalate_above=%.4g accept_confidence=%.4g with quality/strong %.4f [%.4f, %.4f]; relax the target, or calibrate on more requests (the interval narrows with them)",
		q, count(checked, "policy"), oneOr(checked, "was", "were"), c.Policy.SpeculateAbove, c.Policy.EscalateAbove, c.Policy.AcceptConfidence,
		c.Quality/solver.StrongQuality, closestIV.Lo, closestIV.Hi)
}

// scoresAndLatencies is a 128-bit digest of out's scores and latencies,
// all that report.RelQualityLoAtLeast (and a RelQualityChecker) reads of
// it.
func scoresAndLatencies(seeds [2]maphash.Seed, out []replay.Replayed) [2]uint64 {
	var k [2]uint64
	var b [16]byte
	for j, seed := range seeds {
		var h maphash.Hash
		h.SetSeed(seed)
		for i := range out {
			binary.LittleEndian.PutUint64(b[:8], math.Float64bits(out[i].Score))
			binary.LittleEndian.PutUint64(b[8:], math.Float64bits(out[i].LatencyMS))
			h.Write(b[:])
		}
		k[j] = h.Sum64()
	}
	return k
}

// checkKnown refuses a target or objective on a figure the log does not
// have (latency or cost, with no default given), naming the flag that
// gives it, and says what minimising cost means without cost.
func checkKnown(env *Env, solver *replay.Solver, t models.Tiers, rl *replayLog) error {
	need := func(asked, what, unit string) error {
		return fmt.Errorf("%s needs %s, and the log has none: pass --%s '%s=%s,%s=%s'", asked, what, what, t.Fast, unit, t.Strong, unit)
	}
	for _, tg := range solver.Targets {
		switch {
		case tg.Kind == replay.TargetP95Latency && rl.noLatency:
			return need("--target "+tg.String(), "latency", "MS")
		case tg.Kind == replay.TargetCostPer1k && rl.noCost:
			return need("--target "+tg.String(), "cost", "USD")
		}
	}
	switch {
	case solver.Minimize == replay.MinimizeLatency && rl.noLatency:
		return need("--minimize latency", "latency", "MS")
	case solver.Minimize == replay.MinimizeCost && rl.noCost:
		fmt.Fprintf(env.Stderr, "triage calibrate: the log has no cost, so among the policies that meet the targets the one with the fewest strong calls wins (pass --cost to minimise dollars)\n")
	}
	return nil
}

// blankUnknown empties the figures a replay on placeholders cannot know.
func blankUnknown(op *replay.OperatingPoint, iv *report.PointIntervals, rl *replayLog) {
	nan := math.NaN()
	if rl.noLatency {
		op.LatencyMeanMS, op.LatencyP50MS, op.LatencyP95MS, op.LatencyP99MS = nan, nan, nan, nan
		if iv != nil {
			iv.LatencyP95MS = report.Interval{Lo: nan, Hi: nan}
		}
	}
	if rl.noCost {
		op.CostPer1k = nan
		if iv != nil {
			iv.CostPer1k = report.Interval{Lo: nan, Hi: nan}
		}
	}
}

// shareTolerance is how close a strong-share target must be met: half a
// step of the grid, and no tighter than replay.DefaultShareTolerance.
func shareTolerance(grid int) float64 {
	return math.Max(replay.DefaultShareTolerance, 0.5/float64(grid))
}

func asInfeasible(err error, target **replay.InfeasibleError) bool {
	e, ok := err.(*replay.InfeasibleError)
	if ok {
		*target = e
	}
	return ok
}

func printCalibration(w io.Writer, r *calibrateResult, resamples int, path string) {
	fmt.Fprintf(w, "%s\n", r.PolicyTarget)
	fmt.Fprintf(w, "policy (%s): speculate_above=%.6g escalate_above=%.6g accept_confidence=%.6g\n",
		r.Kind, r.Policy.SpeculateAbove, r.Policy.EscalateAbove, r.Policy.AcceptConfidence)
	fmt.Fprintf(w, "expected operating point on %s (95%% bootstrap interval, %s):\n", count(r.N, "request"), count(resamples, "resample"))
	fmt.Fprintf(w, "  strong_share      %.4f  [%.4f, %.4f]\n", r.StrongShare.Value, r.StrongShare.CI95[0], r.StrongShare.CI95[1])
	fmt.Fprintf(w, "  quality           %.4f  [%.4f, %.4f]\n", r.Quality.Value, r.Quality.CI95[0], r.Quality.CI95[1])
	// Quality relative to always-strong is undefined where the strong
	// tier never scores, and PGR where the tiers' mean scores tie (NaN,
	// null in --json): say so, as curves does, rather than print NaN.
	if math.IsNaN(float64(r.RelQuality.Value)) || math.IsInf(float64(r.RelQuality.Value), 0) {
		fmt.Fprintf(w, "  quality/strong    undefined (the strong tier scores 0 on every request)\n")
	} else {
		fmt.Fprintf(w, "  quality/strong    %.4f  [%.4f, %.4f]\n", r.RelQuality.Value, r.RelQuality.CI95[0], r.RelQuality.CI95[1])
	}
	if math.IsNaN(float64(r.PGR)) {
		fmt.Fprintf(w, "  pgr               undefined (the tiers' mean scores tie)\n")
	} else {
		fmt.Fprintf(w, "  pgr               %.4f\n", r.PGR)
	}
	if math.IsNaN(float64(r.CostPer1k.Value)) {
		fmt.Fprintf(w, "  cost_per_1k       unknown (the log has no cost)\n")
	} else {
		fmt.Fprintf(w, "  cost_per_1k       $%.4g  [$%.4g, $%.4g]\n", r.CostPer1k.Value, r.CostPer1k.CI95[0], r.CostPer1k.CI95[1])
	}
	if math.IsNaN(float64(r.LatencyP95MS.Value)) {
		fmt.Fprintf(w, "  latency           unknown (the log has no latency)\n")
	} else {
		fmt.Fprintf(w, "  latency_p95_ms    %.0f  [%.0f, %.0f]\n", r.LatencyP95MS.Value, r.LatencyP95MS.CI95[0], r.LatencyP95MS.CI95[1])
		fmt.Fprintf(w, "  latency_mean_ms   %.0f\n", r.LatencyMeanMS)
	}
	fmt.Fprintf(w, "  decisions         fast %.1f%%, speculate %.1f%%, escalate %.1f%%\n",
		100*r.Shares[models.Fast], 100*r.Shares[models.Speculate], 100*r.Shares[models.Escalate])
	fmt.Fprintf(w, "wrote %s (version %s, parent %s)\n", path, r.Version, r.Parent)
}

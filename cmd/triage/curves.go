package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/models"
	"github.com/triage-router/triage/models/replay"
	"github.com/triage-router/triage/models/report"
	"github.com/triage-router/triage/models/retrain"
)

func init() {
	register("curves", "replay a labelled log over a threshold grid: curves.csv, plots and an HTML report", runCurves)
}

const curvesUsage = "--model FILE --data F [--model FILE2 ...] [--latency MODEL=MS,...] [--cost MODEL=USD,...] [--cancel-billing prorata|full] [--json] -o DIR"

// The grid's defaults, one for curves and calibrate: 100 quantile cuts
// give 101 thresholds, so 5,151 valid (speculate_above <= escalate_above)
// pairs, each tried with 10 accept values when the log has confidence
// (for an N-tier router, 101 values of λ). Calibrate searched 200 × 20,
// so the policy it picked was on no row of the curves.csv a user had
// chosen from. The finer grid bought calibrate policies 0-2.4% cheaper
// on the unseen halves of RouteLLM MMLU and of a 14,000-record synthetic
// log with confidence (quality targets 0.9-0.98), for quality moves of
// at most 0.002, inside the ±0.01 of their 95% intervals; in curves it
// made curves.csv 7.4 times larger on the synthetic log (11.5 MB to
// 85 MB, 315,000 rows) and the run 2.2 times longer (0.65 s to 1.42 s).
const (
	defaultGrid       = 100
	defaultAcceptGrid = 10
)

// minResamples is the fewest bootstrap resamples curves, calibrate and
// retrain take. A 95% interval is read off the 2.5% and 97.5% nearest-rank
// percentiles of the resamples: below 40 those are the smallest and the
// largest draw, and with one resample both ends are that one draw, so
// 'calibrate --resamples 1' printed quality 0.7190 [0.7440, 0.7440], an
// "interval" that excludes its own estimate, and retrain's gate lost its
// standard error. At 100 each end has two draws beyond it; fewer is
// refused rather than printed as a 95% interval.
const minResamples = 100

// resamplesError is the usage error for a --resamples below minResamples.
func resamplesError(n int) error {
	return usagef(fmt.Sprintf("use %d or more; the default is %d", minResamples, report.DefaultResamples),
		"--resamples is %d: a 95%% interval read off fewer than %d resamples rests on their few most extreme values, and can exclude its own estimate", n, minResamples)
}

// replayFlags are the flags curves and calibrate share.
type replayFlags struct {
	data       logList
	latency    stringList
	cost       stringList
	billing    string
	grid       int
	acceptGrid int
	resamples  int
	seed       uint64
	skipBad    bool
	// unseen drops the records a router was trained on (screenTrained).
	unseen bool
	// logs says which --data file each record readLog returns came
	// from, for telling which a router was trained on.
	logs readLogs
}

func (f *replayFlags) register(fs *flag.FlagSet) {
	fs.Var(&f.data, "data", "labelled JSONL log(s), comma-separated or repeated; a folder stands for its *.jsonl and *.jsonl.gz files")
	fs.Var(&f.latency, "latency", "default latency per model where the log has none: MODEL=MS, comma-separated or repeated")
	fs.Var(&f.cost, "cost", "default cost per call per model where the log has none: MODEL=USD, comma-separated or repeated")
	fs.StringVar(&f.billing, "cancel-billing", "prorata", "what a cancelled speculative call costs: prorata (share of its latency it ran) or full")
	fs.IntVar(&f.grid, "grid", defaultGrid, "quantile cuts of p_hard for the threshold grid (N+1 thresholds); for an N-tier router, N+1 values of λ (with calibrate --knob margin, of the margin); curves and calibrate given the same grid and log search the same policies, so calibrate's pick is a row of curves.csv")
	fs.IntVar(&f.acceptGrid, "accept-grid", defaultAcceptGrid, "quantile cuts of the calibrated confidence for accept_confidence (two-tier routers, when the log has confidence)")
	fs.IntVar(&f.resamples, "resamples", report.DefaultResamples, "bootstrap resamples for the 95% intervals (two-tier routers; 100 or more)")
	fs.Uint64Var(&f.seed, "seed", report.DefaultSeed, "seed of the bootstrap resamples behind the 95% intervals (two-tier routers; it seeds no folds: nothing is trained here)")
	fs.BoolVar(&f.skipBad, "skip-bad", false, "skip malformed lines instead of stopping: name the first five on stderr and count them all")
	fs.BoolVar(&f.unseen, "unseen", false, "replay only the requests the router was not trained on (its artifact names its logs and id-hash holdout: train with --holdout 0.2 to keep a share out); without it, replaying a router's own training log prints a warning")
}

// parseDefaults parses MODEL=VALUE pairs. The value follows the last '=',
// so model names may hold any other character.
func parseDefaults(flagName, unit string, vals []string) (map[string]float64, error) {
	out := map[string]float64{}
	for _, v := range vals {
		i := strings.LastIndexByte(v, '=')
		if i <= 0 {
			return nil, usagef(fmt.Sprintf("write --%s MODEL=%s", flagName, unit), "--%s %q: want MODEL=%s", flagName, v, unit)
		}
		x, err := strconv.ParseFloat(strings.TrimSpace(v[i+1:]), 64)
		limit := datasets.MaxCostUSD
		if flagName == "latency" {
			limit = datasets.MaxLatencyMS
		}
		if err != nil || !(x >= 0 && x <= limit) {
			return nil, usagef(fmt.Sprintf("write --%s MODEL=%s with a non-negative number up to %g", flagName, unit, limit), "--%s %q: %q is not a non-negative number up to %g", flagName, v, v[i+1:], limit)
		}
		out[strings.TrimSpace(v[:i])] = x
	}
	return out, nil
}

func (f *replayFlags) check(cmd string) (lat, cost map[string]float64, billing replay.CancelBilling, err error) {
	if len(f.data) == 0 {
		return nil, nil, "", usagef("give --data FILE", "%s needs --data", cmd)
	}
	if f.grid < 2 || f.grid > 2000 {
		return nil, nil, "", usagef("use 2..2000", "--grid is %d", f.grid)
	}
	if f.acceptGrid < 1 || f.acceptGrid > 200 {
		return nil, nil, "", usagef("use 1..200", "--accept-grid is %d", f.acceptGrid)
	}
	billing, err = replay.ParseCancelBilling(f.billing)
	if err != nil {
		return nil, nil, "", usagef("use --cancel-billing prorata or full", "%v", err)
	}
	if lat, err = parseDefaults("latency", "MS", f.latency); err != nil {
		return nil, nil, "", err
	}
	if cost, err = parseDefaults("cost", "USD", f.cost); err != nil {
		return nil, nil, "", err
	}
	return lat, cost, billing, nil
}

// checkResamples refuses too few --resamples for a two-tier router's
// intervals. It is asked once the router is known to be one: for an
// N-tier router, which has no intervals, --resamples 50 was refused as too
// few, and then --resamples 100 as a flag it does not take (twoTierOnly).
func (f *replayFlags) checkResamples() error {
	if f.resamples < minResamples {
		return resamplesError(f.resamples)
	}
	return nil
}

// twoTierOnly refuses, for an N-tier router (path), the replay flags only
// a two-tier one reads: its report has no bootstrap intervals and no
// confidence grid, so --resamples 5000 or --accept-grid 50 was accepted
// and did nothing, and the user took the figures for what they asked.
func twoTierOnly(fs *flag.FlagSet, path string) error {
	given := flagsGiven(fs)
	for _, name := range []string{"resamples", "seed", "accept-grid", "meet"} {
		if given[name] {
			return usagef("leave it out: an N-tier router's figures have no bootstrap intervals or confidence grid (--grid sets its λ grid)",
				"--%s applies to two-tier routers, and %s is an N-tier one", name, path)
		}
	}
	return nil
}

// checkDefaultModels refuses a --latency or --cost default for a model
// that is no tier of the routers given: it would apply to nothing, in
// silence (a misspelt model name leaves the replay without the value).
func checkDefaultModels(arts []*models.Artifact, lat, cost map[string]float64) error {
	tiers := map[string]bool{}
	var names []string
	for _, a := range arts {
		for _, n := range a.TierNames() {
			if !tiers[n] {
				tiers[n] = true
				names = append(names, strconv.Quote(n))
			}
		}
	}
	for _, d := range []struct {
		flag string
		vals map[string]float64
	}{{"latency", lat}, {"cost", cost}} {
		for _, m := range slices.Sorted(maps.Keys(d.vals)) {
			if !tiers[m] {
				return usagef("name one of the router's tiers: "+strings.Join(names, ", "),
					"--%s names %q, which is no tier of the router", d.flag, m)
			}
		}
	}
	return nil
}

// logRecords reads the log once (each router replays it with its own
// tiers) and tells stderr how many malformed lines --skip-bad skipped.
func (f *replayFlags) logRecords(env *Env, cmd string) ([]datasets.Record, error) {
	recs, bad, err := f.readLog(env, cmd)
	if err != nil {
		return nil, err
	}
	noteSkipped(env, cmd, bad)
	return recs, nil
}

func (f *replayFlags) readLog(env *Env, cmd string) ([]datasets.Record, int, error) {
	var recs []datasets.Record
	f.logs = readLogs{paths: f.data, counts: make([]int, len(f.data))}
	bad, err := eachLogRecord(f.data, readOptions(env, cmd, f.skipBad), nil, func(i int, r *datasets.Record) {
		recs = append(recs, *r)
		f.logs.counts[i]++
	})
	if err != nil {
		return nil, bad, err
	}
	f.logs.total = len(recs)
	if len(recs) == 0 {
		// Not "the fast tier appears in no record": there is none.
		return nil, bad, checkLoaded(f.data, "", "", nil, 0, 0, bad)
	}
	return recs, bad, nil
}

// replayLog is a router's view of a log: the replay requests and, in log
// order, what models.Evaluate needs.
type replayLog struct {
	reqs                       []replay.Request
	pHard, label, fast, strong []float64
	missing                    int
	sources                    []string
	// noLatency and noCost say the log has none (and no default was
	// given): the replay ran on placeholders (see placeholder).
	noLatency, noCost bool
}

// placeholder is [value][tier] of what a replay uses where the log has no
// latency or cost at all and no default was given: the fast answer
// arrives first (0 ms against 1 ms), which is what speculation is for,
// and a strong call costs one unit. The figures they give are left empty;
// only the quality and strong-share side of the replay is real.
var placeholder = [2][2]float64{{0, 1}, {0, 1}}

// tierValue picks one number of one tier's outcome: the log's, else the
// default. Cancelled outcomes ran only part of their latency, so their
// latency and cost do not describe a whole call.
type tierValue struct {
	what, field, flag, unit string
	get                     func(o datasets.Outcome) *float64
	defaults                map[string]float64
}

func (tv tierValue) value(o datasets.Outcome, model string, fromLog, fromDefault *int) (float64, bool) {
	if v := tv.get(o); v != nil && !o.Cancelled {
		*fromLog++
		return *v, true
	}
	if d, ok := tv.defaults[model]; ok {
		*fromDefault++
		return d, true
	}
	return 0, false
}

// buildReplay scores the log with a router and gathers each request's
// latency, cost and calibrated confidence. data names the logs recs came
// from, for the error about a tier none of them has.
func buildReplay(data []string, recs []datasets.Record, r *models.Router, lat, cost map[string]float64) (*replayLog, error) {
	a := r.Artifact()
	label, err := datasets.ParseLabel(a.Label)
	if err != nil {
		return nil, fmt.Errorf("artifact label: %w", err)
	}
	tiers := []string{a.Tiers.Fast, a.Tiers.Strong}
	values := []tierValue{
		{"latency", "latency_ms", "latency", "MS", func(o datasets.Outcome) *float64 { return o.LatencyMS }, lat},
		{"cost", "cost_usd", "cost", "USD", func(o datasets.Outcome) *float64 { return o.CostUSD }, cost},
	}
	var fromLog, fromDefault, absent [2][2]int // [value][tier]
	var firstAbsent [2][2]string               // the first record without it
	seen := map[string]int{}
	out := &replayLog{}
	for i := range recs {
		rec := &recs[i]
		for m := range rec.Outcomes {
			seen[m]++
		}
		f, s, ok := rec.Scores(a.Tiers.Fast, a.Tiers.Strong)
		if !ok {
			out.missing++
			continue
		}
		var v [2][2]float64
		for vi, tv := range values {
			for ti, m := range tiers {
				x, ok := tv.value(rec.Outcomes[m], m, &fromLog[vi][ti], &fromDefault[vi][ti])
				if !ok {
					if absent[vi][ti] == 0 {
						firstAbsent[vi][ti] = rec.ID
					}
					absent[vi][ti]++
					x = placeholder[vi][ti]
				}
				v[vi][ti] = x
			}
		}
		p := r.Route(retrain.RecordInput(rec)).PHard
		req := replay.Request{
			ID: rec.ID, PHard: p, FastScore: f, StrongScore: s,
			FastLatencyMS: v[0][0], StrongLatencyMS: v[0][1], FastCostUSD: v[1][0], StrongCostUSD: v[1][1],
		}
		if c := rec.Outcomes[a.Tiers.Fast].Confidence; c != nil {
			req.Confidence, req.HasConfidence = r.CalibratedConfidence(*c)
		}
		out.reqs = append(out.reqs, req)
		out.pHard = append(out.pHard, p)
		out.label = append(out.label, label.Of(f, s))
		out.fast = append(out.fast, f)
		out.strong = append(out.strong, s)
	}
	for _, m := range []struct{ flag, name string }{{"fast", a.Tiers.Fast}, {"strong", a.Tiers.Strong}} {
		if seen[m.name] == 0 {
			// As eval --model says it: the logs named, and a model of
			// theirs whose name is close ("gpt-4" for "gpt-4-0613").
			return nil, &absentTierError{role: m.flag, name: m.name, files: strings.Join(data, ","), seen: seen, ofRouter: true}
		}
	}
	if len(out.reqs) == 0 {
		return nil, noPairsError(strings.Join(data, ","), a.Tiers.Fast, a.Tiers.Strong)
	}
	// A value the log has for no request of either tier is unknown: the
	// replay keeps its placeholders and the figures are left empty. One
	// the log has for some requests only needs a default for the rest.
	for vi, tv := range values {
		if fromLog[vi] == [2]int{} && fromDefault[vi] == [2]int{} {
			if vi == 0 {
				out.noLatency = true
			} else {
				out.noCost = true
			}
			continue
		}
		for ti, m := range tiers {
			if absent[vi][ti] > 0 {
				return nil, fmt.Errorf("record %q has no %s for model %q and there is no default; pass --%s '%s=%s'", firstAbsent[vi][ti], tv.field, m, tv.flag, m, tv.unit)
			}
		}
	}
	n := len(out.reqs)
	for vi, tv := range values {
		if vi == 0 && out.noLatency || vi == 1 && out.noCost {
			out.sources = append(out.sources, fmt.Sprintf("%s: none in the log and no --%s, so the %s figures are left empty", tv.what, tv.flag, tv.what))
			continue
		}
		for ti, m := range tiers {
			role := [2]string{"fast", "strong"}[ti]
			var src string
			switch l, d := fromLog[vi][ti], fromDefault[vi][ti]; {
			case d == 0:
				src = fmt.Sprintf("from the log (all %s)", count(n, "request"))
			case l == 0:
				src = fmt.Sprintf("the --%s default %s for all %s", tv.flag, unitValue(tv.defaults[m], tv.unit), count(n, "request"))
			default:
				src = fmt.Sprintf("from the log for %s, the --%s default %s for %d", count(l, "request"), tv.flag, unitValue(tv.defaults[m], tv.unit), d)
			}
			out.sources = append(out.sources, fmt.Sprintf("%s of the %s tier %s: %s", tv.what, role, m, src))
		}
	}
	conf := 0
	for i := range out.reqs {
		if out.reqs[i].HasConfidence {
			conf++
		}
	}
	switch {
	case a.ConfidenceCalibration == nil:
		out.sources = append(out.sources, "confidence gate: the artifact has no confidence calibration, so speculation never keeps the fast answer on confidence")
	case conf < n:
		out.sources = append(out.sources, fmt.Sprintf("confidence gate: calibrated fast confidence for %d of %s; without one the gate never accepts", conf, count(n, "request")))
	default:
		out.sources = append(out.sources, fmt.Sprintf("confidence gate: calibrated fast confidence for all %s", count(n, "request")))
	}
	return out, nil
}

// unknownHint is the one line that says which figures a log without
// latency or cost leaves empty and the flags that would fill them; "" when
// nothing is missing.
func unknownHint(t models.Tiers, rl *replayLog) string {
	var what, flags []string
	if rl.noLatency {
		what = append(what, "latency")
		flags = append(flags, fmt.Sprintf("--latency '%s=MS,%s=MS'", t.Fast, t.Strong))
	}
	if rl.noCost {
		what = append(what, "cost")
		flags = append(flags, fmt.Sprintf("--cost '%s=USD,%s=USD'", t.Fast, t.Strong))
	}
	if len(what) == 0 {
		return ""
	}
	w := strings.Join(what, " or ")
	return fmt.Sprintf("the log has no %s, so the %s columns and plots are left empty; %s would fill them", w, strings.Join(what, " and "), strings.Join(flags, " "))
}

func unitValue(x float64, unit string) string {
	if unit == "USD" {
		return "$" + strconv.FormatFloat(x, 'g', -1, 64)
	}
	return strconv.FormatFloat(x, 'g', -1, 64) + " ms"
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// sectionNames gives each model file a short unique name, used as its
// folder: the file name without extension.
func sectionNames(paths []string) []string {
	names := make([]string, len(paths))
	// used holds every name given out, suffixed ones included: counting
	// only the base names gave x/a.json and y/a.json the names a and a-2,
	// and a-2.json a-2 again, so two routers wrote into one folder and
	// the page showed one router's plots under both names.
	used := map[string]bool{}
	for i, p := range paths {
		b := filepath.Base(p)
		for _, ext := range []string{".json", ".model", ".artifact"} {
			b = strings.TrimSuffix(b, ext)
		}
		b = unsafeName.ReplaceAllString(b, "_")
		if b == "" || b == "." || b == ".." {
			b = "model"
		}
		name := b
		for k := 2; used[name]; k++ {
			name = fmt.Sprintf("%s-%d", b, k)
		}
		used[name] = true
		names[i] = name
	}
	return names
}

func runCurves(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "curves", curvesUsage)
	var rf replayFlags
	rf.register(fs)
	var modelPaths stringList
	fs.Var(&modelPaths, "model", "router artifact; repeat to compare several side by side")
	outDir := fs.String("o", "", "write curves.csv, metrics.json, the plots and index.html into DIR (several --model: each router's files into DIR/NAME/, NAME from its file name)")
	asJSON := fs.Bool("json", false, "print the report's figures as one JSON array instead of the summary lines: each router's metrics.json (for N-tier routers, tiers_metrics.json's entries); the report is written either way")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(modelPaths) == 0 {
		return usagef("give --model FILE", "curves needs --model")
	}
	// One router given twice was replayed twice and compared with itself
	// ("r" and "r-2"), where --data given twice is refused.
	for i := range modelPaths {
		for _, q := range modelPaths[:i] {
			if sameFile(modelPaths[i], q) {
				return usagef("give each router once", "--model gives %s twice", modelPaths[i])
			}
		}
	}
	if *outDir == "" {
		return usagef("give -o DIR", "curves needs an output folder")
	}
	// Before the sweep and the bootstrap, which take minutes on a large
	// log: a report that cannot be written should not cost them.
	if err := checkOutDir(*outDir); err != nil {
		return err
	}
	lat, cost, billing, err := rf.check("curves")
	if err != nil {
		return err
	}
	prog, stop := newProgress(env)
	defer stop()
	if prog != nil {
		prog("reading the log", 0, 0)
	}
	// The routers first: a wrong path fails before a long log is read.
	arts := make([]*models.Artifact, 0, len(modelPaths))
	for _, mp := range modelPaths {
		a, err := models.Load(mp)
		if err != nil {
			return err
		}
		arts = append(arts, a)
	}
	if err := checkDefaultModels(arts, lat, cost); err != nil {
		return err
	}
	// One kind of router per report: N-tier ones sweep λ, two-tier ones
	// thresholds.
	for i, a := range arts {
		if a.IsMultiTier() != arts[0].IsMultiTier() {
			two, n := modelPaths[0], modelPaths[i]
			if arts[0].IsMultiTier() {
				two, n = n, two
			}
			return usagef("compare N-tier routers with each other, two-tier ones with each other",
				"%s is a two-tier router and %s an N-tier one", two, n)
		}
	}
	if arts[0].IsMultiTier() {
		if err := twoTierOnly(fs, modelPaths[0]); err != nil {
			return err
		}
	} else if err := rf.checkResamples(); err != nil {
		return err
	}
	recs, err := rf.logRecords(env, "curves")
	if err != nil {
		return err
	}
	names := sectionNames(modelPaths)
	recs, notes, inSample, err := rf.screenReplay(env, "curves", names, arts, recs)
	if err != nil {
		return err
	}
	if arts[0].IsMultiTier() {
		stop()
		return runCurvesTiers(ctx, env, modelPaths, arts, notes, inSample, recs, lat, cost, billing, &rf, *outDir, *asJSON)
	}
	page := &report.Page{
		Title: "Triage: quality, cost and latency tradeoffs", Data: rf.data, Billing: billing,
		Resamples: rf.resamples, Seed: rf.seed,
	}
	var gridDesc []string
	for i, mp := range modelPaths {
		if err := ctx.Err(); err != nil {
			return err
		}
		sec, desc, err := curvesSection(ctx, env, prog, arts[i], names[i], len(modelPaths) > 1, recs, lat, cost, billing, &rf)
		if err != nil {
			if len(modelPaths) > 1 {
				return fmt.Errorf("%s: %w", mp, err)
			}
			return err
		}
		if notes[i] != "" {
			sec.Sources = append(sec.Sources, notes[i])
		}
		sec.InSample = inSample[i]
		page.Sections = append(page.Sections, sec)
		gridDesc = append(gridDesc, desc)
	}
	page.Grid = strings.Join(dedupe(gridDesc), "; ")
	if prog != nil {
		prog("writing the plots and index.html", 0, 0)
	}
	// report.Write makes the folder, and removes it again if the report
	// fails (a full disk, an interrupt): no empty folder is left behind.
	if err := ctx.Err(); err != nil {
		return err // interrupted: write no report
	}
	// Interrupted while the plots are drawn, it moves nothing into place.
	if err := report.Write(ctx, *outDir, page); err != nil {
		return err
	}
	stop()
	if *asJSON {
		ms := make([]report.MetricsJSON, len(page.Sections))
		for i, s := range page.Sections {
			ms[i] = s.Metrics()
		}
		return json.NewEncoder(env.Stdout).Encode(ms)
	}
	for _, s := range page.Sections {
		c := s.Current
		// APGR is undefined (NaN) where the tiers tie: "undefined", as
		// metrics.json's null, not "NaN".
		apgr := "undefined (the tiers' mean scores tie)"
		if !math.IsNaN(s.Eval.APGR) {
			apgr = fmt.Sprintf("%.3f", s.Eval.APGR)
			// Its interval, as eval prints it and metrics.json holds it:
			// an APGR above 0.5 on a few hundred requests may not show a
			// router that beats random.
			if s.APGR.Valid() {
				apgr += fmt.Sprintf(" [%.3f, %.3f]", s.APGR.Lo, s.APGR.Hi)
			}
		}
		// Quality here is the mean score; calibrate's quality target is
		// relative to always-strong, so the line gives that too, else a
		// reader takes "quality 0.8350" for the figure to pass to
		// --target quality (index.html shows both).
		rel := "undefined relative to always-strong, which scores 0 on every request"
		if s.RStrong > 0 {
			rel = fmt.Sprintf("%.3f of always-strong's %.4f", c.Quality/s.RStrong, s.RStrong)
		}
		fmt.Fprintf(env.Stdout, "%s: %d operating points; APGR %s, AIQ %s; current thresholds (speculate_above %.4g, escalate_above %.4g, accept_confidence %.3g): strong share %.3f, quality %.4f (%s), cost %s, p95 %s\n",
			s.Name, len(s.Points), apgr, orUnknown("%.4f", s.AIQ), c.Policy.SpeculateAbove, c.Policy.EscalateAbove, c.Policy.AcceptConfidence,
			c.StrongShare, c.Quality, rel, orUnknown("$%.4g per 1k", c.CostPer1k), orUnknown("%.0f ms", c.LatencyP95MS))
		// What the current thresholds save is against these: without them
		// the line gave the router's cost and p95 and no scale to read
		// them on, short of opening index.html.
		fmt.Fprintf(env.Stdout, "%s: always-strong: cost %s, p95 %s; always-fast: cost %s, p95 %s\n",
			s.Name, orUnknown("$%.4g per 1k", s.AlwaysStrong.CostPer1k), orUnknown("%.0f ms", s.AlwaysStrong.LatencyP95MS),
			orUnknown("$%.4g per 1k", s.AlwaysFast.CostPer1k), orUnknown("%.0f ms", s.AlwaysFast.LatencyP95MS))
	}
	fmt.Fprintf(env.Stdout, "(AIQ: RouterBench's area under the best quality-for-cost curve, divided by the cost range; APGR as in 'triage eval', with its 95%% bootstrap interval)\n")
	index := filepath.Join(*outDir, "index.html")
	if len(page.Sections) == 1 {
		fmt.Fprintf(env.Stdout, "wrote %s\n", index)
		return nil
	}
	// Several routers each get a folder of their own under -o, named after
	// the artifact's file: a script that looked for -o's curves.csv, as one
	// router writes it, found nothing and no word of where it went.
	dirs := make([]string, len(page.Sections))
	for i, s := range page.Sections {
		dirs[i] = filepath.Join(*outDir, filepath.FromSlash(s.Dir)) + string(filepath.Separator)
	}
	fmt.Fprintf(env.Stdout, "wrote %s; each router's curves.csv, metrics.json and plots are in a folder of its own: %s\n", index, strings.Join(dirs, ", "))
	return nil
}

// orUnknown formats x, or says it is unknown (NaN: the log has none).
func orUnknown(format string, x float64) string {
	if math.IsNaN(x) {
		return "unknown"
	}
	return fmt.Sprintf(format, x)
}

func dedupe(xs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	sort.Strings(out)
	return out
}

// loadReplay replays the log with an artifact.
func loadReplay(a *models.Artifact, data []string, recs []datasets.Record, lat, cost map[string]float64, billing replay.CancelBilling) (*models.Router, *replayLog, *replay.Replayer, error) {
	r, err := models.NewRouter(a)
	if err != nil {
		return nil, nil, nil, err
	}
	rl, err := buildReplay(data, recs, r, lat, cost)
	if err != nil {
		return nil, nil, nil, err
	}
	if rl.noLatency && !rl.noCost && billing == replay.BillProrata {
		// Pro rata needs the time a cancelled call ran.
		billing = replay.BillFull
		rl.sources = append(rl.sources, "cancelled calls billed in full: the log has no latency to bill them pro rata")
	}
	if rl.noLatency {
		rl.sources = append(rl.sources, "speculation is replayed as if the fast answer always came first")
	}
	rp, err := replay.NewReplayer(rl.reqs, billing)
	if err != nil {
		return nil, nil, nil, err
	}
	return r, rl, rp, nil
}

// sweepWithProgress is rp.SweepFunc, telling prog (when set) how many of
// the grid's points are done.
func sweepWithProgress(rp *replay.Replayer, g replay.Grid, opts replay.SweepOptions, prog func(string, int, int), step string, visit func(*replay.OperatingPoint)) {
	if prog == nil {
		rp.SweepFunc(g, opts, visit)
		return
	}
	total, n := g.Size(), 0
	prog(step, 0, total)
	rp.SweepFunc(g, opts, func(op *replay.OperatingPoint) {
		visit(op)
		if n++; n%1024 == 0 {
			prog(step, n, total)
		}
	})
}

// analyzeReport is report.Analyze; a test replaces it to interrupt
// curves while the intervals are computed.
var analyzeReport = report.Analyze

func curvesSection(ctx context.Context, env *Env, prog func(string, int, int), a *models.Artifact, name string, several bool, recs []datasets.Record, lat, cost map[string]float64, billing replay.CancelBilling, rf *replayFlags) (*report.Section, string, error) {
	r, rl, rp, err := loadReplay(a, rf.data, recs, lat, cost, billing)
	if err != nil {
		return nil, "", err
	}
	if rl.missing > 0 {
		fmt.Fprintf(env.Stderr, "triage curves: %s: %s skipped without both tiers' scores\n", name, count(rl.missing, "record"))
	}
	warnFew(env, "curves", rp.Len(), "replay a larger log")
	if hint := unknownHint(r.Artifact().Tiers, rl); hint != "" {
		fmt.Fprintf(env.Stderr, "triage curves: %s\n", hint)
	}
	g := rp.QuantileGrid(rf.grid, rf.acceptGrid)
	// The sweep and the bootstrap do not look at ctx: Ctrl-C during them
	// waited for their end (6.6 s on RouteLLM MMLU with --resamples
	// 20000) before curves stopped. Abandoned, they end with the process.
	var sec *report.Section
	err = interruptible(ctx, func() error {
		pts := make([]replay.OperatingPoint, 0, g.Size())
		sweepWithProgress(rp, g, replay.SweepOptions{}, prog, "replaying "+name+" over the threshold grid", func(op *replay.OperatingPoint) { pts = append(pts, *op) })
		if prog != nil {
			prog("bootstrap intervals and fronts of "+name, 0, 0)
		}
		run := &report.Run{
			Name: name, Artifact: r.Artifact(), Replayer: rp, Points: pts,
			PHard: rl.pHard, Label: rl.label, Fast: rl.fast, Strong: rl.strong, Sources: rl.sources,
			NoLatency: rl.noLatency, NoCost: rl.noCost,
		}
		if several {
			run.Dir = name
		}
		var err error
		sec, err = analyzeReport(run, report.Options{Resamples: rf.resamples, Seed: rf.seed})
		return err
	})
	if err != nil {
		return nil, "", err
	}
	desc := fmt.Sprintf("%d p_hard thresholds (quantiles)", len(g.Thresholds))
	if len(g.Accept) > 0 {
		desc += fmt.Sprintf(" × %d accept_confidence values", len(g.Accept))
	}
	return sec, desc, nil
}

package main

import (
	"fmt"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/models"
	"github.com/triage-router/triage/models/retrain"
)

// readLogs says where the records a command read came from: counts[i] of
// them, in order, from paths[i]; total is every record read (more than the
// records kept when a reader keeps only some, as score does).
type readLogs struct {
	paths  []string
	counts []int
	total  int
}

// screenTrained finds the records of a log that routers were trained on,
// as far as their artifacts say: the records of the logs an artifact names
// (by path, or a byte-identical copy: retrain.NamesSource) that its
// id-hash holdout did not keep out, or for a retrained router
// those before its held-out period (retrain.ChampionTrainedOn, the rule
// retrain's gate uses). A log the artifact does not name is new to it.
//
// train fits on the whole log by default, so a user's natural next step,
// eval, curves or calibrate on that same log, measures the router on
// requests it has seen, and every figure flatters it: trained on four
// fifths of RouteLLM GSM8K, a router's APGR is 0.810 on the whole log and
// 0.564 on the fifth it did not see (README). So each such router gets a
// warning on stderr (and a note, returned for the report; score, whose
// p_hard a user computes figures from, warns too); with unseen, keep
// marks the records none of the routers was trained on, so all of them
// are measured on the same unseen records (keep is nil when every record
// is kept). recs are the records read, as logs says. inSample[k] counts
// the records of recs arts[k] was trained on, whether or not unseen then
// leaves them out: --json output carries it, since a tool reading the
// figures never sees the warning on stderr.
//
// measures, if not nil, says which of recs arts[k] measures (curves and
// calibrate read every record, and each router skips those without its
// tiers' scores): inSample[k] and the counts said are of those only, as
// eval's are of the records it measures. With a log of 400 paired records
// and one unpaired, eval said "400 of the 400 requests" and calibrate "401
// of the 401", and calibrate --json gave in_sample 401 with n 400.
func screenTrained(env *Env, cmd string, unseen bool, names []string, arts []*models.Artifact, recs []datasets.Record, logs readLogs, measures func(k int, rec *datasets.Record) bool) (keep []bool, notes []string, inSample []int, err error) {
	notes = make([]string, len(arts))
	inSample = make([]int, len(arts))
	drop := make([]bool, len(recs))
	dropped := 0
	// anyMeasures marks the records some router measures: the requests
	// the --unseen line counts.
	anyMeasures := make([]bool, len(recs))
	for i := range recs {
		anyMeasures[i] = measures == nil
	}
	for k, a := range arts {
		total := logs.total
		if measures != nil {
			total = 0
			for i := range recs {
				if measures(k, &recs[i]) {
					total++
					anyMeasures[i] = true
				}
			}
		}
		// The named logs' records, and the spans of recs they fill.
		var named []datasets.Record
		var spans [][2]int
		files := map[string][]datasets.Record{}
		start := 0
		for i, p := range logs.paths {
			end := start + logs.counts[i]
			if retrain.NamesSource(a, p) {
				if _, seen := files[p]; !seen { // a log given twice: one copy
					files[p] = recs[start:end:end]
				}
				named = append(named, recs[start:end]...)
				spans = append(spans, [2]int{start, end})
			}
			start = end
		}
		if len(named) == 0 {
			continue
		}
		trained, _ := retrain.ChampionTrainedOn(a, named, files, nil)
		n := 0
		for _, sp := range spans {
			for i := sp[0]; i < sp[1]; i++ {
				if !trained(recs[i].ID) {
					continue
				}
				if measures == nil || measures(k, &recs[i]) {
					n++
				}
				// Dropped whether or not this router measures it, so all
				// routers are measured on the same records.
				if !drop[i] {
					drop[i] = true
					dropped++
				}
			}
		}
		inSample[k] = n
		switch {
		case n == 0:
		case unseen:
			notes[k] = fmt.Sprintf("%d of the log's %s %s left out (--unseen): %s was trained on %s", n, count(total, "request"), oneOr(n, "was", "were"), names[k], oneOr(n, "it", "them"))
		default:
			fix := "use a log it has not seen, or train with --holdout 0.2 and pass --unseen to measure on the held-out share only"
			switch {
			case cmd == "score" && n < total:
				// Its holdout kept the others out: training again with
				// --holdout (what the advice below says) is done.
				fix = fmt.Sprintf("score a log it has not seen, or compute figures with eval, curves or calibrate --unseen, which keep only the %d it was not trained on", total-n)
			case cmd == "score":
				fix = "score a log it has not seen, or train with --holdout 0.2 and compute figures on the ids it held out"
			case n < total:
				fix = fmt.Sprintf("pass --unseen to measure on the %d it was not trained on, or use a log it has not seen", total-n)
			case a.IsMultiTier():
				// An N-tier recipe can also be measured by its own CV.
				fix = "use a log it has not seen, train with --holdout 0.2 and pass --unseen to measure on the held-out share only, or measure the recipe with eval --cv K"
			}
			notes[k] = fmt.Sprintf("in-sample: %d of the %s measured %s this router was trained on, so these figures flatter it (%s)", n, count(total, "request"), oneOr(n, "is one", "are ones"), fix)
			fmt.Fprintf(env.Stderr, "triage %s: warning: %s: %d of the %s in --data %s it was trained on (its artifact names this log, or one with the same content), so the figures on them are in-sample and flatter it; %s\n",
				cmd, names[k], n, count(total, "request"), oneOr(n, "is one", "are ones"), fix)
		}
	}
	if !unseen || dropped == 0 {
		return nil, notes, inSample, nil
	}
	measured, kept := 0, 0
	for i := range recs {
		if anyMeasures[i] {
			measured++
			if !drop[i] {
				kept++
			}
		}
	}
	if kept == 0 {
		fix := "train fits on the whole log unless --holdout keeps a share out; use another log, or train with --holdout 0.2"
		if arts[0].IsMultiTier() {
			fix = "train fits on the whole log unless --holdout keeps a share out; use another log, train with --holdout 0.2, or measure the recipe with eval --cv K"
		}
		return nil, nil, nil, fmt.Errorf("--unseen leaves no request: every record of --data is one the router was trained on (%s)", fix)
	}
	keep = make([]bool, len(recs))
	for i := range keep {
		keep[i] = !drop[i]
	}
	fmt.Fprintf(env.Stderr, "triage %s: --unseen: measuring on the %d of %s no router given was trained on\n", cmd, kept, count(measured, "request"))
	return keep, notes, inSample, nil
}

// keepOnly returns the xs whose keep is true; all of xs when keep is nil.
func keepOnly[T any](xs []T, keep []bool) []T {
	if keep == nil {
		return xs
	}
	out := make([]T, 0, len(xs))
	for i, x := range xs {
		if keep[i] {
			out = append(out, x)
		}
	}
	return out
}

// screenReplay is screenTrained for curves and calibrate, on the records
// the replay flags read. inSample[k] counts the records kept that arts[k]
// was trained on (0 for all with --unseen), for their JSON as eval
// --json's in_sample.
func (f *replayFlags) screenReplay(env *Env, cmd string, names []string, arts []*models.Artifact, recs []datasets.Record) ([]datasets.Record, []string, []int, error) {
	tiers := make([][]string, len(arts))
	for k, a := range arts {
		tiers[k] = a.TierNames()
	}
	measures := func(k int, rec *datasets.Record) bool { return hasScores(rec, tiers[k]) }
	keep, notes, inSample, err := screenTrained(env, cmd, f.unseen, names, arts, recs, f.logs, measures)
	if err != nil {
		return nil, nil, nil, err
	}
	if keep != nil {
		inSample = make([]int, len(arts)) // --unseen left them out
	}
	return keepOnly(recs, keep), notes, inSample, nil
}

// hasScores says whether rec has a score for every model of tiers: the
// records a replay measures (buildReplay and buildTierReplay skip the
// others and count them as missing).
func hasScores(rec *datasets.Record, tiers []string) bool {
	for _, m := range tiers {
		if o, ok := rec.Outcomes[m]; !ok || o.Score == nil {
			return false
		}
	}
	return true
}

package main

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/triage-router/triage/models"
	"github.com/triage-router/triage/models/retrain"
)

// TestImputedProbabilityWithNoneSeen: where the paired records never show
// one of the strong tier's outcomes, the imputation's P(fast right) for it
// is a mean over nothing; the summary says so instead of printing NaN.
func TestImputedProbabilityWithNoneSeen(t *testing.T) {
	out := imputedLine(retrain.ImputeStats{Fast: 12, Paired: 40, FastGivenStrong: [2]float64{math.NaN(), 0.81}})
	if strings.Contains(out, "NaN") || !strings.Contains(out, "P(fast right) 0.81 when strong was right, none seen when wrong") {
		t.Errorf("summary:\n%s\nwant the imputation line to say none was seen, with no NaN", out)
	}
}

// TestHeldOutLineWithoutTimes: a log whose records have no time (an
// offline base log) is held out by id; the summary said "newest since
// (no timestamps)".
func TestHeldOutLineWithoutTimes(t *testing.T) {
	var b strings.Builder
	printRetrain(&b, &models.Artifact{Version: "v1"}, &retrain.Result{Challenger: &models.Artifact{Version: "v2"}, Comparison: &retrain.Comparison{}})
	if out := b.String(); strings.Contains(out, "newest since") || !strings.Contains(out, "held out: 0, the last by id (no record has a time)") {
		t.Errorf("summary:\n%s\nwant the held-out line to say the slice is the last by id", out)
	}
}

// TestHeldOutLineNamesTheChampionsHoldout: where the held-out slice is
// the champion's id-hash holdout, spread over its whole log, the summary
// said "404 newest since" the log's first minute (the README's demo).
func TestHeldOutLineNamesTheChampionsHoldout(t *testing.T) {
	since := time.Date(2026, 11, 1, 0, 0, 16, 0, time.UTC)
	for _, c := range []struct {
		name      string
		n, byHold int
		want      string
	}{
		{"all from the holdout", 404, 404, "held out: 404, all kept out of the champion's training by its id-hash holdout ("},
		{"the holdout and newer traffic", 410, 404, "held out: 410, 404 kept out of the champion's training by its id-hash holdout and the 6 newest of the rest ("},
		{"no holdout: the newest", 80, 0, "held out: 80 newest since 2026-11-01T00:00:16Z ("},
	} {
		t.Run(c.name, func(t *testing.T) {
			var b strings.Builder
			printRetrain(&b, &models.Artifact{Version: "v1"}, &retrain.Result{Challenger: &models.Artifact{Version: "v2"},
				Comparison: &retrain.Comparison{N: c.n}, HeldSince: since, HeldByChampionHoldout: c.byHold})
			if out := b.String(); !strings.Contains(out, c.want) {
				t.Errorf("summary:\n%s\nwant %q", out, c.want)
			}
		})
	}
}

// TestTrainLineCountsOneSidedRecords: the summary said "train: 1596
// (1596 base, ...)" for the README's loop while the challenger trained on
// 1,621 records (its artifact's training.records, and the scorer line's
// "25 of the 1621 training records"): the one-sided records, which all
// train, were left out of the count.
func TestTrainLineCountsOneSidedRecords(t *testing.T) {
	var b strings.Builder
	printRetrain(&b, &models.Artifact{Version: "v1"}, &retrain.Result{Challenger: &models.Artifact{Version: "v2"}, Comparison: &retrain.Comparison{},
		Stats: retrain.ExampleStats{SoftFast: 25}, Train: map[retrain.ExampleKind]int{retrain.KindBase: 1596}})
	if want := "train: 1621 records: 1596 paired (1596 base, 0 speculated by policy, 0 explored), 25 with one tier's outcome\n"; !strings.Contains(b.String(), want) {
		t.Errorf("summary:\n%s\nwant %q", b.String(), want)
	}
}

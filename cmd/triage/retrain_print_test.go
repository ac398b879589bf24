package main

import (
	"math"
	"strings"
	"testing"

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

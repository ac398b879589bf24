package main

import (
	"math"
	"strings"
	"testing"

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

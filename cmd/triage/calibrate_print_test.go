package main

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/triage-router/triage/models"
	"github.com/triage-router/triage/models/report"
)

// On a log where the tiers' mean scores tie, PGR is undefined (NaN), and
// where the strong tier never scores, so is quality relative to it:
// calibrate's summary must say so, as curves does, not print NaN.
func TestPrintCalibrationUndefinedFigures(t *testing.T) {
	nan := math.NaN()
	none := report.Interval{Lo: nan, Hi: nan}
	r := &calibrateResult{
		Version: "v2", Parent: "v1", Policy: models.Policy{SpeculateAbove: 0.2, EscalateAbove: 0.5, AcceptConfidence: 0.7}, N: 10,
		StrongShare: est(0.3, report.Interval{Lo: 0.2, Hi: 0.4}), Quality: est(0, report.Interval{}),
		RelQuality: est(nan, none), CostPer1k: est(1, report.Interval{Lo: 1, Hi: 1}),
		LatencyP95MS: est(100, report.Interval{Lo: 90, Hi: 110}), LatencyMeanMS: 80, PGR: jfloat(nan),
	}
	var b bytes.Buffer
	printCalibration(&b, r, 100, "new.json")
	if out := b.String(); strings.Contains(out, "NaN") {
		t.Errorf("the summary prints NaN:\n%s", out)
	}
}

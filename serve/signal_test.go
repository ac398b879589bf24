package serve

import (
	"strings"
	"testing"

	"github.com/triage-router/triage/classifier"
	"github.com/triage-router/triage/models"
)

// TestLoadWarnsWhenTheModelCannotRoute: nothing in a decision shows that
// the model's training log did not let it beat random, so loading such a
// model says so once in the log, and says what the thresholds then do.
func TestLoadWarnsWhenTheModelCannotRoute(t *testing.T) {
	cannot := func(a *models.Artifact) {
		a.Signal = &models.Signal{Routable: false, APGR: 0.478, Lo: 0.42, Hi: 0.54, Gain: 0.01, GainLo: -0.02, GainHi: 0.04, Reason: "the strong tier is not measurably better than the fast one"}
		a.Calibration = classifier.Calibration{Method: classifier.CalibPlatt} // p_hard 1/2 for every request
		a.Policy = models.NoRoutePolicy()
	}
	notShown := func(a *models.Artifact) {
		a.Signal = &models.Signal{Routable: true, APGR: 0.53, Lo: 0.49, Hi: 0.57}
		a.Policy = models.NoRoutePolicy()
	}
	shown := func(a *models.Artifact) {
		a.Signal = &models.Signal{Routable: true, Significant: true, APGR: 0.70, Lo: 0.68, Hi: 0.72}
	}
	mid := 0.6
	for _, tc := range []struct {
		name     string
		edit     func(*models.Artifact)
		override bool
		want     string // "" when nothing is logged
	}{
		{"cannot route", cannot, false, `decision=escalate`},
		{"cannot route, thresholds from the config", cannot, true, `the config's thresholds send every request to one decision" version=v1 p_hard=0.5 decision=speculate`},
		{"not shown to beat random", notShown, false, `model is not shown to beat random, so its policy escalates every request`},
		{"not shown to beat random, thresholds from the config", notShown, true, `model routes on the config's thresholds although its training log did not show that it beats random`},
		{"shown to beat random", shown, true, ""},
		{"no signal (an artifact older than format 3)", nil, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, func(o *Options) {
				a := testArtifact(t, "v1", 0)
				if tc.edit != nil {
					tc.edit(a)
				}
				if err := a.Save(o.ModelPath); err != nil {
					t.Fatal(err)
				}
				if tc.override {
					o.Config.Thresholds.SpeculateAbove = new(float64) // 0
					o.Config.Thresholds.EscalateAbove = &mid
				}
			})
			logs := ts.logs.String()
			if tc.want == "" {
				if strings.Contains(logs, "random") || strings.Contains(logs, "cannot route") {
					t.Fatalf("logged a signal warning for a model without one:\n%s", logs)
				}
				return
			}
			if !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, tc.want) {
				t.Fatalf("load logged\n%s\nwant a warning containing %q", logs, tc.want)
			}
			// A reload of the same file says it again: the operator who
			// swapped the model in needs to see it.
			if _, err := ts.Reload(); err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(ts.logs.String(), tc.want); n != 2 {
				t.Errorf("the warning appears %d times after a reload, want 2", n)
			}
		})
	}
}

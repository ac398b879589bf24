package proxy

import (
	"context"
	"math"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/triage-router/triage/models"
)

// alwaysExplore explores every fast and escalate decision with ε = 0.02,
// as serve's explorer does when its coin comes up.
func alwaysExplore(r models.Result) (models.Decision, float64, bool) {
	if r.Decision == models.Speculate {
		return r.Decision, 1, false
	}
	return models.Speculate, 0.02, true
}

// TestExploration: an explored request runs both tiers to completion,
// answers with the policy's tier, and records both outcomes (usage,
// cost, the fast tier's confidence) with propensity ε; the other tier's
// cost is what /metrics counts as exploration's.
func TestExploration(t *testing.T) {
	for _, tt := range []struct {
		prompt, wantModel, extraTier, policy string
	}{
		{"F hello", "fast-model", "strong", "fast"},
		{"E hard", "strong-model", "fast", "escalate"},
	} {
		t.Run(tt.prompt, func(t *testing.T) {
			r := newRig(t, rigOptions{explore: alwaysExplore})
			got := r.do(t, context.Background(), r.url, chatBody(tt.prompt, ""))
			if got.status != 200 || got.model != tt.wantModel {
				t.Fatalf("status %d model %q, want 200 from %s (the policy's answer): %s", got.status, got.model, tt.wantModel, got.body)
			}
			rec := r.recordings(t)[0]
			d := rec.Decision
			if d.Kind != "speculate" || !d.Explored || d.Propensity != 0.02 || d.Policy != tt.policy {
				t.Errorf("decision %+v, want an explored speculation with propensity 0.02 and the policy's %s", d, tt.policy)
			}
			f, s := rec.Outcomes["fast-log-name"], rec.Outcomes["strong-log-name"]
			if f.Cancelled || s.Cancelled || f.CostUSD == nil || s.CostUSD == nil || f.Confidence == nil {
				t.Errorf("outcomes fast %+v strong %+v, want both complete with cost and a fast confidence", f, s)
			}
			extra := s.CostUSD
			if tt.extraTier == "fast" {
				extra = f.CostUSD
			}
			if v := testutil.ToFloat64(r.h.m.exploreCost.WithLabelValues(tt.extraTier)); extra == nil || math.Abs(v-*extra) > 1e-12 {
				t.Errorf("exploration cost metric %v, want the %s call's %v", v, tt.extraTier, extra)
			}
			if n := testutil.ToFloat64(r.h.m.explored); n != 1 {
				t.Errorf("explored counter %v, want 1", n)
			}
			if c := r.strongSim.Stats().Cancelled + r.fastSim.Stats().Cancelled; c != 0 {
				t.Errorf("%d upstream calls cancelled, want none", c)
			}
		})
	}
	t.Run("without exploration a fast decision records propensity 1 and one tier", func(t *testing.T) {
		r := newRig(t, rigOptions{})
		r.do(t, context.Background(), r.url, chatBody("F hello", ""))
		rec := r.recordings(t)[0]
		if rec.Decision.Kind != "fast" || rec.Decision.Explored || rec.Decision.Propensity != 1 || len(rec.Outcomes) != 1 {
			t.Errorf("recording %+v", rec)
		}
	})
}

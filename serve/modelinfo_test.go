package serve

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/triage-router/triage/models"
)

// tierArtifact is a valid three-tier router, as train --tiers writes one
// (its label "score", its two-tier policy all zeros): zero-weight heads,
// so every tier predicts σ(0).
func tierArtifact(tb testing.TB, version string) *models.Artifact {
	tb.Helper()
	a := testArtifact(tb, version, 0)
	dim := a.Features.Dim()
	a.Scorer = models.ScorerTiers
	a.Weights, a.Bias, a.Policy, a.Label = nil, 0, models.Policy{}, "score"
	a.Tiers = models.Tiers{Fast: "small", Strong: "large"}
	a.TierList = []models.Tier{{Name: "small", Price: 0.1}, {Name: "mid", Price: 1}, {Name: "large", Price: 3}}
	for range a.TierList {
		a.TierHeads = append(a.TierHeads, models.TierHead{Weights: make(models.Weights, dim)})
	}
	a.TierPolicy = &models.TierPolicy{Lambda: 0.05, Margin: 0.01, Race: 0.02, AcceptConfidence: 0.8}
	return a
}

// keysOf are the top-level fields of a JSON object, sorted.
func keysOf(tb testing.TB, body []byte) []string {
	tb.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		tb.Fatalf("%s: %v", body, err)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// GET /v1/model describes the policy the model routes by: a two-tier
// model's thresholds and label, an N-tier model's tiers and tier policy,
// never the zero two-tier thresholds an N-tier artifact carries unused,
// which read as "escalate every request".
func TestModelInfoShowsThePolicyTheModelRoutesBy(t *testing.T) {
	t.Run("a two-tier model keeps its shape: version, created_at, tiers, label, thresholds", func(t *testing.T) {
		ts := newTestServer(t, nil)
		body := ts.do(t, "GET", "/v1/model", "").Body.Bytes()
		if got, want := keysOf(t, body), []string{"created_at", "label", "thresholds", "tiers", "version"}; !slices.Equal(got, want) {
			t.Errorf("fields %v, want %v: %s", got, want, body)
		}
		var m struct {
			Label      string
			Thresholds models.Policy
		}
		if err := json.Unmarshal(body, &m); err != nil || m.Label != "strong-wins" || m.Thresholds != testPolicy {
			t.Errorf("label %q, thresholds %+v, want strong-wins and %+v (%v)", m.Label, m.Thresholds, testPolicy, err)
		}
	})
	t.Run("an N-tier model shows its tiers and tier policy and no two-tier thresholds or label", func(t *testing.T) {
		ts := newTestServer(t, func(o *Options) {
			withAdmin(o)
			if err := tierArtifact(t, "n1").Save(o.ModelPath); err != nil {
				t.Fatal(err)
			}
		})
		for _, view := range []struct {
			name string
			hdr  []string
		}{{"public", nil}, {"admin", []string{"Authorization", "Bearer " + token}}} {
			body := ts.do(t, "GET", "/v1/model", "", view.hdr...).Body.Bytes()
			keys := keysOf(t, body)
			for _, absent := range []string{"thresholds", "label", "expected_shares"} {
				if slices.Contains(keys, absent) {
					t.Errorf("%s view has %q: %s", view.name, absent, body)
				}
			}
			var m struct {
				Tiers      models.Tiers
				TierList   []tierInfo         `json:"tier_list"`
				TierPolicy *models.TierPolicy `json:"tier_policy"`
			}
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatal(err)
			}
			wantList := []tierInfo{{"small", 0.1}, {"mid", 1}, {"large", 3}}
			wantPol := models.TierPolicy{Lambda: 0.05, Margin: 0.01, Race: 0.02, AcceptConfidence: 0.8}
			if m.Tiers != (models.Tiers{Fast: "small", Strong: "large"}) || !slices.Equal(m.TierList, wantList) || m.TierPolicy == nil || *m.TierPolicy != wantPol {
				t.Errorf("%s view: tiers %+v, tier_list %+v, tier_policy %+v, want small/large, %+v and %+v: %s", view.name, m.Tiers, m.TierList, m.TierPolicy, wantList, wantPol, body)
			}
		}
	})
}

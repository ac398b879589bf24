package proxy

import (
	"maps"
	"slices"
	"testing"

	"github.com/triage-router/triage/datasets"
)

func TestTierFields(t *testing.T) {
	names := []string{"s", "m", "l"}
	for _, tt := range []struct {
		what                         string
		tier, race, policyT, policyR int
		eps                          float64
		ran                          []string
		policy                       string
		p                            map[string]float64
	}{
		{"a lone tier, not explored", 0, NoRace, 0, NoRace, 0.3, []string{"s"}, "s", map[string]float64{"s": 1, "m": 0.3, "l": 0}},
		{"a lone tier, explored", 0, 1, 0, NoRace, 0.3, []string{"s", "m"}, "s", map[string]float64{"s": 1, "m": 0.3, "l": 0}},
		{"the top tier, explored with the one below", 1, 2, 2, NoRace, 0.3, []string{"m", "l"}, "l", map[string]float64{"s": 0, "m": 0.3, "l": 1}},
		{"the top tier as the proxy orders it", 2, 1, 2, NoRace, 0.3, []string{"m", "l"}, "l", map[string]float64{"s": 0, "m": 0.3, "l": 1}},
		{"a race the policy chose", 1, 2, 1, 2, 0.3, []string{"m", "l"}, "m", map[string]float64{"s": 0, "m": 1, "l": 1}},
		{"exploration off", 1, NoRace, 1, NoRace, 0, []string{"m"}, "m", map[string]float64{"s": 0, "m": 1, "l": 0}},
	} {
		var d datasets.Decision
		TierFields(&d, names, tt.tier, tt.race, tt.policyT, tt.policyR, tt.eps)
		if !slices.Equal(d.Ran, tt.ran) || d.PolicyTier != tt.policy || !maps.Equal(d.TierPropensity, tt.p) {
			t.Errorf("%s: ran %v, policy_tier %q, tier_propensity %v; want %v, %q, %v", tt.what, d.Ran, d.PolicyTier, d.TierPropensity, tt.ran, tt.policy, tt.p)
		}
	}
}

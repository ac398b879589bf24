package proxy

import "github.com/triage-router/triage/datasets"

// ExplorePartner is the tier exploration races a lone tier k with, of n
// tiers cheapest first: the next one up, or for the top tier the one
// below. /v1/route and the proxy explore alike.
func ExplorePartner(k, n int) int {
	if k+1 < n {
		return k + 1
	}
	return k - 1
}

// TierFields sets an N-tier decision's per-tier fields (datasets.Decision
// Ran, PolicyTier, TierPropensity) as /v1/route records them, by the
// names outcomes are recorded under (names[k] for tier k, cheapest
// first): Ran is the tiers the decision sends the request to, tier and,
// unless NoRace, race (the server does not see which of them answered;
// the client posts scores for those that did). The rest is
// TierPropensities'.
func TierFields(d *datasets.Decision, names []string, tier, race, policyTier, policyRace int, eps float64) {
	d.Ran = []string{names[tier]}
	if race != NoRace {
		lo, hi := min(tier, race), max(tier, race)
		d.Ran = []string{names[lo], names[hi]}
	}
	TierPropensities(d, names, policyTier, policyRace, eps)
}

// TierPropensities sets PolicyTier and TierPropensity. The policy chose
// policyTier and policyRace before exploration, which races a lone tier
// with its ExplorePartner with probability eps (0 when exploration is
// off). So each tier is sent the request with probability 1 if the
// policy chose it, eps if it is the partner of the lone tier the policy
// chose, and 0 otherwise: what per-tier inverse propensity weights
// divide by. What happens after the draw (a tier that fails, the proxy's
// fallback to another, a race's loser cancelled) changes what answered
// (the proxy's Ran), not these probabilities.
func TierPropensities(d *datasets.Decision, names []string, policyTier, policyRace int, eps float64) {
	d.PolicyTier = names[policyTier]
	p := make(map[string]float64, len(names))
	for _, n := range names {
		p[n] = 0
	}
	p[names[policyTier]] = 1
	if policyRace != NoRace {
		p[names[policyRace]] = 1
	} else if eps > 0 && len(names) > 1 {
		p[names[ExplorePartner(policyTier, len(names))]] = eps
	}
	d.TierPropensity = p
}

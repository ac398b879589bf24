package serve

import (
	"fmt"
	"math/rand/v2"

	"github.com/triage-router/triage/models"
)

// DefaultEpsilon is the default exploration share: 2% of requests are
// sent to speculate whatever p_hard says.
const DefaultEpsilon = 0.02

// ExplorationConfig makes a share of requests speculate whatever p_hard
// says, so both tiers' outcomes are observed on an unbiased sample of the
// traffic (see docs/loop.md).
type ExplorationConfig struct {
	// Epsilon is the probability that a request the policy would send to
	// fast or escalate is sent to speculate instead; 0 turns exploration
	// off.
	Epsilon float64 `yaml:"epsilon"`
}

func (e ExplorationConfig) validate() error {
	if !(e.Epsilon >= 0 && e.Epsilon <= 1) {
		return fmt.Errorf("exploration.epsilon is %v, want a probability in [0,1] (0 turns exploration off)", e.Epsilon)
	}
	return nil
}

// explorer applies exploration to the policy's decision.
type explorer struct {
	eps float64
	// uniform draws in [0,1); math/rand/v2's Float64 by default, which
	// is goroutine-safe and lock-free (a per-thread runtime generator).
	uniform func() float64
}

func newExplorer(cfg ExplorationConfig, uniform func() float64) explorer {
	if uniform == nil {
		uniform = rand.Float64
	}
	return explorer{eps: cfg.Epsilon, uniform: uniform}
}

// decide returns the decision to take for the policy's decision d, the
// probability that this request got it, and whether exploration changed
// it. The coin is drawn for every request, so a request's chance of
// being speculated is ε + (1−ε)·[d = speculate]:
//
//   - d = speculate: taken speculate, propensity 1;
//   - d ≠ speculate, coin: taken speculate, propensity ε, explored;
//   - d ≠ speculate, no coin: taken d, propensity 1−ε.
func (e explorer) decide(d models.Decision) (taken models.Decision, propensity float64, explored bool) {
	if e.eps <= 0 || d == models.Speculate {
		return d, 1, false
	}
	if e.uniform() < e.eps {
		return models.Speculate, e.eps, true
	}
	return d, 1 - e.eps, false
}

// decide applies exploration to a routed request's result and records
// the policy's own decision in the drift window. It returns the result to
// answer and log (the taken decision), its propensity, and whether
// exploration changed it.
func (s *Server) decide(st *state, res models.Result) (models.Result, float64, bool) {
	// An N-tier model has no p_hard: its window holds 0s, its shares are real.
	s.drift.routed(st.art.Version, res.Decision, loggedPHard(res.PHard))
	taken, propensity, explored := s.explore.decide(res.Decision)
	if explored {
		s.loop.explored.Inc()
	}
	res.Decision = taken
	return res, propensity, explored
}

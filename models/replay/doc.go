// Package replay answers "what would this policy have done on my log?"
// without calling a model: each logged request carries both tiers'
// scores, latencies, costs and the fast answer's confidence, and a policy
// (thresholds on p_hard and a confidence gate) decides per request which
// calls run and which answer is kept; a cancelled loser is billed as
// CancelBilling says. Replayer measures one policy (OperatingPoint:
// quality, cost per 1k requests, latency percentiles, shares) and sweeps
// a grid of them in one pass (Sweep); Solver picks the operating point
// that meets a user's targets (ParseTarget). The same is done for N-tier
// routers (ReplayTiers, SweepTiers).
//
// It sits above models, whose Policy and TierPolicy it replays; the
// curves, the calibrate command and models/report build on it.
package replay

package replay

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/triage-router/triage/models"
)

// CancelBilling says what a cancelled call costs: the loser of a
// speculation is cancelled the moment the winner is kept.
type CancelBilling string

const (
	// BillProrata charges a cancelled call its cost times the share of its
	// latency it ran for (the call's own logged latency is the whole).
	BillProrata CancelBilling = "prorata"
	// BillFull charges a cancelled call in full, for providers that bill
	// what was started.
	BillFull CancelBilling = "full"
)

// ParseCancelBilling parses "prorata" or "full"; "" is prorata.
func ParseCancelBilling(s string) (CancelBilling, error) {
	switch CancelBilling(s) {
	case "", BillProrata:
		return BillProrata, nil
	case BillFull:
		return BillFull, nil
	}
	return "", fmt.Errorf("cancel billing %q is not known; want %q or %q", s, BillProrata, BillFull)
}

// Request is one labelled request as the replay sees it: the router's
// p_hard, and each tier's score, latency and cost for this request.
type Request struct {
	// ID names the request in error messages; optional.
	ID string
	// PHard is the router's calibrated p_hard for the request.
	PHard float64
	// FastScore and StrongScore are the tiers' scores in [0,1].
	FastScore, StrongScore float64
	// FastLatencyMS and StrongLatencyMS are each call's full wall time.
	FastLatencyMS, StrongLatencyMS float64
	// FastCostUSD and StrongCostUSD are each call's full cost.
	FastCostUSD, StrongCostUSD float64
	// Confidence is the fast answer's calibrated confidence, P(fast answer
	// correct); it is read only when HasConfidence is true.
	Confidence float64
	// HasConfidence is false when no calibrated confidence exists for the
	// request; the gate then never accepts the fast answer.
	HasConfidence bool
}

// Replayed is what happened to one request under a policy.
type Replayed struct {
	Decision models.Decision
	// KeptStrong is true when the answer kept is the strong tier's.
	KeptStrong bool
	// Accepted is true when a speculation kept the fast answer on its
	// confidence.
	Accepted bool
	// Score, LatencyMS and CostUSD are the kept answer's score, the time
	// until it was available, and the cost of every call made (cancelled
	// calls billed per CancelBilling).
	Score, LatencyMS, CostUSD float64
}

// ReplayRequest applies the policy of docs/design.md ("Replaying a log
// through a policy") to one request:
//
//   - fast: fast score, latency and cost;
//   - escalate: strong score, latency and cost;
//   - speculate: both start at once. If the strong answer arrives strictly
//     first it is kept and the fast call is cancelled then. Otherwise the
//     fast answer arrives first (a tie counts as the fast answer first: the
//     gate is checked the moment it is there) and is kept when its
//     confidence is at least AcceptConfidence, the strong call being
//     cancelled then. Else the strong answer is awaited: strong score and
//     latency, both calls in full.
//
// A cancelled call costs its cost times (time it ran / its latency) under
// BillProrata, its whole cost under BillFull.
func ReplayRequest(r *Request, p models.Policy, billing CancelBilling) Replayed {
	switch p.Decide(r.PHard) {
	case models.Fast:
		return Replayed{Decision: models.Fast, Score: r.FastScore, LatencyMS: r.FastLatencyMS, CostUSD: r.FastCostUSD}
	case models.Escalate:
		return Replayed{Decision: models.Escalate, KeptStrong: true, Score: r.StrongScore, LatencyMS: r.StrongLatencyMS, CostUSD: r.StrongCostUSD}
	}
	return speculate(r, r.HasConfidence && r.Confidence >= p.AcceptConfidence, billing)
}

// speculate is the speculate branch with the gate's answer given.
func speculate(r *Request, accept bool, billing CancelBilling) Replayed {
	if r.StrongLatencyMS < r.FastLatencyMS {
		return Replayed{Decision: models.Speculate, KeptStrong: true, Score: r.StrongScore, LatencyMS: r.StrongLatencyMS,
			CostUSD: r.StrongCostUSD + cancelled(r.FastCostUSD, r.StrongLatencyMS, r.FastLatencyMS, billing)}
	}
	if accept {
		return Replayed{Decision: models.Speculate, Accepted: true, Score: r.FastScore, LatencyMS: r.FastLatencyMS,
			CostUSD: r.FastCostUSD + cancelled(r.StrongCostUSD, r.FastLatencyMS, r.StrongLatencyMS, billing)}
	}
	return Replayed{Decision: models.Speculate, KeptStrong: true, Score: r.StrongScore, LatencyMS: r.StrongLatencyMS,
		CostUSD: r.FastCostUSD + r.StrongCostUSD}
}

// cancelled is the cost of a call of full cost and latency full that was
// cancelled after ran milliseconds.
func cancelled(cost, ran, full float64, billing CancelBilling) float64 {
	if billing == BillFull || ran >= full {
		return cost
	}
	return cost * ran / full
}

// Kind classifies an operating point by the decisions it makes, so plots
// can tell the plain router from the ones that speculate.
type Kind string

const (
	// KindFastEscalate makes no speculation: fast or escalate only.
	KindFastEscalate Kind = "fast-escalate"
	// KindSpeculate speculates but never escalates (the speculate band
	// alone above the fast requests).
	KindSpeculate Kind = "speculate"
	// KindCombined speculates and escalates.
	KindCombined Kind = "combined"
)

// OperatingPoint is the replay of a log under one policy.
type OperatingPoint struct {
	Policy models.Policy
	Kind   Kind
	// N is the number of requests replayed.
	N int
	// StrongShare is the share of requests whose kept answer is the strong
	// tier's.
	StrongShare float64
	// Quality is the mean score of the kept answers.
	Quality float64
	// PGR is (Quality - r_fast) / (r_strong - r_fast); NaN when both tiers
	// score the same on average.
	PGR float64
	// CostPer1k is the mean cost per request times 1000, in USD.
	CostPer1k float64
	// Latency of the kept answer: the mean and nearest-rank percentiles
	// (the smallest latency at least p% of requests do not exceed).
	LatencyMeanMS, LatencyP50MS, LatencyP95MS, LatencyP99MS float64
	// FastShare, SpeculateShare and EscalateShare are the decisions' shares.
	FastShare, SpeculateShare, EscalateShare float64
	// AcceptedShare is the share of all requests that speculated and kept
	// the fast answer on its confidence.
	AcceptedShare float64
}

// Replayer replays one labelled log under many policies. It sorts the
// requests by p_hard once, so a policy's decisions are three contiguous
// runs and a grid of policies costs little more than its output. A
// Replayer is not safe for concurrent use: it reuses scratch buffers.
type Replayer struct {
	req     []Request // sorted by PHard
	p       []float64 // PHard, sorted
	billing CancelBilling
	rFast   float64
	rStrong float64

	lat []float64 // scratch for Point's percentiles
}

// ErrNoRequests is returned when a replay is asked of an empty log.
var ErrNoRequests = errors.New("no requests to replay")

// NewReplayer checks and sorts a copy of the requests. Every number must
// be finite, scores in [0,1], latencies and costs non-negative.
func NewReplayer(reqs []Request, billing CancelBilling) (*Replayer, error) {
	if len(reqs) == 0 {
		return nil, ErrNoRequests
	}
	if billing == "" {
		billing = BillProrata
	}
	if billing != BillProrata && billing != BillFull {
		return nil, fmt.Errorf("replay: cancel billing %q, want %q or %q", billing, BillProrata, BillFull)
	}
	rp := &Replayer{req: slices.Clone(reqs), billing: billing}
	for i := range rp.req {
		if err := checkRequest(&rp.req[i]); err != nil {
			name := rp.req[i].ID
			if name == "" {
				name = fmt.Sprintf("#%d", i)
			}
			return nil, fmt.Errorf("replay: request %s: %w", name, err)
		}
	}
	// Stable, so requests with equal p_hard keep the caller's order and
	// the replay is deterministic.
	slices.SortStableFunc(rp.req, func(a, b Request) int {
		switch {
		case a.PHard < b.PHard:
			return -1
		case a.PHard > b.PHard:
			return 1
		}
		return 0
	})
	rp.p = make([]float64, len(rp.req))
	var sf, ss float64
	for i := range rp.req {
		rp.p[i] = rp.req[i].PHard
		sf += rp.req[i].FastScore
		ss += rp.req[i].StrongScore
	}
	rp.rFast = sf / float64(len(rp.req))
	rp.rStrong = ss / float64(len(rp.req))
	return rp, nil
}

func checkRequest(r *Request) error {
	for _, v := range []struct {
		name string
		x    float64
		lo   float64
		hi   float64
	}{
		{"p_hard", r.PHard, math.Inf(-1), math.Inf(1)},
		{"fast score", r.FastScore, 0, 1},
		{"strong score", r.StrongScore, 0, 1},
		{"fast latency", r.FastLatencyMS, 0, math.Inf(1)},
		{"strong latency", r.StrongLatencyMS, 0, math.Inf(1)},
		{"fast cost", r.FastCostUSD, 0, math.Inf(1)},
		{"strong cost", r.StrongCostUSD, 0, math.Inf(1)},
	} {
		if math.IsNaN(v.x) || math.IsInf(v.x, 0) {
			return fmt.Errorf("%s is %v, want a finite number", v.name, v.x)
		}
		if v.x < v.lo || v.x > v.hi {
			return fmt.Errorf("%s is %v, want a value in [%v,%v]", v.name, v.x, v.lo, v.hi)
		}
	}
	if r.HasConfidence && (math.IsNaN(r.Confidence) || math.IsInf(r.Confidence, 0)) {
		return fmt.Errorf("confidence is %v, want a finite number", r.Confidence)
	}
	return nil
}

// Len is the number of requests.
func (rp *Replayer) Len() int { return len(rp.req) }

// Baselines returns the mean score of always-fast and always-strong, the
// ends of the PGR scale.
func (rp *Replayer) Baselines() (fast, strong float64) { return rp.rFast, rp.rStrong }

// Requests returns the requests sorted by p_hard. Treat it as read-only.
func (rp *Replayer) Requests() []Request { return rp.req }

// Outcomes replays every request under p, in the order of Requests, into
// dst (reused when large enough).
func (rp *Replayer) Outcomes(dst []Replayed, p models.Policy) []Replayed {
	dst = slices.Grow(dst[:0], len(rp.req))[:len(rp.req)]
	for i := range rp.req {
		dst[i] = ReplayRequest(&rp.req[i], p, rp.billing)
	}
	return dst
}

// Point replays the log under one policy, request by request. It is the
// reference the grid sweep is tested against.
func (rp *Replayer) Point(p models.Policy) OperatingPoint {
	n := len(rp.req)
	rp.lat = slices.Grow(rp.lat[:0], n)[:n]
	var strong, score, cost, lat, nFast, nSpec, nEsc, nAcc float64
	for i := range rp.req {
		o := ReplayRequest(&rp.req[i], p, rp.billing)
		if o.KeptStrong {
			strong++
		}
		score += o.Score
		cost += o.CostUSD
		lat += o.LatencyMS
		rp.lat[i] = o.LatencyMS
		switch o.Decision {
		case models.Fast:
			nFast++
		case models.Speculate:
			nSpec++
		default:
			nEsc++
		}
		if o.Accepted {
			nAcc++
		}
	}
	slices.Sort(rp.lat)
	fn := float64(n)
	op := OperatingPoint{
		Policy: p, N: n,
		StrongShare: strong / fn, Quality: score / fn, CostPer1k: 1000 * cost / fn,
		LatencyMeanMS: lat / fn,
		LatencyP50MS:  rp.lat[nearestRank(0.50, n)],
		LatencyP95MS:  rp.lat[nearestRank(0.95, n)],
		LatencyP99MS:  rp.lat[nearestRank(0.99, n)],
		FastShare:     nFast / fn, SpeculateShare: nSpec / fn, EscalateShare: nEsc / fn, AcceptedShare: nAcc / fn,
	}
	op.PGR = PGR(op.Quality, rp.rFast, rp.rStrong)
	op.Kind = kindOf(nSpec > 0, nEsc > 0)
	return op
}

// PGR is (q - rFast) / (rStrong - rFast), NaN when the tiers tie.
func PGR(q, rFast, rStrong float64) float64 {
	if rStrong == rFast {
		return math.NaN()
	}
	return (q - rFast) / (rStrong - rFast)
}

func kindOf(spec, esc bool) Kind {
	switch {
	case !spec:
		return KindFastEscalate
	case !esc:
		return KindSpeculate
	}
	return KindCombined
}

// nearestRank is the 0-based index of the p-quantile of n sorted values by
// the nearest-rank method: the ceil(p*n)-th smallest value.
func nearestRank(p float64, n int) int {
	k := int(math.Ceil(p*float64(n))) - 1
	return max(0, min(n-1, k))
}

// Percentile returns the nearest-rank p-quantile (p in (0,1]) of xs,
// which it reorders; it is the definition the replay uses for latency.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	k := nearestRank(p, len(xs))
	return selectKth(xs, k)
}

// selectKth returns the k-th smallest (0-based) of xs, reordering xs
// (Hoare's quickselect with a median-of-three pivot).
func selectKth(xs []float64, k int) float64 {
	lo, hi := 0, len(xs)-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		// Median of three at mid.
		if xs[mid] < xs[lo] {
			xs[mid], xs[lo] = xs[lo], xs[mid]
		}
		if xs[hi] < xs[lo] {
			xs[hi], xs[lo] = xs[lo], xs[hi]
		}
		if xs[hi] < xs[mid] {
			xs[hi], xs[mid] = xs[mid], xs[hi]
		}
		pivot := xs[mid]
		i, j := lo, hi
		for i <= j {
			for xs[i] < pivot {
				i++
			}
			for xs[j] > pivot {
				j--
			}
			if i <= j {
				xs[i], xs[j] = xs[j], xs[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return xs[k]
		}
	}
	return xs[k]
}

// boundary is the number of requests with p_hard <= t: those a threshold t
// keeps below it.
func (rp *Replayer) boundary(t float64) int {
	return sort.Search(len(rp.p), func(i int) bool { return rp.p[i] > t })
}

// Shares returns the share of each decision p makes on the log.
func (rp *Replayer) Shares(p models.Policy) map[models.Decision]float64 {
	n := float64(len(rp.p))
	s := float64(rp.boundary(p.SpeculateAbove))
	e := float64(rp.boundary(p.EscalateAbove))
	if e < s {
		e = s
	}
	return map[models.Decision]float64{models.Fast: s / n, models.Speculate: (e - s) / n, models.Escalate: (n - e) / n}
}

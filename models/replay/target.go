package replay

import (
	"cmp"
	"container/heap"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// TargetKind is what a calibration target constrains.
type TargetKind string

const (
	// TargetStrongShare asks for a share of strong answers: met within
	// the solver's share tolerance, on either side.
	TargetStrongShare TargetKind = "strong-share"
	// TargetCostPer1k is an upper bound on the cost of 1000 requests, USD.
	TargetCostPer1k TargetKind = "cost-per-1k"
	// TargetP95Latency is an upper bound on the p95 latency, ms.
	TargetP95Latency TargetKind = "p95-latency"
	// TargetQuality is a lower bound on quality relative to always-strong
	// (quality / r_strong).
	TargetQuality TargetKind = "quality"
)

// Target is one constraint on the operating point.
type Target struct {
	Kind  TargetKind
	Value float64
}

func (t Target) String() string {
	return string(t.Kind) + "=" + strconv.FormatFloat(t.Value, 'g', -1, 64)
}

const targetForms = "strong-share=0.3, cost-per-1k=USD, p95-latency=MS or quality=0.95 (relative to always-strong)"

// ParseTarget parses "strong-share=0.3", "cost-per-1k=1.5" (a leading $ is
// allowed), "p95-latency=800" (a trailing "ms" is allowed) or
// "quality=0.95".
func ParseTarget(s string) (Target, error) {
	k, v, ok := strings.Cut(strings.TrimSpace(s), "=")
	if !ok {
		return Target{}, fmt.Errorf("target %q: want KIND=VALUE, one of %s", s, targetForms)
	}
	t := Target{Kind: TargetKind(strings.TrimSpace(k))}
	v = strings.TrimSpace(v)
	switch t.Kind {
	case TargetCostPer1k:
		v = strings.TrimPrefix(v, "$")
	case TargetP95Latency:
		v = strings.TrimSuffix(v, "ms")
	case TargetStrongShare, TargetQuality:
	default:
		return Target{}, fmt.Errorf("target %q: kind %q is not known; want %s", s, k, targetForms)
	}
	x, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
		return Target{}, fmt.Errorf("target %q: %q is not a number", s, v)
	}
	switch t.Kind {
	case TargetStrongShare:
		if x < 0 || x > 1 {
			return Target{}, fmt.Errorf("target %q: a share is in [0,1]%s", s, percentHint(t.Kind, x))
		}
	case TargetQuality:
		if x <= 0 || x > 2 {
			return Target{}, fmt.Errorf("target %q: relative quality is in (0,2]; 1 is always-strong's (N tiers: the best single tier's)%s", s, percentHint(t.Kind, x))
		}
	default:
		if x < 0 {
			return Target{}, fmt.Errorf("target %q: want a non-negative value", s)
		}
	}
	t.Value = x
	return t, nil
}

// percentHint is the way out for a share or a quality written as a
// percentage (strong-share=30, quality=95), the likeliest reason for one
// above its range: the same figure as a fraction.
func percentHint(kind TargetKind, x float64) string {
	if x <= 1 || x > 100 {
		return ""
	}
	return fmt.Sprintf(" (for %g%%, write %s=%.6g)", x, kind, x/100)
}

// Objective is what a calibration optimises among the points that meet
// every target.
type Objective string

const (
	// MinimizeCost picks the lowest cost per 1k requests.
	MinimizeCost Objective = "cost"
	// MinimizeLatency picks the lowest p95 latency (then mean latency).
	MinimizeLatency Objective = "latency"
	// MaximizeQuality picks the highest quality (then the lowest cost):
	// the objective for targets that are all ceilings (cost-per-1k,
	// p95-latency), under which the cheapest or fastest point is
	// always-fast whatever the ceiling, a budget left unspent.
	MaximizeQuality Objective = "quality"
)

// HasFloor says whether a target bounds the operating point from below
// (quality) or pins it (strong-share), so that the cheapest point meeting
// the targets is not simply the cheapest point there is.
func HasFloor(ts []Target) bool {
	for _, t := range ts {
		if t.Kind == TargetQuality || t.Kind == TargetStrongShare {
			return true
		}
	}
	return false
}

// Describe says what the objective picks, as calibrate records it:
// "minimize cost", "minimize latency" or "maximize quality".
func (o Objective) Describe() string {
	switch o {
	case MaximizeQuality:
		return "maximize quality"
	case "":
		return "minimize " + string(MinimizeCost)
	}
	return "minimize " + string(o)
}

// DefaultShareTolerance is how close a strong-share target must be met:
// half a step of a 200-cut quantile grid, so a fast/escalate threshold
// always lands within it when p_hard has few ties.
const DefaultShareTolerance = 0.0025

// Solver picks the operating point for a set of targets. Feed it every
// candidate with Consider (it keeps no list, so a sweep of any size
// costs nothing), then ask for the Result.
type Solver struct {
	// Targets are the constraints; all must hold.
	Targets []Target
	// Minimize is the objective (MaximizeQuality included, despite the
	// name); "" means MinimizeCost.
	Minimize Objective
	// StrongQuality is always-strong's quality, the scale of quality
	// targets.
	StrongQuality float64
	// ShareTolerance is how far a strong share may be from its target;
	// 0 means DefaultShareTolerance.
	ShareTolerance float64
	// KeepFront makes the solver keep, besides the best candidate, every
	// candidate that meets the targets and that no other such candidate
	// beats on both the objective and quality (Front). A caller that asks
	// more of quality than its estimate (calibrate --meet ci95: the lower
	// end of its bootstrap interval) walks it from the best up; the sweep
	// itself is too large to bootstrap every point of.
	// It is for a cost or latency objective (calibrate refuses --meet ci95
	// without a quality target, so never with MaximizeQuality), whose
	// front is quality rising with the key.
	KeepFront bool
	// KeepCheapest makes the solver keep the KeepCheapest best
	// candidates on the objective that meet the targets, after the point
	// After when it is set (Cheapest). A quality target met at the lower
	// end of an interval can be met by a policy off the front: one that
	// another beats on both estimates may still have the narrower
	// interval, and so the higher lower end. A caller that must try every
	// candidate in order sweeps again with After at the last one kept, so
	// memory stays bounded whatever the grid.
	KeepCheapest int
	After        *OperatingPoint

	best, closest         OperatingPoint
	haveBest, haveClosest bool
	closestViolation      float64
	// front is sorted by objective, quality strictly increasing.
	front []OperatingPoint
	// cheapest is a max-heap by rank: its root is the worst kept.
	cheapest cheapHeap
}

// NeedsPercentiles says whether the targets or objective read latency
// percentiles, which a sweep may otherwise skip.
func (s *Solver) NeedsPercentiles() bool {
	if s.Minimize == MinimizeLatency {
		return true
	}
	for _, t := range s.Targets {
		if t.Kind == TargetP95Latency {
			return true
		}
	}
	return false
}

// violation is how far op is from meeting every target, in relative
// units (0 when it meets them).
func (s *Solver) violation(op *OperatingPoint) float64 {
	tol := s.ShareTolerance
	if tol == 0 {
		tol = DefaultShareTolerance
	}
	v := 0.0
	for _, t := range s.Targets {
		switch t.Kind {
		case TargetStrongShare:
			v += math.Max(0, math.Abs(op.StrongShare-t.Value)-tol)
		case TargetCostPer1k:
			v += math.Max(0, op.CostPer1k-t.Value) / math.Max(t.Value, 1e-12)
		case TargetP95Latency:
			v += math.Max(0, op.LatencyP95MS-t.Value) / math.Max(t.Value, 1e-12)
		case TargetQuality:
			v += math.Max(0, t.Value-op.Quality/s.StrongQuality) / t.Value
		}
	}
	return v
}

// key is what the objective compares, in order.
func (s *Solver) key(op *OperatingPoint) [2]float64 {
	switch s.Minimize {
	case MinimizeLatency:
		return [2]float64{op.LatencyP95MS, op.LatencyMeanMS}
	case MaximizeQuality:
		return [2]float64{-op.Quality, op.CostPer1k}
	}
	return [2]float64{op.CostPer1k, 0}
}

// better says whether a beats b on the objective; ties go to higher
// quality, then to a strong share closer to its target.
func (s *Solver) better(a, b *OperatingPoint) bool {
	ka, kb := s.key(a), s.key(b)
	const eps = 1e-12
	for i := range ka {
		if math.Abs(ka[i]-kb[i]) > eps*math.Max(1, math.Abs(kb[i])) {
			return ka[i] < kb[i]
		}
	}
	if math.Abs(a.Quality-b.Quality) > eps {
		return a.Quality > b.Quality
	}
	return s.shareGap(a) < s.shareGap(b)
}

func (s *Solver) shareGap(op *OperatingPoint) float64 {
	g := 0.0
	for _, t := range s.Targets {
		if t.Kind == TargetStrongShare {
			g += math.Abs(op.StrongShare - t.Value)
		}
	}
	return g
}

// Consider offers one candidate.
func (s *Solver) Consider(op *OperatingPoint) {
	v := s.violation(op)
	if v == 0 {
		if !s.haveBest || s.better(op, &s.best) {
			s.best, s.haveBest = *op, true
		}
		if s.KeepFront {
			s.addFront(op)
		}
		if s.KeepCheapest > 0 {
			s.keepCheap(op)
		}
		return
	}
	if !s.haveClosest || v < s.closestViolation || (v == s.closestViolation && s.better(op, &s.closest)) {
		s.closest, s.closestViolation, s.haveClosest = *op, v, true
	}
}

// addFront puts op on the front unless a point of it is no worse on the
// objective and at least as good on quality, and drops the points op
// beats so.
func (s *Solver) addFront(op *OperatingPoint) {
	k := s.key(op)
	less := func(a, b [2]float64) bool { return a[0] < b[0] || a[0] == b[0] && a[1] < b[1] }
	// The first point whose key is not below op's.
	i := sort.Search(len(s.front), func(j int) bool { return !less(s.key(&s.front[j]), k) })
	if i > 0 && s.front[i-1].Quality >= op.Quality {
		return // cheaper and as good
	}
	if i < len(s.front) && s.key(&s.front[i]) == k && s.front[i].Quality >= op.Quality {
		return // as cheap and as good
	}
	// From i on the keys are op's or above and quality rises: op beats
	// those up to the first of higher quality.
	j := i
	for j < len(s.front) && s.front[j].Quality <= op.Quality {
		j++
	}
	s.front = slices.Replace(s.front, i, j, *op)
}

// Front returns the candidates kept with KeepFront, best on the objective
// first and each of higher quality than the one before. It is nil without
// KeepFront or when no candidate meets the targets.
func (s *Solver) Front() []OperatingPoint { return s.front }

// NextBand returns a new solver with s's targets, objective and
// KeepCheapest that keeps the candidates ranked after after: the next
// band of a walk through every candidate in order (Cheapest), swept
// again over the same grid.
func (s *Solver) NextBand(after *OperatingPoint) *Solver {
	return &Solver{Targets: s.Targets, Minimize: s.Minimize, StrongQuality: s.StrongQuality,
		ShareTolerance: s.ShareTolerance, KeepCheapest: s.KeepCheapest, After: after}
}

// Cheapest returns the candidates kept with KeepCheapest, best first: in
// the order of rank, which is Result's (the objective, ties to higher
// quality, then to a strong share nearer its target) made total by the
// policy's thresholds, so consecutive sweeps with After split the
// candidates without repeating or skipping any. Nil without KeepCheapest
// or when none met the targets after After.
func (s *Solver) Cheapest() []OperatingPoint {
	out := slices.Clone(s.cheapest.pts)
	slices.SortFunc(out, func(a, b OperatingPoint) int { return s.rank(&a, &b) })
	return out
}

// rank orders candidates as Result prefers them, ties broken by the
// policy's thresholds.
func (s *Solver) rank(a, b *OperatingPoint) int {
	switch {
	case s.better(a, b):
		return -1
	case s.better(b, a):
		return 1
	}
	pa, pb := a.Policy, b.Policy
	if c := cmp.Compare(pa.SpeculateAbove, pb.SpeculateAbove); c != 0 {
		return c
	}
	if c := cmp.Compare(pa.EscalateAbove, pb.EscalateAbove); c != 0 {
		return c
	}
	return cmp.Compare(pa.AcceptConfidence, pb.AcceptConfidence)
}

func (s *Solver) keepCheap(op *OperatingPoint) {
	if s.After != nil && s.rank(op, s.After) <= 0 {
		return
	}
	h := &s.cheapest
	h.rank = s.rank
	if len(h.pts) < s.KeepCheapest {
		heap.Push(h, *op)
		return
	}
	if s.rank(op, &h.pts[0]) < 0 {
		h.pts[0] = *op
		heap.Fix(h, 0)
	}
}

// cheapHeap is a max-heap of operating points by rank.
type cheapHeap struct {
	pts  []OperatingPoint
	rank func(a, b *OperatingPoint) int
}

func (h *cheapHeap) Len() int           { return len(h.pts) }
func (h *cheapHeap) Less(i, j int) bool { return h.rank(&h.pts[i], &h.pts[j]) > 0 }
func (h *cheapHeap) Swap(i, j int)      { h.pts[i], h.pts[j] = h.pts[j], h.pts[i] }
func (h *cheapHeap) Push(x any)         { h.pts = append(h.pts, x.(OperatingPoint)) }
func (h *cheapHeap) Pop() any {
	x := h.pts[len(h.pts)-1]
	h.pts = h.pts[:len(h.pts)-1]
	return x
}

// ErrInfeasible is wrapped by the error Result returns when no candidate
// meets every target.
var ErrInfeasible = errors.New("no operating point meets every target")

// InfeasibleError names the candidate that came closest.
type InfeasibleError struct {
	Targets []Target
	// Closest is the candidate with the smallest total relative violation.
	Closest       OperatingPoint
	StrongQuality float64
}

func (e *InfeasibleError) Error() string {
	ts := make([]string, len(e.Targets))
	for i, t := range e.Targets {
		ts[i] = t.String()
	}
	c := e.Closest
	return fmt.Sprintf("no policy meets %s on this data; the closest is speculate_above=%.4g escalate_above=%.4g accept_confidence=%.4g with %s; relax a target",
		strings.Join(ts, " and "), c.Policy.SpeculateAbove, c.Policy.EscalateAbove, c.Policy.AcceptConfidence, DescribePoint(&c, e.StrongQuality))
}

func (e *InfeasibleError) Unwrap() error { return ErrInfeasible }

// DescribePoint is a one-line summary of an operating point.
// A cost or latency that is NaN (the log has none) is said to be unknown,
// and quality relative to always-strong undefined when that scores 0.
func DescribePoint(op *OperatingPoint, strongQuality float64) string {
	rel := fmt.Sprintf("%.3f of always-strong", op.Quality/strongQuality)
	if strongQuality == 0 {
		rel = "always-strong scores 0"
	}
	cost, p95 := fmt.Sprintf("cost $%.4g per 1k", op.CostPer1k), fmt.Sprintf("p95 latency %.0f ms", op.LatencyP95MS)
	if math.IsNaN(op.CostPer1k) {
		cost = "cost unknown"
	}
	if math.IsNaN(op.LatencyP95MS) {
		p95 = "latency unknown"
	}
	return fmt.Sprintf("strong share %.3f, quality %.4f (%s), %s, %s",
		op.StrongShare, op.Quality, rel, cost, p95)
}

// Result returns the best candidate meeting every target, or an
// *InfeasibleError naming the closest one.
func (s *Solver) Result() (OperatingPoint, error) {
	if s.haveBest {
		return s.best, nil
	}
	if !s.haveClosest {
		return OperatingPoint{}, ErrNoRequests
	}
	return OperatingPoint{}, &InfeasibleError{Targets: s.Targets, Closest: s.closest, StrongQuality: s.StrongQuality}
}

package retrain

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/triage-router/triage/classifier"
	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/features"
	"github.com/triage-router/triage/models"
)

// MergeStats says what MergeRecords did.
type MergeStats struct {
	// In is the number of records read, Out the number after merging.
	In, Out int
	// Duplicates counts records whose id had been seen before (in the same
	// source or an earlier one); they were merged, not dropped.
	Duplicates int
	// Conflicts counts outcome fields (same id, same model, same field)
	// that two sources gave different values for; the later source's
	// value is kept. FirstConflict names the first, for the message.
	Conflicts     int
	FirstConflict string
}

// MergeRecords merges logs (a base log, feedback exports from several
// servers) into one record per id, losing nothing:
//
//   - outcomes are unioned by model, and an outcome seen twice is merged
//     field by field (a field present in one copy only is kept; a field
//     with two different values is a conflict, counted, and the later
//     source wins);
//   - the routing decision and time come from the copy that has a
//     decision (a record created on another server by feedback carries
//     none); if several do, from the latest (at an equal time, the later
//     source), as one server keeps the latest decision for a repeated id;
//     the request's prompt, messages and meta come from that copy too,
//     filled in from the others;
//   - records with no decision keep the earliest time seen.
//
// The result is sorted by time, then by first appearance, like a server's
// export. Records are copied; the sources are not modified.
func MergeRecords(sources ...[]datasets.Record) ([]datasets.Record, MergeStats) {
	var st MergeStats
	index := map[string]int{}
	var out []datasets.Record
	for _, src := range sources {
		for i := range src {
			st.In++
			r := cloneRecord(&src[i])
			j, seen := index[r.ID]
			if !seen {
				index[r.ID] = len(out)
				out = append(out, r)
				continue
			}
			st.Duplicates++
			mergeInto(&out[j], r, &st)
		}
	}
	// Stable: equal times keep first-appearance order.
	slices.SortStableFunc(out, func(a, b datasets.Record) int { return a.TS.Compare(b.TS) })
	st.Out = len(out)
	return out, st
}

func cloneRecord(r *datasets.Record) datasets.Record {
	c := *r
	c.Messages = slices.Clone(r.Messages)
	c.Meta = maps.Clone(r.Meta)
	c.Outcomes = maps.Clone(r.Outcomes)
	if r.Decision != nil {
		d := *r.Decision
		c.Decision = &d
	}
	return c
}

// mergeInto merges r (from a later source) into dst.
func mergeInto(dst *datasets.Record, r datasets.Record, st *MergeStats) {
	// primary is the copy whose request and decision win.
	primary, other := dst, &r
	switch {
	// At an equal time the later source wins, as it does for an outcome
	// seen twice: an export taken after another has the newer view.
	case r.Decision != nil && (dst.Decision == nil || !r.TS.Before(dst.TS)):
		primary, other = &r, dst
	case r.Decision == nil && dst.Decision == nil && !r.TS.IsZero() && (dst.TS.IsZero() || r.TS.Before(dst.TS)):
		primary, other = &r, dst
	}
	m := datasets.Record{ID: dst.ID, TS: primary.TS, Decision: primary.Decision}
	if m.TS.IsZero() {
		m.TS = other.TS
	}
	m.Prompt, m.Messages = primary.Prompt, primary.Messages
	if m.Prompt == "" && len(m.Messages) == 0 {
		m.Prompt, m.Messages = other.Prompt, other.Messages
	}
	if len(primary.Meta)+len(other.Meta) > 0 {
		m.Meta = datasets.Meta{}
		maps.Copy(m.Meta, other.Meta)
		maps.Copy(m.Meta, primary.Meta)
	}
	// Outcomes: dst first, then r, so r (the later source) wins conflicts.
	if len(dst.Outcomes)+len(r.Outcomes) > 0 {
		m.Outcomes = maps.Clone(dst.Outcomes)
		if m.Outcomes == nil {
			m.Outcomes = map[string]datasets.Outcome{}
		}
		for model, o := range r.Outcomes {
			old, ok := m.Outcomes[model]
			if !ok {
				m.Outcomes[model] = o
				continue
			}
			merged, conflicts := datasets.MergeOutcome(old, o)
			if conflicts > 0 && st.Conflicts == 0 {
				st.FirstConflict = fmt.Sprintf("%s/%s", dst.ID, model)
			}
			st.Conflicts += conflicts
			m.Outcomes[model] = merged
		}
	}
	*dst = m
}

// ExampleKind says where a labelled example came from, which decides
// whether inverse propensity weighting applies to it.
type ExampleKind string

// The kinds of labelled example.
const (
	// KindBase is a record with no routing decision: an offline labelled
	// log, where both tiers were run on every request. Weight 1.
	KindBase ExampleKind = "base"
	// KindPolicy is a routed request that the policy itself speculated
	// (p_hard in the speculate band). Weight 1/propensity.
	KindPolicy ExampleKind = "policy"
	// KindExplored is a routed request that exploration forced to
	// speculate. Weight 1/propensity.
	KindExplored ExampleKind = "explored"
)

// Labelled is a training example with where it came from.
type Labelled struct {
	models.Example
	Kind ExampleKind
	// Propensity is the recorded probability of the decision that made
	// both outcomes observed; 1 for base records.
	Propensity float64
	// Clipped is true when the weight hit the cap.
	Clipped bool
	// Paired says both tiers' scores were observed: only paired examples
	// can judge a router (the held-out slice) or train the label, gain
	// and selection; one-sided ones train their tier's head only.
	Paired bool
}

// HeadEstimator is how a per-tier head weighs the rows where its tier
// ran. The fit's loss is divided by the sum of its weights, so every
// weighted fit is self-normalised (Hájek); the choice is whether to
// weigh at all, and where to cap. docs/loop.md §4 has the replay that
// chose the default.
type HeadEstimator string

// The head estimators.
const (
	// HeadUnweighted gives every observed row weight 1: consistent when
	// the head is well specified, since which tier ran depends on the
	// request's features only.
	HeadUnweighted HeadEstimator = "unweighted"
	// HeadIPW weighs a row by 1/P(its tier ran), uncapped (self-normalised
	// by the fit).
	HeadIPW HeadEstimator = "ipw"
	// HeadClipped is HeadIPW with the weights capped at
	// ExampleOptions.HeadMaxWeight.
	HeadClipped HeadEstimator = "clipped"
)

// DefaultHeadEstimator is the estimator retrain uses unless told.
const DefaultHeadEstimator = HeadUnweighted

// DefaultHeadMaxWeight caps HeadClipped's weights.
const DefaultHeadMaxWeight = 10

// ParseHeadEstimator checks a --head-weights value.
func ParseHeadEstimator(s string) (HeadEstimator, error) {
	switch e := HeadEstimator(s); e {
	case HeadUnweighted, HeadIPW, HeadClipped:
		return e, nil
	case "":
		return DefaultHeadEstimator, nil
	}
	return "", fmt.Errorf("head estimator %q is not known; want unweighted, ipw or clipped", s)
}

// ExampleOptions configures LabelledExamples.
type ExampleOptions struct {
	// Tiers names the fast and strong models.
	Tiers models.Tiers
	// MaxWeight caps inverse propensity weights; 0 means
	// DefaultMaxWeight.
	MaxWeight float64
	// NoIPW gives every example weight 1.
	NoIPW bool
	// OneSided keeps the records with one tier's outcome too (see
	// Labelled.Paired).
	OneSided bool
	// Heads weighs the per-tier heads' rows; "" means
	// DefaultHeadEstimator. HeadMaxWeight caps HeadClipped's weights (0
	// means DefaultHeadMaxWeight).
	Heads         HeadEstimator
	HeadMaxWeight float64
	// SoftFast, when set, is the champion's confidence calibration: a
	// record whose fast tier answered with a confidence but got no score
	// gets the calibrated P(fast answer correct) as a soft target for the
	// fast head. A posted score always wins. Needs OneSided.
	SoftFast *classifier.Calibration
	// Policy is the champion's, to tell which tier an explored request's
	// policy would have run (from its p_hard): that tier ran with
	// probability 1, the other with the exploration ε.
	Policy models.Policy
}

// ExampleStats counts what LabelledExamples found.
type ExampleStats struct {
	Records int
	// ByKind counts labelled examples by kind.
	ByKind map[ExampleKind]int
	// Unpaired counts records missing a tier's score, by the decision
	// that routed them ("" for records with no decision).
	Unpaired map[string]int
	// FastOnly and StrongOnly count the one-sided examples kept (with
	// OneSided), SoftFast those whose fast target is a calibrated
	// confidence.
	FastOnly, StrongOnly, SoftFast int
	// PinnedOneSided counts one-sided records of requests the proxy sent
	// to the tier that stored the response they continue (Decision.Pinned),
	// left out of the heads' fits.
	PinnedOneSided int
	// NoPropensity counts routed, labelled records without a recorded
	// propensity (from a server without exploration); they get weight 1.
	NoPropensity int
	// Clipped counts weights capped at MaxWeight.
	Clipped int
}

// LabelledExamples turns merged records into weighted training examples:
// the records with both tiers' scores, and with OneSided those with one.
// A routed record's weight is the inverse of the recorded propensity of
// its decision, which makes the routed examples stand for all traffic as
// long as every request had a positive chance of being speculated
// (exploration ε > 0); see docs/loop.md for where that holds and where it
// does not. The per-tier heads' weights are set by opts.Heads.
func LabelledExamples(recs []datasets.Record, opts ExampleOptions) ([]Labelled, ExampleStats, error) {
	st := ExampleStats{Records: len(recs), ByKind: map[ExampleKind]int{}, Unpaired: map[string]int{}}
	heads, err := ParseHeadEstimator(string(opts.Heads))
	if err != nil {
		return nil, st, err
	}
	var out []Labelled
	for i := range recs {
		r := &recs[i]
		fo, so := r.Outcomes[opts.Tiers.Fast], r.Outcomes[opts.Tiers.Strong]
		f, s := math.NaN(), math.NaN()
		if fo.Score != nil {
			f = *fo.Score
		}
		if so.Score != nil {
			s = *so.Score
		}
		soft := false
		if math.IsNaN(f) && opts.SoftFast != nil && fo.Confidence != nil && !fo.Cancelled {
			f, soft = opts.SoftFast.Apply(*fo.Confidence), true
		}
		paired := fo.Score != nil && so.Score != nil
		if !paired {
			kind := ""
			if r.Decision != nil {
				kind = r.Decision.Kind
			}
			st.Unpaired[kind]++
			if !opts.OneSided || (math.IsNaN(f) && math.IsNaN(s)) {
				continue
			}
			if r.Decision != nil && r.Decision.Pinned {
				// The tier ran because an earlier turn was routed to it,
				// not on this request's features: a hard conversation
				// stays on the strong tier, so its later turns' outcomes
				// depend on what the features do not see, and a head
				// fitted on them would be biased where the one-sided
				// heads rely on selection by the features alone.
				st.PinnedOneSided++
				continue
			}
		}
		ex := Labelled{Example: models.Example{ID: r.ID, Input: RecordInput(r), Fast: f, Strong: s, FastSoft: soft, TS: r.TS, Weight: 1}, Kind: KindBase, Propensity: 1, Paired: paired}
		if fo.Confidence != nil {
			c := *fo.Confidence
			ex.Confidence = &c
		}
		pFast, pStrong := 1.0, 1.0
		if d := r.Decision; d != nil {
			ex.Kind = KindPolicy
			if d.Explored {
				ex.Kind = KindExplored
			}
			switch p := d.Propensity; {
			case p == 0:
				if paired {
					st.NoPropensity++
				}
			case !(p > 0 && p <= 1):
				return nil, st, fmt.Errorf("record %q: decision.propensity is %v, want a probability in (0,1]", r.ID, p)
			default:
				ex.Propensity = p
				if !opts.NoIPW {
					ex.Weight, ex.Clipped = InversePropensity(p, opts.MaxWeight)
					if ex.Clipped && paired {
						st.Clipped++
					}
				}
				pFast, pStrong = tierPropensities(d, opts.Policy)
			}
		}
		if heads != HeadUnweighted {
			capW := math.Inf(1)
			if heads == HeadClipped {
				capW = opts.HeadMaxWeight
				if capW <= 0 {
					capW = DefaultHeadMaxWeight
				}
			}
			ex.FastWeight, ex.StrongWeight = math.Min(1/pFast, capW), math.Min(1/pStrong, capW)
		}
		switch {
		case paired:
			st.ByKind[ex.Kind]++
		case soft:
			st.SoftFast++
		case math.IsNaN(s):
			st.FastOnly++
		default:
			st.StrongOnly++
		}
		out = append(out, ex)
	}
	return out, st, nil
}

// tierPropensities is the probability that each tier ran on a routed
// request, from its recorded decision and propensity. A fast decision
// (propensity 1 − ε) ran the fast tier surely and the strong one only if
// explored (ε); an escalation the other way round; a speculation the
// policy chose ran both. An explored speculation (propensity ε) ran the
// tier the policy would have run surely and the other with ε. The record
// says which (Decision.Policy); a record from before it was kept is read
// from p_hard against the champion's escalate threshold, which is right
// only where the thresholds that served it were the champion's. A
// probability of 0 (ε = 0, which then cannot have run) is returned as 1.
func tierPropensities(d *datasets.Decision, pol models.Policy) (pFast, pStrong float64) {
	p := d.Propensity
	pFast, pStrong = 1, 1
	switch {
	case d.Kind == "fast":
		pStrong = 1 - p
	case d.Kind == "escalate":
		pFast = 1 - p
	case d.Explored && p < 1:
		escalated := d.PHard > pol.EscalateAbove
		switch d.Policy {
		case "escalate":
			escalated = true
		case "fast":
			escalated = false
		}
		if escalated {
			pFast = p
		} else {
			pStrong = p
		}
	}
	if !(pFast > 0) {
		pFast = 1
	}
	if !(pStrong > 0) {
		pStrong = 1
	}
	return pFast, pStrong
}

// RecordInput is what the features see of a logged record.
func RecordInput(r *datasets.Record) features.Input {
	in := features.Input{Prompt: r.Prompt, Meta: r.Meta}
	if len(r.Messages) > 0 {
		in.Messages = make([]features.Turn, len(r.Messages))
		for i, m := range r.Messages {
			in.Messages[i] = features.Turn{Role: m.Role, Content: m.Content}
		}
	}
	return in
}

// Examples strips the provenance.
func Examples(ls []Labelled) []models.Example {
	out := make([]models.Example, len(ls))
	for i := range ls {
		out[i] = ls[i].Example
	}
	return out
}

// TrainedThrough is the time of the newest training example (zero if
// none has a time).
func TrainedThrough(train []Labelled) time.Time {
	var t time.Time
	for i := range train {
		if train[i].TS.After(t) {
			t = train[i].TS
		}
	}
	return t
}

// HeldSince is the time of the oldest held-out example that has one (zero
// if none does). Untimed examples sort first, and splitJudged holds some
// out when too few timed ones qualify: taking the first held example's
// time then gave zero, and retrain said "(no timestamps)" and left
// held_since out of its JSON and the artifact.
func HeldSince(held []Labelled) time.Time {
	var t time.Time
	for i := range held {
		if ts := held[i].TS; !ts.IsZero() && (t.IsZero() || ts.Before(t)) {
			t = ts
		}
	}
	return t
}

package datasets

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Label kinds. A label says, for a record with both a fast and a strong
// outcome, whether the request "needs" the strong tier (1) or not (0).
const (
	// LabelStrongWins is 1 when the strong score beats the fast score.
	LabelStrongWins = "strong-wins"
	// LabelWeakFails is 1 when the fast score is below WeakFailsBelow.
	LabelWeakFails = "weak-fails"
	// LabelGap is 1 when strong minus fast exceeds the label's Gap.
	LabelGap = "gap"
	// LabelGain is the soft target (strong - fast + 1) / 2 in [0,1]: its
	// probability is a rescaled expected gain of the strong tier, which is
	// exactly what routing ranks by (the oracle sends the largest gains
	// first). Unlike the 0/1 labels it also learns from requests where the
	// fast tier wins.
	LabelGain = "gain"
)

// WeakFailsBelow is the fast score under which weak-fails calls a record hard.
const WeakFailsBelow = 0.5

// gapTolerance absorbs rounding in score differences: grades on a 1-10 scale
// divided by 10 give 0.8-0.6 = 0.20000000000000007, which must not count as
// exceeding a gap of 0.2.
const gapTolerance = 1e-9

// labelForms lists the valid label strings for error messages.
const labelForms = `"strong-wins" (default), "weak-fails", "gain" or "gap:T" with T in [0,1) (e.g. "gap:0.2")`

// Label is how a (fast, strong) pair of scores becomes a 0/1 training
// target. The zero value is strong-wins, the default.
type Label struct {
	// Kind is LabelStrongWins, LabelWeakFails or LabelGap; "" means
	// LabelStrongWins.
	Kind string
	// Gap is the threshold of LabelGap, in [0,1); unused by other kinds.
	Gap float64
}

// ParseLabel parses "strong-wins", "weak-fails" or "gap:T". The empty string
// is the default, strong-wins.
func ParseLabel(s string) (Label, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "", LabelStrongWins:
		return Label{Kind: LabelStrongWins}, nil
	case LabelWeakFails:
		return Label{Kind: LabelWeakFails}, nil
	case LabelGain:
		return Label{Kind: LabelGain}, nil
	}
	rest, ok := strings.CutPrefix(s, LabelGap+":")
	if !ok {
		return Label{}, fmt.Errorf("label %q is not known; want %s", s, labelForms)
	}
	t, err := strconv.ParseFloat(rest, 64)
	if err != nil || math.IsNaN(t) {
		return Label{}, fmt.Errorf("label %q: gap %q is not a number; want %s", s, rest, labelForms)
	}
	if t < 0 || t >= 1 {
		return Label{}, fmt.Errorf("label %q: gap %v is outside [0,1); scores are in [0,1], so want %s", s, t, labelForms)
	}
	return Label{Kind: LabelGap, Gap: t}, nil
}

// String is the form ParseLabel reads back.
func (l Label) String() string {
	switch l.Kind {
	case "", LabelStrongWins:
		return LabelStrongWins
	case LabelGap:
		return LabelGap + ":" + strconv.FormatFloat(l.Gap, 'g', -1, 64)
	default:
		return l.Kind
	}
}

// Of returns the label of a record whose fast and strong scores are given:
// 1 when the request needs the strong tier, else 0 (gain gives a value in
// [0,1]). It panics on a Label that ParseLabel would not return (a
// programmer error).
func (l Label) Of(fast, strong float64) float64 {
	var hard bool
	switch l.Kind {
	case LabelGain:
		return (strong - fast + 1) / 2
	case "", LabelStrongWins:
		hard = strong > fast
	case LabelWeakFails:
		hard = fast < WeakFailsBelow
	case LabelGap:
		hard = strong-fast > l.Gap+gapTolerance
	default:
		panic("datasets: unknown label kind " + strconv.Quote(l.Kind))
	}
	if hard {
		return 1
	}
	return 0
}

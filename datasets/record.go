package datasets

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/triage-router/triage/internal/echo"
)

// Outcome is what one model produced for a record. Score is required in a
// labelled log; feedback exported from a server may carry only a confidence,
// which is why it is a pointer (nil means "not observed", not zero).
type Outcome struct {
	// Score is the grade of the answer in [0,1], 1 = correct/acceptable.
	Score *float64 `json:"score,omitempty"`
	// LatencyMS is the wall time of the call in milliseconds.
	LatencyMS *float64 `json:"latency_ms,omitempty"`
	// CostUSD is what the call cost.
	CostUSD *float64 `json:"cost_usd,omitempty"`
	// Confidence is the fast model's own confidence signal (e.g. mean token
	// log-probability), on its raw scale.
	Confidence *float64 `json:"confidence,omitempty"`
	// Response is the answer text, when kept.
	Response string `json:"response,omitempty"`
	// InputTokens and OutputTokens are the token usage the upstream reported.
	InputTokens  *int `json:"input_tokens,omitempty"`
	OutputTokens *int `json:"output_tokens,omitempty"`
	// Cancelled is true when the call was cancelled before it finished (the
	// loser of a speculation); its latency and cost are then partial.
	Cancelled bool `json:"cancelled,omitempty"`
}

// Decision is the routing decision recorded with a served request, so an
// export can be replayed and exploration samples reweighted.
type Decision struct {
	// Kind is "fast", "speculate" or "escalate".
	Kind string `json:"decision"`
	// Tier is the model the decision chose (the cheaper of a race), by
	// the name its outcomes are recorded under; empty in records from
	// before it was kept.
	Tier string `json:"tier,omitempty"`
	// PHard is the calibrated probability the request needs the strong tier.
	PHard float64 `json:"p_hard"`
	// ModelVersion is the artifact version that made the decision.
	ModelVersion string `json:"model_version"`
	// Propensity is the probability that the policy took this decision for
	// this request (1 for a deterministic decision; below 1 under exploration).
	Propensity float64 `json:"propensity,omitempty"`
	// Explored is true when the decision was forced by exploration.
	Explored bool `json:"explored,omitempty"`
	// Policy is, on an explored decision, what the policy decided before
	// exploration replaced it ("fast" or "escalate"): that tier ran
	// surely and the other only by exploration, which retrain's per-tier
	// propensities need. Thresholds set in a server's config, or those of
	// an earlier champion, make it unrecoverable from p_hard afterwards.
	// Empty on other decisions and in records from before it was kept.
	Policy string `json:"policy,omitempty"`
	// Fallback names the tier that answered when the one the decision
	// chose failed (the proxy's fallback); empty when it answered.
	Fallback string `json:"fallback,omitempty"`
	// Error says why the client got no whole answer: "upstream_failed"
	// (no tier answered) or "stream_broken" (an upstream broke a stream
	// the client was reading). Empty when it got one.
	Error string `json:"error,omitempty"`
	// Pinned is true when the proxy sent the request to the tier that
	// stored the response it continues (a Responses API
	// previous_response_id), whatever the router said: no other tier
	// could answer it. Kind is then that tier's decision label, and
	// there is no propensity (the policy did not choose).
	Pinned bool `json:"pinned,omitempty"`
	// Ran, PolicyTier and TierPropensity are kept on an N-tier model's
	// decisions the policy took (not a pinned or client-forced one), by
	// the names outcomes are recorded under; absent on two-tier records
	// and on records from before they were kept. Kind and Propensity
	// say which of three labels was taken; these say which tiers, which
	// an N-tier export needs for per-tier inverse propensity weights
	// (docs/loop.md §8).
	//
	// Ran is the tiers that ran, cheapest first. On /v1/route, which
	// sees no answer, the tiers the decision sent the request to: one,
	// or both of a race (the policy's or exploration's). On the proxy,
	// the tiers whose answers were produced (their outcomes, not
	// cancelled): not a tier that failed or a race's cancelled loser,
	// but the tier it fell back to; nil when none answered.
	Ran []string `json:"ran,omitempty"`
	// PolicyTier is the tier the policy chose before exploration (the
	// cheaper of a race it chose): on an explored request of the top
	// tier, Tier is the one below, raced with it.
	PolicyTier string `json:"policy_tier,omitempty"`
	// TierPropensity is, for every tier of the model, the probability
	// that the request was sent to the tier under the server's
	// exploration rule: 1 for the tiers the policy chose, ε for the tier
	// exploration races with a single one, 0 for the others. A failure
	// or a fallback after the draw does not change it.
	TierPropensity map[string]float64 `json:"tier_propensity,omitempty"`
}

// Meta is categorical context (subject, tenant, source). Values in a log may
// be JSON strings, numbers or booleans; they are kept as strings.
type Meta map[string]string

// UnmarshalJSON accepts string, number and boolean values.
func (m *Meta) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if raw == nil {
		*m = nil
		return nil
	}
	out := make(Meta, len(raw))
	for k, v := range raw {
		// null means absent. It must be checked first: unmarshalling null
		// into a string succeeds and would keep the key with "".
		if string(v) == "null" {
			continue
		}
		if s, ok := plainString(v); ok {
			out[k] = s
			continue
		}
		var s string
		if err := json.Unmarshal(v, &s); err == nil {
			out[k] = s
			continue
		}
		var f json.Number
		if err := json.Unmarshal(v, &f); err == nil {
			out[k] = f.String()
			continue
		}
		var bl bool
		if err := json.Unmarshal(v, &bl); err == nil {
			out[k] = strconv.FormatBool(bl)
			continue
		}
		// The key is a client's, of any length: repeated by its start.
		return fmt.Errorf("meta.%s: want a string, number or boolean", echo.Bare(k))
	}
	*m = out
	return nil
}

// plainString returns the JSON string v without its quotes when it has no
// escapes and is valid UTF-8, which is when json.Unmarshal would return
// exactly those bytes; the usual meta value takes this path and skips a
// reflective decode per key.
func plainString(v json.RawMessage) (string, bool) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", false
	}
	body := v[1 : len(v)-1]
	if bytes.IndexByte(body, '\\') >= 0 || bytes.IndexByte(body, '"') >= 0 || !utf8.Valid(body) {
		return "", false
	}
	return string(body), true
}

// Record is one logged request with the outcomes observed for it: the line
// format of docs/design.md.
type Record struct {
	ID       string             `json:"id"`
	Prompt   string             `json:"prompt,omitempty"`
	Messages []Message          `json:"messages,omitempty"`
	Meta     Meta               `json:"meta,omitempty"`
	Outcomes map[string]Outcome `json:"outcomes,omitempty"`
	TS       time.Time          `json:"ts,omitzero"`
	// Decision is present on records exported from a server.
	Decision *Decision `json:"decision,omitempty"`
}

// Text is the prompt as one string: the prompt field, or the messages'
// contents joined by newlines.
func (r *Record) Text() string {
	if r.Prompt != "" || len(r.Messages) == 0 {
		return r.Prompt
	}
	n := 0
	for _, m := range r.Messages {
		n += len(m.Content) + 1
	}
	b := make([]byte, 0, n)
	for i, m := range r.Messages {
		if i > 0 {
			b = append(b, '\n')
		}
		b = append(b, m.Content...)
	}
	return string(b)
}

// Models lists the models with an outcome in the record, sorted.
func (r *Record) Models() []string {
	out := make([]string, 0, len(r.Outcomes))
	for m := range r.Outcomes {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// ModelList formats counts of records per model for an error message,
// sorted by name: "gpt-4 (812), mixtral (812)".
func ModelList(seen map[string]int) string {
	if len(seen) == 0 {
		return "(none: the records have no outcomes)"
	}
	names := make([]string, 0, len(seen))
	for m := range seen {
		names = append(names, m)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, m := range names {
		parts[i] = fmt.Sprintf("%s (%d)", m, seen[m])
	}
	return strings.Join(parts, ", ")
}

// Scores returns the fast and strong scores of the record, and false when
// either is missing.
func (r *Record) Scores(fast, strong string) (f, s float64, ok bool) {
	fo, ok1 := r.Outcomes[fast]
	so, ok2 := r.Outcomes[strong]
	if !ok1 || !ok2 || fo.Score == nil || so.Score == nil {
		return 0, 0, false
	}
	return *fo.Score, *so.Score, true
}

// ValidateOptions relaxes Validate for records that are not a labelled log.
type ValidateOptions struct {
	// AllowMissingScore accepts outcomes without a score (feedback that
	// carried only a confidence).
	AllowMissingScore bool
	// EmptyPrompt says the record's prompt was given as "" rather than
	// left out: a legacy completion's empty prompt, which OpenAI's API
	// and the proxy take (and a record without prompt or messages is
	// refused). A Record's Prompt cannot tell the two apart.
	EmptyPrompt bool
}

// Validate checks the record against docs/design.md and returns a *FieldError
// naming the first field that is wrong.
func (r *Record) Validate(opts ValidateOptions) error {
	if r.ID == "" {
		return &FieldError{Field: "id", Msg: "is missing; every record needs a unique id"}
	}
	if r.Prompt == "" && len(r.Messages) == 0 {
		// "messages": [] decodes to an empty slice, not nil: said as
		// "prompt is missing", it sent the reader to a field the writer
		// of the log never meant to fill.
		if r.Messages != nil {
			return &FieldError{Field: "messages", Msg: "is an empty array; give at least one message, or a prompt"}
		}
		if !opts.EmptyPrompt {
			return &FieldError{Field: "prompt", Msg: "is missing; give prompt or messages"}
		}
	}
	for i, m := range r.Messages {
		if m.Content == "" && m.Role == "" {
			return &FieldError{Field: fmt.Sprintf("messages[%d]", i), Msg: "is empty; want role and content"}
		}
	}
	for name, o := range r.Outcomes {
		if name == "" {
			return &FieldError{Field: "outcomes", Msg: "has an empty model name"}
		}
		f := "outcomes." + name
		if o.Score == nil {
			if !opts.AllowMissingScore {
				msg := "is missing; every outcome needs a score in [0,1]"
				if r.Decision != nil {
					// A served record: outcomes without a posted score are
					// the norm in a feedback export.
					msg += "; this record is from a feedback export (it has a decision), where an outcome without a posted score is usual: retrain learns from such records; to measure or train on the scored records only, pass --skip-bad, or post the scores to /v1/feedback first"
				}
				return &FieldError{Field: f + ".score", Msg: msg}
			}
		} else if s := *o.Score; math.IsNaN(s) || s < 0 || s > 1 {
			return &FieldError{Field: f + ".score", Msg: fmt.Sprintf("is %v, want a value in [0,1]; rescale the log's scores to [0,1] (grades on 1-10: divide by 10)", s)}
		}
		// The bounds keep every sum and per-1k figure finite (1e308 passed
		// as finite, then the cost curve's sums overflowed to +Inf and the
		// plot's axis search never ended).
		if o.LatencyMS != nil && !(*o.LatencyMS >= 0 && *o.LatencyMS <= MaxLatencyMS) {
			return &FieldError{Field: f + ".latency_ms", Msg: fmt.Sprintf("is %v, want a non-negative number of milliseconds up to %g (11 days)", *o.LatencyMS, float64(MaxLatencyMS))}
		}
		if o.CostUSD != nil && !(*o.CostUSD >= 0 && *o.CostUSD <= MaxCostUSD) {
			return &FieldError{Field: f + ".cost_usd", Msg: fmt.Sprintf("is %v, want a non-negative number of dollars up to %g", *o.CostUSD, float64(MaxCostUSD))}
		}
		for _, t := range []struct {
			name string
			n    *int
		}{{"input_tokens", o.InputTokens}, {"output_tokens", o.OutputTokens}} {
			if t.n != nil && *t.n < 0 {
				return &FieldError{Field: f + "." + t.name, Msg: fmt.Sprintf("is %d, want a count of 0 or more", *t.n)}
			}
		}
		if o.Confidence != nil && (math.IsNaN(*o.Confidence) || math.IsInf(*o.Confidence, 0)) {
			return &FieldError{Field: f + ".confidence", Msg: "is not a finite number"}
		}
	}
	return nil
}

// MaxLatencyMS and MaxCostUSD bound an outcome's latency_ms and cost_usd
// (and the curves' default flags): far above any real call, low enough
// that sums over any log stay finite.
const (
	MaxLatencyMS = 1e9
	MaxCostUSD   = 1e9
)

// MergeOutcome is a with every field that b sets taken from b, and the
// number of fields where both are set and differ (b wins those). It is
// how two reports of one call combine: the feedback store merges a later
// write for a (request, model) into what it holds, and retrain merges a
// base log's outcome with an export's.
func MergeOutcome(a, b Outcome) (Outcome, int) {
	n := 0
	pf := func(x, y *float64) *float64 {
		switch {
		case y == nil:
			return x
		case x != nil && *x != *y && !(math.IsNaN(*x) && math.IsNaN(*y)):
			n++
		}
		return y
	}
	pi := func(x, y *int) *int {
		switch {
		case y == nil:
			return x
		case x != nil && *x != *y:
			n++
		}
		return y
	}
	out := Outcome{
		Score:        pf(a.Score, b.Score),
		LatencyMS:    pf(a.LatencyMS, b.LatencyMS),
		CostUSD:      pf(a.CostUSD, b.CostUSD),
		Confidence:   pf(a.Confidence, b.Confidence),
		InputTokens:  pi(a.InputTokens, b.InputTokens),
		OutputTokens: pi(a.OutputTokens, b.OutputTokens),
		Response:     a.Response,
		Cancelled:    a.Cancelled || b.Cancelled,
	}
	if b.Response != "" {
		if a.Response != "" && a.Response != b.Response {
			n++
		}
		out.Response = b.Response
	}
	return out, n
}

// FieldError says which field of a record is wrong and why.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + " " + e.Msg }

// Float returns a pointer to v, for building outcomes.
func Float(v float64) *float64 { return &v }

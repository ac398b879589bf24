package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/serve/proxy"
)

// FeedbackConfig sets what POST /v1/feedback accepts.
type FeedbackConfig struct {
	// AllowOtherModels accepts feedback about any model. By default only
	// the serving model's tiers (and the proxy's record_as names) are
	// accepted: feedback under another name trains nothing, and a typo
	// in a model name would otherwise be stored in silence.
	AllowOtherModels bool `yaml:"allow_other_models"`
}

// feedbackRequest is the body of POST /v1/feedback.
type feedbackRequest struct {
	RequestID  string   `json:"request_id"`
	Model      string   `json:"model"`
	Score      *float64 `json:"score"`
	Confidence *float64 `json:"confidence"`
	LatencyMS  *float64 `json:"latency_ms"`
	CostUSD    *float64 `json:"cost_usd"`
	Response   string   `json:"response"`
	// Prompt or Messages (with Meta) let feedback create the record of a
	// request this server did not route.
	Prompt   string        `json:"prompt"`
	Messages []message     `json:"messages"`
	Meta     datasets.Meta `json:"meta"`
}

// decodeFeedback decodes and validates a POST /v1/feedback body.
func decodeFeedback(body []byte, lim Limits) (feedbackRequest, error) {
	var f feedbackRequest
	if !utf8.Valid(body) || !fastDecodeFeedback(body, &f) {
		f = feedbackRequest{}
		if err := decodeStrict(body, &f); err != nil {
			return f, feedbackShapeHint(err)
		}
	}
	return f, f.validate(lim)
}

// feedbackShapeHint rewords the unknown-field error of a body shaped like a
// log record ("outcomes" keyed by model, as triage's JSONL logs and the
// export carry them): the fix is not a spelling but one post per model.
func feedbackShapeHint(err error) error {
	var e *Error
	if errors.As(err, &e) && e.Code == CodeUnknownField && strings.Contains(e.Message, `unknown field "outcomes"`) {
		return Errorf(CodeUnknownField, `unknown field "outcomes": feedback is one model per post, {"request_id": ..., "model": ..., "score": ...}; post once for each tier that ran (see docs/serving.md)`)
	}
	return err
}

func (f *feedbackRequest) validate(lim Limits) error {
	if err := datasets.CheckKey("request_id", f.RequestID); err != nil {
		return Errorf(CodeInvalidRequest, "%v; send the request_id /v1/route returned", err)
	}
	if err := datasets.CheckKey("model", f.Model); err != nil {
		return Errorf(CodeInvalidRequest, "%v; send the name of the model the outcome is about", err)
	}
	if f.Score == nil && f.Confidence == nil {
		return Errorf(CodeInvalidRequest, "score and confidence are both missing; send at least one")
	}
	if f.Score != nil && !(*f.Score >= 0 && *f.Score <= 1) {
		return Errorf(CodeInvalidRequest, "score is %v, want a value in [0,1] (1 = correct/acceptable)", *f.Score)
	}
	// The log reader's bounds: a value stored here is exported, and an
	// export that train or retrain refuses would stop the loop.
	for _, v := range []struct {
		name string
		p    *float64
		max  float64
	}{{"latency_ms", f.LatencyMS, datasets.MaxLatencyMS}, {"cost_usd", f.CostUSD, datasets.MaxCostUSD}} {
		if v.p != nil && !(*v.p >= 0 && *v.p <= v.max) {
			return Errorf(CodeInvalidRequest, "%s is %v, want a non-negative number up to %g", v.name, *v.p, v.max)
		}
	}
	if f.Confidence != nil && !finite(*f.Confidence) {
		return Errorf(CodeInvalidRequest, "confidence is %v, want a finite number", *f.Confidence)
	}
	if err := checkMeta("", f.Meta, lim); err != nil {
		return err
	}
	return checkPrompt("", f.Prompt, f.Messages, false, false, lim)
}

func (f *feedbackRequest) feedback() datasets.Feedback {
	fb := datasets.Feedback{
		RequestID: f.RequestID,
		Model:     f.Model,
		Outcome: datasets.Outcome{Score: f.Score, Confidence: f.Confidence, LatencyMS: f.LatencyMS,
			CostUSD: f.CostUSD, Response: f.Response},
	}
	return fb
}

func (s *Server) handleFeedback(c *gin.Context) {
	it := getItem()
	defer putItem(it)
	body, ok := s.readItemBody(c, it)
	if !ok {
		return
	}
	req, err := decodeFeedback(body, s.cfg.Limits)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	st := s.state.Load()
	req.Model = s.feedbackModel(st, req.Model)
	if err := s.checkModel(st, req.Model); err != nil {
		writeError(c, s.log, err)
		return
	}
	ctx := c.Request.Context()
	fb := req.feedback()
	if req.Prompt != "" || len(req.Messages) > 0 {
		// The prompt is only stored for an id the server does not hold,
		// but it must not be ignored for one it does: the score would
		// label that id's prompt, not this one.
		other, err := s.ids.holdsOther(fb.RequestID, datasets.PromptFingerprint(req.Prompt, toDatasetMessages(req.Messages)))
		if err != nil {
			writeError(c, s.log, err)
			return
		}
		if other {
			writeError(c, s.log, Errorf(CodeIDConflict, "id %q holds another prompt (it was routed, proxied or given feedback with it), and one id holds one prompt: this score would label that prompt; post it without a prompt to score that one, or under another id to record this one", fb.RequestID))
			return
		}
	}
	// First without the prompt: the request's decision may still be in
	// the log queue (or the proxy's recording of it not yet written), and
	// a prompt would create a record without it.
	res, err := s.store.RecordFeedback(ctx, fb)
	if errors.Is(err, datasets.ErrUnknownRequest) {
		if err = s.awaitRecorded(ctx, fb.RequestID); err == nil {
			if req.Prompt != "" || len(req.Messages) > 0 {
				meta := proxy.MergeMeta(req.Meta, proxy.ClientMeta(ctx))
				fb.Prompt, fb.Messages, fb.Meta, fb.TS = req.Prompt, toDatasetMessages(req.Messages), meta, s.now()
			}
			res, err = s.store.RecordFeedback(ctx, fb)
		}
	}
	if err != nil {
		if status, _, _ := ErrorStatus(err); status >= 500 {
			s.m.feedbackFailures.Inc()
		}
		if f := s.dlog.Failing(); f != nil && errors.Is(err, datasets.ErrUnknownRequest) {
			// "Route it first" would send the client in a circle: it did,
			// and its decision was lost with the commit.
			err = Errorf(CodeNotFound, "%v: routed requests are not being recorded since %s (%s), so it may be one of them; send its prompt or messages with the feedback to record it",
				err, f.at.UTC().Format(time.RFC3339), diskReason(f.err))
		}
		writeError(c, s.log, err)
		return
	}
	s.m.feedbackWrites.Inc()
	if !res.Rescored {
		// A retry (or a correction) of a score already counted would
		// let one client steer the drift gauges by repeating itself. A
		// first score for an outcome the proxy recorded (with no score)
		// counts.
		s.scored(st, fb)
	}
	// Built by hand: gin's c.JSON of a gin.H (a map, encoded by
	// reflection) was a tenth of the handler's CPU. The bytes are those
	// encoding/json gives for the map: keys sorted, HTML escaped. The
	// request body's buffer is done with (decoded strings are copies).
	out := append(it.body[:0], `{"model":`...)
	out = appendJSONString(out, fb.Model)
	out = append(out, `,"request_id":`...)
	out = appendJSONString(out, fb.RequestID)
	out = append(out, `,"status":"recorded"}`...)
	it.body = out
	c.Data(http.StatusOK, "application/json; charset=utf-8", out)
}

// recordingWait bounds how long feedback waits for the proxy to record
// the request it is about. A finished request's recording is committed
// within the recorder's linger (a fraction of a second), but feedback
// posted while its answer is still streaming (the request id is in the
// headers) would wait for the whole stream, up to the tier's timeout.
const recordingWait = 10 * time.Second

// awaitRecorded returns once the request id, if this server routed or
// proxied it, is in the store: the decision log is flushed, and a proxied
// request's recording (queued, or waiting for a tier still running) is
// waited for, up to recordingWait.
func (s *Server) awaitRecorded(ctx context.Context, id string) error {
	if err := s.dlog.Flush(ctx); err != nil {
		return err
	}
	if s.proxy == nil {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, recordingWait)
	defer cancel()
	err := s.proxy.AwaitRecording(wctx, id)
	if err != nil && ctx.Err() == nil {
		return &Error{Code: CodeInProgress, Err: err, Message: fmt.Sprintf(
			"request %q is still running (the proxy records it once every tier it started has finished, and one has not after %v); post the feedback again in a few seconds", id, recordingWait)}
	}
	return err
}

// flushRecords returns once every request routed, or proxied and
// finished, before the call is in the store: an export or a snapshot
// then holds the traffic that came before it.
func (s *Server) flushRecords(ctx context.Context) error {
	if err := s.dlog.Flush(ctx); err != nil {
		return err
	}
	if s.proxy == nil {
		return nil
	}
	return s.proxy.FlushRecordings(ctx)
}

// appendJSONString appends s as encoding/json encodes a string (with HTML
// escaping); ids and model names seldom need any escape, so the rest is
// left to encoding/json.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// feedbackModel is the name feedback about model is stored under. A
// client of the proxy names a tier as it does in a request's "model"
// ("fast", "strong", or a tier's name in the list form); the proxy records
// that tier's outcomes under its record_as or the artifact's name for the
// tier, so feedback under the client's name goes there too, and the next
// training run finds both under one name. Without a proxy, "fast" and
// "strong" name a two-tier router's tiers (the words of its decisions). A
// model that is a tier's own name is left as it is.
func (s *Server) feedbackModel(st *state, model string) string {
	if slices.Contains(st.tiers, model) {
		return model
	}
	if tiers := s.cfg.Proxy.Tiers.List(); len(tiers) == len(st.tiers) {
		for i, t := range tiers {
			if t.Name != model {
				continue
			}
			if t.RecordAs != "" {
				return t.RecordAs
			}
			return st.tiers[i]
		}
		return model
	}
	if len(st.tiers) == 2 {
		switch model {
		case proxy.TierFast:
			return st.tiers[0]
		case proxy.TierStrong:
			return st.tiers[1]
		}
	}
	return model
}

// checkModel refuses feedback about a model that is not one of st's
// tiers, a tier of a model served earlier by this process, or a proxy
// tier's record_as name, unless the config allows any.
func (s *Server) checkModel(st *state, model string) error {
	if s.cfg.Feedback.AllowOtherModels || slices.Contains(st.tiers, model) {
		return nil
	}
	s.servedMu.Lock()
	earlier := s.served[model]
	s.servedMu.Unlock()
	if earlier {
		return nil // a tier of a model served before a reload
	}
	for _, t := range s.cfg.Proxy.Tiers.List() {
		if t.RecordAs != "" && model == t.RecordAs {
			return nil
		}
	}
	if len(st.tiers) == 2 {
		return Errorf(CodeInvalidRequest, "model %q is not a tier of the serving model %s (fast %q, strong %q); feedback under another name trains nothing. Check the name, or set feedback.allow_other_models: true in the config",
			model, st.art.Version, st.tiers[0], st.tiers[1])
	}
	return Errorf(CodeInvalidRequest, "model %q is not a tier of the serving model %s (tiers %s); feedback under another name trains nothing. Check the name, or set feedback.allow_other_models: true in the config",
		model, st.art.Version, strings.Join(st.tiers, ", "))
}

func toDatasetMessages(ms []message) []datasets.Message {
	if len(ms) == 0 {
		return nil
	}
	out := make([]datasets.Message, len(ms))
	for i, m := range ms {
		out[i] = datasets.Message{Role: m.Role, Content: m.Content}
	}
	return out
}

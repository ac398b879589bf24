package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"

	"github.com/gin-gonic/gin"
	"github.com/tidwall/gjson"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/features"
	"github.com/triage-router/triage/internal/echo"
	"github.com/triage-router/triage/internal/plural"
	"github.com/triage-router/triage/internal/reqbody"
	"github.com/triage-router/triage/internal/reqid"
	"github.com/triage-router/triage/models"
	"github.com/triage-router/triage/serve/proxy"
)

// explainTop is how many feature contributions "explain": true returns.
const explainTop = 10

// message is one chat turn of a request, as OpenAI's chat format has it,
// so a client can pass the messages it sends to the model as they are:
// content is a string, null or an array of content parts, whose text is
// routed on (datasets.PartsText); the other members such a message may
// carry (name, tool_calls, tool_call_id, refusal, audio, function_call)
// are accepted and not used. Any other member is refused like an unknown
// field of the body: it is most likely a misspelling.
type message datasets.Message

func (m *message) UnmarshalJSON(b []byte) error {
	var w struct {
		Role         string          `json:"role"`
		Content      json.RawMessage `json:"content"`
		Name         json.RawMessage `json:"name"`
		ToolCalls    json.RawMessage `json:"tool_calls"`
		ToolCallID   json.RawMessage `json:"tool_call_id"`
		Refusal      json.RawMessage `json:"refusal"`
		Audio        json.RawMessage `json:"audio"`
		FunctionCall json.RawMessage `json:"function_call"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return err
	}
	text, err := datasets.ContentText(w.Content)
	if err != nil {
		return err
	}
	m.Role, m.Content = w.Role, text
	return nil
}

// routeRequest is the body of POST /v1/route and one element of a batch.
type routeRequest struct {
	ID       string        `json:"id"`
	Prompt   string        `json:"prompt"`
	Messages []message     `json:"messages"`
	Meta     datasets.Meta `json:"meta"`
	Explain  bool          `json:"explain"`
	// promptGiven says the body had a prompt string, "" included: an
	// empty prompt is a request to route (OpenAI's legacy completions
	// take one, and the proxy routes it), a missing one is not. Set by
	// decodeRoute and decodeBatch, not by decoding.
	promptGiven bool
}

type batchRequest struct {
	Requests []routeRequest `json:"requests"`
}

// readItemBody reads the request body into it's pooled buffer (kept there
// for reuse either way); on failure it has written the error response and
// ok is false.
func (s *Server) readItemBody(c *gin.Context, it *logItem) (body []byte, ok bool) {
	body, err := readBody(c.Request, it.body, s.cfg.Limits.MaxBodyBytes)
	it.body = body
	if err != nil {
		writeError(c, s.log, err)
		return nil, false
	}
	return body, true
}

// readBody reads the request body into dst, up to limit bytes.
func readBody(r *http.Request, dst []byte, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return dst, tooLarge(r.ContentLength, limit)
	}
	if r.ContentLength > 0 && int64(cap(dst)) < r.ContentLength {
		dst = make([]byte, 0, r.ContentLength)
	}
	dst = dst[:0]
	body, err := reqbody.Open(r, limit)
	if err != nil {
		return dst, bodyReadError(err)
	}
	// Read one byte past the limit to tell "exactly the limit" from "more".
	lr := io.LimitedReader{R: body, N: limit + 1}
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := lr.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			break
		}
		if errors.As(err, new(*reqbody.TooLargeError)) {
			return dst, tooLarge(-1, limit)
		}
		if err != nil {
			return dst, bodyReadError(err)
		}
	}
	if int64(len(dst)) > limit {
		return dst, tooLarge(-1, limit)
	}
	return dst, nil
}

// bodyReadError words a failed body read for the client: 408 for a body
// that did not arrive in time, and never the error's own text, which names
// the connection's addresses.
func bodyReadError(err error) *Error {
	var ne net.Error
	var unsupported *reqbody.UnsupportedError
	var damaged *reqbody.DamagedError
	switch {
	case errors.As(err, &unsupported):
		return &Error{Code: CodeUnsupportedEncoding, Message: unsupported.Error(), Err: err}
	case errors.As(err, &damaged):
		return &Error{Code: CodeInvalidRequest, Message: damaged.Error(), Err: err}
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return &Error{Code: CodeRequestTimeout, Message: "the request body did not arrive within the server's read timeout (limits.read_timeout); send it faster, or in a smaller request", Err: err}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &Error{Code: CodeInvalidRequest, Message: "the request body ended before its Content-Length", Err: err}
	}
	return &Error{Code: CodeInvalidRequest, Message: "the request body could not be read (the connection broke, or a chunked body is malformed)", Err: err}
}

func tooLarge(n, limit int64) *Error {
	if n > 0 {
		return Errorf(CodeBodyTooLarge, "request body is %d bytes, the limit is %d (limits.max_body_bytes)", n, limit)
	}
	return Errorf(CodeBodyTooLarge, "request body is over the limit of %d bytes (limits.max_body_bytes)", limit)
}

// decodeStrict decodes one JSON object from body into v: valid UTF-8, no
// unknown fields, nothing after the object. Its errors are *Error with a
// message naming what is wrong.
func decodeStrict(body []byte, v any) error {
	if !utf8.Valid(body) {
		return Errorf(CodeInvalidUTF8, "request body is not valid UTF-8 (first bad byte at offset %d); send UTF-8 JSON", firstInvalidUTF8(body))
	}
	if string(bytes.TrimSpace(body)) == "null" {
		// encoding/json decodes null into a struct as nothing at all, which
		// would surface as a missing field instead of the real mistake.
		return Errorf(CodeInvalidRequest, "request body is JSON null, want an object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if rest := bytes.TrimSpace(body[dec.InputOffset():]); len(rest) > 0 {
		return Errorf(CodeInvalidJSON, "unexpected data after the JSON object at byte %d; send one object", dec.InputOffset())
	}
	return nil
}

func firstInvalidUTF8(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return -1
}

// jsonError turns encoding/json's errors into messages a client can act on.
func jsonError(err error) *Error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return Errorf(CodeInvalidJSON, "request body is empty; send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return Errorf(CodeInvalidJSON, "request body is truncated JSON")
	case errors.As(err, &se):
		return Errorf(CodeInvalidJSON, "malformed JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	case errors.As(err, &te):
		if te.Field == "" {
			return Errorf(CodeInvalidRequest, "request body is a JSON %s, want an object", te.Value)
		}
		if lit, ok := strings.CutPrefix(te.Value, "number "); ok {
			// A number of the right kind the field cannot hold.
			return Errorf(CodeInvalidRequest, "%s is %s, %s", te.Field, lit, datasets.NumberMisfit(te.Type))
		}
		want := jsonType(te.Type.Kind().String())
		if te.Type == datasets.ContentType {
			want = "a string or an array of content parts"
		}
		return Errorf(CodeInvalidRequest, "%s is a JSON %s, want %s", te.Field, te.Value, want)
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if f, ok := strings.CutPrefix(msg, "unknown field "); ok {
		// The name is the client's, of any length: repeated by its start.
		if name, err := strconv.Unquote(f); err == nil {
			f = echo.Quote(name)
		} else {
			f = echo.Bare(f)
		}
		return Errorf(CodeUnknownField, "unknown field %s: this server rejects fields it does not know; check the spelling (see docs/serving.md)", f)
	}
	// Errors from UnmarshalJSON methods (meta) name their field.
	return Errorf(CodeInvalidRequest, "%s", msg)
}

func jsonType(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "float64", "int", "int64":
		return "a number"
	case "bool":
		return "a boolean"
	case "slice":
		return "an array"
	case "map", "struct":
		return "an object"
	}
	return kind
}

// validate checks a decoded route request; at prefixes field names (for
// batch elements).
func (r *routeRequest) validate(at string, lim Limits) error {
	if r.ID != "" {
		if err := datasets.CheckKey(at+"id", r.ID); err != nil {
			return Errorf(CodeInvalidRequest, "%v; ids are 1 to %d printable characters", err, datasets.MaxIDBytes)
		}
	}
	if err := checkMeta(at, r.Meta, lim); err != nil {
		return err
	}
	return checkPrompt(at, r.Prompt, r.Messages, r.promptGiven, true, lim)
}

// checkMeta caps the meta keys of a route request, and of a feedback,
// whose meta is stored with the record it creates.
func checkMeta(at string, m datasets.Meta, lim Limits) error {
	if len(m) > lim.MaxMetaKeys {
		return Errorf(CodeInvalidRequest, "%smeta has %s, the limit is %d (limits.max_meta_keys); the router reads at most 64", at, plural.Count(len(m), "key"), lim.MaxMetaKeys)
	}
	return nil
}

// checkPrompt checks a prompt or messages; required says one must be set,
// and given that the prompt was sent (as "" or more).
func checkPrompt(at, prompt string, msgs []message, given, required bool, lim Limits) error {
	if prompt != "" && len(msgs) > 0 {
		return Errorf(CodeInvalidRequest, "%sprompt and %smessages are both set; send one of them", at, at)
	}
	if len(msgs) > lim.MaxMessages {
		return Errorf(CodeInvalidRequest, "%smessages has %s, the limit is %d (limits.max_messages)", at, plural.Count(len(msgs), "message"), lim.MaxMessages)
	}
	n := len(prompt)
	empty := prompt == ""
	for i, m := range msgs {
		if m.Role == "" {
			return Errorf(CodeInvalidRequest, "%smessages[%d].role is empty; want e.g. \"user\"", at, i)
		}
		n += len(m.Content)
		if m.Content != "" {
			empty = false
		}
	}
	if empty && required {
		switch {
		case given && msgs == nil:
			// "prompt": "" is a prompt, as in OpenAI's legacy completions
			// (required there, and valid empty) and in the proxy, which
			// routes it: it is routed on no text. It was refused as
			// empty, and a body without a prompt as "prompt is empty".
			return nil
		case len(msgs) > 0:
			return Errorf(CodeInvalidRequest, "%smessages have no content; send some text to route (image, audio and file parts carry none: the router routes on text)", at)
		case msgs != nil:
			// "messages": [] decodes to an empty slice, not nil: it was
			// refused as "prompt is empty", a field the client never sent.
			return Errorf(CodeInvalidRequest, "%smessages is an empty array; send at least one {\"role\": \"user\", \"content\": \"...\"}, or a prompt", at)
		}
		return Errorf(CodeInvalidRequest, "%sprompt is missing; send a prompt or messages", at)
	}
	if n > lim.MaxPromptBytes {
		return Errorf(CodePromptTooLarge, "%sprompt is %d bytes, the limit is %d (limits.max_prompt_bytes)", at, n, lim.MaxPromptBytes)
	}
	return nil
}

// decodeRoute decodes and validates a POST /v1/route body.
func decodeRoute(body []byte, lim Limits) (routeRequest, error) {
	var r routeRequest
	if !utf8.Valid(body) || !fastDecodeRoute(body, &r) {
		r = routeRequest{}
		if err := decodeStrict(body, &r); err != nil {
			return r, err
		}
	}
	r.promptGiven = r.Prompt != "" || r.Messages == nil && promptsGiven(body, false)[0]
	return r, r.validate("", lim)
}

// promptsGiven says, for a route body (or each request of a batch body),
// whether it holds a prompt string, "" included, which decoding into a
// string cannot tell from no prompt. Only an empty prompt needs it, so it
// decodes the body a second time only then. Keys match as encoding/json
// matches them (any case, the last of duplicates); null is no prompt.
func promptsGiven(body []byte, batch bool) []bool {
	type item struct {
		Prompt *string `json:"prompt"`
	}
	var items []item
	if batch {
		var b struct {
			Requests []item `json:"requests"`
		}
		json.Unmarshal(body, &b) // decoded before: it cannot fail now
		items = b.Requests
	} else {
		var it item
		json.Unmarshal(body, &it)
		items = []item{it}
	}
	given := make([]bool, len(items))
	for i, it := range items {
		given[i] = it.Prompt != nil
	}
	return given
}

// decodeBatch decodes and validates a POST /v1/route/batch body.
func decodeBatch(body []byte, lim Limits) (batchRequest, error) {
	var b batchRequest
	// The batch is counted before it is decoded: decoding first made a
	// body of limits.max_body_bytes holding some 70,000 tiny requests
	// allocate 27 MB (and 80 ms of CPU) only to be refused, and 64 such
	// posts at once took the server to 1.9 GB.
	if n, ok := batchLen(body); ok && n > lim.MaxBatch {
		return b, batchTooLarge(n, lim)
	}
	if err := decodeStrict(body, &b); err != nil {
		return b, err
	}
	if len(b.Requests) == 0 {
		return b, Errorf(CodeInvalidRequest, "requests is empty; send {\"requests\": [{\"prompt\": ...}, ...]}")
	}
	if len(b.Requests) > lim.MaxBatch {
		return b, batchTooLarge(len(b.Requests), lim)
	}
	var given []bool
	for i := range b.Requests {
		if r := &b.Requests[i]; r.Prompt == "" && r.Messages == nil {
			if given == nil {
				given = promptsGiven(body, true)
			}
			r.promptGiven = i < len(given) && given[i]
		}
	}
	seen := map[string]int{}
	for i := range b.Requests {
		r := &b.Requests[i]
		if err := r.validate(fmt.Sprintf("requests[%d].", i), lim); err != nil {
			return b, err
		}
		if r.ID == "" {
			continue
		}
		if j, dup := seen[r.ID]; dup {
			return b, Errorf(CodeInvalidRequest, "requests[%d].id and requests[%d].id are both %q; ids must be unique within a batch (one id, one prompt)", j, i, r.ID)
		}
		seen[r.ID] = i
	}
	return b, nil
}

func batchTooLarge(n int, lim Limits) error {
	return Errorf(CodeBatchTooLarge, "batch has %s, the limit is %d (limits.max_batch); split it", plural.Count(n, "request"), lim.MaxBatch)
}

// batchLen counts the elements of a batch body's "requests" array without
// decoding them: gjson walks the bytes and allocates nothing per element.
// The key is matched as encoding/json matches it (case-insensitively, the
// last of duplicates), so a body cannot hide its real array behind an
// empty one. It does not validate: ok is false when there is no such
// array, and for a batch within the limit the strict decode judges the
// body; one over the limit is refused for its size, whatever else is
// wrong with it.
func batchLen(body []byte) (n int, ok bool) {
	// A view of body, not a copy (gjson.ParseBytes copies it whole): it
	// is read here only, and nothing taken from it outlives the call.
	view := unsafe.String(unsafe.SliceData(body), len(body))
	gjson.Parse(view).ForEach(func(key, value gjson.Result) bool {
		if strings.EqualFold(key.String(), "requests") {
			n, ok = 0, value.IsArray()
			if ok {
				n = int(value.Get("#").Int())
			}
		}
		return true
	})
	return n, ok
}

func (r *routeRequest) input() features.Input {
	in := features.Input{Prompt: r.Prompt, Meta: r.Meta}
	if len(r.Messages) > 0 {
		in.Messages = make([]features.Turn, len(r.Messages))
		for i, m := range r.Messages {
			in.Messages[i] = features.Turn{Role: m.Role, Content: m.Content}
		}
	}
	return in
}

var outPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (s *Server) handleRoute(c *gin.Context) {
	it := getItem()
	body, ok := s.readItemBody(c, it)
	if !ok {
		putItem(it)
		return
	}
	req, err := decodeRoute(body, s.cfg.Limits)
	if err != nil {
		putItem(it)
		writeError(c, s.log, err)
		return
	}
	logged := body
	if km := proxy.ClientMeta(c.Request.Context()); km != nil {
		// The client key's meta is routed on and logged as if the
		// request had sent it.
		req.Meta = proxy.MergeMeta(req.Meta, km)
		logged, _ = json.Marshal(req.logged())
	}
	st := s.state.Load()
	if req.Explain && st.router == nil {
		putItem(it)
		writeError(c, s.log, errExplainNTier(st))
		return
	}
	tres := st.tr.Route(req.input())
	res := models.Result{PHard: tres.PHard, Decision: tres.Decision}
	now := s.now()
	id := req.ID
	// A client's id may have been routed before: with the same prompt it
	// is answered but not logged again, with another it is refused.
	logIt := true
	if id == "" {
		id = reqid.New(now)
	} else {
		fp := req.fingerprint()
		first, err := s.ids.claim("", id, fp)
		if err != nil {
			putItem(it)
			writeError(c, s.log, err)
			return
		}
		logIt, it.claimed, it.entry.Fingerprint = first, first, fp
	}
	if err := st.checkScores(tres); err != nil {
		if it.claimed {
			s.ids.release(id)
		}
		putItem(it)
		writeError(c, s.log, err)
		return
	}
	policy := res.Decision
	res, propensity, explored := s.decide(st, res)
	s.count(res)
	tier, race := st.tiersOf(tres, res.Decision)
	bp := outPool.Get().(*[]byte)
	out := appendDecision((*bp)[:0], id, res, tier, race, st)
	out = appendPredicted(out, tres.Predicted, st)
	if explored {
		out = append(out, `,"explored":true`...)
	}
	if req.Explain {
		out = appendExplain(out, st.router.Explain(req.input(), explainTop))
	}
	out = append(out, '}')
	c.Data(http.StatusOK, "application/json", out)
	*bp = out
	outPool.Put(bp)

	if !logIt {
		putItem(it)
		return
	}
	it.entry = datasets.LogEntry{ID: id, TS: now, Request: logged, Fingerprint: it.entry.Fingerprint,
		Decision: s.logged(st, tres, res, tier, race, propensity, explored, policy)}
	s.dlog.Enqueue(it)
}

func (s *Server) handleRouteBatch(c *gin.Context) {
	it := getItem()
	defer putItem(it)
	body, ok := s.readItemBody(c, it)
	if !ok {
		return
	}
	req, err := decodeBatch(body, s.cfg.Limits)
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	if km := proxy.ClientMeta(c.Request.Context()); km != nil {
		for i := range req.Requests {
			req.Requests[i].Meta = proxy.MergeMeta(req.Requests[i].Meta, km)
		}
	}
	// One state for the whole batch, so every decision in it comes from
	// the same model version even during a reload.
	st := s.state.Load()
	if st.router == nil {
		for i := range req.Requests {
			if req.Requests[i].Explain {
				writeError(c, s.log, errExplainNTier(st))
				return
			}
		}
	}
	now := s.now()
	out := append(make([]byte, 0, 256*len(req.Requests)), `{"decisions":[`...)
	logs := make([]*logItem, 0, len(req.Requests))
	// fail recycles the items claimed so far, ending their claims.
	fail := func(err error) {
		for _, l := range logs {
			if l.claimed {
				s.ids.release(l.entry.ID)
			}
			putItem(l)
		}
		writeError(c, s.log, err)
	}
	for i := range req.Requests {
		r := &req.Requests[i]
		l := getItem()
		logIt := true
		if r.ID != "" {
			fp := r.fingerprint()
			first, err := s.ids.claim(fmt.Sprintf("requests[%d].", i), r.ID, fp)
			if err != nil {
				putItem(l)
				fail(err)
				return
			}
			logIt, l.claimed, l.entry.ID, l.entry.Fingerprint = first, first, r.ID, fp
		}
		if logIt {
			logs = append(logs, l)
		} else {
			putItem(l)
			l = nil
		}
		tres := st.tr.Route(r.input())
		res := models.Result{PHard: tres.PHard, Decision: tres.Decision}
		if err := st.checkScores(tres); err != nil {
			fail(err)
			return
		}
		id := r.ID
		if id == "" {
			id = reqid.New(now)
		}
		policy := res.Decision
		res, propensity, explored := s.decide(st, res)
		s.count(res)
		tier, race := st.tiersOf(tres, res.Decision)
		if i > 0 {
			out = append(out, ',')
		}
		out = appendDecision(out, id, res, tier, race, st)
		out = appendPredicted(out, tres.Predicted, st)
		if explored {
			out = append(out, `,"explored":true`...)
		}
		if r.Explain {
			out = appendExplain(out, st.router.Explain(r.input(), explainTop))
		}
		out = append(out, '}')
		if l == nil {
			continue
		}
		l.body, _ = json.Marshal(r.logged())
		l.entry = datasets.LogEntry{ID: id, TS: now, Request: l.body, Fingerprint: l.entry.Fingerprint,
			Decision: s.logged(st, tres, res, tier, race, propensity, explored, policy)}
	}
	out = append(out, "]}"...)
	c.Data(http.StatusOK, "application/json", out)
	for _, l := range logs {
		s.dlog.Enqueue(l)
	}
}

// loggedRequest is what the decision log keeps of a batch element.
type loggedRequest struct {
	Prompt   *string       `json:"prompt,omitempty"`
	Messages []message     `json:"messages,omitempty"`
	Meta     datasets.Meta `json:"meta,omitempty"`
}

// logged is what the decision log keeps of r. An empty prompt keeps its
// key: the export reads a request without one as a request without text
// (one empty user message), not as a legacy completion's empty prompt.
func (r *routeRequest) logged() loggedRequest {
	l := loggedRequest{Messages: r.Messages, Meta: r.Meta}
	if r.Prompt != "" || r.promptGiven {
		l.Prompt = &r.Prompt
	}
	return l
}

func (s *Server) count(res models.Result) {
	switch res.Decision {
	case models.Fast:
		s.m.decFast.Inc()
	case models.Speculate:
		s.m.decSpeculate.Inc()
	case models.Escalate:
		s.m.decEscalate.Inc()
	}
	if !math.IsNaN(res.PHard) {
		s.m.pHard.Observe(res.PHard)
	}
}

// checkScores refuses a routing whose scores are not finite (a damaged
// model): p_hard for a two-tier model, the tiers' predicted scores for an
// N-tier one (whose p_hard is NaN: it has none).
func (st *state) checkScores(res models.TierResult) error {
	if st.router != nil && !finite(res.PHard) {
		return fmt.Errorf("model %s gave p_hard %v", st.art.Version, res.PHard)
	}
	for k, p := range res.Predicted {
		if !finite(p) {
			return fmt.Errorf("model %s predicted %v for tier %s", st.art.Version, p, st.tiers[k])
		}
	}
	return nil
}

// loggedPHard is p_hard as the decision log keeps it: 0 for an N-tier
// model, which has none (its record names the tier chosen).
func loggedPHard(p float64) float64 {
	if math.IsNaN(p) {
		return 0
	}
	return p
}

func errExplainNTier(st *state) error {
	return Errorf(CodeInvalidRequest, "explain is for two-tier models; model %s is an N-tier router (its answer carries each tier's predicted score)", st.art.Version)
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// appendDecision writes a route response without its closing brace: the
// decision, p_hard (null for an N-tier model, which has none), the tier
// chosen ("tier", by the model's name for it) and, in a speculation, the
// tier raced with it ("race"). The model's part is precomputed per state.
func appendDecision(b []byte, id string, res models.Result, tier, race int, st *state) []byte {
	b = append(b, `{"request_id":`...)
	b = appendString(b, id)
	b = append(b, `,"decision":`...)
	b = appendString(b, string(res.Decision))
	b = append(b, `,"p_hard":`...)
	if math.IsNaN(res.PHard) {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendFloat(b, res.PHard, 'g', -1, 64)
	}
	b = append(b, `,"tier":`...)
	b = appendString(b, st.tiers[tier])
	if race != proxy.NoRace {
		b = append(b, `,"race":`...)
		b = appendString(b, st.tiers[race])
	}
	return append(b, st.suffix...)
}

// appendPredicted adds an N-tier model's predicted score of each tier,
// {"name": score, ...} cheapest first; nothing for a two-tier model.
func appendPredicted(b []byte, pred []float64, st *state) []byte {
	if len(pred) == 0 {
		return b
	}
	b = append(b, `,"predicted":{`...)
	for k, p := range pred {
		if k > 0 {
			b = append(b, ',')
		}
		b = appendString(b, st.tiers[k])
		b = append(b, ':')
		b = strconv.AppendFloat(b, p, 'g', -1, 64)
	}
	return append(b, '}')
}

// tiersOf is the tier a request goes to and the one it races with (or
// proxy.NoRace), given the router's choice and the decision taken, which
// exploration may have turned into a speculation: that races the chosen
// tier with the next one up, or for the top tier the one below with it.
func (st *state) tiersOf(ch models.TierResult, taken models.Decision) (tier, race int) {
	if ch.Race < 0 {
		ch.Race = proxy.NoRace
	}
	if taken == ch.Decision || taken != models.Speculate || ch.Race != proxy.NoRace {
		return ch.Tier, ch.Race
	}
	other := proxy.ExplorePartner(ch.Tier, len(st.tiers))
	return min(ch.Tier, other), max(ch.Tier, other)
}

// logged is the decision log's record of a routed request: the router's
// choice ch, the result res taken (after exploration) with its
// propensity, the tiers it ran, and the policy's own decision. An
// N-tier model's record also names the tiers that ran, the tier the
// policy chose and each tier's probability of having run
// (proxy.TierFields); a two-tier one's is as it always was.
func (s *Server) logged(st *state, ch models.TierResult, res models.Result, tier, race int, propensity float64, explored bool, policy models.Decision) datasets.Decision {
	d := datasets.Decision{Kind: string(res.Decision), Tier: st.tiers[tier], PHard: loggedPHard(res.PHard), ModelVersion: st.art.Version,
		Propensity: propensity, Explored: explored, Policy: explorePolicy(policy, explored)}
	if st.art.IsMultiTier() {
		// ch.Race is -1 for no race, as proxy.NoRace is.
		proxy.TierFields(&d, st.tiers, tier, race, ch.Tier, ch.Race, s.explore.eps)
	}
	return d
}

// explorePolicy is what a decision record keeps of the policy's own
// decision: on an explored request, the one exploration replaced
// (datasets.Decision.Policy), which retrain cannot recover from p_hard
// once the thresholds have changed.
func explorePolicy(policy models.Decision, explored bool) string {
	if !explored {
		return ""
	}
	return string(policy)
}

func appendExplain(b []byte, cs []models.Contribution) []byte {
	if cs == nil {
		cs = []models.Contribution{}
	}
	j, err := json.Marshal(cs)
	if err != nil { // contributions are finite: weights are validated at load
		return b
	}
	b = append(b, `,"explain":`...)
	return append(b, j...)
}

// appendString appends s as a JSON string; ids and versions rarely need
// escaping, so the common case is a copy.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

package upstreamsim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/internal/echo"
)

// chatRequest is the part of an OpenAI chat completion request the
// simulator reads; other fields are accepted and ignored.
type chatRequest struct {
	Model         string        `json:"model"`
	Messages      []chatMessage `json:"messages"`
	Stream        bool          `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	Logprobs            bool `json:"logprobs"`
	MaxTokens           *int `json:"max_tokens"`
	MaxCompletionTokens *int `json:"max_completion_tokens"`
}

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// Wire types of the answer.
type completion struct {
	ID      string   `json:"id"`
	Object  string   `json:"object"`
	Created int64    `json:"created"`
	Model   string   `json:"model"`
	Choices []choice `json:"choices"`
	Usage   *usage   `json:"usage,omitempty"`
	// textLo and textHi are a chunk's tokens, for a text completion.
	textLo, textHi int
}

// textChoice and textLogprobs are a (legacy) completion's.
type textChoice struct {
	Text         string        `json:"text"`
	Index        int           `json:"index"`
	Logprobs     *textLogprobs `json:"logprobs"`
	FinishReason *string       `json:"finish_reason"`
}

type textLogprobs struct {
	Tokens        []string   `json:"tokens"`
	TokenLogprobs []float64  `json:"token_logprobs"`
	TopLogprobs   []struct{} `json:"top_logprobs"`
	TextOffset    []int      `json:"text_offset"`
}

// marshalText is a text completion (or chunk) of a's tokens lo:hi; a
// usage-only chunk has no choices.
func (s *Server) marshalText(a *answer, lo, hi int, withLogprobs bool, finish *string, u *usage, object string) []byte {
	v := struct {
		ID      string       `json:"id"`
		Object  string       `json:"object"`
		Created int64        `json:"created"`
		Model   string       `json:"model"`
		Choices []textChoice `json:"choices"`
		Usage   *usage       `json:"usage,omitempty"`
	}{ID: a.id, Object: object, Created: a.created, Model: s.opts.Model, Choices: []textChoice{}, Usage: u}
	if u == nil || finish != nil {
		ch := textChoice{Text: strings.Join(a.tokens[lo:hi], ""), FinishReason: finish}
		if withLogprobs {
			lp := &textLogprobs{Tokens: a.tokens[lo:hi], TokenLogprobs: a.logprobs[lo:hi], TopLogprobs: []struct{}{}}
			off := 0
			for _, t := range a.tokens[:lo] {
				off += len(t)
			}
			for _, t := range a.tokens[lo:hi] {
				lp.TextOffset = append(lp.TextOffset, off)
				off += len(t)
			}
			ch.Logprobs = lp
		}
		v.Choices = append(v.Choices, ch)
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic("upstreamsim: marshal text completion: " + err.Error())
	}
	return b
}

type choice struct {
	Index        int       `json:"index"`
	Message      *message  `json:"message,omitempty"`
	Delta        *delta    `json:"delta,omitempty"`
	Logprobs     *logprobs `json:"logprobs"`
	FinishReason *string   `json:"finish_reason"`
}

type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type delta struct {
	Role    string `json:"role,omitempty"`
	Content string `json:"content,omitempty"`
}

type logprobs struct {
	Content []tokenLogprob `json:"content"`
}

type tokenLogprob struct {
	Token       string     `json:"token"`
	Logprob     float64    `json:"logprob"`
	Bytes       []int      `json:"bytes"`
	TopLogprobs []struct{} `json:"top_logprobs"`
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

func tokenLogprobs(tokens []string, lp []float64) *logprobs {
	out := &logprobs{Content: make([]tokenLogprob, len(tokens))}
	for i, t := range tokens {
		b := make([]int, len(t))
		for j := 0; j < len(t); j++ {
			b[j] = int(t[j])
		}
		out.Content[i] = tokenLogprob{Token: t, Logprob: lp[i], Bytes: b, TopLogprobs: []struct{}{}}
	}
	return out
}

// answer is one request being answered.
type answer struct {
	e        *entry
	tokens   []string
	logprobs []float64
	finish   string
	usage    usage
	id       string
	created  int64
	// text answers a (legacy) completion: choices[].text.
	text bool
	// responses answers a Responses API request; store keeps it
	// (Server.stored).
	responses, store bool
}

// Request shapes handle reads.
const (
	kindChat = iota
	kindText
	kindResponses
)

func (s *Server) handleChat(w http.ResponseWriter, r *http.Request) { s.handle(w, r, kindChat) }

// handleCompletions answers POST /v1/completions (the legacy text API):
// the prompt is looked up like a chat's last user message, and the
// answer is in choices[].text with logprobs.token_logprobs.
func (s *Server) handleCompletions(w http.ResponseWriter, r *http.Request) { s.handle(w, r, kindText) }

// completionRequest is the part of a (legacy) completion request read.
type completionRequest struct {
	Prompt        json.RawMessage `json:"prompt"`
	Stream        bool            `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	Logprobs  *int `json:"logprobs"`
	MaxTokens *int `json:"max_tokens"`
}

// asChat is the completion request as a chat request with one user
// message holding the prompt (strings of an array joined by newlines).
func (c *completionRequest) asChat() (chatRequest, error) {
	var one string
	var many []string
	if json.Unmarshal(c.Prompt, &one) != nil {
		if json.Unmarshal(c.Prompt, &many) != nil {
			return chatRequest{}, errors.New("prompt is not a string or an array of strings")
		}
		one = strings.Join(many, "\n")
	}
	content, _ := json.Marshal(one)
	return chatRequest{Messages: []chatMessage{{Role: "user", Content: content}}, Stream: c.Stream, StreamOptions: c.StreamOptions,
		Logprobs: c.Logprobs != nil, MaxTokens: c.MaxTokens}, nil
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request, kind int) {
	text := kind == kindText
	start := time.Now()
	s.requests.Add(1)
	s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		s.failed.Add(1)
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			apiError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", "body_too_large", fmt.Sprintf("request body is over %d bytes", maxBodyBytes))
			return
		}
		apiError(w, http.StatusBadRequest, "invalid_request_error", "bad_body", "read request body: "+err.Error())
		return
	}
	var req chatRequest
	var rr responsesRequest
	switch kind {
	case kindText:
		var cr completionRequest
		err = json.Unmarshal(body, &cr)
		if err == nil {
			req, err = cr.asChat()
		}
	case kindResponses:
		err = json.Unmarshal(body, &rr)
		if err == nil {
			req, err = rr.asChat()
		}
	default:
		err = json.Unmarshal(body, &req)
	}
	if err != nil {
		s.failed.Add(1)
		apiError(w, http.StatusBadRequest, "invalid_request_error", "invalid_json", "request body is not a completion request: "+err.Error())
		return
	}
	if len(req.Messages) == 0 {
		s.failed.Add(1)
		// Name the field of the API the client called, not the chat
		// request every kind is converted to (a completion always has one).
		msg := "messages is empty; send at least one message"
		if kind == kindResponses {
			msg = "input holds no message; send the text, or at least one message item (the sim answers message items only)"
		}
		apiError(w, http.StatusBadRequest, "invalid_request_error", "invalid_request", msg)
		return
	}
	maxTok := req.MaxCompletionTokens
	if maxTok == nil {
		maxTok = req.MaxTokens
	}
	if maxTok != nil && *maxTok < 1 {
		s.failed.Add(1)
		apiError(w, http.StatusBadRequest, "invalid_request_error", "invalid_value", fmt.Sprintf("max_tokens is %d, want at least 1", *maxTok))
		return
	}
	texts := make([]string, len(req.Messages))
	lastUser := ""
	for i, m := range req.Messages {
		t, err := datasets.PartsText(m.Content, "text")
		if err != nil {
			s.failed.Add(1)
			apiError(w, http.StatusBadRequest, "invalid_request_error", "invalid_value", fmt.Sprintf("messages[%d]: %v", i, err))
			return
		}
		texts[i] = t
		if m.Role == "user" {
			lastUser = t
		}
	}
	if p := rr.PreviousResponseID; p != "" {
		if _, ok := s.stored.get(p); !ok {
			// OpenAI's answer, and any server's that did not store it.
			s.failed.Add(1)
			apiErrorParam(w, http.StatusNotFound, "invalid_request_error", "previous_response_not_found", "previous_response_id",
				fmt.Sprintf("Previous response with id '%s' not found.", echo.Bare(p)))
			return
		}
	}
	var fault *Fault
	if s.opts.Fault != nil {
		fault = s.opts.Fault(lastUser)
		if f := fault; f != nil {
			if f.Delay > 0 && !sleepCtx(r.Context(), f.Delay) {
				s.cancelledAfter(nil, start)
				return
			}
			for k, v := range f.Header {
				w.Header()[k] = v
			}
			if f.Status != 0 {
				s.failed.Add(1)
				apiError(w, f.Status, "sim_fault", "injected", f.Message)
				return
			}
		}
	}
	if s.fails(lastUser) {
		s.failed.Add(1)
		apiError(w, http.StatusServiceUnavailable, "server_error", "sim_unavailable", "the sim fails this prompt (fail share "+strconv.FormatFloat(s.opts.FailShare, 'g', -1, 64)+")")
		return
	}
	e, key := s.index[lastUser], lastUser
	if e == nil {
		joined := strings.Join(texts, "\n")
		e, key = s.index[joined], joined
	}
	if e == nil {
		e = s.def
		s.unknown.Add(1)
	}
	a := &answer{e: e, tokens: e.tokens, logprobs: e.logprobs, finish: "stop", text: text, responses: kind == kindResponses,
		id: "chatcmpl-sim-" + strconv.FormatUint(s.seq.Add(1), 10), created: s.now().Unix()}
	switch kind {
	case kindText:
		a.id = "cmpl-sim-" + strconv.FormatUint(s.seq.Load(), 10)
	case kindResponses:
		a.id = "resp_sim_" + s.idTag + "_" + strconv.FormatUint(s.seq.Load(), 10)
		a.store = rr.Store == nil || *rr.Store
	}
	if maxTok != nil && *maxTok < len(a.tokens) {
		a.tokens, a.logprobs, a.finish = a.tokens[:*maxTok], a.logprobs[:*maxTok], "length"
	}
	if e.inTok != nil {
		a.usage.PromptTokens = *e.inTok
	} else {
		for _, t := range texts {
			a.usage.PromptTokens += countTokens(t)
		}
	}
	a.usage.CompletionTokens = len(a.tokens)
	if e.outTok != nil && a.finish == "stop" {
		a.usage.CompletionTokens = *e.outTok
	}
	a.usage.TotalTokens = a.usage.PromptTokens + a.usage.CompletionTokens
	wait := s.wait(e, key)
	// OpenAI sends a request id with every answer; clients show it.
	w.Header().Set("X-Request-Id", "req_"+a.id)
	var ok bool
	cut := fault != nil && fault.CutStream
	switch {
	case a.responses && req.Stream:
		ok = s.streamResponse(w, r.Context(), a, wait, req.Logprobs, cut)
	case a.responses:
		ok = s.completeResponse(w, r.Context(), a, wait, req.Logprobs)
	case req.Stream:
		ok = s.stream(w, r.Context(), a, wait, req.Logprobs, req.StreamOptions != nil && req.StreamOptions.IncludeUsage, cut)
	default:
		ok = s.complete(w, r.Context(), a, wait, req.Logprobs)
	}
	if !ok {
		s.cancelledAfter(e, start)
		return
	}
	s.answered.Add(1)
}

func (s *Server) cancelledAfter(e *entry, start time.Time) {
	s.cancelled.Add(1)
	id := ""
	if e != nil {
		id = e.id
	}
	s.log.Info("request cancelled by the client", "model", s.opts.Model, "record", id,
		"after_ms", time.Since(start).Milliseconds(), "cancelled_total", s.cancelled.Load())
}

// sleepCtx waits d, or returns false when ctx ends first.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// complete writes a non-streamed answer after wait. It returns false when
// the client went away first.
func (s *Server) complete(w http.ResponseWriter, ctx context.Context, a *answer, wait time.Duration, withLogprobs bool) bool {
	if !sleepCtx(ctx, wait) {
		return false
	}
	var b []byte
	if a.text {
		b = s.marshalText(a, 0, len(a.tokens), withLogprobs, &a.finish, &a.usage, "text_completion")
	} else {
		b = s.appendCompletion(make([]byte, 0, 512), a, withLogprobs)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	if _, err := w.Write(b); err != nil {
		return false
	}
	return ctx.Err() == nil
}

// appendCompletion appends a's answer as JSON: what json.Marshal makes of
// a completion (marshalCompletion; TestAppendCompletionMatchesMarshal
// checks it), from the answer's choices encoded once per entry. Encoding
// the whole answer per request, logprobs and all, was most of the sim's
// own CPU, which shares the machine with the proxy it stands in for.
func (s *Server) appendCompletion(b []byte, a *answer, withLogprobs bool) []byte {
	if a.finish != "stop" || len(a.tokens) != len(a.e.tokens) {
		// A truncated answer: rare, encoded in full.
		return append(b, s.marshalCompletion(a, withLogprobs)...)
	}
	b = append(b, `{"id":"`...)
	b = append(b, a.id...)
	b = append(b, `","object":"chat.completion","created":`...)
	b = strconv.AppendInt(b, a.created, 10)
	b = append(b, `,"model":`...)
	b = append(b, s.modelJSON...)
	b = append(b, `,"choices":`...)
	b = append(b, a.e.choicesJSON(withLogprobs)...)
	b = append(b, `,"usage":{"prompt_tokens":`...)
	b = strconv.AppendInt(b, int64(a.usage.PromptTokens), 10)
	b = append(b, `,"completion_tokens":`...)
	b = strconv.AppendInt(b, int64(a.usage.CompletionTokens), 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, int64(a.usage.TotalTokens), 10)
	return append(b, "}}"...)
}

// marshalCompletion is a's answer encoded by encoding/json.
func (s *Server) marshalCompletion(a *answer, withLogprobs bool) []byte {
	c := completion{ID: a.id, Object: "chat.completion", Created: a.created, Model: s.opts.Model, Usage: &a.usage,
		Choices: answerChoices(a.tokens, a.logprobs, a.finish, withLogprobs)}
	b, err := json.Marshal(&c)
	if err != nil {
		panic("upstreamsim: marshal answer: " + err.Error())
	}
	return b
}

// answerChoices are the choices of a non-streamed answer.
func answerChoices(tokens []string, lp []float64, finish string, withLogprobs bool) []choice {
	ch := []choice{{Message: &message{Role: "assistant", Content: strings.Join(tokens, "")}, FinishReason: &finish}}
	if withLogprobs {
		ch[0].Logprobs = tokenLogprobs(tokens, lp)
	}
	return ch
}

// choicesJSON is the encoded choices of e's whole answer, with or
// without logprobs, made on first use.
func (e *entry) choicesJSON(withLogprobs bool) []byte {
	i := 0
	if withLogprobs {
		i = 1
	}
	if p := e.choices[i].Load(); p != nil {
		return *p
	}
	b, err := json.Marshal(answerChoices(e.tokens, e.logprobs, "stop", withLogprobs))
	if err != nil {
		panic("upstreamsim: marshal choices: " + err.Error())
	}
	e.choices[i].Store(&b)
	return b
}

// stream writes the answer as server-sent events: the first content after
// StreamTTFTShare of wait, the rest spread so the last lands at wait. It
// returns false when the client went away first.
// With cut it stops midway, at the wait for content chunk k/2 (the first
// of a one-chunk answer), and aborts the connection
// (http.ErrAbortHandler): the client sees the body end early.
func (s *Server) stream(w http.ResponseWriter, ctx context.Context, a *answer, wait time.Duration, withLogprobs, withUsage, cut bool) bool {
	p, ok := s.startStream(w, ctx, a, wait, cut)
	if !ok {
		return false
	}
	rc, k := p.rc, p.k
	chunk := completion{ID: a.id, Object: "chat.completion.chunk", Created: a.created, Model: s.opts.Model}
	write := func(b []byte) bool {
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return false
		}
		return rc.Flush() == nil && ctx.Err() == nil
	}
	send := func(c *completion) bool {
		b, err := json.Marshal(c)
		if err != nil {
			panic("upstreamsim: marshal chunk: " + err.Error())
		}
		return write(b)
	}
	if a.text {
		// A text completion's chunks: no role chunk, text in choices.
		send = func(c *completion) bool {
			if c.Usage != nil {
				return write(s.marshalText(a, 0, 0, false, nil, c.Usage, "text_completion"))
			}
			ch := c.Choices[0]
			lo, hi := 0, 0
			if ch.Delta != nil && ch.Delta.Content != "" {
				lo, hi = c.textLo, c.textHi
			}
			return write(s.marshalText(a, lo, hi, ch.Logprobs != nil, ch.FinishReason, nil, "text_completion"))
		}
	} else {
		chunk.Choices = []choice{{Delta: &delta{Role: "assistant"}}}
		if !send(&chunk) {
			return false
		}
	}
	for j := 0; j < k; j++ {
		lo, hi, ok := p.chunk(j)
		if !ok {
			return false
		}
		ch := choice{Delta: &delta{Content: strings.Join(a.tokens[lo:hi], "")}}
		if withLogprobs {
			ch.Logprobs = tokenLogprobs(a.tokens[lo:hi], a.logprobs[lo:hi])
		}
		chunk.Choices = []choice{ch}
		chunk.textLo, chunk.textHi = lo, hi
		if !send(&chunk) {
			return false
		}
	}
	if !p.end() {
		return false
	}
	finish := a.finish
	chunk.Choices = []choice{{Delta: &delta{}, FinishReason: &finish}}
	if !send(&chunk) {
		return false
	}
	if withUsage {
		chunk.Choices = []choice{}
		chunk.Usage = &a.usage
		if !send(&chunk) {
			return false
		}
	}
	if _, err := io.WriteString(w, "data: [DONE]\n\n"); err != nil {
		return false
	}
	return rc.Flush() == nil
}

// pacer times a stream: the headers and first content after
// StreamTTFTShare of wait, content chunk j at its share of the rest, the
// end at wait. chat's and the Responses API's streams share it.
type pacer struct {
	ctx        context.Context
	s          *Server
	rc         *http.ResponseController
	start      time.Time
	wait, ttft time.Duration
	k, tokens  int
	cut        bool
}

// startStream waits out the time to first token, then writes the event
// stream's headers. It returns false when the client went away first.
func (s *Server) startStream(w http.ResponseWriter, ctx context.Context, a *answer, wait time.Duration, cut bool) (*pacer, bool) {
	p := &pacer{ctx: ctx, s: s, rc: http.NewResponseController(w), start: time.Now(), wait: wait,
		ttft: time.Duration(float64(wait) * StreamTTFTShare), k: min(s.opts.StreamChunks, len(a.tokens)), tokens: len(a.tokens), cut: cut}
	if !sleepCtx(ctx, p.ttft) {
		return nil, false
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	return p, true
}

// chunk waits until content chunk j (of k) is due and returns the tokens
// it carries, a[lo:hi]; false when the client went away first. With cut
// it aborts the connection (http.ErrAbortHandler) at chunk k/2, midway
// and after the wait up to it, so the client has had time to relay what
// came before.
func (p *pacer) chunk(j int) (lo, hi int, ok bool) {
	if j > 0 {
		at := p.ttft + time.Duration(float64(p.wait-p.ttft)*float64(j)/float64(p.k))
		if !sleepCtx(p.ctx, at-time.Since(p.start)) {
			return 0, 0, false
		}
	}
	if p.cut && j == p.k/2 {
		p.s.failed.Add(1)
		panic(http.ErrAbortHandler)
	}
	return j * p.tokens / p.k, (j + 1) * p.tokens / p.k, true
}

// end waits until the whole wait has passed since the request came.
func (p *pacer) end() bool { return sleepCtx(p.ctx, p.wait-time.Since(p.start)) }

package upstreamsim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/triage-router/triage/datasets"
)

// handleResponses answers POST /v1/responses (OpenAI's Responses API):
// the last user message of the input (or the input string) is looked up
// like a chat's, and the answer is one message item with one output_text
// part, log-probabilities when "include" asks for
// message.output_text.logprobs; a stream is the API's typed events, from
// response.created to response.completed.
func (s *Server) handleResponses(w http.ResponseWriter, r *http.Request) {
	s.handle(w, r, kindResponses)
}

// responsesRequest is the part of a Responses API request the simulator
// reads.
type responsesRequest struct {
	Instructions    string          `json:"instructions"`
	Input           json.RawMessage `json:"input"`
	Stream          bool            `json:"stream"`
	Include         []string        `json:"include"`
	MaxOutputTokens *int            `json:"max_output_tokens"`
	// PreviousResponseID continues a stored response: one the server did
	// not store is a 404. Store false keeps the answer out of it.
	PreviousResponseID string `json:"previous_response_id"`
	Store              *bool  `json:"store"`
}

// asChat is the request as a chat request: instructions as a system
// message, then the input's messages (a string is one user message);
// input_text and output_text parts are the content's text.
func (rr *responsesRequest) asChat() (chatRequest, error) {
	req := chatRequest{Stream: rr.Stream, MaxTokens: rr.MaxOutputTokens}
	for _, inc := range rr.Include {
		req.Logprobs = req.Logprobs || inc == "message.output_text.logprobs"
	}
	add := func(role, text string) {
		c, _ := json.Marshal(text)
		req.Messages = append(req.Messages, chatMessage{Role: role, Content: c})
	}
	if rr.Instructions != "" {
		add("system", rr.Instructions)
	}
	var one string
	var items []struct {
		Type    string          `json:"type"`
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	switch {
	case json.Unmarshal(rr.Input, &one) == nil:
		add("user", one)
	case json.Unmarshal(rr.Input, &items) == nil:
		for _, it := range items {
			if it.Role == "" || (it.Type != "" && it.Type != "message") {
				continue
			}
			text, err := datasets.PartsText(it.Content, "input_text", "output_text")
			if err != nil {
				return req, fmt.Errorf("input item content: %w", err)
			}
			add(it.Role, text)
		}
	default:
		return req, errors.New("input is not a string or an array of input items")
	}
	return req, nil
}

// Wire types of a Responses API answer.
type respObject struct {
	ID        string       `json:"id"`
	Object    string       `json:"object"`
	CreatedAt int64        `json:"created_at"`
	Status    string       `json:"status"`
	Model     string       `json:"model"`
	Output    []respItem   `json:"output"`
	Usage     *respUsage   `json:"usage"`
	Error     *struct{}    `json:"error"`
	Tools     []struct{}   `json:"tools"`
	Text      respTextConf `json:"text"`
}

type respTextConf struct {
	Format struct {
		Type string `json:"type"`
	} `json:"format"`
}

type respItem struct {
	Type    string     `json:"type"`
	ID      string     `json:"id"`
	Status  string     `json:"status"`
	Role    string     `json:"role"`
	Content []respPart `json:"content"`
}

type respPart struct {
	Type        string         `json:"type"`
	Text        string         `json:"text"`
	Annotations []struct{}     `json:"annotations"`
	Logprobs    []tokenLogprob `json:"logprobs"`
}

type respUsage struct {
	InputTokens        int `json:"input_tokens"`
	InputTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	OutputTokens        int `json:"output_tokens"`
	OutputTokensDetails struct {
		ReasoningTokens int `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	TotalTokens int `json:"total_tokens"`
}

// respLogprobs are tokens' log-probabilities in the Responses API's
// shape (the chat API's per-token objects), empty without withLogprobs.
func respLogprobs(tokens []string, lp []float64, withLogprobs bool) []tokenLogprob {
	if !withLogprobs {
		return []tokenLogprob{}
	}
	return tokenLogprobs(tokens, lp).Content
}

// response is a's answer as a Responses API object; done false is the
// in-progress response a stream starts with.
func (s *Server) response(a *answer, withLogprobs, done bool) *respObject {
	o := &respObject{ID: a.id, Object: "response", CreatedAt: a.created, Status: "in_progress", Model: s.opts.Model,
		Output: []respItem{}, Tools: []struct{}{}}
	o.Text.Format.Type = "text"
	if !done {
		return o
	}
	o.Status = "completed"
	if a.finish == "length" {
		o.Status = "incomplete"
	}
	o.Output = []respItem{s.respMessage(a, withLogprobs, true)}
	u := &respUsage{InputTokens: a.usage.PromptTokens, OutputTokens: a.usage.CompletionTokens, TotalTokens: a.usage.TotalTokens}
	o.Usage = u
	return o
}

// respMessage is a's answer as an output message item.
func (s *Server) respMessage(a *answer, withLogprobs, done bool) respItem {
	it := respItem{Type: "message", ID: "msg_" + a.id, Status: "in_progress", Role: "assistant", Content: []respPart{}}
	if done {
		it.Status = "completed"
		it.Content = []respPart{{Type: "output_text", Text: strings.Join(a.tokens, ""), Annotations: []struct{}{},
			Logprobs: respLogprobs(a.tokens, a.logprobs, withLogprobs)}}
	}
	return it
}

// completeResponse writes a non-streamed Responses API answer after
// wait. It returns false when the client went away first.
func (s *Server) completeResponse(w http.ResponseWriter, ctx context.Context, a *answer, wait time.Duration, withLogprobs bool) bool {
	if !sleepCtx(ctx, wait) {
		return false
	}
	o := s.response(a, withLogprobs, true)
	if a.store {
		// Before the client has the id, which it may send back at once.
		s.stored.keep(a.id, o)
	}
	b, err := json.Marshal(o)
	if err != nil {
		panic("upstreamsim: marshal response: " + err.Error())
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	if _, err := w.Write(b); err != nil {
		return false
	}
	return ctx.Err() == nil
}

// streamResponse writes a Responses API stream: response.created,
// response.in_progress, the output item and its part added, the text in
// StreamChunks response.output_text.delta events timed as stream's
// chunks, the done events and response.completed (no [DONE]: the API
// has none). With cut it aborts the connection midway, as stream does.
func (s *Server) streamResponse(w http.ResponseWriter, ctx context.Context, a *answer, wait time.Duration, withLogprobs, cut bool) bool {
	p, ok := s.startStream(w, ctx, a, wait, cut)
	if !ok {
		return false
	}
	rc, k := p.rc, p.k
	seq := 0
	send := func(typ string, fields map[string]any) bool {
		fields["type"] = typ
		fields["sequence_number"] = seq
		seq++
		b, err := json.Marshal(fields)
		if err != nil {
			panic("upstreamsim: marshal event: " + err.Error())
		}
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", typ, b); err != nil {
			return false
		}
		return rc.Flush() == nil && ctx.Err() == nil
	}
	itemID := "msg_" + a.id
	part := func(text string, lo, hi int) respPart {
		return respPart{Type: "output_text", Text: text, Annotations: []struct{}{}, Logprobs: respLogprobs(a.tokens[lo:hi], a.logprobs[lo:hi], withLogprobs)}
	}
	loc := func(m map[string]any) map[string]any {
		m["item_id"], m["output_index"], m["content_index"] = itemID, 0, 0
		return m
	}
	if a.store {
		s.stored.keep(a.id, s.response(a, withLogprobs, false))
	}
	if !send("response.created", map[string]any{"response": s.response(a, withLogprobs, false)}) ||
		!send("response.in_progress", map[string]any{"response": s.response(a, withLogprobs, false)}) ||
		!send("response.output_item.added", map[string]any{"output_index": 0, "item": s.respMessage(a, withLogprobs, false)}) ||
		!send("response.content_part.added", loc(map[string]any{"part": part("", 0, 0)})) {
		return false
	}
	for j := 0; j < k; j++ {
		lo, hi, ok := p.chunk(j)
		if !ok {
			return false
		}
		if !send("response.output_text.delta", loc(map[string]any{"delta": strings.Join(a.tokens[lo:hi], ""),
			"logprobs": respLogprobs(a.tokens[lo:hi], a.logprobs[lo:hi], withLogprobs)})) {
			return false
		}
	}
	if !p.end() {
		return false
	}
	text := strings.Join(a.tokens, "")
	final := s.response(a, withLogprobs, true)
	last := "response.completed"
	if final.Status == "incomplete" {
		last = "response.incomplete"
	}
	if a.store {
		s.stored.keep(a.id, final)
	}
	return send("response.output_text.done", loc(map[string]any{"text": text, "logprobs": respLogprobs(a.tokens, a.logprobs, withLogprobs)})) &&
		send("response.content_part.done", loc(map[string]any{"part": part(text, 0, len(a.tokens))})) &&
		send("response.output_item.done", map[string]any{"output_index": 0, "item": s.respMessage(a, withLogprobs, true)}) &&
		send(last, map[string]any{"response": final})
}

package proxy

import (
	"bytes"
	"encoding/json"
	"net/http"
)

// ServeResponses proxies one Responses API request (POST /v1/responses),
// routed on its instructions and input like a chat completion on its
// messages. The tiers must serve /responses themselves (OpenAI, vLLM);
// the proxy does not translate to chat completions. A speculation's fast
// call asks for the output text's log-probabilities with "include" and
// hides them from a client that did not ask.
func (h *Handler) ServeResponses(w http.ResponseWriter, r *http.Request) {
	h.serveAPI(w, r, apiResponses)
}

// responseObject is the part of a Responses API answer (or of the
// response a stream's last event carries) the proxy reads.
type responseObject struct {
	// ID is the response's id, which a follow-up names as its
	// previous_response_id.
	ID     string `json:"id"`
	Output []struct {
		Type    string `json:"type"`
		Content []struct {
			Type     string `json:"type"`
			Text     string `json:"text"`
			Logprobs []struct {
				Logprob float64 `json:"logprob"`
			} `json:"logprobs"`
		} `json:"content"`
	} `json:"output"`
	Usage *struct {
		InputTokens  int `json:"input_tokens"`
		OutputTokens int `json:"output_tokens"`
	} `json:"usage"`
}

// takeUsage keeps a Responses API usage as the call's.
func (c *call) takeUsage(r *responseObject) {
	if r.Usage != nil {
		c.usage = &usage{PromptTokens: r.Usage.InputTokens, CompletionTokens: r.Usage.OutputTokens}
	}
}

// parseResponse reads a plain Responses API answer: the text and
// log-probabilities of its output_text parts, and its usage.
func (c *call) parseResponse() {
	// The read is of the answer as sent, whose logprobs are the
	// confidence; the strip does not depend on the read succeeding.
	var r responseObject
	err := json.Unmarshal(c.body, &r)
	if c.stripLogprobs {
		c.body = blankedLogprobs(c.body, err == nil)
	}
	if err != nil {
		return
	}
	c.respID = r.ID
	for _, o := range r.Output {
		if o.Type != "message" {
			continue
		}
		for _, p := range o.Content {
			if p.Type != "output_text" {
				continue
			}
			c.text.WriteString(p.Text)
			for _, l := range p.Logprobs {
				c.lpSum += l.Logprob
				c.lpN++
			}
		}
	}
	c.takeUsage(&r)
}

// responseEvent reads one event of a Responses API stream: text and
// log-probabilities from response.output_text.delta (the done events
// repeat them), usage from the terminal response.completed or
// response.incomplete. end is true for a terminal event (those two,
// response.failed and error): such a stream has no "data: [DONE]". out
// is the event as the client sees it.
func (c *call) responseEvent(raw, data []byte) (out []byte, end bool) {
	var ev struct {
		Type     string `json:"type"`
		Delta    string `json:"delta"`
		Logprobs []struct {
			Logprob float64 `json:"logprob"`
		} `json:"logprobs"`
		Response *responseObject `json:"response"`
	}
	err := json.Unmarshal(data, &ev)
	out = raw
	if c.stripLogprobs {
		if b := blankedLogprobs(data, err == nil); !bytes.Equal(b, data) {
			out = withData(raw, b)
		}
	}
	if err != nil {
		return out, false
	}
	if ev.Response != nil && ev.Response.ID != "" {
		// response.created carries it first; the terminal event again.
		c.streamID = ev.Response.ID
	}
	switch ev.Type {
	case "response.output_text.delta":
		c.text.WriteString(ev.Delta)
		for _, l := range ev.Logprobs {
			c.lpSum += l.Logprob
			c.lpN++
		}
	case "response.completed", "response.incomplete":
		end = true
		if ev.Response != nil {
			c.takeUsage(ev.Response)
		}
	case "response.failed", "error":
		end = true
		c.failedEnd = true
	}
	return out, end
}

// withData is the event raw with its data replaced by data: its other
// lines (event:, id:, comments) kept in place, its data lines replaced at
// the first by one "data: " line per line of data. An event whose data
// came in several lines has no one span of raw to splice (the lines were
// joined with "\n" without their "data:" prefixes), which is why the
// lines are rebuilt rather than the data found in raw.
func withData(raw, data []byte) []byte {
	out := make([]byte, 0, len(raw)+8)
	wrote := false
	for rest := raw; len(rest) > 0; {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i+1], rest[i+1:]
		} else {
			rest = nil
		}
		if !bytes.HasPrefix(line, []byte("data:")) {
			out = append(out, line...)
			continue
		}
		if !wrote {
			for _, l := range bytes.Split(data, []byte("\n")) {
				out = append(append(append(out, "data: "...), l...), '\n')
			}
			wrote = true
		}
	}
	return out
}

// blankedLogprobs is b with every logprobs array emptied (blankLogprobs),
// or b as it is where it is not valid JSON. It does not depend on b
// having decoded into the reader's fields: an answer or event with a field
// of an unexpected type must not show a client who did not ask the
// logprobs the proxy asked for either. decoded says encoding/json decoded
// b, which makes it valid JSON; otherwise it is checked here, since
// blankLogprobs walks only valid JSON (on anything else its walk need not
// end).
func blankedLogprobs(b []byte, decoded bool) []byte {
	if !decoded && !validJSON(b) {
		return b
	}
	if nb, ok := blankLogprobs(b); ok {
		return nb
	}
	return b
}

// blankLogprobs sets every "logprobs" array in b, at any depth, to [],
// keeping the rest as it is: what hides the log-probabilities the proxy
// asked for from a Responses API client that did not. b must be valid
// JSON; ok is false when it is not an object.
func blankLogprobs(b []byte) ([]byte, bool) {
	var spans [][2]int
	var walk func(i int) bool
	walk = func(i int) bool {
		i = skipWS(b, i)
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case '{':
			ms, ok := members(nil, b, i)
			if !ok {
				return false
			}
			for _, m := range ms {
				v := skipWS(b, m.val)
				if m.is("logprobs") && v < len(b) && b[v] == '[' {
					spans = append(spans, [2]int{m.val, m.end})
					continue
				}
				if !walk(m.val) {
					return false
				}
			}
		case '[':
			for i = skipWS(b, i+1); i < len(b) && b[i] != ']'; {
				if !walk(i) {
					return false
				}
				e := valueEnd(b, i)
				if e < 0 {
					return false
				}
				if i = skipWS(b, e); i < len(b) && b[i] == ',' {
					i = skipWS(b, i+1)
				}
			}
		}
		return true
	}
	if i := skipWS(b, 0); i >= len(b) || b[i] != '{' || !walk(i) {
		return nil, false
	}
	out := make([]byte, 0, len(b))
	at := 0
	for _, sp := range spans {
		out = append(append(out, b[at:sp[0]]...), "[]"...)
		at = sp[1]
	}
	return append(out, b[at:]...), true
}

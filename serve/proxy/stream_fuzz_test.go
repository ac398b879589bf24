package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"
)

// FuzzReadEvents feeds arbitrary upstream streams to the server-sent-event
// reader, for each API shape, with and without the rewriting the proxy does
// when it asked for logprobs or usage the client did not. It must never
// panic; a stream it does not rewrite reaches the client byte for byte
// (every event, comments and blank lines included, in order); and a stream
// that ends cleanly (no error) is one whose end arrived.
func FuzzReadEvents(f *testing.F) {
	for _, s := range []string{
		"data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"logprobs\":{\"content\":[{\"token\":\"Hi\",\"logprob\":-0.1,\"bytes\":[72,105],\"top_logprobs\":[]}]}}],\"usage\":null}\n\n" +
			"data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1,\"total_tokens\":4}}\n\ndata: [DONE]\n\n",
		": keep-alive\r\n\r\ndata: {\"choices\":[{\"text\":\"a\",\"logprobs\":{\"token_logprobs\":[-0.5]}}]}\r\n\r\ndata: [DONE]\r\n\r\n",
		"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"x\",\"logprobs\":[{\"logprob\":-0.2}]}\n\n" +
			"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":2,\"output_tokens\":1}}}\n\n",
		// A Responses event whose data spans two lines, and one whose
		// type the reader cannot read: the logprobs of both reached a
		// client who had not asked for them (the splice looked for the
		// joined data in the raw event; the strip came after the read).
		"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\ndata: \"delta\":\"x\",\"logprobs\":[{\"logprob\":-0.2}]}\n\n",
		"data: {\"type\":7,\"logprobs\":[{\"logprob\":-0.2}]}\n\n",
		// A chat chunk the reader cannot decode (usage's tokens as a
		// string) passed on whole, logprobs and all.
		"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},\"logprobs\":{\"content\":[{\"token\":\"a\",\"logprob\":-0.3}]}}],\"usage\":{\"prompt_tokens\":\"x\"}}\n\ndata: [DONE]\n\n",
		"data: {\"choices\":[{\"delta\":{\"content\":\"cut\"}}]}\n\n",
		"data: a\ndata: b\n\n",
		"",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, b []byte, rewrite bool) {
		for _, a := range []*api{apiChat, apiCompletions, apiResponses} {
			c := &call{t: &tier{timeout: time.Minute}, api: a, stream: true, stripLogprobs: rewrite, stripUsage: rewrite,
				maxBytes: 1 << 20, ready: make(chan struct{}), done: make(chan struct{}), notify: make(chan struct{}, 1)}
			timer := time.NewTimer(time.Minute)
			err := c.readEvents(bytes.NewReader(b), timer)
			timer.Stop()
			if errors.Is(err, errTooLarge) {
				continue
			}
			if !rewrite {
				if got := bytes.Join(c.events, nil); !bytes.Equal(got, b) {
					t.Fatalf("%s: the client would see %q of the stream %q", a.path, got, b)
				}
			}
			if rewrite {
				leaked := leakedLogprobs
				if a == apiResponses {
					leaked = leakedResponseLogprobs
				}
				for _, ev := range c.events {
					if d := leaked(ev); d != "" {
						t.Fatalf("%s: the client, who asked for no logprobs, would see them in %q (stream %q)", a.path, d, b)
					}
				}
			}
			if err == nil && !c.sawDone {
				t.Fatalf("%s: the stream %q ended without its end, yet without an error", a.path, b)
			}
		}
	})
}

// sseData is an event's data as the SSE spec and a client read it: the
// data lines joined with "\n", one leading space of each dropped.
func sseData(ev []byte) []byte {
	var data [][]byte
	for _, line := range bytes.Split(ev, []byte("\n")) {
		if d, ok := bytes.CutPrefix(bytes.TrimRight(line, "\r"), []byte("data:")); ok {
			data = append(data, bytes.TrimPrefix(d, []byte(" ")))
		}
	}
	return bytes.Join(data, []byte("\n"))
}

// leakedResponseLogprobs returns the data of a Responses API event that
// has, at any depth, a "logprobs" array that is not empty, or "".
func leakedResponseLogprobs(ev []byte) string {
	d := sseData(ev)
	if !json.Valid(d) { // a client's parser refuses it whole
		return ""
	}
	dec := json.NewDecoder(bytes.NewReader(d))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return ""
	}
	var walk func(v any) bool
	walk = func(v any) bool {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if a, ok := e.([]any); ok && k == "logprobs" && len(a) > 0 {
					return true
				}
				if walk(e) {
					return true
				}
			}
		case []any:
			for _, e := range x {
				if walk(e) {
					return true
				}
			}
		}
		return false
	}
	if m, ok := v.(map[string]any); ok && walk(m) {
		return string(d)
	}
	return ""
}

// leakedLogprobs returns the data of an event whose JSON has a choice with
// logprobs that are not null, or "" if there is none.
func leakedLogprobs(ev []byte) string {
	d := sseData(ev)
	// Keys as JSON has them, case and all (a client in JavaScript or
	// Python sees "Choices" as another key; encoding/json's folding of
	// field names is its own), as FuzzWithoutLogprobs' oracle reads them.
	var top map[string]json.RawMessage
	var choices []map[string]json.RawMessage
	if json.Unmarshal(d, &top) != nil || json.Unmarshal(top["choices"], &choices) != nil {
		return ""
	}
	for _, ch := range choices {
		if lp, ok := ch["logprobs"]; ok && string(lp) != "null" {
			return string(d)
		}
	}
	return ""
}

// endless is a reader of "data: " and then 'a' for ever, counting what
// it hands out.
type endless struct{ read int64 }

func (e *endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
		if e.read+int64(i) < 6 {
			p[i] = "data: "[e.read+int64(i)]
		}
	}
	e.read += int64(len(p))
	return len(p), nil
}

// A stream line with no end used to be read into memory whole before
// max_response_bytes was checked (256 MiB read and 1.5 GB allocated
// against a 1 MiB limit); the limit now holds inside the line.
func TestReadEventsBoundsALineWithNoEnd(t *testing.T) {
	const limit = 1 << 20
	c := &call{t: &tier{timeout: time.Minute}, api: apiChat, stream: true,
		maxBytes: limit, ready: make(chan struct{}), done: make(chan struct{}), notify: make(chan struct{}, 1)}
	timer := time.NewTimer(time.Minute)
	defer timer.Stop()
	r := &endless{}
	if err := c.readEvents(r, timer); !errors.Is(err, errTooLarge) {
		t.Fatalf("readEvents = %v, want %v", err, errTooLarge)
	}
	// One buffer (16 KiB) of slack past the limit, no more.
	if r.read > limit+64<<10 {
		t.Errorf("read %d bytes of a line with no end against a limit of %d", r.read, limit)
	}
}

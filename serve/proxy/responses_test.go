package proxy

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/triage-router/triage/datasets"
)

func TestParseResponsesRequest(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       []datasets.Message
		logprobs   bool
		errParam   string
	}{
		{name: "a string input is one user message",
			body: `{"model":"triage","input":"hi"}`, want: []datasets.Message{{Role: "user", Content: "hi"}}},
		{name: "instructions come first, as a system message",
			body: `{"model":"triage","instructions":"be brief","input":[{"role":"user","content":"hi"}]}`,
			want: []datasets.Message{{Role: "system", Content: "be brief"}, {Role: "user", Content: "hi"}}},
		{name: "text parts are joined, images and other items are not routed on",
			body: `{"input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"a"},{"type":"input_image","image_url":"x"},{"type":"input_text","text":"b"}]},{"type":"function_call_output","call_id":"c","output":"42"}],"include":["message.output_text.logprobs"]}`,
			want: []datasets.Message{{Role: "user", Content: "a\nb"}}, logprobs: true},
		{name: "a missing input is refused", body: `{"model":"triage"}`, errParam: "input"},
		{name: "a number input is refused", body: `{"input":3}`, errParam: "input"},
		{name: "content of the wrong type is refused", body: `{"input":[{"role":"user","content":7}]}`, errParam: "input[0].content"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := parseRequest([]byte(tc.body), apiResponses, caps{})
			if tc.errParam != "" {
				e, ok := err.(*apiError)
				if !ok || e.param != tc.errParam {
					t.Fatalf("err = %v, want an apiError about %s", err, tc.errParam)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(req.messages) != len(tc.want) {
				t.Fatalf("messages %+v, want %+v", req.messages, tc.want)
			}
			for i := range tc.want {
				if req.messages[i] != tc.want[i] || req.input.Messages[i].Content != tc.want[i].Content {
					t.Errorf("message %d: %+v, want %+v", i, req.messages[i], tc.want[i])
				}
			}
			if req.logprobs != tc.logprobs {
				t.Errorf("logprobs %v, want %v", req.logprobs, tc.logprobs)
			}
		})
	}
}

func TestResponsesUpstreamBodyAsksLogprobsInInclude(t *testing.T) {
	req, err := parseRequest([]byte(`{"model":"triage","input":"hi","include":["reasoning.encrypted_content"],"stream":true}`), apiResponses, caps{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := req.upstreamBody("m", true)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"model":"m","input":"hi","include":["reasoning.encrypted_content","message.output_text.logprobs"],"stream":true}`
	if string(got) != want {
		t.Errorf("got  %s\nwant %s (no stream_options: a response's usage is in response.completed)", got, want)
	}
}

func TestBlankLogprobs(t *testing.T) {
	in := `{"output":[{"content":[{"type":"output_text","text":"a","logprobs":[{"token":"a","logprob":-0.1,"top_logprobs":[]}]}]}],"logprobs":null,"x":{"logprobs":[1]}}`
	want := `{"output":[{"content":[{"type":"output_text","text":"a","logprobs":[]}]}],"logprobs":null,"x":{"logprobs":[]}}`
	got, ok := blankLogprobs([]byte(in))
	if !ok || string(got) != want {
		t.Errorf("got %s, %v\nwant %s", got, ok, want)
	}
	if _, ok := blankLogprobs([]byte(`[1]`)); ok {
		t.Error("an array is not an answer: want !ok")
	}
	if strings.Contains(want, `"logprob"`) {
		t.Fatal("bad fixture")
	}
}

// TestParseResponseStripsWhatItCannotRead: a plain Responses answer gives
// the proxy its confidence (the logprobs it asked for) and the client,
// who did not ask, every logprobs array emptied, also when a field the
// reader decodes has an unexpected type (the strip used to follow a read
// that had to succeed, and such an answer passed on whole).
func TestParseResponseStripsWhatItCannotRead(t *testing.T) {
	const answer = `{"output":[{"type":"message","content":[{"type":"output_text","text":"hi","logprobs":[{"token":"hi","logprob":-0.5}]}]}],"usage":{"input_tokens":3,"output_tokens":1}}`
	c := &call{api: apiResponses, stripLogprobs: true, body: []byte(answer)}
	c.parseAnswer()
	if conf, ok := c.confidence(); !ok || math.Abs(conf-(-0.5)) > 1e-12 {
		t.Errorf("confidence %v, %v; want the answer's mean logprob -0.5", conf, ok)
	}
	if bytes.Contains(c.body, []byte(`"logprob":`)) || !bytes.Contains(c.body, []byte(`"logprobs":[]`)) {
		t.Errorf("the client would see %s; want every logprobs array emptied", c.body)
	}
	odd := strings.Replace(answer, `"input_tokens":3`, `"input_tokens":"three"`, 1)
	c = &call{api: apiResponses, stripLogprobs: true, body: []byte(odd)}
	c.parseAnswer()
	if bytes.Contains(c.body, []byte(`"logprob":`)) {
		t.Errorf("an answer the reader cannot decode reached the client with its logprobs: %s", c.body)
	}
	// The same for a chat completion, whose reader had the same order.
	const chat = `{"choices":[{"index":0,"message":{"content":"hi"},"logprobs":{"content":[{"token":"hi","logprob":-0.5}]}}],"usage":{"prompt_tokens":"three","completion_tokens":1}}`
	c = &call{api: apiChat, stripLogprobs: true, body: []byte(chat)}
	c.parseAnswer()
	if bytes.Contains(c.body, []byte(`"logprob":`)) || !bytes.Contains(c.body, []byte(`"logprobs":null`)) {
		t.Errorf("a chat answer the reader cannot decode reached the client as %s; want its logprobs null", c.body)
	}
}

// A Responses request's "include" was decoded into strings, and again
// into values to add the log-probabilities for a speculation's fast
// call: a 16 MiB body of one-letter strings cost 1 GB and 2.4 s. It is
// read in place now: reading and forwarding it allocates the same for
// 100,000 strings as for a few (measured in allocations, not time).
func TestIncludeIsNotDecoded(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"model":"m","input":"hi","include":[`)
	for i := range 100000 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"x"`)
	}
	b.WriteString(`]}`)
	body := []byte(b.String())
	var err error
	var up []byte
	allocs := testing.AllocsPerRun(3, func() {
		var req *chatRequest
		if req, err = parseRequest(body, apiResponses, caps{}); err == nil {
			up, err = req.upstreamBody("fast", true)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(up, []byte(`"x","message.output_text.logprobs"]}`)) {
		t.Errorf("upstream body ends %s, want the log-probabilities added to include", up[len(up)-60:])
	}
	if allocs > 100 {
		t.Errorf("%.0f allocations to read and forward it, want a few dozen: include was decoded", allocs)
	}
}

// What include says, read in place, agrees with what decoding it said.
func TestIncludeShapes(t *testing.T) {
	for _, tt := range []struct {
		name, include string
		logprobs      bool
		upstream      string // include as a speculation's fast call gets it
		err           string
	}{
		{"absent", ``, false, `["message.output_text.logprobs"]`, ""},
		{"null", `null`, false, `["message.output_text.logprobs"]`, ""},
		{"empty", `[ ]`, false, `[ "message.output_text.logprobs"]`, ""},
		{"other values", `["reasoning.encrypted_content", null]`, false, `["reasoning.encrypted_content", null,"message.output_text.logprobs"]`, ""},
		{"asked for", `["file_search_call.results","message.output_text.logprobs"]`, true, `["file_search_call.results","message.output_text.logprobs"]`, ""},
		{"asked for, escaped", `["message.output_text.logprob\u0073"]`, true, `["message.output_text.logprob\u0073"]`, ""},
		{"a number is refused", `["a",3]`, false, ``, "include: want a string, got a JSON number"},
		{"a string is refused", `"message.output_text.logprobs"`, false, ``, "include: want an array of strings, got a JSON string"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"model":"m","input":"hi"`
			if tt.include != "" {
				body += `,"include":` + tt.include
			}
			req, err := parseRequest([]byte(body+`}`), apiResponses, caps{})
			if tt.err != "" {
				var ae *apiError
				if !errors.As(err, &ae) || ae.msg != tt.err || ae.param != "include" {
					t.Errorf("err %v, want %q on include", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if req.logprobs != tt.logprobs {
				t.Errorf("logprobs %v, want %v", req.logprobs, tt.logprobs)
			}
			up, err := req.upstreamBody("fast", true)
			if want := `"include":` + tt.upstream; err != nil || !strings.Contains(string(up), want) {
				t.Errorf("upstream body %s (%v), want %s in it", up, err, want)
			}
		})
	}
}

package main

// Integration tests with the official OpenAI Go SDK: what an app that
// only changes its base URL sees when it talks to triage serve's proxy,
// in front of two upstream sims that inject the faults real upstreams
// have.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/features"
	"github.com/triage-router/triage/internal/syncbuf"
	"github.com/triage-router/triage/models"
	"github.com/triage-router/triage/serve/upstreamsim"
)

// sdkKey is the client key the tests' config gives the app "web";
// sdkTaggedKey is another, whose meta is merged into its requests.
const (
	sdkKey       = "sk-triage-web-123"
	sdkTaggedKey = "sk-triage-tagged-456"
)

// sdkFaults makes a sim fail on prompts holding "<tier>-500",
// "<tier>-429" (with Retry-After-Ms: 1 and Retry-After: 1) or
// "<tier>-cut" (a stream cut midway).
func sdkFaults(tier string) func(string) *upstreamsim.Fault {
	return func(p string) *upstreamsim.Fault {
		switch {
		case strings.Contains(p, tier+"-500"):
			return &upstreamsim.Fault{Status: 500, Message: tier + " is down"}
		case strings.Contains(p, tier+"-429"):
			return &upstreamsim.Fault{Status: 429, Message: tier + " is rate limited",
				Header: http.Header{"Retry-After-Ms": {"1"}, "Retry-After": {"1"}, "X-Ratelimit-Remaining-Requests": {"0"}}}
		case strings.Contains(p, tier+"-cut"):
			return &upstreamsim.Fault{CutStream: true}
		}
		return nil
	}
}

// sdkRig is triage serve with the proxy, its sims and its db. Exploration
// is off: an explored request calls both tiers, which would move the call
// and metric counts the tests check one time in fifty per request.
type sdkRig struct {
	url, db            string
	picks              map[string]*datasets.Record
	fastSim, strongSim *upstreamsim.Server
	strongRequests     *atomic.Int64
	stop               func() int
	stderr             *syncbuf.Buffer
	// args start triage serve again on the same db (restart).
	args     []string
	fastText *datasets.Record // routes fast on its prompt alone
}

func newSDKRig(t *testing.T) *sdkRig {
	t.Helper()
	dir := t.TempDir()
	recs, _, err := datasets.ReadFile(sampleLog, datasets.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	model, router := proxyModel(t, dir, recs)
	r := &sdkRig{picks: pickPrompts(t, recs, router), strongRequests: &atomic.Int64{}}
	// A completion carries no metadata, so its pick is a prompt the router
	// sends fast on its text alone.
	for i := range recs {
		if router.Route(features.Input{Prompt: recs[i].Prompt}).Decision == models.Fast {
			r.fastText = &recs[i]
			break
		}
	}
	if r.fastText == nil {
		t.Fatal("no prompt of the sample log routes fast on its text alone")
	}
	var urls [2]string
	for i, s := range []struct {
		tier, model string
		sim         **upstreamsim.Server
	}{{"fast", sampleFast, &r.fastSim}, {"strong", sampleStrong, &r.strongSim}} {
		// Unknown prompts wait 2 s x proxyScale = 100 ms, so a stream
		// cut midway has reached the client before the cut.
		sim, err := upstreamsim.New(upstreamsim.Options{Model: s.model, Records: recs, LatencyScale: proxyScale,
			DefaultLatency: 2 * time.Second, StreamChunks: 4, Fault: sdkFaults(s.tier)})
		if err != nil {
			t.Fatal(err)
		}
		*s.sim = sim
		var h http.Handler = sim
		if s.tier == "strong" {
			h = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
				r.strongRequests.Add(1)
				sim.ServeHTTP(w, req)
			})
		}
		ts := httptest.NewServer(h)
		t.Cleanup(ts.Close)
		urls[i] = ts.URL
	}
	cfg := fmt.Sprintf(`tiers:
  fast: {base_url: %s/v1, model: %s, timeout: 20s, price_in_per_1k: 0.001, price_out_per_1k: 0.002}
  strong: {base_url: %s/v1, model: %s, timeout: 20s, price_in_per_1k: 0.01, price_out_per_1k: 0.03}
aliases: {gpt-4o: triage, gpt-4o-mini: fast}
exploration: {epsilon: 0}
client_keys:
  - {name: web, key: %s}
  - {name: tagged, key: %s, meta: {app: tagged}}
`, urls[0], sampleFast, urls[1], sampleStrong, sdkKey, sdkTaggedKey)
	r.db = filepath.Join(dir, "feedback.db")
	r.args = []string{"--model", model, "--db", r.db, "--config", writeFile(t, dir, "proxy.yaml", cfg), "--addr", "127.0.0.1:0"}
	r.url, r.stderr, r.stop = startServe(t, r.args...)
	return r
}

// restart stops triage serve, as a deploy does, and starts it again on
// the same db and config.
func (r *sdkRig) restart(t *testing.T) {
	t.Helper()
	if code := r.stop(); code != 0 {
		t.Fatalf("serve exited %d: %s", code, r.stderr)
	}
	r.url, r.stderr, r.stop = startServe(t, r.args...)
}

// client is an SDK client of the proxy with key, no retries unless
// asked.
func (r *sdkRig) client(key string, opts ...option.RequestOption) openai.Client {
	return openai.NewClient(append([]option.RequestOption{option.WithBaseURL(r.url + "/v1"), option.WithAPIKey(key),
		option.WithMaxRetries(0)}, opts...)...)
}

// chat is the params of a one-message chat with the record's meta.
func chat(model, prompt string, meta map[string]string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{Model: model, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)}, Metadata: meta}
}

// apiError is err as the SDK's error for a status, or fails.
func apiError(t *testing.T, err error) *openai.Error {
	t.Helper()
	var e *openai.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v, want an *openai.Error", err)
	}
	return e
}

// exported is what the server recorded, by request id, read from the db
// after it stopped.
func (r *sdkRig) exported(t *testing.T) map[string]datasets.Record {
	t.Helper()
	if code := r.stop(); code != 0 {
		t.Fatalf("serve exited %d: %s", code, r.stderr)
	}
	return exportedRecords(t, r.db)
}

// exportedRecords is every record of the feedback db at path, by request
// id, as `triage feedback export` would write them.
func exportedRecords(t *testing.T, path string) map[string]datasets.Record {
	t.Helper()
	st, err := datasets.OpenBoltStore(path, datasets.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var buf bytes.Buffer
	if _, err := st.Export(context.Background(), &buf, datasets.ExportOptions{}); err != nil {
		t.Fatal(err)
	}
	return recordsByID(t, &buf)
}

// recordsByID reads an export by record id.
func recordsByID(t *testing.T, r io.Reader) map[string]datasets.Record {
	t.Helper()
	out := map[string]datasets.Record{}
	rd := datasets.NewReader(r, "export", datasets.ReadOptions{AllowMissingScore: true})
	for {
		rec, err := rd.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out[rec.ID] = rec
	}
}

func TestOpenAISDK(t *testing.T) {
	r := newSDKRig(t)
	ctx := context.Background()
	web := r.client(sdkKey)
	ids := map[string]string{}

	t.Run("client keys: a missing or wrong key is a 401 authentication_error, the right one answers", func(t *testing.T) {
		for _, c := range []struct {
			name string
			cl   openai.Client
		}{{"missing", r.client("", option.WithHeaderDel("Authorization"))}, {"wrong", r.client("sk-nope")}} {
			_, err := c.cl.Chat.Completions.New(ctx, chat("gpt-4o-mini", "hello", nil))
			e := apiError(t, err)
			if e.StatusCode != 401 || e.Type != "authentication_error" || e.Code != "invalid_api_key" {
				t.Errorf("%s key: status %d type %q code %q, want 401 authentication_error invalid_api_key", c.name, e.StatusCode, e.Type, e.Code)
			}
		}
		if _, err := web.Chat.Completions.New(ctx, chat("gpt-4o-mini", "hello", nil)); err != nil {
			t.Errorf("right key: %v", err)
		}
	})

	t.Run("an alias routes: gpt-4o is answered by the tier the router picks", func(t *testing.T) {
		var resp *http.Response
		rec := r.picks["escalate"]
		got, err := web.Chat.Completions.New(ctx, chat("gpt-4o", rec.Prompt, rec.Meta), option.WithResponseInto(&resp))
		if err != nil {
			t.Fatal(err)
		}
		if got.Model != sampleStrong || resp.Header.Get("X-Triage-Decision") != "escalate" || got.Choices[0].Message.Content == "" {
			t.Errorf("model %q decision %q content %q, want %s escalate", got.Model, resp.Header.Get("X-Triage-Decision"), got.Choices[0].Message.Content, sampleStrong)
		}
	})

	t.Run("x-request-id passes through", func(t *testing.T) {
		var resp *http.Response
		tagged := r.client(sdkTaggedKey)
		if _, err := tagged.Chat.Completions.New(ctx, chat("gpt-4o-mini", "hello", map[string]string{"app": "spoofed", "k": "v"}), option.WithResponseInto(&resp)); err != nil {
			t.Fatal(err)
		}
		if id := resp.Header.Get("X-Request-Id"); !strings.HasPrefix(id, "req_chatcmpl-sim-") {
			t.Errorf("x-request-id %q, want the upstream's", id)
		}
		ids["tagged"] = resp.Header.Get("X-Triage-Request-Id")
	})

	t.Run("a proxy error has type, code and param in the SDK's error", func(t *testing.T) {
		_, err := web.Chat.Completions.New(ctx, chat("claude-3", "hello", nil))
		e := apiError(t, err)
		if e.StatusCode != 400 || e.Type != "invalid_request_error" || e.Code != "unknown_model" || e.Param != "model" ||
			!strings.Contains(e.Message, `"gpt-4o"`) {
			t.Errorf("status %d type %q code %q param %q message %q", e.StatusCode, e.Type, e.Code, e.Param, e.Message)
		}
	})

	t.Run("a 429 reaches the SDK with Retry-After, and the SDK backs off by it", func(t *testing.T) {
		before := r.strongRequests.Load()
		cl := r.client(sdkKey, option.WithMaxRetries(2))
		_, err := cl.Chat.Completions.New(ctx, chat("strong", "busy strong-429 fast-429", nil))
		e := apiError(t, err)
		if e.StatusCode != 429 || e.Response.Header.Get("Retry-After") != "1" || e.Response.Header.Get("X-Ratelimit-Remaining-Requests") != "0" {
			t.Errorf("status %d headers %v, want 429 with the upstream's Retry-After", e.StatusCode, e.Response.Header)
		}
		// The SDK retried twice: three calls reached the strong sim.
		if n := r.strongRequests.Load() - before; n != 3 {
			t.Errorf("%d calls reached the strong tier, want 3 (the SDK retries after Retry-After-Ms)", n)
		}
	})

	t.Run("a failing strong tier falls back to the fast tier", func(t *testing.T) {
		var resp *http.Response
		got, err := web.Chat.Completions.New(ctx, chat("strong", "please strong-500", nil), option.WithResponseInto(&resp))
		if err != nil {
			t.Fatal(err)
		}
		if got.Model != sampleFast || resp.Header.Get("X-Triage-Decision") != "escalate+fallback" {
			t.Errorf("model %q decision %q, want %s escalate+fallback", got.Model, resp.Header.Get("X-Triage-Decision"), sampleFast)
		}
		ids["fallback"] = resp.Header.Get("X-Triage-Request-Id")
	})

	t.Run("a stream the upstream cuts midway is an error in the SDK", func(t *testing.T) {
		stream := web.Chat.Completions.NewStreaming(ctx, chat("gpt-4o-mini", "a long answer fast-cut", nil))
		var text string
		for stream.Next() {
			if ch := stream.Current().Choices; len(ch) > 0 {
				text += ch[0].Delta.Content
			}
		}
		if stream.Err() == nil {
			t.Errorf("the stream ended without an error after %q", text)
		}
		stream.Close()
		// A whole stream still works.
		stream = web.Chat.Completions.NewStreaming(ctx, chat("gpt-4o-mini", "hello", nil))
		text = ""
		for stream.Next() {
			if ch := stream.Current().Choices; len(ch) > 0 {
				text += ch[0].Delta.Content
			}
		}
		if err := stream.Err(); err != nil || text != upstreamsim.DefaultAnswer {
			t.Errorf("whole stream: %q, %v", text, err)
		}
	})

	t.Run("a completion is routed on its prompt", func(t *testing.T) {
		rec := r.fastText
		got, err := web.Completions.New(ctx, openai.CompletionNewParams{Model: "gpt-4o", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String(rec.Prompt)}})
		if err != nil {
			t.Fatal(err)
		}
		if got.Model != sampleFast || got.Choices[0].Text == "" {
			t.Errorf("model %q text %q", got.Model, got.Choices[0].Text)
		}
	})

	respParams := func(model, prompt string, meta map[string]string) responses.ResponseNewParams {
		return responses.ResponseNewParams{Model: model, Input: responses.ResponseNewParamsInputUnion{OfString: openai.String(prompt)}, Metadata: meta}
	}
	t.Run("a response is routed on its input, and a speculation hides the logprobs it asked for", func(t *testing.T) {
		for _, c := range []struct {
			pick, model, decision string
		}{{"escalate", sampleStrong, "escalate"}, {"accept", sampleFast, "speculate"}} {
			var resp *http.Response
			rec := r.picks[c.pick]
			got, err := web.Responses.New(ctx, respParams("gpt-4o", rec.Prompt, rec.Meta), option.WithResponseInto(&resp))
			if err != nil {
				t.Fatalf("%s: %v", c.pick, err)
			}
			if got.Model != c.model || resp.Header.Get("X-Triage-Decision") != c.decision || got.OutputText() == "" || got.Usage.InputTokens == 0 {
				t.Errorf("%s: model %q decision %q text %q usage %+v, want %s %s with text and usage", c.pick, got.Model,
					resp.Header.Get("X-Triage-Decision"), got.OutputText(), got.Usage, c.model, c.decision)
			}
			if strings.Contains(got.RawJSON(), `"logprob"`) {
				t.Errorf("%s: the answer carries logprobs the client did not ask for: %s", c.pick, got.RawJSON())
			}
		}
	})

	// max_tools' default is above the 128 functions OpenAI documented for
	// a chat request, and the tools, include and stream_options the SDK
	// sends are read in place, not decoded: the proxy takes them and
	// passes them on.
	t.Run("129 tools, include and stream_options from the SDK are taken and passed on", func(t *testing.T) {
		rec := r.picks["accept"]
		params := chat("gpt-4o", rec.Prompt, rec.Meta)
		var rtools []responses.ToolUnionParam
		for i := range 129 {
			name := fmt.Sprintf("tool_%d", i)
			params.Tools = append(params.Tools, openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{Name: name}))
			rtools = append(rtools, responses.ToolParamOfFunction(name, map[string]any{"type": "object"}, false))
		}
		var resp *http.Response
		got, err := web.Chat.Completions.New(ctx, params, option.WithResponseInto(&resp))
		if err != nil || got.Choices[0].Message.Content == "" || resp.Header.Get("X-Triage-Decision") != "speculate" {
			t.Fatalf("chat with 129 tools: %v", err)
		}
		params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(false)}
		stream := web.Chat.Completions.NewStreaming(ctx, params)
		var text strings.Builder
		for stream.Next() {
			for _, c := range stream.Current().Choices {
				text.WriteString(c.Delta.Content)
			}
		}
		if err := stream.Err(); err != nil || text.Len() == 0 {
			t.Fatalf("streamed chat with 129 tools: %v, text %q", err, text.String())
		}
		rp := respParams("gpt-4o", rec.Prompt, rec.Meta)
		rp.Tools = rtools
		rp.Include = []responses.ResponseIncludable{responses.ResponseIncludableReasoningEncryptedContent}
		rgot, err := web.Responses.New(ctx, rp, option.WithResponseInto(&resp))
		if err != nil || rgot.OutputText() == "" || resp.Header.Get("X-Triage-Decision") != "speculate" {
			t.Fatalf("response with 129 tools: %v", err)
		}
		if strings.Contains(rgot.RawJSON(), `"logprob"`) {
			t.Errorf("the answer carries logprobs the client did not ask for: %s", rgot.RawJSON())
		}
	})

	t.Run("a streamed response has the API's events, and a cut one is an error", func(t *testing.T) {
		stream := web.Responses.NewStreaming(ctx, respParams("gpt-4o-mini", "hello", nil))
		var text, final string
		types := map[string]int{}
		for stream.Next() {
			ev := stream.Current()
			types[ev.Type]++
			switch ev.Type {
			case "response.output_text.delta":
				text += ev.Delta
			case "response.completed":
				final = ev.Response.OutputText()
			}
		}
		if err := stream.Err(); err != nil || text != upstreamsim.DefaultAnswer || final != text {
			t.Errorf("stream: deltas %q, completed %q, err %v; want %q twice", text, final, err, upstreamsim.DefaultAnswer)
		}
		for _, typ := range []string{"response.created", "response.output_text.delta", "response.output_text.done", "response.completed"} {
			if types[typ] == 0 {
				t.Errorf("no %s event in %v", typ, types)
			}
		}
		stream.Close()
		stream = web.Responses.NewStreaming(ctx, respParams("gpt-4o-mini", "a long answer fast-cut", nil))
		for stream.Next() {
		}
		if stream.Err() == nil {
			t.Error("a stream the upstream cut ended without an error")
		}
		stream.Close()
	})

	// A cancelled call is billed on its own prompt: the strong call a
	// confident fast answer cancels costs about the same before and
	// after the strong tier answered a 200 KB prompt. Billed on the
	// tier's running mean cost, as before, it cost 50x more after.
	accept := r.picks["accept"]
	cancelled := func(t *testing.T, key string) {
		t.Helper()
		var resp *http.Response
		got, err := web.Chat.Completions.New(ctx, chat("triage", accept.Prompt, accept.Meta), option.WithResponseInto(&resp))
		if err != nil || got.Model != sampleFast || resp.Header.Get("X-Triage-Decision") != "speculate" {
			t.Fatalf("%v: model %v decision %q, want the fast answer of a speculation", err, got, resp.Header.Get("X-Triage-Decision"))
		}
		ids[key] = resp.Header.Get("X-Triage-Request-Id")
	}
	t.Run("a cancelled call's cost after a large prompt", func(t *testing.T) {
		if _, err := web.Chat.Completions.New(ctx, chat("strong", r.picks["escalate"].Prompt, nil)); err != nil {
			t.Fatal(err)
		}
		cancelled(t, "cancel-before")
		large := strings.Repeat("lorem ipsum dolor sit amet ", 200<<10/27)
		if _, err := web.Chat.Completions.New(ctx, chat("strong", large, nil)); err != nil {
			t.Fatal(err)
		}
		cancelled(t, "cancel-after")
	})

	_, metrics := get(t, r.url+"/metrics")
	for _, want := range []string{
		`triage_http_requests_total{code="502",method="POST",route="/v1/chat/completions"} 1`,
		`triage_http_requests_total{code="502",method="POST",route="/v1/responses"} 1`,
		// The two cut streams, a chat completion's and a response's.
		`triage_proxy_requests_total{code="502",decision="fast"} 2`,
		`triage_http_requests_total{code="401",method="POST",route="/v1/chat/completions"} 2`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	recs := r.exported(t)
	if d := recs[ids["fallback"]].Decision; d == nil || d.Kind != "escalate" || d.Fallback != "fast" {
		t.Errorf("fallback recorded as %+v, want escalate with fallback fast", d)
	}
	if m := recs[ids["tagged"]].Meta; m["app"] != "tagged" || m["k"] != "v" {
		t.Errorf("meta %v recorded for the tagged key, want its app over the request's and the request's k", m)
	}
	var costs [2]float64
	for i, k := range []string{"cancel-before", "cancel-after"} {
		o := recs[ids[k]].Outcomes[sampleStrong]
		if !o.Cancelled || o.CostUSD == nil || *o.CostUSD <= 0 {
			t.Fatalf("%s: strong outcome %+v, want cancelled with a cost", k, o)
		}
		costs[i] = *o.CostUSD
	}
	if ratio := costs[1] / costs[0]; ratio < 0.25 || ratio > 4 {
		t.Errorf("cancelled strong call cost %.3g before and %.3g after a 200 KB prompt (x%.1f); want about the same", costs[0], costs[1], ratio)
	}
}

package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/features"
	"github.com/triage-router/triage/models"
	"github.com/triage-router/triage/serve/upstreamsim"
)

// fakeRouter decides by the first letter of the last message (F fast, S
// speculate, E escalate; meta route=escalate escalates whatever it says) and calibrates confidence as exp(raw), the
// probability a mean log-probability stands for. The test log's fast
// confidences are -0.05 and -0.1 (accepted at 0.9), -0.25 (the sim's
// default answer) and -2 (rejected).
type fakeRouter struct{ art *models.Artifact }

func (f *fakeRouter) Route(in features.Input) models.TierResult {
	text := in.Prompt
	if len(in.Messages) > 0 {
		text = in.Messages[len(in.Messages)-1].Content
	}
	switch {
	case in.Meta["route"] == "escalate":
		return models.TierResult{Tier: 1, Race: -1, PHard: 0.9, Decision: models.Escalate}
	case strings.HasPrefix(text, "F"):
		return models.TierResult{Tier: 0, Race: -1, PHard: 0.1, Decision: models.Fast}
	case strings.HasPrefix(text, "E"):
		return models.TierResult{Tier: 1, Race: -1, PHard: 0.9, Decision: models.Escalate}
	}
	return models.TierResult{Tier: 0, Race: 1, PHard: 0.5, Decision: models.Speculate}
}

// CalibratedConfidence calibrates the fast tier's confidence, as a
// two-tier artifact does.
func (f *fakeRouter) CalibratedConfidence(k int, raw float64) (float64, bool) {
	return math.Exp(raw), k == 0
}
func (f *fakeRouter) AcceptConfidence() float64  { return f.art.Policy.AcceptConfidence }
func (f *fakeRouter) Names() []string            { return f.art.TierNames() }
func (f *fakeRouter) Artifact() *models.Artifact { return f.art }

// memRecorder keeps recordings in memory.
type memRecorder struct {
	mu   sync.Mutex
	recs []*Recording
}

func (m *memRecorder) Record(_ context.Context, batch []*Recording) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs = append(m.recs, batch...)
	return nil
}

// faults makes a sim fail on prompts holding "<name>-500", "<name>-400",
// "<name>-429" (with Retry-After: 7), "<name>-503" (Retry-After: 30),
// "<name>-503soon" (Retry-After: 2, retry-after-ms 1500), "<name>-hang"
// or "<name>-cut" (a stream cut after its first content chunk).
func faults(name string) func(string) *upstreamsim.Fault {
	return func(p string) *upstreamsim.Fault {
		switch {
		case strings.Contains(p, name+"-429"):
			return &upstreamsim.Fault{Status: 429, Message: name + " is busy", Header: http.Header{"Retry-After": {"7"}, "X-Ratelimit-Remaining-Requests": {"0"}}}
		case strings.Contains(p, name+"-503soon"):
			return &upstreamsim.Fault{Status: 503, Message: name + " is overloaded", Header: http.Header{"Retry-After": {"2"}, "Retry-After-Ms": {"1500"}}}
		case strings.Contains(p, name+"-503"):
			return &upstreamsim.Fault{Status: 503, Message: name + " is overloaded", Header: http.Header{"Retry-After": {"30"}}}
		case strings.Contains(p, name+"-cookie"):
			return &upstreamsim.Fault{Header: http.Header{"Set-Cookie": {"session=upstream"}, "Connection": {"X-Hop"}, "X-Hop": {"1"},
				"Openai-Processing-Ms": {"42"}, "X-Triage-Model": {"spoofed"}}}
		case strings.Contains(p, name+"-cut"):
			return &upstreamsim.Fault{CutStream: true}
		case strings.Contains(p, name+"-500"):
			return &upstreamsim.Fault{Status: 500, Message: name + " is down"}
		case strings.Contains(p, name+"-400"):
			return &upstreamsim.Fault{Status: 400, Message: name + " refuses this"}
		case strings.Contains(p, name+"-hang"):
			return &upstreamsim.Fault{Delay: time.Minute}
		}
		return nil
	}
}

type rig struct {
	fastSim, strongSim *upstreamsim.Server
	fastURL, strongURL string
	url                string
	h                  *Handler
	rec                *memRecorder
	reg                *prometheus.Registry
	logs               *bytes.Buffer
	auth               chan string
	// hdrs are the headers of the fast sim's calls.
	hdrs chan http.Header
	// protos are the HTTP versions the upstreams were called with.
	protos chan string
	// conns counts the connections the sims accepted.
	conns atomic.Int64
	// cfg and deps make the proxy (start).
	cfg  Config
	deps Deps
	// lastReport is the last request's WithStatusReport, filled in by
	// the proxy; lastEnd when its handler ended.
	lastReport atomic.Pointer[Report]
	lastEnd    atomic.Pointer[time.Time]
	// active counts the proxy's handlers running. A race's winner
	// reaches the client before its handler ends (loser_grace), so
	// recordings waits for them, as a server's shutdown does.
	active atomic.Int64
}

type rigOptions struct {
	fastTimeout     time.Duration
	noResponses     bool
	apiKey          string
	noConfidenceCal bool
	fixedLatency    time.Duration
	// h2c serves the sims over HTTP/1.1 and h2c and sets h2c on the
	// tiers.
	h2c bool
	// explore, when set, is the proxy's exploration draw.
	explore func(models.Result) (models.Decision, float64, bool)
	// config changes the proxy's config before New.
	config func(*Config)
	// env adds to the proxy's environment.
	env map[string]string
	// upstream, when set, wraps each tier's upstream handler.
	upstream func(tier string, next http.Handler) http.Handler
	// recorder replaces the in-memory recorder (rig.rec then stays
	// empty); responses is the proxy's Deps.Responses.
	recorder  Recorder
	responses ResponseStore
}

func newRig(t testing.TB, o rigOptions) *rig {
	t.Helper()
	recs, _, err := datasets.ReadFile("testdata/log.jsonl", datasets.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fixed := func() time.Time { return time.Unix(1700000000, 0) }
	r := &rig{rec: &memRecorder{}, reg: prometheus.NewRegistry(), logs: &bytes.Buffer{}, auth: make(chan string, 100), protos: make(chan string, 100), hdrs: make(chan http.Header, 100)}
	// Unknown prompts (the fault cases) answer in 1 ms on the fast tier
	// and 50 ms on the strong one, so which answers first is not a race.
	for _, s := range []struct {
		model string
		sim   **upstreamsim.Server
		url   *string
		lat   time.Duration
	}{{"fast-model", &r.fastSim, &r.fastURL, time.Millisecond}, {"strong-model", &r.strongSim, &r.strongURL, 50 * time.Millisecond}} {
		name := strings.TrimSuffix(s.model, "-model")
		sim, err := upstreamsim.New(upstreamsim.Options{Model: s.model, Records: recs, DefaultLatency: s.lat,
			StreamChunks: 2, Fault: faults(name), Now: fixed, FixedLatency: o.fixedLatency})
		if err != nil {
			t.Fatal(err)
		}
		*s.sim = sim
		var up http.Handler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			select {
			case r.protos <- req.Proto:
			default:
			}
			if name == "fast" {
				select {
				case r.auth <- req.Header.Get("Authorization"):
				default:
				}
				select {
				case r.hdrs <- req.Header.Clone():
				default:
				}
			}
			// "<name>-garbage" and "<name>-empty" answer 200 with no
			// answer in it: a gateway's HTML page, an empty object.
			if body, err := io.ReadAll(req.Body); err == nil {
				req.Body = io.NopCloser(bytes.NewReader(body))
				switch {
				case bytes.Contains(body, []byte(name+"-garbage")):
					w.Header().Set("Content-Type", "application/json")
					io.WriteString(w, "this is not json <html>")
					return
				case bytes.Contains(body, []byte(name+"-cutcolon")):
					// Cut right after the key: this crashed the server
					// when the call ran on its own goroutine.
					w.Header().Set("Content-Type", "application/json")
					io.WriteString(w, `{"choices":`)
					return
				case bytes.Contains(body, []byte(name+"-cutarray")):
					// Cut inside the choices, with a matching length.
					w.Header().Set("Content-Type", "application/json")
					io.WriteString(w, `{"choices":[{"index":0,"message":{"content":"half`)
					return
				case bytes.Contains(body, []byte(name+"-redirect")):
					// A base URL the host moved (http to https, a new
					// path): the proxy follows no redirect.
					http.Redirect(w, req, "https://upstream.invalid/v1/chat/completions", http.StatusMovedPermanently)
					return
				case bytes.Contains(body, []byte(name+"-errstream")):
					// A 200 stream that opens with an error and ends well,
					// as vLLM answers a request that fails once its 200 is
					// sent.
					w.Header().Set("Content-Type", "text/event-stream")
					io.WriteString(w, `data: {"error":{"message":"`+name+` engine died","type":"server_error","param":null,"code":500}}`+"\n\ndata: [DONE]\n\n")
					return
				case bytes.Contains(body, []byte(name+"-respfailed")):
					// A Responses API stream that fails after confident
					// text, as OpenAI ends one whose generation failed.
					w.Header().Set("Content-Type", "text/event-stream")
					io.WriteString(w, "event: response.created\ndata: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_x\",\"status\":\"in_progress\",\"output\":[]}}\n\n"+
						"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"half an\",\"logprobs\":[{\"token\":\"half\",\"logprob\":-0.01},{\"token\":\" an\",\"logprob\":-0.01}]}\n\n"+
						"event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"id\":\"resp_x\",\"status\":\"failed\",\"error\":{\"code\":\"server_error\",\"message\":\""+name+" failed\"},\"output\":[]}}\n\n")
					return
				case bytes.Contains(body, []byte(name+"-miderr")):
					// A stream whose engine fails after its first, confident
					// tokens: vLLM then sends an error object and ends the
					// stream well.
					w.Header().Set("Content-Type", "text/event-stream")
					io.WriteString(w, `data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"half an"},"logprobs":{"content":[{"token":"half","logprob":-0.01},{"token":" an","logprob":-0.01}]}}]}`+"\n\n"+
						`data: {"error":{"message":"`+name+` engine died","type":"server_error","param":null,"code":500}}`+"\n\ndata: [DONE]\n\n")
					return
				case bytes.Contains(body, []byte(name+"-donecut")), bytes.Contains(body, []byte(name+"-donehang")):
					// A whole stream, its usage and "data: [DONE]" sent,
					// after which the upstream breaks the connection, or
					// keeps it open without ending the response.
					w.Header().Set("Content-Type", "text/event-stream")
					io.WriteString(w, `data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"whole"}}]}`+"\n\n"+
						`data: {"id":"x","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}`+"\n\n"+
						"data: [DONE]\n\n")
					w.(http.Flusher).Flush()
					if bytes.Contains(body, []byte(name+"-donecut")) {
						panic(http.ErrAbortHandler)
					}
					<-req.Context().Done()
					return
				case bytes.Contains(body, []byte(name+"-nologprobs")) && bytes.Contains(body, []byte(`"logprobs":true`)):
					// A reasoning model's refusal of log-probabilities.
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusBadRequest)
					io.WriteString(w, `{"error":{"message":"Unsupported parameter: 'logprobs' is not supported with this model.","type":"invalid_request_error","param":"logprobs","code":"unsupported_parameter"}}`)
					return
				case bytes.Contains(body, []byte(name+"-flood")):
					// A long stream, 20 MiB: more than the loopback
					// connection's buffers hold for a client that stops
					// reading it.
					w.Header().Set("Content-Type", "text/event-stream")
					ev := `data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"` + strings.Repeat("a", 16<<10) + `"}}]}` + "\n\n"
					for range 20 << 20 / len(ev) {
						if _, err := io.WriteString(w, ev); err != nil {
							return
						}
					}
					io.WriteString(w, "data: [DONE]\n\n")
					return
				case bytes.Contains(body, []byte(name+"-empty")):
					w.Header().Set("Content-Type", "application/json")
					io.WriteString(w, "{}")
					return
				case bytes.Contains(body, []byte(name+"-badusage")):
					// An answer whose usage no log can hold.
					w.Header().Set("Content-Type", "application/json")
					io.WriteString(w, `{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":-5,"completion_tokens":3,"total_tokens":-2}}`)
					return
				}
			}
			if req.URL.Path == "/v1/embeddings" {
				// An embedding that names the model and input it got.
				var e struct{ Model, Input string }
				json.NewDecoder(req.Body).Decode(&e)
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("X-Request-Id", "req_emb")
				fmt.Fprintf(w, `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,-0.25]}],"model":%q,"usage":{"prompt_tokens":1,"total_tokens":1},"input":%q}`, e.Model, e.Input)
				return
			}
			sim.ServeHTTP(w, req)
		})
		if o.upstream != nil {
			up = o.upstream(name, up)
		}
		ts := httptest.NewUnstartedServer(up)
		ts.Config.ConnState = func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				r.conns.Add(1)
			}
		}
		if o.h2c {
			ts.Config.Protocols = new(http.Protocols)
			ts.Config.Protocols.SetHTTP1(true)
			ts.Config.Protocols.SetUnencryptedHTTP2(true)
		}
		ts.Start()
		t.Cleanup(ts.Close)
		*s.url = ts.URL
	}
	cfg := DefaultConfig()
	cfg.RecordResponses = !o.noResponses
	cfg.Tiers.Fast = Tier{BaseURL: r.fastURL + "/v1", Model: "fast-model", Timeout: o.fastTimeout, PriceInPer1K: 0.001, PriceOutPer1K: 0.002}
	cfg.Tiers.Strong = Tier{BaseURL: r.strongURL + "/v1/", Model: "strong-model", PriceInPer1K: 0.01, PriceOutPer1K: 0.03}
	cfg.Tiers.Fast.H2C, cfg.Tiers.Strong.H2C = o.h2c, o.h2c
	env := map[string]string{}
	for k, v := range o.env {
		env[k] = v
	}
	if o.apiKey != "" {
		cfg.Tiers.Fast.APIKeyEnv = "FAST_KEY"
		env["FAST_KEY"] = o.apiKey
	}
	if o.config != nil {
		o.config(&cfg)
	}
	art := &models.Artifact{Version: "v-test", Tiers: models.Tiers{Fast: "fast-log-name", Strong: "strong-log-name"},
		Policy: models.Policy{SpeculateAbove: 0.3, EscalateAbove: 0.7, AcceptConfidence: 0.9}}
	var tr TierRouter = &fakeRouter{art: art}
	if o.noConfidenceCal {
		tr = noCalRouter{tr}
	}
	rt := Tiered(tr)
	var rec Recorder = r.rec
	if o.recorder != nil {
		rec = o.recorder
	}
	r.cfg = cfg
	r.deps = Deps{Router: func() Router { return rt }, Recorder: rec, Registry: r.reg,
		Logger: slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Getenv: func(k string) string { return env[k] }, Explore: o.explore, Responses: o.responses}
	r.start(t)
	return r
}

// start makes the proxy of r.cfg and r.deps and serves it at r.url.
func (r *rig) start(t testing.TB) {
	t.Helper()
	h, err := New(r.cfg, r.deps)
	if err != nil {
		t.Fatal(err)
	}
	r.h = h
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.HandleFunc("/v1/completions", h.ServeCompletions)
	mux.HandleFunc("/v1/embeddings", h.ServeEmbeddings)
	mux.HandleFunc("/v1/responses", h.ServeResponses)
	mux.HandleFunc("/v1/responses/", h.ServeStoredResponse)
	ps := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.active.Add(1)
		defer r.active.Add(-1)
		ctx, rep := WithStatusReport(req.Context())
		if c := req.Header.Get(testClientHeader); c != "" {
			// What the server's client key check does (serve).
			ctx = WithClientName(ctx, c)
		}
		mux.ServeHTTP(w, req.WithContext(ctx))
		end := time.Now()
		r.lastReport.Store(rep)
		r.lastEnd.Store(&end)
	}))
	t.Cleanup(ps.Close)
	r.url = ps.URL
}

type noCalRouter struct{ TierRouter }

func (noCalRouter) CalibratedConfidence(int, float64) (float64, bool) { return 0, false }

// recordings closes the handler (flushing the queue) and returns what was
// recorded.
func (r *rig) recordings(t *testing.T) []*Recording {
	t.Helper()
	waitFor(t, "the proxy's handlers to end", func() bool { return r.active.Load() == 0 })
	if err := r.h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.rec.mu.Lock()
	defer r.rec.mu.Unlock()
	return r.rec.recs
}

// result is a proxied answer.
type result struct {
	status                    int
	decision, model, id, ct   string
	body                      []byte
	content                   string // the answer's text (plain or streamed)
	logprobs                  int    // logprob entries seen
	usageChunk, usageNullSeen bool
	events                    []string
}

func chatBody(prompt string, extra string) string {
	b, _ := json.Marshal(prompt)
	return `{"messages":[{"role":"user","content":` + string(b) + `}]` + extra + `}`
}

func (r *rig) do(t *testing.T, ctx context.Context, url, body string) result {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	res := result{status: resp.StatusCode, decision: resp.Header.Get(HeaderDecision), model: resp.Header.Get(HeaderModel),
		id: resp.Header.Get(HeaderRequestID), ct: resp.Header.Get("Content-Type"), body: b}
	var chunk struct {
		Choices []struct {
			Message  struct{ Content string } `json:"message"`
			Delta    struct{ Content string } `json:"delta"`
			Logprobs *struct {
				Content []struct{ Logprob float64 } `json:"content"`
			} `json:"logprobs"`
		} `json:"choices"`
		Usage json.RawMessage `json:"usage"`
	}
	if !strings.HasPrefix(res.ct, "text/event-stream") {
		if json.Unmarshal(b, &chunk) == nil && len(chunk.Choices) > 0 {
			res.content = chunk.Choices[0].Message.Content
			if lp := chunk.Choices[0].Logprobs; lp != nil {
				res.logprobs = len(lp.Content)
			}
		}
		return res
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		d, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		res.events = append(res.events, d)
		if d == "[DONE]" {
			continue
		}
		chunk.Choices, chunk.Usage = nil, nil
		if err := json.Unmarshal([]byte(d), &chunk); err != nil {
			t.Fatalf("chunk %q: %v", d, err)
		}
		if string(chunk.Usage) == "null" {
			res.usageNullSeen = true
		} else if chunk.Usage != nil {
			res.usageChunk = true
		}
		for _, c := range chunk.Choices {
			res.content += c.Delta.Content
			if c.Logprobs != nil {
				res.logprobs += len(c.Logprobs.Content)
			}
		}
	}
	return res
}

// waitFor polls until cond holds: the sims see a disconnect
// asynchronously.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 1000 {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// errorBody decodes an error body; the proxy's own must have OpenAI's
// four fields, type set.
func errorBody(t *testing.T, b []byte) (code, msg string) {
	t.Helper()
	var e struct {
		Error map[string]any `json:"error"`
	}
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("error body %s: %v", b, err)
	}
	for _, k := range []string{"message", "type", "param", "code"} {
		if _, ok := e.Error[k]; !ok {
			t.Errorf("error body %s has no %s", b, k)
		}
	}
	if typ, _ := e.Error["type"].(string); typ == "" {
		t.Errorf("error body %s has no type", b)
	}
	code, _ = e.Error["code"].(string)
	msg, _ = e.Error["message"].(string)
	return code, msg
}

func TestPaths(t *testing.T) {
	tests := []struct {
		name          string
		prompt        string
		extra         string
		fastTimeout   time.Duration
		status        int
		decision      string
		model         string
		content       string
		spec          string // speculation outcome counted
		fastCancelled int64  // seen by the fast sim
		strongCancel  int64  // seen by the strong sim
		errContains   string // in the 502 message
		upstreamCode  string // in a passed-through 4xx
		on429         bool   // fallback_on_429
		noFallback    bool   // fallback: false
	}{
		{name: "fast goes to the fast tier", prompt: "F hello", status: 200, decision: "fast", model: "fast-model", content: "fast hello there"},
		{name: "escalate goes to the strong tier", prompt: "E hard", status: 200, decision: "escalate", model: "strong-model", content: "strong right"},
		{name: "a confident fast answer is kept and the strong call cancelled", prompt: "S accept", status: 200, decision: "speculate",
			model: "fast-model", content: "fast and sure", spec: SpecFastAccepted, strongCancel: 1},
		{name: "an unconfident fast answer waits for the strong one", prompt: "S reject", status: 200, decision: "speculate",
			model: "strong-model", content: "strong better", spec: SpecStrongUsed},
		{name: "a strong answer first is kept and the fast call cancelled", prompt: "S strong first", status: 200, decision: "speculate",
			model: "strong-model", content: "strong early", spec: SpecStrongUsed, fastCancelled: 1},
		{name: "a fast error falls back to the strong tier", prompt: "F fast-500", status: 200, decision: "fast+fallback", model: "strong-model", content: upstreamsim.DefaultAnswer},
		{name: "a fast timeout falls back to the strong tier", prompt: "F fast-hang", fastTimeout: 200 * time.Millisecond, status: 200, decision: "fast+fallback",
			model: "strong-model", content: upstreamsim.DefaultAnswer, fastCancelled: 1},
		{name: "a strong error on escalate falls back to the fast tier", prompt: "E strong-500", status: 200, decision: "escalate+fallback", model: "fast-model", content: upstreamsim.DefaultAnswer},
		{name: "a strong error on a client-picked strong tier falls back to the fast tier", prompt: "F strong-500", extra: `,"model":"strong"`, status: 200,
			decision: "escalate+fallback", model: "fast-model", content: upstreamsim.DefaultAnswer},
		{name: "a 429 passes through without fallback_on_429", prompt: "E strong-429", status: 429, decision: "escalate", model: "strong-model"},
		{name: "a 429 falls back with fallback_on_429", prompt: "E strong-429", on429: true, status: 200, decision: "escalate+fallback", model: "fast-model"},
		{name: "without fallback a strong error on escalate is a 502", prompt: "E strong-500", noFallback: true, status: 502, decision: "escalate", model: "none",
			errContains: "the upstream failed: strong tier (strong-model) answered 500"},
		{name: "a strong error after a fast answer returns the fast answer", prompt: "S strong-500", status: 200, decision: "speculate",
			model: "fast-model", content: upstreamsim.DefaultAnswer, spec: SpecFastFallback},
		// A 2xx that is no answer is a failed call, not a winner.
		{name: "a strong 200 that is not JSON after a fast answer returns the fast answer", prompt: "S strong-garbage", status: 200, decision: "speculate",
			model: "fast-model", content: upstreamsim.DefaultAnswer, spec: SpecFastFallback},
		{name: "a fast 200 without choices falls back to the strong tier", prompt: "F fast-empty", status: 200, decision: "fast+fallback", model: "strong-model", content: upstreamsim.DefaultAnswer},
		{name: "a strong 200 that is not JSON on escalate falls back to the fast tier", prompt: "E strong-garbage", status: 200, decision: "escalate+fallback", model: "fast-model", content: upstreamsim.DefaultAnswer},
		{name: "without fallback a strong 200 that is no answer is a 502", prompt: "E strong-empty", noFallback: true, status: 502, decision: "escalate", model: "none",
			errContains: "the upstream failed: strong tier (strong-model): answered 200 with a body without choices"},
		// A 2xx cut short (a gateway that closed mid-body but sent a
		// matching Content-Length) is no answer either.
		{name: "a fast 200 cut after the choices key in a speculation uses the strong answer", prompt: "S fast-cutcolon", status: 200, decision: "speculate",
			model: "strong-model", content: upstreamsim.DefaultAnswer, spec: SpecStrongUsed},
		{name: "a strong 200 cut inside the choices after a fast answer returns the fast answer", prompt: "S strong-cutarray", status: 200, decision: "speculate",
			model: "fast-model", content: upstreamsim.DefaultAnswer, spec: SpecFastFallback},
		{name: "a fast redirect falls back to the strong tier", prompt: "F fast-redirect", status: 200, decision: "fast+fallback", model: "strong-model", content: upstreamsim.DefaultAnswer},
		{name: "a streamed strong redirect on escalate falls back to the fast tier", prompt: "E strong-redirect", extra: `,"stream":true`, status: 200,
			decision: "escalate+fallback", model: "fast-model", content: upstreamsim.DefaultAnswer},
		{name: "without fallback a strong redirect is a 502", prompt: "E strong-redirect", noFallback: true, status: 502, decision: "escalate", model: "none",
			errContains: "the upstream failed: strong tier (strong-model) answered 301"},
		{name: "a fast stream that opens with an error falls back to the strong tier", prompt: "F fast-errstream", extra: `,"stream":true`, status: 200,
			decision: "fast+fallback", model: "strong-model", content: upstreamsim.DefaultAnswer},
		{name: "a strong stream that opens with an error does not win a speculation", prompt: "S strong-errstream", extra: `,"stream":true`, status: 200,
			decision: "speculate", model: "fast-model", content: upstreamsim.DefaultAnswer, spec: SpecFastFallback},
		{name: "without fallback a strong stream that opens with an error is a 502", prompt: "E strong-errstream", extra: `,"stream":true`, noFallback: true,
			status: 502, decision: "escalate", model: "none",
			errContains: "the upstream failed: strong tier (strong-model): answered 200 with a stream that opens with an error: strong engine died"},
		{name: "a fast 200 cut inside the choices falls back to the strong tier", prompt: "F fast-cutarray", status: 200, decision: "fast+fallback", model: "strong-model", content: upstreamsim.DefaultAnswer},
		{name: "without fallback a strong 200 cut after the key is a 502", prompt: "E strong-cutcolon", noFallback: true, status: 502, decision: "escalate", model: "none",
			errContains: "the upstream failed: strong tier (strong-model): answered 200 with a body that is not JSON"},
		{name: "a fast error in a speculation uses the strong answer", prompt: "S fast-500", status: 200, decision: "speculate",
			model: "strong-model", content: upstreamsim.DefaultAnswer, spec: SpecStrongUsed},
		{name: "both tiers failing on the fast path is a 502", prompt: "F fast-500 strong-500", status: 502, decision: "fast+fallback", model: "none",
			errContains: "fast tier (fast-model) answered 500: fast is down; strong tier (strong-model) answered 500: strong is down"},
		{name: "both tiers failing in a speculation is a 502", prompt: "S fast-500 strong-500", status: 502, decision: "speculate", model: "none",
			spec: SpecFailed, errContains: "no upstream answered"},
		{name: "a fast 4xx passes through", prompt: "F fast-400", status: 400, decision: "fast", model: "fast-model", upstreamCode: "injected"},
		{name: "a strong 4xx passes through", prompt: "E strong-400", status: 400, decision: "escalate", model: "strong-model", upstreamCode: "injected"},
		{name: "4xx from both tiers of a speculation passes the strong one through", prompt: "S fast-400 strong-400", status: 400,
			decision: "speculate", model: "strong-model", spec: SpecFailed, upstreamCode: "injected"},
		{name: "a client that names the fast tier bypasses routing", prompt: "E hard", extra: `,"model":"fast"`, status: 200, decision: "fast",
			model: "fast-model", content: "fast wrong"},
		{name: "a client that names the strong tier bypasses routing", prompt: "F hello", extra: `,"model":"strong"`, status: 200,
			decision: "escalate", model: "strong-model", content: "strong hello there"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, rigOptions{fastTimeout: tt.fastTimeout, config: func(c *Config) { c.FallbackOn429, c.Fallback = tt.on429, !tt.noFallback }})
			got := r.do(t, context.Background(), r.url, chatBody(tt.prompt, tt.extra))
			if got.status != tt.status || got.decision != tt.decision || got.model != tt.model {
				t.Fatalf("status %d decision %q model %q, want %d %q %q; body %s", got.status, got.decision, got.model,
					tt.status, tt.decision, tt.model, got.body)
			}
			if len(got.id) != 32 {
				t.Errorf("request id %q, want 32 hex digits", got.id)
			}
			if tt.content != "" && got.content != tt.content {
				t.Errorf("content %q, want %q", got.content, tt.content)
			}
			if got.logprobs != 0 {
				t.Errorf("the client got %d logprobs it did not ask for", got.logprobs)
			}
			if tt.errContains != "" {
				code, msg := errorBody(t, got.body)
				if code != "upstream_failed" || !strings.Contains(msg, tt.errContains) {
					t.Errorf("error %q %q, want upstream_failed containing %q", code, msg, tt.errContains)
				}
			}
			if tt.upstreamCode != "" {
				if code, _ := errorBody(t, got.body); code != tt.upstreamCode {
					t.Errorf("4xx body code %q, want the upstream's %q", code, tt.upstreamCode)
				}
			}
			if tt.spec != "" {
				// Counted when the handler ends, which for a race's
				// winner is after the client has its answer (loser_grace).
				waitFor(t, "speculations{outcome="+tt.spec+"} = 1", func() bool {
					return testutil.ToFloat64(r.h.m.speculation(tt.spec)) == 1
				})
			}
			waitFor(t, "the sims' cancel counts", func() bool {
				return r.fastSim.Stats().Cancelled == tt.fastCancelled && r.strongSim.Stats().Cancelled == tt.strongCancel
			})
			recs := r.recordings(t)
			if len(recs) != 1 {
				t.Fatalf("%d recordings, want 1", len(recs))
			}
			kind, fellBack := strings.CutSuffix(tt.decision, "+fallback")
			if recs[0].RequestID != got.id || recs[0].Decision.Kind != kind || (recs[0].Decision.Fallback != "") != fellBack {
				t.Errorf("recording %s %+v, want %s %q fallback %v", recs[0].RequestID, recs[0].Decision, got.id, kind, fellBack)
			}
			// Cancels seen upstream match cancels recorded.
			var cancelled int64
			for _, o := range recs[0].Outcomes {
				if o.Cancelled {
					cancelled++
				}
			}
			if want := tt.fastCancelled + tt.strongCancel; cancelled != want {
				t.Errorf("%d cancelled outcomes recorded, want %d: %+v", cancelled, want, recs[0].Outcomes)
			}
		})
	}
}

func TestStreaming(t *testing.T) {
	const withUsage = `,"stream":true,"stream_options":{"include_usage":true}`
	idRE := regexp.MustCompile(`"id":"chatcmpl-sim-\d+"`)
	normalise := func(evs []string) string {
		return idRE.ReplaceAllString(strings.Join(evs, "\n"), `"id":"X"`)
	}
	t.Run("fast and escalate relay the upstream's events unchanged", func(t *testing.T) {
		for _, tc := range []struct{ prompt, upstream, model string }{
			{"F hello", "fast", "fast-model"}, {"E hard", "strong", "strong-model"},
		} {
			r := newRig(t, rigOptions{})
			got := r.do(t, context.Background(), r.url, chatBody(tc.prompt, withUsage))
			direct := r.fastURL
			if tc.upstream == "strong" {
				direct = r.strongURL
			}
			want := r.do(t, context.Background(), direct, chatBody(tc.prompt, withUsage+`,"model":"`+tc.model+`"`))
			if got.status != 200 || got.model != tc.model || !strings.HasPrefix(got.ct, "text/event-stream") {
				t.Fatalf("%s: status %d model %q type %q", tc.prompt, got.status, got.model, got.ct)
			}
			if g, w := normalise(got.events), normalise(want.events); g != w {
				t.Errorf("%s: proxied events\n%s\nwant the upstream's\n%s", tc.prompt, g, w)
			}
		}
	})
	tests := []struct {
		name, prompt, model, content string
		strongCancelled              int64
	}{
		{"a stream whose fast tier fails escalates before the first byte", "F fast-500", "strong-model", upstreamsim.DefaultAnswer, 0},
		{"a speculated stream keeps a confident fast answer", "S accept", "fast-model", "fast and sure", 1},
		{"a speculated stream relays the strong answer when the fast one is rejected", "S reject", "strong-model", "strong better", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, rigOptions{})
			got := r.do(t, context.Background(), r.url, chatBody(tt.prompt, `,"stream":true`))
			if got.status != 200 || got.model != tt.model || got.content != tt.content {
				t.Fatalf("status %d model %q content %q, want 200 %q %q", got.status, got.model, got.content, tt.model, tt.content)
			}
			if got.events[len(got.events)-1] != "[DONE]" {
				t.Errorf("stream does not end with [DONE]")
			}
			if got.usageChunk || got.usageNullSeen || got.logprobs != 0 {
				t.Errorf("the client sees what the proxy asked for: usage chunk %v, usage null %v, %d logprobs",
					got.usageChunk, got.usageNullSeen, got.logprobs)
			}
			waitFor(t, "the strong sim's cancel count", func() bool { return r.strongSim.Stats().Cancelled == tt.strongCancelled })
			if st := r.strongSim.Stats(); st.Cancelled != tt.strongCancelled {
				t.Fatalf("strong sim %+v, want %d cancelled", st, tt.strongCancelled)
			}
			recs := r.recordings(t)
			o, ok := recs[0].Outcomes[map[string]string{"fast-model": "fast-log-name", "strong-model": "strong-log-name"}[tt.model]]
			if !ok || o.Response != tt.content || o.OutputTokens == nil {
				t.Errorf("recorded outcome of the served tier %+v, want its response and usage", o)
			}
		})
	}
}

func TestClientLeavingCancelsBothCalls(t *testing.T) {
	for _, stream := range []string{"", `,"stream":true`} {
		r := newRig(t, rigOptions{})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, r.url+"/v1/chat/completions",
				strings.NewReader(chatBody("S fast-hang strong-hang", stream)))
			if resp, err := http.DefaultClient.Do(req); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
		waitFor(t, "both calls in flight", func() bool {
			return r.fastSim.Stats().InFlight == 1 && r.strongSim.Stats().InFlight == 1
		})
		cancel()
		<-done
		waitFor(t, "both sims to see the cancel", func() bool {
			return r.fastSim.Stats().Cancelled == 1 && r.strongSim.Stats().Cancelled == 1
		})
		recs := r.recordings(t)
		if len(recs) != 1 || len(recs[0].Outcomes) != 2 {
			t.Fatalf("recordings %+v, want one with two outcomes", recs)
		}
		for m, o := range recs[0].Outcomes {
			if !o.Cancelled || o.LatencyMS == nil {
				t.Errorf("%s outcome %+v, want cancelled with the time it ran", m, o)
			}
		}
		if n := testutil.ToFloat64(r.h.m.speculation(SpecAbandoned)); n != 1 {
			t.Errorf("abandoned speculations = %v, want 1", n)
		}
	}
}

// TestRaceAfterTheClientLeft runs a speculation's race when the client
// has gone and both calls have ended by that (their contexts derive from
// the client's): the race's select finds three channels ready and picks
// any. Whichever it picks, the request is abandoned with both calls
// recorded as cancelled by the client, never failed with them dropped
// (as it was one time in six, seen once under make test's load).
func TestRaceAfterTheClientLeft(t *testing.T) {
	r := newRig(t, rigOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ended := func(tr *tier) *call {
		c := &call{t: tr, err: context.Canceled, ready: make(chan struct{}), done: make(chan struct{})}
		close(c.ready)
		close(c.done)
		return c
	}
	for i := range 60 {
		fc, sc := ended(r.h.tiers[0]), ended(r.h.tiers[1])
		x := &exchange{h: r.h, w: httptest.NewRecorder(), ctx: ctx, calls: []*call{fc, sc},
			choice: Choice{Tier: 0, Race: 1, Decision: "speculate"}}
		x.race(fc, sc)
		if x.spec != SpecAbandoned || x.status != statusClientGone || len(x.cancelled) != 2 {
			t.Fatalf("try %d: speculation %q, status %d, %d calls recorded as cancelled; want %q, %d, 2",
				i, x.spec, x.status, len(x.cancelled), SpecAbandoned, statusClientGone)
		}
	}
}

func TestRecording(t *testing.T) {
	t.Run("a speculation records both calls with usage, cost, confidence and the answer", func(t *testing.T) {
		r := newRig(t, rigOptions{})
		got := r.do(t, context.Background(), r.url, chatBody("S accept", `,"metadata":{"tenant":"acme"}`))
		if got.status != 200 {
			t.Fatalf("status %d: %s", got.status, got.body)
		}
		waitFor(t, "the strong cancel", func() bool { return r.strongSim.Stats().Cancelled == 1 })
		recs := r.recordings(t)
		rec := recs[0]
		if rec.Decision.PHard != 0.5 || rec.Decision.ModelVersion != "v-test" || rec.Decision.Propensity != 1 || rec.Forced {
			t.Errorf("decision %+v forced %v", rec.Decision, rec.Forced)
		}
		if rec.Meta["tenant"] != "acme" || len(rec.Messages) != 1 || rec.Messages[0].Content != "S accept" {
			t.Errorf("request %+v %+v", rec.Messages, rec.Meta)
		}
		f := rec.Outcomes["fast-log-name"]
		// The log's usage for s-accept is 1000 in, 2000 out; the fast
		// prices are 0.001 and 0.002 per 1k: 0.001 + 0.004.
		if f.InputTokens == nil || *f.InputTokens != 1000 || *f.OutputTokens != 2000 || math.Abs(*f.CostUSD-0.005) > 1e-12 {
			t.Errorf("fast usage/cost %+v", f)
		}
		// The sim's logprobs average to the log's confidence.
		if f.Confidence == nil || math.Abs(*f.Confidence-(-0.05)) > 1e-9 || f.Response != "fast and sure" || f.Cancelled {
			t.Errorf("fast outcome %+v", f)
		}
		s := rec.Outcomes["strong-log-name"]
		if !s.Cancelled || s.LatencyMS == nil || s.CostUSD != nil || s.Response != "" {
			t.Errorf("strong outcome %+v, want cancelled with no cost (no strong call has completed yet)", s)
		}
		if v := testutil.ToFloat64(r.h.m.costs.WithLabelValues("fast")); math.Abs(v-0.005) > 1e-12 {
			t.Errorf("fast cost metric %v, want 0.005", v)
		}
		if v := testutil.ToFloat64(r.h.m.tokens.WithLabelValues("fast", "output")); v != 2000 {
			t.Errorf("fast output tokens metric %v, want 2000", v)
		}
		if n := testutil.ToFloat64(r.h.m.cancels.WithLabelValues("strong", "loser")); n != 1 {
			t.Errorf("strong loser cancels %v, want 1", n)
		}
	})
	t.Run("record_responses off keeps the answer out of the store", func(t *testing.T) {
		r := newRig(t, rigOptions{noResponses: true})
		r.do(t, context.Background(), r.url, chatBody("F hello", ""))
		recs := r.recordings(t)
		if o := recs[0].Outcomes["fast-log-name"]; o.Response != "" || o.LatencyMS == nil {
			t.Errorf("outcome %+v, want latency and no response", o)
		}
	})
	t.Run("a client-picked tier is recorded as forced", func(t *testing.T) {
		r := newRig(t, rigOptions{})
		r.do(t, context.Background(), r.url, chatBody("F hello", `,"model":"strong"`))
		recs := r.recordings(t)
		if !recs[0].Forced || recs[0].Decision.Propensity != 0 || recs[0].Decision.Kind != "escalate" {
			t.Errorf("recording %+v, want forced escalate with no propensity", recs[0])
		}
	})
	t.Run("without a confidence calibration a speculation never accepts", func(t *testing.T) {
		r := newRig(t, rigOptions{noConfidenceCal: true})
		got := r.do(t, context.Background(), r.url, chatBody("S reject", ""))
		if got.model != "strong-model" {
			t.Errorf("model %q, want strong-model", got.model)
		}
	})
}

func TestProRataCost(t *testing.T) {
	// Prices of 1 per input token and 2 per output token.
	tr := &tier{priceIn: 1, priceOut: 2}
	if _, ok := tr.proRata(10, 40); ok {
		t.Fatal("a tier with no completed call has a pro-rata cost")
	}
	// 10 prompt tokens for 40 bytes (0.25 a byte), 5 out, 100 ms.
	tr.observe(100, &usage{PromptTokens: 10, CompletionTokens: 5}, 40)
	// A call of 40 bytes would cost 10 + 10 in full.
	tests := []struct {
		name  string
		ran   float64
		bytes int
		want  float64
	}{
		{"half the mean latency costs half", 50, 40, 10},
		{"the mean latency or more costs the whole", 300, 40, 20},
		{"a longer prompt costs more", 100, 400, 100 + 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, _ := tr.proRata(tt.ran, tt.bytes); math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("proRata(%v, %d) = %v, want %v", tt.ran, tt.bytes, got, tt.want)
			}
		})
	}
	t.Run("a large prompt does not inflate later cancellations", func(t *testing.T) {
		// 200 KB at the same 0.25 tokens a byte: the tokens per byte and
		// the mean output stay, so a small call cancelled at half the
		// mean latency still costs what it did. (Billing on the mean
		// cost, as before, made it 25,000x.)
		tr.observe(100, &usage{PromptTokens: 50_000, CompletionTokens: 5}, 200_000)
		if got, _ := tr.proRata(50, 40); math.Abs(got-10) > 1e-9 {
			t.Errorf("proRata(50, 40) after a large prompt = %v, want 10", got)
		}
	})
}

func TestAPIKey(t *testing.T) {
	r := newRig(t, rigOptions{apiKey: "sk-secret-123"})
	r.do(t, context.Background(), r.url, chatBody("F fast-500", ""))
	if got := <-r.auth; got != "Bearer sk-secret-123" {
		t.Errorf("Authorization %q, want the bearer key", got)
	}
	r.recordings(t)
	if strings.Contains(r.logs.String(), "sk-secret") {
		t.Errorf("the key reached the log: %s", r.logs)
	}
	_, err := New(Config{Tiers: Tiers{Fast: Tier{BaseURL: "http://x/v1", Model: "m", APIKeyEnv: "NOPE"}, Strong: Tier{BaseURL: "http://y/v1", Model: "m"}}},
		Deps{Router: func() Router { return nil }, Registry: prometheus.NewRegistry(), Getenv: func(string) string { return "" }})
	if err == nil || !strings.Contains(err.Error(), "NOPE, which is not set") {
		t.Errorf("err = %v, want one naming the unset variable", err)
	}
}

func TestBadRequests(t *testing.T) {
	r := newRig(t, rigOptions{})
	tests := []struct {
		name, body string
		status     int
		code       string
		msg        string // the message, when given
	}{
		{"invalid JSON is a 400", `{"messages":`, 400, codeInvalidJSON, ""},
		{"no messages is a 400", `{"model":"triage"}`, 400, codeInvalidRequest, ""},
		// In JSON's words: the decoder's own names the Go type, tags and all.
		{"messages of the wrong type is a 400 naming the field", `{"messages":"hi"}`, 400, codeInvalidRequest,
			"messages: want an array of objects, got a JSON string"},
		{"a message of the wrong type is a 400 in JSON's words", `{"messages":[5]}`, 400, codeInvalidRequest, "messages: want an object, got a JSON number"},
		{"metadata of the wrong type is a 400 in JSON's words", `{"messages":[{"role":"user","content":"hi"}],"metadata":"x"}`, 400, codeInvalidRequest,
			"metadata: want an object, got a JSON string"},
		{"stream_options of the wrong type is a 400 in JSON's words", `{"messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":"x"}`, 400, codeInvalidRequest,
			"stream_options: want an object, got a JSON string"},
		{"a user message without content is a 400", `{"messages":[{"role":"user"}]}`, 400, codeInvalidRequest,
			"messages[0].content is missing; a user message needs its content (a string, or an array of content parts)"},
		{"a user message with null content is a 400", `{"messages":[{"role":"user","content":null}]}`, 400, codeInvalidRequest,
			"messages[0].content is missing; a user message needs its content (a string, or an array of content parts)"},
		{"invalid UTF-8 is a 400", "{\"messages\":[{\"role\":\"user\",\"content\":\"\xff\"}]}", 400, codeInvalidUTF8, ""},
		{"an unknown model is a 400 listing the choices", chatBody("F hello", `,"model":"gpt-5"`), 400, codeUnknownModel, ""},
		// chatBody's bytes, without json.Marshal: escaping 16 MiB under
		// -race took 2 s, the test's whole cost.
		{"an oversized body is a 413", `{"messages":[{"role":"user","content":"` + strings.Repeat("x", DefaultMaxBodyBytes) + `"}]}`, 413, codeBodyTooLarge, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := r.do(t, context.Background(), r.url, tt.body)
			if got.status != tt.status {
				t.Fatalf("status %d, want %d: %s", got.status, tt.status, got.body)
			}
			if code, msg := errorBody(t, got.body); code != tt.code || msg == "" || tt.msg != "" && msg != tt.msg {
				t.Errorf("error %q %q, want code %q, message %q", code, msg, tt.code, tt.msg)
			}
			if got.model != "none" || got.id == "" || got.decision == "" {
				t.Errorf("headers decision %q model %q id %q, want all set", got.decision, got.model, got.id)
			}
		})
	}
	if n := r.fastSim.Stats().Requests + r.strongSim.Stats().Requests; n != 0 {
		t.Errorf("%d bad requests reached an upstream", n)
	}
	if recs := r.recordings(t); len(recs) != 0 {
		t.Errorf("%d refused requests recorded", len(recs))
	}
}

func TestUpstreamBody(t *testing.T) {
	tests := []struct {
		name, body   string
		wantLogprobs bool
		want         string
	}{
		{"the model is replaced and other fields kept in their order, as sent", `{"model":"triage","temperature":0.2, "tools" : [ {"a":"<&>"} ],"messages":[{"role":"user","content":"x"}]}`, false,
			`{"model":"up","temperature":0.2,"tools" : [ {"a":"<&>"} ],"messages":[{"role":"user","content":"x"}]}`},
		{"logprobs are asked for when needed", `{"messages":[{"role":"user","content":"x"}]}`, true,
			`{"messages":[{"role":"user","content":"x"}],"model":"up","logprobs":true}`},
		{"logprobs false becomes true when needed", `{"logprobs":false,"messages":[{"role":"user","content":"x"}]}`, true,
			`{"logprobs":true,"messages":[{"role":"user","content":"x"}],"model":"up"}`},
		{"logprobs the client asked for are left alone", `{"logprobs":true,"top_logprobs":2,"messages":[{"role":"user","content":"x"}]}`, true,
			`{"logprobs":true,"top_logprobs":2,"messages":[{"role":"user","content":"x"}],"model":"up"}`},
		{"a stream asks for usage", `{"stream":true,"stream_options":{"x":1},"messages":[{"role":"user","content":"x"}]}`, false,
			`{"stream":true,"stream_options":{"include_usage":true,"x":1},"messages":[{"role":"user","content":"x"}],"model":"up"}`},
		{"a stream without stream_options gets them", `{"stream":true,"messages":[{"role":"user","content":"x"}]}`, false,
			`{"stream":true,"messages":[{"role":"user","content":"x"}],"model":"up","stream_options":{"include_usage":true}}`},
		{"a stream's own include_usage is replaced, its other options kept as sent", `{"stream":true,"stream_options":{ "a" : [1, {"b":"}"}] ,"include_usage":false,"include\u005fusage":null,"Other":1},"messages":[{"role":"user","content":"x"}]}`, false,
			`{"stream":true,"stream_options":{"include_usage":true,"a" : [1, {"b":"}"}],"Other":1},"messages":[{"role":"user","content":"x"}],"model":"up"}`},
		{"null stream_options get them", `{"stream":true,"stream_options":null,"messages":[{"role":"user","content":"x"}]}`, false,
			`{"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}],"model":"up"}`},
		{"a member named twice is sent once with its last value", `{"model":"a","temperature":1,"messages":[{"role":"user","content":"x"}],"temperature":0.5,"model":"b"}`, false,
			`{"messages":[{"role":"user","content":"x"}],"temperature":0.5,"model":"up"}`},
		{"an escaped model key is replaced", `{"mod\u0065l":"a","messages":[{"role":"user","content":"x"}]}`, false,
			`{"model":"up","messages":[{"role":"user","content":"x"}]}`},
		// OpenAI answers metadata without store with a 400: a client that
		// sent the router its meta got that from an OpenAI tier.
		{"metadata, the router's meta, is not sent upstream", `{"metadata":{"tenant":"acme"},"messages":[{"role":"user","content":"x"}],"metadata":{"a":"b"}}`, false,
			`{"messages":[{"role":"user","content":"x"}],"model":"up"}`},
		{"a stored completion keeps its metadata", `{"store":true,"metadata":{"tenant":"acme"},"messages":[{"role":"user","content":"x"}]}`, false,
			`{"store":true,"metadata":{"tenant":"acme"},"messages":[{"role":"user","content":"x"}],"model":"up"}`},
		{"store false drops it", `{"store":false,"metadata":{"tenant":"acme"},"messages":[{"role":"user","content":"x"}]}`, false,
			`{"store":false,"messages":[{"role":"user","content":"x"}],"model":"up"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := parseRequest([]byte(tt.body), apiChat, caps{})
			if err != nil {
				t.Fatal(err)
			}
			b, err := req.upstreamBody("up", tt.wantLogprobs)
			if err != nil || string(b) != tt.want {
				t.Errorf("got %s (%v)\nwant %s", b, err, tt.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Tier{BaseURL: "http://127.0.0.1:8000/v1", Model: "m"}
	tests := []struct {
		name string
		fast Tier
		want string
	}{
		{"a missing base_url names the key", Tier{Model: "m"}, "tiers.fast.base_url is empty"},
		{"a non-http base_url is refused", Tier{BaseURL: "ftp://x", Model: "m"}, "not an http(s) URL"},
		{"a base_url with a port out of range is refused", Tier{BaseURL: "http://127.0.0.1:119001/v1", Model: "m"}, `base_url "http://127.0.0.1:119001/v1" has port 119001; want a port in 1..65535`},
		{"a base_url with port 0 is refused", Tier{BaseURL: "http://127.0.0.1:0/v1", Model: "m"}, "has port 0"},
		{"a base_url with the path is refused", Tier{BaseURL: "http://x/v1/chat/completions", Model: "m"}, "ends in /chat/completions"},
		{"a missing model names the key", Tier{BaseURL: "http://x/v1"}, "tiers.fast.model is empty"},
		{"a negative price is refused", Tier{BaseURL: "http://x/v1", Model: "m", PriceInPer1K: -1}, "price_in_per_1k"},
		{"h2c on an https base_url is refused", Tier{BaseURL: "https://x/v1", Model: "m", H2C: true}, "h2c is HTTP/2 without TLS"},
		{"a header the proxy sets is refused", Tier{BaseURL: "http://x/v1", Model: "m", Headers: map[string]string{"content-type": "text/plain"}}, "tiers.fast.headers.content-type is a header the proxy sets itself"},
		{"a header name with a space is refused", Tier{BaseURL: "http://x/v1", Model: "m", Headers: map[string]string{"Open AI": "x"}}, `headers has "Open AI", which is not a header name`},
		{"a header value with a line break is refused", Tier{BaseURL: "http://x/v1", Model: "m", Headers: map[string]string{"X-A": "a\r\nX-B: b"}}, "headers.X-A holds a character a header value cannot"},
		{"Authorization beside api_key_env is refused", Tier{BaseURL: "http://x/v1", Model: "m", APIKeyEnv: "K", HeadersEnv: map[string]string{"Authorization": "GW"}}, "would replace the key api_key_env sends"},
		{"one header in both maps is refused", Tier{BaseURL: "http://x/v1", Model: "m", Headers: map[string]string{"api-key": "x"}, HeadersEnv: map[string]string{"Api-Key": "K"}}, "given twice"},
		{"headers_env without a variable is refused", Tier{BaseURL: "http://x/v1", Model: "m", HeadersEnv: map[string]string{"api-key": ""}}, "headers_env.api-key names no environment variable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Config{Tiers: Tiers{Fast: tt.fast, Strong: ok}}.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
	if err := (Config{Tiers: Tiers{Fast: ok, Strong: ok}}).Validate(); err != nil {
		t.Errorf("a good config: %v", err)
	}
	for _, tc := range []struct {
		name string
		set  func(*Config)
		want string
	}{
		{"a negative response_ttl is refused", func(c *Config) { c.ResponseTTL = -time.Hour }, "response_ttl is -1h0m0s; want at least 1m"},
		{"a response_ttl of seconds is refused", func(c *Config) { c.ResponseTTL = 30 * time.Second }, "response_ttl is 30s"},
		{"a negative response_memory is refused", func(c *Config) { c.ResponseMemory = -1 }, "response_memory must not be negative"},
		{"a negative max_tools is refused", func(c *Config) { c.MaxTools = -1 }, "max_tools, record_queue and response_memory must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{Tiers: Tiers{Fast: ok, Strong: ok}}
			tc.set(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestH2CTiersSpeakHTTP2(t *testing.T) {
	r := newRig(t, rigOptions{h2c: true})
	got := r.do(t, context.Background(), r.url, chatBody("S accept", ""))
	if got.status != 200 || got.decision != "speculate" || got.model != "fast-model" {
		t.Fatalf("status %d decision %q model %q, want a speculation's fast answer", got.status, got.decision, got.model)
	}
	// The fast call reached its sim; the strong one may have been
	// cancelled before it did.
	n := len(r.protos)
	if n == 0 {
		t.Fatal("no upstream call reached a sim")
	}
	for range n {
		if p := <-r.protos; p != "HTTP/2.0" {
			t.Errorf("an upstream was called with %s, want HTTP/2.0 (h2c)", p)
		}
	}
}

// FuzzParseRequest reads arbitrary client bodies as each API's request:
// a refusal is an *apiError, and an accepted request goes upstream as the
// client sent it, with the tier's model, logprobs asked in that API's
// words and, for a stream, the usage.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(`{"model":"triage","messages":[{"role":"user","content":"hi"}],"stream":true}`))
	f.Add([]byte(`{"messages":[{"role":"user","content":[{"type":"text","text":"a"}]}],"metadata":{"k":"v"}}`))
	f.Add([]byte(`{"messages":null}`))
	f.Add([]byte(`{"model":"triage","prompt":["a","b"],"logprobs":0,"stream":true,"stream_options":{"x":1}}`))
	f.Add([]byte(`{"model":"triage","instructions":"s","input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"a"}]}],"include":["x"],"tools":[{}]}`))
	f.Add([]byte(`{"input":"hi","include":null,"stream":true}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, a := range []*api{apiChat, apiCompletions, apiResponses} {
			req, err := parseRequest(b, a, caps{})
			if err != nil {
				if _, ok := err.(*apiError); !ok {
					t.Fatalf("%s: error %T %v is not an *apiError", a.path, err, err)
				}
				continue
			}
			switch a {
			case apiChat:
				if len(req.messages) == 0 || len(req.input.Messages) != len(req.messages) {
					t.Fatalf("accepted a request without messages")
				}
			case apiCompletions:
				if req.input.Prompt != req.prompt {
					t.Fatalf("%s: routes on %q, the prompt is %q", a.path, req.input.Prompt, req.prompt)
				}
			case apiResponses:
				if len(req.input.Messages) != len(req.messages) {
					t.Fatalf("%s: routes on %d messages of %d", a.path, len(req.input.Messages), len(req.messages))
				}
			}
			ub, err := req.upstreamBody("m", true)
			if err != nil {
				t.Fatalf("%s: upstream body of an accepted request: %v", a.path, err)
			}
			// The upstream reads what the client sent, with the tier's model
			// and logprobs.
			var got, sent map[string]any
			if err := json.Unmarshal(ub, &got); err != nil {
				t.Fatalf("%s: upstream body %s is not a JSON object: %v", a.path, ub, err)
			}
			json.Unmarshal(b, &sent)
			sent["model"] = "m"
			if !req.keepMetadata {
				delete(sent, "metadata")
			}
			switch {
			case a == apiChat:
				sent["logprobs"] = true
			case req.logprobs:
			case a == apiCompletions:
				sent["logprobs"] = 1.0
			case a == apiResponses:
				inc, _ := sent["include"].([]any)
				sent["include"] = append(inc, includeLogprobs)
			}
			if req.stream && !req.includeUsage && a != apiResponses {
				opts, _ := sent["stream_options"].(map[string]any)
				if opts == nil {
					opts = map[string]any{}
				}
				opts["include_usage"] = true
				sent["stream_options"] = opts
			}
			if !reflect.DeepEqual(got, sent) {
				t.Fatalf("%s: upstream body %s decodes to %v, want %v", a.path, ub, got, sent)
			}
		}
	})
}

func TestBrokenStream(t *testing.T) {
	// The sims cut a stream midway: with a 100 ms answer the proxy has
	// relayed its first half 35 ms before; "S reject" waits for a strong
	// answer of 400 ms.
	tests := []struct {
		name, prompt string
		latency      time.Duration
	}{
		{"a relayed fast stream that the upstream cuts aborts the client's stream", "F fast-cut", 100 * time.Millisecond},
		{"an escalated stream that the upstream cuts aborts the client's stream", "E strong-cut", 100 * time.Millisecond},
		{"a speculation relaying a strong stream that is cut aborts the client's stream", "S reject strong-cut", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, rigOptions{fixedLatency: tt.latency})
			resp, err := http.Post(r.url+"/v1/chat/completions", "application/json", strings.NewReader(chatBody(tt.prompt, `,"stream":true`)))
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil {
				t.Fatalf("the client read a whole stream: %q", b)
			}
			if bytes.Contains(b, []byte("[DONE]")) {
				t.Errorf("a broken stream reached the client with [DONE]: %q", b)
			}
			recs := r.recordings(t)
			if len(recs) != 1 || recs[0].Decision.Error != "stream_broken" {
				t.Fatalf("recordings %+v, want one with error stream_broken", recs)
			}
			decision := recs[0].Decision.Kind
			if n := testutil.ToFloat64(r.h.m.requests.WithLabelValues(decision, "502")); n != 1 {
				t.Errorf("requests{decision=%s,code=502} = %v, want 1", decision, n)
			}
		})
	}
}

func TestStreamErrorAfterData(t *testing.T) {
	// A stream that carries an error object after its first data, then
	// "data: [DONE]" (vLLM's engine failing mid-answer). A speculation
	// kept such a fast stream on the confidence of its first tokens and
	// cancelled the strong call, so the client got the error instead of
	// the strong answer; a relayed one was recorded as a whole answer.
	t.Run("a speculation does not keep it and serves the strong answer", func(t *testing.T) {
		r := newRig(t, rigOptions{})
		got := r.do(t, context.Background(), r.url, chatBody("S fast-miderr", `,"stream":true`))
		if got.status != 200 || got.model != "strong-model" || got.content != upstreamsim.DefaultAnswer {
			t.Fatalf("status %d model %q content %q, want the strong answer", got.status, got.model, got.content)
		}
		recs := r.recordings(t)
		if len(recs) != 1 || recs[0].Decision.Error != "" {
			t.Fatalf("recordings %+v, want one without an error", recs)
		}
		if o, ok := recs[0].Outcomes["fast-log-name"]; ok {
			t.Errorf("fast outcome %+v recorded, want none: its answer failed", o)
		}
		if n := testutil.ToFloat64(r.h.m.speculations.WithLabelValues(SpecStrongUsed)); n != 1 {
			t.Errorf("speculations{outcome=strong_used} = %v, want 1", n)
		}
	})
	t.Run("a relayed one reaches the client with the error and is aborted", func(t *testing.T) {
		// The fast upstream sends the error once the client has read the
		// first chunk: the proxy is relaying by then.
		read := make(chan struct{})
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, `data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"half an"}}]}`+"\n\n")
			w.(http.Flusher).Flush()
			select {
			case <-read:
			case <-req.Context().Done():
				return
			}
			io.WriteString(w, `data: {"error":{"message":"fast engine died","type":"server_error","param":null,"code":500}}`+"\n\ndata: [DONE]\n\n")
		}))
		defer up.Close()
		r := newRig(t, rigOptions{config: func(c *Config) { c.Tiers.Fast.BaseURL = up.URL + "/v1" }})
		resp, err := http.Post(r.url+"/v1/chat/completions", "application/json", strings.NewReader(chatBody("F relayed", `,"stream":true`)))
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(resp.Body)
		first, err := br.ReadString('\n')
		if err != nil || !strings.Contains(first, "half an") {
			t.Fatalf("first line %q, %v; want the fast stream's first chunk", first, err)
		}
		close(read)
		b, err := io.ReadAll(br)
		resp.Body.Close()
		if err == nil || !bytes.Contains(b, []byte("fast engine died")) || bytes.Contains(b, []byte("[DONE]")) {
			t.Fatalf("read %q, %v; want the error event and then an aborted stream", b, err)
		}
		recs := r.recordings(t)
		if len(recs) != 1 || recs[0].Decision.Error != "stream_broken" {
			t.Fatalf("recordings %+v, want one with error stream_broken", recs)
		}
		if o, ok := recs[0].Outcomes["fast-log-name"]; ok {
			t.Errorf("fast outcome %+v recorded as an answer", o)
		}
	})
}

func TestResponsesStreamFailed(t *testing.T) {
	// A Responses API stream that ends with response.failed after
	// confident text is whole (it has its terminal event) but no answer:
	// a speculation kept it on the confidence of that text and cancelled
	// the strong call, so the client got the failure instead of the
	// strong answer, and it was recorded as the fast tier's answer.
	for _, tc := range []struct{ name, prompt, model, text string }{
		{"a speculation serves the strong answer", "S fast-respfailed", "strong-model", upstreamsim.DefaultAnswer},
		{"a failed strong stream does not beat the fast answer", "S strong-respfailed", "fast-model", upstreamsim.DefaultAnswer},
		{"both failed: the client reads a failure", "S fast-respfailed strong-respfailed", "", "half an"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, rigOptions{})
			b, _ := json.Marshal(map[string]any{"input": tc.prompt, "stream": true})
			resp, err := http.Post(r.url+"/v1/responses", "application/json", bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			var text string
			for line := range strings.SplitSeq(string(body), "\n") {
				var ev struct{ Type, Delta string }
				if d, ok := strings.CutPrefix(line, "data: "); ok && json.Unmarshal([]byte(d), &ev) == nil && ev.Type == "response.output_text.delta" {
					text += ev.Delta
				}
			}
			if model := resp.Header.Get(HeaderModel); resp.StatusCode != 200 || tc.model != "" && model != tc.model || text != tc.text {
				t.Fatalf("status %d model %q text %q, want %s's %q:\n%s", resp.StatusCode, model, text, tc.model, tc.text, body)
			}
			recs := r.recordings(t)
			if len(recs) != 1 {
				t.Fatalf("%d recordings, want 1", len(recs))
			}
			for name, o := range recs[0].Outcomes {
				if !o.Cancelled && o.Response == "half an" {
					t.Errorf("%s: the failed stream was recorded as an answer: %+v", name, o)
				}
			}
		})
	}
}

func TestStreamWholeAtItsEnd(t *testing.T) {
	// An upstream that sent the whole stream, "data: [DONE]" included,
	// and then breaks the connection or keeps it open: the answer is
	// whole. It was aborted as a broken stream (curl exit 18, an SDK
	// error, a 502 recorded as stream_broken), and the open connection
	// held the client until the tier's timeout first.
	for _, prompt := range []string{"F fast-donecut", "F fast-donehang"} {
		t.Run(prompt, func(t *testing.T) {
			// The tier's timeout is far beyond the client's: a proxy that
			// waited for it instead of ending at [DONE] fails the request
			// (the client gives up at 10 s), with no wall-clock check to
			// trip on a slow machine.
			r := newRig(t, rigOptions{fastTimeout: time.Minute})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got := r.do(t, ctx, r.url, chatBody(prompt, `,"stream":true`))
			if got.status != 200 || got.content != "whole" || len(got.events) == 0 || got.events[len(got.events)-1] != "[DONE]" {
				t.Fatalf("status %d content %q events %q, want the whole stream", got.status, got.content, got.events)
			}
			recs := r.recordings(t)
			if len(recs) != 1 || recs[0].Decision.Error != "" {
				t.Fatalf("recordings %+v, want one without an error", recs)
			}
			o, ok := recs[0].Outcomes["fast-log-name"]
			if !ok || o.Cancelled || o.OutputTokens == nil || *o.OutputTokens != 1 || o.Response != "whole" {
				t.Errorf("fast outcome %+v, want the whole answer with its usage", o)
			}
			if n := testutil.ToFloat64(r.h.m.requests.WithLabelValues("fast", "200")); n != 1 {
				t.Errorf("requests{decision=fast,code=200} = %v, want 1", n)
			}
		})
	}
}

func TestUpstreamHeaders(t *testing.T) {
	r := newRig(t, rigOptions{})
	get := func(prompt string) *http.Response {
		t.Helper()
		resp, err := http.Post(r.url+"/v1/chat/completions", "application/json", strings.NewReader(chatBody(prompt, "")))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	t.Run("an answer carries the upstream's x-request-id and openai-* headers", func(t *testing.T) {
		resp := get("F hello fast-cookie")
		if id := resp.Header.Get("X-Request-Id"); !strings.HasPrefix(id, "req_chatcmpl-sim-") {
			t.Errorf("X-Request-Id %q, want the upstream's", id)
		}
		if v := resp.Header.Get("Openai-Processing-Ms"); v != "42" {
			t.Errorf("Openai-Processing-Ms %q, want 42", v)
		}
		for _, h := range []string{"Set-Cookie", "X-Hop"} {
			if v := resp.Header.Get(h); v != "" {
				t.Errorf("%s: %q reached the client", h, v)
			}
		}
		if v := resp.Header.Get(HeaderModel); v != "fast-model" {
			t.Errorf("%s %q: the upstream set the proxy's header", HeaderModel, v)
		}
	})
	t.Run("a 429 passes through with Retry-After and the rate-limit headers", func(t *testing.T) {
		resp := get("F fast-429")
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "7" || resp.Header.Get("X-Ratelimit-Remaining-Requests") != "0" {
			t.Errorf("status %d, headers %v", resp.StatusCode, resp.Header)
		}
	})
	t.Run("a 502 carries the soonest back-off hint of the tiers that failed", func(t *testing.T) {
		for _, c := range []struct{ prompt, after, afterMs string }{
			{"F fast-503 strong-500", "30", ""},        // the one tier that gave a hint
			{"F fast-503 strong-503soon", "2", "1500"}, // the soonest of two
			{"E fast-503soon strong-503", "2", "1500"}, // whichever tier went first
			{"F fast-500 strong-500", "", ""},          // none given: none invented
		} {
			resp := get(c.prompt)
			if resp.StatusCode != 502 || resp.Header.Get("Retry-After") != c.after || resp.Header.Get("Retry-After-Ms") != c.afterMs {
				t.Errorf("%q: status %d, Retry-After %q, retry-after-ms %q; want 502, %q, %q", c.prompt, resp.StatusCode,
					resp.Header.Get("Retry-After"), resp.Header.Get("Retry-After-Ms"), c.after, c.afterMs)
			}
		}
	})
	t.Run("a response without an upstream's x-request-id carries the proxy's", func(t *testing.T) {
		// The header the SDKs read into an error's request id: the
		// proxy's own errors had none, so an app logged no id for them;
		// nor had the answers of an upstream that sends none ("-badusage"
		// answers without it, as vLLM does by default).
		for _, body := range []string{chatBody("F fast-500 strong-500", ""), chatBody("hi", `,"model":"claude"`), chatBody("F fast-badusage", "")} {
			resp, err := http.Post(r.url+"/v1/chat/completions", "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if id := resp.Header.Get("X-Request-Id"); id == "" || id != resp.Header.Get(HeaderRequestID) {
				t.Errorf("%s: status %d, X-Request-Id %q, want %s %q", body, resp.StatusCode, id, HeaderRequestID, resp.Header.Get(HeaderRequestID))
			}
		}
	})
}

func TestUpstreamAddressNotShown(t *testing.T) {
	r := newRig(t, rigOptions{})
	// A port nothing listens on: both tiers refuse the connection.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String() + "/v1"
	ln.Close()
	cfg := DefaultConfig()
	cfg.Tiers.Fast = Tier{BaseURL: dead, Model: "fast-model"}
	cfg.Tiers.Strong = Tier{BaseURL: dead, Model: "strong-model"}
	var logs bytes.Buffer
	h, err := New(cfg, Deps{Router: r.h.router, Registry: prometheus.NewRegistry(), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ps := httptest.NewServer(h)
	defer ps.Close()
	got := r.do(t, context.Background(), ps.URL, chatBody("E hard", ""))
	code, msg := errorBody(t, got.body)
	if got.status != 502 || code != codeUpstream || !strings.Contains(msg, "connection refused") {
		t.Errorf("status %d, error %q %q; want 502 upstream_failed saying connection refused", got.status, code, msg)
	}
	if host := ln.Addr().String(); strings.Contains(string(got.body), host) || !strings.Contains(logs.String(), host) {
		t.Errorf("the upstream address %s is in the answer %s, or not in the log %s", host, got.body, logs.String())
	}
}

func TestAliases(t *testing.T) {
	aliases := func(c *Config) {
		c.Aliases = map[string]string{"gpt-4o": ModelRouted, "gpt-4o-mini": TierFast, "o3": TierStrong}
	}
	withDefault := func(c *Config) { aliases(c); c.Aliases[AliasDefault] = TierStrong }
	tests := []struct {
		name     string
		config   func(*Config)
		model    string
		status   int
		decision string
		served   string
	}{
		{"an alias of triage routes", aliases, "gpt-4o", 200, "fast", "fast-model"},
		{"an alias of fast bypasses routing", aliases, "gpt-4o-mini", 200, "fast", "fast-model"},
		{"an alias of strong bypasses routing", aliases, "o3", 200, "escalate", "strong-model"},
		{"a name without an alias is a 400", aliases, "claude", 400, "none", "none"},
		{"the * alias maps every other name", withDefault, "claude", 200, "escalate", "strong-model"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, rigOptions{config: tt.config})
			got := r.do(t, context.Background(), r.url, chatBody("F hello", `,"model":"`+tt.model+`"`))
			if got.status != tt.status || got.decision != tt.decision || got.model != tt.served {
				t.Fatalf("status %d decision %q model %q, want %d %q %q: %s", got.status, got.decision, got.model, tt.status, tt.decision, tt.served, got.body)
			}
			if tt.status == 400 {
				if code, msg := errorBody(t, got.body); code != codeUnknownModel || !strings.Contains(msg, `"triage", "fast", "strong", "gpt-4o", "gpt-4o-mini", "o3"`) {
					t.Errorf("error %q %q, want unknown_model listing the names served", code, msg)
				}
			}
		})
	}
	t.Run("GET /v1/models lists the aliases", func(t *testing.T) {
		r := newRig(t, rigOptions{config: withDefault})
		w := httptest.NewRecorder()
		r.h.ServeModels(w, httptest.NewRequest(http.MethodGet, "/v1/models", nil))
		var list struct {
			Data []modelObject `json:"data"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range list.Data {
			got = append(got, m.ID+">"+m.AliasOf+">"+m.Upstream)
		}
		want := "triage>> fast>>fast-model strong>>strong-model gpt-4o>triage> gpt-4o-mini>fast>fast-model o3>strong>strong-model"
		if strings.Join(got, " ") != want {
			t.Errorf("models %v, want %s", got, want)
		}
	})
	t.Run("GET /v1/models/{id} finds a name the * alias serves, and only with it", func(t *testing.T) {
		// A chat with "claude" is served through "*": looked up first,
		// as some clients do, it was a 404 "not served here".
		for _, c := range []struct {
			config func(*Config)
			status int
			want   string
		}{{withDefault, 200, "claude>strong>strong-model"}, {aliases, 404, ""}} {
			r := newRig(t, rigOptions{config: c.config})
			w := httptest.NewRecorder()
			r.h.ServeModels(w, httptest.NewRequest(http.MethodGet, "/v1/models/claude", nil))
			var m modelObject
			json.Unmarshal(w.Body.Bytes(), &m)
			if got := m.ID + ">" + m.AliasOf + ">" + m.Upstream; w.Code != c.status || c.status == 200 && got != c.want {
				t.Errorf("status %d, %s; want %d %s", w.Code, w.Body, c.status, c.want)
			}
		}
	})
	t.Run("an alias of a served name or to an unknown target is refused", func(t *testing.T) {
		for _, a := range []map[string]string{{"fast": TierStrong}, {"gpt": "gpt-5"}, {"": TierFast}} {
			c := Config{Tiers: Tiers{Fast: Tier{BaseURL: "http://x/v1", Model: "m"}, Strong: Tier{BaseURL: "http://x/v1", Model: "m"}}, Aliases: a}
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "alias") {
				t.Errorf("aliases %v: err %v", a, err)
			}
		}
	})
}

func TestClientMeta(t *testing.T) {
	r := newRig(t, rigOptions{})
	req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(chatBody("F hello", `,"metadata":{"tenant":"spoofed","subject":"math"}`)))
	req = req.WithContext(WithClientMeta(req.Context(), datasets.Meta{"tenant": "acme", "route": "escalate"}))
	w := httptest.NewRecorder()
	r.h.ServeHTTP(w, req)
	if w.Code != 200 || w.Header().Get(HeaderDecision) != "escalate" {
		t.Fatalf("status %d decision %q: the router did not see the key's meta: %s", w.Code, w.Header().Get(HeaderDecision), w.Body)
	}
	recs := r.recordings(t)
	if got := fmt.Sprint(recs[0].Meta); got != "map[route:escalate subject:math tenant:acme]" {
		t.Errorf("recorded meta %s, want the key's tenant over the request's", got)
	}
}

func TestToolsAndTopLogprobs(t *testing.T) {
	const tools = `,"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}]`
	no := false
	for _, tt := range []struct {
		name, prompt, extra string
		speculateTools      *bool
		status              int
		decision            string
	}{
		{"a speculation with tools speculates by default", "S accept", tools, nil, 200, "speculate"},
		{"speculate_tools false sends a speculation with tools to the strong tier", "S reject", tools, &no, 200, "escalate"},
		{"speculate_tools false sends a speculation with legacy functions to the strong tier", "S reject", `,"functions":[{"name":"f","parameters":{"type":"object"}}]`, &no, 200, "escalate"},
		{"speculate_tools false leaves a speculation with no functions alone", "S accept", `,"functions":[]`, &no, 200, "speculate"},
		{"speculate_tools false leaves a request without tools alone", "S accept", "", &no, 200, "speculate"},
		{"speculate_tools false leaves a fast request with tools alone", "F hello", tools, &no, 200, "fast"},
		{"top_logprobs without logprobs is a 400 on the fast route", "F hello", `,"top_logprobs":2`, nil, 400, "none"},
		{"top_logprobs without logprobs is a 400 on the speculate route", "S accept", `,"top_logprobs":2`, nil, 400, "none"},
		{"top_logprobs with logprobs false is a 400", "S accept", `,"logprobs":false,"top_logprobs":2`, nil, 400, "none"},
		{"more tools than max_tools is a 400", "F hello", `,"tools":[{},{},{}]`, nil, 400, "none"},
		{"more legacy functions than max_tools is a 400", "F hello", `,"functions":[{},{},{}]`, nil, 400, "none"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, rigOptions{config: func(c *Config) { c.SpeculateTools = tt.speculateTools; c.MaxTools = 2 }})
			got := r.do(t, context.Background(), r.url, chatBody(tt.prompt, tt.extra))
			if got.status != tt.status || got.decision != tt.decision {
				t.Fatalf("status %d decision %q, want %d %q: %s", got.status, got.decision, tt.status, tt.decision, got.body)
			}
			if tt.status == 400 {
				var e ErrorBody
				json.Unmarshal(got.body, &e)
				param, msg := "top_logprobs", "top_logprobs needs"
				if strings.Contains(tt.extra, "tools") {
					param, msg = "tools", "tools has more than 2 entries (max_tools)"
				} else if strings.Contains(tt.extra, "functions") {
					param, msg = "functions", "functions has more than 2 entries (max_tools)"
				}
				if e.Error.Param == nil || *e.Error.Param != param || e.Error.Type != "invalid_request_error" || !strings.HasPrefix(e.Error.Message, msg) {
					t.Errorf("error %s, want param %s and %q", got.body, param, msg)
				}
			}
		})
	}
}

func TestCompletions(t *testing.T) {
	post := func(t *testing.T, r *rig, body string) (*http.Response, []byte) {
		t.Helper()
		resp, err := http.Post(r.url+"/v1/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	for _, tt := range []struct {
		name, body, decision, model, text string
		strongCancelled                   int64
	}{
		{"a completion is routed on its prompt", `{"model":"triage","prompt":"F hello"}`, "fast", "fast-model", "fast hello there", 0},
		{"a speculated completion keeps a confident fast answer", `{"prompt":"S accept"}`, "speculate", "fast-model", "fast and sure", 1},
		{"a speculated completion waits for the strong answer when the fast one is unsure", `{"prompt":["S reject"]}`, "speculate", "strong-model", "strong better", 0},
		{"a speculated completion stream keeps a confident fast answer", `{"prompt":"S accept","stream":true}`, "speculate", "fast-model", "fast and sure", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, rigOptions{})
			resp, b := post(t, r, tt.body)
			if resp.StatusCode != 200 || resp.Header.Get(HeaderDecision) != tt.decision || resp.Header.Get(HeaderModel) != tt.model {
				t.Fatalf("status %d decision %q model %q, want 200 %q %q: %s", resp.StatusCode, resp.Header.Get(HeaderDecision), resp.Header.Get(HeaderModel), tt.decision, tt.model, b)
			}
			text := ""
			for _, ev := range strings.Split(strings.TrimPrefix(string(b), "data: "), "\n\ndata: ") {
				var a struct {
					Choices []struct {
						Text     string
						Logprobs any
					}
				}
				if ev = strings.TrimSpace(ev); ev == "[DONE]" {
					continue
				}
				if err := json.Unmarshal([]byte(ev), &a); err != nil {
					t.Fatalf("event %q: %v", ev, err)
				}
				for _, c := range a.Choices {
					text += c.Text
					if c.Logprobs != nil {
						t.Errorf("the client got logprobs it did not ask for: %s", ev)
					}
				}
			}
			if text != tt.text {
				t.Errorf("text %q, want %q", text, tt.text)
			}
			waitFor(t, "the strong sim's cancels", func() bool { return r.strongSim.Stats().Cancelled == tt.strongCancelled })
			recs := r.recordings(t)
			if len(recs) != 1 || !strings.Contains(tt.body, `"`+recs[0].Prompt+`"`) || recs[0].Prompt == "" || len(recs[0].Messages) != 0 {
				t.Errorf("recording %+v, want the prompt", recs)
			}
		})
	}
	t.Run("a completion without a prompt is a 400 naming it", func(t *testing.T) {
		r := newRig(t, rigOptions{})
		resp, b := post(t, r, `{"model":"triage"}`)
		var e struct{ Error struct{ Param string } }
		json.Unmarshal(b, &e)
		if resp.StatusCode != 400 || e.Error.Param != "prompt" {
			t.Errorf("status %d: %s", resp.StatusCode, b)
		}
	})
}

func TestEmbeddings(t *testing.T) {
	post := func(t *testing.T, r *rig, body string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Post(r.url+"/v1/embeddings", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	t.Run("embeddings go to the configured tier with its model", func(t *testing.T) {
		r := newRig(t, rigOptions{config: func(c *Config) { c.Embeddings = Embeddings{Tier: TierFast, Model: "embed-small"} }})
		resp, b := post(t, r, `{"model":"text-embedding-3-small","input":"hi"}`)
		if resp.StatusCode != 200 || !strings.Contains(b, `"model":"embed-small"`) || !strings.Contains(b, `"input":"hi"`) ||
			resp.Header.Get("X-Request-Id") != "req_emb" || resp.Header.Get(HeaderModel) != "embed-small" {
			t.Errorf("status %d %v: %s", resp.StatusCode, resp.Header, b)
		}
	})
	t.Run("without a model in the config the client's is passed", func(t *testing.T) {
		r := newRig(t, rigOptions{config: func(c *Config) { c.Embeddings = Embeddings{Tier: TierStrong} }})
		if resp, b := post(t, r, `{"model":"text-embedding-3-small","input":"hi"}`); resp.StatusCode != 200 || !strings.Contains(b, `"model":"text-embedding-3-small"`) {
			t.Errorf("status %d: %s", resp.StatusCode, b)
		}
	})
	t.Run("without embeddings in the config it is a 404 saying how to turn it on", func(t *testing.T) {
		r := newRig(t, rigOptions{})
		if resp, b := post(t, r, `{"input":"hi"}`); resp.StatusCode != 404 || !strings.Contains(b, "embeddings: {tier: fast") {
			t.Errorf("status %d: %s", resp.StatusCode, b)
		} else if id := resp.Header.Get("X-Request-Id"); len(id) != 32 {
			// The id an SDK shows for the error, as on the proxy's
			// other errors.
			t.Errorf("X-Request-Id %q, want the proxy's own id", id)
		}
	})
	t.Run("a tier that does not answer in its timeout is a 502 counted as its timeout", func(t *testing.T) {
		r := newRig(t, rigOptions{fastTimeout: 300 * time.Millisecond,
			config: func(c *Config) { c.Embeddings = Embeddings{Tier: TierFast, Model: "m"} },
			upstream: func(tier string, next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
					if req.URL.Path == "/v1/embeddings" {
						// An upstream that never answers. The body is read
						// first: only then does the server see the proxy
						// close the connection and end the context.
						io.Copy(io.Discard, req.Body)
						<-req.Context().Done()
						return
					}
					next.ServeHTTP(w, req)
				})
			}})
		resp, b := post(t, r, `{"input":"hi"}`)
		if resp.StatusCode != 502 || !strings.Contains(b, "fast tier (fast-model) timed out after 300ms") {
			t.Errorf("status %d: %s; want a 502 naming the tier's timeout", resp.StatusCode, b)
		}
		if got := upstreamCalls(t, r.reg, "fast", "timeout"); got != 1 {
			t.Errorf("timeout results %v, want 1", got)
		}
		if got := testutil.ToFloat64(r.h.m.cancels.WithLabelValues("fast", "timeout")); got != 1 {
			t.Errorf("timeout cancels %v, want 1", got)
		}
	})
	t.Run("a body that is not a JSON object is a 400", func(t *testing.T) {
		r := newRig(t, rigOptions{config: func(c *Config) { c.Embeddings = Embeddings{Tier: TierFast, Model: "m"} }})
		if resp, b := post(t, r, `["hi"]`); resp.StatusCode != 400 {
			t.Errorf("status %d: %s", resp.StatusCode, b)
		}
	})
}

func TestLargeImage(t *testing.T) {
	r := newRig(t, rigOptions{})
	// An 8 MiB image, base64 in a data URL, beside the text.
	img := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xAB}, 8<<20))
	body := `{"messages":[{"role":"user","content":[{"type":"text","text":"F hello"},{"type":"image_url","image_url":{"url":"data:image/png;base64,` + img + `"}}]}]}`
	got := r.do(t, context.Background(), r.url, body)
	if got.status != 200 || got.content != "fast hello there" {
		t.Fatalf("status %d: %.300s", got.status, got.body)
	}
}

// A client without keep-alive (curl) closes its connection once it has
// the answer, while the race's loser runs on for loser_grace: the loser is
// cancelled then because it lost, not because the client left.
func TestLoserCancelledAfterTheClientClosed(t *testing.T) {
	r := newRig(t, rigOptions{config: func(c *Config) { g := time.Second; c.LoserGrace = &g }})
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	defer client.CloseIdleConnections()
	resp, err := client.Post(r.url+"/v1/chat/completions", "application/json", strings.NewReader(chatBody("S accept", "")))
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(resp.Body)
	resp.Body.Close()
	if m := resp.Header.Get(HeaderModel); m != "fast-model" {
		t.Fatalf("answered by %q, want the fast tier's confident answer", m)
	}
	strong := r.h.tiers[1].m
	waitFor(t, "the strong call cancelled", func() bool {
		return testutil.ToFloat64(strong.cancelled(cancelLoser))+testutil.ToFloat64(strong.cancelled(cancelClient)) == 1
	})
	if got := testutil.ToFloat64(strong.cancelled(cancelClient)); got != 0 {
		t.Errorf("cancelled{reason=client} = %v, want 0: the client had its answer", got)
	}
}

// An upstream's negative token count was recorded as it came, and a log
// reader refuses it: the export would stop every retrain.
func TestImplausibleUsageNotRecorded(t *testing.T) {
	r := newRig(t, rigOptions{})
	got := r.do(t, context.Background(), r.url, chatBody("F fast-badusage", ""))
	if got.status != 200 || got.content != "ok" {
		t.Fatalf("status %d content %q, want the answer passed on", got.status, got.content)
	}
	recs := r.recordings(t)
	if len(recs) != 1 {
		t.Fatalf("%d recordings, want 1", len(recs))
	}
	for m, o := range recs[0].Outcomes {
		if o.InputTokens != nil || o.OutputTokens != nil || o.CostUSD != nil {
			t.Errorf("%s recorded with tokens %v/%v and cost %v, want none of them", m, o.InputTokens, o.OutputTokens, o.CostUSD)
		}
		if o.LatencyMS == nil {
			t.Errorf("%s recorded without its latency", m)
		}
	}
	if !strings.Contains(r.logs.String(), "upstream reported usage that cannot be right") {
		t.Errorf("nothing logged: %s", r.logs)
	}
}

// TestUpstreamRefusesLogprobs: an upstream that refuses log-probabilities
// (OpenAI's reasoning models answer them with a 400) as the fast tier. The
// proxy asks a routed fast call for them, for the confidence it records;
// the refusal is the proxy's doing, so the client must get the answer,
// not the 400, and the proxy must stop asking, and stop speculating with
// a tier whose answers the gate cannot judge. logprobs: false in the
// config says so from the start.
func TestUpstreamRefusesLogprobs(t *testing.T) {
	t.Run("learnt from the first refusal", func(t *testing.T) {
		r := newRig(t, rigOptions{})
		got := r.do(t, context.Background(), r.url, chatBody("F hello fast-nologprobs", ""))
		if got.status != 200 || got.decision != "fast" || got.model != "fast-model" {
			t.Fatalf("routed fast to a tier refusing logprobs: status %d, decision %q, model %q, body %s; want 200 from the fast tier", got.status, got.decision, got.model, got.body)
		}
		recs := r.recordings(t)
		if len(recs) != 1 || len(recs[0].Outcomes) != 1 {
			t.Fatalf("recordings %+v, want one with the fast answer alone (the refused call is no outcome)", recs)
		}
		if n := strings.Count(r.logs.String(), "refused log-probabilities"); n != 1 {
			t.Errorf("the refusal was logged %d times, want once: %s", n, r.logs.String())
		}
		// A client that asks for logprobs itself gets the upstream's
		// refusal: it is the answer to its own request.
		got = r.do(t, context.Background(), r.url, chatBody("F hello fast-nologprobs", `,"logprobs":true`))
		if got.status != 400 {
			t.Errorf("a client asking logprobs of a tier refusing them: status %d, want the upstream's 400", got.status)
		}
		// What the router would speculate now escalates: the fast answer
		// would carry no confidence for the gate.
		got = r.do(t, context.Background(), r.url, chatBody("S strong first", ""))
		if got.status != 200 || got.decision != "escalate" || got.model != "strong-model" {
			t.Errorf("a speculation with the tier refusing logprobs: status %d, decision %q, model %q; want 200, escalate, strong-model", got.status, got.decision, got.model)
		}
	})
	t.Run("said by the config", func(t *testing.T) {
		off := false
		r := newRig(t, rigOptions{config: func(c *Config) { c.Tiers.Fast.Logprobs = &off }})
		got := r.do(t, context.Background(), r.url, chatBody("S strong first", ""))
		if got.status != 200 || got.decision != "escalate" {
			t.Errorf("speculation with logprobs: false on the fast tier: status %d, decision %q; want 200, escalate", got.status, got.decision)
		}
		got = r.do(t, context.Background(), r.url, chatBody("F hello fast-nologprobs", ""))
		if got.status != 200 || strings.Contains(r.logs.String(), "refused log-probabilities") {
			t.Errorf("a fast call was asked for logprobs: status %d, logs %s", got.status, r.logs.String())
		}
	})
}

// A client that stops reading a stream is cut off once a write to it has
// made no progress for WriteStall: the handler (its connection, the
// answer's buffered events, its recording) no longer waits on it for
// ever, as it did with the write deadline lifted for streams.
func TestStalledClientIsCutOff(t *testing.T) {
	r := newRig(t, rigOptions{config: func(c *Config) { c.WriteStall = 200 * time.Millisecond }})
	conn, err := net.Dial("tcp", strings.TrimPrefix(r.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := chatBody("F fast-flood", `,"stream":true`)
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	// Read the status line, then nothing more.
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.Contains(line, "200") {
		t.Fatalf("status line %q (%v), want 200", line, err)
	}
	waitFor(t, "the handler of the stalled stream to end", func() bool { return r.lastEnd.Load() != nil })
	if st := r.lastReport.Load().Status; st != statusClientGone {
		t.Errorf("the stalled stream's status %d, want %d (client gone)", st, statusClientGone)
	}
	recs := r.recordings(t)
	if len(recs) != 1 {
		t.Fatalf("%d recordings, want the stalled request's", len(recs))
	}
}

// A tier's headers and headers_env go on every call to it, plain,
// streamed, speculated and embeddings alike.
func TestTierHeaders(t *testing.T) {
	r := newRig(t, rigOptions{
		env: map[string]string{"AZURE_KEY": "k-123"},
		config: func(c *Config) {
			c.Tiers.Fast.Headers = map[string]string{"openai-project": "proj_1"}
			c.Tiers.Fast.HeadersEnv = map[string]string{"api-key": "AZURE_KEY"}
			c.Embeddings.Tier = TierFast
		},
	})
	for _, body := range []string{chatBody("F hello", ""), chatBody("F hello", `,"stream":true`), chatBody("S accept", "")} {
		if got := r.do(t, context.Background(), r.url, body); got.status != 200 {
			t.Fatalf("%s: status %d %s", body, got.status, got.body)
		}
		h := <-r.hdrs
		if h.Get("OpenAI-Project") != "proj_1" || h.Get("Api-Key") != "k-123" {
			t.Errorf("%s: the fast tier got OpenAI-Project %q, api-key %q; want proj_1 and k-123", body, h.Get("OpenAI-Project"), h.Get("Api-Key"))
		}
	}
	resp, err := http.Post(r.url+"/v1/embeddings", "application/json", strings.NewReader(`{"model":"fast","input":"hi"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if h := <-r.hdrs; resp.StatusCode != 200 || h.Get("Api-Key") != "k-123" {
		t.Errorf("embeddings: status %d, api-key %q", resp.StatusCode, h.Get("Api-Key"))
	}
	// The variable unset: refused at start, naming the tier, the header
	// and the variable.
	cfg := DefaultConfig()
	cfg.Tiers.Fast = Tier{BaseURL: "http://127.0.0.1:1/v1", Model: "m", HeadersEnv: map[string]string{"api-key": "NOT_SET"}}
	cfg.Tiers.Strong = Tier{BaseURL: "http://127.0.0.1:1/v1", Model: "m"}
	_, err = New(cfg, Deps{Router: func() Router { return nil }, Recorder: &memRecorder{}, Registry: prometheus.NewRegistry(),
		Logger: slog.New(slog.DiscardHandler), Getenv: func(string) string { return "" }})
	if err == nil || !strings.Contains(err.Error(), "tiers.fast.headers_env.api-key names NOT_SET, which is not set") {
		t.Errorf("an unset headers_env variable: %v", err)
	}
}

// The caps on metadata keys and messages counted after the whole body was
// decoded: a body within max_request_bytes of a million tiny keys was
// decoded into a map of a million entries only to be refused
// (BenchmarkRefuseManyEntries: 177 MB at 16 MiB). Counted as sent, the
// refusal now stops at the cap: its allocations do not grow with the
// body (measured in allocations, not time).
//
// Tools and the legacy functions were not counted at all: a 16 MiB body
// of 5.6 million tools ({}) was decoded whole (830 MB, 1.4 s) and sent
// upstream.
func TestCapsRefuseBeforeDecoding(t *testing.T) {
	c := caps{metaKeys: 256, messages: 4096, tools: DefaultMaxTools}
	body := func(head, tail string, n int, entry func(int) string) []byte {
		var b strings.Builder
		b.WriteString(head)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(entry(i))
		}
		b.WriteString(tail)
		return []byte(b.String())
	}
	key := func(i int) string { return fmt.Sprintf(`"%x":""`, i) }
	msg := func(int) string { return `{"role":"user","content":"x"}` }
	tool := func(int) string { return `{}` }
	for _, tt := range []struct {
		name, param string
		a           *api
		body        []byte
	}{
		{"100,000 metadata keys", "metadata", apiChat, body(`{"model":"m","messages":[{"role":"user","content":"hi"}],"metadata":{`, `}}`, 100000, key)},
		{"100,000 messages", "messages", apiChat, body(`{"model":"m","messages":[`, `]}`, 100000, msg)},
		{"100,000 Responses input messages", "input", apiResponses, body(`{"model":"m","input":[`, `]}`, 100000, msg)},
		// Counted as sent: the decoder would keep one key, but 257
		// entries are more than the cap.
		{"a key repeated 257 times", "metadata", apiChat, body(`{"model":"m","messages":[{"role":"user","content":"hi"}],"metadata":{`, `}}`, 257, func(int) string { return `"k":"v"` })},
		{"100,000 tools", "tools", apiChat, body(`{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[`, `]}`, 100000, tool)},
		{"100,000 legacy functions", "functions", apiChat, body(`{"model":"m","messages":[{"role":"user","content":"hi"}],"functions":[`, `]}`, 100000, tool)},
		{"100,000 Responses tools", "tools", apiResponses, body(`{"model":"m","input":"hi","tools":[`, `]}`, 100000, tool)},
		{"100,000 legacy completion prompts", "prompt", apiCompletions, body(`{"model":"m","prompt":[`, `]}`, 100000, func(int) string { return `"x"` })},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			allocs := testing.AllocsPerRun(3, func() { _, err = parseRequest(tt.body, tt.a, c) })
			var ae *apiError
			if !errors.As(err, &ae) || ae.status != http.StatusBadRequest || ae.param != tt.param || !strings.Contains(ae.msg, "more than") {
				t.Fatalf("err = %v, want a 400 on %s saying it has more than the cap", err, tt.param)
			}
			// The members of the body's top level, the error: a few dozen.
			if allocs > 100 {
				t.Errorf("%.0f allocations to refuse it, want a few dozen: the body was decoded", allocs)
			}
		})
	}
	t.Run("a Responses request's messages are counted as parseResponses makes them", func(t *testing.T) {
		c := caps{messages: 3}
		for _, tt := range []struct {
			name, body string
			refused    bool
		}{
			{"instructions and three message items", `{"input":[{"role":"user","content":"a"},{"type":"message","role":"user","content":"b"},{"ROLE":"user","content":"c"}],"instructions":"be brief"}`, true},
			{"three message items", `{"input":[{"role":"user","content":"a"},{"type":"message","role":"user","content":"b"},{"ROLE":"user","content":"c"}],"instructions":""}`, false},
			{"other items are not messages", `{"input":[{"role":"user","content":"a"},{"type":"function_call_output","call_id":"c","output":"x"},{"role":"","content":"b"},{"role":null,"content":"c"},{"type":"reasoning","role":"assistant"}],"instructions":"x"}`, false},
			{"the last of a repeated key counts", `{"input":[{"role":"user","content":"a"},{"role":"user","type":"function_call","type":"message","content":"b"},{"role":"user","content":"c","role":"assistant"}],"instructions":"x"}`, true},
			{"a string input is one message", `{"input":"hi","instructions":"x"}`, false},
		} {
			_, err := parseRequest([]byte(tt.body), apiResponses, c)
			var ae *apiError
			refused := errors.As(err, &ae) && ae.param == "input" && strings.Contains(ae.msg, "more than 3 messages")
			if refused != tt.refused {
				t.Errorf("%s: err %v, want refused %v", tt.name, err, tt.refused)
			}
			// What it refuses early, the count after the decode agrees on.
			if !tt.refused && err == nil {
				req, _ := parseRequest([]byte(tt.body), apiResponses, caps{})
				if len(req.messages) > 3 {
					t.Errorf("%s: read %d messages, over the cap", tt.name, len(req.messages))
				}
			}
			if tt.refused {
				req, err := parseRequest([]byte(tt.body), apiResponses, caps{})
				if err != nil || len(req.messages) <= 3 {
					t.Errorf("%s: refused, but parseResponses makes %d messages (%v)", tt.name, len(req.messages), err)
				}
			}
		}
	})
	t.Run("at the caps the request is read", func(t *testing.T) {
		b := body(`{"model":"m","messages":[`, `]`, 4096, msg)
		b = append(b, body(`,"metadata":{`, `}`, 256, key)...)
		b = append(b, body(`,"functions":[`, `]`, DefaultMaxTools, tool)...)
		b = append(b, body(`,"tools":[`, `]}`, DefaultMaxTools, tool)...)
		req, err := parseRequest(b, apiChat, c)
		if err != nil || len(req.meta) != 256 || len(req.messages) != 4096 || !req.tools {
			t.Fatalf("err %v; want 256 metadata keys, 4096 messages and tools read", err)
		}
		b = body(`{"model":"m","input":"hi","tools":[`, `]}`, DefaultMaxTools, tool)
		if req, err := parseRequest(b, apiResponses, c); err != nil || !req.tools {
			t.Fatalf("err %v; want a Responses request with %d tools read", err, DefaultMaxTools)
		}
		b = body(`{"model":"m","prompt":[`, `]}`, 4096, func(int) string { return `"x"` })
		if req, err := parseRequest(b, apiCompletions, c); err != nil || len(req.prompt) != 2*4096-1 {
			t.Fatalf("err %v; want a completion of 4096 prompts read", err)
		}
	})
	t.Run("an empty array is told from a missing field", func(t *testing.T) {
		for _, tt := range []struct {
			api       *api
			body, msg string
		}{
			{apiChat, `{"model":"m","messages":[]}`, "messages is an empty array;"},
			{apiChat, `{"model":"m"}`, "messages is missing;"},
			{apiCompletions, `{"model":"m","prompt":[]}`, "prompt is an empty array;"},
			{apiCompletions, `{"model":"m"}`, "prompt is missing;"},
		} {
			_, err := parseRequest([]byte(tt.body), tt.api, c)
			var ae *apiError
			if !errors.As(err, &ae) || !strings.HasPrefix(ae.msg, tt.msg) {
				t.Errorf("%s: %v, want a message starting %q", tt.body, err, tt.msg)
			}
		}
	})
	t.Run("token ids are refused as such, however many", func(t *testing.T) {
		b := body(`{"model":"m","prompt":[`, `]}`, 5000, func(i int) string { return fmt.Sprint(i) })
		_, err := parseRequest(b, apiCompletions, c)
		var ae *apiError
		if !errors.As(err, &ae) || ae.param != "prompt" || !strings.Contains(ae.msg, "token ids cannot be routed") {
			t.Errorf("5000 token ids: %v, want the refusal of token ids", err)
		}
	})
	t.Run("the cap is max_tools, and the default is well above OpenAI's 128", func(t *testing.T) {
		b := body(`{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[`, `]}`, 129, tool)
		if _, err := parseRequest(b, apiChat, c); err != nil {
			t.Errorf("129 tools: %v; the default must not refuse what an upstream may take", err)
		}
		_, err := parseRequest(b, apiChat, caps{tools: 128})
		var ae *apiError
		if !errors.As(err, &ae) || ae.param != "tools" || ae.msg != "tools has more than 128 entries (max_tools)" {
			t.Errorf("129 tools over a max_tools of 128: %v", err)
		}
	})
}

// TestResponsesInputDecodesOnlyMessages: a Responses request's input
// items that are not messages (function call outputs and the like) are
// passed on, not routed on, so they are not decoded: 100,000 of them took
// about 105 MB to decode into values at 16 MiB. What is decoded, and
// what is refused, is as when the whole array was decoded.
func TestResponsesInputDecodesOnlyMessages(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"model":"m","input":[{"role":"user","content":"first"}`)
	for i := range 100000 {
		fmt.Fprintf(&b, `,{"type":"function_call_output","call_id":"c%d","output":"x"}`, i)
	}
	b.WriteString(`,{"role":"assistant","content":[{"type":"output_text","text":"last"}]}]}`)
	big := []byte(b.String())
	var req *chatRequest
	var err error
	allocs := testing.AllocsPerRun(3, func() { req, err = parseRequest(big, apiResponses, caps{}) })
	if err != nil {
		t.Fatal(err)
	}
	if len(req.messages) != 2 || req.messages[0].Content != "first" || req.messages[1].Content != "last" {
		t.Fatalf("messages %+v, want first and last", req.messages)
	}
	// The top level and two messages: far fewer than one per item.
	if allocs > 200 {
		t.Errorf("%.0f allocations for 100,000 function call outputs: the items were decoded", allocs)
	}
	for _, tt := range []struct {
		input, param string // param "" accepts
		msgs         int
	}{
		{`[null, {"role":"user","content":"a"}]`, "", 1},
		{`[{"type":"message","role":"user","content":"a"}, {"type":"reasoning","summary":[]}]`, "", 1},
		{`[{"role":"","content":"a"}]`, "", 0},
		{`["a"]`, "input", 0},
		{`[{"role":5,"content":"a"}]`, "input", 0},
		{`[{"role":"user","content":"a"}, {"role":"user","content":5}]`, "input[1].content", 0},
	} {
		req, err := parseRequest([]byte(`{"model":"m","input":`+tt.input+`}`), apiResponses, caps{})
		var ae *apiError
		switch {
		case tt.param == "" && err != nil:
			t.Errorf("%s: %v, want it accepted", tt.input, err)
		case tt.param == "" && len(req.messages) != tt.msgs:
			t.Errorf("%s: %d messages, want %d", tt.input, len(req.messages), tt.msgs)
		case tt.param != "" && (!errors.As(err, &ae) || ae.param != tt.param):
			t.Errorf("%s: err %v, want a 400 on %s", tt.input, err, tt.param)
		}
	}
}

// Whether a request offers tools is read without decoding them; what
// it reads agrees with what decoding "tools" said, on both APIs.
func TestOffersTools(t *testing.T) {
	for _, tt := range []struct {
		name, tools string
		want        bool
		err         string
	}{
		{"one tool", `[{"type":"function","function":{"name":"f"}}]`, true, ""},
		{"an empty array", ` [ ] `, false, ""},
		{"null", `null`, false, ""},
		{"absent", ``, false, ""},
		{"a string is refused", `"f"`, false, "tools: want an array of JSON values, got a JSON string"},
		{"an object is refused", `{"type":"function"}`, false, "tools: want an array of JSON values, got a JSON object"},
	} {
		for _, a := range []*api{apiChat, apiResponses} {
			t.Run(tt.name+" "+a.path, func(t *testing.T) {
				body := `{"model":"m","messages":[{"role":"user","content":"hi"}],"input":"hi"`
				if tt.tools != "" {
					body += `,"tools":` + tt.tools
				}
				req, err := parseRequest([]byte(body+`}`), a, caps{tools: DefaultMaxTools})
				switch {
				case tt.err != "":
					var ae *apiError
					if !errors.As(err, &ae) || ae.msg != tt.err || ae.param != "tools" {
						t.Errorf("err %v, want %q on tools", err, tt.err)
					}
				case err != nil:
					t.Fatal(err)
				case req.tools != tt.want:
					t.Errorf("tools %v, want %v", req.tools, tt.want)
				}
			})
		}
	}
}

// A stream's stream_options were decoded into a map and encoded again
// for each upstream body that asks for usage: a 16 MiB stream_options of
// tiny members cost 451 MB and 4.3 s per body, and nothing counts them.
// Copied as sent, their allocations do not grow with their number
// (measured in allocations, not time).
func TestStreamOptionsAreNotDecoded(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}],"stream_options":{`)
	for i := range 100000 {
		fmt.Fprintf(&b, `"%x":0,`, i)
	}
	b.WriteString(`"include_usage":false}}`)
	req, err := parseRequest([]byte(b.String()), apiChat, caps{})
	if err != nil {
		t.Fatal(err)
	}
	var up []byte
	allocs := testing.AllocsPerRun(3, func() { up, err = req.upstreamBody("fast", true) })
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(up, []byte(`"stream_options":{"include_usage":true,"0":0,`)) || !bytes.HasSuffix(up, []byte(`"1869f":0},"logprobs":true}`)) {
		t.Errorf("upstream body starts %.120s and ends %s", up, up[len(up)-60:])
	}
	if allocs > 20 {
		t.Errorf("%.0f allocations to build the upstream body, want a few: stream_options were decoded", allocs)
	}
}

// A body of valid JSON that is not an object was decoded whole only to
// be refused (827 MB and 1.9 s for a 16 MiB array of zeros): the
// decoder was asked for its error, and valid JSON has none. Refused now
// as it was, without the decode (measured in allocations, not time:
// each 1.5 is one, where a 0 is none); invalid JSON still gets the
// decoder's words.
func TestNotAnObjectIsNotDecoded(t *testing.T) {
	big := []byte("[1.5" + strings.Repeat(",1.5", 100000) + "]")
	var err error
	allocs := testing.AllocsPerRun(3, func() { _, err = parseRequest(big, apiChat, caps{}) })
	var ae *apiError
	if !errors.As(err, &ae) || ae.code != codeInvalidJSON || ae.msg != "request body is not a JSON object; send an OpenAI chat completion request" {
		t.Errorf("err %v, want the invalid_json 400 it was", err)
	}
	if allocs > 20 {
		t.Errorf("%.0f allocations to refuse it, want a few: the body was decoded", allocs)
	}
	_, err = parseRequest([]byte(`{"model":"m",}`), apiChat, caps{})
	if !errors.As(err, &ae) || ae.msg != "request body is not a JSON object: invalid character '}' looking for beginning of object key string; send an OpenAI chat completion request" {
		t.Errorf("invalid JSON: %v, want the decoder's words", err)
	}
}

// TestCapsOfOneAreSingular: a cap of 1 was worded "more than 1 strings"
// and "more than 1 entries".
func TestCapsOfOneAreSingular(t *testing.T) {
	for _, tt := range []struct {
		name, body string
		a          *api
		want       string
	}{
		{"a completion's prompt strings", `{"model":"auto","prompt":["a","b"]}`, apiCompletions, "prompt has more than 1 string (limits.max_messages)"},
		{"a chat's messages", `{"model":"auto","messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}]}`, apiChat, "messages has more than 1 entry (limits.max_messages)"},
		{"a Responses request's messages", `{"model":"auto","input":[{"role":"user","content":"a"},{"role":"user","content":"b"}]}`, apiResponses, "instructions and input hold more than 1 message (limits.max_messages)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseRequest([]byte(tt.body), tt.a, caps{messages: 1})
			var ae *apiError
			if !errors.As(err, &ae) || ae.msg != tt.want {
				t.Errorf("err %v, want %q", err, tt.want)
			}
		})
	}
}

// TestCompletionPromptEmptyOrMissing holds the proxy to what OpenAI's
// legacy completions do, and what the route API and the log reader now do
// too: "prompt": "" (or [""]) is a prompt, routed on no text; no prompt,
// or null, is a 400.
func TestCompletionPromptEmptyOrMissing(t *testing.T) {
	for _, tt := range []struct {
		body    string
		refused bool
	}{
		{`{"model":"m","prompt":""}`, false},
		{`{"model":"m","prompt":[""]}`, false},
		{`{"model":"m"}`, true},
		{`{"model":"m","prompt":null}`, true},
	} {
		req, err := parseRequest([]byte(tt.body), apiCompletions, caps{})
		var ae *apiError
		switch refused := errors.As(err, &ae) && strings.HasPrefix(ae.msg, "prompt is missing;"); {
		case refused != tt.refused:
			t.Errorf("%s: err %v, want refused %v", tt.body, err, tt.refused)
		case !tt.refused && (err != nil || req.prompt != ""):
			t.Errorf("%s: prompt %q, err %v; want an empty prompt", tt.body, req.prompt, err)
		}
	}
}

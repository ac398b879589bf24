package upstreamsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/internal/echo"
)

// Defaults used when the matching Options field is zero.
const (
	// DefaultLatencyMedian and DefaultLatencySigma are the lognormal a
	// record without latency_ms waits when the log has fewer than two
	// latencies for the model to fit one on.
	DefaultLatencyMedian = 500 * time.Millisecond
	DefaultLatencySigma  = 0.5
	// DefaultConfidence is the mean token log-probability of an answer
	// whose record logs no confidence, and of the default answer.
	DefaultConfidence = -0.25
	// DefaultAnswer answers prompts that are not in the log.
	DefaultAnswer = "[sim] this prompt is not in the log"
	// DefaultStreamChunks caps the content chunks of a streamed answer;
	// tokens are grouped to fit.
	DefaultStreamChunks = 16
	// StreamTTFTShare is the share of the wait before a streamed answer's
	// first content chunk.
	StreamTTFTShare = 0.3
	// maxBodyBytes bounds a request body.
	maxBodyBytes = 32 << 20
)

// Reply says what a known prompt is answered with.
type Reply string

const (
	// ReplyRecorded answers with the recorded response, or the placeholder
	// when the record has none. It is the default.
	ReplyRecorded Reply = "recorded"
	// ReplyPlaceholder always answers "[sim] recorded score S for MODEL on
	// ID", so a client can read the score of the answer it got.
	ReplyPlaceholder Reply = "placeholder"
)

// ParseReply reads "recorded" (or "") and "placeholder".
func ParseReply(s string) (Reply, error) {
	switch Reply(s) {
	case "", ReplyRecorded:
		return ReplyRecorded, nil
	case ReplyPlaceholder:
		return ReplyPlaceholder, nil
	}
	return "", fmt.Errorf("reply %q is not known; want %q or %q", s, ReplyRecorded, ReplyPlaceholder)
}

// Fault is an error a test injects for a prompt.
type Fault struct {
	// Status answers with this HTTP status and an OpenAI-style error body;
	// 0 answers normally (after Delay).
	Status int
	// Message is the error body's message.
	Message string
	// Delay is waited before anything else, e.g. to make a call outlive
	// the proxy's timeout.
	Delay time.Duration
	// Header is added to the response, e.g. Retry-After on a 429.
	Header http.Header
	// CutStream cuts a streamed answer midway (where its middle content
	// chunk would be): the connection closes with no more chunks and no
	// [DONE], as when an upstream dies mid-answer.
	CutStream bool
}

// Options configures a Server. Model and Records are required.
type Options struct {
	// Model is the log's outcome key this server plays, and the "model"
	// of its answers.
	Model string
	// Records is the labelled log.
	Records []datasets.Record
	// Reply chooses recorded responses or placeholders; "" is ReplyRecorded.
	Reply Reply
	// Default answers unknown prompts; "" is DefaultAnswer.
	Default string
	// DefaultLatency is what an unknown prompt waits; 0 draws from the
	// model's lognormal like a record without latency_ms.
	DefaultLatency time.Duration
	// LatencyScale multiplies every wait but FixedLatency; 0 means 1.
	LatencyScale float64
	// FixedLatency, when positive, is every answer's wait.
	FixedLatency time.Duration
	// Seed seeds the lognormal draws and the choice of failing prompts.
	Seed uint64
	// FailShare is the share of prompts answered 503 at once, as an
	// upstream that is down for them: a prompt fails on every call or on
	// none (drawn from its text and Seed), so a proxy's fallback can be
	// seen on a known set. 0 fails none.
	FailShare float64
	// StreamChunks caps a streamed answer's content chunks; 0 is
	// DefaultStreamChunks.
	StreamChunks int
	// Logger gets a line per cancelled request; nil discards.
	Logger *slog.Logger
	// Fault, when set, is asked for every request with its prompt (the
	// last user message); a non-nil Fault is applied. For tests.
	Fault func(prompt string) *Fault
	// Now is the clock of "created"; nil is time.Now.
	Now func() time.Time
}

// Stats counts what the server did.
type Stats struct {
	Model string `json:"model"`
	// Requests is every chat completion request received.
	Requests int64 `json:"requests"`
	// Answered is requests whose whole answer was written.
	Answered int64 `json:"answered"`
	// Cancelled is requests whose client went away first.
	Cancelled int64 `json:"cancelled"`
	// Unknown is requests whose prompt is not in the log.
	Unknown int64 `json:"unknown_prompts"`
	// Failed is invalid requests and injected faults.
	Failed int64 `json:"failed"`
	// InFlight is requests being answered now.
	InFlight int64 `json:"in_flight"`
}

// entry is one answer the server can give.
type entry struct {
	id       string // record id; "" for the default answer
	text     string
	tokens   []string
	logprobs []float64 // per token; mean = confidence
	// latency is the recorded wait; negative means draw one.
	latency         time.Duration
	inTok, outTok   *int
	confidence      float64
	hasRecordedConf bool
	// choices caches choicesJSON without and with logprobs.
	choices [2]atomic.Pointer[[]byte]
}

// Server answers chat completions from a log. It is an http.Handler and is
// safe for concurrent use.
type Server struct {
	opts  Options
	log   *slog.Logger
	now   func() time.Time
	index map[string]*entry
	def   *entry
	// mu and sigma are the lognormal of the model's latencies, in log ms.
	mu, sigma float64
	mux       *http.ServeMux
	seq       atomic.Uint64
	// modelJSON is opts.Model as a JSON string.
	modelJSON []byte
	// stored are the Responses API responses kept; idTag is in their
	// ids.
	stored storedResponses
	idTag  string

	requests, answered, cancelled, unknown, failed, inFlight atomic.Int64
}

// New indexes the log for opts.Model. It fails when no record has an
// outcome for the model, naming the models that do.
func New(opts Options) (*Server, error) {
	if opts.Model == "" {
		return nil, errors.New("upstream sim: no model given; want one of the log's outcome keys")
	}
	if opts.Reply == "" {
		opts.Reply = ReplyRecorded
	}
	if opts.Reply != ReplyRecorded && opts.Reply != ReplyPlaceholder {
		return nil, fmt.Errorf("upstream sim: reply %q is not known; want %q or %q", opts.Reply, ReplyRecorded, ReplyPlaceholder)
	}
	if opts.LatencyScale == 0 {
		opts.LatencyScale = 1
	}
	if opts.LatencyScale < 0 || math.IsNaN(opts.LatencyScale) || math.IsInf(opts.LatencyScale, 0) {
		return nil, fmt.Errorf("upstream sim: latency scale is %v, want a positive number", opts.LatencyScale)
	}
	if !(opts.FailShare >= 0 && opts.FailShare <= 1) {
		return nil, fmt.Errorf("upstream sim: fail share is %v, want a share in [0,1]", opts.FailShare)
	}
	if opts.StreamChunks <= 0 {
		opts.StreamChunks = DefaultStreamChunks
	}
	if opts.Default == "" {
		opts.Default = DefaultAnswer
	}
	s := &Server{opts: opts, log: opts.Logger, now: opts.Now, index: make(map[string]*entry, 2*len(opts.Records))}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	seen := map[string]int{}
	var logLat []float64
	for i := range opts.Records {
		r := &opts.Records[i]
		for m := range r.Outcomes {
			seen[m]++
		}
		o, ok := r.Outcomes[opts.Model]
		if !ok {
			continue
		}
		e := newEntry(r, o, opts.Model, opts.Reply)
		if e.latency >= 0 && o.LatencyMS != nil && *o.LatencyMS > 0 {
			logLat = append(logLat, math.Log(*o.LatencyMS))
		}
		// The first record wins a duplicated prompt: the log's order is
		// the only tie-break a user can control.
		for _, k := range recordKeys(r) {
			if _, dup := s.index[k]; !dup {
				s.index[k] = e
			}
		}
	}
	if len(s.index) == 0 {
		return nil, fmt.Errorf("upstream sim: no record has an outcome for model %q; the log's models are %s", opts.Model, datasets.ModelList(seen))
	}
	s.mu, s.sigma = fitLognormal(logLat)
	s.modelJSON, _ = json.Marshal(opts.Model)
	s.idTag = idTag(opts.Model)
	s.def = &entry{text: opts.Default, latency: -1, confidence: DefaultConfidence}
	s.def.tokens = tokenize(s.def.text)
	s.def.logprobs = spreadLogprobs(len(s.def.tokens), s.def.confidence)
	if opts.DefaultLatency > 0 {
		s.def.latency = opts.DefaultLatency
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", s.handleChat)
	mux.HandleFunc("POST /v1/completions", s.handleCompletions)
	mux.HandleFunc("POST /v1/responses", s.handleResponses)
	mux.HandleFunc("GET /v1/responses/{id}", s.handleStored)
	mux.HandleFunc("DELETE /v1/responses/{id}", s.handleStored)
	mux.HandleFunc("GET /v1/models", s.handleModels)
	mux.HandleFunc("GET /sim/stats", s.handleStats)
	mux.HandleFunc("/", s.handleUnknown)
	s.mux = mux
	return s, nil
}

// Len is the number of distinct prompts the server knows.
func (s *Server) Len() int { return len(s.index) }

// LatencyFit is the lognormal a record without latency waits: the median
// and the sigma of log latency.
func (s *Server) LatencyFit() (median time.Duration, sigma float64) {
	return time.Duration(math.Exp(s.mu) * float64(time.Millisecond)), s.sigma
}

func newEntry(r *datasets.Record, o datasets.Outcome, model string, reply Reply) *entry {
	e := &entry{id: r.ID, latency: -1, inTok: o.InputTokens, outTok: o.OutputTokens, confidence: DefaultConfidence}
	if o.Response != "" && reply == ReplyRecorded {
		e.text = o.Response
	} else {
		score := "unknown"
		if o.Score != nil {
			score = strconv.FormatFloat(*o.Score, 'g', -1, 64)
		}
		e.text = fmt.Sprintf("[sim] recorded score %s for %s on %s", score, model, r.ID)
	}
	if o.LatencyMS != nil && *o.LatencyMS >= 0 {
		e.latency = time.Duration(*o.LatencyMS * float64(time.Millisecond))
	}
	if o.Confidence != nil {
		e.confidence = *o.Confidence
		e.hasRecordedConf = true
	}
	e.tokens = tokenize(e.text)
	e.logprobs = spreadLogprobs(len(e.tokens), e.confidence)
	return e
}

// recordKeys are the strings a request may match a record by: its text
// (the prompt, or every message joined with "\n") and the content of its
// last user message.
func recordKeys(r *datasets.Record) []string {
	keys := []string{r.Text()}
	for i := len(r.Messages) - 1; i >= 0; i-- {
		if r.Messages[i].Role == "user" {
			if c := r.Messages[i].Content; c != keys[0] {
				keys = append(keys, c)
			}
			break
		}
	}
	return keys
}

// fitLognormal returns the mean and standard deviation of log latencies,
// or the defaults when there are fewer than two.
func fitLognormal(logMS []float64) (mu, sigma float64) {
	if len(logMS) < 2 {
		return math.Log(float64(DefaultLatencyMedian) / float64(time.Millisecond)), DefaultLatencySigma
	}
	for _, v := range logMS {
		mu += v
	}
	mu /= float64(len(logMS))
	for _, v := range logMS {
		sigma += (v - mu) * (v - mu)
	}
	sigma = math.Sqrt(sigma / float64(len(logMS)-1))
	return mu, sigma
}

// wait is how long the answer for e (requested as key) takes.
func (s *Server) wait(e *entry, key string) time.Duration {
	if s.opts.FixedLatency > 0 {
		return s.opts.FixedLatency
	}
	d := e.latency
	if d < 0 {
		// Seeded by the prompt, not by arrival order, so concurrent
		// clients see the same waits on every run.
		h := fnv.New64a()
		io.WriteString(h, key)
		r := rand.New(rand.NewPCG(s.opts.Seed, h.Sum64()))
		ms := math.Exp(s.mu + s.sigma*r.NormFloat64())
		d = time.Duration(ms * float64(time.Millisecond))
	}
	return time.Duration(float64(d) * s.opts.LatencyScale)
}

// fails reports whether the prompt is one of the FailShare that fail.
func (s *Server) fails(prompt string) bool {
	if s.opts.FailShare <= 0 {
		return false
	}
	h := fnv.New64a()
	io.WriteString(h, prompt)
	return rand.New(rand.NewPCG(s.opts.Seed^0x5eed, h.Sum64())).Float64() < s.opts.FailShare
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	return Stats{
		Model: s.opts.Model, Requests: s.requests.Load(), Answered: s.answered.Load(),
		Cancelled: s.cancelled.Load(), Unknown: s.unknown.Load(), Failed: s.failed.Load(), InFlight: s.inFlight.Load(),
	}
}

// ServeHTTP answers POST /v1/chat/completions, GET /v1/models and GET
// /sim/stats.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) handleStats(w http.ResponseWriter, _ *http.Request) {
	b, _ := json.Marshal(s.Stats())
	w.Header().Set("Content-Type", "application/json")
	w.Write(append(b, '\n'))
}

func (s *Server) handleModels(w http.ResponseWriter, _ *http.Request) {
	b, _ := json.Marshal(map[string]any{"object": "list", "data": []map[string]any{
		{"id": s.opts.Model, "object": "model", "created": 0, "owned_by": "triage-upstream-sim"},
	}})
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// handleUnknown answers a path the sim does not serve in words, not Go's
// bare "404 page not found": the likeliest cause is a request meant for
// triage serve (/v1/route, /v1/feedback, /readyz) sent to an upstream's
// port.
func (s *Server) handleUnknown(w http.ResponseWriter, r *http.Request) {
	serves := fmt.Sprintf("this is triage upstream-sim, answering as model %q; it serves POST /v1/chat/completions, POST /v1/completions, POST /v1/responses, GET and DELETE /v1/responses/{id}, GET /v1/models and GET /sim/stats", s.opts.Model)
	switch r.URL.Path {
	case "/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/models", "/sim/stats":
		apiError(w, http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed", fmt.Sprintf("%s is not allowed on %s: %s", echo.Bare(r.Method), echo.Bare(r.URL.Path), serves))
		return
	}
	apiError(w, http.StatusNotFound, "invalid_request_error", "not_found", fmt.Sprintf("no route %s %s: %s (routing and feedback are triage serve's: send those to its address)", echo.Bare(r.Method), echo.Bare(r.URL.Path), serves))
}

// apiError writes an OpenAI-style error body.
func apiError(w http.ResponseWriter, status int, typ, code, msg string) {
	apiErrorParam(w, status, typ, code, "", msg)
}

// apiErrorParam is apiError naming the request field at fault.
func apiErrorParam(w http.ResponseWriter, status int, typ, code, param, msg string) {
	var p any
	if param != "" {
		p = param
	}
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": typ, "code": code, "param": p}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

package proxy

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/triage-router/triage/features"
	"github.com/triage-router/triage/internal/echo"
	"github.com/triage-router/triage/internal/plural"
	"github.com/triage-router/triage/internal/reqid"
	"github.com/triage-router/triage/internal/writestall"
	"github.com/triage-router/triage/models"
)

// Response headers every answer carries.
const (
	// HeaderDecision is fast, speculate or escalate: what the router (or
	// the client's "model") decided; "none" when the request was refused
	// before routing.
	HeaderDecision = "X-Triage-Decision"
	// HeaderModel is the upstream model whose answer (or error) this is;
	// "none" when no upstream answered.
	HeaderModel = "X-Triage-Model"
	// HeaderExplored is "true" on an answer whose request exploration made
	// run both tiers to completion (the answer is the one the policy
	// chose); feedback about both tiers' answers is welcome under its
	// request id.
	HeaderExplored = "X-Triage-Explored"
	// HeaderRequestID is the id the request is recorded under; feedback
	// about the answer goes to POST /v1/feedback with it.
	HeaderRequestID = "X-Triage-Request-Id"
)

// Router is what the proxy needs of the router serving now, for one
// request: which tier answers, which one it races with, and how a raced
// answer is judged. Tiers are indices into the config's tiers, cheapest
// first, which list them in the router artifact's order. Tiered adapts a
// *models.TierRouter.
type Router interface {
	// Choose decides for one request.
	Choose(in features.Input) Choice
	// CalibratedConfidence maps the raw confidence of tier's answer (its
	// mean token log-probability) to the probability it is acceptable,
	// the scale of Choice.Accept. ok false (no calibration for the tier)
	// never keeps the answer on confidence.
	CalibratedConfidence(tier int, raw float64) (p float64, ok bool)
	// Model describes the artifact behind the choices.
	Model() ModelInfo
}

// Choice is a router's decision for one request.
type Choice struct {
	// Tier is the tier chosen, an index cheapest first.
	Tier int
	// Race is the tier started with Tier, the next one up, or NoRace.
	// The first whole answer decides, as docs/design.md's replay rule
	// says: Race's answer first is kept; Tier's first is kept when its
	// calibrated confidence is at least Accept, else Race's is awaited.
	Race int
	// Decision labels the choice in X-Triage-Decision, the metrics and
	// the recording: fast, speculate or escalate for two tiers.
	Decision string
	// PHard is the router's score of the request, recorded with it.
	PHard float64
	// Accept is the confidence gate of a race.
	Accept float64
}

// NoRace is Choice.Race when a request goes to one tier.
const NoRace = -1

// ModelInfo is what the proxy tells of a router artifact.
type ModelInfo struct {
	// Version is recorded with each request.
	Version string
	// Tiers are the artifact's tier names, cheapest first: the model
	// names outcomes are recorded under (unless a tier says record_as),
	// so the next training run finds them.
	Tiers []string
	// CreatedAt dates the entries of GET /v1/models.
	CreatedAt time.Time
	// MultiTier is an N-tier artifact's: its recordings name each tier
	// that answered and each tier's probability of being sent the
	// request (TierPropensities).
	MultiTier bool
}

// TierRouter is what Tiered needs: *models.TierRouter, which serves
// two-tier and N-tier artifacts alike.
type TierRouter interface {
	Route(in features.Input) models.TierResult
	CalibratedConfidence(k int, raw float64) (float64, bool)
	AcceptConfidence() float64
	Names() []string
	Artifact() *models.Artifact
}

var _ TierRouter = (*models.TierRouter)(nil)

// Tiered is a router as the proxy sees it: its tiers by index, cheapest
// first (a two-tier router's fast is 0 and strong 1, speculate races 0
// with 1), its decision labels, and its gate. Make one per loaded
// artifact; it is safe for concurrent use.
func Tiered(r TierRouter) Router {
	a := r.Artifact()
	return &tiered{r: r, info: ModelInfo{Version: a.Version, Tiers: r.Names(), CreatedAt: a.CreatedAt, MultiTier: a.IsMultiTier()}, accept: r.AcceptConfidence()}
}

type tiered struct {
	r      TierRouter
	info   ModelInfo
	accept float64
}

func (t *tiered) Choose(in features.Input) Choice {
	res := t.r.Route(in)
	c := Choice{Tier: res.Tier, Race: res.Race, Decision: string(res.Decision), PHard: res.PHard, Accept: t.accept}
	if res.Race < 0 {
		c.Race = NoRace
	}
	if math.IsNaN(c.PHard) {
		// An N-tier router has no p_hard; the recording keeps 0 and the
		// chosen tier.
		c.PHard = 0
	}
	return c
}

func (t *tiered) CalibratedConfidence(tier int, raw float64) (float64, bool) {
	return t.r.CalibratedConfidence(tier, raw)
}

func (t *tiered) Model() ModelInfo { return t.info }

// Deps are what the proxy uses and does not own.
type Deps struct {
	// Router returns the router serving now. It is called once per
	// request, so a hot reload is seen by the next request and a request
	// in flight keeps the router it started with. Required.
	Router func() Router
	// Recorder receives every proxied request. Nil records nothing.
	Recorder Recorder
	// Responses is where the Recorder keeps which tier stored each
	// Responses API response (Recording.Response), read back for a
	// request that names one the process does not hold in memory (after
	// a restart, or past Config.ResponseMemory). Nil remembers them in
	// memory only.
	Responses ResponseStore
	// Registry receives the proxy's metrics. Required.
	Registry prometheus.Registerer
	// Logger gets internal errors; nil discards. API keys never reach it.
	Logger *slog.Logger
	// Client's transport calls the upstreams (redirects are not
	// followed); nil builds one with a connection pool sized for many
	// concurrent requests.
	Client *http.Client
	// Getenv reads the tiers' API key variables; nil is os.Getenv.
	Getenv func(string) string
	// Now is the clock of recorded timestamps; nil is time.Now.
	Now func() time.Time
	// Explore draws exploration for a routed request's routing result
	// (its policy decision): the decision to take, its probability, and
	// whether exploration changed it (to speculate). Nil never explores.
	Explore func(models.Result) (taken models.Decision, propensity float64, explored bool)
	// Epsilon is the share Explore explores (its ε): an N-tier
	// recording keeps it as the probability that the tier exploration
	// races a lone tier with is sent the request (TierPropensities). 0
	// with Explore nil.
	Epsilon float64
	// MaxMetaKeys and MaxMessages cap a request's metadata keys and
	// messages (more is a 400), as the server's limits.max_meta_keys and
	// max_messages cap /v1/route: within max_request_bytes, tens of
	// thousands of tiny keys or messages cost far more than their size
	// to route and to record. Metadata keys and chat messages are
	// counted as sent (a repeated key counts each time), a Responses
	// request's messages as it makes them, and a legacy completion's
	// prompt strings as messages, up to the cap, before the body is
	// decoded. 0 means no cap.
	MaxMetaKeys, MaxMessages int
}

// caps are the entry counts of Deps.MaxMetaKeys and MaxMessages and of
// Config.MaxTools; 0 is no cap.
type caps struct{ metaKeys, messages, tools int }

// refuseEarly refuses a body whose metadata has more keys, or whose chat
// messages, tools or functions are more, than c allows, counting them as
// sent (a repeated or null key counts too) and stopping at the cap,
// before any is decoded; a Responses request's messages as
// parseResponses would make them, and a legacy completion's prompt
// strings as messages. Counted after the decode, a 16 MiB
// body (max_request_bytes' default) of 1.5 million tiny metadata keys
// cost 177 MB and 2.6 s of CPU to refuse, one of 560,000 messages 130 MB
// (BenchmarkRefuseManyEntries); one of 5.6 million tools ({}) was
// decoded whole, 830 MB and 1.4 s, and sent upstream. Its errors are
// *apiError.
func (c caps) refuseEarly(body []byte, fields []member, a *api) error {
	for _, f := range []struct {
		name, limit string
		max         int
		// only is the one API the member is counted on; nil is all.
		only *api
	}{
		{"metadata", "limits.max_meta_keys", c.metaKeys, nil},
		{"messages", "limits.max_messages", c.messages, apiChat},
		{"tools", "max_tools", c.tools, nil},
		{"functions", "max_tools", c.tools, apiChat},
	} {
		if f.max <= 0 || f.only != nil && f.only != a {
			continue
		}
		if i := last(fields, f.name); i >= 0 && entriesUpTo(body, fields[i].val, f.max+1) > f.max {
			return &apiError{status: http.StatusBadRequest, code: codeInvalidRequest, param: f.name,
				msg: fmt.Sprintf("%s has more than %s (%s)", f.name, plural.Count(f.max, "entry"), f.limit)}
		}
	}
	if a == apiResponses && c.messages > 0 && responsesMessagesUpTo(body, fields, c.messages+1) > c.messages {
		return &apiError{status: http.StatusBadRequest, code: codeInvalidRequest, param: "input",
			msg: fmt.Sprintf("instructions and input hold more than %s (limits.max_messages)", plural.Count(c.messages, "message"))}
	}
	// A legacy completion's prompt strings are joined for the router as
	// messages are, and count as messages: decoded, a 16 MiB body of 4
	// million one-letter strings cost 380 MB and 0.8 s. Token ids are
	// not counted; parseCompletion refuses them, whatever their number.
	if i := last(fields, "prompt"); a == apiCompletions && c.messages > 0 && i >= 0 && leadingStringsUpTo(body, fields[i].val, c.messages+1) > c.messages {
		return &apiError{status: http.StatusBadRequest, code: codeInvalidRequest, param: "prompt",
			msg: fmt.Sprintf("prompt has more than %s (limits.max_messages)", plural.Count(c.messages, "string"))}
	}
	return nil
}

// leadingStringsUpTo counts the strings the array at body[i] starts with,
// stopping at max or at its first element that is not a string;
// anything else counts 0.
func leadingStringsUpTo(body []byte, i, max int) int {
	n := 0
	eachElement(body, i, func(e int) int {
		if body[e] != '"' {
			return -1
		}
		if n++; n >= max {
			return -1
		}
		return stringEnd(body, e)
	})
	return n
}

// responsesMessagesUpTo counts, up to max, the messages parseResponses
// would make of a Responses request: its instructions when they are not
// empty, and its input when it is a string, or each of its input items
// with a role and of type message (or none), read as encoding/json reads
// them into parseResponses' items (a key in any case, the last one
// winning, null changing nothing). A 16 MiB body of input message items
// cost 403 MB and 1.5 s to refuse once decoded.
func responsesMessagesUpTo(body []byte, fields []member, max int) int {
	n := 0
	if i := last(fields, "instructions"); i >= 0 {
		if v := body[fields[i].val:fields[i].end]; v[0] == '"' && string(v) != `""` {
			n++
		}
	}
	i := last(fields, "input")
	if i < 0 {
		return n
	}
	switch v := fields[i].val; body[v] {
	case '"':
		n++
	case '[':
		eachElement(body, v, func(e int) int {
			msg, end := isMessageItem(body, e)
			if end < 0 { // not an object, or not JSON: no message
				return valueEnd(body, e)
			}
			if msg {
				if n++; n >= max {
					return -1
				}
			}
			return end
		})
	}
	return n
}

// isMessageItem reports whether the input item at body[i] is one
// parseResponses routes on: an object with a non-empty role and a type
// that is empty, absent or "message". end is the index after the item,
// found in the same walk (a caller that looked for it first scanned the
// item twice: a second scan of a 16 MiB message of content parts), or
// -1 when body[i] is not an object.
func isMessageItem(body []byte, i int) (msg bool, end int) {
	var role, typ []byte
	end = eachMember(body, i, func(key []byte, v int) int {
		end := valueEnd(body, v)
		if end < 0 || string(body[v:end]) == "null" {
			return end
		}
		switch {
		case bytes.EqualFold(key, []byte("role")):
			role = body[v:end]
		case bytes.EqualFold(key, []byte("type")):
			typ = body[v:end]
		}
		return end
	})
	if len(role) == 0 || string(role) == `""` {
		return false, end
	}
	if len(typ) == 0 || string(typ) == `""` || string(typ) == `"message"` {
		return true, end
	}
	t, ok := scanString(typ) // escaped: rare, and only then decoded
	return !ok || t == "" || t == "message", end
}

// checkCounts refuses a request with more messages than Deps allows,
// counted once decoded: refuseEarly counted them before, as sent, and
// this is what parseResponses made of them. Its errors are *apiError.
func (h *Handler) checkCounts(req *chatRequest) error {
	if h.maxMessages > 0 && len(req.messages) > h.maxMessages {
		return &apiError{status: http.StatusBadRequest, code: codeInvalidRequest, param: "messages",
			msg: fmt.Sprintf("messages has %s, the limit is %d (limits.max_messages)", plural.Count(len(req.messages), "entry"), h.maxMessages)}
	}
	return nil
}

// Handler is the OpenAI-compatible POST /v1/chat/completions endpoint. It
// is an http.Handler, safe for concurrent use. Close it after the HTTP
// server has shut down, before closing the store, so queued recordings
// are written.
type Handler struct {
	cfg     Config
	router  func() Router
	explore func(models.Result) (models.Decision, float64, bool)
	eps     float64
	log     *slog.Logger
	rt      http.RoundTripper
	now     func() time.Time
	// tiers are the upstreams cheapest first, each knowing its index.
	tiers []*tier
	m     *metrics
	rec   *recordQueue
	// responses remembers which tier stored each Responses API response.
	responses *responseTiers
	closeOnce sync.Once
	// loserGrace is Config.LoserGrace resolved.
	loserGrace time.Duration
	// graceTimer starts the wait of loserGrace: its channel fires when
	// the grace is over. A test replaces it to end the grace when it
	// chooses, so what it checks of a loser still running does not
	// depend on the scheduler reaching the check within the grace.
	graceTimer func(time.Duration) (<-chan time.Time, func() bool)
	// maxMetaKeys and maxMessages are Deps'.
	maxMetaKeys, maxMessages int
}

// New checks the config, reads the API keys and registers the metrics.
func New(cfg Config, deps Deps) (*Handler, error) {
	if deps.Router == nil || deps.Registry == nil {
		panic("proxy: New needs Deps.Router and Deps.Registry")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxResponseBytes == 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if cfg.MaxTools == 0 {
		cfg.MaxTools = DefaultMaxTools
	}
	if cfg.RecordQueue == 0 {
		cfg.RecordQueue = DefaultRecordQueue
	}
	if cfg.ResponseTTL == 0 {
		cfg.ResponseTTL = DefaultResponseTTL
	}
	if cfg.ResponseMemory == 0 {
		cfg.ResponseMemory = DefaultResponseMemory
	}
	getenv := deps.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	h := &Handler{cfg: cfg, router: deps.Router, explore: deps.Explore, eps: deps.Epsilon, log: deps.Logger, now: deps.Now,
		loserGrace: DefaultLoserGrace, maxMetaKeys: deps.MaxMetaKeys, maxMessages: deps.MaxMessages,
		graceTimer: func(d time.Duration) (<-chan time.Time, func() bool) {
			t := time.NewTimer(d)
			return t.C, t.Stop
		}}
	if cfg.LoserGrace != nil {
		h.loserGrace = *cfg.LoserGrace
	}
	switch {
	case deps.Client == nil:
		h.rt = newClient().Transport
	case deps.Client.Transport == nil:
		h.rt = http.DefaultTransport
	default:
		h.rt = deps.Client.Transport
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	h.m = newMetrics(deps.Registry)
	// From here on the tiers are a list whatever the config's form, so
	// looking one up by name allocates nothing.
	h.cfg.Tiers = Tiers{Ordered: cfg.Tiers.List()}
	for i, c := range h.cfg.Tiers.Ordered {
		t, err := newTier(c.Name, c, getenv, h.m)
		if err != nil {
			return nil, err
		}
		t.idx = i
		h.tiers = append(h.tiers, t)
	}
	for _, t := range h.tiers {
		t.rt = h.rt
		if h.cfg.Tiers.tier(t.name).H2C {
			t.rt = newH2CTransport()
		}
	}
	h.rec = newRecordQueue(deps.Recorder, cfg.RecordQueue, h.m, h.log)
	h.responses = newResponseTiers(deps.Responses, cfg.ResponseTTL, cfg.ResponseMemory, h.now, h.log, h.tierNamed)
	return h, nil
}

// tierNamed is the tier a client may name in "model", or nil.
func (h *Handler) tierNamed(name string) *tier {
	for _, t := range h.tiers {
		if t.name == name {
			return t
		}
	}
	return nil
}

// fallbackFor is the tier that answers when t fails, or nil when
// fallback is off: the next cheaper tier, or for the cheapest the next
// one up. A cheaper tier answers sooner and costs less, and is the tier
// the router would have picked had this one not been worth its price;
// with two tiers it is simply the other one.
func (h *Handler) fallbackFor(t *tier) *tier {
	if !h.cfg.Fallback || len(h.tiers) < 2 {
		return nil
	}
	if t.idx == 0 {
		return h.tiers[1]
	}
	return h.tiers[t.idx-1]
}

// newClient is an HTTP client whose pool keeps a connection per
// concurrent request to each upstream: without it, bursts above the
// default two idle connections per host open and close a connection per
// request.
func newClient() *http.Client {
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   4096,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{Transport: t}
}

// newH2CTransport speaks HTTP/2 with prior knowledge over cleartext TCP
// (the tier option h2c): one connection carries every concurrent call,
// and a cancelled call resets its stream instead of closing the
// connection, as HTTP/1.1 must.
func newH2CTransport() *http.Transport {
	t := newClient().Transport.(*http.Transport)
	t.ForceAttemptHTTP2 = false
	t.Protocols = new(http.Protocols)
	t.Protocols.SetUnencryptedHTTP2(true)
	return t
}

// AwaitRecording returns once the request id's recording is committed
// (or failed, or dropped) when the proxy answered it or is answering it
// and has not yet recorded it, and at once otherwise; or when ctx ends,
// with its error. Feedback posted as soon as the answer arrives calls it
// before it concludes the id is unknown.
func (h *Handler) AwaitRecording(ctx context.Context, id string) error {
	return h.rec.await(ctx, id)
}

// FlushRecordings returns once every recording queued before the call is
// committed (or failed), or when ctx ends: an export then holds every
// request whose tiers had all finished.
func (h *Handler) FlushRecordings(ctx context.Context) error {
	return h.rec.flush(ctx)
}

// Close stops recording new requests and waits (up to ctx) until the
// queued ones are handed to the Recorder.
func (h *Handler) Close(ctx context.Context) error {
	var err error
	h.closeOnce.Do(func() { err = h.rec.close(ctx) })
	return err
}

// ServeHTTP proxies one chat completion (POST /v1/chat/completions).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.serveAPI(w, r, apiChat) }

// ServeCompletions proxies one (legacy) completion (POST
// /v1/completions), routed on its prompt like a chat completion on its
// messages.
func (h *Handler) ServeCompletions(w http.ResponseWriter, r *http.Request) {
	h.serveAPI(w, r, apiCompletions)
}

func (h *Handler) serveAPI(w http.ResponseWriter, r *http.Request, a *api) {
	x := &exchange{h: h, w: w, r: r, ctx: r.Context(), start: time.Now()}
	x.ts = h.now()
	x.id = reqid.New(x.ts)
	hd := w.Header()
	hd.Set(HeaderRequestID, x.id)
	// Upstream timeouts bound a proxied call, and a stream may outlive
	// any fixed write deadline the server sets for its other routes; each
	// write to the client is bounded instead (writestall).
	sw := writestall.New(w, h.cfg.WriteStall)
	// The last chunk is written after the handler returns, which may be
	// long after its last write (loser_grace, the recording).
	defer sw.Arm()
	w, x.w = sw, sw
	req, err := readRequest(r, h.cfg.MaxBodyBytes, a, caps{h.maxMetaKeys, h.maxMessages, h.cfg.MaxTools})
	if err == nil {
		err = h.checkCounts(req)
	}
	if err != nil {
		x.refuse(err)
		h.m.request("none", x.status)
		reportStatus(r.Context(), x.status)
		return
	}
	req.meta = MergeMeta(req.meta, ClientMeta(r.Context()))
	req.input.Meta = req.meta
	x.req = req
	rt := h.router()
	x.router = rt
	x.info = rt.Model()
	target, ok := h.cfg.resolve(req.model)
	if !ok {
		x.refuse(&apiError{status: http.StatusBadRequest, code: codeUnknownModel, param: "model",
			msg: fmt.Sprintf("model %s is not served here; send one of %s (%q routes), or add an alias for it to the config",
				echo.Quote(req.model), quoteList(h.cfg.served()), ModelRouted)})
		h.m.request("none", x.status)
		reportStatus(r.Context(), x.status)
		return
	}
	var pin *tier
	if req.previousID != "" {
		t, owner := h.responses.lookup(req.previousID)
		if t != nil && owner != ClientName(r.Context()) {
			// Another client's response: routed as an unknown id, it
			// could reach the tier that stored it and continue another
			// tenant's conversation (the tiers are called with the
			// proxy's key, so they cannot tell). Refused as the
			// upstream refuses an id it does not have, saying nothing
			// of whose it is.
			x.refuse(&apiError{status: http.StatusNotFound, code: "previous_response_not_found", param: "previous_response_id",
				msg: fmt.Sprintf("Previous response with id '%s' not found.", echo.Bare(req.previousID))})
			h.m.request("none", x.status)
			reportStatus(r.Context(), x.status)
			return
		}
		if target == ModelRouted {
			pin = t
		}
	}
	// Routed even when the client names a tier: the recording keeps what
	// the router would have done.
	ch := rt.Choose(req.input)
	x.pHard = ch.PHard
	x.propensity = 1
	switch {
	case pin != nil:
		// The stored response it continues is pin's alone: no race, no
		// exploration (the other tier would answer 404 for the id).
		x.choice = Choice{Tier: pin.idx, Race: NoRace, Decision: h.label(pin.idx, NoRace), PHard: ch.PHard}
		x.pinned = true
	case target == ModelRouted:
		if ch.Tier < 0 || ch.Tier >= len(h.tiers) || ch.Race != NoRace && (ch.Race < 0 || ch.Race >= len(h.tiers) || ch.Race == ch.Tier) {
			x.refuse(fmt.Errorf("router %s chose tier %d racing %d; the config has %s", x.info.Version, ch.Tier, ch.Race, plural.Count(len(h.tiers), "tier")))
			h.m.request("none", x.status)
			reportStatus(r.Context(), x.status)
			return
		}
		x.choice = ch
		if ch.Race != NoRace && (req.tools && h.cfg.SpeculateTools != nil && !*h.cfg.SpeculateTools || h.tiers[ch.Tier].noLogprobs.Load()) {
			// A race the gate cannot judge (tool calls; a cheaper tier
			// whose answers carry no log-probabilities) always waits for
			// the dearer answer: it costs both calls and saves no time,
			// so the dearer tier answers alone.
			x.choice.Tier, x.choice.Race, x.choice.Decision = ch.Race, NoRace, h.label(ch.Race, NoRace)
		}
		if h.explore != nil {
			taken, p, explored := h.explore(models.Result{PHard: ch.PHard, Decision: models.Decision(x.choice.Decision)})
			x.propensity, x.explored = p, explored && taken == models.Speculate && x.choice.Race == NoRace
		}
	default:
		t := h.tierNamed(target)
		x.choice = Choice{Tier: t.idx, Race: NoRace, Decision: h.label(t.idx, NoRace), PHard: ch.PHard}
		x.forced = true
	}
	// From here the request is recorded (finish queues it): feedback about
	// it that arrives first waits for the recording (AwaitRecording).
	h.rec.expect(x.id)
	defer func() {
		if !x.queued {
			h.rec.settle(x.id) // only if a panic skipped finish
		}
	}()
	hd[HeaderDecision] = decisionHdr(x.choice.Decision)
	if x.pinned {
		hd[HeaderDecision] = []string{x.choice.Decision + "+pinned"}
	}
	if x.explored {
		hd[HeaderExplored] = []string{"true"}
	}
	switch {
	case x.explored:
		// The chosen tier and the next one up (for the top tier, the
		// one below), as a race on /v1/route's exploration.
		other := x.choice.Tier + 1
		if other == len(h.tiers) {
			other = x.choice.Tier - 1
		}
		x.runExplore(h.tiers[x.choice.Tier], h.tiers[other])
	case x.choice.Race == NoRace:
		x.runTier(h.tiers[x.choice.Tier])
	default:
		x.runSpeculate(h.tiers[x.choice.Tier], h.tiers[x.choice.Race])
	}
	x.finish()
	reportStatus(r.Context(), x.status)
	if x.broken {
		// Counted and recorded: now cut the client's connection without
		// ending the chunked body, which every HTTP client reports as an
		// error (curl: exit 18).
		panic(http.ErrAbortHandler)
	}
}

// label is the decision label of a request the proxy sends itself (a
// tier the client named, a speculation with tools): the router's words,
// speculate for a race, fast for the cheapest tier alone, escalate for
// any other.
func (h *Handler) label(tier, race int) string { return string(models.DecisionOf(tier, race)) }

// decisionHdrs are the usual X-Triage-Decision values, shared.
var decisionHdrs = map[string][]string{
	string(models.Fast): {string(models.Fast)}, string(models.Speculate): {string(models.Speculate)}, string(models.Escalate): {string(models.Escalate)},
}

// decisionHdr is label as a header value, shared when it is a usual one.
func decisionHdr(label string) []string {
	if v, ok := decisionHdrs[label]; ok {
		return v
	}
	return []string{label}
}

// quoteList is names quoted and joined with commas.
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}

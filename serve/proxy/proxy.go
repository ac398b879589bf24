package proxy

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/triage-router/triage/features"
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

// Router is what the proxy needs of a router: *models.Router.
type Router interface {
	Route(in features.Input) models.Result
	CalibratedConfidence(raw float64) (float64, bool)
	Artifact() *models.Artifact
}

var _ Router = (*models.Router)(nil)

// Deps are what the proxy uses and does not own.
type Deps struct {
	// Router returns the router serving now. It is called once per
	// request, so a hot reload is seen by the next request and a request
	// in flight keeps the router it started with. Required.
	Router func() Router
	// Recorder receives every proxied request. Nil records nothing.
	Recorder Recorder
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
}

// Handler is the OpenAI-compatible POST /v1/chat/completions endpoint. It
// is an http.Handler, safe for concurrent use. Close it after the HTTP
// server has shut down, before closing the store, so queued recordings
// are written.
type Handler struct {
	cfg          Config
	router       func() Router
	explore      func(models.Result) (models.Decision, float64, bool)
	log          *slog.Logger
	rt           http.RoundTripper
	now          func() time.Time
	fast, strong *tier
	// tiers are the upstreams from cheapest to strongest (fast, strong):
	// what tierNamed and fallbackFor look through, so a third tier is one
	// more entry, not another special case.
	tiers     []*tier
	m         *metrics
	rec       *recordQueue
	closeOnce sync.Once
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
	if cfg.RecordQueue == 0 {
		cfg.RecordQueue = DefaultRecordQueue
	}
	getenv := deps.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	h := &Handler{cfg: cfg, router: deps.Router, explore: deps.Explore, log: deps.Logger, now: deps.Now}
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
	var err error
	if h.fast, err = newTier(TierFast, cfg.Tiers.Fast, getenv, h.m); err != nil {
		return nil, err
	}
	if h.strong, err = newTier(TierStrong, cfg.Tiers.Strong, getenv, h.m); err != nil {
		return nil, err
	}
	h.tiers = []*tier{h.fast, h.strong}
	for _, t := range h.tiers {
		t.rt = h.rt
		if cfg.Tiers.tier(t.name).H2C {
			t.rt = newH2CTransport()
		}
	}
	h.rec = newRecordQueue(deps.Recorder, cfg.RecordQueue, h.m, h.log)
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
// fallback is off: the other tier.
func (h *Handler) fallbackFor(t *tier) *tier {
	if !h.cfg.Fallback {
		return nil
	}
	for _, o := range h.tiers {
		if o != t {
			return o
		}
	}
	return nil
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

// Close stops recording new requests and waits (up to ctx) until the
// queued ones are handed to the Recorder.
func (h *Handler) Close(ctx context.Context) error {
	var err error
	h.closeOnce.Do(func() { err = h.rec.close(ctx) })
	return err
}

// newRequestID is 128 bits in hex: the time in nanoseconds, then 64
// random bits (math/rand/v2's global source, seeded from the OS and safe
// for concurrent use; ids need uniqueness, not secrecy). The time prefix
// is what makes recording cheap: the store keys its id and feedback
// buckets by request id, and ids that sort by arrival append to the
// B+tree's last pages instead of dirtying a random page per request in
// every commit.
func newRequestID(now time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixNano()))
	binary.BigEndian.PutUint64(b[8:], rand.Uint64())
	return hex.EncodeToString(b[:])
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
	x.id = newRequestID(x.ts)
	hd := w.Header()
	hd.Set(HeaderRequestID, x.id)
	// Upstream timeouts bound a proxied call, and a stream may outlive
	// any fixed write deadline the server sets for its other routes.
	http.NewResponseController(w).SetWriteDeadline(time.Time{})
	req, err := readRequest(r, h.cfg.MaxBodyBytes, a)
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
	art := rt.Artifact()
	x.policy = art.Policy
	x.version = art.Version
	x.artTiers = art.Tiers
	res := rt.Route(req.input)
	x.pHard = res.PHard
	target, ok := h.cfg.resolve(req.model)
	switch {
	case !ok:
		x.refuse(&apiError{status: http.StatusBadRequest, code: codeUnknownModel, param: "model",
			msg: fmt.Sprintf("model %q is not served here; send one of %s (%q routes), or add an alias for it to the config",
				req.model, quoteList(h.cfg.served()), ModelRouted)})
		h.m.request("none", x.status)
		reportStatus(r.Context(), x.status)
		return
	case target == ModelRouted:
		x.decision = res.Decision
		if x.decision == models.Speculate && req.tools && h.cfg.SpeculateTools != nil && !*h.cfg.SpeculateTools {
			x.decision = models.Escalate
		}
		x.propensity = 1
		if h.explore != nil {
			taken, p, explored := h.explore(models.Result{PHard: res.PHard, Decision: x.decision})
			x.propensity, x.explored = p, explored && taken == models.Speculate && x.decision != models.Speculate
		}
	case target == TierFast:
		x.decision, x.forced = models.Fast, true
	default:
		x.decision, x.forced = models.Escalate, true
	}
	hd[HeaderDecision] = decisionHdr[x.decision]
	if x.explored {
		hd[HeaderExplored] = []string{"true"}
	}
	switch {
	case x.explored:
		x.runExplore()
	case x.decision == models.Fast:
		x.runTier(h.fast)
	case x.decision == models.Escalate:
		x.runTier(h.strong)
	default:
		x.runSpeculate()
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

// decisionHdr are the X-Triage-Decision values, shared.
var decisionHdr = map[models.Decision][]string{
	models.Fast: {string(models.Fast)}, models.Speculate: {string(models.Speculate)}, models.Escalate: {string(models.Escalate)},
}

// quoteList is names quoted and joined with commas.
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
}

// errClientGone ends an exchange whose client went away.
var errClientGone = errors.New("client went away")

package serve

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/internal/echo"
	"github.com/triage-router/triage/internal/plural"
	"github.com/triage-router/triage/models"
	"github.com/triage-router/triage/serve/proxy"
)

// FeedbackSink durably records feedback; it returns only once the
// feedback is committed, datasets.ErrUnknownRequest for an id it has no
// record of when the feedback carries no prompt, and whether the write
// replaced earlier feedback for its (request id, model).
type FeedbackSink interface {
	RecordFeedback(ctx context.Context, fb datasets.Feedback) (datasets.FeedbackResult, error)
	// PutFeedbackBatch records many outcomes in one go, for the proxy's
	// recorder.
	PutFeedbackBatch(ctx context.Context, fbs []datasets.Feedback) error
}

// DecisionLog appends routed requests, one batch per call, from a single
// goroutine. It must not keep the entries' byte slices after returning.
type DecisionLog interface {
	AppendDecisions(entries []datasets.LogEntry) error
}

// Exporter streams the store to an admin: an export of log records as
// JSONL, and a consistent snapshot of the database file.
type Exporter interface {
	Export(ctx context.Context, w io.Writer, opts datasets.ExportOptions) (int, error)
	Snapshot(ctx context.Context, w io.Writer) (int64, error)
}

// RequestIndex says which prompt the store holds under a request id, so
// a route can refuse another prompt under it (one id, one prompt).
type RequestIndex interface {
	// RequestFingerprint says which prompt the store holds for id, if
	// any, and whether its record has a decision yet (feedback can
	// create a record before the id is routed).
	RequestFingerprint(id string) (fp datasets.Fingerprint, found, decided bool, err error)
}

// Store is everything the server needs from its database.
type Store interface {
	FeedbackSink
	DecisionLog
	Exporter
	RequestIndex
	Pruner
	// ResponseStore keeps which proxy tier stored each Responses API
	// response, so follow-ups reach it after a restart.
	proxy.ResponseStore
	// Ping reports whether the database is usable (for /readyz): open,
	// and taking feedback writes.
	Ping() error
	// Size is the database size in bytes (for /metrics).
	Size() int64
	// Usage is how much of the file is in use (for /metrics).
	Usage() datasets.Usage
}

// Options configures a Server. ModelPath, Store and Registry are required.
type Options struct {
	// Config holds limits, threshold overrides and queue sizes; the zero
	// value is not valid, start from DefaultConfig().
	Config Config
	// ModelPath is the router artifact, read at start and on Reload.
	ModelPath string
	// Store receives the decision log and feedback. The caller opens it,
	// and closes it after Shutdown.
	Store Store
	// Registry receives the server's metrics and is served on /metrics.
	Registry *prometheus.Registry
	// Logger gets startup, reload and internal-error lines; nil discards.
	Logger *slog.Logger
	// AdminToken enables the /admin routes with this bearer token. Empty
	// means the routes do not exist (404).
	AdminToken string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Uniform draws the exploration coin in [0,1); nil means
	// math/rand/v2's Float64. Tests pass a seeded source.
	Uniform func() float64
	// Getenv reads the proxy tiers' API key variables; nil means
	// os.Getenv.
	Getenv func(string) string
}

// Server answers routing requests with the current router and records
// what it decided and what clients report back.
type Server struct {
	opts   Options
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	store  Store
	engine http.Handler
	state  atomic.Pointer[state]
	// served holds the tier names of every model this process has
	// served: feedback for a request routed before a reload names the
	// tiers of the model that routed it, which may not be the current
	// one's (a strong tier swapped for a newer model).
	servedMu sync.Mutex
	served   map[string]bool
	dlog     *decisionLog
	m        *metrics
	closing  atomic.Bool
	// explore, drift and loop serve the feedback loop (explore.go,
	// drift.go).
	explore explorer
	drift   *drift
	loop    loopMetrics
	// proxy is POST /v1/chat/completions; nil when no tiers are
	// configured.
	proxy *proxy.Handler
	// ids keeps one prompt per client-chosen request id (ids.go).
	ids *idClaims
	// retention applies the db's bounds (retention.go).
	retention *retention
	// reloadSem is held by the reload in progress, which may outlive its
	// caller's wait (see Reload).
	reloadSem chan struct{}
	// loadModel reads and verifies the model file; tests replace it.
	loadModel func(path string) (*models.Artifact, error)
	// conns and limiter bound the client connections (connlimit.go) to
	// maxConns.
	conns    connMetrics
	limiter  atomic.Pointer[connLimiter]
	maxConns int
	// notReady remembers the last readiness failure, so a failing store
	// is logged once, not on every probe.
	notReady atomic.Pointer[string]
	// clientKeys guard the /v1/ routes; none leaves them open.
	clientKeys []clientKey

	// httpMu guards the client listener's server and the ops
	// listener's (ServeOps), which Shutdown stops together.
	httpMu  sync.Mutex
	http    *http.Server
	opsHTTP *http.Server
}

// state is one loaded model with everything the route path precomputes
// from it. It is replaced whole on reload, never changed.
type state struct {
	// tr routes; router is the same artifact's two-tier router (for
	// explain), nil for an N-tier artifact.
	tr     *models.TierRouter
	router *models.Router
	art    *models.Artifact
	policy models.Policy
	// choose is the router as the proxy sees it; tiers are its tier
	// names, cheapest first.
	choose proxy.Router
	tiers  []string
	// suffix is the constant tail of a route response:
	// ,"tiers":{...},"accept_confidence":X,"model_version":"V"}
	suffix []byte
	// info is the GET /v1/model body for an admin; public, for anyone
	// else: no training details (file paths among them).
	info, public []byte
}

// New loads the model and builds the server. Nothing listens until Serve.
func New(opts Options) (*Server, error) {
	if opts.Store == nil || opts.Registry == nil || opts.ModelPath == "" {
		panic("serve: New needs Options.Store, Options.Registry and Options.ModelPath")
	}
	if err := opts.Config.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	s := &Server{opts: opts, cfg: opts.Config, log: opts.Logger, now: opts.Now, store: opts.Store,
		reloadSem: make(chan struct{}, 1), served: map[string]bool{}}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.loadModel = func(path string) (*models.Artifact, error) {
		return models.LoadFile(path, s.cfg.Limits.MaxArtifactBytes)
	}
	st, err := s.load()
	if err != nil {
		return nil, err
	}
	s.m = newMetrics(opts.Registry,
		func() float64 { return float64(s.dlog.Depth()) },
		func() float64 { return float64(s.store.Size()) })
	registerCommitStats(opts.Registry, opts.Store)
	opts.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "triage_db_used_bytes",
		Help: "Bytes of the feedback db's pages in use; retention.max_bytes bounds it. The rest of the file is free pages bbolt reuses.",
	}, func() float64 { return float64(s.store.Usage().UsedBytes) }))
	s.conns = registerConnMetrics(opts.Registry, func() float64 {
		if l := s.limiter.Load(); l != nil {
			return float64(l.open())
		}
		return 0
	})
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if s.clientKeys, err = clientKeys(s.cfg.ClientKeys, getenv); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := checkExposure(s.cfg.Addr, s.cfg.Proxy.Enabled(), len(s.clientKeys), s.cfg.AllowUnauthenticated); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if s.cfg.Proxy.Enabled() {
		pc := s.cfg.Proxy
		pc.WriteStall = s.cfg.Limits.WriteTimeout
		// The proxy asks for the router per request, so it follows
		// reloads; it records into the same store as the route path.
		s.proxy, err = proxy.New(pc, proxy.Deps{
			Router:    func() proxy.Router { return s.state.Load().choose },
			Recorder:  proxy.StoreRecorder{Store: opts.Store},
			Responses: opts.Store,
			Registry:  opts.Registry, Logger: s.log, Getenv: opts.Getenv, Now: s.now,
			// The proxy's routed requests explore like /v1/route's, with
			// the same ε and coin, and count in the same drift window.
			// They count in the decision metrics too: a dashboard on
			// triage_decisions_total showed nothing of proxied traffic.
			Explore: func(r models.Result) (models.Decision, float64, bool) {
				res, p, e := s.decide(s.state.Load(), r)
				s.count(res)
				return res.Decision, p, e
			},
			Epsilon:     s.cfg.Exploration.Epsilon,
			MaxMetaKeys: s.cfg.Limits.MaxMetaKeys,
			MaxMessages: s.cfg.Limits.MaxMessages,
		})
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	s.explore = newExplorer(s.cfg.Exploration, opts.Uniform)
	s.drift = newDrift(s.cfg.Drift)
	s.loop = registerLoopMetrics(opts.Registry, s.drift, func() map[models.Decision]float64 {
		return s.state.Load().art.ExpectedShares
	})
	s.maxConns = s.cfg.Limits.MaxConnections
	nofile := fileLimit()
	if s.cfg.OpsAddr != "" && nofile > OpsMaxConnections {
		// The ops listener's connections take file descriptors too.
		nofile -= OpsMaxConnections
	}
	if s.maxConns == 0 {
		s.maxConns = defaultMaxConnections(nofile, s.proxy != nil)
	} else if nofile > 0 && uint64(s.maxConns)+fileReserve > nofile {
		s.log.Warn("limits.max_connections leaves no room under the file limit: accepts will fail with too many open files before the cap closes idle connections",
			"max_connections", s.maxConns, "file_limit", nofile, "reserve", fileReserve)
	}
	s.ids = newIDClaims(opts.Store)
	s.dlog = newDecisionLog(opts.Store, s.cfg.DecisionLog, s.m, s.log, s.ids.release)
	s.retention = newRetention(s.cfg.Retention, opts.Store, s.now, s.log, opts.Registry)
	s.setState(st)
	s.engine = newPathAsSent(s.newEngine())
	return s, nil
}

// load reads the model file and prepares a state for it, applying the
// configured threshold overrides.
func (s *Server) load() (*state, error) {
	a, err := s.loadModel(s.opts.ModelPath)
	if err != nil {
		return nil, err
	}
	if !s.cfg.Thresholds.IsZero() && a.IsMultiTier() {
		return nil, fmt.Errorf("%w: model %s is an N-tier router, which the thresholds set (the config's thresholds:, or serve's --speculate-above, --escalate-above or --accept-confidence) do not fit: they are a two-tier policy; remove them, or set the N-tier policy with triage calibrate",
			models.ErrBadArtifact, a.Version)
	}
	overridden := false
	if !s.cfg.Thresholds.IsZero() {
		c := *a
		c.Policy = s.cfg.Thresholds.Apply(a.Policy)
		overridden = c.Policy != a.Policy
		if err := c.Policy.Validate(); err != nil {
			return nil, fmt.Errorf("the threshold overrides (serve flags or the config's thresholds) do not fit model %s: %w", a.Version, err)
		}
		if c.Policy != a.Policy {
			// The artifact's shares were calibrated for its own
			// thresholds; they would make the override look like drift.
			c.ExpectedShares = nil
		}
		a = &c
	}
	tr, err := models.NewTierRouter(a)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", models.ErrBadArtifact, err)
	}
	var r *models.Router
	if !a.IsMultiTier() {
		if r, err = models.NewRouter(a); err != nil {
			return nil, fmt.Errorf("%w: %v", models.ErrBadArtifact, err)
		}
	}
	st, err := newState(tr, r)
	if err != nil {
		return nil, err
	}
	// The proxy serves the router's tier i with its i-th upstream: a
	// model with another number of tiers would send requests to the
	// wrong ones, so it is refused (a reload keeps the old one serving).
	if up := s.cfg.Proxy.Tiers.List(); len(up) > 0 && len(up) != len(st.tiers) {
		return nil, fmt.Errorf("%w: model %s has %d tiers (%s) but the config's tiers list %s; list one upstream per tier, cheapest first",
			models.ErrBadArtifact, a.Version, len(st.tiers), strings.Join(st.tiers, ", "), plural.Count(len(up), "upstream"))
	} else if err := checkTierOrder(st.tiers, up); err != nil {
		return nil, fmt.Errorf("%w: model %s: %v", models.ErrBadArtifact, a.Version, err)
	}
	s.warnSignal(a, overridden)
	return st, nil
}

// checkTierOrder refuses a config whose upstreams name the artifact's
// tiers in another order. Tiers are matched by position, so such a config
// would send each request to another tier's upstream and record that
// upstream's answer under the chosen tier's name, corrupting the next
// training run, with nothing in the answers to show it. Two signs are
// unambiguous: a list entry whose name is another position's tier (a
// client sending that name would get another model), and upstream models
// that are exactly the artifact's tier names, shuffled. Upstream models
// that differ from the tier names (a shifted ladder, say) are the
// operator's choice and are let through.
func checkTierOrder(names []string, up []proxy.Tier) error {
	if len(up) != len(names) {
		return nil // the count check says so
	}
	for i, t := range up {
		if j := slices.Index(names, t.Name); j >= 0 && j != i {
			return fmt.Errorf("the config's tiers[%d] is named %q, which is the model's tier %d (tiers are matched by position); list the upstreams in the model's order, cheapest first: %s",
				i, t.Name, j, strings.Join(names, ", "))
		}
	}
	ups := make([]string, len(up))
	for i, t := range up {
		ups[i] = t.Model
	}
	if !slices.Equal(ups, names) {
		sorted, want := slices.Clone(ups), slices.Clone(names)
		slices.Sort(sorted)
		slices.Sort(want)
		if slices.Equal(sorted, want) {
			return fmt.Errorf("the config's upstream models are %s, the model's tiers in another order (tiers are matched by position, so each tier's requests would go to another's upstream); list them in the model's order, cheapest first: %s",
				strings.Join(ups, ", "), strings.Join(names, ", "))
		}
	}
	return nil
}

// warnSignal says, when a model is loaded, what its training log's signal
// means for the traffic, because nothing in a decision shows it: a router
// that cannot route answers one p_hard for every request, so whatever the
// thresholds, every request gets the same decision; one not shown to beat
// random escalates everything unless thresholds were set for it, and then
// it routes on a ranking its log could not tell from noise.
func (s *Server) warnSignal(a *models.Artifact, overridden bool) {
	sig := a.Signal
	if sig == nil || sig.Significant || a.IsMultiTier() {
		return
	}
	thresholds := "the model's"
	if overridden {
		thresholds = "the config's"
	}
	switch {
	case !sig.Routable:
		p := a.Calibration.Apply(0)
		s.log.Warn("model cannot route: it answers one p_hard for every request, so "+thresholds+" thresholds send every request to one decision",
			"version", a.Version, "p_hard", p, "decision", a.Policy.Decide(p), "why", sig.Reason)
	case a.Policy.EscalateAbove <= 0:
		s.log.Warn("model is not shown to beat random, so its policy escalates every request; triage calibrate sets thresholds from its curves",
			"version", a.Version, "apgr", sig.APGR, "apgr_lo", sig.Lo, "apgr_hi", sig.Hi)
	default:
		s.log.Warn("model routes on "+thresholds+" thresholds although its training log did not show that it beats random",
			"version", a.Version, "apgr", sig.APGR, "apgr_lo", sig.Lo, "apgr_hi", sig.Hi)
	}
}

func newState(tr *models.TierRouter, r *models.Router) (*state, error) {
	a := tr.Artifact()
	tiers, err := json.Marshal(a.Tiers)
	if err != nil {
		return nil, err
	}
	var b []byte
	b = append(b, `,"tiers":`...)
	b = append(b, tiers...)
	b = append(b, `,"accept_confidence":`...)
	b = strconv.AppendFloat(b, tr.AcceptConfidence(), 'g', -1, 64)
	b = append(b, `,"model_version":`...)
	b = appendString(b, a.Version)
	// An N-tier model routes by its tier policy alone: the two-tier
	// label and thresholds its artifact carries (zeros) are not its
	// policy, and a client reading thresholds at 0 would take it to
	// escalate every request, so they are left out rather than shown.
	label, thresholds := &a.Label, &a.Policy
	if a.IsMultiTier() {
		label, thresholds = nil, nil
	}
	info, err := json.Marshal(modelInfo{
		Version: a.Version, Parent: a.Parent, CreatedAt: a.CreatedAt, Tiers: a.Tiers, Label: label,
		Thresholds: thresholds, PolicyTarget: a.PolicyTarget, ExpectedShares: a.ExpectedShares,
		Metrics: a.Metrics, Signal: a.Signal, Training: &a.Training, Features: a.Features.String(), TierList: publicTiers(a.TierList), TierPolicy: a.TierPolicy,
	})
	if err != nil {
		return nil, err
	}
	public, err := json.Marshal(modelInfo{
		Version: a.Version, CreatedAt: a.CreatedAt, Tiers: a.Tiers, Label: label, Thresholds: thresholds,
		TierList: publicTiers(a.TierList), TierPolicy: a.TierPolicy,
	})
	if err != nil {
		return nil, err
	}
	return &state{tr: tr, router: r, art: a, policy: a.Policy, choose: proxy.Tiered(tr), tiers: tr.Names(), suffix: b, info: info, public: public}, nil
}

// tierInfo is one tier of an N-tier model in GET /v1/model.
type tierInfo struct {
	Name  string  `json:"name"`
	Price float64 `json:"price"`
}

func publicTiers(list []models.Tier) []tierInfo {
	if len(list) == 0 {
		return nil
	}
	out := make([]tierInfo, len(list))
	for i, t := range list {
		out[i] = tierInfo{Name: t.Name, Price: t.Price}
	}
	return out
}

// modelInfo is the GET /v1/model body.
type modelInfo struct {
	Version   string       `json:"version"`
	Parent    string       `json:"parent,omitempty"`
	CreatedAt time.Time    `json:"created_at"`
	Tiers     models.Tiers `json:"tiers"`
	// Label and Thresholds are a two-tier model's p_hard label and
	// policy, always present for one (clients read them); nil, so
	// absent, for an N-tier model, whose policy is TierPolicy.
	Label          *string                     `json:"label,omitempty"`
	Thresholds     *models.Policy              `json:"thresholds,omitempty"`
	PolicyTarget   string                      `json:"policy_target,omitempty"`
	ExpectedShares map[models.Decision]float64 `json:"expected_shares,omitempty"`
	// TierList and TierPolicy are an N-tier model's tiers, cheapest
	// first, and its policy; absent for a two-tier model.
	TierList   []tierInfo         `json:"tier_list,omitempty"`
	TierPolicy *models.TierPolicy `json:"tier_policy,omitempty"`
	// The rest is shown to an admin only: the training fingerprint
	// names the files trained on.
	Metrics  map[string]float64  `json:"metrics,omitempty"`
	Signal   *models.Signal      `json:"signal,omitempty"`
	Training *models.Fingerprint `json:"training,omitempty"`
	Features string              `json:"features,omitempty"`
}

func (s *Server) setState(st *state) {
	s.servedMu.Lock()
	if old := s.state.Load(); old != nil && !slices.Equal(old.tiers, st.tiers) {
		s.log.Warn("the new model's tiers differ from the old one's; feedback naming the old tiers is still taken, for the requests they routed",
			"version", st.art.Version, "tiers", strings.Join(st.tiers, ","), "previous", old.art.Version, "previous_tiers", strings.Join(old.tiers, ","))
	}
	for _, t := range st.tiers {
		s.served[t] = true
	}
	s.servedMu.Unlock()
	labels := st.tiers
	if !st.art.IsMultiTier() {
		labels = []string{"fast", "strong"}
	}
	s.drift.setTiers(labels, st.art.IsMultiTier())
	s.state.Store(st)
	s.m.modelInfo.Reset()
	s.m.modelInfo.WithLabelValues(st.art.Version).Set(1)
}

// Router is the router currently serving: nil for an N-tier model, which
// TierRouter serves.
func (s *Server) Router() *models.Router { return s.state.Load().router }

// TierRouter is the router currently serving, of either kind.
func (s *Server) TierRouter() *models.TierRouter { return s.state.Load().tr }

// ReloadResult says what a reload did.
type ReloadResult struct {
	Version  string `json:"version"`
	Previous string `json:"previous"`
	Changed  bool   `json:"changed"`
}

// Reload reads the model file again and swaps it in atomically. A file
// that does not load or validate leaves the old model serving; the error
// says why and which version still serves. Requests in flight finish on
// the router they started with, so none fails.
//
// The read is bounded: regular files only, up to limits.max_artifact_bytes
// (models.LoadFile), and a reload waits at most limits.reload_timeout for
// it and for a reload already in progress. A read that hangs (a file on a
// stuck network mount) keeps the reload slot until it returns, and its
// result is dropped, but no caller waits on it past the timeout and no
// other admin call waits on it at all.
func (s *Server) Reload() (ReloadResult, error) {
	timeout := time.NewTimer(s.cfg.Limits.ReloadTimeout)
	defer timeout.Stop()
	prev := s.state.Load()
	refused := func(code string, err error) (ReloadResult, error) {
		s.m.reloadsEr.Inc()
		s.log.Warn("reload refused", "still_serving", prev.art.Version, "err", err)
		// The reason goes to the caller even when it is an I/O error: a
		// person asked for this reload and needs to know why it failed.
		return ReloadResult{Version: prev.art.Version, Previous: prev.art.Version},
			&Error{Code: code, Message: fmt.Sprintf("reload refused, still serving %s: %v", prev.art.Version, err), Err: err}
	}
	select {
	case s.reloadSem <- struct{}{}:
	case <-timeout.C:
		return refused(CodeReloadFailed, fmt.Errorf("another reload has been reading the model file for over %s (limits.reload_timeout)", s.cfg.Limits.ReloadTimeout))
	}
	type loaded struct {
		st  *state
		err error
	}
	done := make(chan loaded, 1)
	go func() {
		st, err := s.load()
		done <- loaded{st, err}
	}()
	var r loaded
	select {
	case r = <-done:
		defer func() { <-s.reloadSem }()
	case <-timeout.C:
		// The slot is given back when the read returns; its result,
		// which nobody waits for any more, is dropped.
		go func() {
			<-done
			<-s.reloadSem
		}()
		return refused(CodeReloadFailed, fmt.Errorf("reading the model file took over %s (limits.reload_timeout); is it on a stuck mount?", s.cfg.Limits.ReloadTimeout))
	}
	if r.err != nil {
		code := CodeReloadFailed
		if errors.Is(r.err, models.ErrBadArtifact) {
			code = CodeBadArtifact
		}
		return refused(code, r.err)
	}
	// reloadSem is held until after the swap, so reloads swap in the
	// order they read.
	prev = s.state.Load()
	s.setState(r.st)
	s.m.reloadsOK.Inc()
	res := ReloadResult{Version: r.st.art.Version, Previous: prev.art.Version, Changed: r.st.art.Version != prev.art.Version}
	if res.Changed {
		s.log.Info("model reloaded", "version", res.Version, "previous", res.Previous)
	} else {
		// Said apart from a swap: an operator who reloads after a
		// retrain and reads "model reloaded" takes the new model to be
		// serving when the file still held the old one.
		s.log.Info("model file read again, version unchanged", "version", res.Version)
	}
	return res, nil
}

// Handler is the server's http.Handler.
func (s *Server) Handler() http.Handler { return s.engine }

// Serve answers requests on ln until Shutdown. It returns nil after a
// graceful shutdown.
func (s *Server) Serve(ln net.Listener) error {
	lim := newConnLimiter(ln, s.maxConns, s.log, s.conns)
	s.limiter.Store(lim)
	srv := s.httpServer(s.engine)
	srv.ConnState = lim.connState
	return s.serveOn(srv, lim, &s.http)
}

// OpsMaxConnections caps the ops listener's connections. It serves
// probes, scrapes and an operator's admin calls, a handful at a time;
// the cap only bounds the file descriptors a stray flood could take.
const OpsMaxConnections = 32

// ServeOps answers /healthz, /readyz, /metrics and (with the admin
// token) /admin/* on ln until Shutdown: the ops listener (ops_addr).
// Its connections are not counted against limits.max_connections, so
// probes, scrapes and reloads are answered while every client
// connection is busy, when they would wait in the client listener's
// backlog. It returns nil after a graceful shutdown.
func (s *Server) ServeOps(ln net.Listener) error {
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.Use(s.recover)
	e.NoRoute(func(c *gin.Context) {
		writeError(c, s.log, Errorf(CodeNotFound, "no route %s %s on the ops listener, which serves /healthz, /readyz, /metrics and /admin/*; the API is on addr (docs/serving.md)",
			echo.Bare(c.Request.Method), echo.Bare(c.Request.URL.Path)))
	})
	e.NoMethod(func(c *gin.Context) {
		writeError(c, s.log, Errorf(CodeMethodNotAllowed, "%s is not allowed on %s", echo.Bare(c.Request.Method), echo.Bare(c.Request.URL.Path)))
	})
	s.opsRoutes(e)
	return s.serveOn(s.httpServer(e), netutil.LimitListener(ln, OpsMaxConnections), &s.opsHTTP)
}

// httpServer is an http.Server for h with the configured limits.
func (s *Server) httpServer(h http.Handler) *http.Server {
	l := s.cfg.Limits
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		// Accept errors are logged (at warn) and counted by the limiter;
		// what is left here is clients' noise (bad TLS, broken headers).
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}

// serveOn runs srv on ln after publishing it in *slot for Shutdown, unless
// Shutdown has begun.
func (s *Server) serveOn(srv *http.Server, ln net.Listener, slot **http.Server) error {
	s.httpMu.Lock()
	if s.closing.Load() {
		s.httpMu.Unlock()
		ln.Close()
		return http.ErrServerClosed
	}
	*slot = srv
	s.httpMu.Unlock()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// MaxConnections is the connection cap Serve applies: limits.max_connections,
// or its default from the file limit.
func (s *Server) MaxConnections() int { return s.maxConns }

// recordDrainBudget bounds how long Shutdown waits for the proxy's queued
// recordings: a full queue is a few batched commits to a local file, far
// below this unless the disk is stuck.
const recordDrainBudget = 10 * time.Second

// Shutdown stops accepting requests, waits for those in flight (up to
// ctx), then drains the decision log. The caller closes the store after.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.httpMu.Lock()
	srv, ops := s.http, s.opsHTTP
	s.httpMu.Unlock()
	var err error
	if ops != nil {
		// Close, not Shutdown: an admin export stream may run for
		// minutes, and nothing on this listener is recorded.
		ops.Close()
	}
	if srv != nil {
		if err = srv.Shutdown(ctx); err != nil {
			err = fmt.Errorf("shutdown: %w (requests still in flight end with the process, unrecorded)", err)
		}
	}
	if s.proxy != nil {
		// What answered requests queued for the store is written before
		// the caller closes it, with a budget of its own: ctx may be
		// spent on a long stream still in flight, and handing it on lost
		// every recording the writer had not yet committed. The decision
		// log below drains with no deadline for the same reason.
		dctx, cancel := context.WithTimeout(context.Background(), recordDrainBudget)
		perr := s.proxy.Close(dctx)
		cancel()
		if perr != nil {
			err = errors.Join(err, perr)
		}
	}
	s.dlog.Close()
	s.retention.close()
	return err
}

// pathAsSent prepares a request's path for h, which routes on the path
// as sent (newEngine), where the decoded path cannot tell a "/" from %2F.
//
// The percent-encoded letters, digits and "-._~" are decoded: RFC 3986
// (6.2.2.2) makes "/v1/%6Dodels" "/v1/models", and so did the decoded
// path the engine routed on before. Left encoded, each such path was a
// 404 whose message named the very route it missed. Only these are
// decoded: %2F stays inside its segment, and what else a path must
// escape stays escaped.
//
// A path that ends in "/" and is no route, where the path without that
// slash is one, is redirected to it as sent, as gin redirects (301 for a
// GET, 307 else). gin's own redirect, off on h, builds the new path from
// the decoded one: GET /v1/responses/a%2Fb/ went to /v1/responses/a/b,
// and POST /v1/responses/x%2Fcancel/ to /v1/responses/x/cancel, the
// cancel of response x. No route of h ends in "/", so a slash is never
// added.
type pathAsSent struct {
	h http.Handler
	// routes are h's, to tell the paths to redirect.
	routes gin.RoutesInfo
}

func newPathAsSent(e *gin.Engine) pathAsSent { return pathAsSent{e, e.Routes()} }

func (u pathAsSent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.EscapedPath()
	d := p
	if strings.IndexByte(p, '%') >= 0 {
		d = decodeUnreserved(p)
	}
	if len(d) > 1 && d[len(d)-1] == '/' && !u.routed(r.Method, d) && u.routed(r.Method, d[:len(d)-1]) {
		redirectTrailingSlash(w, r, d[:len(d)-1])
		return
	}
	if d != p {
		// A copy, as http.StripPrefix makes: the caller's request stays
		// as it was sent.
		r2 := new(http.Request)
		*r2 = *r
		r2.URL = new(url.URL)
		*r2.URL = *r.URL
		r2.URL.RawPath = d
		r = r2
	}
	u.h.ServeHTTP(w, r)
}

// routed reports whether one of u's routes for method matches the
// escaped path p.
func (u pathAsSent) routed(method, p string) bool {
	for _, rt := range u.routes {
		if rt.Method == method && pathMatches(rt.Path, p) {
			return true
		}
	}
	return false
}

// pathMatches reports whether the escaped path p matches a gin route's
// pattern, as gin's tree matches it: a ":param" is one segment that is
// not empty, a "*param" the rest of the path.
func pathMatches(pattern, p string) bool {
	ps, xs := strings.Split(pattern, "/"), strings.Split(p, "/")
	for i, seg := range ps {
		switch {
		case strings.HasPrefix(seg, "*"):
			return i < len(xs) // the rest, "" too
		case i >= len(xs):
			return false
		case strings.HasPrefix(seg, ":"):
			if xs[i] == "" {
				return false
			}
		case seg != xs[i]:
			return false
		}
	}
	return len(xs) == len(ps)
}

// redirectTrailingSlash redirects r to the escaped path p with r's query,
// as gin's own trailing-slash redirect does (with its X-Forwarded-Prefix,
// kept to letters, digits, "/" and "-").
func redirectTrailingSlash(w http.ResponseWriter, r *http.Request, p string) {
	if prefix := path.Clean(r.Header.Get("X-Forwarded-Prefix")); prefix != "." {
		prefix = strings.Map(func(c rune) rune {
			if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '/' || c == '-' {
				return c
			}
			return -1
		}, prefix)
		p = "/" + strings.Trim(prefix, "/") + p
	}
	if r.URL.RawQuery != "" {
		p += "?" + r.URL.RawQuery
	}
	code := http.StatusMovedPermanently
	if r.Method != http.MethodGet {
		code = http.StatusTemporaryRedirect
	}
	http.Redirect(w, r, p, code)
}

// decodeUnreserved is the escaped path p with each percent-encoded
// unreserved character (RFC 3986 2.3) decoded.
func decodeUnreserved(p string) string {
	var b []byte
	for i := 0; i < len(p); i++ {
		if p[i] == '%' && i+2 < len(p) {
			if c, err := strconv.ParseUint(p[i+1:i+3], 16, 8); err == nil && unreserved(byte(c)) {
				if b == nil {
					b = append(make([]byte, 0, len(p)), p[:i]...)
				}
				b = append(b, byte(c))
				i += 2
				continue
			}
		}
		if b != nil {
			b = append(b, p[i])
		}
	}
	if b == nil {
		return p
	}
	return string(b)
}

func unreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// newEngine builds the routes. The hot routes get no middleware but
// panic recovery; metrics are per-handler wrappers with pre-resolved
// series.
func (s *Server) newEngine() *gin.Engine {
	e := gin.New()
	e.HandleMethodNotAllowed = true
	// Routed on the path as sent, each parameter unescaped after: a
	// stored response's id that holds "/" (a LiteLLM proxy's, base64)
	// comes as %2F, and the decoded path would split it into two
	// segments, an unknown route (or, before /cancel, another id's).
	e.UseEscapedPath = true
	// pathAsSent redirects a path with a trailing slash instead: gin
	// builds the redirect from the decoded path, which loses a %2F.
	e.RedirectTrailingSlash = false
	e.Use(s.recover)
	e.NoRoute(func(c *gin.Context) {
		// The method and path are the client's, of any length up to
		// the request line's limit: repeated by their start.
		hint := "see docs/serving.md for the endpoints"
		if strings.HasPrefix(c.Request.URL.Path, "/v1/responses/") && s.proxy != nil {
			hint = "a stored response's id is one path segment: send a \"/\" in it as %2F (docs/proxy.md)"
		}
		// The path as routed: decoded, "/v1/chat%2Fcompletions" read
		// as a route that exists.
		writeError(c, s.log, Errorf(CodeNotFound, "no route %s %s; %s", echo.Bare(c.Request.Method), echo.Bare(c.Request.URL.EscapedPath()), hint))
	})
	e.NoMethod(func(c *gin.Context) {
		writeError(c, s.log, Errorf(CodeMethodNotAllowed, "%s is not allowed on %s", echo.Bare(c.Request.Method), echo.Bare(c.Request.URL.EscapedPath())))
	})
	// The client-facing /v1/ routes are behind the client keys when
	// there are any (handle and handleProxy check them).
	s.handle(e, http.MethodPost, "/v1/route", s.handleRoute)
	s.handle(e, http.MethodPost, "/v1/route/batch", s.handleRouteBatch)
	s.handle(e, http.MethodPost, "/v1/feedback", s.handleFeedback)
	if s.proxy != nil {
		s.handleProxy(e, http.MethodPost, "/v1/chat/completions", s.proxy.ServeHTTP)
		s.handleProxy(e, http.MethodPost, "/v1/completions", s.proxy.ServeCompletions)
		s.handleProxy(e, http.MethodPost, "/v1/responses", s.proxy.ServeResponses)
		s.handleProxy(e, http.MethodPost, "/v1/embeddings", s.proxy.ServeEmbeddings)
		// A stored response's retrieval, deletion, cancellation and
		// input items, passed to the tier that stored it.
		for _, p := range proxy.StoredResponsePaths {
			s.handleProxy(e, p.Method, p.Path, s.proxy.ServeStoredResponse)
		}
		models := gin.WrapF(s.proxy.ServeModels)
		s.handle(e, http.MethodGet, "/v1/models", models)
		// A catch-all: model ids hold slashes (meta-llama/Llama-3.1-8B-Instruct).
		s.handle(e, http.MethodGet, "/v1/models/*id", models)
	} else {
		// Like an unknown route (no metrics series), with a better hint.
		e.POST("/v1/chat/completions", func(c *gin.Context) {
			writeError(c, s.log, Errorf(CodeNotFound, "the proxy is off: add a tiers section to the config (see docs/proxy.md)"))
		})
	}
	s.handle(e, http.MethodGet, "/v1/model", s.handleModel)
	s.opsRoutes(e)
	return e
}

// opsRoutes registers what operators and their tools call: health,
// readiness, metrics and the admin routes. The client listener serves
// them, and so does the ops listener (ServeOps) when there is one.
func (s *Server) opsRoutes(e *gin.Engine) {
	s.handle(e, http.MethodGet, "/healthz", func(c *gin.Context) {
		c.Data(http.StatusOK, "application/json", []byte(`{"status":"ok"}`))
	})
	s.handle(e, http.MethodGet, "/readyz", s.handleReady)
	metricsHandler := promhttp.HandlerFor(s.opts.Registry, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelError)})
	s.handle(e, http.MethodGet, "/metrics", gin.WrapH(metricsHandler))
	if s.opts.AdminToken != "" {
		// The token is checked inside each route's metrics wrapper (not
		// as the group's middleware, which aborts before it), so refused
		// attempts show in triage_http_requests_total as 401s.
		admin := e.Group("/admin")
		s.handle(admin, http.MethodPost, "/reload", s.requireAdmin(s.handleReload))
		s.handle(admin, http.MethodGet, "/feedback/snapshot", s.requireAdmin(s.handleSnapshot))
		s.handle(admin, http.MethodGet, "/feedback/export", s.requireAdmin(s.handleExport))
	}
}

// handle registers h with a metrics wrapper for its route.
// statusClientGone is the status the metrics count for a request whose
// client went away before it was answered.
const statusClientGone = 499

func (s *Server) handle(r gin.IRoutes, method, path string, h gin.HandlerFunc) {
	rm := s.routeMetrics(r, method, path)
	auth := s.needsClientKey(path)
	r.Handle(method, path, func(c *gin.Context) {
		start := time.Now()
		if !auth || s.clientAllowed(c) {
			h(c)
		}
		status := c.Writer.Status()
		// A client that hung up before the handler was done counts as
		// 499 (nginx's "client closed request"), as the proxy's own
		// metrics count it, whatever status was written for it. A 408
		// is the server's own doing: net/http cancels the request's
		// context when a body read fails, the read timeout's too, and
		// counting that as 499 blamed the client for a request the
		// server cut off and answered.
		if c.Request.Context().Err() != nil && status != http.StatusRequestTimeout {
			status = statusClientGone
		}
		rm.done(status, start)
	})
}

// handleProxy registers a proxy route. Its metrics count the status
// the proxy counted (499 for a client gone, 502 for a stream an upstream
// broke, though 200 was sent), also when the handler aborts the
// connection with http.ErrAbortHandler.
func (s *Server) handleProxy(r gin.IRoutes, method, path string, h http.HandlerFunc) {
	rm := s.routeMetrics(r, method, path)
	auth := s.needsClientKey(path)
	r.Handle(method, path, func(c *gin.Context) {
		start := time.Now()
		if auth && !s.clientAllowed(c) {
			rm.done(c.Writer.Status(), start)
			return
		}
		ctx, rep := proxy.WithStatusReport(c.Request.Context())
		defer func() {
			st := rep.Status
			if st == 0 {
				st = c.Writer.Status()
			}
			rm.doneAt(st, start, rep.Answered)
		}()
		h(c.Writer, c.Request.WithContext(ctx))
	})
}

func (s *Server) routeMetrics(r gin.IRoutes, method, path string) *routeMetrics {
	route := path
	if g, ok := r.(*gin.RouterGroup); ok {
		route = strings.TrimSuffix(g.BasePath(), "/") + path
	}
	return s.m.forRoute(method, route)
}

// recover turns a handler panic into a logged 500 with the usual error
// body, except http.ErrAbortHandler, which net/http uses to cut a
// response stream off on purpose.
func (s *Server) recover(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("handler panic", "path", c.Request.URL.Path, "panic", v)
			if !c.Writer.Written() {
				writeError(c, s.log, fmt.Errorf("panic: %v", v))
			}
		}
	}()
	c.Next()
}

// requireAdmin wraps h with a check of the bearer token in constant time.
// Both sides are hashed first so the comparison does not leak the token's
// length.
func (s *Server) requireAdmin(h gin.HandlerFunc) gin.HandlerFunc {
	return func(c *gin.Context) {
		if _, ok := bearer(c); !ok {
			writeError(c, s.log, Errorf(CodeUnauthorized, "admin routes need Authorization: Bearer $TRIAGE_ADMIN_TOKEN"))
			return
		}
		if !s.isAdmin(c) {
			writeError(c, s.log, Errorf(CodeUnauthorized, "the admin token is wrong"))
			return
		}
		h(c)
	}
}

// handleModel shows the model: all of it to an admin, and to anyone else
// what a client needs (version, tiers, thresholds), not the training
// details, which name files on the server.
func (s *Server) handleModel(c *gin.Context) {
	st := s.state.Load()
	if s.isAdmin(c) {
		c.Data(http.StatusOK, "application/json", st.info)
		return
	}
	c.Data(http.StatusOK, "application/json", st.public)
}

// isAdmin reports whether the request carries the admin token (false
// when the admin routes are off).
func (s *Server) isAdmin(c *gin.Context) bool {
	token, ok := bearer(c)
	if s.opts.AdminToken == "" || !ok {
		return false
	}
	got := sha256.Sum256([]byte(token))
	want := sha256.Sum256([]byte(s.opts.AdminToken))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

func (s *Server) handleReady(c *gin.Context) {
	st := s.state.Load()
	switch {
	case s.closing.Load():
		writeError(c, s.log, Errorf(CodeNotReady, "shutting down"))
	case st == nil:
		writeError(c, s.log, Errorf(CodeNotReady, "no model loaded"))
	default:
		if err := s.store.Ping(); err != nil {
			// The reason without file paths, which the public must not
			// see; the log has the whole error, once per change.
			reason := notReadyReason(err)
			if prev := s.notReady.Swap(&reason); prev == nil || *prev != reason {
				s.log.Error("not ready: the feedback db is not usable", "err", err)
			}
			writeError(c, s.log, Errorf(CodeNotReady, "%s", reason))
			return
		}
		s.notReady.Store(nil)
		body := gin.H{"status": "ready", "model_version": st.art.Version}
		if f := s.dlog.Failing(); f != nil {
			// Routing goes on (a router that stops answering because its
			// learning log is full would fail the product), so this stays
			// 200; the loss is said here, in the server log and in
			// triage_decision_log_write_failures_total.
			body["decision_log"] = fmt.Sprintf("routed requests are not being recorded since %s (%s); routing goes on", f.at.UTC().Format(time.RFC3339), diskReason(f.err))
		}
		c.JSON(http.StatusOK, body)
	}
}

// diskReason names a store error's cause without paths: the errno's
// text (no space left on device), or a pointer to the server log.
func diskReason(err error) string {
	if errno, ok := diskErrno(err); ok {
		return "a disk error: " + errno.Error()
	}
	return "a db error; see the server log"
}

// diskErrno is the errno of a disk error (full, over quota, read-only,
// failing) in err's chain; other errnos are not the operator's disk.
func diskErrno(err error) (syscall.Errno, bool) {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return 0, false
	}
	switch errno {
	case syscall.ENOSPC, syscall.EDQUOT, syscall.EROFS, syscall.EIO, syscall.EFBIG:
		return errno, true
	}
	return 0, false
}

// notReadyReason says why the store is not usable, in words that hold no
// path or address.
func notReadyReason(err error) string {
	var errno syscall.Errno
	switch {
	case errors.Is(err, datasets.ErrWritesFailing) && errors.As(err, &errno):
		return fmt.Sprintf("feedback writes are failing since a disk error (%v); fix it and restart the server", errno)
	case errors.Is(err, datasets.ErrWritesFailing):
		return "feedback writes are failing since a disk error; see the server log, fix it and restart the server"
	case errors.Is(err, datasets.ErrStoreClosed):
		return "the feedback db is closed"
	}
	return "the feedback db is not usable; see the server log"
}

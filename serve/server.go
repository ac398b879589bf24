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
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/models"
	"github.com/triage-router/triage/serve/proxy"
)

// FeedbackSink durably records feedback; it returns nil only once the
// feedback is committed, and datasets.ErrUnknownRequest for an id it has
// no record of when the feedback carries no prompt.
type FeedbackSink interface {
	PutFeedback(ctx context.Context, fb datasets.Feedback) error
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

// Store is everything the server needs from its database.
type Store interface {
	FeedbackSink
	DecisionLog
	Exporter
	// Ping reports whether the database is usable (for /readyz).
	Ping() error
	// Size is the database size in bytes (for /metrics).
	Size() int64
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
	opts    Options
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	store   Store
	engine  *gin.Engine
	state   atomic.Pointer[state]
	dlog    *decisionLog
	m       *metrics
	reload  sync.Mutex
	closing atomic.Bool
	// explore, drift and loop serve the feedback loop (explore.go,
	// drift.go).
	explore explorer
	drift   *drift
	loop    loopMetrics
	// proxy is POST /v1/chat/completions; nil when no tiers are
	// configured.
	proxy *proxy.Handler
	// clientKeys guard the /v1/ routes; none leaves them open.
	clientKeys []clientKey

	httpMu sync.Mutex
	http   *http.Server
}

// state is one loaded model with everything the route path precomputes
// from it. It is replaced whole on reload, never changed.
type state struct {
	router *models.Router
	art    *models.Artifact
	policy models.Policy
	// suffix is the constant tail of a route response:
	// ,"tiers":{...},"accept_confidence":X,"model_version":"V"}
	suffix []byte
	// info is the GET /v1/model body.
	info []byte
}

// New loads the model and builds the server. Nothing listens until Serve.
func New(opts Options) (*Server, error) {
	if opts.Store == nil || opts.Registry == nil || opts.ModelPath == "" {
		panic("serve: New needs Options.Store, Options.Registry and Options.ModelPath")
	}
	if err := opts.Config.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	s := &Server{opts: opts, cfg: opts.Config, log: opts.Logger, now: opts.Now, store: opts.Store}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	st, err := s.load()
	if err != nil {
		return nil, err
	}
	s.m = newMetrics(opts.Registry,
		func() float64 { return float64(s.dlog.Depth()) },
		func() float64 { return float64(s.store.Size()) })
	registerCommitStats(opts.Registry, opts.Store)
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
		// The proxy asks for the router per request, so it follows
		// reloads; it records into the same store as the route path.
		s.proxy, err = proxy.New(pc, proxy.Deps{
			Router:   func() proxy.Router { return s.Router() },
			Recorder: proxy.StoreRecorder{Store: opts.Store},
			Registry: opts.Registry, Logger: s.log, Getenv: opts.Getenv, Now: s.now,
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
	s.dlog = newDecisionLog(opts.Store, s.cfg.DecisionLog, s.m, s.log)
	s.setState(st)
	s.engine = s.newEngine()
	return s, nil
}

// load reads the model file and prepares a state for it, applying the
// configured threshold overrides.
func (s *Server) load() (*state, error) {
	a, err := models.Load(s.opts.ModelPath)
	if err != nil {
		return nil, err
	}
	if !s.cfg.Thresholds.IsZero() {
		c := *a
		c.Policy = s.cfg.Thresholds.Apply(a.Policy)
		if err := c.Policy.Validate(); err != nil {
			return nil, fmt.Errorf("thresholds from the config do not fit model %s: %w", a.Version, err)
		}
		if c.Policy != a.Policy {
			// The artifact's shares were calibrated for its own
			// thresholds; they would make the override look like drift.
			c.ExpectedShares = nil
		}
		a = &c
	}
	r, err := models.NewRouter(a)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", models.ErrBadArtifact, err)
	}
	return newState(r)
}

func newState(r *models.Router) (*state, error) {
	a := r.Artifact()
	tiers, err := json.Marshal(a.Tiers)
	if err != nil {
		return nil, err
	}
	var b []byte
	b = append(b, `,"tiers":`...)
	b = append(b, tiers...)
	b = append(b, `,"accept_confidence":`...)
	b = strconv.AppendFloat(b, a.Policy.AcceptConfidence, 'g', -1, 64)
	b = append(b, `,"model_version":`...)
	b = appendString(b, a.Version)
	info, err := json.Marshal(modelInfo{
		Version: a.Version, Parent: a.Parent, CreatedAt: a.CreatedAt, Tiers: a.Tiers, Label: a.Label,
		Thresholds: a.Policy, PolicyTarget: a.PolicyTarget, ExpectedShares: a.ExpectedShares,
		Metrics: a.Metrics, Training: a.Training, Features: a.Features.String(),
	})
	if err != nil {
		return nil, err
	}
	return &state{router: r, art: a, policy: a.Policy, suffix: b, info: info}, nil
}

// modelInfo is the GET /v1/model body.
type modelInfo struct {
	Version        string                      `json:"version"`
	Parent         string                      `json:"parent,omitempty"`
	CreatedAt      time.Time                   `json:"created_at"`
	Tiers          models.Tiers                `json:"tiers"`
	Label          string                      `json:"label"`
	Thresholds     models.Policy               `json:"thresholds"`
	PolicyTarget   string                      `json:"policy_target,omitempty"`
	ExpectedShares map[models.Decision]float64 `json:"expected_shares,omitempty"`
	Metrics        map[string]float64          `json:"metrics"`
	Training       models.Fingerprint          `json:"training"`
	Features       string                      `json:"features"`
}

func (s *Server) setState(st *state) {
	s.state.Store(st)
	s.m.modelInfo.Reset()
	s.m.modelInfo.WithLabelValues(st.art.Version).Set(1)
}

// Router is the router currently serving.
func (s *Server) Router() *models.Router { return s.state.Load().router }

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
func (s *Server) Reload() (ReloadResult, error) {
	s.reload.Lock()
	defer s.reload.Unlock()
	prev := s.state.Load()
	st, err := s.load()
	if err != nil {
		s.m.reloadsEr.Inc()
		s.log.Warn("reload refused", "still_serving", prev.art.Version, "err", err)
		code := CodeReloadFailed
		if errors.Is(err, models.ErrBadArtifact) {
			code = CodeBadArtifact
		}
		// The reason goes to the caller even when it is an I/O error: a
		// person asked for this reload and needs to know why it failed.
		return ReloadResult{Version: prev.art.Version, Previous: prev.art.Version},
			&Error{Code: code, Message: fmt.Sprintf("reload refused, still serving %s: %v", prev.art.Version, err), Err: err}
	}
	s.setState(st)
	s.m.reloadsOK.Inc()
	res := ReloadResult{Version: st.art.Version, Previous: prev.art.Version, Changed: st.art.Version != prev.art.Version}
	s.log.Info("model reloaded", "version", res.Version, "previous", res.Previous)
	return res, nil
}

// Engine is the gin engine, for a caller that adds routes (e.g. a proxy)
// before Serve. Use WriteError in them so errors look the same.
func (s *Server) Engine() *gin.Engine { return s.engine }

// Handler is the server's http.Handler.
func (s *Server) Handler() http.Handler { return s.engine }

// WriteError answers c with err as {"error":{"code","message"}} and the
// status ErrorStatus maps it to.
func (s *Server) WriteError(c *gin.Context, err error) { writeError(c, s.log, err) }

// Serve answers requests on ln until Shutdown. It returns nil after a
// graceful shutdown.
func (s *Server) Serve(ln net.Listener) error {
	l := s.cfg.Limits
	srv := &http.Server{
		Handler:           s.engine,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.httpMu.Lock()
	if s.closing.Load() {
		s.httpMu.Unlock()
		return http.ErrServerClosed
	}
	s.http = srv
	s.httpMu.Unlock()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting requests, waits for those in flight (up to
// ctx), then drains the decision log. The caller closes the store after.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.httpMu.Lock()
	srv := s.http
	s.httpMu.Unlock()
	var err error
	if srv != nil {
		if err = srv.Shutdown(ctx); err != nil {
			err = fmt.Errorf("shutdown: %w (in-flight requests were cut off)", err)
		}
	}
	if s.proxy != nil {
		// Requests are done; what they queued for the store is written
		// before the caller closes it.
		if perr := s.proxy.Close(ctx); perr != nil {
			err = errors.Join(err, perr)
		}
	}
	s.dlog.Close()
	return err
}

// newEngine builds the routes. The hot routes get no middleware but
// panic recovery; metrics are per-handler wrappers with pre-resolved
// series.
func (s *Server) newEngine() *gin.Engine {
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.Use(s.recover)
	e.NoRoute(func(c *gin.Context) {
		writeError(c, s.log, Errorf(CodeNotFound, "no route %s %s; see docs/serving.md for the endpoints", c.Request.Method, c.Request.URL.Path))
	})
	e.NoMethod(func(c *gin.Context) {
		writeError(c, s.log, Errorf(CodeMethodNotAllowed, "%s is not allowed on %s", c.Request.Method, c.Request.URL.Path))
	})
	// The client-facing /v1/ routes are behind the client keys when
	// there are any (handle and handleProxy check them).
	s.handle(e, http.MethodPost, "/v1/route", s.handleRoute)
	s.handle(e, http.MethodPost, "/v1/route/batch", s.handleRouteBatch)
	s.handle(e, http.MethodPost, "/v1/feedback", s.handleFeedback)
	if s.proxy != nil {
		s.handleProxy(e, "/v1/chat/completions", s.proxy.ServeHTTP)
		s.handleProxy(e, "/v1/completions", s.proxy.ServeCompletions)
		s.handleProxy(e, "/v1/embeddings", s.proxy.ServeEmbeddings)
		models := gin.WrapF(s.proxy.ServeModels)
		s.handle(e, http.MethodGet, "/v1/models", models)
		s.handle(e, http.MethodGet, "/v1/models/:id", models)
	} else {
		// Like an unknown route (no metrics series), with a better hint.
		e.POST("/v1/chat/completions", func(c *gin.Context) {
			writeError(c, s.log, Errorf(CodeNotFound, "the proxy is off: add a tiers section to the config (see docs/proxy.md)"))
		})
	}
	s.handle(e, http.MethodGet, "/v1/model", s.handleModel)
	s.handle(e, http.MethodGet, "/healthz", func(c *gin.Context) {
		c.Data(http.StatusOK, "application/json", []byte(`{"status":"ok"}`))
	})
	s.handle(e, http.MethodGet, "/readyz", s.handleReady)
	metricsHandler := promhttp.HandlerFor(s.opts.Registry, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelError)})
	s.handle(e, http.MethodGet, "/metrics", gin.WrapH(metricsHandler))
	if s.opts.AdminToken != "" {
		admin := e.Group("/admin", s.requireAdmin)
		s.handle(admin, http.MethodPost, "/reload", s.handleReload)
		s.handle(admin, http.MethodGet, "/feedback/snapshot", s.handleSnapshot)
		s.handle(admin, http.MethodGet, "/feedback/export", s.handleExport)
	}
	return e
}

// handle registers h with a metrics wrapper for its route.
// statusClientGone is the status the metrics count for a request whose
// client went away before it was answered.
const statusClientGone = 499

func (s *Server) handle(r gin.IRoutes, method, path string, h gin.HandlerFunc) {
	rm := s.routeMetrics(r, path)
	auth := s.needsClientKey(path)
	r.Handle(method, path, func(c *gin.Context) {
		start := time.Now()
		if !auth || s.clientAllowed(c) {
			h(c)
		}
		status := c.Writer.Status()
		// A client that hung up before the handler was done counts as
		// 499 (nginx's "client closed request"), as the proxy's own
		// metrics count it, whatever status was written for it.
		if c.Request.Context().Err() != nil {
			status = statusClientGone
		}
		rm.done(status, start)
	})
}

// handleProxy registers a proxy POST route. Its metrics count the status
// the proxy counted (499 for a client gone, 502 for a stream an upstream
// broke, though 200 was sent), also when the handler aborts the
// connection with http.ErrAbortHandler.
func (s *Server) handleProxy(r gin.IRoutes, path string, h http.HandlerFunc) {
	rm := s.routeMetrics(r, path)
	auth := s.needsClientKey(path)
	r.Handle(http.MethodPost, path, func(c *gin.Context) {
		start := time.Now()
		if auth && !s.clientAllowed(c) {
			rm.done(c.Writer.Status(), start)
			return
		}
		ctx, status := proxy.WithStatusReport(c.Request.Context())
		defer func() {
			st := *status
			if st == 0 {
				st = c.Writer.Status()
			}
			rm.done(st, start)
		}()
		h(c.Writer, c.Request.WithContext(ctx))
	})
}

func (s *Server) routeMetrics(r gin.IRoutes, path string) *routeMetrics {
	route := path
	if g, ok := r.(*gin.RouterGroup); ok {
		route = strings.TrimSuffix(g.BasePath(), "/") + path
	}
	return s.m.forRoute(route)
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

// requireAdmin checks the bearer token in constant time. Both sides are
// hashed first so the comparison does not leak the token's length.
func (s *Server) requireAdmin(c *gin.Context) {
	const prefix = "Bearer "
	h := c.GetHeader("Authorization")
	if len(h) < len(prefix) || h[:len(prefix)] != prefix {
		writeError(c, s.log, Errorf(CodeUnauthorized, "admin routes need Authorization: Bearer $TRIAGE_ADMIN_TOKEN"))
		return
	}
	got := sha256.Sum256([]byte(h[len(prefix):]))
	want := sha256.Sum256([]byte(s.opts.AdminToken))
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		writeError(c, s.log, Errorf(CodeUnauthorized, "the admin token is wrong"))
		return
	}
	c.Next()
}

func (s *Server) handleModel(c *gin.Context) {
	c.Data(http.StatusOK, "application/json", s.state.Load().info)
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
			writeError(c, s.log, Errorf(CodeNotReady, "feedback db is not usable: %v", err))
			return
		}
		c.JSON(http.StatusOK, gin.H{"status": "ready", "model_version": st.art.Version})
	}
}

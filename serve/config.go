package serve

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/triage-router/triage/models"
	"github.com/triage-router/triage/serve/proxy"
)

// Defaults of Config, used by DefaultConfig.
const (
	DefaultAddr              = "127.0.0.1:8080"
	DefaultMaxBodyBytes      = 1 << 20
	DefaultMaxPromptBytes    = 256 << 10
	DefaultMaxBatch          = 256
	DefaultMaxMetaKeys       = 256
	DefaultMaxMessages       = 4096
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultShutdownTimeout   = 10 * time.Second
	DefaultDBOpenTimeout     = time.Second
	DefaultQueueSize         = 16384
	DefaultLogBatch          = 512
	DefaultMaxArtifactBytes  = models.DefaultMaxArtifactBytes
	DefaultReloadTimeout     = 30 * time.Second
)

// Config is the server's configuration file (YAML or JSON; JSON is read
// as YAML) with the command's flags applied on top. Every field has a
// default (DefaultConfig). Unknown keys are an error naming the line, so a
// misspelt limit is not silently ignored.
//
// Sections are added here as the server grows (exploration, upstream
// tiers for a proxy); each keeps its own struct so its consumer owns it.
type Config struct {
	// Addr is the listen address, host:port; port 0 picks a free one.
	Addr string `yaml:"addr"`
	// OpsAddr, when set, is a second listen address that serves
	// /healthz, /readyz, /metrics and /admin/* outside
	// limits.max_connections (Server.ServeOps), so that health checks,
	// scrapes and reloads are answered while clients hold every
	// connection the cap allows. Addr serves them too.
	OpsAddr string `yaml:"ops_addr"`
	// Limits bound what one request may cost.
	Limits Limits `yaml:"limits"`
	// Thresholds override the artifact's policy; unset keeps the
	// artifact's value. They are reapplied on every reload.
	Thresholds Thresholds `yaml:"thresholds"`
	// DB tunes the feedback database.
	DB DBConfig `yaml:"db"`
	// DecisionLog tunes the queue between the route path and the db.
	DecisionLog DecisionLogConfig `yaml:"decision_log"`
	// ShutdownTimeout bounds the wait for in-flight requests on
	// SIGINT/SIGTERM before the decision log is drained.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// Exploration sends a share of requests to speculate whatever p_hard
	// says, so retraining sees both tiers' outcomes on all kinds of
	// traffic (docs/loop.md).
	Exploration ExplorationConfig `yaml:"exploration"`
	// Drift sizes the sliding windows of the drift gauges on /metrics.
	Drift DriftConfig `yaml:"drift"`
	// Retention bounds the feedback db (retention.go).
	Retention RetentionConfig `yaml:"retention"`
	// Feedback sets what POST /v1/feedback accepts (feedback.go).
	Feedback FeedbackConfig `yaml:"feedback"`
	// ClientKeys are the bearer keys clients must send on the /v1/
	// routes; none means those routes are open (see
	// AllowUnauthenticated). $TRIAGE_CLIENT_KEYS adds more.
	ClientKeys []ClientKey `yaml:"client_keys"`
	// AllowUnauthenticated lets a server with proxy tiers and no client
	// keys listen on a non-loopback address. Off, such a server refuses
	// to start: anyone reaching it would spend the upstreams' money.
	AllowUnauthenticated bool `yaml:"allow_unauthenticated"`
	// Proxy is the OpenAI-compatible proxy (docs/proxy.md); its keys
	// (tiers, record_responses, ...) sit at the top level. Without tiers
	// the proxy is off.
	Proxy proxy.Config `yaml:",inline"`
}

// Limits bound request size and time.
type Limits struct {
	// MaxBodyBytes is the largest request body; larger gets 413.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxPromptBytes is the largest prompt (or sum of message contents);
	// larger gets 413.
	MaxPromptBytes int `yaml:"max_prompt_bytes"`
	// MaxBatch is the most requests in one /v1/route/batch call.
	MaxBatch int `yaml:"max_batch"`
	// MaxMetaKeys and MaxMessages cap the meta keys and chat messages of
	// a routed request, a proxied one ("metadata") or a feedback (which
	// stores them with the record it creates); more gets 400. Within max_body_bytes, a body of
	// tens of thousands of tiny keys or messages cost far more than its
	// size to route and to record (1 MiB of meta: ~15 MB of memory per
	// request and a db growing by 50 MB a second under load), and the
	// router reads at most 64 meta keys anyway.
	MaxMetaKeys int `yaml:"max_meta_keys"`
	MaxMessages int `yaml:"max_messages"`
	// ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout are
	// net/http.Server's, except that on the proxy's answers and the admin
	// downloads WriteTimeout bounds each write, not the whole response
	// (internal/writestall).
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	ReadTimeout       time.Duration `yaml:"read_timeout"`
	WriteTimeout      time.Duration `yaml:"write_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
	// MaxConnections caps the open client connections; near it, idle
	// keep-alive connections are closed to make room (connlimit.go). 0
	// means the process's file limit less a reserve for the db, reloads
	// and upstream calls.
	MaxConnections int `yaml:"max_connections"`
	// MaxArtifactBytes is the largest model file a reload reads.
	MaxArtifactBytes int64 `yaml:"max_artifact_bytes"`
	// ReloadTimeout bounds a reload's read of the model file; a reload
	// that takes longer fails and the old model keeps serving.
	ReloadTimeout time.Duration `yaml:"reload_timeout"`
}

// Thresholds override a model's policy thresholds. Nil keeps the model's.
type Thresholds struct {
	SpeculateAbove   *float64 `yaml:"speculate_above"`
	EscalateAbove    *float64 `yaml:"escalate_above"`
	AcceptConfidence *float64 `yaml:"accept_confidence"`
}

// Apply returns p with the overrides set.
func (t Thresholds) Apply(p models.Policy) models.Policy {
	if t.SpeculateAbove != nil {
		p.SpeculateAbove = *t.SpeculateAbove
	}
	if t.EscalateAbove != nil {
		p.EscalateAbove = *t.EscalateAbove
	}
	if t.AcceptConfidence != nil {
		p.AcceptConfidence = *t.AcceptConfidence
	}
	return p
}

// IsZero reports whether no threshold is overridden.
func (t Thresholds) IsZero() bool {
	return t.SpeculateAbove == nil && t.EscalateAbove == nil && t.AcceptConfidence == nil
}

// DBConfig tunes the feedback database.
type DBConfig struct {
	// OpenTimeout is how long to wait for the file lock held by another
	// process before giving up with a clear error.
	OpenTimeout time.Duration `yaml:"open_timeout"`
	// MaxBatch caps the feedback writes sharing one commit (0 = store
	// default).
	MaxBatch int `yaml:"max_batch"`
}

// DecisionLogConfig tunes the decision log.
type DecisionLogConfig struct {
	// QueueSize is how many routed requests may wait for the disk; beyond
	// it they are dropped and counted, never waited for.
	QueueSize int `yaml:"queue_size"`
	// BatchSize caps the records written in one commit.
	BatchSize int `yaml:"batch_size"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Addr: DefaultAddr,
		Limits: Limits{
			MaxBodyBytes:      DefaultMaxBodyBytes,
			MaxPromptBytes:    DefaultMaxPromptBytes,
			MaxBatch:          DefaultMaxBatch,
			MaxMetaKeys:       DefaultMaxMetaKeys,
			MaxMessages:       DefaultMaxMessages,
			ReadHeaderTimeout: DefaultReadHeaderTimeout,
			ReadTimeout:       DefaultReadTimeout,
			WriteTimeout:      DefaultWriteTimeout,
			IdleTimeout:       DefaultIdleTimeout,
			MaxArtifactBytes:  DefaultMaxArtifactBytes,
			ReloadTimeout:     DefaultReloadTimeout,
		},
		DB:              DBConfig{OpenTimeout: DefaultDBOpenTimeout},
		DecisionLog:     DecisionLogConfig{QueueSize: DefaultQueueSize, BatchSize: DefaultLogBatch},
		ShutdownTimeout: DefaultShutdownTimeout,
		Exploration:     ExplorationConfig{Epsilon: DefaultEpsilon},
		Drift:           DriftConfig{Window: DefaultDriftWindow, FeedbackWindow: DefaultDriftFeedbackWindow},
		Retention:       RetentionConfig{Interval: DefaultRetentionInterval},
		Proxy:           proxy.DefaultConfig(),
	}
}

// LoadConfig reads a YAML or JSON config file over base (usually
// DefaultConfig()): keys absent from the file keep base's values.
func LoadConfig(path string, base Config) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return base, fmt.Errorf("read config: %w", err)
	}
	// An empty file is a failed copy or a write cut short, not a choice:
	// the server started on the defaults (another address, no retention,
	// the model's thresholds) without a word.
	if len(bytes.TrimSpace(b)) == 0 {
		return base, fmt.Errorf("config %s is empty (%d bytes): it holds no settings, so every setting would silently be its default; give the file its settings back, or leave out --config to run on the defaults", path, len(b))
	}
	cfg, err := ParseConfig(b, base)
	if err != nil {
		return base, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig decodes YAML or JSON over base and validates the result.
func ParseConfig(b []byte, base Config) (Config, error) {
	cfg := base
	// Unknown keys first, named by their path in the file; a document
	// that does not parse is left to the decoder's message.
	var doc yaml.Node
	parsed := yaml.Unmarshal(b, &doc) == nil
	if parsed {
		if err := singleDocument(b); err != nil {
			return base, err
		}
		if err := checkKeys(&doc, reflect.TypeFor[Config](), ""); err != nil {
			return base, err
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		if !parsed {
			return base, err
		}
		return base, typeErrors(err, &doc)
	}
	if err := cfg.Validate(); err != nil {
		return base, err
	}
	return cfg, nil
}

// singleDocument refuses what the YAML decoder reads past without a word:
// a second document after "---", and anything after a top-level flow
// mapping's closing brace (a second JSON object, or YAML keys added below
// a JSON config). Either would be dropped, and a setting the user wrote
// silently not applied. b must parse as YAML.
func singleDocument(b []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var first yaml.Node
	if err := dec.Decode(&first); err != nil {
		return nil // empty (io.EOF), or left to ParseConfig's decoder
	}
	for {
		var next yaml.Node
		err := dec.Decode(&next)
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case err == nil && empty(&next):
			continue // a trailing "---" with nothing under it drops nothing
		case err == nil:
			return fmt.Errorf("line %d: a second YAML document starts here, and only the first would be read; a config is one document (remove the \"---\" and merge the two)", next.Line)
		}
		if len(first.Content) > 0 && first.Content[0].Style&yaml.FlowStyle != 0 {
			return fmt.Errorf("line %d: the config's top-level mapping is followed by more content after its closing bracket (another object, or keys below it), which would be ignored; a config is one mapping: merge what follows into it", first.Content[0].Line)
		}
		return fmt.Errorf("the content after the config's first document does not parse, and would be ignored: %v", err)
	}
}

// empty reports a YAML document with nothing in it (or only null).
func empty(doc *yaml.Node) bool {
	if len(doc.Content) == 0 {
		return true
	}
	n := doc.Content[0]
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// Validate checks every value is usable.
func (c Config) Validate() error {
	if c.Proxy.Enabled() {
		if err := c.Proxy.Validate(); err != nil {
			return err
		}
	}
	if c.Addr == "" {
		return errors.New("addr is empty; want host:port")
	}
	if c.OpsAddr != "" && c.OpsAddr == c.Addr && !strings.HasSuffix(c.Addr, ":0") {
		return fmt.Errorf("ops_addr %s is addr too; give the ops listener a port of its own, or leave ops_addr empty", c.OpsAddr)
	}
	l := c.Limits
	positive := []struct {
		name string
		v    int64
	}{
		{"limits.max_body_bytes", l.MaxBodyBytes},
		{"limits.max_prompt_bytes", int64(l.MaxPromptBytes)},
		{"limits.max_batch", int64(l.MaxBatch)},
		{"limits.max_meta_keys", int64(l.MaxMetaKeys)},
		{"limits.max_messages", int64(l.MaxMessages)},
		{"limits.max_artifact_bytes", l.MaxArtifactBytes},
		{"decision_log.queue_size", int64(c.DecisionLog.QueueSize)},
		{"decision_log.batch_size", int64(c.DecisionLog.BatchSize)},
	}
	for _, p := range positive {
		if p.v <= 0 {
			return fmt.Errorf("%s is %d, want a positive value", p.name, p.v)
		}
	}
	durations := []struct {
		name string
		v    time.Duration
	}{
		{"limits.read_header_timeout", l.ReadHeaderTimeout},
		{"limits.read_timeout", l.ReadTimeout},
		{"limits.write_timeout", l.WriteTimeout},
		{"limits.idle_timeout", l.IdleTimeout},
		{"limits.reload_timeout", l.ReloadTimeout},
		{"db.open_timeout", c.DB.OpenTimeout},
		{"shutdown_timeout", c.ShutdownTimeout},
	}
	for _, d := range durations {
		if d.v <= 0 {
			// A duration, not its nanoseconds: "-5s", not -5000000000.
			return fmt.Errorf("%s is %v, want a positive duration (e.g. 30s)", d.name, d.v)
		}
	}
	if l.MaxConnections < 0 {
		return fmt.Errorf("limits.max_connections is %d, want 0 (from the file limit) or more", l.MaxConnections)
	}
	if c.DB.MaxBatch < 0 {
		return fmt.Errorf("db.max_batch is %d, want 0 (default) or more", c.DB.MaxBatch)
	}
	for _, t := range []struct {
		name string
		v    *float64
	}{
		{"thresholds.speculate_above", c.Thresholds.SpeculateAbove},
		{"thresholds.escalate_above", c.Thresholds.EscalateAbove},
		{"thresholds.accept_confidence", c.Thresholds.AcceptConfidence},
	} {
		if t.v != nil && (math.IsNaN(*t.v) || *t.v < 0 || *t.v > 1) {
			return fmt.Errorf("%s is %v, want a value in [0,1]", t.name, *t.v)
		}
	}
	for i, k := range c.ClientKeys {
		if err := k.validate(i); err != nil {
			return err
		}
	}
	if err := c.Exploration.validate(); err != nil {
		return err
	}
	if err := c.Retention.validate(); err != nil {
		return err
	}
	return c.Drift.validate()
}

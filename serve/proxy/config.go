package proxy

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Defaults of Config, used by DefaultConfig and for zero fields.
const (
	// DefaultTimeout bounds the wait for an upstream's answer (for a
	// stream: its first chunk and each gap between chunks).
	DefaultTimeout = 60 * time.Second
	// DefaultMaxBodyBytes bounds a client's request body: room for a
	// chat with a base64 image of 8 MiB (about 11 MB encoded) and its
	// text.
	DefaultMaxBodyBytes = 16 << 20
	// DefaultMaxResponseBytes bounds one upstream answer the proxy holds.
	DefaultMaxResponseBytes = 32 << 20
	// DefaultRecordQueue is how many finished requests may wait to be
	// recorded; beyond it they are dropped and counted.
	DefaultRecordQueue = 8192
	// DefaultRecordBatch caps the requests recorded in one Recorder call.
	DefaultRecordBatch = 1024
)

// TierFast and TierStrong are the tier names a client may put in "model"
// to bypass routing. ModelRouted (or an empty model) asks for routing.
const (
	TierFast    = "fast"
	TierStrong  = "strong"
	ModelRouted = "triage"
)

// Tier is one OpenAI-compatible upstream.
type Tier struct {
	// BaseURL is the API root as an OpenAI SDK takes it, usually ending in
	// /v1 (https://api.openai.com/v1, http://127.0.0.1:8000/v1 for vLLM,
	// http://127.0.0.1:11434/v1 for Ollama); requests go to
	// BaseURL + "/chat/completions".
	BaseURL string `yaml:"base_url" json:"base_url"`
	// Model is the upstream's model name, sent as "model".
	Model string `yaml:"model" json:"model"`
	// APIKeyEnv names the environment variable holding the API key, sent
	// as a bearer token. Empty sends none. The key is never logged.
	APIKeyEnv string `yaml:"api_key_env" json:"api_key_env"`
	// Timeout bounds the wait for the answer: the whole body of a plain
	// call, the first chunk and every gap between chunks of a stream. A
	// timed-out call fails (the fast tier then escalates). 0 is
	// DefaultTimeout.
	Timeout time.Duration `yaml:"timeout" json:"timeout"`
	// PriceInPer1K and PriceOutPer1K are USD per 1,000 input and output
	// tokens, for the recorded cost and the cost metric.
	PriceInPer1K  float64 `yaml:"price_in_per_1k" json:"price_in_per_1k"`
	PriceOutPer1K float64 `yaml:"price_out_per_1k" json:"price_out_per_1k"`
	// RecordAs is the model name outcomes are recorded under in the
	// feedback store. Empty means the router artifact's tier name, so the
	// next training run finds them under the names it was trained on.
	RecordAs string `yaml:"record_as" json:"record_as"`
	// H2C speaks HTTP/2 without TLS (prior knowledge) to an http://
	// base URL, for upstreams that serve it (a Go server with
	// UnencryptedHTTP2, hypercorn, envoy; triage upstream-sim). Over
	// HTTP/1.1 a call the proxy cancels (a speculation's loser) costs
	// its connection and the next call a new one; over HTTP/2 it costs
	// one stream reset. https:// upstreams negotiate HTTP/2 already.
	H2C bool `yaml:"h2c" json:"h2c"`
}

// Tiers are the two upstreams.
type Tiers struct {
	Fast   Tier `yaml:"fast" json:"fast"`
	Strong Tier `yaml:"strong" json:"strong"`
}

// tier is the config of the tier named name (TierFast or TierStrong).
func (ts Tiers) tier(name string) Tier {
	if name == TierStrong {
		return ts.Strong
	}
	return ts.Fast
}

// Config configures the proxy. Start from DefaultConfig: its
// RecordResponses is true, which the zero value cannot say.
type Config struct {
	// Tiers are the fast and strong upstreams.
	Tiers Tiers `yaml:"tiers" json:"tiers"`
	// RecordResponses keeps each answer's text in the feedback store.
	// Turn it off when answers must not be stored.
	RecordResponses bool `yaml:"record_responses" json:"record_responses"`
	// MaxBodyBytes bounds a client's request on the proxy routes; larger
	// gets 413. 0 is DefaultMaxBodyBytes. The server's
	// limits.max_body_bytes is for its own routes.
	MaxBodyBytes int64 `yaml:"max_request_bytes" json:"max_request_bytes"`
	// MaxResponseBytes bounds an upstream's answer; larger fails the
	// call. 0 is DefaultMaxResponseBytes.
	MaxResponseBytes int64 `yaml:"max_response_bytes" json:"max_response_bytes"`
	// RecordQueue is how many finished requests may wait for the store;
	// beyond it they are dropped and counted, never waited for. 0 is
	// DefaultRecordQueue.
	RecordQueue int `yaml:"record_queue" json:"record_queue"`
	// Aliases map the model names clients send to what serves them:
	// "triage" (routed), "fast" or "strong". "*" maps every other name,
	// so an app that sends "gpt-4o" works with only its base URL
	// changed. Without an alias (and no "*") an unknown name is a 400
	// listing the names served.
	Aliases map[string]string `yaml:"aliases" json:"aliases"`
	// Fallback answers from the other tier when the one a request went
	// to fails (5xx, timeout, connection refused): the strong tier on a
	// fast request, the fast tier on escalate or model "strong". On by
	// default (DefaultConfig).
	Fallback bool `yaml:"fallback" json:"fallback"`
	// FallbackOn429 falls back on a tier's 429 (rate limited) too,
	// instead of passing the 429 and its Retry-After to the client.
	FallbackOn429 bool `yaml:"fallback_on_429" json:"fallback_on_429"`
	// SpeculateTools false sends a request with tools that the router
	// would speculate to the strong tier alone. An answer made of tool
	// calls has no content log-probabilities, so its confidence is
	// unknown and the gate never accepts it: the speculation then costs
	// a fast call for the strong answer it would get anyway. Nil (absent)
	// is true: a request with tools may still be answered in text.
	SpeculateTools *bool `yaml:"speculate_tools" json:"speculate_tools"`
	// Embeddings sends POST /v1/embeddings to a tier; off without one.
	Embeddings Embeddings `yaml:"embeddings" json:"embeddings"`
}

// AliasDefault is the alias key that maps every model name not otherwise
// known.
const AliasDefault = "*"

// DefaultConfig is a config with no tiers, responses recorded and
// fallback on.
func DefaultConfig() Config {
	return Config{RecordResponses: true, Fallback: true}
}

// Enabled reports whether any tier is configured. A server without tiers
// does not proxy.
func (c Config) Enabled() bool {
	return c.Tiers.Fast.BaseURL != "" || c.Tiers.Strong.BaseURL != ""
}

// Validate checks the tiers. Errors name the config key.
func (c Config) Validate() error {
	for _, t := range []struct {
		name string
		tier Tier
	}{{TierFast, c.Tiers.Fast}, {TierStrong, c.Tiers.Strong}} {
		if err := t.tier.validate(); err != nil {
			return fmt.Errorf("tiers.%s.%w", t.name, err)
		}
	}
	if c.MaxBodyBytes < 0 || c.MaxResponseBytes < 0 || c.RecordQueue < 0 {
		return errors.New("max_request_bytes, max_response_bytes and record_queue must not be negative (0 means the default)")
	}
	if err := c.Embeddings.validate(); err != nil {
		return err
	}
	for name, to := range c.Aliases {
		switch {
		case name == "":
			return errors.New("aliases: an empty model name; use \"*\" for every other name")
		case name == ModelRouted || name == TierFast || name == TierStrong:
			return fmt.Errorf("aliases.%s: %q is served under its own name and cannot be an alias", name, name)
		case to != ModelRouted && to != TierFast && to != TierStrong:
			return fmt.Errorf("aliases.%s is %q; want %q (routed), %q or %q", name, to, ModelRouted, TierFast, TierStrong)
		}
	}
	return nil
}

// resolve is what serves a client's model name: ModelRouted, TierFast or
// TierStrong, through the aliases; ok is false for a name not served.
func (c *Config) resolve(model string) (string, bool) {
	switch model {
	case "", ModelRouted:
		return ModelRouted, true
	case TierFast, TierStrong:
		return model, true
	}
	if to, ok := c.Aliases[model]; ok {
		return to, true
	}
	to, ok := c.Aliases[AliasDefault]
	return to, ok
}

// served lists the model names a client may send, for error messages:
// the three built-in names, then the aliases but "*".
func (c *Config) served() []string {
	names := []string{ModelRouted, TierFast, TierStrong}
	var more []string
	for a := range c.Aliases {
		if a != AliasDefault {
			more = append(more, a)
		}
	}
	slices.Sort(more)
	return append(names, more...)
}

func (t Tier) validate() error {
	if t.BaseURL == "" {
		return errors.New("base_url is empty; want the upstream's OpenAI API root, e.g. http://127.0.0.1:8000/v1")
	}
	u, err := url.Parse(t.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("base_url %q is not an http(s) URL; want e.g. http://127.0.0.1:8000/v1", t.BaseURL)
	}
	if strings.HasSuffix(strings.TrimRight(u.Path, "/"), "/chat/completions") {
		return fmt.Errorf("base_url %q ends in /chat/completions; give the API root (e.g. .../v1), the proxy adds the path", t.BaseURL)
	}
	if t.H2C && u.Scheme != "http" {
		return fmt.Errorf("h2c is set for base_url %q; h2c is HTTP/2 without TLS, for http:// upstreams (https:// negotiates HTTP/2 by itself)", t.BaseURL)
	}
	if t.Model == "" {
		return errors.New("model is empty; want the upstream's model name")
	}
	if t.Timeout < 0 {
		return fmt.Errorf("timeout is %v, want a positive duration (0 means %v)", t.Timeout, DefaultTimeout)
	}
	for _, p := range []struct {
		name string
		v    float64
	}{{"price_in_per_1k", t.PriceInPer1K}, {"price_out_per_1k", t.PriceOutPer1K}} {
		if p.v < 0 || math.IsNaN(p.v) || math.IsInf(p.v, 0) {
			return fmt.Errorf("%s is %v, want a price in USD of 0 or more", p.name, p.v)
		}
	}
	return nil
}

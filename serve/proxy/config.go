package proxy

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/net/http/httpguts"
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
	// DefaultMaxTools bounds the entries of a request's "tools" (and a
	// chat request's legacy "functions"). OpenAI documented a maximum of
	// 128 functions per chat request until its SDKs dropped the sentence
	// (openai-go 2.0.0, August 2025), and the Responses API's tool search
	// (defer_loading) is meant for larger catalogs, with no maximum its
	// SDK states: a default well above 128 refuses no request an
	// upstream would have taken, and still refuses a body of millions of
	// tiny tools before anything is sent upstream.
	DefaultMaxTools = 4096
	// DefaultLoserGrace is how long a plain race's losing call may run on
	// after the winner's answer was sent (Config.LoserGrace).
	DefaultLoserGrace = 5 * time.Millisecond
	// DefaultRecordQueue is how many finished requests may wait to be
	// recorded; beyond it they are dropped and counted.
	DefaultRecordQueue = 8192
	// DefaultRecordBatch caps the requests recorded in one Recorder call.
	DefaultRecordBatch = 1024
	// DefaultResponseTTL is how long the proxy remembers which tier
	// stored a Responses API response: OpenAI keeps stored responses 30
	// days.
	DefaultResponseTTL = 30 * 24 * time.Hour
	// DefaultResponseMemory is how many of those the proxy holds in
	// memory; older ones are read from the feedback db when a request
	// names them.
	DefaultResponseMemory = 100_000
)

// TierFast and TierStrong are the names of the two-tier form's tiers, which
// a client may put in "model" to bypass routing (the list form names its
// own). ModelRouted (or an empty model) asks for routing.
const (
	TierFast    = "fast"
	TierStrong  = "strong"
	ModelRouted = "triage"
)

// Tier is one OpenAI-compatible upstream.
type Tier struct {
	// Name is what clients put in "model" to pick the tier, what aliases
	// and embeddings.tier name, and the tier label of the metrics. It is
	// set in the list form of tiers and must be empty in the fast/strong
	// form, whose names are "fast" and "strong".
	Name string `yaml:"name" json:"name,omitempty"`
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
	// Logprobs false says the upstream refuses log-probabilities, as
	// OpenAI's reasoning models answer "logprobs" with a 400: the proxy
	// then never asks it for them, and a request the router would
	// speculate with it as the cheaper tier escalates instead, since an
	// answer without a confidence can never pass the gate. Left out, the
	// proxy asks, and learns the same from the first such refusal
	// (retrying that request without them).
	Logprobs *bool `yaml:"logprobs" json:"logprobs,omitempty"`
	// Headers are sent on every call to this tier, as given: what an
	// upstream or a gateway in front of it asks for besides the key
	// (OpenAI-Project, OpenAI-Organization; Azure OpenAI's api-key goes
	// in HeadersEnv). HeadersEnv are the same from environment variables,
	// for values that are secrets (a gateway's key, Helicone-Auth): header
	// name → variable name. Neither may set what the proxy itself sends
	// (Content-Type, Accept, Content-Length, hop-by-hop headers), nor
	// Authorization where api_key_env sets it. Values are never logged.
	Headers    map[string]string `yaml:"headers" json:"headers,omitempty"`
	HeadersEnv map[string]string `yaml:"headers_env" json:"headers_env,omitempty"`
}

// isZero says whether t is unset (Tier holds maps, so == does not work).
func (t Tier) isZero() bool { return reflect.ValueOf(t).IsZero() }

// Tiers are the upstreams, in one of two forms. The two-tier form is a
// mapping, {fast: ..., strong: ...}. The N-tier form is a list, cheapest
// first, each entry naming itself:
//
//	tiers:
//	  - {name: small, base_url: ..., model: ...}
//	  - {name: mid, base_url: ..., model: ...}
//	  - {name: large, base_url: ..., model: ...}
//
// Either way the proxy sees an ordered list (List): the router's tier i
// is served by the i-th upstream, so the config lists them in the order
// the router artifact does, cheapest first.
type Tiers struct {
	Fast   Tier `yaml:"fast" json:"fast"`
	Strong Tier `yaml:"strong" json:"strong"`
	// Ordered is the list form; set, Fast and Strong are empty.
	Ordered []Tier `yaml:"-" json:"-"`
}

// UnmarshalYAML reads either form: a mapping fills Fast and Strong, a
// sequence fills Ordered.
func (t *Tiers) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.SequenceNode {
		var list []Tier
		if err := n.Decode(&list); err != nil {
			return err
		}
		*t = Tiers{Ordered: list}
		return nil
	}
	// A type without the method, or Decode would call it again.
	type twoTiers Tiers
	var two twoTiers
	if err := n.Decode(&two); err != nil {
		return err
	}
	*t = Tiers{Fast: two.Fast, Strong: two.Strong}
	return nil
}

// List is the tiers cheapest first, each with its name: Ordered, or
// fast then strong. A tier of the two-tier form that is not configured
// (no base_url) is left out, so List is empty when the proxy is off.
func (t Tiers) List() []Tier {
	if len(t.Ordered) > 0 {
		return t.Ordered
	}
	var out []Tier
	for _, e := range []struct {
		name string
		tier Tier
	}{{TierFast, t.Fast}, {TierStrong, t.Strong}} {
		if !e.tier.isZero() {
			if e.tier.Name == "" {
				e.tier.Name = e.name
			}
			out = append(out, e.tier)
		}
	}
	return out
}

// list is whether the tiers are in the list form.
func (t Tiers) list() bool { return len(t.Ordered) > 0 }

// tier is the config of the tier named name.
func (ts Tiers) tier(name string) Tier {
	for _, t := range ts.List() {
		if t.Name == name {
			return t
		}
	}
	return Tier{}
}

// Config configures the proxy. Start from DefaultConfig: its
// RecordResponses is true, which the zero value cannot say.
type Config struct {
	// Tiers are the upstreams: fast and strong, or a list cheapest first.
	Tiers Tiers `yaml:"tiers" json:"tiers"`
	// RecordResponses keeps each answer's text in the feedback store.
	// Turn it off when answers must not be stored.
	RecordResponses bool `yaml:"record_responses" json:"record_responses"`
	// MaxBodyBytes bounds a client's request on the proxy routes; larger
	// gets 413. 0 is DefaultMaxBodyBytes. The server's
	// limits.max_body_bytes is for its own routes.
	MaxBodyBytes int64 `yaml:"max_request_bytes" json:"max_request_bytes"`
	// WriteStall bounds each write of an answer to the client (not the
	// whole answer, which may rightly outlast any fixed deadline): a
	// client that reads nothing for this long is cut off. serve sets it
	// from limits.write_timeout; 0 leaves writes unbounded.
	WriteStall time.Duration `yaml:"-" json:"-"`
	// MaxResponseBytes bounds an upstream's answer; larger fails the
	// call. 0 is DefaultMaxResponseBytes.
	MaxResponseBytes int64 `yaml:"max_response_bytes" json:"max_response_bytes"`
	// MaxTools bounds the entries of a request's "tools", and of a chat
	// request's legacy "functions"; more is a 400. They are counted as
	// sent, stopping at the cap, before the body is decoded. 0 is
	// DefaultMaxTools.
	MaxTools int `yaml:"max_tools" json:"max_tools"`
	// RecordQueue is how many finished requests may wait for the store;
	// beyond it they are dropped and counted, never waited for. 0 is
	// DefaultRecordQueue.
	RecordQueue int `yaml:"record_queue" json:"record_queue"`
	// Aliases map the model names clients send to what serves them:
	// "triage" (routed) or a tier's name ("fast", "strong", or a name of
	// the list form). "*" maps every other name,
	// so an app that sends "gpt-4o" works with only its base URL
	// changed. Without an alias (and no "*") an unknown name is a 400
	// listing the names served.
	Aliases map[string]string `yaml:"aliases" json:"aliases"`
	// Fallback answers from another tier when the one a request went to
	// fails (5xx, timeout, connection refused): the next cheaper tier, or
	// for the cheapest the next one up. With two tiers that is the strong
	// tier on a fast request and the fast tier on escalate or model
	// "strong". On by default (DefaultConfig).
	Fallback bool `yaml:"fallback" json:"fallback"`
	// FallbackOn429 falls back on a tier's 429 (rate limited) too,
	// instead of passing the 429 and its Retry-After to the client.
	FallbackOn429 bool `yaml:"fallback_on_429" json:"fallback_on_429"`
	// SpeculateTools false sends a request with tools (or legacy
	// functions) that the router would speculate to the strong tier
	// alone. An answer made of tool calls has no content
	// log-probabilities, so its confidence is unknown and the gate never
	// accepts it: the speculation then costs a fast call for the strong
	// answer it would get anyway. Nil (absent) is true: a request with
	// tools may still be answered in text.
	SpeculateTools *bool `yaml:"speculate_tools" json:"speculate_tools"`
	// LoserGrace is how long the losing call of an unstreamed speculation
	// may run on once the winner's answer has been sent, before it is
	// cancelled. Over HTTP/1.1 a cancelled call takes its connection
	// with it (the upstream is still writing on it), so the tier's next
	// call dials again, and over TLS shakes hands again: when both tiers
	// answer within a few milliseconds of each other, as short prompts
	// often do, cancelling saves nothing the upstream has not already
	// generated and costs a connection. A loser that ends within the
	// grace is recorded whole, with its real usage and cost. The client
	// has its answer first; only its next request on the same
	// connection can wait, by at most the grace. A stream's loser is
	// cancelled at once (it would keep generating). Nil (absent) is
	// DefaultLoserGrace; 0 cancels at once.
	LoserGrace *time.Duration `yaml:"loser_grace" json:"loser_grace"`
	// Embeddings sends POST /v1/embeddings to a tier; off without one.
	Embeddings Embeddings `yaml:"embeddings" json:"embeddings"`
	// ResponseTTL is how long the proxy remembers which tier stored a
	// Responses API response it relayed, so that a follow-up naming it
	// (previous_response_id) and GET /v1/responses/{id} reach that tier.
	// Set it to the tiers' own retention. 0 is DefaultResponseTTL.
	ResponseTTL time.Duration `yaml:"response_ttl" json:"response_ttl"`
	// ResponseMemory caps the entries held in memory; with a feedback db
	// every entry is also kept there until it expires, and read back
	// when a request names one memory no longer holds. 0 is
	// DefaultResponseMemory.
	ResponseMemory int `yaml:"response_memory" json:"response_memory"`
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
	return len(c.Tiers.List()) > 0
}

// Validate checks the tiers. Errors name the config key.
func (c Config) Validate() error {
	if err := c.Tiers.validate(); err != nil {
		return err
	}
	if g := c.LoserGrace; g != nil && (*g < 0 || *g > time.Second) {
		return fmt.Errorf("loser_grace is %v; want 0 (cancel at once) to 1s (absent means %v)", *g, DefaultLoserGrace)
	}
	if c.MaxBodyBytes < 0 || c.MaxResponseBytes < 0 || c.MaxTools < 0 || c.RecordQueue < 0 || c.ResponseMemory < 0 {
		return errors.New("max_request_bytes, max_response_bytes, max_tools, record_queue and response_memory must not be negative (0 means the default)")
	}
	if c.ResponseTTL < 0 || c.ResponseTTL > 0 && c.ResponseTTL < time.Minute {
		return fmt.Errorf("response_ttl is %v; want at least 1m, as long as the tiers keep stored responses (absent means %v, OpenAI's 30 days)", c.ResponseTTL, DefaultResponseTTL)
	}
	names := c.tierNames()
	if e := c.Embeddings.Tier; e != "" && !slices.Contains(names, e) {
		return fmt.Errorf("embeddings.tier is %q; want a tier's name (%s), or nothing for no /v1/embeddings", e, quoteList(names))
	}
	for name, to := range c.Aliases {
		switch {
		case name == "":
			return errors.New("aliases: an empty model name; use \"*\" for every other name")
		case name == ModelRouted || slices.Contains(names, name):
			return fmt.Errorf("aliases.%s: %q is served under its own name and cannot be an alias", name, name)
		case to != ModelRouted && !slices.Contains(names, to):
			return fmt.Errorf("aliases.%s is %q; want %q (routed) or a tier's name (%s)", name, to, ModelRouted, quoteList(names))
		}
	}
	return nil
}

// validate checks each tier, and in the list form the names.
func (t Tiers) validate() error {
	if !t.list() {
		for _, e := range []struct {
			name string
			tier Tier
		}{{TierFast, t.Fast}, {TierStrong, t.Strong}} {
			if e.tier.Name != "" {
				return fmt.Errorf("tiers.%s.name is %q; the fast/strong form names its tiers fast and strong (names are for the list form, tiers: [{name: ..., base_url: ...}, ...])", e.name, e.tier.Name)
			}
			if err := e.tier.validate(); err != nil {
				return fmt.Errorf("tiers.%s.%w", e.name, err)
			}
		}
		return nil
	}
	if !t.Fast.isZero() || !t.Strong.isZero() {
		return errors.New("tiers: both the list form and fast/strong are set; use one")
	}
	if len(t.Ordered) < 2 {
		return fmt.Errorf("tiers lists %d tier; want two or more, cheapest first", len(t.Ordered))
	}
	seen := map[string]int{}
	for i, tier := range t.Ordered {
		switch {
		case tier.Name == "":
			return fmt.Errorf("tiers[%d].name is empty; name every tier (clients may send it as \"model\")", i)
		case tier.Name == ModelRouted || tier.Name == AliasDefault:
			return fmt.Errorf("tiers[%d].name is %q, which the proxy keeps for itself; pick another", i, tier.Name)
		}
		if j, dup := seen[tier.Name]; dup {
			return fmt.Errorf("tiers[%d].name and tiers[%d].name are both %q; names must be unique", j, i, tier.Name)
		}
		seen[tier.Name] = i
		if err := tier.validate(); err != nil {
			return fmt.Errorf("tiers[%d].%w", i, err)
		}
	}
	return nil
}

// tierNames are the tiers' names, cheapest first.
func (c *Config) tierNames() []string {
	list := c.Tiers.List()
	names := make([]string, len(list))
	for i, t := range list {
		names[i] = t.Name
	}
	return names
}

// resolve is what serves a client's model name: ModelRouted or a tier's
// name, through the aliases; ok is false for a name not served.
func (c *Config) resolve(model string) (string, bool) {
	switch model {
	case "", ModelRouted:
		return ModelRouted, true
	}
	if c.hasTier(model) {
		return model, true
	}
	if to, ok := c.Aliases[model]; ok {
		return to, true
	}
	to, ok := c.Aliases[AliasDefault]
	return to, ok
}

// hasTier reports whether a tier is named name. It allocates nothing
// once New has put the tiers in the list form.
func (c *Config) hasTier(name string) bool {
	for _, t := range c.Tiers.List() {
		if t.Name == name {
			return true
		}
	}
	return false
}

// served lists the model names a client may send, for error messages:
// "triage", the tiers' names cheapest first, then the aliases but "*".
func (c *Config) served() []string {
	names := append([]string{ModelRouted}, c.tierNames()...)
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
	// url.Parse takes any digits for a port: a typo (:80001) passed, and
	// every call then failed with "the connection to the upstream failed".
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("base_url %q has port %s; want a port in 1..65535", t.BaseURL, p)
		}
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
	seen := map[string]string{}
	for _, hs := range []struct {
		key string
		m   map[string]string
	}{{"headers", t.Headers}, {"headers_env", t.HeadersEnv}} {
		for name, v := range hs.m {
			canon := http.CanonicalHeaderKey(name)
			switch {
			case !httpguts.ValidHeaderFieldName(name):
				return fmt.Errorf("%s has %q, which is not a header name", hs.key, name)
			case reservedHeaders[canon]:
				return fmt.Errorf("%s.%s is a header the proxy sets itself; leave it out", hs.key, name)
			case canon == "Authorization" && t.APIKeyEnv != "":
				return fmt.Errorf("%s.%s would replace the key api_key_env sends; use one or the other", hs.key, name)
			case seen[canon] != "":
				return fmt.Errorf("%s.%s is given twice (also as %s)", hs.key, name, seen[canon])
			case hs.key == "headers" && !httpguts.ValidHeaderFieldValue(v):
				return fmt.Errorf("headers.%s holds a character a header value cannot (a line break?)", name)
			case hs.key == "headers_env" && v == "":
				return fmt.Errorf("headers_env.%s names no environment variable", name)
			}
			seen[canon] = hs.key + "." + name
		}
	}
	return nil
}

// reservedHeaders are set by the proxy on every upstream call, or belong
// to the connection: a tier's headers may not set them.
var reservedHeaders = map[string]bool{
	"Content-Type": true, "Content-Length": true, "Accept": true, "Accept-Encoding": true, "Host": true,
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Transfer-Encoding": true, "Te": true,
	"Trailer": true, "Upgrade": true, "Proxy-Authorization": true,
}

package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tidwall/gjson"
	"golang.org/x/net/http/httpguts"

	"github.com/triage-router/triage/datasets/jsonscan"
)

// tier is a configured upstream with what the proxy learns about it.
type tier struct {
	name     string      // the config's name for it
	idx      int         // its place in the config's tiers, cheapest first
	base     string      // the base URL without a trailing slash
	auth     []string    // the Authorization header's value, or nil
	extra    http.Header // the config's headers and headers_env, canonical
	modelHdr []string    // model as an X-Triage-Model value
	model    string
	apiKey   string
	timeout  time.Duration
	priceIn  float64 // USD per token
	priceOut float64
	recordAs string
	m        *tierMetrics
	// rt calls the upstream: the handler's transport, or an HTTP/2
	// cleartext one (h2c).
	rt http.RoundTripper
	// noLogprobs: never ask it for log-probabilities. Set by the config
	// (logprobs: false) or by its first refusal of the ones the proxy
	// asked for (refusesLogprobs).
	noLogprobs atomic.Bool

	// Running means of completed calls, the basis of a cancelled call's
	// pro-rata cost (its own usage and full latency are never known):
	// latency and output tokens, which do not depend much on the prompt,
	// and prompt tokens per byte of request text, to estimate a call's
	// own prompt tokens from its request.
	mu        sync.Mutex
	n         int
	meanLatMS float64
	meanOut   float64
	meanInTok float64 // prompt tokens, for tokens per byte
	meanBytes float64 // request text bytes, likewise
}

// meanWindow caps the running means' sample count, so they follow a
// drifting upstream (an exponential average over about this many calls).
const meanWindow = 1000

// defaultTokensPerByte estimates prompt tokens before a tier has reported
// any: about 4 bytes of English per token for OpenAI's tokenizers.
const defaultTokensPerByte = 0.25

func newTier(name string, c Tier, getenv func(string) string, m *metrics) (*tier, error) {
	t := &tier{name: name, base: strings.TrimRight(c.BaseURL, "/"), model: c.Model, timeout: c.Timeout,
		priceIn: c.PriceInPer1K / 1000, priceOut: c.PriceOutPer1K / 1000, recordAs: c.RecordAs, m: m.forTier(name)}
	if t.timeout == 0 {
		t.timeout = DefaultTimeout
	}
	if c.Logprobs != nil && !*c.Logprobs {
		t.noLogprobs.Store(true)
	}
	if c.APIKeyEnv != "" {
		t.apiKey = getenv(c.APIKeyEnv)
		if t.apiKey == "" {
			return nil, fmt.Errorf("tiers.%s.api_key_env names %s, which is not set; export it or remove api_key_env for an upstream without keys", name, c.APIKeyEnv)
		}
		t.auth = []string{"Bearer " + t.apiKey}
	}
	for h, v := range c.Headers {
		t.setExtra(h, v)
	}
	for h, env := range c.HeadersEnv {
		v := getenv(env)
		if v == "" {
			return nil, fmt.Errorf("tiers.%s.headers_env.%s names %s, which is not set; export it or remove the header", name, h, env)
		}
		if !httpguts.ValidHeaderFieldValue(v) {
			return nil, fmt.Errorf("tiers.%s.headers_env.%s: %s holds a character a header value cannot (a line break?)", name, h, env)
		}
		t.setExtra(h, v)
	}
	t.modelHdr = []string{t.model}
	return t, nil
}

func (t *tier) setExtra(name, v string) {
	if t.extra == nil {
		t.extra = http.Header{}
	}
	t.extra[http.CanonicalHeaderKey(name)] = []string{v}
}

// setHeaders puts the tier's key and extra headers on an upstream call.
// The slices are shared: net/http only reads them.
func (t *tier) setHeaders(h http.Header) {
	if t.auth != nil {
		h["Authorization"] = t.auth
	}
	for k, v := range t.extra {
		h[k] = v
	}
}

// cost is the price of a call's usage.
func (t *tier) cost(u *usage) float64 {
	return float64(u.PromptTokens)*t.priceIn + float64(u.CompletionTokens)*t.priceOut
}

// observe adds a completed call to the running means: its latency, its
// usage and the size of its request's text.
func (t *tier) observe(latMS float64, u *usage, textBytes int) {
	t.mu.Lock()
	t.n = min(t.n+1, meanWindow)
	w := 1 / float64(t.n)
	t.meanLatMS += (latMS - t.meanLatMS) * w
	t.meanOut += (float64(u.CompletionTokens) - t.meanOut) * w
	t.meanInTok += (float64(u.PromptTokens) - t.meanInTok) * w
	t.meanBytes += (float64(textBytes) - t.meanBytes) * w
	t.mu.Unlock()
}

// proRata is the cost of a call cancelled after ranMS whose request has
// textBytes of text: its own prompt tokens (estimated from textBytes at
// the tier's tokens per byte) and the tier's mean output tokens, at the
// tier's prices, times the share of the tier's mean latency the call
// ran, at most the whole. A large prompt thus costs its own cancellation
// more and no other's. ok is false before any call of the tier completed.
func (t *tier) proRata(ranMS float64, textBytes int) (float64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == 0 {
		return 0, false
	}
	perByte := defaultTokensPerByte
	if t.meanBytes > 0 {
		perByte = t.meanInTok / t.meanBytes
	}
	full := float64(textBytes)*perByte*t.priceIn + t.meanOut*t.priceOut
	if t.meanLatMS <= 0 || ranMS >= t.meanLatMS {
		return full, true
	}
	return full * ranMS / t.meanLatMS, true
}

// usage is an answer's token usage.
type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

// call is one upstream request. Its goroutine writes the fields below
// before closing ready (status, header) or done (the rest); readers wait
// on those channels first. A stream's events are shared under mu.
type call struct {
	t      *tier
	api    *api // the endpoint and its answer's shape
	stream bool
	// stripLogprobs and stripUsage hide what the proxy asked for and the
	// client did not.
	stripLogprobs, stripUsage bool
	ctx                       context.Context
	cancel                    context.CancelFunc
	start                     time.Time
	timedOut                  atomic.Bool
	maxBytes                  int64

	ready, done chan struct{}
	readyOnce   sync.Once

	status      int
	header      http.Header // the upstream's response headers
	contentType string
	body        []byte // a plain answer (rewritten if needed) or an error body
	err         error
	end         time.Time
	text        strings.Builder
	usage       *usage
	lpSum       float64
	lpN         int
	// openErr is a chat or completion stream whose first data is an
	// error ({"error": ...} without choices, as vLLM sends when the
	// request fails once its 200 is out): no answer, so the call fails
	// (readEvents) before anything is relayed, and another tier may
	// answer, as for a 200 whose body is an error. Written and read by
	// the call's goroutine only.
	openErr error
	// midErr is a chat or completion stream that carries an error object
	// after its first data (vLLM's engine failing mid-answer, then
	// "data: [DONE]"): the event is relayed, so the client's SDK raises
	// with the upstream's message, and the call fails (readEvents), so
	// the partial answer neither wins a speculation on the confidence of
	// its first tokens nor is recorded as an answer. Written and read by
	// the call's goroutine only.
	midErr error
	// failedEnd is a Responses API stream that ended with
	// response.failed or an error event: whole, and relayed as it is
	// (the client's SDK reads the failure from it), but no answer, so it
	// neither wins a speculation on the confidence of the text before
	// the failure nor is recorded as the tier's answer. Written by the
	// call's goroutine, read once the call is done.
	failedEnd bool
	// logprobsRefused: the upstream refused the log-probabilities the
	// proxy asked for and the client did not, so the refusal is the
	// proxy's doing, not the client's answer (refusesLogprobs).
	logprobsRefused bool
	// respID is a Responses API answer's id: a plain answer's, written
	// before done; a stream's, under mu as its events arrive (streamID
	// is the call goroutine's copy as it reads them).
	respID   string
	streamID string

	mu       sync.Mutex
	events   [][]byte // client-facing bytes of each SSE event; nil = hidden
	hasData  bool
	sawDone  bool // the stream's "data: [DONE]" arrived
	finished bool
	notify   chan struct{}
}

// startCall sends body to t, in a new goroutine unless inline. The call
// ends at ctx's end, on the tier's timeout, or when cancelled. Inline, it
// has ended when startCall returns: a plain call to one tier needs no
// goroutine of its own, whose creation, hand-off and stack growth (it
// runs all of net/http's client on a fresh 8 KB stack) cost about a
// twentieth of a proxied request's CPU; the handler's goroutine, kept
// with its connection, has grown its stack already.
func (h *Handler) startCall(ctx context.Context, t *tier, a *api, body []byte, stream, stripLogprobs, stripUsage, inline bool) *call {
	c := &call{t: t, api: a, stream: stream, stripLogprobs: stripLogprobs, stripUsage: stripUsage, start: time.Now(),
		maxBytes: h.cfg.MaxResponseBytes, ready: make(chan struct{}), done: make(chan struct{}), notify: make(chan struct{}, 1)}
	c.ctx, c.cancel = context.WithCancel(ctx)
	if inline {
		h.run(c, body)
	} else {
		go h.run(c, body)
	}
	return c
}

func (c *call) markReady() { c.readyOnce.Do(func() { close(c.ready) }) }

// isDone reports whether the call has ended.
func (c *call) isDone() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// ok reports, once done, whether the call answered 2xx in full.
func (c *call) ok() bool { return c.err == nil && c.status >= 200 && c.status < 300 }

// answered reports, once done, whether the call answered 2xx in full
// with an answer: not a stream that ended in failure (failedEnd).
func (c *call) answered() bool { return c.ok() && !c.failedEnd }

// clientError reports, once done, whether the upstream refused the
// request with a 4xx: the client's mistake, passed through.
func (c *call) clientError() bool { return c.err == nil && c.status >= 400 && c.status < 500 }

// fallbackable reports, once done or failed, whether another tier may
// answer in c's place: c failed (connection, timeout, broken before its
// first data), answered 5xx or a redirect (the proxy follows none, so a
// tier whose base URL moved gives no answer), or answered 429 and on429
// says so. Other 4xx are the client's mistake, which another tier would
// repeat.
func (c *call) fallbackable(on429 bool) bool {
	<-c.done
	if c.err != nil || c.status >= 500 || c.status >= 300 && c.status < 400 {
		return true
	}
	return on429 && c.status == http.StatusTooManyRequests
}

// usable reports, once ready, whether a stream can be relayed: it
// answered 200 and sent data (or ended well).
func (c *call) usable() bool {
	if c.isDone() {
		return c.ok()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hasData
}

// describe says, once done, why a call failed.
func (c *call) describe() string {
	switch {
	case errors.Is(c.err, errTimeout):
		return fmt.Sprintf("%s tier (%s) timed out after %v", c.t.name, c.t.model, c.t.timeout)
	case c.err != nil:
		return fmt.Sprintf("%s tier (%s): %s", c.t.name, c.t.model, errText(c.err))
	case !c.ok():
		msg := upstreamMessage(c.body)
		return fmt.Sprintf("%s tier (%s) answered %d%s", c.t.name, c.t.model, c.status, msg)
	}
	return fmt.Sprintf("%s tier (%s) answered", c.t.name, c.t.model)
}

// errText says what went wrong with a call in words a client may read:
// never the transport's own message, which names the upstream's address
// ("dial tcp 10.0.0.7:8000: ...") and may hold a URL with credentials.
// The whole error goes to the log.
func errText(err error) string {
	var dns *net.DNSError
	var tlsErr *tls.CertificateVerificationError
	var recErr tls.RecordHeaderError
	switch {
	case errors.Is(err, errTimeout), errors.Is(err, errTooLarge), errors.Is(err, errStreamCut), errors.Is(err, errStreamError):
		return err.Error()
	case errors.Is(err, errBadAnswer):
		// "answered 200 with a body that is not JSON": no address in it.
		msg := err.Error()
		return msg[strings.Index(msg, ": ")+2:]
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "the connection closed before the answer was whole"
	case errors.As(err, &dns):
		return "the upstream's host name did not resolve"
	case errors.As(err, &tlsErr), errors.As(err, &recErr):
		return "TLS with the upstream failed"
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	}
	return "the connection to the upstream failed"
}

// upstreamMessage is ": <message>" from an OpenAI-style error body, if any.
func upstreamMessage(b []byte) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
		m := e.Error.Message
		if len(m) > 200 {
			m = m[:200] + "..."
		}
		return ": " + m
	}
	return ""
}

// confidence is the mean token log-probability of the answer, once done.
func (c *call) confidence() (float64, bool) {
	if c.lpN == 0 {
		return 0, false
	}
	return c.lpSum / float64(c.lpN), true
}

func (h *Handler) run(c *call, body []byte) {
	defer func() {
		// Most calls run on a goroutine of their own, where a panic in
		// reading an upstream's answer would end the whole server: the
		// call fails instead, like any answer the proxy cannot take, and
		// the log keeps the stack.
		if v := recover(); v != nil {
			h.log.Error("proxy: reading an upstream answer panicked; the call fails", "tier", c.t.name, "model", c.t.model, "panic", v, "stack", string(debug.Stack()))
			c.err = fmt.Errorf("%w: answered %d with a body the proxy could not read", errBadAnswer, c.status)
		}
		c.end = time.Now()
		// A timer firing after the answer was read changes nothing.
		if c.err != nil && c.timedOut.Load() {
			c.err = errTimeout
		}
		c.mu.Lock()
		c.finished = true
		c.mu.Unlock()
		// done before ready: a plain call's waiter wakes on ready and
		// must find it done.
		close(c.done)
		c.markReady()
		c.signal()
		c.cancel()
	}()
	// The timer cancels the call if the answer (or, in a stream, the next
	// chunk) does not come within the tier's timeout.
	timer := time.AfterFunc(c.t.timeout, func() { c.timedOut.Store(true); c.cancel() })
	defer timer.Stop()
	req, err := http.NewRequestWithContext(c.ctx, http.MethodPost, c.t.base+c.api.path, bytes.NewReader(body))
	if err != nil {
		c.err = err
		return
	}
	// Shared value slices: net/http only reads them.
	req.Header["Content-Type"] = hdrJSON
	if c.stream {
		req.Header["Accept"] = hdrSSE
	} else {
		req.Header["Accept"] = hdrJSON
	}
	c.t.setHeaders(req.Header)
	// The transport itself, as httputil.ReverseProxy does: an
	// http.Client would copy the headers for redirects the proxy never
	// follows.
	resp, err := c.t.rt.RoundTrip(req)
	if err != nil {
		c.err = cleanErr(err)
		return
	}
	defer resp.Body.Close()
	c.status = resp.StatusCode
	c.header = resp.Header
	c.contentType = resp.Header.Get("Content-Type")
	if !c.stream || resp.StatusCode != http.StatusOK || !strings.HasPrefix(c.contentType, "text/event-stream") {
		c.body, c.err = readLimited(resp.Body, resp.ContentLength, c.maxBytes)
		if c.err == nil && c.ok() {
			c.parseAnswer()
		}
		if c.err == nil && c.stripLogprobs && refusesLogprobs(c.status, c.body) {
			c.logprobsRefused = true
			if c.t.noLogprobs.CompareAndSwap(false, true) {
				h.log.Warn("proxy: the upstream refused log-probabilities; the proxy asks it for them no more, and requests the router would speculate with it as the cheaper tier escalate (its answers have no confidence for the gate); set logprobs: false on the tier to say so up front",
					"tier", c.t.name, "model", c.t.model, "status", c.status)
			}
		}
		return
	}
	c.err = c.readEvents(resp.Body, timer)
}

// Header values used on every request, shared (net/http does not change
// a header's value slice).
var (
	hdrJSON = []string{"application/json"}
	hdrSSE  = []string{"text/event-stream"}
)

var (
	errTimeout  = errors.New("timed out")
	errTooLarge = errors.New("answer is over max_response_bytes")
	// errStreamCut is a stream that ended without its "data: [DONE]":
	// the upstream closed the connection mid-answer. OpenAI, vLLM,
	// Ollama and the llama.cpp server all end a whole stream with it.
	errStreamCut = errors.New("the stream ended before data: [DONE]")
	// errStreamError is a stream that carried an error object after its
	// first data (call.midErr).
	errStreamError = errors.New("the stream carried an error after its first data")
)

// cleanErr drops the URL from a client's error (*url.Error): it says
// nothing the tier's name does not, and a base URL may carry
// credentials. The rest (the address) stays, for the log; clients are
// told errText.
func cleanErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err
	}
	return err
}

// readLimited reads a body of at most limit bytes. size is its
// Content-Length, or -1: a known size is read into one buffer of that
// size instead of one grown from 512 bytes.
func readLimited(r io.Reader, size, limit int64) ([]byte, error) {
	if size >= 0 && size <= limit {
		b := make([]byte, size)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, cleanErr(err)
		}
		return b, nil
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, cleanErr(err)
	}
	if int64(len(b)) > limit {
		return nil, errTooLarge
	}
	return b, nil
}

// completion is the part of an answer (or a stream chunk) the proxy reads.
type completion struct {
	Choices []choice `json:"choices"`
	Usage   *usage   `json:"usage"`

	// lpSpans are where the choices' logprobs values are in the decoded
	// bytes, when decodeCompletionFast read them (lpKnown): stripping
	// them then needs no second scan (withoutLogprobsAt).
	lpSpans [][2]int
	lpKnown bool
}

type choice struct {
	Index   int `json:"index"`
	Message struct {
		Content *string `json:"content"`
	} `json:"message"`
	Delta struct {
		Content *string `json:"content"`
	} `json:"delta"`
	// Text is a (legacy) completion's answer, whole or a chunk.
	Text     *string         `json:"text"`
	Logprobs *choiceLogprobs `json:"logprobs"`
}

type choiceLogprobs struct {
	Content []struct {
		Logprob float64 `json:"logprob"`
	} `json:"content"`
	// TokenLogprobs are a completion's.
	TokenLogprobs []float64 `json:"token_logprobs"`
}

// decodeCompletion reads an answer or chunk into a. The usual shape (the
// choices' index, content or text, and usage) is read with the scanner,
// without encoding/json's reflection, which was a tenth of a proxied
// request's CPU; anything else, and log-probabilities, go to
// encoding/json. ok is false when b is not a JSON object of that shape.
func decodeCompletion(b []byte, a *completion) bool {
	return validJSON(b) && decodeValidCompletion(b, a)
}

// decodeValidCompletion is decodeCompletion of a b known to be valid JSON
// (parseAnswer has checked it: the check is half the cost of reading an
// answer).
func decodeValidCompletion(b []byte, a *completion) bool {
	if decodeCompletionFast(b, a) {
		return true
	}
	*a = completion{}
	return json.Unmarshal(b, a) == nil
}

// decodeCompletionFast reads b in one pass (eachMember): each nested
// value is read where it is, its end found as it is read. It returns
// false for a shape it does not know, and for anything encoding/json
// would read differently: a repeated member (encoding/json merges or
// overwrites), a key that differs from a known one only by case
// (encoding/json matches those). FuzzDecodeCompletion holds it to
// encoding/json's reading.
func decodeCompletionFast(b []byte, a *completion) bool {
	var seenUsage, seenChoices bool
	end := eachMember(b, 0, func(key []byte, v int) int {
		switch {
		case string(key) == "usage":
			if seenUsage {
				return -1
			}
			seenUsage = true
			if v < len(b) && b[v] == 'n' { // null: no usage
				return valueEnd(b, v)
			}
			var u usage
			ve := readUsage(b, v, &u)
			if ve >= 0 {
				a.Usage = &u
			}
			return ve
		case string(key) == "choices":
			if seenChoices {
				return -1
			}
			seenChoices = true
			return readChoices(b, v, a)
		case foldsTo(key, "usage", "choices"):
			return -1
		}
		return valueEnd(b, v)
	})
	if end < 0 {
		return false
	}
	a.lpKnown = true
	return true
}

// readChoices reads the array of choices at b[i] and returns the index
// after it, or -1.
func readChoices(b []byte, i int, a *completion) int {
	a.Choices = []choice{} // as encoding/json: empty, not nil
	return eachElement(b, i, func(v int) int {
		var ch choice
		end := readChoice(b, v, &ch, a)
		if end >= 0 {
			a.Choices = append(a.Choices, ch)
		}
		return end
	})
}

// readChoice reads the choice object at b[i] into ch (the spans of its
// logprobs into a.lpSpans) and returns the index after it, or -1 for a
// shape it does not know (the caller then uses encoding/json).
func readChoice(b []byte, i int, ch *choice, a *completion) int {
	var seen [5]bool // index, text, message, delta, logprobs
	once := func(k int) bool {
		dup := seen[k]
		seen[k] = true
		return !dup
	}
	return eachMember(b, i, func(key []byte, v int) int {
		var k int
		switch string(key) {
		case "index":
			k = 0
		case "text":
			k = 1
		case "message":
			k = 2
		case "delta":
			k = 3
		case "logprobs":
			k = 4
		default:
			if foldsTo(key, "index", "text", "message", "delta", "logprobs") {
				return -1
			}
			return valueEnd(b, v)
		}
		if !once(k) || v >= len(b) {
			return -1
		}
		if b[v] == 'n' { // null: the field stays unset
			ve := valueEnd(b, v)
			if k == 4 && ve >= 0 {
				a.lpSpans = append(a.lpSpans, [2]int{v, ve})
			}
			return ve
		}
		switch k {
		case 0:
			ve := valueEnd(b, v)
			if ve < 0 {
				return -1
			}
			n, err := strconv.Atoi(string(b[v:ve]))
			if err != nil {
				return -1
			}
			ch.Index = n
			return ve
		case 1:
			ve := valueEnd(b, v)
			if ve < 0 {
				return -1
			}
			s, ok := scanString(b[v:ve])
			if !ok {
				return -1
			}
			ch.Text = &s
			return ve
		case 2:
			return readContent(b, v, &ch.Message.Content)
		case 3:
			return readContent(b, v, &ch.Delta.Content)
		}
		var lp choiceLogprobs
		ve := readLogprobs(b, v, &lp)
		if ve < 0 {
			// Another shape (a completion's token_logprobs): encoding/json.
			if ve = valueEnd(b, v); ve < 0 {
				return -1
			}
			lp = choiceLogprobs{}
			if json.Unmarshal(b[v:ve], &lp) != nil {
				return -1
			}
		}
		ch.Logprobs = &lp
		a.lpSpans = append(a.lpSpans, [2]int{v, ve})
		return ve
	})
}

// readContent reads a message or delta object at b[i], its content into
// *dst, and returns the index after it, or -1.
func readContent(b []byte, i int, dst **string) int {
	seen := false
	return eachMember(b, i, func(key []byte, v int) int {
		ve := valueEnd(b, v)
		if string(key) != "content" {
			if foldsTo(key, "content") {
				return -1
			}
			return ve
		}
		if seen || ve < 0 {
			return -1
		}
		seen = true
		if string(b[v:ve]) == "null" {
			return ve
		}
		s, ok := scanString(b[v:ve])
		if !ok {
			return -1
		}
		*dst = &s
		return ve
	})
}

// readLogprobs reads a chat choice's logprobs at b[i], {"content":
// [{"token", "logprob", "bytes", "top_logprobs"}, ...], "refusal": ...},
// the numbers only, and returns the index after it; -1 for any other
// shape (no content, a completion's token_logprobs), which encoding/json
// then reads.
func readLogprobs(b []byte, i int, lp *choiceLogprobs) int {
	seen := false
	lp.Content = []struct {
		Logprob float64 `json:"logprob"`
	}{}
	end := eachMember(b, i, func(key []byte, v int) int {
		switch {
		case string(key) == "token_logprobs", foldsTo(key, "content", "token_logprobs"):
			return -1
		case string(key) != "content":
			// OpenAI adds "refusal" (null unless the model refused),
			// which encoding/json would ignore too.
			return valueEnd(b, v)
		case seen:
			return -1
		}
		seen = true
		return eachElement(b, v, func(t int) int {
			n := 0
			end := eachMember(b, t, func(key []byte, v int) int {
				ve := valueEnd(b, v)
				if string(key) != "logprob" {
					if foldsTo(key, "logprob") {
						return -1
					}
					return ve
				}
				if n++; n > 1 || ve < 0 {
					return -1
				}
				f, err := strconv.ParseFloat(string(b[v:ve]), 64)
				if err != nil {
					return -1
				}
				lp.Content = append(lp.Content, struct {
					Logprob float64 `json:"logprob"`
				}{f})
				return ve
			})
			if n != 1 {
				return -1
			}
			return end
		})
	})
	if !seen {
		return -1 // {}: encoding/json leaves Content nil
	}
	return end
}

// readUsage reads prompt_tokens and completion_tokens of the usage
// object at b[i] and returns the index after it, or -1.
func readUsage(b []byte, i int, u *usage) int {
	var seen [2]bool
	return eachMember(b, i, func(key []byte, v int) int {
		ve := valueEnd(b, v)
		dst, k := &u.PromptTokens, 0
		switch string(key) {
		case "prompt_tokens":
		case "completion_tokens":
			dst, k = &u.CompletionTokens, 1
		default:
			if foldsTo(key, "prompt_tokens", "completion_tokens") {
				return -1
			}
			return ve
		}
		if seen[k] || ve < 0 {
			return -1
		}
		seen[k] = true
		n, err := strconv.Atoi(string(b[v:ve]))
		if err != nil {
			return -1
		}
		*dst = n
		return ve
	})
}

// foldsTo reports whether key is one of names but for case, which
// encoding/json would match and the fast path does not.
func foldsTo(key []byte, names ...string) bool {
	for _, n := range names {
		if string(key) != n && strings.EqualFold(string(key), n) {
			return true
		}
	}
	return false
}

// scanString decodes a JSON string exactly as encoding/json does.
func scanString(raw []byte) (string, bool) {
	sc := jsonscan.New(raw)
	v, ok := sc.Str()
	return v, ok && sc.End()
}

// take adds a decoded answer or chunk's text, log-probabilities and usage.
func (c *call) take(a *completion) {
	for _, ch := range a.Choices {
		if ch.Index != 0 {
			continue
		}
		if ch.Message.Content != nil {
			c.text.WriteString(*ch.Message.Content)
		}
		if ch.Delta.Content != nil {
			c.text.WriteString(*ch.Delta.Content)
		}
		if ch.Text != nil {
			c.text.WriteString(*ch.Text)
		}
		if ch.Logprobs != nil {
			for _, l := range ch.Logprobs.Content {
				c.lpSum += l.Logprob
				c.lpN++
			}
			for _, l := range ch.Logprobs.TokenLogprobs {
				c.lpSum += l
				c.lpN++
			}
		}
	}
	if a.Usage != nil {
		u := *a.Usage
		c.usage = &u
	}
}

// parseAnswer reads a plain answer. An answer the proxy cannot read is
// still passed on; only its usage and confidence are then unknown. A 2xx
// that is no answer at all (not JSON, or without its choices or output,
// as a misconfigured gateway's HTML page or an empty object) is a failed
// call (errBadAnswer): served as a success it would beat a good answer in
// a race and be recorded as an outcome.
func (c *call) parseAnswer() {
	if p := answerProblem(c.api, c.body); p != "" {
		c.err = fmt.Errorf("%w: answered %d with %s", errBadAnswer, c.status, p)
		return
	}
	if c.api == apiResponses {
		c.parseResponse()
		return
	}
	var a completion
	if !decodeValidCompletion(c.body, &a) { // answerProblem checked it is JSON
		// An answer this reader cannot decode (a field of an unexpected
		// type) must not show the client logprobs either.
		if c.stripLogprobs {
			if b, ok := withoutLogprobs(c.body); ok {
				c.body = b
			}
		}
		return
	}
	c.take(&a)
	if c.stripLogprobs {
		if a.lpKnown {
			c.body = withoutLogprobsAt(c.body, a.lpSpans)
		} else if b, ok := withoutLogprobs(c.body); ok {
			c.body = b
		}
	}
}

// errBadAnswer is a 2xx whose body is not an answer (parseAnswer).
var errBadAnswer = errors.New("not an answer")

// answerProblem says what keeps b from being an answer of api, or "":
// an answer is whole JSON whose key (choices, or output) is an array.
func answerProblem(a *api, b []byte) string {
	key := "choices"
	if a == apiResponses {
		key = "output"
	}
	if !validJSON(b) {
		// Also a body cut short after the key (a gateway that closed
		// mid-answer with a matching Content-Length): it must not win a
		// race.
		return "a body that is not JSON"
	}
	// The scanner the logprobs stripping uses, stopped at the key:
	// gjson.GetBytes copied the whole choices array into a string (4.8 KB
	// and 3 us an answer), and members would find every value's end. Of a
	// key given twice the first counts here, where encoding/json takes the
	// last: such a body is no answer any SDK reads either way.
	found, isArray := false, false
	end := eachMember(b, 0, func(k []byte, v int) int {
		if string(k) == key {
			found, isArray = true, b[v] == '['
			return -1
		}
		return valueEnd(b, v)
	})
	switch {
	case isArray:
		return ""
	case found:
		return "a body whose " + key + " is not a list"
	case end >= 0:
		return "a body without " + key
	case gjson.GetBytes(b, key).IsArray(): // a shape the scanner does not take
		return ""
	}
	return "a body without " + key
}

// withoutLogprobs sets every choice's logprobs to null, keeping the rest
// as it is. b must be valid JSON (it decoded); ok is false unless it is an
// object whose choices are an array of objects.
func withoutLogprobs(b []byte) ([]byte, bool) {
	var buf [16]member
	top, ok := members(buf[:0], b, 0)
	if !ok {
		return nil, false
	}
	ci := last(top, "choices")
	if ci < 0 {
		return nil, false
	}
	// The spans of the logprobs values, in order.
	var spans [][2]int
	end := eachElement(b, top[ci].val, func(v int) int {
		return eachMember(b, v, func(key []byte, w int) int {
			we := valueEnd(b, w)
			if we >= 0 && string(key) == "logprobs" {
				spans = append(spans, [2]int{w, we})
			}
			return we
		})
	})
	if end < 0 {
		return nil, false
	}
	return withoutLogprobsAt(b, spans), true
}

// withoutLogprobsAt is b with each of spans (in order) replaced by null.
func withoutLogprobsAt(b []byte, spans [][2]int) []byte {
	if len(spans) == 0 {
		return b
	}
	out := make([]byte, 0, len(b))
	at := 0
	for _, sp := range spans {
		out = append(append(out, b[at:sp[0]]...), "null"...)
		at = sp[1]
	}
	return append(out, b[at:]...)
}

func (c *call) signal() {
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// afterDone bounds the wait, once a stream's end has arrived ("data:
// [DONE]", or a Responses API stream's terminal event), for the upstream
// to end its response. The answer is whole by then: reading on only lets
// the connection be reused, so an upstream that keeps it open, or breaks
// it, after the end neither holds the client nor breaks its answer.
const afterDone = 250 * time.Millisecond

// readEvents reads a server-sent event stream into c.events, resetting
// the timeout at each event.
func (c *call) readEvents(body io.Reader, timer *time.Timer) error {
	br := bufio.NewReaderSize(body, 16<<10)
	var ev, data []byte
	var total int64
	// fail is err, unless the stream's end has arrived: what comes after
	// it (a connection reset, a timeout, bytes past max_response_bytes)
	// does not take the whole answer back. Only this goroutine writes
	// sawDone.
	fail := func(err error) error {
		if c.sawDone {
			return nil
		}
		return err
	}
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: gather it whole, but no
			// further than max_response_bytes (a line with no end would
			// otherwise be read into memory whole first).
			long := append([]byte(nil), line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				if total+int64(len(long)) > c.maxBytes {
					return fail(errTooLarge)
				}
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if len(line) > 0 {
			total += int64(len(line))
			if total > c.maxBytes {
				return fail(errTooLarge)
			}
			ev = append(ev, line...)
			t := bytes.TrimRight(line, "\r\n")
			if len(t) == 0 {
				// A blank line ends the event.
				c.addEvent(ev, data)
				if c.openErr != nil {
					return c.openErr
				}
				if c.midErr != nil {
					return c.midErr
				}
				ev, data = nil, data[:0]
				if c.sawDone {
					timer.Reset(afterDone)
				} else {
					timer.Reset(c.t.timeout)
				}
			} else if d, ok := bytes.CutPrefix(t, []byte("data:")); ok {
				if len(data) > 0 {
					data = append(data, '\n')
				}
				data = append(data, bytes.TrimPrefix(d, []byte(" "))...)
			}
		}
		if err != nil {
			if len(ev) > 0 {
				c.addEvent(ev, data)
				if c.openErr != nil {
					return c.openErr
				}
				if c.midErr != nil {
					return c.midErr
				}
			}
			if errors.Is(err, io.EOF) {
				return fail(errStreamCut)
			}
			return fail(cleanErr(err))
		}
	}
}

// addEvent parses one event and stores what the client is to see of it.
func (c *call) addEvent(raw, data []byte) {
	out := raw
	isData := len(data) > 0
	end := string(data) == "[DONE]"
	if c.api == apiResponses && isData {
		out, end = c.responseEvent(raw, data)
	} else if isData && !end {
		errChunk := isErrorChunk(data)
		if !c.hasData && errChunk {
			c.openErr = fmt.Errorf("%w: answered 200 with a stream that opens with an error%s", errBadAnswer, upstreamMessage(data))
			return
		}
		var a completion
		if errChunk {
			// After the stream's end it changes nothing (afterDone).
			if !c.sawDone {
				c.midErr = fmt.Errorf("%w%s", errStreamError, upstreamMessage(data))
			}
		} else if decodeCompletion(data, &a) {
			c.take(&a)
			switch {
			case c.stripUsage && len(a.Choices) == 0 && a.Usage != nil:
				// The usage chunk the proxy asked for.
				out = nil
			case c.stripUsage || c.stripLogprobs:
				out = c.rewriteChunk(data, raw)
			}
		} else if (c.stripUsage || c.stripLogprobs) && validJSON(data) {
			// A chunk this reader cannot decode is still rewritten: what
			// the proxy asked for must not reach the client through it.
			out = c.rewriteChunk(data, raw)
		}
	}
	c.mu.Lock()
	c.events = append(c.events, out)
	if c.streamID != "" {
		c.respID = c.streamID
	}
	if isData {
		c.hasData = true
		if end {
			c.sawDone = true
		}
	}
	c.mu.Unlock()
	if isData {
		c.markReady()
	}
	c.signal()
}

// refusesLogprobs reports whether an answer is an upstream's refusal of
// log-probabilities: a 400 or 422 whose error names "logprobs" (or the
// Responses API's "include", through which the proxy asks for them), as
// OpenAI's reasoning models answer {"error": {"message": "Unsupported
// parameter: 'logprobs' is not supported with this model.", "param":
// "logprobs", ...}}.
func refusesLogprobs(status int, body []byte) bool {
	if status != http.StatusBadRequest && status != http.StatusUnprocessableEntity {
		return false
	}
	switch gjson.GetBytes(body, "error.param").String() {
	case "logprobs", "top_logprobs", "include":
		return true
	}
	return strings.Contains(strings.ToLower(gjson.GetBytes(body, "error.message").String()), "logprob")
}

// isErrorChunk reports whether a chat or completion stream's data is an
// error object ({"error": ...}) rather than a chunk: it has an error
// member and no choices.
func isErrorChunk(data []byte) bool {
	if !bytes.Contains(data, []byte(`"error"`)) {
		return false
	}
	return gjson.GetBytes(data, "error").Exists() && !gjson.GetBytes(data, "choices").Exists()
}

// rewriteChunk drops what the proxy added from a chunk: "usage": null
// (present on every chunk once include_usage is asked) and logprobs.
func (c *call) rewriteChunk(data, raw []byte) []byte {
	var top map[string]json.RawMessage
	if json.Unmarshal(data, &top) != nil {
		return raw
	}
	changed := false
	if c.stripUsage {
		if u, ok := top["usage"]; ok && string(u) == "null" {
			delete(top, "usage")
			changed = true
		}
	}
	if c.stripLogprobs {
		if b, ok := withoutLogprobs(data); ok {
			if json.Unmarshal(b, &top) == nil {
				changed = true
				if c.stripUsage {
					if u, ok := top["usage"]; ok && string(u) == "null" {
						delete(top, "usage")
					}
				}
			}
		}
	}
	if !changed {
		return raw
	}
	b, err := json.Marshal(top)
	if err != nil {
		return raw
	}
	return append(append([]byte("data: "), b...), '\n', '\n')
}

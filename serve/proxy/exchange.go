package proxy

import (
	"context"
	"errors"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/triage-router/triage/datasets"
)

// Speculation outcomes, the values of the outcome label of
// triage_proxy_speculations_total.
const (
	// SpecFastAccepted: the fast answer cleared accept_confidence and was
	// kept; the strong call was cancelled.
	SpecFastAccepted = "fast_accepted"
	// SpecStrongUsed: the strong answer was kept, because it came first or
	// because the fast one was not confident enough or failed.
	SpecStrongUsed = "strong_used"
	// SpecFastFallback: the strong tier failed, so the fast answer was
	// kept whatever its confidence.
	SpecFastFallback = "fast_fallback"
	// SpecFailed: both tiers failed.
	SpecFailed = "failed"
	// SpecAbandoned: the client went away before an answer.
	SpecAbandoned = "abandoned"
)

// Reasons a call is cancelled, the reason label of
// triage_proxy_upstream_cancelled_total.
const (
	cancelLoser  = "loser"  // the other tier's answer was kept
	cancelClient = "client" // the client went away
)

// statusClientGone is what the metrics count for a request whose client
// went away (nginx's 499).
const statusClientGone = 499

// exchange is one proxied request.
type exchange struct {
	h     *Handler
	w     http.ResponseWriter
	r     *http.Request
	ctx   context.Context
	id    string
	start time.Time
	ts    time.Time
	req   *chatRequest

	router Router
	info   ModelInfo
	pHard  float64
	choice Choice
	forced bool
	// explored: exploration made two tiers run (runExplore); propensity
	// is the probability of what ran (1 without exploration).
	explored   bool
	propensity float64

	calls     []*call
	cancelled map[*call]cancelInfo
	status    int
	// fallback names the tier that answered after the chosen one failed.
	fallback string
	// broken is a stream the upstream broke after the client got part of
	// it: the client's connection is aborted (no [DONE]), so its SDK
	// raises an error instead of taking a truncated answer as whole.
	broken  bool
	spec    string
	calConf float64
	hasConf bool
	// queued: finish handed the recording to the queue.
	queued bool
	// pinned: the request continues a stored response (a Responses API
	// previous_response_id) and went to the tier that stored it, not
	// where the router would have sent it.
	pinned bool
	// stored is the stored response the client was given, to be kept
	// with the recording: its id, its tier and its expiry.
	stored *datasets.StoredResponse
}

type cancelInfo struct {
	at     time.Time
	reason string
}

// refuse answers a request the proxy will not send anywhere.
func (x *exchange) refuse(err error) {
	var e *apiError
	if !errors.As(err, &e) {
		e = &apiError{status: http.StatusInternalServerError, code: "internal_error", msg: "internal error; see the server log"}
		x.h.log.Error("proxy request failed", "request_id", x.id, "err", err)
	}
	hd := x.w.Header()
	if hd.Get(HeaderDecision) == "" {
		hd.Set(HeaderDecision, "none")
	}
	hd.Set(HeaderModel, "none")
	x.ownRequestID()
	writeError(x.w, e)
	x.status = e.status
}

// ownRequestID gives a response without an upstream's x-request-id (an
// error the proxy makes itself, an answer of an upstream that sends
// none) the id it is logged and recorded under as X-Request-Id, the
// header OpenAI's SDKs read into a response's and an error's request id
// (_request_id and err.requestID in Node, e.request_id in Python):
// without it an app's log holds no id to look the request up by.
func (x *exchange) ownRequestID() {
	hd := x.w.Header()
	if hd.Get("X-Request-Id") == "" {
		hd.Set("X-Request-Id", x.id)
	}
}

// begin starts a call to t; inline, it returns when the call ended
// (startCall).
func (x *exchange) begin(t *tier, wantLogprobs, inline bool) (*call, error) {
	wantLogprobs = wantLogprobs && !t.noLogprobs.Load()
	body, err := x.req.upstreamBody(t.model, wantLogprobs)
	if err != nil {
		return nil, err
	}
	c := x.h.startCall(x.ctx, t, x.req.api, body, x.req.stream, wantLogprobs && !x.req.logprobs, x.req.stream && !x.req.includeUsage, inline)
	x.calls = append(x.calls, c)
	return c, nil
}

// await waits until c can be served or has ended: its whole answer for a
// plain call, its first data for a stream. It returns false when the
// client went away first.
func (x *exchange) await(c *call) bool {
	// A client that left ended the call too: both channels are then
	// ready, and select would pick either, so check the client first
	// (else the call's cancellation could be taken for a tier's failure
	// and fall back).
	if x.ctx.Err() != nil {
		return false
	}
	select {
	case <-c.ready:
		return true
	case <-x.ctx.Done():
		return false
	}
}

// runTier sends to t alone (fast, escalate, or a tier the client named).
// When t fails (5xx, timeout, connection error; 429 too with
// fallback_on_429) and fallback is on, the next cheaper tier (for the
// cheapest, the next one up) answers instead, marked in
// X-Triage-Decision ("escalate+fallback") and the recording.
func (x *exchange) runTier(t *tier) {
	fb := x.h.fallbackFor(t)
	if x.pinned {
		// Only t holds the response the request continues: another tier
		// would answer 404 for it, hiding t's failure from the client.
		fb = nil
	}
	c, done := x.try(t, fb != nil)
	if done {
		return
	}
	if fb == nil || !c.fallbackable(x.h.cfg.FallbackOn429) {
		x.fail(c)
		return
	}
	x.fallback = fb.name
	x.w.Header().Set(HeaderDecision, x.choice.Decision+"+fallback")
	fc, done := x.try(fb, false)
	if done {
		return
	}
	x.fail(c, fc)
}

// try calls one tier and waits for it. done is true when the exchange is
// over: the answer was served, the call could not start, or the client
// left. Otherwise the call failed and c says how, for fail. A 4xx is
// served as the answer, except a 429 that may fall back.
func (x *exchange) try(t *tier, mayFallBack bool) (c *call, done bool) {
	// A routed, unstreamed fast answer asks for log-probabilities
	// (stripped from the client's answer unless it asked), so its
	// confidence is recorded: retrain's soft label where nobody scores
	// the answer. A stream is relayed as the upstream sent it, so it
	// does not.
	// A plain answer is awaited whole anyway: the call runs on this
	// goroutine. A stream is relayed while it is read, so it has its own.
	c, err := x.begin(t, t.idx == 0 && !x.forced && !x.req.stream, !x.req.stream)
	if err != nil {
		x.refuse(err)
		return nil, true
	}
	if !x.await(c) {
		x.clientGone()
		return nil, true
	}
	if c.usable() {
		x.serve(c)
		return nil, true
	}
	<-c.done
	if c.logprobsRefused {
		// The refusal answers what the proxy added, not the client's
		// request: ask again without it (the tier is now never asked,
		// so this happens once), and forget the refused call, which is
		// no outcome of the request.
		x.calls = slices.DeleteFunc(x.calls, func(o *call) bool { return o == c })
		return x.try(t, mayFallBack)
	}
	if c.clientError() && !(mayFallBack && c.fallbackable(x.h.cfg.FallbackOn429)) {
		x.serve(c)
		return nil, true
	}
	return c, false
}

// beginPair starts lo (asking for its confidence) and hi at once, each
// on its own goroutine, for a race or an exploration. When either cannot
// start, the other is cancelled and the client refused, and ok is false.
func (x *exchange) beginPair(lo, hi *tier) (lc, hc *call, ok bool) {
	lc, err := x.begin(lo, true, false)
	if err != nil {
		x.refuse(err)
		return nil, nil, false
	}
	hc, err = x.begin(hi, false, false)
	if err != nil {
		x.cancelCall(lc, cancelClient)
		x.refuse(err)
		return nil, nil, false
	}
	return lc, hc, true
}

// runSpeculate races lo (the tier chosen) with hi (the next one up),
// both started at once (docs/design.md, "Replaying a log through a
// policy"): the first whole answer decides. An answer of hi first is kept
// and lo's call cancelled; an answer of lo first is kept if its
// calibrated confidence clears the choice's gate, hi's call being
// cancelled, else hi's answer is awaited. A failure of hi after an
// answer of lo keeps lo's. In a stream lo's answer is judged whole
// (buffered), so its first byte reaches the client when its last
// arrives; hi's stream is relayed from the moment lo's is rejected, its
// buffered part first. With two tiers lo is fast and hi strong, the
// names the code and the metrics use.
func (x *exchange) runSpeculate(lo, hi *tier) {
	fc, sc, ok := x.beginPair(lo, hi)
	if !ok {
		return
	}
	x.race(fc, sc)
}

// race decides between a speculation's two running calls, fc the cheaper
// tier's (with its confidence) and sc the one up (runSpeculate).
func (x *exchange) race(fc, sc *call) {
	fastDone, strongDone := fc.done, sc.done
	for fastDone != nil || strongDone != nil {
		select {
		case <-fastDone:
			fastDone = nil
			if x.left() {
				return
			}
			switch {
			case fc.ok() && strongDone == nil:
				// The strong call already failed.
				x.spec = SpecFastFallback
				x.serve(fc)
				return
			case fc.ok() && x.accept(fc):
				x.spec = SpecFastAccepted
				x.serveWinner(fc, sc)
				return
			case strongDone == nil:
				x.fastOrFail(fc, sc)
				return
			}
			// Not confident enough, or failed: the strong answer it is.
			x.commitStrong(fc, sc)
			return
		case <-strongDone:
			strongDone = nil
			if x.left() {
				return
			}
			if sc.answered() {
				x.spec = SpecStrongUsed
				x.serveWinner(sc, fc)
				return
			}
			if fastDone == nil {
				x.fastOrFail(fc, sc)
				return
			}
			// The strong call failed first: wait for the fast answer,
			// which is then kept whatever its confidence.
		case <-x.ctx.Done():
			x.clientGone()
			return
		}
	}
}

// runExplore is an explored request: the chosen tier and other (the
// next one up, or for the top tier the one below) both run to
// completion, none cancelled, so both outcomes (with the cheaper one's
// confidence and each tier's usage) are recorded for retraining, and the
// client gets the answer the policy would have given: the chosen tier's
// (other's when that one failed, marked as a fallback). The client waits
// for the slower tier; that latency and the other tier's cost are what
// exploration costs (docs/loop.md). With two tiers: fast and strong, the
// fast answer for a fast decision, the strong one for an escalation.
func (x *exchange) runExplore(chosen, other *tier) {
	lo, hi := chosen, other
	if other.idx < chosen.idx {
		lo, hi = other, chosen
	}
	fc, sc, ok := x.beginPair(lo, hi)
	if !ok {
		return
	}
	for _, c := range []*call{fc, sc} {
		select {
		case <-c.done:
		case <-x.ctx.Done():
			x.clientGone()
			return
		}
	}
	if x.left() {
		return
	}
	first, second := fc, sc
	if chosen == hi {
		first, second = sc, fc
	}
	if raw, ok := fc.confidence(); ok {
		if p, ok := x.router.CalibratedConfidence(lo.idx, raw); ok {
			x.calConf, x.hasConf = p, true
		}
	}
	switch {
	case first.ok() || (first.clientError() && !first.fallbackable(x.h.cfg.FallbackOn429)):
		x.serve(first)
	case second.ok():
		x.fallback = second.t.name
		x.w.Header().Set(HeaderDecision, x.choice.Decision+"+fallback")
		x.serve(second)
	default:
		x.fail(fc, sc)
	}
}

// serveWinner serves a race's winning answer and ends the loser: a
// stream's loser at once (it would go on generating while the winner is
// relayed), a plain one after the winner's answer was sent, given
// loser_grace to end by itself (Config.LoserGrace says why).
func (x *exchange) serveWinner(win, lose *call) {
	if win.stream || x.h.loserGrace <= 0 || lose.isDone() {
		x.cancelCall(lose, cancelLoser)
		x.serve(win)
		return
	}
	x.serve(win)
	// Sent now, not when the handler returns: the client does not wait
	// for the grace, and the server's latency metric does not count it.
	_ = http.NewResponseController(x.w).Flush()
	reportAnswered(x.ctx, time.Now())
	graceOver, stop := x.h.graceTimer(x.h.loserGrace)
	defer stop()
	// The client has its answer: a client that closes its connection
	// now (curl, any client without keep-alive) ends the loser's call,
	// but the call lost the race; it is not cancelled for a client gone.
	select {
	case <-lose.done:
		// Ended within the grace: recorded whole (finish), unless the
		// client's leaving ended it.
		if x.ctx.Err() != nil {
			x.drop(lose, cancelLoser)
		}
	case <-graceOver:
		x.cancelCall(lose, cancelLoser)
	case <-x.ctx.Done():
		x.drop(lose, cancelLoser)
	}
}

// commitStrong serves the strong call once it can be (a stream at its
// first data), after the fast answer was rejected or failed. A strong
// failure then falls back to a fast answer if there is one.
func (x *exchange) commitStrong(fc, sc *call) {
	if !x.await(sc) {
		x.clientGone()
		return
	}
	// A stream that has already ended in failure is no answer: a fast
	// one beats it.
	if sc.usable() && !(sc.isDone() && sc.failedEnd) {
		x.spec = SpecStrongUsed
		x.serve(sc)
		return
	}
	<-sc.done
	x.fastOrFail(fc, sc)
}

// fastOrFail ends a speculation whose strong call failed: the fast answer
// if there is one, else the failure of both.
func (x *exchange) fastOrFail(fc, sc *call) {
	if fc.ok() {
		x.spec = SpecFastFallback
		x.serve(fc)
		return
	}
	x.spec = SpecFailed
	if sc.ok() {
		// A stream that ended in failure (failedEnd): the client reads
		// the upstream's own account of it.
		x.serve(sc)
		return
	}
	x.fail(fc, sc)
}

// accept applies the confidence gate to a finished fast answer.
func (x *exchange) accept(fc *call) bool {
	raw, ok := fc.confidence()
	if !ok || fc.failedEnd {
		return false
	}
	p, ok := x.router.CalibratedConfidence(fc.t.idx, raw)
	if !ok {
		return false
	}
	x.calConf, x.hasConf = p, true
	x.h.m.confidence.Observe(p)
	return p >= x.choice.Accept
}

// cancelCall cancels a call still running and notes when and why. A call
// that already ended is left as it is: it completed.
func (x *exchange) cancelCall(c *call, reason string) {
	if c.isDone() {
		return
	}
	if _, dup := x.cancelled[c]; dup {
		return
	}
	if x.cancelled == nil {
		x.cancelled = map[*call]cancelInfo{}
	}
	x.cancelled[c] = cancelInfo{at: time.Now(), reason: reason}
	c.cancel()
	c.t.m.cancelled(reason).Inc()
}

// dropForClient cancels c because the client went away. A call that
// already ended because the client's context did is cancelled too, at
// its end.
func (x *exchange) dropForClient(c *call) { x.drop(c, cancelClient) }

// drop cancels c for reason once the client's leaving ended or ends it:
// a call that ended cancelled is counted and recorded as cancelled.
func (x *exchange) drop(c *call, reason string) {
	if c.isDone() {
		if _, dup := x.cancelled[c]; dup || !errors.Is(c.err, context.Canceled) {
			return
		}
		if x.cancelled == nil {
			x.cancelled = map[*call]cancelInfo{}
		}
		x.cancelled[c] = cancelInfo{at: c.end, reason: reason}
		c.t.m.cancelled(reason).Inc()
		return
	}
	x.cancelCall(c, reason)
}

// left reports whether the client went away, and if so ends the request
// as clientGone does. A race checks it when a call ends: the client's
// leaving ends every call too, so a call's done channel and the client's
// may both be ready, and select picks either; taking the call's for a
// tier's failure would fail the request and leave its cancelled calls
// unrecorded.
func (x *exchange) left() bool {
	if x.ctx.Err() == nil {
		return false
	}
	x.clientGone()
	return true
}

// clientGone cancels every call of a request whose client went away.
func (x *exchange) clientGone() {
	for _, c := range x.calls {
		x.dropForClient(c)
	}
	if x.choice.Race != NoRace && x.spec == "" {
		x.spec = SpecAbandoned
	}
	x.status = statusClientGone
}

// serve answers with c: its body (an answer or a 4xx), or its stream.
func (x *exchange) serve(c *call) {
	hd := x.w.Header()
	copyHeaders(hd, c.header)
	// vLLM sends no x-request-id unless started with
	// --enable-request-id-headers: the SDK then shows the proxy's.
	x.ownRequestID()
	hd[HeaderModel] = c.t.modelHdr
	ct := c.contentType
	if ct == "" {
		ct = "application/json"
		hd["Content-Type"] = hdrJSON
	} else {
		hd["Content-Type"] = c.header["Content-Type"][:1:1]
	}
	if c.stream && c.status == http.StatusOK && strings.HasPrefix(ct, "text/event-stream") {
		x.relay(c)
		return
	}
	if c.ok() {
		x.noteStored(c, c.respID)
	}
	hd.Set("Content-Length", strconv.Itoa(len(c.body)))
	x.w.WriteHeader(c.status)
	x.status = c.status
	x.w.Write(c.body)
}

// dropHeaders are upstream response headers a client must not get from
// the proxy: hop-by-hop headers (RFC 9110 7.6.1), cookies (the
// upstream's session is not the client's), what the proxy sets itself,
// and Alt-Svc, which would send the client to the upstream's host.
var dropHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Authenticate": true, "Proxy-Authorization": true,
	"Proxy-Connection": true, "Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
	"Set-Cookie": true, "Set-Cookie2": true, "Content-Length": true, "Content-Type": true, "Date": true,
	"Alt-Svc": true, HeaderDecision: true, HeaderModel: true, HeaderRequestID: true,
}

// copyHeaders passes an upstream's response headers to the client:
// Retry-After, retry-after-ms, x-request-id, openai-processing-ms,
// x-ratelimit-* and the rest, which SDKs read to back off and to show
// the request id. Headers the upstream's Connection header names are
// hop-by-hop too.
func copyHeaders(dst, src http.Header) {
	conn := src["Connection"]
	for k, v := range src {
		if dropHeaders[k] || (len(conn) > 0 && namedIn(conn, k)) {
			continue
		}
		dst[k] = v
	}
}

func namedIn(list []string, name string) bool {
	for _, l := range list {
		for f := range strings.SplitSeq(l, ",") {
			if http.CanonicalHeaderKey(strings.TrimSpace(f)) == name {
				return true
			}
		}
	}
	return false
}

// relay writes a stream's events as they arrive, flushing each batch.
func (x *exchange) relay(c *call) {
	hd := x.w.Header()
	hd.Set("Cache-Control", "no-cache")
	x.w.WriteHeader(http.StatusOK)
	x.status = http.StatusOK
	rc := http.NewResponseController(x.w)
	next := 0
	for {
		c.mu.Lock()
		evs, fin, id := c.events[next:], c.finished, c.respID
		c.mu.Unlock()
		next += len(evs)
		// Before the client can read the id, so a follow-up it sends at
		// once finds it.
		x.noteStored(c, id)
		wrote := false
		for _, e := range evs {
			if e == nil {
				continue
			}
			if _, err := x.w.Write(e); err != nil {
				x.dropForClient(c)
				x.status = statusClientGone
				return
			}
			wrote = true
		}
		if wrote {
			if err := rc.Flush(); err != nil {
				x.dropForClient(c)
				x.status = statusClientGone
				return
			}
		}
		if fin {
			// finished is set just before done is closed: wait for it, or
			// finish would find the call still running and record it as
			// cancelled (seen under load).
			<-c.done
			if c.err != nil {
				x.broken = true
				x.status = http.StatusBadGateway
				x.h.log.Warn("proxy: upstream stream broke after the client got part of it; aborting the client's stream",
					"request_id", x.id, "tier", c.t.name, "err", c.err)
			}
			return
		}
		select {
		case <-c.notify:
		case <-x.ctx.Done():
			x.dropForClient(c)
			x.status = statusClientGone
			return
		}
	}
}

// noteStored remembers which tier stored the Responses API response id
// that c's answer gives the client, before the client has it: a
// follow-up naming it (previous_response_id) and a retrieval then go to
// that tier. A request with "store": false stores nothing upstream.
func (x *exchange) noteStored(c *call, id string) {
	if id == "" || x.stored != nil || c.api != apiResponses || x.req.noStore {
		return
	}
	owner := ClientName(x.r.Context())
	exp := x.h.responses.remember(id, c.t, owner)
	x.stored = &datasets.StoredResponse{ID: id, Tier: c.t.name, Owner: owner, Expires: exp}
}

// fail answers when no tier gave an answer: an upstream 4xx passes
// through (the strongest tier's first), anything else is a 502 naming
// what each tier did.
func (x *exchange) fail(calls ...*call) {
	var pass *call
	for _, c := range calls {
		if c.clientError() && (pass == nil || c.t.idx > pass.t.idx) {
			pass = c
		}
	}
	if pass != nil {
		x.serve(pass)
		return
	}
	msgs := make([]string, len(calls))
	for i, c := range calls {
		msgs[i] = c.describe()
		if c.err != nil && !errors.Is(c.err, errTimeout) {
			x.h.log.Warn("proxy: upstream call failed", "request_id", x.id, "tier", c.t.name, "err", c.err)
		}
	}
	msg := "no upstream answered: " + strings.Join(msgs, "; ")
	if len(calls) == 1 {
		msg = "the upstream failed: " + msgs[0]
	}
	x.w.Header().Set(HeaderModel, "none")
	x.ownRequestID()
	retryHint(x.w.Header(), calls)
	writeError(x.w, &apiError{status: http.StatusBadGateway, code: codeUpstream, msg: msg})
	x.status = http.StatusBadGateway
}

// retryHint gives a 502 the soonest back-off hint (Retry-After, and
// retry-after-ms as OpenAI's SDKs read it) among the tiers that answered
// with one: an upstream that says when it takes requests again (a 503
// while overloaded, a 429 that fell back) tells the client's SDK how long
// to wait, and once any tier may answer a retry is worth making. Without
// it the SDK retries on its own schedule, into the same overload. A
// Retry-After that is an HTTP date, not seconds, is used only when no
// tier gave seconds.
func retryHint(dst http.Header, calls []*call) {
	var best *call
	bestWait := math.Inf(1)
	for _, c := range calls {
		if c.header == nil || c.ok() {
			continue
		}
		if w, ok := retryWait(c.header); ok && (best == nil || w < bestWait) {
			best, bestWait = c, w
		}
	}
	if best == nil {
		return
	}
	for _, k := range []string{"Retry-After", "Retry-After-Ms"} {
		if v := best.header.Values(k); len(v) > 0 {
			dst[k] = v
		}
	}
}

// retryWait is the wait h asks for, in seconds: retry-after-ms, else
// Retry-After's seconds, else +Inf for a date; ok is false when h asks
// for none.
func retryWait(h http.Header) (float64, bool) {
	if v := h.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && ms >= 0 {
			return ms / 1000, true
		}
	}
	if v := h.Get("Retry-After"); v != "" {
		if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
			return float64(s), true
		}
		return math.Inf(1), true
	}
	return 0, false
}

// finish counts the request and queues its recording.
func (x *exchange) finish() {
	for _, c := range x.calls {
		// Every path cancels or awaits its calls; this only guards
		// against leaking one.
		if _, ok := x.cancelled[c]; !ok && !c.isDone() {
			x.dropForClient(c)
		}
	}
	x.h.m.request(x.choice.Decision, x.status)
	if x.spec != "" {
		x.h.m.speculation(x.spec).Inc()
	}
	rec := Recording{
		RequestID: x.id, TS: x.ts, Messages: x.req.messages, Prompt: x.req.prompt, Completion: x.req.api == apiCompletions, Meta: x.req.meta, Forced: x.forced,
		Decision: datasets.Decision{Kind: x.choice.Decision, PHard: x.pHard, ModelVersion: x.info.Version,
			Tier: x.recordName(x.h.tiers[x.choice.Tier])},
		Outcomes: make(map[string]datasets.Outcome, len(x.calls)),
	}
	rec.Decision.Pinned = x.pinned
	rec.Response = x.stored
	if x.pinned {
		x.h.m.pinned.WithLabelValues(x.h.tiers[x.choice.Tier].name).Inc()
	}
	if !x.forced && !x.pinned {
		rec.Decision.Propensity = x.propensity
		if x.explored {
			// Both tiers ran, as on a speculation: the record says so,
			// with the probability of that (ε), as /v1/route records it.
			rec.Decision.Kind, rec.Decision.Explored = "speculate", true
			// What the policy chose, which ran surely (the other tier
			// ran by exploration): retrain's per-tier propensities.
			rec.Decision.Policy = x.choice.Decision
		}
		if x.info.MultiTier {
			x.tierFields(&rec.Decision)
		}
	}
	rec.Decision.Fallback = x.fallback
	switch {
	case x.broken:
		rec.Decision.Error = "stream_broken"
	case x.status == http.StatusBadGateway:
		rec.Decision.Error = codeUpstream
	}
	// answered is the tiers whose calls gave a whole answer, by index:
	// an N-tier record's Ran.
	var answered []int
	for _, c := range x.calls {
		name, o, ok := x.outcome(c)
		if ok {
			rec.Outcomes[name] = o
			if !o.Cancelled {
				answered = append(answered, c.t.idx)
			}
		}
		// What exploration added: the tier the policy would not have run.
		if ok && x.explored && o.CostUSD != nil && c.t.idx != x.choice.Tier {
			x.h.m.exploreCost.WithLabelValues(string(c.t.name)).Add(*o.CostUSD)
		}
	}
	if rec.Decision.TierPropensity != nil {
		rec.Decision.Ran = x.ran(answered)
	}
	if x.explored {
		x.h.m.explored.Inc()
	}
	x.h.rec.enqueue(&rec)
	x.queued = true
}

// tierFields sets a routed N-tier request's tier the policy chose and
// each tier's probability of being sent the request (TierPropensities:
// exploration races only a lone tier). Ran is set once the calls ended
// (ran).
func (x *exchange) tierFields(d *datasets.Decision) {
	eps := 0.0
	if x.h.explore != nil {
		eps = x.h.eps
	}
	TierPropensities(d, x.recordNames(), x.choice.Tier, x.choice.Race, eps)
}

// ran is an N-tier record's Ran: the tiers (by index) whose answers were
// produced, cheapest first, by their record names, which key their
// outcomes. Not the plan: a tier that failed (5xx, timeout, a broken
// stream, a 4xx) produced nothing to score, a race's loser cancelled
// neither, and the tier the proxy fell back to did. Nil when none
// answered.
func (x *exchange) ran(answered []int) []string {
	if len(answered) == 0 {
		return nil
	}
	slices.Sort(answered)
	names := x.recordNames()
	out := make([]string, 0, len(answered))
	for _, k := range slices.Compact(answered) {
		out = append(out, names[k])
	}
	return out
}

// recordNames is every tier's recordName, cheapest first.
func (x *exchange) recordNames() []string {
	names := make([]string, len(x.h.tiers))
	for i, t := range x.h.tiers {
		names[i] = x.recordName(t)
	}
	return names
}

// recordName is the model name t's outcomes are recorded under: its
// record_as, else the artifact's name for the tier at its index, else
// its upstream model.
func (x *exchange) recordName(t *tier) string {
	if t.recordAs != "" {
		return t.recordAs
	}
	if t.idx < len(x.info.Tiers) && x.info.Tiers[t.idx] != "" {
		return x.info.Tiers[t.idx]
	}
	return t.model
}

// plausibleUsage reports whether an upstream's usage, and the cost it
// comes to, are ones a log can hold: counts from 0 to a billion tokens,
// a finite cost up to datasets.MaxCostUSD.
func plausibleUsage(u *usage, cost float64) bool {
	const maxTokens = 1_000_000_000
	return u.PromptTokens >= 0 && u.PromptTokens <= maxTokens && u.CompletionTokens >= 0 && u.CompletionTokens <= maxTokens &&
		cost >= 0 && cost <= datasets.MaxCostUSD
}

// outcome is what c did, for the store and the metrics: a completed call
// with its usage, cost and answer; a cancelled or timed-out call with the
// time it ran and a pro-rata cost. Failed calls are counted, not recorded.
func (x *exchange) outcome(c *call) (string, datasets.Outcome, bool) {
	t := c.t
	var o datasets.Outcome
	ran := func(end time.Time) float64 { return float64(end.Sub(c.start).Microseconds()) / 1000 }
	cancelledAt := func(end time.Time, result string) {
		ms := ran(end)
		o.LatencyMS = datasets.Float(ms)
		o.Cancelled = true
		if cost, ok := t.proRata(ms, x.req.textBytes); ok {
			o.CostUSD = datasets.Float(cost)
			t.m.cost.Add(cost)
		}
		t.m.observe(result, ms)
	}
	if ci, ok := x.cancelled[c]; ok {
		cancelledAt(ci.at, "cancelled")
		return x.recordName(t), o, true
	}
	<-c.done
	switch {
	case c.ok() && c.failedEnd:
		t.m.observe("error", ran(c.end))
	case c.ok():
		ms := ran(c.end)
		o.LatencyMS = datasets.Float(ms)
		t.m.observe("ok", ms)
		if c.usage != nil && !plausibleUsage(c.usage, t.cost(c.usage)) {
			// A log reader refuses negative counts and costs past any real
			// call's: recorded, this one would stop every retrain on the
			// export, and skew the tier's pro-rata estimates.
			x.h.log.Warn("upstream reported usage that cannot be right; not recorded",
				"tier", t.name, "prompt_tokens", c.usage.PromptTokens, "completion_tokens", c.usage.CompletionTokens)
		} else if c.usage != nil {
			in, out := c.usage.PromptTokens, c.usage.CompletionTokens
			cost := t.cost(c.usage)
			o.InputTokens, o.OutputTokens, o.CostUSD = &in, &out, datasets.Float(cost)
			t.m.tokensIn.Add(float64(in))
			t.m.tokensOut.Add(float64(out))
			t.m.cost.Add(cost)
			t.observe(ms, c.usage, x.req.textBytes)
		}
		if raw, ok := c.confidence(); ok {
			o.Confidence = datasets.Float(raw)
		}
		if x.h.cfg.RecordResponses {
			o.Response = c.text.String()
		}
		return x.recordName(t), o, true
	case errors.Is(c.err, errTimeout):
		cancelledAt(c.end, "timeout")
		t.m.cancelled("timeout").Inc()
		return x.recordName(t), o, true
	case c.clientError():
		t.m.observe("client_error", ran(c.end))
	default:
		t.m.observe("error", ran(c.end))
	}
	return "", o, false
}

package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/triage-router/triage/internal/echo"
	"github.com/triage-router/triage/internal/reqid"
	"github.com/triage-router/triage/internal/writestall"
)

// StoredResponsePaths are the routes ServeStoredResponse answers, as
// gin patterns: a stored Responses API response
// retrieved (with ?stream=true, a background response's events),
// deleted, cancelled (background mode) and its input items listed.
var StoredResponsePaths = []struct{ Method, Path string }{
	{http.MethodGet, "/v1/responses/:id"},
	{http.MethodDelete, "/v1/responses/:id"},
	{http.MethodPost, "/v1/responses/:id/cancel"},
	{http.MethodGet, "/v1/responses/:id/input_items"},
}

// ServeStoredResponse passes a request about a stored Responses API
// response (StoredResponsePaths) to the tier that stored it, as sent but
// for the tier's key and headers; the upstream's status, headers (as for
// an answer) and body come back, a stream relayed as it arrives. An id
// the proxy did not relay within response_ttl is a 404: it cannot know
// which tier has it.
func (h *Handler) ServeStoredResponse(w http.ResponseWriter, r *http.Request) {
	// A background response's event stream lasts as long as its
	// generation, past any fixed write deadline the server sets for its
	// other routes (limits.write_timeout); each write to the client is
	// bounded instead, as for an answer (serveAPI).
	sw := writestall.New(w, h.cfg.WriteStall)
	defer sw.Arm()
	// Not recorded, so no X-Triage-Request-Id; but the id its log lines
	// carry is the client's X-Request-Id when the upstream sends none
	// (the proxy's own 404 and 502 among them), as for an answer, so an
	// app's error log holds an id to find the server's lines by.
	id := reqid.New(h.now())
	status, broken := h.storedResponse(sw, r, id)
	h.m.request(decisionPassthrough, status)
	reportStatus(r.Context(), status)
	if broken {
		// Counted: now cut the client's connection without ending the
		// chunked body, so its SDK raises rather than take part of the
		// stream for the whole.
		panic(http.ErrAbortHandler)
	}
}

// storedResponse answers and returns the status to count; broken is a
// stream the upstream broke after the client got part of it.
func (h *Handler) storedResponse(w http.ResponseWriter, r *http.Request, reqID string) (status int, broken bool) {
	hd := w.Header()
	hd.Set(HeaderDecision, decisionPassthrough)
	hd.Set(HeaderModel, "none")
	hd.Set("X-Request-Id", reqID)
	// The id is one segment of the path as sent: an id holding "/" (a
	// LiteLLM proxy's, base64 in the standard alphabet) comes
	// percent-encoded, and the decoded path would split it.
	rest, _ := strings.CutPrefix(r.URL.EscapedPath(), "/v1/responses/")
	rawID, sub, _ := strings.Cut(rest, "/")
	id, err := url.PathUnescape(rawID)
	if err != nil {
		id = rawID
	}
	var t *tier
	if err == nil && id != "" && (sub == "" || sub == "cancel" || sub == "input_items") {
		// Another client's response is the same 404 as an unknown id,
		// after the same work: saying more, or sooner, would tell it
		// the id exists.
		t = h.responses.lookupFor(id, ClientName(r.Context()))
	}
	if t == nil {
		// OpenAI's words, with the id's start only: the id is the
		// client's, of any length up to the request line's limit.
		return writeError(w, &apiError{status: http.StatusNotFound, code: "not_found",
			msg: fmt.Sprintf("No response found with id '%s'. This proxy did not relay it in the last %v, so it cannot tell which tier stored it; ask that tier, or send requests about it with the tier's name as model", echo.Bare(id), h.cfg.ResponseTTL)}), false
	}
	body, err := readBody(r, h.cfg.MaxBodyBytes)
	if err != nil {
		return writeError(w, err.(*apiError)), false
	}
	// The tier's timeout bounds the wait for the answer and, in a
	// stream, each gap between its chunks.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	var timedOut atomic.Bool
	timer := time.AfterFunc(t.timeout, func() { timedOut.Store(true); cancel() })
	defer timer.Stop()
	// Escaped again, "/" as %2F, so the tier gets the one segment too.
	u := t.base + "/responses/" + url.PathEscape(id)
	if sub != "" {
		u += "/" + sub
	}
	if r.URL.RawQuery != "" {
		u += "?" + r.URL.RawQuery
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, u, bytes.NewReader(body))
	if err != nil {
		return writeError(w, &apiError{status: http.StatusInternalServerError, code: "internal_error", msg: "internal error; see the server log"}), false
	}
	if len(body) > 0 {
		req.Header["Content-Type"] = hdrJSON
	}
	if a := r.Header.Get("Accept"); a != "" {
		req.Header.Set("Accept", a)
	}
	t.setHeaders(req.Header)
	start := time.Now()
	ms := func() float64 { return float64(time.Since(start).Microseconds()) / 1000 }
	resp, err := t.rt.RoundTrip(req)
	if err != nil {
		if r.Context().Err() != nil {
			return statusClientGone, false
		}
		if timedOut.Load() {
			err = errTimeout
		}
		h.log.Warn("proxy: stored response call failed", "request_id", reqID, "tier", t.name, "response_id", id, "err", cleanErr(err))
		passFailed(t, timedOut.Load(), ms())
		return writeError(w, &apiError{status: http.StatusBadGateway, code: codeUpstream,
			msg: "the upstream failed: " + passFailure(t, cleanErr(err))}), false
	}
	defer resp.Body.Close()
	if resp.Header.Get("X-Request-Id") != "" {
		// The upstream's id, which its operator can look up, as on an
		// answer (copyHeaders).
		hd.Del("X-Request-Id")
	}
	copyHeaders(hd, resp.Header)
	hd.Set(HeaderModel, t.model)
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		hd.Set("Content-Type", ct)
	}
	if resp.StatusCode == http.StatusOK && strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return h.relayStored(r.Context(), w, resp.Body, t, timer, &timedOut, ms, reqID)
	}
	out, err := readLimited(resp.Body, resp.ContentLength, h.cfg.MaxResponseBytes)
	if err != nil {
		if r.Context().Err() != nil {
			return statusClientGone, false
		}
		if timedOut.Load() {
			err = errTimeout
		}
		// Logged as a failed call is: the client's 502 says what, the
		// log says where (and with the request id, which call).
		h.log.Warn("proxy: stored response call failed", "request_id", reqID, "tier", t.name, "response_id", id, "status", resp.StatusCode, "err", err)
		passFailed(t, timedOut.Load(), ms())
		hd.Set(HeaderModel, "none")
		return writeError(w, &apiError{status: http.StatusBadGateway, code: codeUpstream,
			msg: "the upstream failed: " + passFailure(t, err)}), false
	}
	t.m.observe(resultOf(resp.StatusCode), ms())
	hd.Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(resp.StatusCode)
	w.Write(out)
	return resp.StatusCode, false
}

// relayStored copies a stream about a stored response (a background
// response's events) to the client as it arrives, flushing each read.
// broken is an upstream that broke it or stalled past the tier's
// timeout: the client's connection is then aborted, as for a broken
// answer stream.
func (h *Handler) relayStored(client context.Context, w http.ResponseWriter, body io.Reader, t *tier, timer *time.Timer, timedOut *atomic.Bool, ms func() float64, reqID string) (status int, broken bool) {
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	buf := make([]byte, 16<<10)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			timer.Reset(t.timeout)
			if _, werr := w.Write(buf[:n]); werr != nil {
				return statusClientGone, false
			}
			if rc.Flush() != nil {
				return statusClientGone, false
			}
		}
		switch {
		case err == io.EOF:
			t.m.observe("ok", ms())
			return http.StatusOK, false
		case err != nil && client.Err() != nil:
			return statusClientGone, false
		case err != nil:
			passFailed(t, timedOut.Load(), ms())
			h.log.Warn("proxy: upstream broke a stored response's stream after the client got part of it; aborting the client's stream",
				"request_id", reqID, "tier", t.name, "err", cleanErr(err))
			return http.StatusBadGateway, true
		}
	}
}

// passFailed counts a failed passthrough call (a stored response's
// routes, embeddings) as an answer's call is counted: one the tier's timeout cut is a timeout
// (result "timeout" and a cancel with reason "timeout"), which alerts on
// a tier's timeouts watch, not an error.
func passFailed(t *tier, timedOut bool, ms float64) {
	if timedOut {
		t.m.observe("timeout", ms)
		t.m.cancelled("timeout").Inc()
		return
	}
	t.m.observe("error", ms)
}

// passFailure says why a passthrough call failed, as call.describe does
// for an answer's: a timeout names the tier's
// timeout, which the client (or its operator) may need to raise.
func passFailure(t *tier, err error) string {
	if errors.Is(err, errTimeout) {
		return fmt.Sprintf("%s tier (%s) timed out after %v", t.name, t.model, t.timeout)
	}
	return fmt.Sprintf("%s tier (%s): %s", t.name, t.model, errText(err))
}

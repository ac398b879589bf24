package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/triage-router/triage/internal/reqid"
)

// Embeddings configures POST /v1/embeddings, which is passed to one tier
// as it is: there is nothing to route (an embedding has no answer to
// judge) and nothing to record.
type Embeddings struct {
	// Tier is a tier's name ("fast" or "strong" in the two-tier form):
	// its base URL and API key serve the embeddings. Empty turns /v1/embeddings off (404).
	Tier string `yaml:"tier" json:"tier"`
	// Model is sent as "model" (the tier's embedding model, e.g.
	// text-embedding-3-small); empty passes the client's.
	Model string `yaml:"model" json:"model"`
}

// decisionPassthrough labels requests passed to a tier without routing
// in triage_proxy_requests_total.
const decisionPassthrough = "passthrough"

// ServeEmbeddings answers POST /v1/embeddings from the configured tier:
// the client's body with the configured model, the upstream's status,
// headers (as for chat completions) and body.
func (h *Handler) ServeEmbeddings(w http.ResponseWriter, r *http.Request) {
	status := h.embeddings(w, r)
	h.m.request(decisionPassthrough, status)
	reportStatus(r.Context(), status)
}

func (h *Handler) embeddings(w http.ResponseWriter, r *http.Request) int {
	t := h.tierNamed(h.cfg.Embeddings.Tier)
	hd := w.Header()
	hd.Set(HeaderDecision, decisionPassthrough)
	hd.Set(HeaderModel, "none")
	// Not recorded, so no X-Triage-Request-Id; but a response without
	// the upstream's id (the proxy's own errors) carries the one its
	// log lines name, as an answer does.
	reqID := reqid.New(h.now())
	hd.Set("X-Request-Id", reqID)
	if t == nil {
		return writeError(w, &apiError{status: http.StatusNotFound, code: "not_found",
			msg: fmt.Sprintf("embeddings are off: add embeddings: {tier: %s, model: ...} (any tier's name) to the config (docs/proxy.md)", h.tiers[0].name)})
	}
	body, err := readBody(r, h.cfg.MaxBodyBytes)
	if err == nil && h.cfg.Embeddings.Model != "" {
		body, err = withModel(body, h.cfg.Embeddings.Model)
	}
	if err != nil {
		e, ok := err.(*apiError)
		if !ok {
			e = &apiError{status: http.StatusBadRequest, code: codeInvalidJSON, msg: "request body is not a JSON object; send an OpenAI embeddings request"}
		}
		return writeError(w, e)
	}
	ctx, cancel := context.WithTimeout(r.Context(), t.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.base+"/embeddings", bytes.NewReader(body))
	if err != nil {
		return writeError(w, &apiError{status: http.StatusInternalServerError, code: "internal_error", msg: "internal error; see the server log"})
	}
	req.Header["Content-Type"] = hdrJSON
	t.setHeaders(req.Header)
	start := time.Now()
	resp, err := t.rt.RoundTrip(req)
	var out []byte
	if err == nil {
		out, err = readLimited(resp.Body, resp.ContentLength, h.cfg.MaxResponseBytes)
		resp.Body.Close()
	}
	if err != nil {
		if r.Context().Err() != nil {
			return statusClientGone
		}
		if ctx.Err() != nil {
			err = errTimeout
		}
		h.log.Warn("proxy: embeddings call failed", "request_id", reqID, "tier", t.name, "err", err)
		passFailed(t, errors.Is(err, errTimeout), float64(time.Since(start).Microseconds())/1000)
		return writeError(w, &apiError{status: http.StatusBadGateway, code: codeUpstream,
			msg: "the upstream failed: " + passFailure(t, err)})
	}
	t.m.observe(resultOf(resp.StatusCode), float64(time.Since(start).Microseconds())/1000)
	if resp.Header.Get("X-Request-Id") != "" {
		hd.Del("X-Request-Id")
	}
	copyHeaders(hd, resp.Header)
	hd.Set(HeaderModel, t.model)
	if h.cfg.Embeddings.Model != "" {
		hd.Set(HeaderModel, h.cfg.Embeddings.Model)
	}
	hd.Set("Content-Type", resp.Header.Get("Content-Type"))
	hd.Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(resp.StatusCode)
	w.Write(out)
	return resp.StatusCode
}

// resultOf is the result label of an upstream status.
func resultOf(status int) string {
	switch {
	case status < 300:
		return "ok"
	case status < 500:
		return "client_error"
	}
	return "error"
}

// withModel is a JSON object with its "model" member set to model (added
// if absent), every other member as sent.
func withModel(body []byte, model string) ([]byte, error) {
	if !validJSON(body) {
		return nil, fmt.Errorf("request body is not JSON")
	}
	fields, ok := members(nil, body, 0)
	if !ok {
		return nil, fmt.Errorf("request body is not a JSON object")
	}
	m, _ := json.Marshal(model)
	out := append(make([]byte, 0, len(body)+len(m)+10), '{')
	for i := range fields {
		if fields[i].is("model") || shadowed(fields, i) {
			continue
		}
		out = append(append(out, body[fields[i].start:fields[i].end]...), ',')
	}
	out = append(append(append(out, `"model":`...), m...), '}')
	return out, nil
}

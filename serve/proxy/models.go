package proxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/triage-router/triage/internal/echo"
)

// modelObject is an entry of OpenAI's GET /v1/models list. Clients and
// tools that list models before they chat (SDK helpers, chat front ends)
// see the names this proxy answers to.
type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
	// Upstream is the tier's model at its base URL; empty for "triage",
	// which routes. Not in OpenAI's schema; clients ignore unknown fields.
	Upstream string `json:"upstream,omitempty"`
	// AliasOf is what an alias from the config stands for: "triage" or
	// a tier's name.
	AliasOf string `json:"alias_of,omitempty"`
}

// models lists "triage", the tiers and the aliases (but "*"),
// created at the router artifact's creation time (0 when it has none).
func (h *Handler) models() []modelObject {
	info := h.router().Model()
	created := int64(0)
	if !info.CreatedAt.IsZero() {
		created = info.CreatedAt.Unix()
	}
	upstream := func(target string) string {
		if t := h.tierNamed(target); t != nil {
			return t.model
		}
		return ""
	}
	list := make([]modelObject, 0, 1+len(h.tiers)+len(h.cfg.Aliases))
	for _, name := range h.cfg.served() {
		target, _ := h.cfg.resolve(name)
		m := modelObject{ID: name, Object: "model", Created: created, OwnedBy: "triage", Upstream: upstream(target)}
		if name != target {
			m.AliasOf = target
		}
		list = append(list, m)
	}
	return list
}

// ServeModels answers GET /v1/models with the list, and GET
// /v1/models/{id} with one entry or a 404 that names the ones there are.
func (h *Handler) ServeModels(w http.ResponseWriter, r *http.Request) {
	list := h.models()
	id, one := strings.CutPrefix(strings.TrimSuffix(r.URL.Path, "/"), "/v1/models/")
	var v any = struct {
		Object string        `json:"object"`
		Data   []modelObject `json:"data"`
	}{"list", list}
	if one {
		v = nil
		for _, m := range list {
			if m.ID == id {
				v = m
			}
		}
		if target, ok := h.cfg.resolve(id); v == nil && ok && id != "" {
			// A name only the "*" alias maps: a chat with it is served,
			// so a client that looks the model up before it chats (as
			// some front ends and agent frameworks do) must find it.
			m := modelObject{ID: id, Object: "model", OwnedBy: "triage", AliasOf: target}
			for _, l := range list {
				if l.ID == target {
					m.Created, m.Upstream = l.Created, l.Upstream
				}
			}
			v = m
		}
		if v == nil {
			writeError(w, &apiError{status: http.StatusNotFound, code: codeUnknownModel, param: "model",
				msg: fmt.Sprintf("model %s is not served here; there are %s", echo.Quote(id), quoteList(h.cfg.served()))})
			return
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, &apiError{status: http.StatusInternalServerError, code: "internal_error", msg: "internal error"})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

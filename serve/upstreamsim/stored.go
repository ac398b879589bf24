package upstreamsim

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"sync"

	"github.com/triage-router/triage/internal/echo"
)

// storedCap bounds the responses the sim keeps: enough for any test or
// demo, and a long load run does not grow it without end.
const storedCap = 10_000

// storedResponses are the Responses API responses the server stored, as
// an upstream keeps them (store defaults to true): a request that
// continues one it did not store (previous_response_id) is its 404, as
// separate servers answer, and GET /v1/responses/{id} returns one. The
// oldest go first past storedCap.
type storedResponses struct {
	mu   sync.Mutex
	byID map[string][]byte
	ring []string
	next int
}

// keep stores (or updates) response id's object.
func (st *storedResponses) keep(id string, obj *respObject) {
	b, err := json.Marshal(obj)
	if err != nil {
		panic("upstreamsim: marshal response: " + err.Error())
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.byID == nil {
		st.byID = map[string][]byte{}
	}
	if _, ok := st.byID[id]; !ok {
		if len(st.ring) < storedCap {
			st.ring = append(st.ring, id)
		} else {
			delete(st.byID, st.ring[st.next])
			st.ring[st.next] = id
			st.next = (st.next + 1) % storedCap
		}
	}
	st.byID[id] = b
}

func (st *storedResponses) get(id string) ([]byte, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	b, ok := st.byID[id]
	return b, ok
}

// forget deletes id; the ring keeps its slot until it comes round.
func (st *storedResponses) forget(id string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	_, ok := st.byID[id]
	delete(st.byID, id)
	return ok
}

// idTag tells one model's response ids from another's: two sims both
// numbering from 1 would otherwise give the same ids, which real
// upstreams never do.
func idTag(model string) string {
	h := fnv.New32a()
	h.Write([]byte(model))
	return fmt.Sprintf("%08x", h.Sum32())
}

// handleStored answers GET and DELETE /v1/responses/{id} for the
// responses the server stored.
func (s *Server) handleStored(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	b, ok := s.stored.get(id)
	if !ok {
		apiError(w, http.StatusNotFound, "invalid_request_error", "not_found", fmt.Sprintf("Response with id '%s' not found.", echo.Bare(id)))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if r.Method == http.MethodDelete {
		s.stored.forget(id)
		b, _ = json.Marshal(map[string]any{"id": id, "object": "response", "deleted": true})
	}
	w.Write(b)
}

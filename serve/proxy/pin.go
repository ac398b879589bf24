package proxy

import (
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/triage-router/triage/datasets"
)

// ResponseStore is where the proxy reads which tier stored a Responses
// API response beyond the process: a conversation outlives it, and a
// deploy restarts it. StoreRecorder writes the entries there, with their
// requests' records. datasets.BoltStore implements it.
type ResponseStore interface {
	// LookupResponse is the entry of a response id not expired by now.
	LookupResponse(id string, now time.Time) (datasets.StoredResponse, bool, error)
}

var _ ResponseStore = (*datasets.BoltStore)(nil)

// responseTiers remembers which tier served each stored Responses API
// response the proxy relayed, so a follow-up that continues it
// (previous_response_id) and a retrieval (GET /v1/responses/{id}) go to
// that tier: where the tiers are different servers, no other has it.
// The newest entries are in memory, at most max (the oldest go first);
// with a store, every entry is also written there through the recording
// queue (Recording.Response), and a miss in memory is looked up in it.
// It is safe for concurrent use.
type responseTiers struct {
	store ResponseStore
	ttl   time.Duration
	now   func() time.Time
	log   *slog.Logger
	// tierNamed finds a stored entry's tier by its config name; a name
	// the config no longer has is an unknown id.
	tierNamed func(string) *tier

	mu   sync.Mutex
	byID map[string]pinned
	// ring holds the ids in memory in the order they came, to evict the
	// oldest once there are max; next is where the next one goes.
	ring []string
	next int
	max  int
}

type pinned struct {
	tier *tier
	// owner is the client key the response was made with
	// (WithClientName); no other client may use it.
	owner   string
	expires time.Time
}

func newResponseTiers(store ResponseStore, ttl time.Duration, max int, now func() time.Time, log *slog.Logger, tierNamed func(string) *tier) *responseTiers {
	return &responseTiers{store: store, ttl: ttl, now: now, log: log, tierNamed: tierNamed,
		byID: map[string]pinned{}, max: max}
}

// remember notes that t served the response id to the client key
// owner, and returns when the entry expires.
func (p *responseTiers) remember(id string, t *tier, owner string) time.Time {
	exp := p.now().Add(p.ttl)
	p.mu.Lock()
	p.put(id, pinned{tier: t, owner: owner, expires: exp})
	p.mu.Unlock()
	return exp
}

// put adds or renews an entry in memory; p.mu is held.
func (p *responseTiers) put(id string, e pinned) {
	if _, ok := p.byID[id]; !ok {
		if len(p.ring) < p.max {
			p.ring = append(p.ring, id)
		} else {
			delete(p.byID, p.ring[p.next])
			p.ring[p.next] = id
			p.next = (p.next + 1) % p.max
		}
	}
	p.byID[id] = e
}

// keyable reports whether a response id (or tier name) can be a feedback
// db key: at most datasets.MaxIDBytes of UTF-8 without control
// characters, as the store checks. The store refuses a batch that holds
// one that cannot. Real ids (resp_ and 48 hex digits at OpenAI) always
// can.
func keyable(id string) bool {
	if len(id) > datasets.MaxIDBytes || !utf8.ValidString(id) {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x20 || id[i] == 0x7f {
			return false
		}
	}
	return true
}

// lookup is the tier that served the response id and the client key it
// was made with, or nil when no entry that has not expired says so (the
// tiers may then share storage, as two models of one OpenAI project do:
// the request routes as any other). The caller refuses a client other
// than the owner.
func (p *responseTiers) lookup(id string) (*tier, string) {
	t, owner, _ := p.find(id)
	return t, owner
}

// lookupFor is the tier that served the response id to the client key
// client, or nil: for an id it does not know, and for another key's.
// Both cost the same: where memory answers for another key's id (or
// an expired one), the store is read as it is for an id memory does
// not hold. Answered from memory alone, another key's id was refused a
// few microseconds sooner than an unknown one (BenchmarkStoredResponseNotFound
// in serve), which told a client that the id exists.
func (p *responseTiers) lookupFor(id, client string) *tier {
	t, owner, inMemory := p.find(id)
	if t != nil && owner == client {
		return t
	}
	if inMemory && p.store != nil && keyable(id) {
		// Only for its cost; the entry, if any, is memory's.
		p.store.LookupResponse(id, p.now())
	}
	return nil
}

// find is lookup, and whether memory answered it without the store.
func (p *responseTiers) find(id string) (t *tier, owner string, inMemory bool) {
	now := p.now()
	p.mu.Lock()
	e, ok := p.byID[id]
	p.mu.Unlock()
	if ok {
		if now.Before(e.expires) {
			return e.tier, e.owner, true
		}
		return nil, "", true
	}
	if p.store == nil || !keyable(id) {
		// An id the db cannot hold is in memory or nowhere. Not read
		// for, it never reaches the lookup's error and log line whole.
		return nil, "", false
	}
	// A short read of one key, on the request path only for requests
	// that continue a response this process has not seen (or forgot).
	sr, found, err := p.store.LookupResponse(id, now)
	if err != nil {
		// The request still gets an answer, routed as an unknown id.
		p.log.Error("proxy: look up which tier stored a response", "response_id", id, "err", err)
		return nil, "", false
	}
	if !found {
		return nil, "", false
	}
	t = p.tierNamed(sr.Tier)
	if t == nil {
		return nil, "", false
	}
	p.mu.Lock()
	p.put(id, pinned{tier: t, owner: sr.Owner, expires: sr.Expires})
	p.mu.Unlock()
	return t, sr.Owner, false
}

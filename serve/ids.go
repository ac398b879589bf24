package serve

import (
	"hash/maphash"
	"sync"

	"github.com/triage-router/triage/datasets"
)

// One id, one prompt. A client may choose a request's id (a conversation
// id, say); feedback for that id then labels the prompt stored under it.
// Routing the same id with another prompt used to replace the stored
// prompt and keep the feedback, moving one prompt's labels onto another
// (issue 13). Now the first prompt routed under an id keeps it: the same
// prompt again is answered and not logged twice, another prompt is 409.
//
// The store knows ids once their records are committed. A routed request
// waits in the decision-log queue before that, so its id is claimed here
// until the queue has written it (or dropped it): claim checks the claims
// and then the store under one lock per shard, and a claim is released
// only after the store has the record, so a check always sees one of the
// two.
type idClaims struct {
	index  RequestIndex
	seed   maphash.Seed
	shards [64]claimShard
}

type claimShard struct {
	mu sync.Mutex
	m  map[string]datasets.Fingerprint
}

func newIDClaims(index RequestIndex) *idClaims {
	c := &idClaims{index: index, seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].m = map[string]datasets.Fingerprint{}
	}
	return c
}

func (c *idClaims) shard(id string) *claimShard {
	return &c.shards[maphash.String(c.seed, id)%uint64(len(c.shards))]
}

// claim reserves id for the prompt fp. It returns first true when the id
// is new, or holds this prompt in a record feedback created and no route
// has decided yet (the caller logs the request, whose decision the record
// then takes, and calls release once the log has it); false when the id
// already holds this prompt with a decision (nothing to log); and an
// id_conflict error when it holds another prompt.
func (c *idClaims) claim(at, id string, fp datasets.Fingerprint) (first bool, err error) {
	sh := c.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	have, ok := sh.m[id]
	undecided := false
	if !ok {
		var found, decided bool
		have, found, decided, err = c.index.RequestFingerprint(id)
		if err != nil {
			return false, err
		}
		if !found {
			sh.m[id] = fp
			return true, nil
		}
		undecided = !decided
	}
	if have != fp {
		return false, Errorf(CodeIDConflict, "%sid %q was routed before with another prompt, and one id holds one prompt (its feedback labels that prompt); give this prompt a new id, e.g. %q", at, id, id+"/2")
	}
	if undecided {
		// Feedback came first: without its decision (and propensity) the
		// record could not train the next router as a routed one.
		sh.m[id] = fp
		return true, nil
	}
	return false, nil
}

// holdsOther reports whether id is claimed by, or stored with, a prompt
// other than fp's. Feedback that carries a prompt asks this: its score
// would otherwise label the prompt the id holds.
func (c *idClaims) holdsOther(id string, fp datasets.Fingerprint) (bool, error) {
	sh := c.shard(id)
	sh.mu.Lock()
	have, ok := sh.m[id]
	sh.mu.Unlock()
	if !ok {
		var err error
		if have, ok, _, err = c.index.RequestFingerprint(id); err != nil {
			return false, err
		}
	}
	return ok && have != fp, nil
}

// release ends the claim on id once the decision log has written (or
// dropped) its record.
func (c *idClaims) release(id string) {
	sh := c.shard(id)
	sh.mu.Lock()
	delete(sh.m, id)
	sh.mu.Unlock()
}

// fingerprint is the prompt's fingerprint as the store computes it.
func (r *routeRequest) fingerprint() datasets.Fingerprint {
	return datasets.PromptFingerprint(r.Prompt, toDatasetMessages(r.Messages))
}

package datasets

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// StoredResponse says which proxy tier stored a Responses API response:
// a follow-up that names it (previous_response_id) must go to the same
// tier, the only one that can continue it.
type StoredResponse struct {
	// ID is the response's id as the upstream gave it (resp_...).
	ID string
	// Tier is the proxy tier's config name.
	Tier string
	// Expires is when the entry is forgotten.
	Expires time.Time
}

// pruneResponsesPerCommit bounds the expired entries one commit of
// AppendDecisions removes, so a commit after a long pause (a restart a
// month later) does not hold the writer for a whole month's entries at
// once; later commits take the rest.
const pruneResponsesPerCommit = 4096

// responseBuckets are the two buckets of the stored responses in one
// write transaction.
type responseBuckets struct {
	byID, byExp *bolt.Bucket
}

// put keeps e (an id given again takes the later entry).
func (b responseBuckets) put(e *StoredResponse) error {
	if err := checkKey("response id", e.ID); err != nil {
		return err
	}
	if err := checkKey("response tier", e.Tier); err != nil {
		return err
	}
	seq, err := b.byExp.NextSequence()
	if err != nil {
		return err
	}
	if err := b.byExp.Put(appendLogKey(nil, e.Expires, seq), []byte(e.ID)); err != nil {
		return err
	}
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(e.Tier)), uint64(max(e.Expires.UnixNano(), 0)))
	return b.byID.Put([]byte(e.ID), append(v, e.Tier...))
}

// prune removes the expiry index's entries that expired before now, and
// their ids unless a later put renewed them.
func (b responseBuckets) prune(now time.Time) error {
	byID, byExp := b.byID, b.byExp
	cut := uint64(max(now.UnixNano(), 0))
	var keys [][]byte
	c := byExp.Cursor()
	for k, id := c.First(); k != nil && len(keys) < pruneResponsesPerCommit; k, id = c.Next() {
		if len(k) != 16 || binary.BigEndian.Uint64(k) >= cut {
			break
		}
		keys = append(keys, k)
		if v := byID.Get(id); len(v) >= 8 && binary.BigEndian.Uint64(v) < cut {
			// Deleting under the expiry cursor is safe: it is another
			// bucket's.
			if err := byID.Delete(id); err != nil {
				return err
			}
		}
	}
	// Collected first: deleting under a cursor skips entries.
	for _, k := range keys {
		if err := byExp.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// LookupResponse returns the entry kept for a response id, if there is
// one that has not expired by now.
func (s *BoltStore) LookupResponse(id string, now time.Time) (StoredResponse, bool, error) {
	var out StoredResponse
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketResponses).Get([]byte(id))
		if len(v) < 8 {
			return nil
		}
		exp := time.Unix(0, int64(binary.BigEndian.Uint64(v)))
		if !exp.After(now) {
			return nil
		}
		// Copied out: v is only valid in the transaction.
		out, found = StoredResponse{ID: id, Tier: string(v[8:]), Expires: exp}, true
		return nil
	})
	if err != nil {
		return StoredResponse{}, false, fmt.Errorf("look up response %q: %w", id, err)
	}
	return out, found, nil
}

package datasets

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
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
	// Owner is the name of the client key the request that stored it
	// was made with, "" for none: the proxy calls every tier with its
	// own key, so only it can keep one client from reading or
	// continuing another's responses.
	Owner string
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

// responseHead is the part of an entry's value before its tier: the
// expiry and the log key of its record.
const responseHead = 8 + 16

// checkResponse says whether e can be kept: its id and tier are keys,
// and so is its owner if it has one.
func checkResponse(e *StoredResponse) error {
	if err := checkKey("response id", e.ID); err != nil {
		return err
	}
	if err := checkKey("response tier", e.Tier); err != nil {
		return err
	}
	if e.Owner != "" {
		return checkKey("response owner", e.Owner)
	}
	return nil
}

// responseTail splits what follows an entry's head: the tier, then,
// after a 0x00 (which no key holds), the owner. A value without the
// 0x00 (an entry without an owner, or written before owners were) has
// owner "".
func responseTail(v []byte) (tier, owner []byte) {
	tail := v[responseHead:]
	if i := bytes.IndexByte(tail, 0); i >= 0 {
		return tail[:i], tail[i+1:] // not nil, even when empty
	}
	return tail, nil
}

// readableResponse reports whether k and v are an entry of the responses
// bucket as put writes one.
func readableResponse(k, v []byte) bool {
	if len(v) <= responseHead || checkKey("response id", string(k)) != nil {
		return false
	}
	tier, owner := responseTail(v)
	if checkKey("response tier", string(tier)) != nil {
		return false
	}
	// An owner is a key: a 0x00 followed by nothing is not how put
	// writes an entry.
	return owner == nil || checkKey("response owner", string(owner)) == nil
}

// expiryKey is e's key in the expiry index.
func expiryKey(exp uint64, id []byte) []byte {
	return append(binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(id)), exp), id...)
}

// put keeps e, given by the answer to the request whose record is at
// logKey; an id given again takes the later entry.
func (b responseBuckets) put(e *StoredResponse, logKey []byte) error {
	id := []byte(e.ID)
	if err := b.remove(id, nil); err != nil {
		return err
	}
	exp := uint64(max(e.Expires.UnixNano(), 0))
	if err := b.byExp.Put(expiryKey(exp, id), []byte{}); err != nil {
		return err
	}
	v := binary.BigEndian.AppendUint64(make([]byte, 0, responseHead+len(e.Tier)+1+len(e.Owner)), exp)
	v = append(append(v, logKey[:16]...), e.Tier...)
	if e.Owner != "" {
		v = append(append(v, 0), e.Owner...)
	}
	return b.byID.Put(id, v)
}

// remove deletes the entry of id and its expiry index key, if it has one
// and, when logKey is set, it was given by that record (a later record
// may have been given the id again).
func (b responseBuckets) remove(id, logKey []byte) error {
	v := b.byID.Get(id)
	if len(v) < responseHead || logKey != nil && !bytes.Equal(v[8:responseHead], logKey) {
		return nil
	}
	if err := b.byExp.Delete(expiryKey(binary.BigEndian.Uint64(v), id)); err != nil {
		return err
	}
	return b.byID.Delete(id)
}

// prune removes the entries that expired before now, oldest first.
func (b responseBuckets) prune(now time.Time) error {
	cut := uint64(max(now.UnixNano(), 0))
	var keys [][]byte
	c := b.byExp.Cursor()
	for k, _ := c.First(); k != nil && len(keys) < pruneResponsesPerCommit; k, _ = c.Next() {
		if len(k) <= 8 || binary.BigEndian.Uint64(k) >= cut {
			break
		}
		keys = append(keys, k)
	}
	// Collected first: deleting under a cursor skips entries.
	for _, k := range keys {
		id := k[8:]
		if v := b.byID.Get(id); len(v) >= 8 && binary.BigEndian.Uint64(v) == binary.BigEndian.Uint64(k) {
			if err := b.byID.Delete(id); err != nil {
				return err
			}
		}
		if err := b.byExp.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// storedResponseID is the response id a stored request names, or "". The
// key comes before "request", which holds the prompt, so only the head is
// searched, and decoded only if the id has escapes: retention reads it
// from every record it removes.
func storedResponseID(v []byte) (string, error) {
	head := v
	if i := bytes.Index(v, []byte(`"request":`)); i >= 0 {
		head = v[:i]
	}
	const key = `"response_id":"`
	i := bytes.Index(head, []byte(key))
	if i < 0 {
		return "", nil
	}
	rest := head[i+len(key):]
	if j := bytes.IndexByte(rest, '"'); j >= 0 && bytes.IndexByte(rest[:j], '\\') < 0 {
		return string(rest[:j]), nil
	}
	var st struct {
		ResponseID string `json:"response_id"`
	}
	if err := json.Unmarshal(v, &st); err != nil {
		return "", err
	}
	return st.ResponseID, nil
}

// LookupResponse returns the entry kept for a response id, if there is
// one that has not expired by now.
func (s *BoltStore) LookupResponse(id string, now time.Time) (StoredResponse, bool, error) {
	var out StoredResponse
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketResponses)
		if b == nil {
			// A file of a build before the bucket, opened read-only
			// (a writer's open creates it).
			return nil
		}
		v := b.Get([]byte(id))
		if len(v) < responseHead {
			return nil
		}
		exp := time.Unix(0, int64(binary.BigEndian.Uint64(v)))
		if !exp.After(now) {
			return nil
		}
		// Copied out: v is only valid in the transaction.
		tier, owner := responseTail(v)
		out, found = StoredResponse{ID: id, Tier: string(tier), Owner: string(owner), Expires: exp}, true
		return nil
	})
	if err != nil {
		return StoredResponse{}, false, fmt.Errorf("look up response %q: %w", id, err)
	}
	return out, found, nil
}

package datasets

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Fingerprint identifies the text of a request: its prompt, or its
// messages' roles and contents (not its meta). The store keeps one
// request, so one prompt, per id: a client that reuses an id for another
// prompt would otherwise move the first prompt's feedback onto the second.
// The zero value means "none".
type Fingerprint [16]byte

// IsZero reports whether f is the zero value.
func (f Fingerprint) IsZero() bool { return f == Fingerprint{} }

// PromptFingerprint is the fingerprint of a prompt or of chat messages
// (one of them is set): the first 16 bytes of a SHA-256 over their
// length-prefixed parts.
func PromptFingerprint(prompt string, msgs []Message) Fingerprint {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	put := func(s string) {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		h.Write([]byte(s))
	}
	if len(msgs) == 0 {
		h.Write([]byte{'p'})
		put(prompt)
	} else {
		h.Write([]byte{'m'})
		for _, m := range msgs {
			put(m.Role)
			put(m.Content)
		}
	}
	var f Fingerprint
	copy(f[:], h.Sum(nil))
	return f
}

// ErrIDConflict is wrapped when a request id the store holds is used for
// another prompt.
var ErrIDConflict = errors.New("request id is taken by another prompt")

// RequestFingerprint returns the fingerprint of the request the store
// holds for id (found false if it holds none), including requests created
// by feedback still in the feedback log, and whether its record carries a
// decision: one created by feedback has none until the id is routed, and
// then takes the route's (AppendDecisions).
func (s *BoltStore) RequestFingerprint(id string) (fp Fingerprint, found, decided bool, err error) {
	s.fpMu.RLock()
	defer s.fpMu.RUnlock()
	if fp, ok := s.pendingFP[id]; ok {
		return fp, true, false, nil // created by feedback, not yet applied
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		var err error
		fp, found, decided, err = requestFingerprintIn(tx, id)
		return err
	})
	if err != nil {
		return Fingerprint{}, false, false, fmt.Errorf("look up request %q: %w", id, err)
	}
	return fp, found, decided, nil
}

// requestFingerprintIn is RequestFingerprint's reading of the db, in tx.
func requestFingerprintIn(tx *bolt.Tx, id string) (fp Fingerprint, found, decided bool, err error) {
	v := tx.Bucket(bucketIDs).Get([]byte(id))
	switch {
	case v == nil:
		return fp, false, false, nil
	case len(v) >= 32:
		// Only the decision log writes a fingerprint with the key.
		copy(fp[:], v[16:32])
		if !fp.IsZero() {
			return fp, true, true, nil
		}
	case len(v) < 16:
		return fp, false, false, fmt.Errorf("ids entry of %q is %d bytes, want 16 or 32", id, len(v))
	}
	// Written without a fingerprint (a generated id, or feedback): hash
	// the stored request.
	rec := tx.Bucket(bucketLog).Get(v[:16])
	if rec == nil {
		return fp, false, false, nil
	}
	var st storedRequest
	var body requestBody
	if err := json.Unmarshal(rec, &st); err != nil {
		return fp, false, false, fmt.Errorf("log record of %q: %w", id, err)
	}
	if err := json.Unmarshal(st.Request, &body); err != nil {
		return fp, false, false, fmt.Errorf("log record of %q: request: %w", id, err)
	}
	return PromptFingerprint(body.Prompt, body.Messages), true, st.Decision != nil, nil
}

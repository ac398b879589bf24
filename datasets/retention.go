package datasets

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// RetentionOptions bound what the store keeps. The zero value keeps
// everything.
type RetentionOptions struct {
	// MaxAge removes records routed (or created) longer ago than this,
	// with their feedback and the stored response entries they made; 0
	// keeps every age.
	MaxAge time.Duration
	// MaxBytes bounds the bytes of the pages in use (Usage().UsedBytes).
	// Over it, records are removed (each with its feedback and the
	// stored response entry it made) until the store uses at most
	// PruneTarget of it: records without feedback first, oldest first,
	// then the oldest records with feedback. 0 means no bound. bbolt
	// reuses the freed pages, so the file stops growing; it never
	// shrinks (Compact does that).
	MaxBytes int64
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// PruneTarget is the share of RetentionOptions.MaxBytes that a prune for
// size brings the store down to, so that it does not run again at once.
const PruneTarget = 0.9

// pruneBatch caps the records one prune transaction removes: the
// transaction holds bbolt's writer lock (and the feedback committer, see
// Prune), so it is kept short.
const pruneBatch = 2000

// PruneStats counts what a prune removed.
type PruneStats struct {
	// ByAge and BySize count removed records by reason; WithFeedback
	// counts those of them that had feedback.
	ByAge, BySize, WithFeedback int
	// UsedBefore and UsedAfter are Usage().UsedBytes around the prune.
	UsedBefore, UsedAfter int64
}

// Usage is how much of the db file is in use.
type Usage struct {
	// FileBytes is the size the db's pages span (its high-water mark);
	// the file on disk may be larger by bbolt's growth step, sparse.
	FileBytes int64
	// UsedBytes is FileBytes less the free pages, which bbolt reuses
	// before it grows the file.
	UsedBytes int64
}

// Usage returns the db's page usage as of the last commit.
func (s *BoltStore) Usage() Usage {
	var u Usage
	s.db.View(func(tx *bolt.Tx) error { u.FileBytes = tx.Size(); return nil })
	st := s.db.Stats()
	free := int64(st.FreePageN+st.PendingPageN) * int64(s.db.Info().PageSize)
	u.UsedBytes = max(u.FileBytes-free, 0)
	return u
}

// Prune removes records as opts says. Each batch runs on the feedback
// committer between two appends, after the feedback log is applied, so
// that feedback the store acknowledged is in the db when the batch looks
// for records without any, and no write is acknowledged for a record a
// batch then removes.
func (s *BoltStore) Prune(ctx context.Context, opts RetentionOptions) (PruneStats, error) {
	var st PruneStats
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	st.UsedBefore = s.Usage().UsedBytes
	run := func(job func(tx *bolt.Tx) (int, error)) (int, error) {
		var n int
		r := &commitReq{job: func(db *bolt.DB) error {
			return db.Update(func(tx *bolt.Tx) error {
				var err error
				n, err = job(tx)
				return err
			})
		}, err: make(chan error, 1)}
		if err := s.send(r); err != nil {
			return 0, fmt.Errorf("prune feedback db: %w", err)
		}
		return n, nil
	}
	if opts.MaxAge > 0 {
		cutoff := appendLogKey(nil, now().Add(-opts.MaxAge), 0)
		for {
			if err := ctx.Err(); err != nil {
				return st, err
			}
			n, err := run(func(tx *bolt.Tx) (int, error) {
				return pruneOldest(tx, cutoff, nil, false, pruneBatch, 0, &st.WithFeedback)
			})
			st.ByAge += n
			if err != nil {
				return st, err
			}
			if n < pruneBatch {
				break
			}
		}
	}
	if used := s.Usage().UsedBytes; opts.MaxBytes > 0 && used > opts.MaxBytes {
		target := int64(float64(opts.MaxBytes) * PruneTarget)
		// First records without feedback, the scan resuming where the
		// last batch stopped; then the oldest of any kind.
		for _, keepFeedback := range []bool{true, false} {
			var after []byte
			for used > target {
				if err := ctx.Err(); err != nil {
					return st, err
				}
				// A quarter of what is over at a time: records' sizes
				// only estimate the pages their removal frees (a page
				// half emptied frees nothing), so the bound is neared
				// in steps rather than overshot.
				need := max((used-target)/4, 1)
				n, err := run(func(tx *bolt.Tx) (int, error) {
					return pruneOldest(tx, nil, &after, keepFeedback, pruneBatch, need, &st.WithFeedback)
				})
				st.BySize += n
				if err != nil {
					return st, err
				}
				if n == 0 {
					break
				}
				used = s.Usage().UsedBytes
			}
			if used <= target {
				break
			}
		}
	}
	st.UsedAfter = s.Usage().UsedBytes
	return st, nil
}

// pruneOldest removes up to limit records from the oldest, stopping at
// key before (when set) and once the bytes removed reach need (when
// above 0). With keepFeedback it skips records that have feedback, and
// *after is where the scan resumes next time. It adds the removed records
// that had feedback to withFeedback.
func pruneOldest(tx *bolt.Tx, before []byte, after *[]byte, keepFeedback bool, limit int, need int64, withFeedback *int) (int, error) {
	log, ids, fb := tx.Bucket(bucketLog), tx.Bucket(bucketIDs), tx.Bucket(bucketFeedback)
	pins := responseBuckets{byID: tx.Bucket(bucketResponses), byExp: tx.Bucket(bucketResponseExpiry)}
	c := log.Cursor()
	var k, v []byte
	if after != nil && *after != nil {
		k, v = c.Seek(*after)
		if k != nil && bytes.Equal(k, *after) {
			k, v = c.Next()
		}
	} else {
		k, v = c.First()
	}
	// Keys are collected first: deleting under a cursor skips entries.
	type victim struct {
		key []byte
		id  string
		fb  bool
		// resp is the stored response the request's answer gave, whose
		// entry goes with the record: it never outlives it.
		resp string
	}
	var victims []victim
	var freed int64
	var last []byte
	for ; k != nil && len(victims) < limit; k, v = c.Next() {
		if before != nil && bytes.Compare(k, before) >= 0 {
			break
		}
		last = k
		id, err := storedID(v)
		if err != nil {
			return 0, fmt.Errorf("log record %x: %w", k, err)
		}
		prefix := append([]byte(id), 0)
		fk, _ := fb.Cursor().Seek(prefix)
		has := fk != nil && bytes.HasPrefix(fk, prefix)
		if has && keepFeedback {
			continue
		}
		resp, err := storedResponseID(v)
		if err != nil {
			return 0, fmt.Errorf("log record %x: %w", k, err)
		}
		victims = append(victims, victim{key: bytes.Clone(k), id: id, fb: has, resp: resp})
		freed += int64(len(k) + len(v) + len(id) + 64)
		if resp != "" {
			// The entry and its expiry key, estimated as a record is.
			freed += int64(2*len(resp) + responseHead + 8 + 128)
		}
		if need > 0 && freed >= need {
			break
		}
	}
	if after != nil && last != nil {
		*after = bytes.Clone(last)
	}
	for _, vc := range victims {
		if err := log.Delete(vc.key); err != nil {
			return 0, err
		}
		// The id may since point at a newer record of the same id.
		if cur := ids.Get([]byte(vc.id)); len(cur) >= 16 && bytes.Equal(cur[:16], vc.key) {
			if err := ids.Delete([]byte(vc.id)); err != nil {
				return 0, err
			}
		}
		if vc.resp != "" && pins.byID != nil {
			if err := pins.remove([]byte(vc.resp), vc.key); err != nil {
				return 0, err
			}
		}
		if vc.fb {
			*withFeedback++
			prefix := append([]byte(vc.id), 0)
			var fks [][]byte
			fc := fb.Cursor()
			for fk, _ := fc.Seek(prefix); fk != nil && bytes.HasPrefix(fk, prefix); fk, _ = fc.Next() {
				fks = append(fks, bytes.Clone(fk))
			}
			for _, fk := range fks {
				if err := fb.Delete(fk); err != nil {
					return 0, err
				}
			}
		}
	}
	return len(victims), nil
}

// storedID reads the id of a stored request. Both writers put the id
// first ({"id":"...",...}); anything else goes to encoding/json.
func storedID(v []byte) (string, error) {
	const head = `{"id":"`
	if bytes.HasPrefix(v, []byte(head)) {
		rest := v[len(head):]
		if i := bytes.IndexByte(rest, '"'); i >= 0 && bytes.IndexByte(rest[:i], '\\') < 0 {
			return string(rest[:i]), nil
		}
	}
	var st struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(v, &st); err != nil {
		return "", err
	}
	return st.ID, nil
}

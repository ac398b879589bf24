package datasets

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// CheckReport is what CheckDB found in a feedback db and its log.
type CheckReport struct {
	Path      string
	FileBytes int64
	PageSize  int
	// Pages is the high-water mark: the pages the file's meta says it
	// holds.
	Pages          uint64
	FreelistSynced bool
	// Problems are the first structural problems found (bad pages, keys
	// out of order, pages used twice, a truncated file); NProblems
	// counts them all. BadPages counts pages whose subtrees could not be
	// read, BadElems single entries.
	Problems           []string
	NProblems          int
	BadPages, BadElems int
	// Records counts the decision-log records read; BadRecords those
	// that do not decode.
	Records, BadRecords int
	// IDs counts the id index entries; BadIDs those that are malformed
	// or point at no record.
	IDs, BadIDs int
	// Feedback counts feedback entries; BadFeedback those that do not
	// decode; OrphanFeedback those whose request is not in the store
	// (not damage: it is what a salvaged log can leave).
	Feedback, BadFeedback, OrphanFeedback int
	// Responses counts the proxy's stored-response entries; BadResponses
	// those that are malformed or are not in the expiry index as they
	// say, and the index's keys of no entry; OrphanResponses those whose
	// record is not in the store (not damage: a build before the entries,
	// serving the db meanwhile, removed their records by retention and
	// left them, still sound, until they expire).
	Responses, BadResponses, OrphanResponses int
	// Log is what the feedback log beside the db holds.
	Log LogCheck
}

// LogCheck is what the feedback log (path + "-wal") holds for the db's
// current epoch.
type LogCheck struct {
	Path   string
	Exists bool
	// Records counts the readable records that the next open applies.
	Records int
	// DamagedAt is the offset of an unreadable record followed by
	// readable ones, or -1; After counts those, Lost the records between.
	DamagedAt   int64
	After, Lost int
	// Acknowledged says the damage is in records that were acknowledged
	// (a later append follows them): the next open refuses the log
	// unless told to salvage it.
	Acknowledged bool
	// Truncated says the file ends inside its records (it is Bytes
	// long, shorter than a log is written): the next open refuses it
	// unless told to salvage it.
	Truncated bool
	Bytes     int64
}

// Damaged reports whether the check found damage.
func (r *CheckReport) Damaged() bool {
	return r.NProblems > 0 || r.BadRecords > 0 || r.BadIDs > 0 || r.BadFeedback > 0 || r.BadResponses > 0 || r.Log.Acknowledged || r.Log.Truncated
}

// CheckDB checks the feedback db at path without changing it: the file's
// structure (what OpenBoltStore checks before it opens a file, then
// bbolt's own Tx.Check), every record, id and feedback entry, and the
// feedback log. It fails only when the file cannot be read at all or a
// server holds it (waiting up to timeout); damage is in the report.
func CheckDB(path string, timeout time.Duration) (*CheckReport, error) {
	rep := &CheckReport{Path: path, Log: LogCheck{Path: path + walSuffix, DamagedAt: -1}}
	f, bf, err := openChecked(path, timeout)
	if err != nil {
		var de *DamageError
		if errors.As(err, &de) {
			rep.Problems, rep.NProblems = de.Problems, de.Count
			if fi, serr := os.Stat(path); serr == nil {
				rep.FileBytes = fi.Size()
			}
			return rep, nil
		}
		return nil, err
	}
	defer f.Close()
	rep.FileBytes, rep.PageSize, rep.Pages = bf.size, bf.pageSize, bf.meta.pgid
	var c contents
	bf.walk(c.visit)
	rep.FreelistSynced = bf.freelistSynced
	rep.Problems, rep.NProblems, rep.BadPages, rep.BadElems = bf.problems, bf.nProblem, bf.badPages, bf.badElems
	rep.Records, rep.BadRecords = c.records, c.badRecords
	rep.IDs, rep.BadIDs = len(c.ids)+c.badIDs, c.badIDs
	for _, key := range c.ids {
		if _, ok := c.logKeys[string(key[:16])]; !ok {
			rep.BadIDs++
		}
	}
	rep.Feedback, rep.BadFeedback = c.feedback, c.badFeedback
	for _, id := range c.feedbackIDs {
		if _, ok := c.ids[id]; !ok {
			rep.OrphanFeedback++
		}
	}
	rep.Responses, rep.BadResponses = c.responses, c.badResponses
	for _, e := range c.respLinks {
		_, rec := c.logKeys[e.logKey]
		_, indexed := c.expiryKeys[e.expiryKey]
		switch {
		case !indexed:
			rep.BadResponses++
		case !rec:
			rep.OrphanResponses++
		}
		delete(c.expiryKeys, e.expiryKey)
	}
	rep.BadResponses += len(c.expiryKeys)
	if rep.NProblems == 0 {
		// bbolt's own check, now that the file is safe for it to map.
		f.Close()
		problems, err := boltCheck(path, timeout)
		if err != nil {
			return nil, err
		}
		rep.Problems, rep.NProblems = append(rep.Problems, problems...), len(problems)
	}
	if data, err := os.ReadFile(rep.Log.Path); err == nil {
		rep.Log.Exists = true
		sc := readWAL(data, c.epoch)
		rep.Log.Records, rep.Log.DamagedAt, rep.Log.After, rep.Log.Lost, rep.Log.Acknowledged = len(sc.ops), sc.badOff, sc.after, sc.lost, sc.damaged()
		// A server writes its log at the default size.
		rep.Log.Truncated, rep.Log.Bytes = sc.cutShort(data, c.epoch, DefaultWALSize), int64(len(data))
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("check feedback log: %w", err)
	}
	return rep, nil
}

// contents collects what a walk of a feedback db finds.
type contents struct {
	records, badRecords   int
	feedback, badFeedback int
	badIDs                int
	logKeys               map[string]struct{}
	ids                   map[string][]byte // id -> ids value
	feedbackIDs           []string
	epoch                 uint64
	epochFound            bool
	schema                string
	seenFeedbackID        string
	responses             int
	badResponses          int
	// respLinks are where each readable response entry says its record
	// and its expiry key are; expiryKeys, the index's keys.
	respLinks  []responseLink
	expiryKeys map[string]struct{}
}

type responseLink struct{ logKey, expiryKey string }

func (c *contents) visit(bucket []string, k, v []byte) {
	if len(bucket) != 1 {
		return
	}
	if c.logKeys == nil {
		c.logKeys, c.ids = map[string]struct{}{}, map[string][]byte{}
	}
	switch bucket[0] {
	case string(bucketLog):
		if _, err := decodeStored(k, v); err != nil || len(k) != 16 {
			c.badRecords++
			return
		}
		c.records++
		c.logKeys[string(k)] = struct{}{}
	case string(bucketIDs):
		if len(v) != 16 && len(v) != 32 {
			c.badIDs++
			return
		}
		c.ids[string(k)] = bytes.Clone(v)
	case string(bucketFeedback):
		id, _, ok := bytes.Cut(k, []byte{0})
		var o Outcome
		if !ok || json.Unmarshal(v, &o) != nil {
			c.badFeedback++
			return
		}
		c.feedback++
		if string(id) != c.seenFeedbackID {
			c.seenFeedbackID = string(id)
			c.feedbackIDs = append(c.feedbackIDs, c.seenFeedbackID)
		}
	case string(bucketResponses):
		if !readableResponse(k, v) {
			c.badResponses++
			return
		}
		c.responses++
		c.respLinks = append(c.respLinks, responseLink{logKey: string(v[8:responseHead]), expiryKey: string(expiryKey(binary.BigEndian.Uint64(v), k))})
	case string(bucketResponseExpiry):
		if c.expiryKeys == nil {
			c.expiryKeys = map[string]struct{}{}
		}
		c.expiryKeys[string(k)] = struct{}{}
	case string(bucketMeta):
		switch string(k) {
		case string(keyWALEpoch):
			if len(v) == 8 {
				c.epoch, c.epochFound = binary.BigEndian.Uint64(v), true
			}
		case string(keySchema):
			c.schema = string(v)
		}
	}
}

// SalvageReport says what SalvageDB copied and what it could not read.
type SalvageReport struct {
	// Records, Feedback and Responses (the proxy's stored-response
	// entries) count what was copied.
	Records, Feedback, Responses int
	// BadRecords and BadFeedback count entries that did not decode;
	// OrphanFeedback, feedback whose request was not readable; Duplicates,
	// older records of an id that also has a newer one.
	BadRecords, BadFeedback, OrphanFeedback, Duplicates int
	// BadResponses counts stored-response entries that could not be
	// read; OrphanResponses, those whose record was not copied (an entry
	// never outlives its record: retention removes them together).
	BadResponses, OrphanResponses int
	// BadPages counts pages that could not be read, with whatever they
	// held (uncounted); BadElems, single unreadable entries; Problems,
	// every structural problem found.
	BadPages, BadElems, Problems int
	// LogApplied counts the feedback-log records applied from the old
	// log; LogLost, its unreadable records between readable ones.
	LogApplied, LogLost int
	// Recovered counts the records and feedback (included in Records and
	// Feedback) read from leaf pages the tree no longer reaches (cut off
	// by damage above them), from RecoveredPages pages. Without the
	// freelist they may include entries removed or replaced before.
	Recovered, RecoveredPages int
}

// salvageTxSize caps the puts of one transaction of a salvage.
const salvageTxSize = 10000

// SalvageDB copies every readable record, id and feedback entry of the
// feedback db at src, and the readable stored-response entries of those
// records, and every readable record of its feedback log, into
// a new db at dst, and counts what it could not read. It reads src with
// the bounds-checked reader, never through bbolt, so any damage bbolt
// would trip over is skipped and counted. dst must not exist; it is
// written beside itself and renamed into place when complete. src is left
// as it is. Cancelling ctx (an interrupt) stops the copy at its next
// transaction and writes no dst.
func SalvageDB(ctx context.Context, src, dst string, timeout time.Duration) (*SalvageReport, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if isLogOf(dst, src) {
		return nil, fmt.Errorf("salvage: %s is the feedback log of %s, which the salvage reads; give a new file", dst, src)
	}
	if _, err := os.Stat(dst); err == nil {
		return nil, fmt.Errorf("salvage: %s exists; give a new file", dst)
	}
	f, bf, err := openChecked(src, timeout)
	if err != nil {
		var de *DamageError
		if errors.As(err, &de) {
			return nil, fmt.Errorf("salvage %s: nothing can be read: %s", src, de.Problems[0])
		}
		return nil, err
	}
	defer f.Close()
	rep := &SalvageReport{}
	bf.walk(nil)
	rep.Problems, rep.BadPages, rep.BadElems = bf.nProblem, bf.badPages, bf.badElems
	// Leaves cut off from the tree, read while the full walk's marks
	// say which pages it reached.
	var orphans []salvageOp
	rep.RecoveredPages = bf.orphans(func(k, v []byte) {
		switch {
		case len(k) == 16 && bytes.HasPrefix(v, []byte(`{"id":`)):
			orphans = append(orphans, salvageOp{bucket: bucketLog, k: bytes.Clone(k), v: bytes.Clone(v)})
		case bytes.IndexByte(k, 0) > 0 && bytes.HasPrefix(v, []byte("{")):
			orphans = append(orphans, salvageOp{bucket: bucketFeedback, k: bytes.Clone(k), v: bytes.Clone(v)})
		case string(k) == string(keyWALEpoch) && len(v) == 8:
			orphans = append(orphans, salvageOp{bucket: bucketMeta, k: bytes.Clone(k), v: bytes.Clone(v)})
		}
	})
	// Each bucket is then copied in a walk of its own, so the records go
	// in before the feedback that needs them.
	var meta contents
	bf.only = string(bucketMeta)
	bf.walk(meta.visit)

	epoch, haveEpoch := meta.epoch, meta.epochFound
	for _, o := range orphans {
		if string(o.bucket) == string(bucketMeta) && !haveEpoch {
			// The meta bucket was cut off: an orphaned copy of it is the
			// best guess of the feedback log's epoch (the newest wins).
			epoch = max(epoch, binary.BigEndian.Uint64(o.v))
		}
	}
	if !haveEpoch {
		// Appends restart at offset 0 in each new epoch, so the log's
		// first record is of the newest epoch it holds: the current one,
		// or one already applied, which applying again changes nothing.
		if e, ok := walFirstEpoch(src + walSuffix); ok {
			epoch = max(epoch, e)
		}
	}
	err = writeNewDB(ctx, dst, DefaultPageSize, func(out *bolt.DB) error {
		return salvageInto(ctx, out, bf, src, epoch, orphans, rep)
	})
	if err != nil {
		return nil, fmt.Errorf("salvage %s into %s: %w", src, dst, err)
	}
	return rep, nil
}

// salvageInto copies what bf can read of the db at src, then its feedback
// log of epoch, into the new db out.
func salvageInto(ctx context.Context, out *bolt.DB, bf *boltFile, src string, epoch uint64, orphans []salvageOp, rep *SalvageReport) error {
	if err := out.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketLog, bucketIDs, bucketFeedback, bucketMeta, bucketResponses, bucketResponseExpiry} {
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keySchema, []byte(storeSchema))
	}); err != nil {
		return err
	}
	w := &salvageWriter{ctx: ctx, db: out}
	// Old id entries, for their fingerprints.
	oldIDs := map[string][]byte{}
	bf.only = string(bucketIDs)
	bf.walk(func(_ []string, k, v []byte) {
		if len(v) == 32 {
			oldIDs[string(k)] = bytes.Clone(v)
		}
	})
	// Records, and the id index rebuilt from them.
	ids := map[string][]byte{}
	written := map[string]bool{}
	var logKeys [][]byte
	var maxSeq uint64 // the highest sequence in the copied records' keys
	addLog := func(k, v []byte, orphan bool) {
		rec, err := decodeStored(k, v)
		if err != nil || len(k) != 16 || checkKey("id", rec.ID) != nil {
			if !orphan {
				rep.BadRecords++
			}
			return
		}
		if _, ok := ids[rec.ID]; ok && orphan || written[string(k)] {
			return // the tree's copy wins
		}
		if prev, ok := ids[rec.ID]; ok {
			rep.Duplicates++
			logKeys = append(logKeys, prev) // deleted below
		}
		key := bytes.Clone(k)
		maxSeq = max(maxSeq, binary.BigEndian.Uint64(key[8:]))
		ids[rec.ID], written[string(k)] = key, true
		w.put(bucketLog, key, bytes.Clone(v))
		rep.Records++
		if orphan {
			rep.Recovered++
		}
	}
	bf.only = string(bucketLog)
	bf.walk(func(_ []string, k, v []byte) { addLog(k, v, false) })
	for _, o := range orphans {
		if string(o.bucket) == string(bucketLog) {
			addLog(o.k, o.v, true)
		}
	}
	for _, k := range logKeys {
		w.del(bucketLog, k)
		rep.Records--
	}
	for id, key := range ids {
		val := key
		if old, ok := oldIDs[id]; ok && bytes.Equal(old[:16], key) {
			val = old
		}
		w.put(bucketIDs, []byte(id), val)
	}
	addFeedback := func(k, v []byte, orphan bool) {
		id, _, ok := bytes.Cut(k, []byte{0})
		var o Outcome
		if !ok || json.Unmarshal(v, &o) != nil {
			if !orphan {
				rep.BadFeedback++
			}
			return
		}
		if written[string(k)] {
			return
		}
		if _, ok := ids[string(id)]; !ok {
			if !orphan {
				rep.OrphanFeedback++
			}
			return
		}
		written[string(k)] = true
		w.put(bucketFeedback, bytes.Clone(k), bytes.Clone(v))
		rep.Feedback++
		if orphan {
			rep.Recovered++
		}
	}
	bf.only = string(bucketFeedback)
	bf.walk(func(_ []string, k, v []byte) { addFeedback(k, v, false) })
	for _, o := range orphans {
		if string(o.bucket) == string(bucketFeedback) {
			addFeedback(o.k, o.v, true)
		}
	}
	// The stored responses' entries of the copied records, and the
	// expiry index rebuilt from them.
	copied := make(map[string]bool, len(ids))
	for _, key := range ids {
		copied[string(key[:16])] = true
	}
	bf.only = string(bucketResponses)
	bf.walk(func(_ []string, k, v []byte) {
		switch {
		case !readableResponse(k, v):
			rep.BadResponses++
		case !copied[string(v[8:responseHead])]:
			rep.OrphanResponses++
		default:
			w.put(bucketResponses, bytes.Clone(k), bytes.Clone(v))
			w.put(bucketResponseExpiry, expiryKey(binary.BigEndian.Uint64(v), k), []byte{})
			rep.Responses++
		}
	})
	if err := w.flush(); err != nil {
		return err
	}

	// The feedback log: acknowledged writes not yet in the db.
	data, err := os.ReadFile(src + walSuffix)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read feedback log: %w", err)
	}
	sc := readWAL(data, epoch)
	rep.LogLost = sc.lost
	err = out.Update(func(tx *bolt.Tx) error {
		// The new db is past the old log's epoch, as an apply leaves it:
		// put in place of the old db with the old log beside it, it must
		// not take the log's records, applied here, for new ones (nor
		// its older epochs' records, at epoch 0, for acknowledged ones).
		if err := tx.Bucket(bucketMeta).Put(keyWALEpoch, binary.BigEndian.AppendUint64(nil, epoch+1)); err != nil {
			return err
		}
		// A record's key is its time and the log bucket's next sequence.
		// The copies were put with their keys, which leaves the new
		// bucket's sequence at 0: records the log creates, and the
		// server's later ones, would take keys of copied records that
		// share their time, and replace them.
		if err := tx.Bucket(bucketLog).SetSequence(maxSeq); err != nil {
			return err
		}
		known := tx.Bucket(bucketIDs)
		for _, op := range sc.ops {
			if op.created == nil && known.Get([]byte(op.id)) == nil {
				rep.OrphanFeedback++
				continue
			}
			if err := op.apply(tx); err != nil {
				return err
			}
			rep.LogApplied++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("apply feedback log: %w", err)
	}
	return nil
}

// salvageWriter batches puts into transactions of salvageTxSize.
type salvageWriter struct {
	ctx context.Context
	db  *bolt.DB
	ops []salvageOp
	err error
}

type salvageOp struct {
	bucket, k, v []byte
	del          bool
}

func (w *salvageWriter) put(bucket, k, v []byte) {
	w.ops = append(w.ops, salvageOp{bucket: bucket, k: k, v: v})
	if len(w.ops) >= salvageTxSize {
		w.flush()
	}
}

func (w *salvageWriter) del(bucket, k []byte) {
	w.flush()
	w.ops = append(w.ops, salvageOp{bucket: bucket, k: k, del: true})
}

func (w *salvageWriter) flush() error {
	if w.err == nil {
		w.err = w.ctx.Err()
	}
	if w.err != nil || len(w.ops) == 0 {
		w.ops = w.ops[:0]
		return w.err
	}
	w.err = w.db.Update(func(tx *bolt.Tx) error {
		for _, op := range w.ops {
			b := tx.Bucket(op.bucket)
			if op.del {
				if err := b.Delete(op.k); err != nil {
					return err
				}
				continue
			}
			if err := b.Put(op.k, op.v); err != nil {
				return err
			}
		}
		return nil
	})
	w.ops = w.ops[:0]
	return w.err
}

// walFirstEpoch reads the epoch of the record at the start of the log at
// path, if one is readable there.
func walFirstEpoch(path string) (uint64, bool) {
	data, err := os.ReadFile(path)
	if err != nil || len(data) < walHeader {
		return 0, false
	}
	epoch := binary.BigEndian.Uint64(data[8:16])
	if _, ok := parseWALRecord(data, 0, epoch); !ok {
		return 0, false
	}
	return epoch, true
}

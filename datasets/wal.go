package datasets

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/triage-router/triage/datasets/safefile"
	"github.com/triage-router/triage/internal/plural"
)

// The feedback write-ahead log.
//
// A bbolt commit costs two fdatasyncs (data pages, then the meta page) and
// rewrites every page the group touched: on the 2-core bench machine a
// group of ~30 feedback writes took 2.3-5 ms to commit, which capped 64
// clients below 10,000 writes/s. A feedback group is instead appended to
// this log with one fdatasync of a few KiB and acknowledged; the log is
// applied to bbolt (one ordinary, synced commit) when it is half full,
// before an export or snapshot, and at Close. Open replays it.
//
// The file (the db path + "-wal") is preallocated with zeros, so an append
// overwrites written blocks and its fdatasync flushes no file-size change.
// A record is
//
//	length  uint32  payload bytes
//	crc     uint32  CRC-32C of epoch, seq, first and payload
//	epoch   uint64  the log's epoch when written
//	seq     uint32  the record's number in its epoch, from 0
//	first   uint32  the seq of the first record of its group (one append)
//	payload         the feedback write (appendWALRecord, decodeWALOp)
//
// The epoch is kept in the meta bucket and bumped in the same bbolt
// transaction that applies the log, after which appends restart at offset
// 0 with seq 0. Replay reads records from offset 0 while they are whole,
// their CRC matches, their epoch is the current one and their seq the next.
// The first record that is not ends the log, and what lies after it says
// why:
//
//   - nothing of the current epoch (the zeros of the preallocation, or
//     records of an applied epoch): the end of the log, or a torn tail
//     (a crash mid-append, never acknowledged). A crash after an apply
//     but before the next append leaves only old-epoch records, which
//     are skipped, so a record is applied once in effect (applying one
//     twice is harmless anyway: the write is a put of the same value).
//   - records of the current epoch from a later group: the bad record's
//     group was synced (and answered) before that group was written, so
//     acknowledged writes are damaged. Open refuses the log
//     (*WALDamageError) unless told to salvage it, when the bad bytes are
//     skipped and every readable record is applied.
//   - records of the current epoch from the same group only: the last
//     append was torn by a power cut (its blocks reached the disk out of
//     order) or damaged after its answer; the two cannot be told apart.
//     Its readable records are applied and the loss is reported
//     (ReplayStats), not refused: a torn last append is what a power cut
//     leaves.
//
// A log file shorter than its preallocated size that holds records was cut
// short (a partial copy): records past the cut may have been acknowledged,
// so Open refuses it too unless told to salvage it (walScan.cutShort).
//
// Version 1 logs (before seq and first) are still replayed the old way,
// up to the first bad record.
const (
	// DefaultWALSize is the feedback log's preallocated size; it is
	// applied to bbolt when half full (about 20,000 usual writes).
	DefaultWALSize = 4 << 20
	walHeader      = 24
	walHeaderV1    = 16
	walSuffix      = "-wal"
)

var (
	keyWALEpoch = []byte("wal_epoch")
	crcTable    = crc32.MakeTable(crc32.Castagnoli)
)

// walOp is one feedback write: put val at fkey, first creating the
// request's record from created (a storedRequest, at time ts) if the id is
// unknown then.
type walOp struct {
	id      string
	fkey    []byte
	val     []byte
	ts      time.Time
	created []byte
	// fp is created's fingerprint, for RequestFingerprint while the op
	// waits in the log; it is not written to the log.
	fp Fingerprint
}

// apply does op in tx. It is what PutFeedback used to run in its commit.
func (op *walOp) apply(tx *bolt.Tx) error {
	ids := tx.Bucket(bucketIDs)
	if op.created != nil && ids.Get([]byte(op.id)) == nil {
		log := tx.Bucket(bucketLog)
		seq, err := log.NextSequence()
		if err != nil {
			return err
		}
		key := appendLogKey(make([]byte, 0, 16), op.ts, seq)
		if err := log.Put(key, op.created); err != nil {
			return err
		}
		if err := ids.Put([]byte(op.id), key); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketFeedback).Put(op.fkey, op.val)
}

// appendWALRecord appends op as record seq of epoch, in the group that
// starts at record first.
func appendWALRecord(b []byte, epoch uint64, seq, first uint32, op *walOp) []byte {
	start := len(b)
	b = append(b, make([]byte, walHeader)...)
	b = binary.AppendUvarint(b, uint64(len(op.id)))
	b = append(b, op.id...)
	b = binary.AppendUvarint(b, uint64(len(op.fkey)))
	b = append(b, op.fkey...)
	b = binary.AppendUvarint(b, uint64(len(op.val)))
	b = append(b, op.val...)
	if op.created == nil {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = binary.BigEndian.AppendUint64(b, uint64(op.ts.UnixNano()))
		b = binary.AppendUvarint(b, uint64(len(op.created)))
		b = append(b, op.created...)
	}
	h := b[start : start+walHeader]
	binary.BigEndian.PutUint32(h[0:], uint32(len(b)-start-walHeader))
	binary.BigEndian.PutUint64(h[8:], epoch)
	binary.BigEndian.PutUint32(h[16:], seq)
	binary.BigEndian.PutUint32(h[20:], first)
	crc := crc32.Update(0, crcTable, h[8:walHeader])
	binary.BigEndian.PutUint32(h[4:], crc32.Update(crc, crcTable, b[start+walHeader:]))
	return b
}

var errBadWALRecord = errors.New("bad feedback log record")

// decodeWALOp reads a record's payload; the op's slices alias p.
func decodeWALOp(p []byte) (walOp, error) {
	var op walOp
	field := func() ([]byte, bool) {
		n, k := binary.Uvarint(p)
		if k <= 0 || n > uint64(len(p)-k) {
			return nil, false
		}
		f := p[k : k+int(n)]
		p = p[k+int(n):]
		return f, true
	}
	id, ok1 := field()
	fkey, ok2 := field()
	val, ok3 := field()
	if !ok1 || !ok2 || !ok3 || len(p) < 1 || p[0] > 1 {
		return op, errBadWALRecord
	}
	op.id, op.fkey, op.val = string(id), fkey, val
	created := p[0] == 1
	p = p[1:]
	if created {
		if len(p) < 8 {
			return op, errBadWALRecord
		}
		op.ts = time.Unix(0, int64(binary.BigEndian.Uint64(p))).UTC()
		p = p[8:]
		c, ok := field()
		if !ok {
			return op, errBadWALRecord
		}
		op.created = c
	}
	if len(p) != 0 {
		return op, errBadWALRecord
	}
	return op, nil
}

// walRecord is a record read back: its op, where it lies, and its place.
type walRecord struct {
	op         walOp
	off, end   int
	seq, first uint32
}

// parseWALRecord reads the record at off if it is whole, of epoch, and
// its CRC and payload check out.
func parseWALRecord(data []byte, off int, epoch uint64) (walRecord, bool) {
	if off < 0 || off+walHeader > len(data) {
		return walRecord{}, false
	}
	h := data[off : off+walHeader]
	n := int(binary.BigEndian.Uint32(h[0:]))
	if n == 0 || n > len(data)-off-walHeader || binary.BigEndian.Uint64(h[8:]) != epoch {
		return walRecord{}, false
	}
	p := data[off+walHeader : off+walHeader+n]
	crc := crc32.Update(crc32.Update(0, crcTable, h[8:walHeader]), crcTable, p)
	if crc != binary.BigEndian.Uint32(h[4:]) {
		return walRecord{}, false
	}
	op, err := decodeWALOp(p)
	if err != nil {
		return walRecord{}, false
	}
	seq, first := binary.BigEndian.Uint32(h[16:]), binary.BigEndian.Uint32(h[20:])
	if first > seq {
		return walRecord{}, false
	}
	return walRecord{op: op, off: off, end: off + walHeader + n, seq: seq, first: first}, true
}

// walScan is what readWAL found in a log.
type walScan struct {
	// ops are the records to apply, in order.
	ops []walOp
	// clean is how many records precede the first bad one (all of them
	// when the log ends cleanly).
	clean int
	// badOff is the offset of the first bad record followed by readable
	// records of the epoch, or -1.
	badOff int64
	// after counts the readable records of the epoch after badOff;
	// lost, the records (by seq) missing between them.
	after, lost int
	// laterGroup says a record after badOff belongs to a group written
	// after the bad record's: the bad record was acknowledged.
	laterGroup bool
	// v1 says the log is of the first format.
	v1 bool
	// end is where the records before the first bad one end.
	end int
}

// damaged reports whether acknowledged records are unreadable.
func (s *walScan) damaged() bool { return s.badOff >= 0 && s.laterGroup }

// readWAL reads the records of epoch from the start of data (see the
// comment at the top of this file). The ops' slices alias data.
func readWAL(data []byte, epoch uint64) walScan {
	sc := walScan{badOff: -1}
	off, next := 0, uint32(0)
	for {
		r, ok := parseWALRecord(data, off, epoch)
		if !ok || r.seq != next {
			break
		}
		sc.ops = append(sc.ops, r.op)
		off, next = r.end, next+1
	}
	sc.clean, sc.end = len(sc.ops), off
	if sc.clean == 0 {
		if ops := readWALv1(data, epoch); len(ops) > 0 {
			sc.ops, sc.clean, sc.v1 = ops, len(ops), true
			return sc
		}
	}
	// Look for readable records of the epoch past the bad one, at every
	// byte: the bad record's length cannot be trusted.
	bad := off
	var later []walRecord
	for at := off + 1; at+walHeader <= len(data); {
		r, ok := parseWALRecord(data, at, epoch)
		if !ok || r.seq < next {
			at++
			continue
		}
		later = append(later, r)
		at = r.end
	}
	if len(later) == 0 {
		return sc
	}
	sc.badOff = int64(bad)
	sc.after = len(later)
	expect := next
	for _, r := range later {
		// next is the seq the bad record should have had; its group began
		// at or before it. A group beginning after it was written after
		// the bad record's group was synced.
		if r.first > next {
			sc.laterGroup = true
		}
		if r.seq > expect {
			sc.lost += int(r.seq - expect)
		}
		expect = r.seq + 1
		sc.ops = append(sc.ops, r.op)
	}
	return sc
}

// cutShort reports whether the log in data, which is written at size
// bytes, was cut short (a partial copy, a truncation) while it held
// records of the epoch. The file is preallocated with zeros before the
// first append, so a whole log is never shorter than size; and appends
// restart at offset 0 in each epoch, so records past the cut may have
// been acknowledged, even where the cut falls between two records.
func (s *walScan) cutShort(data []byte, epoch uint64, size int64) bool {
	if s.v1 || s.badOff >= 0 || int64(len(data)) >= size {
		return false
	}
	if s.clean > 0 {
		return true
	}
	// No whole record: a cut inside the first one still holds its
	// header's start, where a new log holds only zeros.
	rest := data[s.end:]
	if len(rest) >= walHeader {
		n := int(binary.BigEndian.Uint32(rest[0:]))
		return n != 0 && binary.BigEndian.Uint64(rest[8:]) == epoch && n > len(rest)-walHeader
	}
	for _, c := range rest {
		if c != 0 {
			return true
		}
	}
	return false
}

// readWALv1 reads a log of the first format (a 16-byte header without seq
// and first) up to its first bad record, as that format's replay did.
func readWALv1(data []byte, epoch uint64) []walOp {
	var ops []walOp
	for off := 0; off+walHeaderV1 <= len(data); {
		h := data[off : off+walHeaderV1]
		n := int(binary.BigEndian.Uint32(h[0:]))
		if n == 0 || n > len(data)-off-walHeaderV1 || binary.BigEndian.Uint64(h[8:]) != epoch {
			break
		}
		p := data[off+walHeaderV1 : off+walHeaderV1+n]
		crc := crc32.Update(crc32.Update(0, crcTable, h[8:16]), crcTable, p)
		if crc != binary.BigEndian.Uint32(h[4:]) {
			break
		}
		op, err := decodeWALOp(p)
		if err != nil {
			break
		}
		ops = append(ops, op)
		off += walHeaderV1 + n
	}
	return ops
}

// WALDamageError is returned by OpenBoltStore when the feedback log holds
// an unreadable record followed by acknowledged ones (see wal.go).
type WALDamageError struct {
	// Path is the log file.
	Path string
	// Offset is the byte where the unreadable data starts.
	Offset int64
	// Before and After count the readable records before and after it;
	// Lost, the records between that cannot be read.
	Before, After, Lost int
	// Truncated says the file ends inside its records instead (at
	// Offset, its length): Size is the length it is written at.
	Truncated bool
	Size      int64
}

func (e *WALDamageError) Error() string {
	if e.Truncated {
		return fmt.Sprintf("feedback log %s is cut short: it is %d bytes, not the %d it is written at, and it holds records, which may have gone on past its end: acknowledged writes may be lost (a partial copy?). Nothing was applied. "+
			"If the whole file exists elsewhere, put it back; otherwise copy this one aside, then start with --salvage-log to apply its %s",
			e.Path, e.Offset, e.Size, plural.Count(e.Before, "readable record"))
	}
	return fmt.Sprintf("feedback log %s is damaged at byte %d: the record there cannot be read, yet %s %s it (lost between: %d). Nothing was applied. "+
		"Copy the file aside, then start with --salvage-log to apply the %s (%d before the damage, %d after) and skip the damaged bytes",
		e.Path, e.Offset, plural.Count(e.After, "acknowledged record"), plural.Agree(e.After, "follows", "follow"), e.Lost, plural.Count(e.Before+e.After, "readable record"), e.Before, e.After)
}

// ReplayStats says what opening the store found in the feedback log.
type ReplayStats struct {
	// Replayed counts the records applied to the db at open.
	Replayed int
	// DamagedAt is the byte offset of an unreadable record that readable
	// records of the same epoch follow, or -1. Lost counts the records
	// between, which were skipped.
	DamagedAt int64
	Lost      int
	// Salvaged says the damage was in acknowledged records and skipped
	// because StoreOptions.SalvageLog was set; otherwise any damage was
	// in the last append (a torn write, or damage after its answer).
	Salvaged bool
	// Truncated says the log was cut short (DamagedAt is its length)
	// and its readable records applied because SalvageLog was set.
	Truncated bool
}

// wal is the open log. Only the committer goroutine uses it after open.
type wal struct {
	f      *os.File
	path   string
	size   int64
	off    int64  // where the next append goes
	epoch  uint64 // of the records being appended
	seq    uint32 // of the next record
	noSync bool
	buf    []byte
	// pending are the ops appended since the last apply, in order;
	// created holds the ids they create (with their prompts' fingerprints),
	// so later feedback finds them and checks its prompt against theirs,
	// and keys their feedback keys with the latest value of each, which a
	// later write for the key is merged into.
	pending []*walOp
	created map[string]Fingerprint
	keys    map[string][]byte
}

// openWAL opens or creates the log beside the db, applies what it holds
// of the current epoch to db, and makes it ready for appends. A log with
// damaged acknowledged records is a *WALDamageError unless salvage is set.
func openWAL(db *bolt.DB, dbPath string, size int64, noSync, salvage bool) (*wal, ReplayStats, error) {
	st := ReplayStats{DamagedAt: -1}
	var epoch uint64
	if err := db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyWALEpoch); len(v) == 8 {
			epoch = binary.BigEndian.Uint64(v)
		}
		return nil
	}); err != nil {
		return nil, st, err
	}
	path := dbPath + walSuffix
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, st, err
	}
	w := &wal{f: f, path: path, size: size, epoch: epoch, noSync: noSync, created: map[string]Fingerprint{}, keys: map[string][]byte{}}
	data, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<62))
	if err != nil {
		f.Close()
		return nil, st, fmt.Errorf("read %s: %w", path, err)
	}
	sc := readWAL(data, epoch)
	if sc.damaged() && !salvage {
		f.Close()
		return nil, st, &WALDamageError{Path: path, Offset: sc.badOff, Before: sc.clean, After: sc.after, Lost: sc.lost}
	}
	// Applying a cut-short log would start the next epoch over what it
	// lost: the whole file may still exist elsewhere.
	if sc.cutShort(data, epoch, size) {
		if !salvage {
			f.Close()
			return nil, st, &WALDamageError{Path: path, Offset: int64(len(data)), Before: sc.clean, Truncated: true, Size: size}
		}
		st.DamagedAt, st.Salvaged, st.Truncated = int64(len(data)), true, true
	}
	if sc.badOff >= 0 {
		st.DamagedAt, st.Lost, st.Salvaged = sc.badOff, sc.lost, sc.damaged()
	}
	st.Replayed = len(sc.ops)
	for _, op := range sc.ops {
		w.pending = append(w.pending, &op)
	}
	if err := w.apply(db, nil); err != nil {
		f.Close()
		return nil, st, fmt.Errorf("replay %s: %w", path, err)
	}
	if err := w.preallocate(int64(len(data))); err != nil {
		f.Close()
		return nil, st, fmt.Errorf("preallocate %s: %w", path, err)
	}
	return w, st, nil
}

// preallocate writes zeros from have to the log's size, and syncs the file
// and its directory, so that appends change no file metadata.
func (w *wal) preallocate(have int64) error {
	if have >= w.size {
		return nil
	}
	zeros := make([]byte, 256<<10)
	for off := have; off < w.size; off += int64(len(zeros)) {
		n := min(int64(len(zeros)), w.size-off)
		if _, err := w.f.WriteAt(zeros[:n], off); err != nil {
			return err
		}
	}
	if w.noSync {
		return nil
	}
	if err := w.f.Sync(); err != nil {
		return err
	}
	return safefile.SyncDir(filepath.Dir(w.path))
}

// fits reports whether records of n bytes fit after the current end.
func (w *wal) fits(n int) bool { return w.off+int64(n) <= w.size }

// half reports whether the log is half full, when it is applied.
func (w *wal) half() bool { return w.off >= w.size/2 }

// append writes the records in w.buf at the end of the log and syncs
// them; ops are what they hold.
func (w *wal) append(ops []*walOp) error {
	if _, err := w.f.WriteAt(w.buf, w.off); err != nil {
		return err
	}
	if !w.noSync {
		if err := fdatasync(w.f); err != nil {
			return err
		}
	}
	w.off += int64(len(w.buf))
	w.seq += uint32(len(ops))
	for _, op := range ops {
		w.pending = append(w.pending, op)
		if op.created != nil {
			w.created[op.id] = op.fp
		}
		w.keys[string(op.fkey)] = op.val
	}
	return nil
}

// apply writes the pending ops, then extra (writes too big for the log),
// to db in one synced commit that also moves the log to a new epoch, and
// restarts the log at offset 0. It does nothing when there is nothing to
// apply.
func (w *wal) apply(db *bolt.DB, extra []*walOp) error {
	if len(w.pending) == 0 && len(extra) == 0 {
		return nil
	}
	next := w.epoch + 1
	err := db.Update(func(tx *bolt.Tx) error {
		for _, ops := range [][]*walOp{w.pending, extra} {
			for _, op := range ops {
				if err := op.apply(tx); err != nil {
					return err
				}
			}
		}
		return tx.Bucket(bucketMeta).Put(keyWALEpoch, binary.BigEndian.AppendUint64(nil, next))
	})
	if err != nil {
		return err
	}
	w.epoch, w.off, w.seq = next, 0, 0
	clear(w.pending)
	w.pending = w.pending[:0]
	clear(w.created)
	clear(w.keys)
	return nil
}

// close closes the file and, when everything was applied, removes it: a
// stopped server leaves only the db file.
func (w *wal) close(applied bool) error {
	err := w.f.Close()
	if applied && err == nil {
		err = os.Remove(w.path)
	}
	return err
}

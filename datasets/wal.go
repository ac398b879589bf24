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
//	crc     uint32  CRC-32C of epoch and payload
//	epoch   uint64  the log's epoch when written
//	payload         the feedback write (encodeWALOp)
//
// The epoch is kept in the meta bucket and bumped in the same bbolt
// transaction that applies the log, after which appends restart at offset
// 0. Replay reads records from offset 0 while they are whole, their CRC
// matches and their epoch is the current one, and stops at the first that
// is not: a torn tail (a crash mid-append, never acknowledged), the zeros
// of the preallocation, or a record left from an applied epoch. A crash
// after the apply but before the next append leaves only old-epoch records,
// which replay skips, so a record is applied once in effect (applying one
// twice is harmless anyway: the write is a put of the same value).
const (
	// DefaultWALSize is the feedback log's preallocated size; it is
	// applied to bbolt when half full (about 20,000 usual writes).
	DefaultWALSize = 4 << 20
	walHeader      = 16
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

// appendWALRecord appends op as one log record of epoch.
func appendWALRecord(b []byte, epoch uint64, op *walOp) []byte {
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
	crc := crc32.Update(0, crcTable, h[8:16])
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

// readWAL returns the ops of the records of epoch from the start of data,
// up to the first record that is torn, corrupt or of another epoch.
func readWAL(data []byte, epoch uint64) []walOp {
	var ops []walOp
	for off := 0; off+walHeader <= len(data); {
		h := data[off : off+walHeader]
		n := int(binary.BigEndian.Uint32(h[0:]))
		if n == 0 || n > len(data)-off-walHeader || binary.BigEndian.Uint64(h[8:]) != epoch {
			break
		}
		p := data[off+walHeader : off+walHeader+n]
		crc := crc32.Update(crc32.Update(0, crcTable, h[8:16]), crcTable, p)
		if crc != binary.BigEndian.Uint32(h[4:]) {
			break
		}
		op, err := decodeWALOp(p)
		if err != nil {
			break
		}
		ops = append(ops, op)
		off += walHeader + n
	}
	return ops
}

// wal is the open log. Only the committer goroutine uses it after open.
type wal struct {
	f      *os.File
	path   string
	size   int64
	off    int64  // where the next append goes
	epoch  uint64 // of the records being appended
	noSync bool
	buf    []byte
	// pending are the ops appended since the last apply, in order;
	// created holds the ids they create, so later feedback finds them.
	pending []*walOp
	created map[string]struct{}
}

// openWAL opens or creates the log beside the db, applies what it holds
// of the current epoch to db, and makes it ready for appends.
func openWAL(db *bolt.DB, dbPath string, size int64, noSync bool) (*wal, error) {
	var epoch uint64
	if err := db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketMeta).Get(keyWALEpoch); len(v) == 8 {
			epoch = binary.BigEndian.Uint64(v)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	path := dbPath + walSuffix
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	w := &wal{f: f, path: path, size: size, epoch: epoch, noSync: noSync, created: map[string]struct{}{}}
	data, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<62))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	for _, op := range readWAL(data, epoch) {
		w.pending = append(w.pending, &op)
	}
	if err := w.apply(db, nil); err != nil {
		f.Close()
		return nil, fmt.Errorf("replay %s: %w", path, err)
	}
	if err := w.preallocate(int64(len(data))); err != nil {
		f.Close()
		return nil, fmt.Errorf("preallocate %s: %w", path, err)
	}
	return w, nil
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
	d, err := os.Open(filepath.Dir(w.path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
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
	for _, op := range ops {
		w.pending = append(w.pending, op)
		if op.created != nil {
			w.created[op.id] = struct{}{}
		}
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
	w.epoch, w.off = next, 0
	clear(w.pending)
	w.pending = w.pending[:0]
	clear(w.created)
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

package datasets

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/triage-router/triage/datasets/safefile"
	"github.com/triage-router/triage/internal/pathonce"
	"github.com/triage-router/triage/internal/plural"
)

// The bbolt layout. Every bucket is created when the store opens, so no
// request path ever creates one.
//
//	log:      key = unix nanos (8, big-endian) + sequence (8, big-endian)
//	          value = storedRequest JSON. Keys sort by time, so an export
//	          is in time order whatever order the writes committed in.
//	ids:      key = request id, value = its 16-byte log key.
//	feedback: key = request id + 0x00 + model, value = Outcome JSON. A
//	          prefix scan on "id\x00" finds every model's feedback.
//	meta:     "schema" = storeSchema.
//	responses:         key = a Responses API response id, value =
//	                   its expiry (unix nanos, 8, big-endian) + the
//	                   log key (16) of the record of the request whose
//	                   answer gave it + the proxy tier that stored it
//	                   + (if it has one) 0x00 and the name of the
//	                   client key it was made with, its owner
//	                   (StoredResponse). The record names the id
//	                   (response_id), so retention removes the entry
//	                   with it.
//	responses_expiry:  key = expiry (8, big-endian) + the response
//	                   id, value empty: what AppendDecisions prunes
//	                   from, oldest first.
var (
	bucketLog      = []byte("log")
	bucketIDs      = []byte("ids")
	bucketFeedback = []byte("feedback")
	bucketMeta     = []byte("meta")
	keySchema      = []byte("schema")
	// The responses buckets came after schema 1; Open creates them in a
	// file that lacks them, which a build without them ignores. A
	// read-only open cannot create them, so every reader takes a missing
	// one as empty.
	bucketResponses      = []byte("responses")
	bucketResponseExpiry = []byte("responses_expiry")
)

// storeSchema is the bucket layout version; Open refuses another one.
const storeSchema = "1"

// Store defaults, used when the StoreOptions field is zero.
const (
	// DefaultStoreTimeout is how long Open waits for the file lock before
	// saying another process holds it.
	DefaultStoreTimeout = time.Second
	// DefaultPageSize is bbolt's page size for new files. Larger than the
	// usual 4 KiB because logged prompts are often 1-4 KB: at 4 KiB a 2 KB
	// record takes a page (and a write syscall) of its own.
	DefaultPageSize = 16 << 10
	// DefaultMaxBatchSize caps the feedback writes in one commit.
	DefaultMaxBatchSize = 1000
	// exportChunk is how many log records one read transaction of an
	// export covers: short transactions, so an export never holds the
	// file's mmap against a growing database.
	exportChunk = 512
	// MaxIDBytes caps request ids and model names (they are bbolt keys).
	MaxIDBytes = 256
)

// ErrUnknownRequest is returned for feedback about a request id the store
// has no record of, when the feedback carries no prompt to create one.
var ErrUnknownRequest = errors.New("unknown request id")

// ErrStoreLocked is wrapped when another process holds the database file.
var ErrStoreLocked = errors.New("feedback db is locked by another process")

// lockedError names the file another process holds.
type lockedError struct{ path string }

func (e *lockedError) Error() string {
	return fmt.Sprintf("feedback db %s is locked by another process (is a triage serve running?); stop it or use another --db", e.path)
}

func (e *lockedError) Is(target error) bool { return target == ErrStoreLocked }

// StoreOptions tunes a BoltStore. The zero value is the defaults.
type StoreOptions struct {
	// Timeout is how long Open waits for the file lock; 0 means
	// DefaultStoreTimeout. A negative value fails at once.
	Timeout time.Duration
	// MaxBatchSize caps the feedback writes sharing one commit; 0 means
	// DefaultMaxBatchSize.
	MaxBatchSize int
	// PageSize is the page size of a new file (an existing file keeps
	// its own); 0 means DefaultPageSize.
	PageSize int
	// WALSize is the preallocated size of the feedback log beside the db
	// (path + "-wal"); 0 means DefaultWALSize. It is applied to the db
	// when half full.
	WALSize int64
	// NoSync skips fsync on commit. Only for tests and benchmarks that
	// measure something else: a crash may then lose acknowledged writes.
	NoSync bool
	// Init lets Open start a new store in an existing empty (0-byte)
	// file, which is otherwise refused (ErrEmptyDB): a feedback db is
	// never empty, so an empty file is a crash or a failed copy, and the
	// wrong file to silently start afresh in.
	Init bool
	// SalvageLog lets Open apply a feedback log whose acknowledged
	// records are partly unreadable: the bad bytes are skipped and every
	// readable record applied (ReplayStats says how many were lost).
	// Without it such a log is a *WALDamageError and nothing is applied.
	SalvageLog bool
	// ReadOnly opens an existing db for reading only: the file is opened
	// read-only under a shared lock, and nothing is created, written or
	// removed beside it (no feedback log), so a db on a read-only disk or
	// in a folder the user cannot write opens. A feedback log beside it
	// that holds writes not yet applied (a server that was killed) is an
	// *UnappliedLogError: applying them needs write access, and reading
	// without them would miss acknowledged feedback. Writes to the store
	// fail with ErrStoreReadOnly.
	ReadOnly bool
}

// ErrStoreReadOnly is the error of a write to a store opened ReadOnly.
var ErrStoreReadOnly = errors.New("feedback db is open read-only")

// UnappliedLogError says a ReadOnly open found, beside the db, a feedback
// log with writes not yet applied to it (or damaged ones), which only a
// read-write open applies (or reports).
type UnappliedLogError struct {
	// Log is the feedback log's path.
	Log string
	// Writes counts the readable writes it holds.
	Writes int
}

func (e *UnappliedLogError) Error() string {
	return fmt.Sprintf("the feedback log %s holds %s not yet applied to the db (or damaged ones); applying them needs write access to the db and its folder", e.Log, plural.Count(e.Writes, "write"))
}

// BoltStore keeps the server's decision log and feedback in one bbolt
// file. It is safe for concurrent use. Only one process may open the file
// read-write; others get ErrStoreLocked after Timeout.
type BoltStore struct {
	db   *bolt.DB
	path string

	// Feedback writes go through a group commit: one goroutine takes
	// every write waiting when the previous commit ends and appends them
	// together to the write-ahead log (see committer and wal.go).
	commits  chan *commitReq
	maxBatch int
	stats    commitStats
	wal      *wal
	replay   ReplayStats
	// removedSnapshots are the snapshot copies Open found and removed.
	removedSnapshots []string
	// failed is set by the committer after a disk error; every later
	// write and flush returns it (the log is replayed at the next open),
	// and so does Ping, so that readiness follows it. Only the committer
	// stores it.
	failed   atomic.Pointer[error]
	closeErr error
	// pendingFP holds the fingerprints of the requests created by writes
	// still in the log (not yet in the ids bucket), so RequestFingerprint
	// sees them. fpMu orders its updates with the log's applies.
	fpMu      sync.RWMutex
	pendingFP map[string]Fingerprint
	// crashOnClose makes Close skip applying the log, leaving the files
	// as a killed process would; for tests of the replay.
	crashOnClose bool
	// readOnly: opened with StoreOptions.ReadOnly; there is no log and
	// no committer, and writes fail.
	readOnly bool
	// logDropped says dropLog closed and removed the log's file, which
	// Close must then leave alone. Only the committer uses it.
	logDropped bool
	mu         sync.RWMutex // guards closed against sends on commits
	closed     bool
	done       chan struct{}
	closeOnce  sync.Once
	closeRes   error
}

// closeHook, when set, runs in the committer when Close has stopped the
// writes and before the log is applied; for tests of concurrent closes.
var closeHook func()

// commitStats counts group commits, for metrics.
type commitStats struct {
	commits, writes, nanos, applies, applyNanos atomic.Int64
}

// CommitStats are totals of the feedback group commits since open: the
// mean group is Writes/Commits, the mean commit time (log append and
// fdatasync) Time/Commits. Applies counts the applications of the log to
// the db, which took ApplyTime.
type CommitStats struct {
	Commits   int64
	Writes    int64
	Time      time.Duration
	Applies   int64
	ApplyTime time.Duration
}

// CommitStats returns the group-commit totals.
func (s *BoltStore) CommitStats() CommitStats {
	return CommitStats{Commits: s.stats.commits.Load(), Writes: s.stats.writes.Load(), Time: time.Duration(s.stats.nanos.Load()),
		Applies: s.stats.applies.Load(), ApplyTime: time.Duration(s.stats.applyNanos.Load())}
}

// commitReq is one write waiting for the group commit; with a nil op, a
// request to apply the log to the db, and then run job if it is set.
type commitReq struct {
	op  *walOp
	job func(*bolt.DB) error
	// found, replaced and rescored are set before err is sent: whether
	// op's request id is known, whether op merges into earlier feedback
	// for its (request, model), and whether that feedback had a score.
	found, replaced, rescored bool
	// conflict: op would create its request, but the store already
	// holds the id with another prompt; nothing was written.
	conflict bool
	// damaged: op's request record could not be read; nothing was
	// written, and this is the write's error.
	damaged error
	err     chan error
}

// File growth settings (see OpenBoltStore).
const (
	initialMmapSize = 1 << 30
	allocSize       = 128 << 20
)

// OpenBoltStore opens or creates the store at path and creates its
// buckets. An existing file is checked first (verifyDB): a damaged one is
// a *DamageError saying what to do, never a fault or a panic in bbolt.
func OpenBoltStore(path string, opts StoreOptions) (*BoltStore, error) {
	// A store opened while `feedback compact` replaces the file can lock
	// the old file after the new one took its name, and would then record
	// into a deleted file (openBoltStore says errReplaced). The new file
	// is complete by then: open that one.
	for attempt := 1; ; attempt++ {
		s, err := openBoltStore(path, opts)
		if !errors.Is(err, errReplaced) || attempt == 3 {
			return s, err
		}
	}
}

// errReplaced says the db file was replaced by another (a compaction)
// while it was being opened.
var errReplaced = errors.New("the file was replaced by another while it was being opened (a feedback compact?); open it again")

// afterBoltOpen, when set by a test, runs once bbolt holds the file's
// lock, to replace the file at that moment.
var afterBoltOpen func()

func openBoltStore(path string, opts StoreOptions) (*BoltStore, error) {
	timeout := opts.Timeout
	switch {
	case timeout == 0:
		timeout = DefaultStoreTimeout
	case timeout < 0:
		// bbolt treats 0 as "wait forever"; the smallest wait is what
		// "fail at once" means here.
		timeout = time.Nanosecond
	}
	pageSize := opts.PageSize
	if pageSize <= 0 {
		pageSize = DefaultPageSize
	}
	before, err := os.Stat(path)
	switch fi := before; {
	case errors.Is(err, os.ErrNotExist):
		// A new db is created, but not its folder: say so rather than
		// bbolt's bare "no such file or directory".
		if dir := filepath.Dir(path); dir != "." {
			if _, derr := os.Stat(dir); errors.Is(derr, os.ErrNotExist) {
				return nil, fmt.Errorf("open feedback db %s: its folder %s does not exist; create it (mkdir -p %s) or give --db a path in an existing folder", path, dir, dir)
			}
		}
		if err := orphanWAL(path, "does not exist"); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("open feedback db: %w", err)
	case !fi.Mode().IsRegular():
		// Not "(it is created if absent)": export and compact open an
		// existing db only, and print this too.
		return nil, fmt.Errorf("open feedback db: %s is %s, not a regular file; give --db the path of the feedback db file", path, safefile.KindOf(fi.Mode()))
	case fi.Size() == 0:
		if !opts.Init {
			return nil, emptyDBError(path)
		}
		// --init starts a new store in the file; a log beside it holds
		// acknowledged writes of the db that file once was, which the new
		// store would apply to nothing and then delete.
		if err := orphanWAL(path, "is 0 bytes"); err != nil {
			return nil, err
		}
	default:
		if err := verifyDB(path, timeout); err != nil {
			return nil, err
		}
	}
	if opts.ReadOnly {
		if before == nil || before.Size() == 0 {
			return nil, fmt.Errorf("open feedback db %s read-only: it does not exist or is empty, and a read-only open creates nothing", path)
		}
		return openReadOnly(path, timeout, opts)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: timeout,
		// The freelist is written on every commit. Without it bbolt
		// rebuilds the list at open by a scan of the whole tree that
		// panics, in a goroutine no recover reaches, on the first
		// inconsistency, and Tx.Check runs that same scan. Feedback
		// commits go to the write-ahead log, so the freelist page costs
		// the db's commits (log applies, decision-log batches), not each
		// feedback write (docs/serving.md has the measurement).
		NoFreelistSync: false,
		FreelistType:   bolt.FreelistMapType,
		PageSize:       pageSize,
		// The decision log grows the file by the prompts it records
		// (tens of MB/s under load). Reserving address space up front
		// spares the remaps (each waits for every open transaction) that
		// doubling from a small map would cost; it is virtual memory only.
		InitialMmapSize: initialMmapSize,
	})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, &lockedError{path: path}
		}
		return nil, fmt.Errorf("open feedback db %s: %w", path, pathonce.Inner(path, err))
	}
	if afterBoltOpen != nil {
		afterBoltOpen()
	}
	// The lock is on the file bbolt opened. If path names another file
	// now, a compaction renamed its output over it while this waited for
	// the lock: what this store wrote would be lost with the old file.
	if before != nil {
		if now, err := os.Stat(path); err != nil || !os.SameFile(before, now) {
			db.Close()
			return nil, fmt.Errorf("open feedback db %s: %w", path, errReplaced)
		}
	}
	// A snapshot's temporary copy (as big as the db) outlives a process
	// that stopped while it was streamed: killed, or shut down with a
	// download still in flight. This store holds the db's lock, so no
	// snapshot of it is being written now.
	removed := removeSnapshotCopies(path)
	maxBatch := opts.MaxBatchSize
	if maxBatch <= 0 {
		maxBatch = DefaultMaxBatchSize
	}
	db.NoSync = opts.NoSync
	// Grow the file in larger steps: each step is a truncate and an
	// fsync, and the decision log needs many of bbolt's default 16 MiB.
	db.AllocSize = allocSize
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketLog, bucketIDs, bucketFeedback, bucketMeta, bucketResponses, bucketResponseExpiry} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		switch v := meta.Get(keySchema); {
		case v == nil:
			return meta.Put(keySchema, []byte(storeSchema))
		case string(v) != storeSchema:
			return fmt.Errorf("schema is %q, this build reads %q; export it with the triage that wrote it", v, storeSchema)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open feedback db %s: %w", path, err)
	}
	walSize := opts.WALSize
	if walSize <= 0 {
		walSize = DefaultWALSize
	}
	w, replay, err := openWAL(db, path, walSize, opts.NoSync, opts.SalvageLog)
	if err != nil {
		db.Close()
		var de *WALDamageError
		if errors.As(err, &de) {
			return nil, err
		}
		return nil, fmt.Errorf("open feedback db %s: feedback log: %w", path, err)
	}
	st := &BoltStore{db: db, path: path, commits: make(chan *commitReq, 4096), maxBatch: maxBatch, wal: w,
		replay: replay, pendingFP: map[string]Fingerprint{}, done: make(chan struct{}), removedSnapshots: removed}
	go st.committer()
	return st, nil
}

// openReadOnly is OpenBoltStore with ReadOnly set, once the file passed
// verifyDB.
func openReadOnly(path string, timeout time.Duration, opts StoreOptions) (*BoltStore, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		ReadOnly:        true,
		Timeout:         timeout,
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: initialMmapSize,
	})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, &lockedError{path: path}
		}
		return nil, fmt.Errorf("open feedback db %s read-only: %w", path, pathonce.Inner(path, err))
	}
	// What a read-write open would create, it can only check here.
	var epoch uint64
	err = db.View(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketLog, bucketIDs, bucketFeedback, bucketMeta} {
			if tx.Bucket(name) == nil {
				return fmt.Errorf("it has no %s bucket: it is no feedback db, or one triage serve never opened", name)
			}
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keySchema); string(v) != storeSchema {
			return fmt.Errorf("schema is %q, this build reads %q; export it with the triage that wrote it", v, storeSchema)
		}
		if v := meta.Get(keyWALEpoch); len(v) == 8 {
			epoch = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open feedback db %s: %w", path, err)
	}
	// A log of the current epoch holds writes the db lacks: as openWAL
	// reads it, but nothing is applied (a torn last append, which was
	// never acknowledged, is skipped as openWAL skips it).
	logPath := path + walSuffix
	data, err := os.ReadFile(logPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		db.Close()
		return nil, fmt.Errorf("open feedback db %s: feedback log: %w", path, err)
	}
	walSize := opts.WALSize
	if walSize <= 0 {
		walSize = DefaultWALSize
	}
	if sc := readWAL(data, epoch); len(sc.ops) > 0 || sc.damaged() || len(data) > 0 && sc.cutShort(data, epoch, walSize) {
		db.Close()
		return nil, &UnappliedLogError{Log: logPath, Writes: len(sc.ops)}
	}
	done := make(chan struct{})
	close(done)
	return &BoltStore{db: db, path: path, readOnly: true, done: done, replay: ReplayStats{DamagedAt: -1}}, nil
}

// snapshotPattern is the CreateTemp pattern of a snapshot's temporary
// copy of the db at path.
func snapshotPattern(path string) string { return "." + filepath.Base(path) + ".snapshot-*" }

// removeSnapshotCopies removes the temporary copies snapshots of the db
// at path left beside it, and returns their names: the names Snapshot's
// CreateTemp pattern makes, "." + the db's name + ".snapshot-" + digits
// (matched by prefix, as staleCompactions matches, so a db named with
// glob syntax finds its own and another db's are left alone).
func removeSnapshotCopies(path string) []string {
	dir, prefix := filepath.Dir(path), strings.TrimSuffix(snapshotPattern(path), "*")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var removed []string
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || rest == "" || !e.Type().IsRegular() || strings.Trim(rest, "0123456789") != "" {
			continue
		}
		if p := filepath.Join(dir, e.Name()); os.Remove(p) == nil {
			removed = append(removed, p)
		}
	}
	return removed
}

// RemovedSnapshots names the temporary snapshot copies that opening the
// store found beside the db and removed: left by a process that stopped
// while a snapshot was being downloaded.
func (s *BoltStore) RemovedSnapshots() []string { return s.removedSnapshots }

// orphanWAL reports a feedback log left where its db is missing (or, with
// --init, 0 bytes; state says which): its records are acknowledged writes
// that a new db would silently skip.
func orphanWAL(path, state string) error {
	held, err := walHoldsData(path)
	if err != nil {
		return fmt.Errorf("open feedback db: %w", err)
	}
	if !held {
		return nil
	}
	return fmt.Errorf("open feedback db: the feedback log %s%s holds writes, but the db %s %s: the db was moved, removed or emptied without its log, which holds acknowledged feedback. Put the db back, or move the log aside to start a new store",
		path, walSuffix, path, state)
}

// walHoldsData reports whether the feedback log beside the db at path
// exists and holds anything but zeros.
func walHoldsData(path string) (bool, error) {
	data, err := os.ReadFile(path + walSuffix)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, c := range data {
		if c != 0 {
			return true, nil
		}
	}
	return false, nil
}

// Replay says what Open found in the feedback log and applied.
func (s *BoltStore) Replay() ReplayStats { return s.replay }

// maxLinger caps how long a commit waits for writers to come back.
const maxLinger = time.Millisecond

// gather adds waiting writes to group: all that are queued, then more
// until target or linger passes.
func (s *BoltStore) gather(group *[]*commitReq, target int, linger time.Duration) {
	for len(*group) < s.maxBatch {
		select {
		case r, ok := <-s.commits:
			if !ok {
				return
			}
			*group = append(*group, r)
			continue
		default:
		}
		break
	}
	if len(*group) >= target || linger <= 0 {
		return
	}
	t := time.NewTimer(linger)
	defer t.Stop()
	for len(*group) < target {
		select {
		case r, ok := <-s.commits:
			if !ok {
				return
			}
			*group = append(*group, r)
		case <-t.C:
			return
		}
	}
}

// ErrStoreClosed is returned by writes after Close.
var ErrStoreClosed = errors.New("feedback db is closed")

// send queues r for the committer and waits for its answer.
func (s *BoltStore) send(r *commitReq) error {
	if err := s.queue(r); err != nil {
		return err
	}
	return <-r.err
}

// queue hands reqs to the committer, together, unless the store is closed.
func (s *BoltStore) queue(reqs ...*commitReq) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrStoreClosed
	}
	if s.readOnly {
		return ErrStoreReadOnly
	}
	for _, r := range reqs {
		s.commits <- r
	}
	return nil
}

// flush applies the feedback log to the db, so a read of the db sees every
// acknowledged write.
func (s *BoltStore) flush() error {
	if s.readOnly {
		return nil // the open found no log to apply
	}
	if err := s.send(&commitReq{err: make(chan error, 1)}); err != nil {
		return fmt.Errorf("apply feedback log: %w", err)
	}
	return nil
}

// committer is the group commit. bbolt's own DB.Batch starts a batch's
// timer at its first write, so under steady load batches fragment into
// many small commits queued on the writer lock (measured here: 5 to 11
// writes per commit with 64 writers, about 6,000 writes/s). Here a lone
// write commits at once, and under load a commit carries every write
// waiting when the previous one ended, plus those that come back within
// a quarter of the last commit's time (at most maxLinger): measured, 30
// writes per commit without that wait and 61 with it, for 64 writers.
// A commit is an append to the write-ahead log (wal.go).
func (s *BoltStore) committer() {
	defer close(s.done)
	var group []*commitReq
	lastN, lastDur := 0, time.Duration(0)
	for first := range s.commits {
		group = append(group[:0], first)
		// Writers released by the last commit tend to come straight back;
		// waiting briefly for them keeps everyone in one group. Without it
		// the writers settle into two groups that take turns, and each
		// commit carries half of them.
		target := min(lastN+len(s.commits)+1, s.maxBatch)
		s.gather(&group, target, min(lastDur/4, maxLinger))
		n, d := s.commitGroup(group)
		if n > 0 {
			lastN, lastDur = n, d
			s.stats.commits.Add(1)
			s.stats.writes.Add(int64(n))
			s.stats.nanos.Add(int64(lastDur))
		}
	}
	if closeHook != nil {
		closeHook()
	}
	if s.crashOnClose {
		s.wal.f.Close()
		return
	}
	if s.failure() == nil {
		if err := s.apply(nil); err != nil {
			s.fail(err)
		}
	}
	if !s.logDropped {
		if err := s.wal.close(s.failure() == nil); err != nil && s.failure() == nil {
			s.fail(err)
		}
	}
	s.closeErr = s.failure()
}

// dropLog applies the feedback log, then closes and removes its file; the
// store takes no feedback writes after it. An in-place compaction calls it
// before its rename, while it still holds the db's lock: from the rename
// on, a store opened on the new file uses a log at the same path, which
// this store's Close would otherwise remove.
func (s *BoltStore) dropLog() error {
	err := s.send(&commitReq{job: func(*bolt.DB) error {
		s.logDropped = true
		return s.wal.close(true)
	}, err: make(chan error, 1)})
	if err != nil {
		return fmt.Errorf("remove feedback log: %w", err)
	}
	return nil
}

// fail records the committer's first disk error: every later write fails
// with it, and so does Ping.
func (s *BoltStore) fail(err error) {
	if s.failed.Load() == nil {
		s.failed.Store(&err)
	}
}

// failure is the recorded disk error, or nil.
func (s *BoltStore) failure() error {
	if p := s.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// commitGroup appends the group's writes to the log, applies the log if
// it is half full or the group asks for it, runs the group's jobs, and
// answers every request. It returns the number of writes appended and how
// long they took to commit (without the apply that may follow).
func (s *BoltStore) commitGroup(group []*commitReq) (int, time.Duration) {
	start := time.Now()
	if err := s.failure(); err != nil {
		for _, r := range group {
			r.err <- err
		}
		return 0, 0
	}
	w := s.wal
	var ops []*walOp
	flush := false
	var creates map[string]Fingerprint
	// Feedback needs its request: one the db knows, one created by an
	// earlier write still in the log, or one it creates.
	err := s.db.View(func(tx *bolt.Tx) error {
		ids, fb := tx.Bucket(bucketIDs), tx.Bucket(bucketFeedback)
		for _, r := range group {
			if r.op == nil {
				flush = true
				continue
			}
			pendingFP, pending := w.created[r.op.id]
			known := pending || ids.Get([]byte(r.op.id)) != nil
			r.found = r.op.created != nil || known
			if !r.found {
				continue
			}
			if r.op.created != nil && known {
				// Feedback that carries its prompt for an id the store
				// already holds: the score would label the stored prompt.
				// The server checks this before it writes, but a route
				// of the id can land in between.
				have := pendingFP
				if !pending {
					var err error
					if have, _, _, err = requestFingerprintIn(tx, r.op.id); err != nil {
						// Damage inside one stored record fails the
						// write about it. Returned from here it failed
						// the whole group and then the store (s.fail):
						// every later write, for any id, refused as a
						// disk error that a restart does not clear.
						r.damaged = fmt.Errorf("%w: request %q: %w; run 'triage feedback check --db %s' to list the damage", ErrDamaged, r.op.id, err, s.path)
						continue
					}
				}
				if have != r.op.fp {
					r.conflict = true
					continue
				}
			}
			// The key's latest value: in the log (this group's earlier
			// writes included), else in the db.
			prev, again := w.keys[string(r.op.fkey)]
			if !again {
				prev = fb.Get(r.op.fkey)
			}
			if prev != nil {
				r.replaced = true
				r.op.val, r.rescored = mergeStored(prev, r.op.val)
			}
			ops = append(ops, r.op)
			// Later writes of the group see this one's key and value.
			w.keys[string(r.op.fkey)] = r.op.val
			if r.op.created != nil && !known {
				w.created[r.op.id] = r.op.fp
				if creates == nil {
					creates = map[string]Fingerprint{}
				}
				creates[r.op.id] = r.op.fp
			}
		}
		return nil
	})
	if err == nil && len(ops) > 0 {
		err = s.appendOps(ops)
	}
	if err != nil {
		s.fail(fmt.Errorf("feedback log: %w", err))
		for _, r := range group {
			r.err <- s.failure()
		}
		return 0, 0
	}
	if len(creates) > 0 {
		s.fpMu.Lock()
		for id, fp := range creates {
			// A group too big for the log went straight to the db
			// (appendOps), and is not in it: an entry here would outlive
			// the record, which pendingFP says is undecided whatever a
			// route gives it, and present after retention removes it.
			if _, inLog := w.created[id]; inLog {
				s.pendingFP[id] = fp
			}
		}
		s.fpMu.Unlock()
	}
	d := time.Since(start)
	// The writes are durable: answer them before any apply, which a
	// failure would fail the flushes and later writes for, not them.
	for _, r := range group {
		if r.op != nil {
			r.err <- r.damaged
		}
	}
	if flush || w.half() {
		if err := s.apply(nil); err != nil {
			s.fail(err)
		}
	}
	if flush {
		for _, r := range group {
			if r.op != nil {
				continue
			}
			err := s.failure()
			if err == nil && r.job != nil {
				// A job (retention) runs here, between appends, so no
				// feedback write is acknowledged for a request it is
				// deleting: the write either found the request before
				// the job (and the apply above put it in the db, where
				// the job sees it), or comes after and finds it gone.
				err = r.job(s.db)
			}
			r.err <- err
		}
	}
	return len(ops), d
}

// appendOps appends ops to the log, applying the log first when they do
// not fit; a group too big for even an empty log is applied with it.
func (s *BoltStore) appendOps(ops []*walOp) error {
	w := s.wal
	encode := func() {
		w.buf = w.buf[:0]
		for i, op := range ops {
			w.buf = appendWALRecord(w.buf, w.epoch, w.seq+uint32(i), w.seq, op)
		}
	}
	encode()
	if w.fits(len(w.buf)) {
		return w.append(ops)
	}
	if int64(len(w.buf)) > w.size/2 {
		return s.apply(ops)
	}
	if err := s.apply(nil); err != nil {
		return err
	}
	encode() // in the new epoch
	return w.append(ops)
}

// apply applies the log (and extra) to the db, timed for CommitStats.
func (s *BoltStore) apply(extra []*walOp) error {
	if len(s.wal.pending) == 0 && len(extra) == 0 {
		return nil
	}
	start := time.Now()
	// RequestFingerprint reads pendingFP and then the db under fpMu: the
	// apply commits and clears the map under it, so a reader sees a
	// created request in one or the other.
	s.fpMu.Lock()
	err := s.wal.apply(s.db, extra)
	if err == nil {
		clear(s.pendingFP)
	}
	s.fpMu.Unlock()
	if err != nil {
		return fmt.Errorf("apply feedback log: %w", err)
	}
	s.stats.applies.Add(1)
	s.stats.applyNanos.Add(int64(time.Since(start)))
	return nil
}

// Path is the database file.
func (s *BoltStore) Path() string { return s.path }

// Close waits for pending writes to commit and closes the database.
// Every call returns once the store is closed, with the first call's
// result: a second Close racing the first (a server's shutdown and a
// deferred close) must not return while the first still applies the
// log, or its caller goes on to use or remove the files under it.
func (s *BoltStore) Close() error {
	s.closeOnce.Do(func() { s.closeRes = s.close() })
	return s.closeRes
}

func (s *BoltStore) close() error {
	if s.readOnly {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		if err := s.db.Close(); err != nil {
			return fmt.Errorf("close feedback db: %w", err)
		}
		return nil
	}
	s.mu.Lock()
	s.closed = true
	close(s.commits)
	s.mu.Unlock()
	<-s.done
	// A snapshot still streaming to a client that stopped reading (there
	// is no write deadline on the admin streams) would leave its copy
	// when the process exits after this: the copy is removed now, under
	// the db's lock (the copier's open file still reads on unix).
	removeSnapshotCopies(s.path)
	err := s.db.Close()
	if s.closeErr != nil {
		return fmt.Errorf("close feedback db: %w", s.closeErr)
	}
	if err != nil {
		return fmt.Errorf("close feedback db: %w", err)
	}
	return nil
}

// ErrWritesFailing is wrapped by Ping after a disk error made the
// feedback log fail: every feedback write fails until a restart.
var ErrWritesFailing = errors.New("feedback writes fail since a disk error")

// Ping reports whether the database is usable: open, readable, and
// taking feedback writes. After a disk error every feedback write fails
// until the server restarts, and Ping says why (ErrWritesFailing).
func (s *BoltStore) Ping() error {
	if err := s.failure(); err != nil {
		return fmt.Errorf("%w (%w); fix the disk and restart the server, which replays the feedback log", ErrWritesFailing, err)
	}
	if err := s.db.View(func(*bolt.Tx) error { return nil }); err != nil {
		if errors.Is(err, berrors.ErrDatabaseNotOpen) {
			return ErrStoreClosed
		}
		return fmt.Errorf("feedback db: %w", err)
	}
	return nil
}

// Size is the database's size in bytes as of the last commit.
func (s *BoltStore) Size() int64 {
	var n int64
	s.db.View(func(tx *bolt.Tx) error { n = tx.Size(); return nil })
	return n
}

// LogEntry is one routed request for the decision log.
type LogEntry struct {
	// ID is the request id. An id the store already holds keeps its
	// record (and feedback): routing a request again does not log it
	// twice. Only a record created by feedback, which has no decision
	// yet, takes the entry's decision.
	ID string
	// TS is when the request was routed.
	TS time.Time
	// Decision is what the router answered.
	Decision Decision
	// Request is the JSON object the client sent; its prompt, messages and
	// meta are exported, other keys are ignored. It must be a valid JSON
	// object. The store keeps no reference to it after AppendDecisions
	// returns, so the caller may reuse the buffer.
	Request []byte
	// Fingerprint, when set, is kept with the id so RequestFingerprint
	// need not decode the record (callers set it for ids clients chose).
	Fingerprint Fingerprint
	// Response, when set, is the stored Responses API response the
	// request's answer gave the client, with the proxy tier that holds
	// it. It is written in the record's commit: a batch's records and
	// their entries are in the db together or not at all, for one fsync.
	Response *StoredResponse
}

// storedRequest is the value of a log key.
type storedRequest struct {
	ID       string    `json:"id"`
	TS       time.Time `json:"ts"`
	Decision *Decision `json:"decision,omitempty"`
	// ResponseID is the stored Responses API response the request's
	// answer gave, whose entry retention removes with the record. It
	// comes before the request, so it is found without decoding that
	// (storedResponseID).
	ResponseID string          `json:"response_id,omitempty"`
	Request    json.RawMessage `json:"request"`
}

// requestBody is the part of a stored request the export keeps.
type requestBody struct {
	Prompt   string    `json:"prompt"`
	Messages []Message `json:"messages"`
	Meta     Meta      `json:"meta"`
}

// promptField reads a stored request's prompt key alone: "prompt": ""
// (a legacy completion's empty prompt) is there, a request without text
// (a Responses input of tool outputs only) has none, and requestBody
// reads both as "". Keys match as in requestBody, in any case.
type promptField struct {
	Prompt *string `json:"prompt"`
}

// AppendDecisions writes a batch of decision-log entries, and the stored
// responses they carry, in one commit. A batch with stored responses also
// removes up to a few thousand entries that expired before the latest of
// their entries' times, oldest first. It is meant for one background
// writer; the route path never waits on it.
func (s *BoltStore) AppendDecisions(entries []LogEntry) error {
	if len(entries) == 0 {
		return nil
	}
	// One arena for every value: bbolt keeps a reference to each value
	// until the commit, so they must not share a reused buffer.
	size := 0
	for i := range entries {
		size += len(entries[i].Request) + len(entries[i].ID) + 192
	}
	arena := make([]byte, 0, size)
	keys := make([]byte, 0, 32*len(entries))
	err := s.db.Update(func(tx *bolt.Tx) error {
		log, ids := tx.Bucket(bucketLog), tx.Bucket(bucketIDs)
		// Keys mostly arrive in time order; a high fill factor keeps the
		// append-mostly log compact.
		log.FillPercent = 0.9
		var pins responseBuckets
		var now time.Time
		for i := range entries {
			e := &entries[i]
			if err := checkKey("request id", e.ID); err != nil {
				return err
			}
			if e.Response != nil {
				if err := checkResponse(e.Response); err != nil {
					return fmt.Errorf("decision log entry %q: %w", e.ID, err)
				}
				if pins.byID == nil {
					pins = responseBuckets{byID: tx.Bucket(bucketResponses), byExp: tx.Bucket(bucketResponseExpiry)}
				}
				// The recordings' clock, not the wall's: expiries were
				// set on it.
				if e.TS.After(now) {
					now = e.TS
				}
			}
			start := len(arena)
			var err error
			arena, err = appendStored(arena, e)
			if err != nil {
				return err
			}
			val := arena[start:]
			var key []byte
			if old := ids.Get([]byte(e.ID)); old != nil {
				if len(old) < 16 {
					return fmt.Errorf("ids entry of %q is %d bytes, want 16 or 32 (run triage feedback check)", e.ID, len(old))
				}
				if cur := log.Get(old[:16]); cur != nil {
					if hasDecision(cur) {
						// The record is kept as it is, without the
						// response's id, so its entry is not kept either:
						// it would outlive what retention removes.
						continue
					}
					// Created by feedback: the record takes the decision,
					// at the time-ordered key it already has.
					key = bytes.Clone(old[:16])
					if err := log.Put(key, val); err != nil {
						return err
					}
				}
				// An id whose record is gone is written afresh.
			}
			if key == nil {
				seq, err := log.NextSequence()
				if err != nil {
					return err
				}
				ks := len(keys)
				keys = appendLogKey(keys, e.TS, seq)
				if !e.Fingerprint.IsZero() {
					keys = append(keys, e.Fingerprint[:]...)
				}
				idv := keys[ks:]
				key = idv[:16]
				if err := log.Put(key, val); err != nil {
					return err
				}
				if err := ids.Put([]byte(e.ID), idv); err != nil {
					return err
				}
			}
			if e.Response != nil {
				if err := pins.put(e.Response, key); err != nil {
					return err
				}
			}
		}
		if pins.byID != nil {
			return pins.prune(now)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("write decision log: %w", err)
	}
	return nil
}

// hasDecision reports whether a stored request carries a decision (one
// created by feedback does not).
func hasDecision(v []byte) bool {
	var st struct {
		Decision json.RawMessage `json:"decision"`
	}
	return json.Unmarshal(v, &st) != nil || len(st.Decision) > 0
}

// appendStored encodes a storedRequest without re-encoding the request
// body, which is the bulk of the bytes.
func appendStored(b []byte, e *LogEntry) ([]byte, error) {
	// The caller decoded the request, so a full json.Valid scan of every
	// prompt would be wasted work on the log writer; the braces catch a
	// caller passing something else.
	if r := bytes.TrimSpace(e.Request); len(r) < 2 || r[0] != '{' || r[len(r)-1] != '}' {
		return b, fmt.Errorf("decision log entry %q: request is not a JSON object", e.ID)
	}
	b = append(b, `{"id":`...)
	b = appendJSONString(b, e.ID)
	b = append(b, `,"ts":"`...)
	b = e.TS.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","decision":{"decision":`...)
	b = appendJSONString(b, e.Decision.Kind)
	if e.Decision.Tier != "" {
		b = append(b, `,"tier":`...)
		b = appendJSONString(b, e.Decision.Tier)
	}
	b = append(b, `,"p_hard":`...)
	b = strconv.AppendFloat(b, e.Decision.PHard, 'g', -1, 64)
	b = append(b, `,"model_version":`...)
	b = appendJSONString(b, e.Decision.ModelVersion)
	if e.Decision.Propensity != 0 {
		b = append(b, `,"propensity":`...)
		b = strconv.AppendFloat(b, e.Decision.Propensity, 'g', -1, 64)
	}
	if e.Decision.Explored {
		b = append(b, `,"explored":true`...)
	}
	if e.Decision.Policy != "" {
		b = append(b, `,"policy":`...)
		b = appendJSONString(b, e.Decision.Policy)
	}
	if e.Decision.Fallback != "" {
		b = append(b, `,"fallback":`...)
		b = appendJSONString(b, e.Decision.Fallback)
	}
	if e.Decision.Error != "" {
		b = append(b, `,"error":`...)
		b = appendJSONString(b, e.Decision.Error)
	}
	if e.Decision.Pinned {
		b = append(b, `,"pinned":true`...)
	}
	b = appendTierFields(b, &e.Decision)
	b = append(b, '}')
	if e.Response != nil {
		b = append(b, `,"response_id":`...)
		b = appendJSONString(b, e.Response.ID)
	}
	b = append(b, `,"request":`...)
	b = append(b, e.Request...)
	return append(b, '}'), nil
}

// appendTierFields appends an N-tier decision's ran, policy_tier and
// tier_propensity, each only when set, as json.Marshal would (a map's
// keys sorted).
func appendTierFields(b []byte, d *Decision) []byte {
	if d.Ran != nil {
		b = append(b, `,"ran":[`...)
		for i, t := range d.Ran {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, t)
		}
		b = append(b, ']')
	}
	if d.PolicyTier != "" {
		b = append(b, `,"policy_tier":`...)
		b = appendJSONString(b, d.PolicyTier)
	}
	if d.TierPropensity != nil {
		b = append(b, `,"tier_propensity":{`...)
		for i, t := range slices.Sorted(maps.Keys(d.TierPropensity)) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, t)
			b = append(b, ':')
			b = strconv.AppendFloat(b, d.TierPropensity[t], 'g', -1, 64)
		}
		b = append(b, '}')
	}
	return b
}

// appendJSONString appends s as a JSON string. Strings here are ids, model
// names and versions: the common case has nothing to escape.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendOutcome appends o as JSON. The usual feedback (numbers only) is
// written directly: json.Marshal's reflection was the largest part of
// PutFeedback's own CPU, and then, with a proxied call's response text
// and token counts, 2% of triage serve's CPU under the proxy's overhead
// benchmark. json.Unmarshal reads back the Outcome json.Marshal would
// write (TestAppendOutcomeReadsBackAsMarshal).
func appendOutcome(b []byte, o *Outcome) ([]byte, error) {
	b = append(b, '{')
	first := true
	sep := func() {
		if !first {
			b = append(b, ',')
		}
		first = false
	}
	for _, f := range [...]struct {
		name string
		v    *float64
	}{{`"score":`, o.Score}, {`"latency_ms":`, o.LatencyMS}, {`"cost_usd":`, o.CostUSD}, {`"confidence":`, o.Confidence}} {
		if f.v == nil {
			continue
		}
		if math.IsNaN(*f.v) || math.IsInf(*f.v, 0) {
			return b, fmt.Errorf("%s is %v, want a finite number", strings.Trim(f.name, `":`), *f.v)
		}
		sep()
		b = append(b, f.name...)
		b = strconv.AppendFloat(b, *f.v, 'g', -1, 64)
	}
	if o.Response != "" {
		sep()
		b = appendJSONString(append(b, `"response":`...), o.Response)
	}
	for _, f := range [...]struct {
		name string
		v    *int
	}{{`"input_tokens":`, o.InputTokens}, {`"output_tokens":`, o.OutputTokens}} {
		if f.v != nil {
			sep()
			b = strconv.AppendInt(append(b, f.name...), int64(*f.v), 10)
		}
	}
	if o.Cancelled {
		sep()
		b = append(b, `"cancelled":true`...)
	}
	return append(b, '}'), nil
}

// mergeStored is the stored outcome prev merged with next (MergeOutcome):
// a later write for a (request, model) adds to what is there instead of
// erasing it, so a client's score for a proxied answer keeps the latency,
// cost, confidence and answer the proxy recorded (the confidence gate is
// calibrated on records holding both), and a retry or a correction of a
// field still replaces it. It also reports whether prev had a score. A
// prev that does not decode (it cannot be exported either) is replaced by
// next whole.
func mergeStored(prev, next []byte) ([]byte, bool) {
	var p, n Outcome
	if json.Unmarshal(prev, &p) != nil {
		return next, false
	}
	if json.Unmarshal(next, &n) != nil {
		return next, p.Score != nil // encoded by appendOutcome: cannot happen
	}
	m, _ := MergeOutcome(p, n)
	merged, err := appendOutcome(nil, &m)
	if err != nil {
		return next, p.Score != nil // both parts were finite: cannot happen
	}
	return merged, p.Score != nil
}

func appendLogKey(b []byte, ts time.Time, seq uint64) []byte {
	n := ts.UnixNano()
	if n < 0 {
		n = 0
	}
	b = binary.BigEndian.AppendUint64(b, uint64(n))
	return binary.BigEndian.AppendUint64(b, seq)
}

// checkKey rejects ids and model names that cannot be keys: empty, too
// long, or holding a control character (0x00 separates key parts).
func checkKey(what, s string) error {
	if s == "" {
		return fmt.Errorf("%s is empty", what)
	}
	if len(s) > MaxIDBytes {
		return fmt.Errorf("%s is %d bytes, want at most %d", what, len(s), MaxIDBytes)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return fmt.Errorf("%s %q holds a control character", what, s)
		}
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not valid UTF-8", what)
	}
	return nil
}

// CheckKey reports whether s can be a request id or model name in the
// store, with a message naming what (e.g. "request_id").
func CheckKey(what, s string) error { return checkKey(what, s) }

// Feedback is what a client observed for a routed request and one model.
type Feedback struct {
	// RequestID is the id the router returned (or the client chose).
	RequestID string
	// Model is the model the outcome is about.
	Model string
	// Outcome is what was observed. Its Score or Confidence is expected.
	Outcome Outcome
	// Prompt, Messages and Meta, when Prompt or Messages is set, create
	// the request record if the id is unknown (a request routed
	// elsewhere, or whose decision-log entry was dropped). For a known id
	// they are ignored.
	Prompt   string
	Messages []Message
	Meta     Meta
	// TS is when the feedback arrived; it is the created record's time.
	TS time.Time
}

// FeedbackResult says what RecordFeedback did.
type FeedbackResult struct {
	// Replaced says the store already held feedback for this (request
	// id, model), which the write was merged into: a retry, a
	// correction, or a score for an outcome the proxy recorded.
	Replaced bool
	// Rescored says that earlier feedback already had a score, so the
	// write did not add the first one: a retry or a correction.
	Rescored bool
}

// PutFeedback records fb durably: it returns nil only after the commit
// (an fdatasync'd append to the feedback log, wal.go).
// A second call for the same (request id, model) replaces the first, so
// retries are safe. Concurrent calls share commits (group commit). It
// returns ErrUnknownRequest for an unknown id without a prompt.
func (s *BoltStore) PutFeedback(ctx context.Context, fb Feedback) error {
	_, err := s.RecordFeedback(ctx, fb)
	return err
}

// RecordFeedback is PutFeedback, and also says whether the write replaced
// earlier feedback for its key.
func (s *BoltStore) RecordFeedback(ctx context.Context, fb Feedback) (FeedbackResult, error) {
	r, err := prepareFeedback(ctx, fb)
	if err != nil {
		return FeedbackResult{}, err
	}
	if err := s.send(r); err != nil {
		return FeedbackResult{}, fmt.Errorf("write feedback: %w", err)
	}
	if !r.found {
		return FeedbackResult{}, fmt.Errorf("%w %q", ErrUnknownRequest, fb.RequestID)
	}
	if r.conflict {
		return FeedbackResult{}, fmt.Errorf("request %q: %w", fb.RequestID, ErrIDConflict)
	}
	return FeedbackResult{Replaced: r.replaced, Rescored: r.rescored}, nil
}

// PutFeedbackBatch records every fb of fbs durably, as PutFeedback does
// for one: it returns nil only after all of them are committed. The
// writes are queued together, so they share one commit without a
// goroutine each (the proxy's recorder writes a batch of outcomes at a
// time). Its error names the first write that failed; the others may
// have been committed, and a retry of the batch replaces them.
func (s *BoltStore) PutFeedbackBatch(ctx context.Context, fbs []Feedback) error {
	reqs := make([]*commitReq, len(fbs))
	for i, fb := range fbs {
		r, err := prepareFeedback(ctx, fb)
		if err != nil {
			return fmt.Errorf("feedback %d of %d (request %s, model %s): %w", i+1, len(fbs), fb.RequestID, fb.Model, err)
		}
		reqs[i] = r
	}
	if err := s.queue(reqs...); err != nil {
		return fmt.Errorf("write feedback: %w", err)
	}
	var first error
	for i, r := range reqs {
		err := <-r.err
		switch {
		case first != nil:
		case err != nil:
			first = fmt.Errorf("write feedback (request %s, model %s): %w", fbs[i].RequestID, fbs[i].Model, err)
		case !r.found:
			first = fmt.Errorf("%w %q", ErrUnknownRequest, fbs[i].RequestID)
		case r.conflict:
			first = fmt.Errorf("request %q: %w", fbs[i].RequestID, ErrIDConflict)
		}
	}
	return first
}

// prepareFeedback checks fb and encodes it as a commit request.
func prepareFeedback(ctx context.Context, fb Feedback) (*commitReq, error) {
	if err := checkKey("request_id", fb.RequestID); err != nil {
		return nil, err
	}
	if err := checkKey("model", fb.Model); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Key and value share one allocation; bbolt keeps both until the
	// commit, so they are never reused.
	kv := make([]byte, 0, len(fb.RequestID)+1+len(fb.Model)+96)
	kv = append(append(append(kv, fb.RequestID...), 0), fb.Model...)
	fkey := kv[:len(kv):len(kv)]
	val, err := appendOutcome(kv[len(kv):], &fb.Outcome)
	if err != nil {
		return nil, fmt.Errorf("encode feedback: %w", err)
	}
	var created []byte
	var fp Fingerprint
	if fb.Prompt != "" || len(fb.Messages) > 0 {
		body, err := json.Marshal(requestBody{Prompt: fb.Prompt, Messages: fb.Messages, Meta: fb.Meta})
		if err != nil {
			return nil, fmt.Errorf("encode feedback request: %w", err)
		}
		ts := fb.TS
		if ts.IsZero() {
			ts = time.Now()
		}
		created, err = json.Marshal(storedRequest{ID: fb.RequestID, TS: ts.UTC(), Request: body})
		if err != nil {
			return nil, fmt.Errorf("encode feedback request: %w", err)
		}
		fb.TS = ts
		fp = PromptFingerprint(fb.Prompt, fb.Messages)
	}
	op := &walOp{id: fb.RequestID, fkey: fkey, val: val, ts: fb.TS, created: created, fp: fp}
	return &commitReq{op: op, err: make(chan error, 1)}, nil
}

// HasRequest reports whether the store holds a record for id.
func (s *BoltStore) HasRequest(id string) (bool, error) {
	if err := s.flush(); err != nil {
		return false, err
	}
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		ok = tx.Bucket(bucketIDs).Get([]byte(id)) != nil
		return nil
	})
	return ok, err
}

// ExportOptions selects what Export writes.
type ExportOptions struct {
	// Since skips records routed before it; zero means from the start.
	Since time.Time
}

// Export streams every logged request as a Record in time order, with
// every model's feedback under Outcomes, to w as JSONL. It reads in short
// transactions of a few hundred records, so it is not a point-in-time
// view (use Snapshot for that): records and feedback committed while it
// runs may or may not appear. It returns the number of records written.
func (s *BoltStore) Export(ctx context.Context, w io.Writer, opts ExportOptions) (int, error) {
	// Every write acknowledged before the export starts is in it.
	if err := s.flush(); err != nil {
		return 0, fmt.Errorf("export feedback db: %w", err)
	}
	jw := NewWriter(w)
	var after []byte
	if !opts.Since.IsZero() {
		after = appendLogKey(nil, opts.Since, 0)
	}
	first := true
	n := 0
	recs := make([]Record, 0, exportChunk)
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		recs = recs[:0]
		var err error
		after, err = s.readChunk(after, first, &recs)
		if err != nil {
			// The structure passed the open's checks, so what failed is
			// a stored value: damage inside a record, which only check
			// and salvage get past. Say which file and what to do.
			return n, fmt.Errorf("export feedback db %s: %w: the file is damaged inside a record (the export stopped there, with %s written); run 'triage feedback check --db %s' to list the damage, and 'triage feedback salvage --db %s -o NEW.db' to copy every readable record into a new file",
				s.path, err, plural.Count(n, "record"), s.path, s.path)
		}
		first = false
		// Writing happens outside the transaction: a slow reader must not
		// hold one open.
		for i := range recs {
			if err := jw.Write(&recs[i]); err != nil {
				return n, err
			}
			n++
		}
		if err := jw.Flush(); err != nil {
			return n, fmt.Errorf("export feedback db: %w", err)
		}
		if len(recs) < exportChunk {
			return n, nil
		}
	}
}

// LogSpan is what a store's decision log holds: how many records, and
// when the first and the last were routed (zero times when it holds
// none).
type LogSpan struct {
	Records        int
	Oldest, Newest time.Time
}

// Span returns what the decision log holds, as of the last acknowledged
// write. It counts every record, so it reads every page of the log: it
// is for the command line (an export that matched nothing says what the
// db holds), not for the serving path.
func (s *BoltStore) Span() (LogSpan, error) {
	if err := s.flush(); err != nil {
		return LogSpan{}, fmt.Errorf("feedback db span: %w", err)
	}
	var sp LogSpan
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLog)
		sp.Records = b.Stats().KeyN
		c := b.Cursor()
		if k, _ := c.First(); len(k) >= 8 {
			sp.Oldest = logKeyTime(k)
		}
		if k, _ := c.Last(); len(k) >= 8 {
			sp.Newest = logKeyTime(k)
		}
		return nil
	})
	return sp, err
}

// logKeyTime is the routing time a log key begins with (appendLogKey).
func logKeyTime(k []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(k[:8]))).UTC()
}

// readChunk decodes up to exportChunk records after key (or from key when
// inclusive) and returns the last key read.
func (s *BoltStore) readChunk(key []byte, inclusive bool, out *[]Record) ([]byte, error) {
	var last []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketLog).Cursor()
		fc := tx.Bucket(bucketFeedback).Cursor()
		var k, v []byte
		if key == nil {
			k, v = c.First()
		} else {
			k, v = c.Seek(key)
			if !inclusive && k != nil && bytes.Equal(k, key) {
				k, v = c.Next()
			}
		}
		for ; k != nil && len(*out) < exportChunk; k, v = c.Next() {
			rec, err := decodeStored(k, v)
			if err != nil {
				return err
			}
			prefix := append([]byte(rec.ID), 0)
			for fk, fv := fc.Seek(prefix); fk != nil && bytes.HasPrefix(fk, prefix); fk, fv = fc.Next() {
				var o Outcome
				if err := json.Unmarshal(fv, &o); err != nil {
					return fmt.Errorf("feedback %q: %w", fk, err)
				}
				if rec.Outcomes == nil {
					rec.Outcomes = map[string]Outcome{}
				}
				rec.Outcomes[string(fk[len(prefix):])] = o
			}
			*out = append(*out, rec)
			last = append(last[:0], k...) // copied: k dies with the tx
		}
		return nil
	})
	if last == nil {
		last = key
	}
	return last, err
}

func decodeStored(k, v []byte) (Record, error) {
	var st storedRequest
	if err := json.Unmarshal(v, &st); err != nil {
		return Record{}, fmt.Errorf("log record %x: %w", k, err)
	}
	var body requestBody
	if err := json.Unmarshal(st.Request, &body); err != nil {
		return Record{}, fmt.Errorf("log record %q: request: %w", st.ID, err)
	}
	if body.Prompt == "" && len(body.Messages) == 0 {
		// An empty prompt stays one (Writer writes it as "prompt": ""),
		// so a legacy completion is read back as a completion. A
		// proxied request with no text the router could see (a
		// Responses input of tool outputs only) is exported as one empty
		// user message, as an image-only message is: a record without
		// prompt or messages is one no reader takes, and it would stop
		// every export of the db at its line.
		var p promptField
		if json.Unmarshal(st.Request, &p) != nil || p.Prompt == nil {
			body.Messages = []Message{{Role: "user"}}
		}
	}
	return Record{ID: st.ID, Prompt: body.Prompt, Messages: body.Messages, Meta: body.Meta, TS: st.TS, Decision: st.Decision}, nil
}

// Snapshot writes a consistent copy of the whole database to w; the copy
// opens as a bbolt file. The copy is first written to a temporary file
// beside the database (tx.WriteTo), so the read transaction lasts as long
// as a local disk copy rather than as long as a slow client: a long read
// transaction would stall writers whenever the file must grow. It returns
// the bytes written to w.
func (s *BoltStore) Snapshot(ctx context.Context, w io.Writer) (int64, error) {
	// The copy holds every write acknowledged before it starts.
	if err := s.flush(); err != nil {
		return 0, fmt.Errorf("snapshot feedback db: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), snapshotPattern(s.path))
	if err != nil {
		return 0, fmt.Errorf("snapshot feedback db: %w", err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}()
	err = s.db.View(func(tx *bolt.Tx) error {
		_, err := tx.WriteTo(tmp)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("snapshot feedback db: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("snapshot feedback db: %w", err)
	}
	n, err := io.Copy(w, tmp)
	if err != nil {
		return n, fmt.Errorf("snapshot feedback db: send: %w", err)
	}
	return n, nil
}

package datasets

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// pristineDB builds a closed store with n records (prompts of a few
// hundred bytes to a few KiB, so leaf, branch and overflow pages all
// occur) and feedback on every other one, and returns its bytes.
func pristineDB(tb testing.TB, n int) []byte {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "feedback.db")
	s := openStoreAt(tb, path, StoreOptions{NoSync: true, WALSize: 64 << 10})
	entries := make([]LogEntry, n)
	for i := range entries {
		prompt := strings.Repeat(fmt.Sprintf("question %d ", i), 20+(i%7)*60)
		if i%50 == 0 {
			prompt = strings.Repeat("long ", 8000) // 40 KB: overflow pages
		}
		entries[i] = entry(fmt.Sprintf("id-%04d", i), t0.Add(time.Duration(i)*time.Second), "fast", 0.1, fmt.Sprintf(`{"prompt":%q}`, prompt))
	}
	if err := s.AppendDecisions(entries); err != nil {
		tb.Fatal(err)
	}
	for i := 0; i < n; i += 2 {
		put(tb, s, Feedback{RequestID: fmt.Sprintf("id-%04d", i), Model: "m", Outcome: Outcome{Score: Float(1)}})
	}
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
	return dbPages(tb, path)
}

// dbPages reads the pages of the db file at path. The file runs a
// 128 MiB growth step (sparse) past its last page; the pages are what the
// tests damage, so only they are read.
func dbPages(tb testing.TB, path string) []byte {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		tb.Fatal(err)
	}
	b := make([]byte, highWater(tb, f, fi.Size()))
	if _, err := io.ReadFull(f, b); err != nil {
		tb.Fatal(err)
	}
	return b
}

// pagesInUse is the file's high-water mark in bytes.
func pagesInUse(tb testing.TB, db []byte) int {
	tb.Helper()
	return highWater(tb, bytes.NewReader(db), int64(len(db)))
}

// highWater is the high-water mark in bytes of the db file read through r.
func highWater(tb testing.TB, r io.ReaderAt, size int64) int {
	tb.Helper()
	f, err := openBoltFile(r, size)
	if err != nil {
		tb.Fatal(err)
	}
	return int(f.meta.pgid) * f.pageSize
}

// useDamaged opens the damaged copy the way the server and the export
// do, and uses it if it opens. It must not panic or fault; it returns the
// open error.
func useDamaged(tb testing.TB, db []byte) error {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "damaged.db")
	if err := os.WriteFile(path, db, 0o600); err != nil {
		tb.Fatal(err)
	}
	s, err := OpenBoltStore(path, StoreOptions{NoSync: true, WALSize: 64 << 10})
	if err != nil {
		return err
	}
	// Damage inside a value is not bbolt's to see: the export names it.
	s.Export(context.Background(), io.Discard, ExportOptions{})
	s.AppendDecisions([]LogEntry{entry("new", t0, "fast", 0.1, `{"prompt":"p"}`)})
	s.PutFeedback(context.Background(), Feedback{RequestID: "new", Model: "m", Outcome: Outcome{Score: Float(1)}})
	if err := s.Close(); err != nil {
		tb.Logf("close after damage: %v", err)
	}
	return nil
}

func TestOpenDamagedDB(t *testing.T) {
	db := pristineDB(t, 300)
	used := pagesInUse(t, db)
	pageSize := DefaultPageSize

	t.Run("the pristine copy opens", func(t *testing.T) {
		if err := useDamaged(t, db); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a truncated file is refused, saying it was truncated", func(t *testing.T) {
		for _, size := range []int{100 << 10, used - pageSize, 3 * pageSize, 1500} {
			err := useDamaged(t, db[:size])
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("truncated to %d: %v, want ErrDamaged", size, err)
			}
			msg := err.Error()
			for _, want := range []string{"damaged.db", "triage feedback check", "triage feedback salvage"} {
				if !strings.Contains(msg, want) {
					t.Errorf("truncated to %d: %q does not say %q", size, msg, want)
				}
			}
			if size > 2*pageSize && !strings.Contains(msg, "truncated") {
				t.Errorf("truncated to %d: %q does not say truncated", size, msg)
			}
		}
	})

	t.Run("a zero-byte file is refused unless init is asked for", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "empty.db")
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := OpenBoltStore(path, StoreOptions{NoSync: true})
		if !errors.Is(err, ErrEmptyDB) || !strings.Contains(err.Error(), "--init") || !strings.Contains(err.Error(), path) {
			t.Fatalf("open: %v, want ErrEmptyDB naming the file and --init", err)
		}
		s, err := OpenBoltStore(path, StoreOptions{NoSync: true, Init: true})
		if err != nil {
			t.Fatalf("open with Init: %v", err)
		}
		s.Close()
	})

	t.Run("zeroed pages are refused", func(t *testing.T) {
		refused, tried := 0, 0
		// Both meta pages and every fifth page after them: every kind
		// of page, in a fifth of the time.
		pages := []int{0, 1}
		for p := 2; p < used/pageSize; p += 5 {
			pages = append(pages, p)
		}
		for _, p := range pages {
			tried++
			d := bytes.Clone(db)
			clear(d[p*pageSize : (p+1)*pageSize])
			err := useDamaged(t, d)
			if err != nil && !errors.Is(err, ErrDamaged) {
				t.Fatalf("page %d zeroed: %v, want ErrDamaged or no error", p, err)
			}
			if err != nil {
				refused++
			}
		}
		// Free pages and the tail of overflow pages may be zeroed
		// harmlessly; the meta pages, the root and the leaves may not.
		if refused < tried/2 {
			t.Errorf("%d of %d zeroed pages refused, want most", refused, tried)
		}
	})

	t.Run("flipped bytes never crash the open or the use", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(13, 1))
		refused, trials := 0, 30
		if testing.Short() {
			trials = 30
		}
		for i := range trials {
			d := bytes.Clone(db)
			for range 1 + rng.IntN(6) {
				var at int
				if i%2 == 0 {
					// A page header or element table, where the structure is.
					at = rng.IntN(used/pageSize)*pageSize + rng.IntN(256)
				} else {
					at = rng.IntN(used)
				}
				d[at] ^= byte(1 + rng.IntN(255))
			}
			err := useDamaged(t, d)
			if err != nil && !errors.Is(err, ErrDamaged) {
				t.Fatalf("trial %d: %v, want ErrDamaged or no error", i, err)
			}
			if err != nil {
				refused++
			}
		}
		if refused == 0 {
			t.Error("no flip was refused; the test does not reach the structure")
		}
	})

	t.Run("a db written without free-list syncing opens, and then has a free list", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "legacy.db")
		old, err := bolt.Open(path, 0o600, &bolt.Options{NoFreelistSync: true, PageSize: DefaultPageSize})
		if err != nil {
			t.Fatal(err)
		}
		old.Update(func(tx *bolt.Tx) error {
			for _, name := range [][]byte{bucketLog, bucketIDs, bucketFeedback, bucketMeta} {
				tx.CreateBucket(name)
			}
			return tx.Bucket(bucketMeta).Put(keySchema, []byte(storeSchema))
		})
		old.Close()
		s := openStoreAt(t, path, StoreOptions{NoSync: true})
		s.Close()
		b, _ := os.ReadFile(path)
		f, err := openBoltFile(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		if f.meta.freelist == boltNoFreelist {
			t.Error("the free list is still not synced after an open")
		}
	})
}

func TestCheckAndSalvage(t *testing.T) {
	db := pristineDB(t, 300)
	dir := t.TempDir()
	path := filepath.Join(dir, "feedback.db")

	// Find a leaf page of the log bucket and zero it.
	f, err := openBoltFile(bytes.NewReader(db), int64(len(db)))
	if err != nil {
		t.Fatal(err)
	}
	leaf := leafWhoseFirstKey(f, func(k []byte) bool { return len(k) == 16 })
	if leaf == 0 {
		t.Fatal("no leaf page of log records found")
	}
	damaged := bytes.Clone(db)
	clear(damaged[int(leaf)*DefaultPageSize : int(leaf+1)*DefaultPageSize])
	if err := os.WriteFile(path, damaged, 0o600); err != nil {
		t.Fatal(err)
	}

	rep, err := CheckDB(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Damaged() || rep.BadPages != 1 || !strings.Contains(strings.Join(rep.Problems, "\n"), fmt.Sprintf("page %d", leaf)) {
		t.Fatalf("check = %+v, want damage naming page %d", rep, leaf)
	}
	if rep.Records >= 300 || rep.Records == 0 {
		t.Errorf("check read %d records, want fewer than 300 but some", rep.Records)
	}
	clean, err := CheckDB(writeTemp(t, db), time.Second)
	if err != nil || clean.Damaged() || clean.Records != 300 || clean.Feedback != 150 {
		t.Errorf("check of the pristine db = %+v, %v; want no damage, 300 records, 150 feedback", clean, err)
	}

	out := filepath.Join(dir, "salvaged.db")
	srep, err := SalvageDB(context.Background(), path, out, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if srep.Records != rep.Records || srep.BadPages != 1 || srep.Feedback == 0 {
		t.Errorf("salvage = %+v, want the %d readable records and one bad page", srep, rep.Records)
	}
	s := openStoreAt(t, out, StoreOptions{NoSync: true})
	defer s.Close()
	recs := exportAll(t, s, ExportOptions{})
	if len(recs) != srep.Records {
		t.Errorf("salvaged db exports %d records, want %d", len(recs), srep.Records)
	}
	withFB := 0
	for _, r := range recs {
		if len(r.Outcomes) > 0 {
			withFB++
		}
	}
	if withFB != srep.Feedback {
		t.Errorf("%d exported records have feedback, want %d", withFB, srep.Feedback)
	}
	if _, err := SalvageDB(context.Background(), path, out, time.Second); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("salvage onto an existing file: %v, want a refusal", err)
	}
}

func TestSalvageKeepsTheFeedbackLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "feedback.db")
	data, offs := writeFeedbackLog(t, path, 40)
	data[offs[20]+walHeader+2] ^= 0x10
	if err := os.WriteFile(path+walSuffix, data, 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := CheckDB(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Log.Acknowledged || rep.Log.DamagedAt != int64(offs[20]) || rep.Log.After != 19 {
		t.Errorf("check of the log = %+v, want acknowledged damage at %d with 19 after", rep.Log, offs[20])
	}
	out := filepath.Join(t.TempDir(), "salvaged.db")
	srep, err := SalvageDB(context.Background(), path, out, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if srep.LogApplied != 39 || srep.LogLost != 1 {
		t.Errorf("salvage = %+v, want 39 log records applied, 1 lost", srep)
	}
	s := openStoreAt(t, out, StoreOptions{NoSync: true})
	defer s.Close()
	if got := scores(t, s); len(got) != 39 {
		t.Errorf("%d writes in the salvaged db, want 39", len(got))
	}
}

func TestCompactDB(t *testing.T) {
	path := writeTemp(t, pristineDB(t, 300))
	s := openStoreAt(t, path, StoreOptions{NoSync: true})
	if _, err := s.Prune(context.Background(), RetentionOptions{MaxAge: time.Minute, Now: func() time.Time { return t0.Add(4 * time.Minute) }}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	res, err := CompactDB(context.Background(), path, "", StoreOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.After >= res.Before {
		t.Errorf("compaction took %d bytes to %d, want smaller", res.Before, res.After)
	}
	s = openStoreAt(t, path, StoreOptions{NoSync: true})
	defer s.Close()
	// Records at t0 + i s; those before t0 + 3 min are gone.
	if n := len(exportAll(t, s, ExportOptions{})); n != 120 {
		t.Errorf("%d records after compaction, want 120", n)
	}
}

func writeTemp(tb testing.TB, b []byte) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "feedback.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

func binaryNE32(b []byte) int { return int(binary.NativeEndian.Uint32(b)) }

func TestSalvageRecoversLeavesCutOffFromTheTree(t *testing.T) {
	db := pristineDB(t, 300)
	// bbolt writes the root and branch pages of a commit last, at the
	// end: a truncated file has lost the tree above its leaves.
	path := writeTemp(t, db[:len(db)/2])
	out := filepath.Join(t.TempDir(), "salvaged.db")
	rep, err := SalvageDB(context.Background(), path, out, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Recovered == 0 || rep.Records == 0 || rep.Records > 300 {
		t.Fatalf("salvage of a half-truncated db = %+v, want records recovered from cut-off leaves", rep)
	}
	s := openStoreAt(t, out, StoreOptions{NoSync: true})
	defer s.Close()
	recs := exportAll(t, s, ExportOptions{})
	if len(recs) != rep.Records {
		t.Errorf("salvaged db exports %d records, want %d", len(recs), rep.Records)
	}
	for _, r := range recs {
		if !strings.HasPrefix(r.ID, "id-") || r.Prompt == "" {
			t.Fatalf("recovered record %+v is not one that was written", r)
		}
	}
}

// A server that starts while `feedback compact` replaces the db can wait
// for the old file's lock and get it just after the compacted file took
// the name. It must open the new file: what it wrote into the old one
// would be lost with it.
func TestOpenDuringCompactionOpensTheNewFile(t *testing.T) {
	dir := t.TempDir()
	path, next := filepath.Join(dir, "feedback.db"), filepath.Join(dir, "compacted.db")
	for _, p := range []struct {
		path, id string
	}{{path, "old"}, {next, "new"}} {
		s := openStoreAt(t, p.path, StoreOptions{NoSync: true})
		put(t, s, Feedback{RequestID: p.id, Model: "m", Outcome: Outcome{Score: Float(1)}, Prompt: "q", TS: t0})
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	renames := 0
	afterBoltOpen = func() {
		if renames == 0 {
			if err := os.Rename(next, path); err != nil {
				t.Error(err)
			}
		}
		renames++
	}
	defer func() { afterBoltOpen = nil }()
	s := openStoreAt(t, path, StoreOptions{NoSync: true})
	afterBoltOpen = nil
	if renames != 2 {
		t.Errorf("bbolt opened the file %d times, want 2 (the old file, then the new one)", renames)
	}
	put(t, s, Feedback{RequestID: "after", Model: "m", Outcome: Outcome{Score: Float(0)}, Prompt: "q", TS: t0})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStoreAt(t, path, StoreOptions{NoSync: true})
	defer s.Close()
	got := scores(t, s)
	if want := map[string]float64{"new/m": 1, "after/m": 0}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the db at the path holds %v, want %v: the write went to the replaced file", got, want)
	}
}

// What salvage's advice leads to: the salvaged copy is moved over the
// damaged db, and the old feedback log stays beside it. The log holds the
// epoch it was salvaged at and, deeper in, records of applied epochs;
// the copy must take none of them for new writes.
func TestSalvagedDBInPlaceOfTheOldOneBesideItsLog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "feedback.db")
	s := openStoreAt(t, path, StoreOptions{NoSync: true, WALSize: 64 << 10})
	// Scores of 0, then corrections to 1. The first six carry long
	// prompts and fill the first epoch (applied when the log is half
	// full); the rest, in the second, end before the first epoch's last
	// records (scores of 0), which stay in the log past them.
	for i := range 66 {
		prompt := "q"
		if i < 6 {
			prompt = strings.Repeat("x", 6000)
		}
		put(t, s, Feedback{RequestID: fmt.Sprintf("r%02d", i), Model: "m", Outcome: Outcome{Score: Float(0)}, Prompt: prompt, TS: t0})
	}
	for i := range 66 {
		put(t, s, Feedback{RequestID: fmt.Sprintf("r%02d", i), Model: "m", Outcome: Outcome{Score: Float(1)}})
	}
	crash(t, s)
	want := map[string]float64{}
	for i := range 66 {
		want[fmt.Sprintf("r%02d/m", i)] = 1
	}

	t.Run("moved over the old db", func(t *testing.T) {
		work := t.TempDir()
		src := filepath.Join(work, "feedback.db")
		copyFile(t, path, src)
		copyFile(t, path+walSuffix, src+walSuffix)
		out := filepath.Join(work, "salvaged.db")
		if _, err := SalvageDB(context.Background(), src, out, time.Second); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(out, src); err != nil {
			t.Fatal(err)
		}
		rep, err := CheckDB(src, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Damaged() || rep.Log.Records != 0 {
			t.Errorf("check of the salvaged db beside the old log = %+v, want no damage and nothing to apply", rep.Log)
		}
		s := openStoreAt(t, src, StoreOptions{NoSync: true, WALSize: 64 << 10})
		defer s.Close()
		if got := scores(t, s); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("scores = %v, want every correction (1)", got)
		}
	})

	// Every request here has one time (a client posting its own ts can
	// do that), so the records' keys differ only by the log bucket's
	// sequence: the 16 records the log creates in the salvaged db took
	// the keys of 16 copied ones and replaced them, until salvage carried
	// the sequence over.
	t.Run("records the log creates keep the copied ones", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "salvaged.db")
		if _, err := SalvageDB(context.Background(), path, out, time.Second); err != nil {
			t.Fatal(err)
		}
		s := openStoreAt(t, out, StoreOptions{NoSync: true})
		defer s.Close()
		if got := scores(t, s); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%d scores = %v, want %d, every correction (1)", len(got), got, len(want))
		}
	})

	// The meta bucket, which holds the log's epoch, may be what was
	// damaged: the log's first record then says which epoch is current.
	t.Run("the log's epoch lost with the meta bucket", func(t *testing.T) {
		work := t.TempDir()
		src := filepath.Join(work, "feedback.db")
		copyFile(t, path, src)
		copyFile(t, path+walSuffix, src+walSuffix)
		db, err := bolt.Open(src, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(keyWALEpoch) }); err != nil {
			t.Fatal(err)
		}
		db.Close()
		out := filepath.Join(work, "salvaged.db")
		rep, err := SalvageDB(context.Background(), src, out, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if rep.LogLost != 0 {
			t.Errorf("salvage = %+v, want nothing lost from the log", rep)
		}
		s := openStoreAt(t, out, StoreOptions{NoSync: true})
		defer s.Close()
		if got := scores(t, s); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("scores = %v, want every correction (1)", got)
		}
	})
}

// copyFile copies from to to through the kernel (io.Copy between files
// uses copy_file_range): a store's file is 128 MiB from its first write
// (allocSize), mostly holes, and reading it into memory to copy it made
// the tests that copy stores take seconds under -race.
func copyFile(tb testing.TB, from, to string) {
	tb.Helper()
	src, err := os.Open(from)
	if err != nil {
		tb.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		tb.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		tb.Fatal(err)
	}
}

func TestCompactDBPaths(t *testing.T) {
	t.Run("through a symbolic link, the file it points to", func(t *testing.T) {
		real := writeTemp(t, pristineDB(t, 40))
		link := filepath.Join(t.TempDir(), "link.db")
		if err := os.Symlink(real, link); err != nil {
			t.Fatal(err)
		}
		before, _ := os.Stat(real)
		if _, err := CompactDB(context.Background(), link, "", StoreOptions{NoSync: true}); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Fatalf("the link after compaction: %v, %v; want it still a link", fi, err)
		}
		if after, _ := os.Stat(real); os.SameFile(before, after) {
			t.Error("the file the link points to was not replaced by the compacted one")
		}
		s := openStoreAt(t, link, StoreOptions{NoSync: true})
		defer s.Close()
		if n := len(exportAll(t, s, ExportOptions{})); n != 40 {
			t.Errorf("%d records through the link after compaction, want 40", n)
		}
	})
	t.Run("the new file of a compaction killed before its rename is removed", func(t *testing.T) {
		path := writeTemp(t, pristineDB(t, 10))
		stale := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".new-123")
		os.WriteFile(stale, make([]byte, 4096), 0o600)
		res, err := CompactDB(context.Background(), path, "", StoreOptions{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) || len(res.Removed) != 1 {
			t.Errorf("the stale file after compaction: %v, removed %v; want it gone and named", err, res.Removed)
		}
	})
	// A killed salvage (or compaction -o NEW) left its new file, as big
	// as what it had copied, beside NEW for good; the next one into NEW
	// removes it, and leaves one a live salvage holds open.
	t.Run("the new file of a killed salvage is removed by the next, a live one's kept", func(t *testing.T) {
		src := writeTemp(t, pristineDB(t, 10))
		dir := t.TempDir()
		dst := filepath.Join(dir, "salvaged.db")
		stale := filepath.Join(dir, ".salvaged.db.new-123")
		if err := os.WriteFile(stale, make([]byte, 4096), 0o600); err != nil {
			t.Fatal(err)
		}
		liveName := filepath.Join(dir, ".salvaged.db.new-456")
		live, err := bolt.Open(liveName, 0o600, &bolt.Options{Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer live.Close()
		old := time.Now().Add(-2 * time.Hour)
		for _, p := range []string{stale, liveName} {
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := SalvageDB(context.Background(), src, dst, time.Second); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the killed salvage's file is still there (%v)", err)
		}
		if _, err := os.Stat(liveName); err != nil {
			t.Errorf("the live salvage's file was removed: %v", err)
		}
	})
	t.Run("a db named with glob syntax finds its own stale files, and only its own", func(t *testing.T) {
		// The clean-up matched names with filepath.Glob, in which the db's
		// own "[1]" is a character class: it missed this db's file.
		dir := t.TempDir()
		path := filepath.Join(dir, "feedback[1]*.db")
		if err := os.WriteFile(path, pristineDB(t, 10), 0o600); err != nil {
			t.Fatal(err)
		}
		stale := filepath.Join(dir, "."+filepath.Base(path)+".new-4711")
		// Another db's file: "feedback[1]*.db.new-5" is a db of its own
		// whose compaction's file starts with this db's prefix.
		other := filepath.Join(dir, "."+filepath.Base(path)+".new-5.new-99")
		for _, p := range []string{stale, other} {
			if err := os.WriteFile(p, make([]byte, 4096), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		res, err := CompactDB(context.Background(), path, "", StoreOptions{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) || len(res.Removed) != 1 || res.Removed[0] != stale {
			t.Errorf("this db's stale file after compaction: %v, removed %v; want it gone and named", err, res.Removed)
		}
		if _, err := os.Stat(other); err != nil {
			t.Errorf("another db's compaction file was removed: %v", err)
		}
	})
	t.Run("-o the db's own feedback log is refused", func(t *testing.T) {
		path := writeTemp(t, pristineDB(t, 10))
		_, err := CompactDB(context.Background(), path, path+walSuffix, StoreOptions{NoSync: true})
		if err == nil || !strings.Contains(err.Error(), "is the feedback log of") {
			t.Fatalf("compact -o %s-wal: %v, want a refusal", path, err)
		}
		_, err = SalvageDB(context.Background(), path, path+walSuffix, time.Second)
		if err == nil || !strings.Contains(err.Error(), "is the feedback log of") {
			t.Fatalf("salvage -o %s-wal: %v, want a refusal", path, err)
		}
		if _, err := os.Stat(path + walSuffix); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a file at the log's path after the refusals: %v", err)
		}
	})
}

// A store opened on the new file the moment an in-place compaction
// renamed it over the db (the compaction still holds the old file's lock,
// not the new one's) uses the log at the db's path + "-wal". The
// compaction's own close removed that path, so the new store's
// acknowledged writes were in an unlinked file, lost at a crash.
func TestCompactionLeavesTheLogOfAStoreOpenedAfterIt(t *testing.T) {
	path := writeTemp(t, pristineDB(t, 30))
	var b *BoltStore
	afterCompactRename = func() {
		b = openStoreAt(t, path, StoreOptions{NoSync: true})
		put(t, b, Feedback{RequestID: "after", Model: "m", Outcome: Outcome{Score: Float(0.5)}, Prompt: "q", TS: t0})
	}
	defer func() { afterCompactRename = nil }()
	if _, err := CompactDB(context.Background(), path, "", StoreOptions{NoSync: true}); err != nil {
		t.Fatal(err)
	}
	if b == nil {
		t.Fatal("the compaction did not reach its rename")
	}
	if _, err := os.Stat(path + walSuffix); err != nil {
		t.Errorf("the log of the store opened after the rename: %v", err)
	}
	crash(t, b)
	s := openStoreAt(t, path, StoreOptions{NoSync: true})
	defer s.Close()
	if got := scores(t, s)["after/m"]; got != 0.5 {
		t.Errorf("the acknowledged write after the compaction: score %v, want 0.5 (lost with its log)", got)
	}
}

// cancelAfter is a context that is cancelled from its nth Err call on:
// an interrupt that arrives while a copy is under way.
type cancelAfter struct {
	context.Context
	n, calls int
}

func (c *cancelAfter) Err() error {
	c.calls++
	if c.calls >= c.n {
		return context.Canceled
	}
	return nil
}

// An interrupt during a compaction or a salvage publishes nothing: the
// copy ends, and neither the new file nor its temporary is left; the db
// keeps its records. Both used to run to the end and publish.
func TestInterruptedCopyPublishesNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(ctx context.Context, path, out string) error
	}{
		{"compact -o", func(ctx context.Context, path, out string) error {
			_, err := CompactDB(ctx, path, out, StoreOptions{NoSync: true})
			return err
		}},
		{"compact in place", func(ctx context.Context, path, _ string) error {
			_, err := CompactDB(ctx, path, "", StoreOptions{NoSync: true})
			return err
		}},
		{"salvage", func(ctx context.Context, path, out string) error {
			_, err := SalvageDB(ctx, path, out, time.Second)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeTemp(t, pristineDB(t, 300))
			out := filepath.Join(filepath.Dir(path), "new.db")
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			// The first two checks (before the store opens, before the
			// copy starts) pass; the copy's own are interrupted.
			err = tc.run(&cancelAfter{Context: context.Background(), n: 3}, path, out)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err %v, want the interrupt", err)
			}
			entries, _ := os.ReadDir(filepath.Dir(path))
			for _, e := range entries {
				if e.Name() != "feedback.db" {
					t.Errorf("left %s beside the db", e.Name())
				}
			}
			// A salvage reads the db without opening it as a store.
			if after, _ := os.ReadFile(path); tc.name == "salvage" && !bytes.Equal(before, after) {
				t.Error("the salvage changed the db it read")
			}
			s := openStoreAt(t, path, StoreOptions{NoSync: true})
			defer s.Close()
			if n := len(exportAll(t, s, ExportOptions{})); n != 300 {
				t.Errorf("%d records in the db after the interrupted copy, want 300", n)
			}
		})
	}
}

// leafWhoseFirstKey is the first leaf page of more than three entries
// whose first key is one match accepts (the buckets' keys tell them
// apart: a log key is 16 bytes, a response id starts with resp_), or 0.
func leafWhoseFirstKey(f *boltFile, match func(key []byte) bool) uint64 {
	for p := uint64(2); p < f.meta.pgid; p++ {
		b, err := f.page(p)
		if err != nil {
			continue
		}
		if flags, count := pageKind(b); flags == boltLeafFlag && count > 3 {
			e := boltPageHeader
			pos, ksize := binaryNE32(b[e+4:]), binaryNE32(b[e+8:])
			if e+pos+ksize < len(b) && match(b[e+pos:e+pos+ksize]) {
				return p
			}
		}
	}
	return 0
}

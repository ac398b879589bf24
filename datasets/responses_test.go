package datasets

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestResponsesOutliveTheProcess: which tier stored a response is read
// back after the store is closed and opened again, an entry past its
// expiry is not found, and a later put prunes it from the file.
func TestResponsesOutliveTheProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.db")
	t0 := time.Unix(1_800_000_000, 0)
	s := openStoreAt(t, path, StoreOptions{NoSync: true})
	err := s.AppendDecisions([]LogEntry{
		pinEntry("req_a", t0, &StoredResponse{ID: "resp_a", Tier: "fast", Expires: t0.Add(time.Hour)}),
		pinEntry("req_b", t0, &StoredResponse{ID: "resp_b", Tier: "strong", Expires: t0.Add(2 * time.Hour)}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStoreAt(t, path, StoreOptions{NoSync: true})
	defer s.Close()
	for _, tc := range []struct {
		id, tier string
		at       time.Time
		found    bool
	}{
		{"resp_a", "fast", t0, true},
		{"resp_b", "strong", t0, true},
		{"resp_a", "", t0.Add(time.Hour), false},
		{"resp_c", "", t0, false},
	} {
		got, found, err := s.LookupResponse(tc.id, tc.at)
		if err != nil {
			t.Fatal(err)
		}
		if found != tc.found || got.Tier != tc.tier {
			t.Errorf("%s at %v: got %+v, %v; want tier %q, found %v", tc.id, tc.at.Sub(t0), got, found, tc.tier, tc.found)
		}
	}
	// Expired entries leave the file with the next put; a renewed one
	// stays.
	if err := s.AppendDecisions([]LogEntry{pinEntry("req_c", t0.Add(3*time.Hour), &StoredResponse{ID: "resp_b", Tier: "strong", Expires: t0.Add(5 * time.Hour)})}); err != nil {
		t.Fatal(err)
	}
	if ids, exps := pinCounts(t, s); ids != 1 || exps != 1 {
		t.Errorf("after the prune: %d ids, %d expiry entries; want 1 and 1 (resp_b renewed)", ids, exps)
	}
	if got, found, _ := s.LookupResponse("resp_b", t0.Add(4*time.Hour)); !found || got.Tier != "strong" {
		t.Errorf("renewed resp_b: %+v, %v", got, found)
	}
	if err := s.AppendDecisions([]LogEntry{pinEntry("req_d", t0, &StoredResponse{ID: "", Tier: "fast", Expires: t0})}); err == nil {
		t.Error("an empty response id was kept; want an error")
	}
}

// pinEntry is a decision-log entry whose answer stored the response r.
func pinEntry(id string, ts time.Time, r *StoredResponse) LogEntry {
	return LogEntry{ID: id, TS: ts, Decision: Decision{Kind: "fast", ModelVersion: "v1"}, Request: []byte(`{"prompt":"hi"}`), Response: r}
}

// TestResponsesCommitWithTheirRecords: a batch's stored responses are
// written in its decision-log commit, so a batch that fails leaves
// neither its records nor their entries. Written in a commit of their
// own after the records, they cost a second fsync per batch, and a
// failure of that commit failed a batch whose records were in the db.
func TestResponsesCommitWithTheirRecords(t *testing.T) {
	s := openStoreAt(t, filepath.Join(t.TempDir(), "f.db"), StoreOptions{NoSync: true})
	defer s.Close()
	t0 := time.Unix(1_800_000_000, 0)
	pin := &StoredResponse{ID: "resp_a", Tier: "fast", Expires: t0.Add(time.Hour)}
	bad := pinEntry("req_bad", t0, nil)
	bad.Request = []byte("not json")
	for _, tc := range []struct {
		name  string
		batch []LogEntry
		ok    bool
	}{
		{"a batch that fails keeps no entry", []LogEntry{pinEntry("req_a", t0, pin), bad}, false},
		{"a batch whose entry cannot be keyed keeps no record", []LogEntry{pinEntry("req_a", t0, &StoredResponse{ID: strings.Repeat("r", MaxIDBytes+1), Tier: "fast", Expires: t0.Add(time.Hour)})}, false},
		{"a batch that commits keeps both", []LogEntry{pinEntry("req_a", t0, pin)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.AppendDecisions(tc.batch)
			if (err == nil) != tc.ok {
				t.Fatalf("AppendDecisions: %v, want ok %v", err, tc.ok)
			}
			has, err := s.HasRequest("req_a")
			if err != nil {
				t.Fatal(err)
			}
			_, found, err := s.LookupResponse("resp_a", t0)
			if err != nil {
				t.Fatal(err)
			}
			if has != tc.ok || found != tc.ok {
				t.Errorf("record kept %v, entry kept %v; want both %v", has, found, tc.ok)
			}
		})
	}
}

// pinCounts counts the entries and the expiry index keys.
func pinCounts(tb testing.TB, s *BoltStore) (ids, exps int) {
	tb.Helper()
	s.db.View(func(tx *bolt.Tx) error {
		ids, exps = tx.Bucket(bucketResponses).Stats().KeyN, tx.Bucket(bucketResponseExpiry).Stats().KeyN
		return nil
	})
	return ids, exps
}

// TestRetentionRemovesResponseEntries: an entry goes with the record of
// the request whose answer gave its id, by age or by size, so a db full
// of stored responses is brought under max_bytes. Retention removed log
// records only: the entries (about 340 bytes of pages each) stayed until
// they expired, and a db whose entries alone passed max_bytes lost its
// whole log and stayed over the bound.
func TestRetentionRemovesResponseEntries(t *testing.T) {
	ctx := context.Background()
	const n = 6000
	// Short prompts and long ids: the entries take most of the pages.
	respID := func(i int) string { return fmt.Sprintf("resp_%04d_%s", i, strings.Repeat("f", 200)) }
	fill := func(t *testing.T) *BoltStore {
		s := openStoreAt(t, filepath.Join(t.TempDir(), "f.db"), StoreOptions{NoSync: true})
		t.Cleanup(func() { s.Close() })
		var batch []LogEntry
		for i := range n {
			ts := t0.Add(time.Duration(i) * time.Second)
			batch = append(batch, pinEntry(fmt.Sprintf("req_%04d", i), ts, &StoredResponse{ID: respID(i), Tier: "fast", Expires: ts.Add(1000 * time.Hour)}))
			if len(batch) == 1000 {
				if err := s.AppendDecisions(batch); err != nil {
					t.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		return s
	}
	// kept checks that exactly the newest want records are left, each
	// with its entry, and no other entry.
	kept := func(t *testing.T, s *BoltStore, want int) {
		t.Helper()
		for i := range n {
			has, err := s.HasRequest(fmt.Sprintf("req_%04d", i))
			if err != nil {
				t.Fatal(err)
			}
			_, found, err := s.LookupResponse(respID(i), t0)
			if err != nil {
				t.Fatal(err)
			}
			if newest := i >= n-want; has != newest || found != newest {
				t.Fatalf("request %d: record kept %v, entry kept %v; want both %v", i, has, found, newest)
			}
		}
		if ids, exps := pinCounts(t, s); ids != want || exps != want {
			t.Errorf("%d entries and %d expiry keys left, want %d of each", ids, exps, want)
		}
	}
	t.Run("max bytes removes the oldest records with their entries", func(t *testing.T) {
		s := fill(t)
		limit := s.Usage().UsedBytes / 3
		st, err := s.Prune(ctx, RetentionOptions{MaxBytes: limit})
		if err != nil {
			t.Fatal(err)
		}
		if st.UsedAfter > limit {
			t.Errorf("used %d bytes after the prune, want at most %d", st.UsedAfter, limit)
		}
		if st.BySize == 0 || st.BySize == n {
			t.Fatalf("pruned %+v, want some records and not all", st)
		}
		kept(t, s, n-st.BySize)
	})
	t.Run("max age removes older records with their entries", func(t *testing.T) {
		s := fill(t)
		st, err := s.Prune(ctx, RetentionOptions{MaxAge: 1000 * time.Second, Now: func() time.Time { return t0.Add(n * time.Second) }})
		if err != nil {
			t.Fatal(err)
		}
		if st.ByAge != n-1000 {
			t.Errorf("pruned %+v, want %d by age", st, n-1000)
		}
		kept(t, s, 1000)
	})
	t.Run("an id given again stays with the later record", func(t *testing.T) {
		s := openStoreAt(t, filepath.Join(t.TempDir(), "f.db"), StoreOptions{NoSync: true})
		defer s.Close()
		r := func(ts time.Time) *StoredResponse {
			return &StoredResponse{ID: "resp_x", Tier: "fast", Expires: ts.Add(time.Hour)}
		}
		later := t0.Add(time.Minute)
		if err := s.AppendDecisions([]LogEntry{pinEntry("req_a", t0, r(t0)), pinEntry("req_b", later, r(later))}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Prune(ctx, RetentionOptions{MaxAge: 30 * time.Second, Now: func() time.Time { return later }}); err != nil {
			t.Fatal(err)
		}
		if got, found, _ := s.LookupResponse("resp_x", later); !found || !got.Expires.Equal(later.Add(time.Hour)) {
			t.Errorf("after req_a was removed: %+v, %v; want req_b's entry", got, found)
		}
		if ids, exps := pinCounts(t, s); ids != 1 || exps != 1 {
			t.Errorf("%d entries and %d expiry keys, want 1 of each", ids, exps)
		}
	})
}

// pinnedDB writes a closed store of n records, each with a stored
// response entry (resp_i, given to req_i), and returns its path.
func pinnedDB(tb testing.TB, n int) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "f.db")
	s := openStoreAt(tb, path, StoreOptions{NoSync: true})
	var batch []LogEntry
	for i := range n {
		ts := t0.Add(time.Duration(i) * time.Second)
		batch = append(batch, pinEntry(fmt.Sprintf("req_%d", i), ts, &StoredResponse{ID: fmt.Sprintf("resp_%d", i), Tier: "fast", Expires: ts.Add(time.Hour)}))
	}
	if err := s.AppendDecisions(batch); err != nil {
		tb.Fatal(err)
	}
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
	return path
}

// TestCheckTakesEntriesOfRemovedRecordsForSound: a build before the
// entries, serving a db that today's build wrote them in (a rollback),
// removes records by retention and leaves their entries. They are sound
// (a lookup still finds the tier; they expire): check called such a db
// damaged, one bad entry each, and sent its user to salvage.
func TestCheckTakesEntriesOfRemovedRecordsForSound(t *testing.T) {
	const n = 20
	path := pinnedDB(t, n)
	// What the older build's retention does: the records and their ids go.
	editDB(t, path, func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketLog, bucketIDs} {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		return nil
	})
	rep, err := CheckDB(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Damaged() || rep.Responses != n || rep.BadResponses != 0 || rep.OrphanResponses != n {
		t.Errorf("check: %d entries, %d bad, %d of no record, damaged %v; want %d, 0, %d, false", rep.Responses, rep.BadResponses, rep.OrphanResponses, rep.Damaged(), n, n)
	}
}

// TestSalvageAndCheckReadResponseEntries: salvage copies the readable
// stored-response entries of the records it copies (and rebuilds their
// expiry index), counting the unreadable ones; check counts them and
// calls a db with a bad one damaged; compact keeps them. Salvage copied
// the log, ids, feedback and meta buckets only: after it every
// conversation through the proxy lost its tier.
func TestSalvageAndCheckReadResponseEntries(t *testing.T) {
	const n = 50
	path := pinnedDB(t, n)
	clean, err := CheckDB(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if clean.Damaged() || clean.Responses != n {
		t.Errorf("check of a sound db: %+v; want no damage and %d entries", clean, n)
	}
	// Damage: an entry too short to read, and one of a record the db
	// does not have.
	editDB(t, path, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketResponses)
		if err := b.Put([]byte("resp_0"), []byte{1, 2}); err != nil {
			return err
		}
		exp := binary.BigEndian.AppendUint64(nil, uint64(t0.Add(time.Hour).UnixNano()))
		if err := tx.Bucket(bucketResponseExpiry).Put(expiryKey(binary.BigEndian.Uint64(exp), []byte("resp_gone")), []byte{}); err != nil {
			return err
		}
		return b.Put([]byte("resp_gone"), append(append(exp, appendLogKey(nil, t0.Add(-time.Hour), 99)...), "fast"...))
	})
	rep, err := CheckDB(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// resp_0 unreadable, and its expiry key left without an entry;
	// resp_gone of no record, which is not damage.
	if !rep.Damaged() || rep.Responses != n || rep.BadResponses != 2 || rep.OrphanResponses != 1 {
		t.Errorf("check of the damaged entries: %d read, %d bad, %d of no record, damaged %v; want %d, 2, 1, true", rep.Responses, rep.BadResponses, rep.OrphanResponses, rep.Damaged(), n)
	}

	out := filepath.Join(t.TempDir(), "salvaged.db")
	srep, err := SalvageDB(context.Background(), path, out, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if srep.Responses != n-1 || srep.BadResponses != 1 || srep.OrphanResponses != 1 {
		t.Errorf("salvage = %+v; want %d entries copied, 1 unreadable, 1 of no record", srep, n-1)
	}
	if rep, err := CheckDB(out, time.Second); err != nil || rep.Damaged() || rep.Responses != n-1 {
		t.Errorf("check of the salvaged db: %+v, %v; want no damage and %d entries", rep, err, n-1)
	}
	res, err := CompactDB(context.Background(), out, "", StoreOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.After == 0 {
		t.Fatalf("compaction: %+v", res)
	}
	s := openStoreAt(t, out, StoreOptions{NoSync: true})
	defer s.Close()
	for i := 1; i < n; i++ {
		if got, found, err := s.LookupResponse(fmt.Sprintf("resp_%d", i), t0); err != nil || !found || got.Tier != "fast" {
			t.Fatalf("resp_%d after salvage and compaction: %+v, %v, %v; want its entry", i, got, found, err)
		}
	}
	// The entries still follow their records.
	if _, err := s.Prune(context.Background(), RetentionOptions{MaxAge: time.Second, Now: func() time.Time { return t0.Add(n * time.Second) }}); err != nil {
		t.Fatal(err)
	}
	if ids, exps := pinCounts(t, s); ids != 1 || exps != 1 {
		t.Errorf("after max_age left one record: %d entries, %d expiry keys; want 1 of each", ids, exps)
	}
}

// TestReadersOfADBWithoutResponseBuckets: a db written by a build before
// the stored-response buckets (made here by deleting them) is read by
// every reader: check, salvage, compact, a read-only view (as a
// read-only export opens it, creating no bucket), and a store opened for
// writing, which adds the buckets. A lookup in a read-only view of such
// a file dereferenced the missing bucket.
func TestReadersOfADBWithoutResponseBuckets(t *testing.T) {
	const n = 20
	old := pinnedDB(t, n)
	editDB(t, old, func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketResponses, bucketResponseExpiry} {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
		}
		return nil
	})
	copyOf := func(t *testing.T) string {
		t.Helper()
		// The pages only, not the sparse growth step after them.
		return writeTemp(t, dbPages(t, old))
	}
	t.Run("check finds no damage", func(t *testing.T) {
		rep, err := CheckDB(copyOf(t), time.Second)
		if err != nil || rep.Damaged() || rep.Records != n || rep.Responses != 0 {
			t.Errorf("check: %+v, %v; want no damage, %d records, no entries", rep, err, n)
		}
	})
	t.Run("salvage copies the records", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "salvaged.db")
		rep, err := SalvageDB(context.Background(), copyOf(t), out, time.Second)
		if err != nil || rep.Records != n || rep.Responses != 0 || rep.BadResponses != 0 {
			t.Errorf("salvage: %+v, %v; want %d records, no entries", rep, err, n)
		}
	})
	t.Run("a read-only view looks up nothing", func(t *testing.T) {
		db, err := bolt.Open(copyOf(t), 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		s := &BoltStore{db: db}
		if got, found, err := s.LookupResponse("resp_1", t0); found || err != nil {
			t.Errorf("lookup: %+v, %v, %v; want nothing found", got, found, err)
		}
	})
	t.Run("compact and a store opened for writing read it and add the buckets", func(t *testing.T) {
		path := copyOf(t)
		if _, err := CompactDB(context.Background(), path, "", StoreOptions{NoSync: true}); err != nil {
			t.Fatal(err)
		}
		s := openStoreAt(t, path, StoreOptions{NoSync: true})
		defer s.Close()
		if got := exportAll(t, s, ExportOptions{}); len(got) != n {
			t.Errorf("export: %d records, want %d", len(got), n)
		}
		if _, found, err := s.LookupResponse("resp_1", t0); found || err != nil {
			t.Errorf("lookup of an entry the old build never kept: %v, %v", found, err)
		}
		ts := t0.Add(time.Hour)
		if err := s.AppendDecisions([]LogEntry{pinEntry("req_new", ts, &StoredResponse{ID: "resp_new", Tier: "strong", Expires: ts.Add(time.Hour)})}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Prune(context.Background(), RetentionOptions{MaxAge: time.Minute, Now: func() time.Time { return ts }}); err != nil {
			t.Fatal(err)
		}
		if got, found, err := s.LookupResponse("resp_new", ts); !found || err != nil || got.Tier != "strong" {
			t.Errorf("lookup of a new entry: %+v, %v, %v", got, found, err)
		}
	})
}

// TestCheckAndSalvageADamagedResponsesPage: a page of stored-response
// entries zeroed is damage that check reports and salvage skips, counted,
// copying every record and the other entries. Both read every bucket's
// pages, these too.
func TestCheckAndSalvageADamagedResponsesPage(t *testing.T) {
	const n = 3000
	path := pinnedDB(t, n)
	db := dbPages(t, path)
	bf, err := openBoltFile(bytes.NewReader(db), int64(len(db)))
	if err != nil {
		t.Fatal(err)
	}
	// A leaf of the responses bucket: its keys are response ids (the log's
	// are 16 bytes, the expiry index's start with a time).
	leaf := leafWhoseFirstKey(bf, func(k []byte) bool { return bytes.HasPrefix(k, []byte("resp_")) })
	if leaf == 0 {
		t.Fatal("no leaf page of response entries found")
	}
	clear(db[int(leaf)*DefaultPageSize : int(leaf+1)*DefaultPageSize])
	damaged := writeTemp(t, db)
	rep, err := CheckDB(damaged, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Damaged() || rep.BadPages != 1 || rep.Records != n || rep.Responses >= n {
		t.Errorf("check: damaged %v, %d bad pages, %d records, %d entries; want damage, 1 bad page, %d records, fewer entries",
			rep.Damaged(), rep.BadPages, rep.Records, rep.Responses, n)
	}
	out := filepath.Join(t.TempDir(), "salvaged.db")
	srep, err := SalvageDB(context.Background(), damaged, out, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if srep.Records != n || srep.BadPages != 1 || srep.Responses != rep.Responses || srep.Responses == 0 {
		t.Errorf("salvage: %+v; want %d records, 1 bad page, the %d readable entries", srep, n, rep.Responses)
	}
	if rep, err := CheckDB(out, time.Second); err != nil || rep.Damaged() {
		t.Errorf("check of the salvaged db: %+v, %v; want no damage", rep, err)
	}
}

// TestResponseOwnersAreKept: an entry's owner (the client key its
// request was made with) is read back after a restart, and check,
// salvage and compact take the layout with an owner for sound and keep
// it; an entry without one reads as owner "". The entries kept no
// owner, so the proxy could not keep one client from reading or
// continuing another's stored responses.
func TestResponseOwnersAreKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.db")
	s := openStoreAt(t, path, StoreOptions{NoSync: true})
	exp := t0.Add(time.Hour)
	err := s.AppendDecisions([]LogEntry{
		pinEntry("req_a", t0, &StoredResponse{ID: "resp_a", Tier: "fast", Owner: "alice", Expires: exp}),
		pinEntry("req_b", t0, &StoredResponse{ID: "resp_b", Tier: "strong", Owner: "bob", Expires: exp}),
		pinEntry("req_c", t0, &StoredResponse{ID: "resp_c", Tier: "fast", Expires: exp}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AppendDecisions([]LogEntry{pinEntry("req_d", t0, &StoredResponse{ID: "resp_d", Tier: "fast", Owner: "bad\x00name", Expires: exp})}); err == nil {
		t.Error("an owner holding a control character was kept; want an error")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	want := map[string][2]string{"resp_a": {"fast", "alice"}, "resp_b": {"strong", "bob"}, "resp_c": {"fast", ""}}
	lookAll := func(t *testing.T, path string) {
		t.Helper()
		s := openStoreAt(t, path, StoreOptions{NoSync: true})
		defer s.Close()
		for id, w := range want {
			got, found, err := s.LookupResponse(id, t0)
			if err != nil || !found || got.Tier != w[0] || got.Owner != w[1] {
				t.Errorf("%s: %+v, %v, %v; want tier %q, owner %q", id, got, found, err, w[0], w[1])
			}
		}
	}
	t.Run("a restart reads each entry's owner back", func(t *testing.T) { lookAll(t, path) })
	t.Run("check takes entries with and without owners for sound", func(t *testing.T) {
		rep, err := CheckDB(path, time.Second)
		if err != nil || rep.Damaged() || rep.Responses != 3 || rep.BadResponses != 0 {
			t.Errorf("check: %+v, %v; want 3 sound entries", rep, err)
		}
	})
	t.Run("salvage and compact keep the owners", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "salvaged.db")
		srep, err := SalvageDB(context.Background(), path, out, time.Second)
		if err != nil || srep.Responses != 3 || srep.BadResponses != 0 {
			t.Fatalf("salvage: %+v, %v; want 3 entries copied", srep, err)
		}
		if _, err := CompactDB(context.Background(), out, "", StoreOptions{NoSync: true}); err != nil {
			t.Fatal(err)
		}
		lookAll(t, out)
	})
	t.Run("check and salvage count an entry whose owner is not a key as bad", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.db")
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bad, data, 0o600); err != nil {
			t.Fatal(err)
		}
		editDB(t, bad, func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketResponses)
			v := bytes.Clone(b.Get([]byte("resp_c")))
			return b.Put([]byte("resp_c"), append(v, 0)) // a separator and no owner
		})
		rep, err := CheckDB(bad, time.Second)
		if err != nil || !rep.Damaged() || rep.BadResponses != 2 {
			t.Errorf("check: %+v, %v; want damaged, the entry and its expiry key bad", rep, err)
		}
		srep, err := SalvageDB(context.Background(), bad, filepath.Join(t.TempDir(), "out.db"), time.Second)
		if err != nil || srep.Responses != 2 || srep.BadResponses != 1 {
			t.Errorf("salvage: %+v, %v; want 2 entries copied, 1 unreadable", srep, err)
		}
	})
}

// editDB changes the db file at path in one bbolt transaction, as
// damage or an older build would have left it.
func editDB(t *testing.T, path string, edit func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(edit); err != nil {
		db.Close()
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

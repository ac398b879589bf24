package datasets

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func openStoreAt(tb testing.TB, path string, opts StoreOptions) *BoltStore {
	tb.Helper()
	s, err := OpenBoltStore(path, opts)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// crash closes s as a SIGKILL would leave it: the log not applied.
func crash(tb testing.TB, s *BoltStore) {
	tb.Helper()
	s.crashOnClose = true
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
}

func put(tb testing.TB, s *BoltStore, fb Feedback) {
	tb.Helper()
	if err := s.PutFeedback(context.Background(), fb); err != nil {
		tb.Fatalf("PutFeedback(%s, %s): %v", fb.RequestID, fb.Model, err)
	}
}

// scores maps "id/model" to the exported score.
func scores(tb testing.TB, s *BoltStore) map[string]float64 {
	tb.Helper()
	out := map[string]float64{}
	for _, r := range exportAll(tb, s, ExportOptions{}) {
		for m, o := range r.Outcomes {
			if o.Score != nil {
				out[r.ID+"/"+m] = *o.Score
			}
		}
	}
	return out
}

func TestWALReplay(t *testing.T) {
	t.Run("acknowledged writes still in the log are there after a crash", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "feedback.db")
		s := openStoreAt(t, path, StoreOptions{})
		if err := s.AppendDecisions([]LogEntry{entry("r1", t0, "fast", 0.1, `{"prompt":"p"}`)}); err != nil {
			t.Fatal(err)
		}
		put(t, s, Feedback{RequestID: "r1", Model: "m", Outcome: Outcome{Score: Float(0)}})
		put(t, s, Feedback{RequestID: "r1", Model: "m", Outcome: Outcome{Score: Float(1)}})
		put(t, s, Feedback{RequestID: "ext", Model: "m", Outcome: Outcome{Score: Float(0.5)}, Prompt: "q", TS: t0})
		put(t, s, Feedback{RequestID: "ext", Model: "n", Outcome: Outcome{Score: Float(0.25)}})
		crash(t, s)

		s = openStoreAt(t, path, StoreOptions{})
		defer s.Close()
		got := scores(t, s)
		want := map[string]float64{"r1/m": 1, "ext/m": 0.5, "ext/n": 0.25}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("scores = %v, want %v", got, want)
		}
	})

	t.Run("a torn last record is dropped and the records before it kept", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "feedback.db")
		s := openStoreAt(t, path, StoreOptions{NoSync: true})
		put(t, s, Feedback{RequestID: "a", Model: "m", Outcome: Outcome{Score: Float(1)}, Prompt: "p", TS: t0})
		put(t, s, Feedback{RequestID: "b", Model: "m", Outcome: Outcome{Score: Float(1)}, Prompt: "p", TS: t0})
		crash(t, s)
		// Cut the second record short, as a crash mid-append leaves it:
		// zeros from its middle on.
		data, err := os.ReadFile(path + walSuffix)
		if err != nil {
			t.Fatal(err)
		}
		ops := readWAL(data, 0).ops
		if len(ops) != 2 {
			t.Fatalf("log holds %d records, want 2", len(ops))
		}
		first := len(appendWALRecord(nil, 0, 0, 0, &ops[0]))
		clear(data[first+walHeader+4:])
		if err := os.WriteFile(path+walSuffix, data, 0o600); err != nil {
			t.Fatal(err)
		}

		s = openStoreAt(t, path, StoreOptions{NoSync: true})
		defer s.Close()
		if got, want := fmt.Sprint(scores(t, s)), fmt.Sprint(map[string]float64{"a/m": 1}); got != want {
			t.Errorf("scores = %v, want %v", got, want)
		}
	})

	t.Run("records of a log already applied are not applied again", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "feedback.db")
		s := openStoreAt(t, path, StoreOptions{NoSync: true})
		put(t, s, Feedback{RequestID: "x", Model: "m", Outcome: Outcome{Score: Float(0)}, Prompt: "p", TS: t0})
		put(t, s, Feedback{RequestID: "y", Model: "m", Outcome: Outcome{Score: Float(0)}, Prompt: "p", TS: t0})
		if err := s.flush(); err != nil { // log applied; both records stay in the file
			t.Fatal(err)
		}
		// The same length as y's record above, so y's old record follows
		// it in the file: replayed, it would set y back to 0.
		put(t, s, Feedback{RequestID: "y", Model: "m", Outcome: Outcome{Score: Float(1)}, Prompt: "p", TS: t0})
		if err := s.flush(); err != nil {
			t.Fatal(err)
		}
		crash(t, s)

		s = openStoreAt(t, path, StoreOptions{NoSync: true})
		defer s.Close()
		if got, want := fmt.Sprint(scores(t, s)), fmt.Sprint(map[string]float64{"x/m": 0, "y/m": 1}); got != want {
			t.Errorf("scores = %v, want %v", got, want)
		}
	})
}

func TestWALFull(t *testing.T) {
	t.Run("a log that fills up is applied and appends start again", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "feedback.db")
		s := openStoreAt(t, path, StoreOptions{NoSync: true, WALSize: 1024})
		want := map[string]float64{}
		for i := range 100 {
			id := fmt.Sprintf("r%d", i%30)
			put(t, s, Feedback{RequestID: id, Model: "m", Outcome: Outcome{Score: Float(float64(i%4) / 4)}, Prompt: "p", TS: t0})
			want[id+"/m"] = float64(i%4) / 4
		}
		if st := s.CommitStats(); st.Applies < 2 {
			t.Errorf("%d applies of the log, want several for 100 writes in a 1 KiB log", st.Applies)
		}
		crash(t, s)
		s = openStoreAt(t, path, StoreOptions{NoSync: true, WALSize: 1024})
		defer s.Close()
		if got := scores(t, s); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("scores = %v, want %v", got, want)
		}
	})

	t.Run("a write bigger than the log goes straight to the db", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "feedback.db")
		s := openStoreAt(t, path, StoreOptions{NoSync: true, WALSize: 1024})
		put(t, s, Feedback{RequestID: "big", Model: "m", Outcome: Outcome{Score: Float(1)}, Prompt: strings.Repeat("long ", 1000), TS: t0})
		crash(t, s)
		s = openStoreAt(t, path, StoreOptions{NoSync: true, WALSize: 1024})
		defer s.Close()
		recs := exportAll(t, s, ExportOptions{})
		if len(recs) != 1 || len(recs[0].Prompt) != 5000 || recs[0].Outcomes["m"].Score == nil {
			t.Errorf("export = %+v, want the big record with its feedback", recs)
		}
	})
}

// A group too big for the log goes straight to the db; the requests it
// creates must not stay in pendingFP, where they outlived their record:
// still undecided after a route, and still there after retention.
func TestWALBigGroupLeavesNoPendingFingerprint(t *testing.T) {
	path := filepath.Join(t.TempDir(), "feedback.db")
	s := openStoreAt(t, path, StoreOptions{NoSync: true, WALSize: 1024})
	defer s.Close()
	prompt := strings.Repeat("long ", 1000)
	put(t, s, Feedback{RequestID: "big", Model: "m", Outcome: Outcome{Score: Float(1)}, Prompt: prompt, TS: t0})
	if err := s.AppendDecisions([]LogEntry{entry("big", t0, "fast", 0.1, fmt.Sprintf(`{"prompt":%q}`, prompt))}); err != nil {
		t.Fatal(err)
	}
	if _, found, decided, err := s.RequestFingerprint("big"); err != nil || !found || !decided {
		t.Errorf("after its route: found %v, decided %v, %v; want found and decided", found, decided, err)
	}
	if _, err := s.Prune(context.Background(), RetentionOptions{MaxAge: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, found, _, err := s.RequestFingerprint("big"); err != nil || found {
		t.Errorf("after retention removed it: found %v, %v; want not found", found, err)
	}
}

func TestWALClose(t *testing.T) {
	t.Run("a clean close applies the log and leaves only the db file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "feedback.db")
		s := openStoreAt(t, path, StoreOptions{NoSync: true})
		put(t, s, Feedback{RequestID: "a", Model: "m", Outcome: Outcome{Score: Float(1)}, Prompt: "p", TS: t0})
		if _, err := os.Stat(path + walSuffix); err != nil {
			t.Fatalf("log while open: %v, want the file", err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(path + walSuffix); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("log after close: %v, want no file", err)
		}
		s = openStoreAt(t, path, StoreOptions{NoSync: true})
		defer s.Close()
		if got := scores(t, s); got["a/m"] != 1 {
			t.Errorf("scores = %v, want a/m 1", got)
		}
	})
}

// FuzzReadWAL: replay never panics on whatever a crash or a bad disk
// leaves in the file, and the clean records it reads back encode to the
// start of the file.
func FuzzReadWAL(f *testing.F) {
	var log []byte
	for i, op := range []walOp{
		{id: "r", fkey: []byte("r\x00m"), val: []byte(`{"score":1}`)},
		{id: "e", fkey: []byte("e\x00m"), val: []byte(`{}`), ts: t0, created: []byte(`{"id":"e"}`)},
		{id: "r", fkey: []byte("r\x00n"), val: []byte(`{"score":0}`)},
	} {
		log = appendWALRecord(log, 3, uint32(i), uint32(i/2*2), &op)
	}
	f.Add(log)
	f.Add(log[:len(log)-1])
	flipped := bytes.Clone(log)
	flipped[walHeader+2] ^= 0x40
	f.Add(flipped)
	f.Add(make([]byte, 64))
	f.Fuzz(func(t *testing.T, data []byte) {
		sc := readWAL(data, 3)
		if sc.v1 {
			return
		}
		var again []byte
		for i, op := range sc.ops[:sc.clean] {
			// first is not known here; a prefix check on the rest of the
			// header and the payload is what matters.
			rec := appendWALRecord(nil, 3, uint32(i), 0, &op)
			again = append(again, rec...)
		}
		if len(again) > len(data) {
			t.Fatalf("records read back are %d bytes, more than the log's %d", len(again), len(data))
		}
		if sc.badOff >= 0 && (sc.after == 0 || sc.badOff > int64(len(data))) {
			t.Fatalf("damage at %d with %d records after it in a %d-byte log", sc.badOff, sc.after, len(data))
		}
	})
}

// writeLog appends n feedback writes to a new store at path, one group
// each, and leaves it as a SIGKILL would. It returns the log's bytes and
// the offsets of its records.
func writeFeedbackLog(tb testing.TB, path string, n int) ([]byte, []int) {
	tb.Helper()
	s := openStoreAt(tb, path, StoreOptions{NoSync: true})
	for i := range n {
		put(tb, s, Feedback{RequestID: fmt.Sprintf("r%03d", i), Model: "m", Outcome: Outcome{Score: Float(1)}, Prompt: "p", TS: t0})
	}
	crash(tb, s)
	data, err := os.ReadFile(path + walSuffix)
	if err != nil {
		tb.Fatal(err)
	}
	var offs []int
	for off := 0; ; {
		r, ok := parseWALRecord(data, off, 0)
		if !ok {
			break
		}
		offs = append(offs, off)
		off = r.end
	}
	if len(offs) != n {
		tb.Fatalf("log holds %d records, want %d", len(offs), n)
	}
	return data, offs
}

func TestWALDamage(t *testing.T) {
	t.Run("a flipped byte mid-log refuses the open, naming the offset and the records after it", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "feedback.db")
		data, offs := writeFeedbackLog(t, path, 300)
		mid := offs[150] + walHeader + 3
		data[mid] ^= 0x01
		if err := os.WriteFile(path+walSuffix, data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := OpenBoltStore(path, StoreOptions{NoSync: true})
		var de *WALDamageError
		if !errors.As(err, &de) {
			t.Fatalf("open: %v, want a *WALDamageError", err)
		}
		if de.Offset != int64(offs[150]) || de.After != 149 || de.Lost != 1 {
			t.Errorf("damage at %d with %d after, %d lost; want %d, 149, 1", de.Offset, de.After, de.Lost, offs[150])
		}
		for _, want := range []string{path + walSuffix, fmt.Sprintf("byte %d", offs[150]), "149 acknowledged records", "--salvage-log"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
		// Nothing was applied: the db still opens with salvage and keeps
		// every readable write.
		s := openStoreAt(t, path, StoreOptions{NoSync: true, SalvageLog: true})
		defer s.Close()
		got := scores(t, s)
		if len(got) != 299 {
			t.Errorf("%d writes kept, want 299 (all but the damaged one)", len(got))
		}
		if _, ok := got["r150/m"]; ok {
			t.Error("the damaged record r150 was applied")
		}
		if r := s.Replay(); r.DamagedAt != int64(offs[150]) || r.Lost != 1 || !r.Salvaged || r.Replayed != 299 {
			t.Errorf("Replay() = %+v, want damage at %d, 1 lost, salvaged, 299 replayed", r, offs[150])
		}
	})

	t.Run("a torn last record is the end of the log, not damage", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "feedback.db")
		data, offs := writeFeedbackLog(t, path, 10)
		clear(data[offs[9]+walHeader:])
		if err := os.WriteFile(path+walSuffix, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s := openStoreAt(t, path, StoreOptions{NoSync: true})
		defer s.Close()
		if got := scores(t, s); len(got) != 9 {
			t.Errorf("%d writes kept, want 9", len(got))
		}
		if r := s.Replay(); r.DamagedAt != -1 || r.Replayed != 9 {
			t.Errorf("Replay() = %+v, want 9 replayed, no damage", r)
		}
	})

	t.Run("damage inside the last append keeps its readable records and reports the loss", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "feedback.db")
		s := openStoreAt(t, path, StoreOptions{NoSync: true})
		// One group of three records: a power cut may write its blocks
		// out of order, leaving the first bad and the others whole.
		errs := make(chan error, 3)
		reqs := make([]*commitReq, 3)
		for i := range reqs {
			id := fmt.Sprintf("g%d", i)
			kv := []byte(id + "\x00m")
			reqs[i] = &commitReq{op: &walOp{id: id, fkey: kv, val: []byte(`{"score":1}`), ts: t0, created: []byte(`{"id":"` + id + `","ts":"2026-11-27T10:00:00Z","request":{"prompt":"p"}}`)}, err: make(chan error, 1)}
		}
		s.commitGroup(reqs)
		for _, r := range reqs {
			errs <- <-r.err
		}
		for range reqs {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		crash(t, s)
		data, err := os.ReadFile(path + walSuffix)
		if err != nil {
			t.Fatal(err)
		}
		data[walHeader+1] ^= 0xff
		if err := os.WriteFile(path+walSuffix, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s = openStoreAt(t, path, StoreOptions{NoSync: true})
		defer s.Close()
		got := scores(t, s)
		if fmt.Sprint(got) != fmt.Sprint(map[string]float64{"g1/m": 1, "g2/m": 1}) {
			t.Errorf("scores = %v, want g1 and g2", got)
		}
		if r := s.Replay(); r.DamagedAt != 0 || r.Lost != 1 || r.Salvaged {
			t.Errorf("Replay() = %+v, want damage at 0, 1 lost, not a salvage", r)
		}
	})

	t.Run("a log of the first format is replayed", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "feedback.db")
		s := openStoreAt(t, path, StoreOptions{NoSync: true})
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		// A version 1 record: length, crc, epoch, payload.
		op := walOp{id: "old", fkey: []byte("old\x00m"), val: []byte(`{"score":0.5}`), ts: t0, created: []byte(`{"id":"old","ts":"2026-11-27T10:00:00Z","request":{"prompt":"p"}}`)}
		v2 := appendWALRecord(nil, 0, 0, 0, &op)
		payload := v2[walHeader:]
		v1 := make([]byte, walHeaderV1, walHeaderV1+len(payload))
		v1 = append(v1, payload...)
		binary.BigEndian.PutUint32(v1[0:], uint32(len(payload)))
		binary.BigEndian.PutUint64(v1[8:], 0) // the new db's epoch
		binary.BigEndian.PutUint32(v1[4:], crc32.Update(crc32.Update(0, crcTable, v1[8:16]), crcTable, payload))
		if err := os.WriteFile(path+walSuffix, append(v1, make([]byte, 64)...), 0o600); err != nil {
			t.Fatal(err)
		}
		s = openStoreAt(t, path, StoreOptions{NoSync: true})
		defer s.Close()
		if got := scores(t, s); got["old/m"] != 0.5 {
			t.Errorf("scores = %v, want old/m 0.5 from the version 1 log", got)
		}
	})

	t.Run("a log whose db is missing is refused", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "feedback.db")
		writeFeedbackLog(t, path, 3)
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		_, err := OpenBoltStore(path, StoreOptions{NoSync: true})
		if err == nil || !strings.Contains(err.Error(), "holds writes, but the db "+path+" does not exist") {
			t.Fatalf("open: %v, want a refusal naming the orphaned log", err)
		}
	})

	// A 0-byte db with a log beside it (a failed copy of the db, not of
	// its log): --init would start a new store, apply the log's feedback
	// to requests it does not hold and delete the log.
	t.Run("a log beside a 0-byte db is refused, even with --init", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "feedback.db")
		writeFeedbackLog(t, path, 3)
		if err := os.Truncate(path, 0); err != nil {
			t.Fatal(err)
		}
		_, err := OpenBoltStore(path, StoreOptions{NoSync: true})
		if !errors.Is(err, ErrEmptyDB) || !strings.Contains(err.Error(), "holds acknowledged writes") {
			t.Fatalf("open: %v, want ErrEmptyDB naming the log", err)
		}
		_, err = OpenBoltStore(path, StoreOptions{NoSync: true, Init: true})
		if err == nil || !strings.Contains(err.Error(), "holds writes, but the db "+path+" is 0 bytes") {
			t.Fatalf("open --init: %v, want a refusal naming the log", err)
		}
		if fi, err := os.Stat(path + walSuffix); err != nil || fi.Size() == 0 {
			t.Fatalf("the log after the refusals: %v, %v; want it kept", fi, err)
		}
	})
}

// A log cut short (a partial copy of it beside a copy of the db) looked
// like a log that ends: its readable records were applied, the rest of the
// acknowledged writes silently lost, and the file then reused. It is
// refused, check says so, and --salvage-log applies what is readable.
func TestWALCutShort(t *testing.T) {
	path := filepath.Join(t.TempDir(), "feedback.db")
	data, offs := writeFeedbackLog(t, path, 40)
	for _, c := range []struct {
		name string
		n    int // bytes kept
		want int // readable records
	}{
		{"inside a record", offs[16] + walHeader + 5, 16},
		{"inside a header", offs[16] + 10, 16},
		{"at a record's end", offs[16], 16},
		{"inside the first header", 10, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			db := filepath.Join(dir, "feedback.db")
			copyFile(t, path, db)
			if err := os.WriteFile(db+walSuffix, data[:c.n], 0o600); err != nil {
				t.Fatal(err)
			}
			rep, err := CheckDB(db, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Damaged() || !rep.Log.Truncated || rep.Log.Records != c.want {
				t.Errorf("check = %+v, want a cut-short log with %d readable records", rep.Log, c.want)
			}
			_, err = OpenBoltStore(db, StoreOptions{NoSync: true})
			var de *WALDamageError
			if !errors.As(err, &de) || !de.Truncated || !strings.Contains(err.Error(), "is cut short") {
				t.Fatalf("open: %v, want a refusal of the cut-short log", err)
			}
			if got, _ := os.ReadFile(db + walSuffix); len(got) != c.n {
				t.Fatalf("the refused log is now %d bytes, want it untouched (%d)", len(got), c.n)
			}
			s := openStoreAt(t, db, StoreOptions{NoSync: true, SalvageLog: true})
			defer s.Close()
			if r := s.Replay(); !r.Truncated || r.Replayed != c.want {
				t.Errorf("replay with --salvage-log = %+v, want the %d readable records and the cut reported", r, c.want)
			}
		})
	}
	t.Run("a log that is all there, or holds no record, is not cut", func(t *testing.T) {
		for _, c := range []struct {
			log  []byte
			want int
		}{
			{data, 40},
			{nil, 0},
			{make([]byte, 100), 0}, // a crash while a new log was being preallocated
		} {
			dir := t.TempDir()
			db := filepath.Join(dir, "feedback.db")
			copyFile(t, path, db)
			if err := os.WriteFile(db+walSuffix, c.log, 0o600); err != nil {
				t.Fatal(err)
			}
			s := openStoreAt(t, db, StoreOptions{NoSync: true})
			if r := s.Replay(); r.Truncated || r.Replayed != c.want {
				t.Errorf("a log of %d bytes: replay = %+v, want %d records and no cut", len(c.log), r, c.want)
			}
			s.Close()
		}
	})
}

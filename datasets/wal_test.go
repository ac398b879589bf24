package datasets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
		ops := readWAL(data, 0)
		if len(ops) != 2 {
			t.Fatalf("log holds %d records, want 2", len(ops))
		}
		first := len(appendWALRecord(nil, 0, &ops[0]))
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
// leaves in the file, and what it reads back encodes to the same bytes.
func FuzzReadWAL(f *testing.F) {
	var log []byte
	for _, op := range []walOp{
		{id: "r", fkey: []byte("r\x00m"), val: []byte(`{"score":1}`)},
		{id: "e", fkey: []byte("e\x00m"), val: []byte(`{}`), ts: t0, created: []byte(`{"id":"e"}`)},
	} {
		log = appendWALRecord(log, 3, &op)
	}
	f.Add(log)
	f.Add(log[:len(log)-1])
	f.Add(make([]byte, 64))
	f.Fuzz(func(t *testing.T, data []byte) {
		var again []byte
		for _, op := range readWAL(data, 3) {
			again = appendWALRecord(again, 3, &op)
		}
		if !bytes.HasPrefix(data, again) {
			t.Fatalf("records read back encode to %x, not a prefix of the log %x", again, data)
		}
	})
}

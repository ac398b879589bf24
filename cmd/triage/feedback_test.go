package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/triage-router/triage/datasets"
)

// fillStore writes two routed requests, one with feedback from both tiers,
// into a new feedback db at path and returns the store still open.
func fillStore(t *testing.T, path string) *datasets.BoltStore {
	t.Helper()
	st, err := datasets.OpenBoltStore(path, datasets.StoreOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	err = st.AppendDecisions([]datasets.LogEntry{
		{ID: "r1", TS: t0, Decision: datasets.Decision{Kind: "speculate", PHard: 0.4, ModelVersion: "v1", Propensity: 0.02, Explored: true}, Request: []byte(`{"prompt":"What is 2+2?","meta":{"tenant":"acme"}}`)},
		{ID: "r2", TS: t0.Add(time.Second), Decision: datasets.Decision{Kind: "fast", PHard: 0.1, ModelVersion: "v1", Propensity: 0.98}, Request: []byte(`{"prompt":"Hello"}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, fb := range []datasets.Feedback{
		{RequestID: "r1", Model: "fast-m", Outcome: datasets.Outcome{Score: datasets.Float(0), Confidence: datasets.Float(-0.9)}},
		{RequestID: "r1", Model: "strong-m", Outcome: datasets.Outcome{Score: datasets.Float(1)}},
	} {
		if err := st.PutFeedback(context.Background(), fb); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func readRecords(t *testing.T, path string) []datasets.Record {
	t.Helper()
	recs, _, err := datasets.ReadFile(path, datasets.ReadOptions{AllowMissingScore: true})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestFeedbackExportCountsScores: "with feedback" counts any outcome,
// the proxy's recorded answers included, which carry no score; the
// README's demo exported "38 records (38 with feedback, ...)" from which
// retrain had nothing to judge on. The summary now counts the scored
// records and those with two models' scores.
func TestFeedbackExportCountsScores(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "feedback.db")
	st := fillStore(t, db)
	// r2's fast answer as the proxy records it: a confidence, no score.
	if err := st.PutFeedback(context.Background(), datasets.Feedback{RequestID: "r2", Model: "fast-m", Outcome: datasets.Outcome{Confidence: datasets.Float(-0.3)}}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := run(t, "feedback", "export", "--db", db, "-o", filepath.Join(dir, "export.jsonl"))
	if want := "2 records (2 with feedback, 1 explored); scored: 1 (1 with two models' scores, the kind retrain's gate judges on)"; code != 0 || !strings.Contains(stderr, want) {
		t.Errorf("exit %d, summary %q; want 0 and %q", code, stderr, want)
	}
}

func TestFeedbackExportDB(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "feedback.db")
	st := fillStore(t, db)

	t.Run("a db held by a server is a clear error pointing at --from", func(t *testing.T) {
		_, stderr, code := run(t, "feedback", "export", "--db", db, "-o", filepath.Join(dir, "held.jsonl"))
		if code != 1 || !strings.Contains(stderr, "is locked by another process") || !strings.Contains(stderr, "--from http://HOST:PORT --token T") {
			t.Errorf("exit %d, stderr %q; want 1 and the lock message naming --from", code, stderr)
		}
		if _, err := os.Stat(filepath.Join(dir, "held.jsonl")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("an output file was left behind (stat err %v)", err)
		}
	})
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	t.Run("a free db is exported with every outcome and the decision", func(t *testing.T) {
		out := filepath.Join(dir, "export.jsonl")
		_, stderr, code := run(t, "feedback", "export", "--db", db, "-o", out)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		if !strings.Contains(stderr, "2 records (1 with feedback, 1 explored)") {
			t.Errorf("summary %q, want the counts", stderr)
		}
		recs := readRecords(t, out)
		if len(recs) != 2 || recs[0].ID != "r1" || recs[1].ID != "r2" {
			t.Fatalf("got %d records %v, want r1 then r2", len(recs), recs)
		}
		f, s, ok := recs[0].Scores("fast-m", "strong-m")
		d := recs[0].Decision
		if !ok || f != 0 || s != 1 || d == nil || d.Propensity != 0.02 || !d.Explored || recs[0].Meta["tenant"] != "acme" {
			t.Errorf("r1 = %+v (decision %+v), want both scores, propensity 0.02, explored, meta", recs[0], d)
		}
	})
	t.Run("--since keeps the requests routed from then on", func(t *testing.T) {
		out := filepath.Join(dir, "since.jsonl")
		_, stderr, code := run(t, "feedback", "export", "--db", db, "--since", "2026-11-27T09:00:01Z", "-o", out)
		if recs := readRecords(t, out); code != 0 || len(recs) != 1 || recs[0].ID != "r2" {
			t.Errorf("exit %d (%s), %d records; want r2 alone", code, stderr, len(recs))
		}
		_, stderr, code = run(t, "feedback", "export", "--db", db, "--since", "yesterday", "-o", out)
		if code != 2 || !strings.Contains(stderr, `--since is "yesterday"`) {
			t.Errorf("--since yesterday: exit %d, stderr %q; want a usage error", code, stderr)
		}
	})
	t.Run("a --since that matches nothing writes an empty file and says what the db holds", func(t *testing.T) {
		out := filepath.Join(dir, "future.jsonl")
		_, stderr, code := run(t, "feedback", "export", "--db", db, "--since", "2030-01-01", "-o", out)
		if b, err := os.ReadFile(out); code != 0 || err != nil || len(b) != 0 {
			t.Fatalf("exit %d (%s), file %q (%v); want 0 and an empty file", code, stderr, b, err)
		}
		want := "no record was routed at or after 2030-01-01T00:00:00Z (--since); the db holds 2 records, routed from 2026-11-27T09:00:00Z to 2026-11-27T09:00:01Z"
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr %q, want %q", stderr, want)
		}
	})
	t.Run("a db that holds no records says so", func(t *testing.T) {
		empty := filepath.Join(dir, "empty.db")
		st, err := datasets.OpenBoltStore(empty, datasets.StoreOptions{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		_, stderr, code := run(t, "feedback", "export", "--db", empty, "-o", filepath.Join(dir, "none.jsonl"))
		if want := "no record to export: the db holds no records yet"; code != 0 || !strings.Contains(stderr, want) {
			t.Errorf("exit %d, stderr %q; want 0 and %q", code, stderr, want)
		}
	})
	t.Run("a missing db is an error and is not created", func(t *testing.T) {
		missing := filepath.Join(dir, "nope.db")
		_, stderr, code := run(t, "feedback", "export", "--db", missing)
		if code != 1 || !strings.Contains(stderr, "does not exist") {
			t.Errorf("exit %d, stderr %q; want 1 and 'does not exist'", code, stderr)
		}
		if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("export created %s", missing)
		}
	})
}

func TestFeedbackExportHTTP(t *testing.T) {
	const token = "sesame"
	good := `{"id":"r1","prompt":"What is 2+2?","outcomes":{"fast-m":{"score":1}},"ts":"2026-11-27T09:00:00Z","decision":{"decision":"fast","p_hard":0.1,"model_version":"v1","propensity":0.98}}` + "\n"
	var gotSince string // the last request's since, for the --since case
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/feedback/export", func(w http.ResponseWriter, r *http.Request) {
		gotSince = r.URL.Query().Get("since")
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":{"code":"unauthorized","message":"the admin token is wrong"}}`))
			return
		}
		w.Write([]byte(good))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	// truncated stops mid-record, as a server killed during an export.
	truncated := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(good + `{"id":"r2","prompt":"Hel`))
	}))
	defer truncated.Close()
	noAdmin := httptest.NewServer(http.NotFoundHandler())
	defer noAdmin.Close()
	// A port nothing listens on: bind one, then free it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()

	dir := t.TempDir()
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		code     int
		inStderr string
		records  int
	}{
		{"the export is written with the token from the flag", []string{"--from", srv.URL, "--token", token}, nil, 0, "1 record (1 with feedback, 0 explored)", 1},
		{"the token comes from TRIAGE_ADMIN_TOKEN", []string{"--from", srv.URL}, map[string]string{"TRIAGE_ADMIN_TOKEN": token}, 0, "written to", 1},
		{"a wrong token says the server refused it", []string{"--from", srv.URL, "--token", "wrong"}, nil, 1, "refused the admin token (HTTP 401: the admin token is wrong)", -1},
		{"a server without admin routes says how to enable them", []string{"--from", noAdmin.URL, "--token", token}, nil, 1, "admin routes exist only when the server was started with TRIAGE_ADMIN_TOKEN", -1},
		{"no server says connection refused", []string{"--from", closed, "--token", token}, nil, 1, "(connection refused); is triage serve running there?", -1},
		{"a truncated stream fails and leaves no file", []string{"--from", truncated.URL, "--token", token}, nil, 1, "stopped after 1 record", -1},
		{"no token is a usage error", []string{"--from", srv.URL}, nil, 2, "--from needs the admin token", -1},
		{"both sources is a usage error", []string{"--from", srv.URL, "--db", "x.db"}, nil, 2, "exclude each other", -1},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(dir, "out"+string(rune('a'+i))+".jsonl")
			var stdout, stderr bytes.Buffer
			env := &Env{Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return tt.env[k] }}
			code := Main(context.Background(), append(append([]string{"feedback", "export"}, tt.args...), "-o", out), env)
			if code != tt.code || !strings.Contains(stderr.String(), tt.inStderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr.String(), tt.code, tt.inStderr)
			}
			_, statErr := os.Stat(out)
			if tt.records < 0 {
				if !errors.Is(statErr, os.ErrNotExist) {
					t.Errorf("a failed export left %s (stat err %v)", out, statErr)
				}
				return
			}
			recs := readRecords(t, out)
			if len(recs) != tt.records {
				t.Errorf("%d records, want %d", len(recs), tt.records)
			}
			b, _ := json.Marshal(recs[0])
			if !strings.Contains(string(b), `"propensity":0.98`) {
				t.Errorf("record %s lost its decision", b)
			}
		})
	}
	t.Run("a --since the server matches nothing for says so", func(t *testing.T) {
		none := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		defer none.Close()
		out := filepath.Join(dir, "none.jsonl")
		_, stderr, code := run(t, "feedback", "export", "--from", none.URL, "--token", token, "--since", "2030-01-01", "-o", out)
		want := "no record was routed at or after 2030-01-01T00:00:00Z (--since); export without --since to see what the server's db holds"
		if b, err := os.ReadFile(out); code != 0 || err != nil || len(b) != 0 || !strings.Contains(stderr, want) {
			t.Errorf("exit %d, file %q (%v), stderr %q; want 0, an empty file and %q", code, b, err, stderr, want)
		}
	})
	t.Run("--since reaches the server as its since parameter", func(t *testing.T) {
		_, stderr, code := run(t, "feedback", "export", "--from", srv.URL, "--token", token, "--since", "2026-11-27T09:00:00.5+01:00", "-o", filepath.Join(dir, "since.jsonl"))
		if code != 0 || gotSince != "2026-11-27T09:00:00.5+01:00" {
			t.Errorf("exit %d (%s), the server saw since=%q; want the time as given", code, stderr, gotSince)
		}
	})
}

// 'feedback export --from URL -o proxy.db' (the README's other form is
// '--db proxy.db') replaced the db of the very server it exported from
// with the JSONL export: the server went on writing to the unlinked file
// and could not start again on the export. No output of any command may
// replace a feedback db; the db is left as it was.
func TestOutputNeverReplacesAFeedbackDB(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "proxy.db")
	if err := fillStore(t, db).Close(); err != nil {
		t.Fatal(err)
	}
	// Its size and modification time say whether a command wrote to it:
	// reading the preallocated file whole after each command cost 14 s
	// under -race.
	before, err := os.Stat(db)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"id":"r1","prompt":"What is 2+2?","outcomes":{"fast-m":{"score":1}}}` + "\n"))
	}))
	defer srv.Close()
	var lines strings.Builder
	for i := range 60 {
		fmt.Fprintf(&lines, `{"id":"r%d","prompt":"question %d %s","outcomes":{"f":{"score":%d},"s":{"score":1}}}`+"\n", i, i, []string{"easy", "hard"}[i%2], 1-i%2)
	}
	log := writeFile(t, dir, "log.jsonl", lines.String())
	// The db's feedback log: applied to the db at the next open, and
	// lost if replaced. Its content is not a bbolt file's.
	wal := db + "-wal"
	if err := os.WriteFile(wal, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"feedback", "export", "--from", srv.URL, "--token", "t", "-o", db},
		{"feedback", "export", "--from", srv.URL, "--token", "t", "-o", wal},
		{"synth", "--n", "10", "-o", db},
		{"train", "--data", log, "--fast", "f", "--strong", "s", "-o", db},
	} {
		t.Run(args[0], func(t *testing.T) {
			_, stderr, code := run(t, args...)
			if code != 2 || !strings.Contains(stderr, "is a feedback db") && !strings.Contains(stderr, "is the feedback log of the feedback db") {
				t.Errorf("exit %d, stderr %q; want 2 and the refusal", code, stderr)
			}
			if after, err := os.Stat(db); err != nil || after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime()) {
				t.Fatalf("the feedback db was changed (%v)", err)
			}
			if after, err := os.ReadFile(wal); err != nil || len(after) != 4096 {
				t.Fatalf("the feedback log was changed (%v)", err)
			}
		})
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 12, 4, 20, 30, 0, 0, time.UTC)
	for _, tt := range []struct {
		in   string
		want time.Time
	}{
		{"2026-11-27T10:00:00Z", time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)},
		{"2026-11-27T10:00:00.5+01:00", time.Date(2026, 11, 27, 9, 0, 0, 5e8, time.UTC)},
		{"2026-11-27", time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)},
		{"24h", time.Date(2026, 12, 3, 20, 30, 0, 0, time.UTC)},
		{"90m", time.Date(2026, 12, 4, 19, 0, 0, 0, time.UTC)},
	} {
		if got, err := parseSince(tt.in, now); err != nil || !got.Equal(tt.want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"yesterday", "2026-11-27T10:00:00", "-24h", "0s", "27/11/2026"} {
		if got, err := parseSince(bad, now); err == nil {
			t.Errorf("parseSince(%q) = %v, want an error", bad, got)
		}
	}
}

// TestEmptyDBHintNamesServe: an empty --db file is refused by the
// feedback commands with a hint to use --init; none of them has that
// flag (only serve does), so the hint must say it is serve's.
func TestEmptyDBHintNamesServe(t *testing.T) {
	db := writeFile(t, t.TempDir(), "empty.db", "")
	for _, args := range [][]string{
		{"feedback", "export", "--db", db},
		{"feedback", "check", "--db", db},
		{"feedback", "compact", "--db", db},
	} {
		_, stderr, code := run(t, args...)
		if code != 1 || !strings.Contains(stderr, "0 bytes") {
			t.Fatalf("%v on an empty db: exit %d, stderr %q; want 1 and the empty-file refusal", args, code, stderr)
		}
		if strings.Contains(stderr, "--init") && !strings.Contains(stderr, "triage serve") {
			t.Errorf("%v: stderr %q tells the user to pass --init, which %s does not take; name triage serve", args, stderr, args[1])
		}
		// The hint's flag, given to the command itself, is refused.
		if _, _, c := run(t, append(args, "--init")...); c != 2 {
			t.Errorf("%v --init: exit %d; the test assumes the command has no --init flag", args, c)
		}
	}
}

// TestDocsSayHowLongExportWaitsForTheLock: docs/loop.md said 'feedback
// export --db' on a held file fails "within half a second", which the
// process cannot do: it waits dbLockWait for the lock and only then
// fails, a little over half a second in all. The page says what the
// code does.
func TestDocsSayHowLongExportWaitsForTheLock(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "loop.md"))
	if err != nil {
		t.Fatal(err)
	}
	page := strings.Join(strings.Fields(string(b)), " ")
	const said = "waits half a second for the lock, then fails"
	if dbLockWait != 500*time.Millisecond || !strings.Contains(page, said) {
		t.Errorf("dbLockWait is %v and docs/loop.md says %q: %v; want 500ms and the page saying it waits that long, then fails", dbLockWait, said, strings.Contains(page, said))
	}
	if strings.Contains(page, "fails within half a second") {
		t.Error(`docs/loop.md says export fails "within half a second"; it waits that long first`)
	}
}

// TestFeedbackDBIsAFolder: --db naming a folder is a wrong path, not a
// damaged db: check reported "damage found" and salvage "nothing can be
// read"; both now say it is a folder, as export and compact do.
func TestFeedbackDBIsAFolder(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"feedback", "check", "--db", dir},
		{"feedback", "salvage", "--db", dir, "-o", filepath.Join(t.TempDir(), "new.db")},
		// export and compact open an existing db only: the line must not
		// say that one is created.
		{"feedback", "export", "--db", dir, "-o", filepath.Join(t.TempDir(), "x.jsonl")},
		{"feedback", "compact", "--db", dir},
	} {
		stdout, stderr, code := run(t, args...)
		if code != 1 || !strings.Contains(stderr, dir+" is a directory") || strings.Contains(stdout+stderr, "damage") || strings.Contains(stderr, "created") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 1 and a line saying --db is a folder", args, code, stdout, stderr)
		}
	}
}

// An offline export opened the db read-write, which creates the store's
// feedback log beside it (4 MiB) and commits to the db: the export of a
// db on a read-only disk, or in a folder the user cannot write (a
// backup), failed. It now reads the db only, unless a log beside it holds
// writes not yet applied, which it applies first as before.
func TestFeedbackExportReadsOnly(t *testing.T) {
	// makeDB writes fillStore's db into dir, closed cleanly, and returns
	// its path.
	makeDB := func(t *testing.T, dir string) string {
		t.Helper()
		db := filepath.Join(dir, "feedback.db")
		if err := fillStore(t, db).Close(); err != nil {
			t.Fatal(err)
		}
		return db
	}
	export := func(t *testing.T, db string) (string, int) {
		t.Helper()
		_, stderr, code := run(t, "feedback", "export", "--db", db, "-o", filepath.Join(t.TempDir(), "export.jsonl"))
		return stderr, code
	}

	t.Run("an export writes nothing beside the db", func(t *testing.T) {
		// Checked by the times, which root's writes change too: the
		// folder's gains and loses an entry when the log is created and
		// removed, the db's when it is committed to.
		dir := t.TempDir()
		db := makeDB(t, dir)
		past := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		for _, p := range []string{db, dir} {
			if err := os.Chtimes(p, past, past); err != nil {
				t.Fatal(err)
			}
		}
		if stderr, code := export(t, db); code != 0 || !strings.Contains(stderr, "2 records (1 with feedback") {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		for _, p := range []string{db, dir} {
			if fi, err := os.Stat(p); err != nil || !fi.ModTime().Equal(past) {
				t.Errorf("%s was written by the export (stat: %v)", p, err)
			}
		}
	})

	t.Run("a copy of a killed server's db and log is exported with the log's writes", func(t *testing.T) {
		src := filepath.Join(t.TempDir(), "feedback.db")
		st := fillStore(t, src) // its feedback is in the log, not yet in the db
		dir := t.TempDir()
		db := filepath.Join(dir, "feedback.db")
		for _, suffix := range []string{"", "-wal"} {
			copyFile(t, src+suffix, db+suffix)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		if stderr, code := export(t, db); code != 0 || !strings.Contains(stderr, "2 records (1 with feedback") {
			t.Errorf("exit %d, stderr %q; want both records and r1's feedback from the log", code, stderr)
		}
		if _, err := os.Stat(db + "-wal"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the applied log is still there (stat: %v)", err)
		}
	})

	t.Run("a db in a folder the user cannot write is exported", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("running as root, where file permissions do not bite; the case above checks nothing is written")
		}
		dir := t.TempDir()
		db := makeDB(t, dir)
		if err := os.Chmod(db, 0o444); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o755) })
		if stderr, code := export(t, db); code != 0 || !strings.Contains(stderr, "2 records (1 with feedback") {
			t.Errorf("exit %d, stderr %q; want the export", code, stderr)
		}
	})
}

// copyFile copies src to dst (the kernel copies, where it can: a db file
// is 128 MiB, mostly unwritten).
func copyFile(tb testing.TB, src, dst string) {
	tb.Helper()
	in, err := os.Open(src)
	if err != nil {
		tb.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		tb.Fatal(err)
	}
	if err := out.Close(); err != nil {
		tb.Fatal(err)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/triage-router/triage/datasets"
)

func init() {
	registerGroup("feedback", "served feedback: export, check, salvage, compact")
	register("feedback export", "write a server's decision log with its feedback as a JSONL log, from the server or its db file", runFeedbackExport)
	register("feedback check", "check a feedback db file and its log for damage, changing nothing", runFeedbackCheck)
	register("feedback salvage", "copy every readable record of a damaged feedback db (and its log) into a new file", runFeedbackSalvage)
	register("feedback compact", "rewrite a feedback db without its free pages, to give the space back", runFeedbackCompact)
}

const (
	feedbackExportUsage  = "--from http://HOST:PORT [--token T] [--since TIME] -o F\n       triage feedback export --db FILE [--salvage-log] [--since TIME] -o F"
	feedbackCheckUsage   = "--db FILE"
	feedbackSalvageUsage = "--db FILE -o NEW.db"
	feedbackCompactUsage = "--db FILE [-o NEW.db]"
	// dbLockWait is how long --db waits for the file lock: a running
	// server holds it for good, so waiting longer only delays the error.
	dbLockWait = 500 * time.Millisecond
	// exportPath is the server's admin export route.
	exportPath = "/admin/feedback/export"
)

func runFeedbackExport(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "feedback export", feedbackExportUsage)
	from := fs.String("from", "", "export through a running server's "+exportPath+" (http://HOST:PORT)")
	token := fs.String("token", "", "the server's admin token (default $TRIAGE_ADMIN_TOKEN)")
	db := fs.String("db", "", "read the feedback db file directly (only when no server holds it)")
	salvageLog := fs.Bool("salvage-log", false, "with --db: apply a damaged feedback log's readable records, skipping the damaged bytes (see 'triage feedback check')")
	out := fs.String("o", "", "write JSONL to F (default stdout)")
	sinceFlag := fs.String("since", "", "only requests routed at or after TIME: RFC 3339 (2026-11-27T00:00:00Z), a UTC date (2026-11-27) or a duration ago (24h): the traffic since the last export")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var since time.Time
	if *sinceFlag != "" {
		t, err := parseSince(*sinceFlag, time.Now())
		if err != nil {
			return usagef("use an RFC 3339 time such as 2026-11-27T00:00:00Z, a date such as 2026-11-27 (midnight UTC) or a duration ago such as 24h", "--since is %q", *sinceFlag)
		}
		since = t
	}
	switch {
	case *from != "" && *db != "":
		return usagef("use --from for a running server, --db for a stopped one's file", "--from and --db exclude each other")
	case *from == "" && *db == "":
		return usagef("give --from http://HOST:PORT or --db FILE", "feedback export needs a source")
	// Ignored, it would leave the user believing a damaged log was
	// salvaged.
	case *from != "" && *salvageLog:
		return usagef("the server applies its own log; stop it and export its file with --db FILE --salvage-log", "--salvage-log is for --db, not --from")
	}
	if *token == "" {
		*token = env.Getenv("TRIAGE_ADMIN_TOKEN")
	}
	if *from != "" && *token == "" {
		return usagef("pass --token T or set TRIAGE_ADMIN_TOKEN to the server's admin token", "--from needs the admin token")
	}

	if *db != "" {
		// The db and the feedback log beside it.
		if err := checkNotInput(*out, *db, *db+"-wal"); err != nil {
			return err
		}
	}
	o, err := openOutput(env, *out)
	if err != nil {
		return err
	}
	defer o.Abort()
	var st exportStats
	if *db != "" {
		st, err = exportDB(ctx, *db, *salvageLog, since, o)
	} else {
		st, err = exportHTTP(ctx, *from, *token, since, o)
	}
	if err != nil {
		return err
	}
	if err := o.Commit(); err != nil {
		return err
	}
	where := *out
	if where == "" || where == "-" {
		where = "stdout"
	}
	fmt.Fprintf(env.Stderr, "triage feedback export: %s (%d with feedback, %d explored); scored: %d (%d with two models' scores, the kind retrain's gate judges on); outcomes: %s; written to %s\n",
		count(st.records, "record"), st.withOutcomes, st.explored, st.scored, st.paired, st.models(), where)
	if st.records == 0 {
		fmt.Fprintf(env.Stderr, "triage feedback export: %s\n", st.nothingMatched(since))
	}
	return nil
}

// exportStats counts what an export held, for the summary line.
type exportStats struct {
	records, withOutcomes, explored int
	// scored counts the records with a score for some model, paired
	// those with scores for two models or more. "With feedback" counts
	// the proxy's recorded answers too, which carry no score: the
	// README's demo exported "38 with feedback" that gave retrain
	// nothing to judge on, and the line did not say so.
	scored, paired int
	byModel        map[string]int
	// span is what the db holds, read by an export from --db that
	// wrote no record; nil otherwise.
	span *datasets.LogSpan
}

// nothingMatched says why an export wrote no record. The empty file is
// still written and the exit is 0 (a script's nightly export of a quiet
// day is valid), but a --since in the wrong year looked the same as a
// quiet day: the note says what the db holds, so a wrong date shows.
func (s *exportStats) nothingMatched(since time.Time) string {
	var msg string
	if since.IsZero() {
		msg = "no record to export"
	} else {
		msg = fmt.Sprintf("no record was routed at or after %s (--since)", since.UTC().Format(time.RFC3339))
	}
	switch sp := s.span; {
	case sp == nil:
		if since.IsZero() {
			return msg + ": the server's db holds none"
		}
		return msg + "; export without --since to see what the server's db holds"
	case sp.Records == 0:
		return msg + ": the db holds no records yet"
	default:
		return fmt.Sprintf("%s; the db holds %s, routed from %s to %s", msg, count(sp.Records, "record"),
			sp.Oldest.Format(time.RFC3339), sp.Newest.Format(time.RFC3339))
	}
}

func (s *exportStats) add(r *datasets.Record) {
	s.records++
	if len(r.Outcomes) > 0 {
		s.withOutcomes++
	}
	n := 0
	for _, o := range r.Outcomes {
		if o.Score != nil {
			n++
		}
	}
	if n > 0 {
		s.scored++
	}
	if n > 1 {
		s.paired++
	}
	if r.Decision != nil && r.Decision.Explored {
		s.explored++
	}
	if s.byModel == nil {
		s.byModel = map[string]int{}
	}
	for m := range r.Outcomes {
		s.byModel[m]++
	}
}

func (s *exportStats) models() string {
	if len(s.byModel) == 0 {
		return "none"
	}
	names := make([]string, 0, len(s.byModel))
	for m := range s.byModel {
		names = append(names, m)
	}
	sort.Strings(names)
	for i, m := range names {
		names[i] = fmt.Sprintf("%s %d", m, s.byModel[m])
	}
	return strings.Join(names, ", ")
}

// countingWriter counts the records a store export writes, by decoding
// the lines as they pass; the bytes go through unchanged.
type countingWriter struct {
	w       io.Writer
	st      *exportStats
	partial []byte
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	data := append(c.partial, p[:n]...)
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		var r datasets.Record
		if json.Unmarshal(data[:i], &r) == nil {
			c.st.add(&r)
		}
		data = data[i+1:]
	}
	c.partial = append(c.partial[:0], data...)
	return n, err
}

// exportDB reads the feedback db file directly. The file must exist (an
// export never creates one) and no server may hold it.
//
// The db is opened read-only: a read-write open creates the store's
// feedback log beside it (DefaultWALSize, 4 MiB of zeros), so an export
// of a db on a read-only disk, or in a folder the user cannot write (a
// backup), failed. Only when a log beside the db holds writes not yet
// applied (a server that was killed) is it opened read-write, as before,
// to apply them first.
func exportDB(ctx context.Context, path string, salvageLog bool, since time.Time, w io.Writer) (exportStats, error) {
	var st exportStats
	if err := mustExist(path); err != nil {
		return st, err
	}
	var store *datasets.BoltStore
	var err error
	if !salvageLog { // --salvage-log is there to apply a damaged log
		store, err = datasets.OpenBoltStore(path, datasets.StoreOptions{Timeout: dbLockWait, ReadOnly: true})
	}
	var unapplied *datasets.UnappliedLogError
	if salvageLog || errors.As(err, &unapplied) {
		store, err = datasets.OpenBoltStore(path, datasets.StoreOptions{Timeout: dbLockWait, SalvageLog: salvageLog})
		if err != nil && unapplied != nil && !errors.Is(err, datasets.ErrStoreLocked) {
			return st, fmt.Errorf("%w (%v: copy the db and its log into a folder you can write and export the copy)", err, unapplied)
		}
	}
	if err != nil {
		if errors.Is(err, datasets.ErrStoreLocked) {
			return st, fmt.Errorf("feedback db %s is locked by another process (a running triage serve?); use --from http://HOST:PORT --token T to export through it", path)
		}
		return st, err
	}
	_, err = store.Export(ctx, &countingWriter{w: w, st: &st}, datasets.ExportOptions{Since: since})
	if err == nil && st.records == 0 {
		var sp datasets.LogSpan
		if sp, err = store.Span(); err == nil {
			st.span = &sp
		}
	}
	if cerr := store.Close(); err == nil {
		err = cerr
	}
	return st, err
}

// mustExist refuses a db path that does not exist: the offline commands
// never create one.
func mustExist(path string) error {
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("feedback db %s does not exist; give the file triage serve was started with (--db)", path)
		}
		return fmt.Errorf("feedback db: %w", err)
	}
	return nil
}

// dbFlag parses a command whose one required flag is --db, plus extra.
func dbFlag(env *Env, name, usage string, args []string, extra func(*flag.FlagSet)) (string, error) {
	fs := newFlagSet(env, name, usage)
	db := fs.String("db", "", "the feedback db file (no server may hold it)")
	if extra != nil {
		extra(fs)
	}
	if err := parseFlags(fs, args); err != nil {
		return "", err
	}
	if *db == "" {
		return "", usagef("give the file triage serve was started with", "%s needs --db FILE", name)
	}
	return *db, mustExist(*db)
}

// errDamaged makes 'feedback check' exit 1 after printing its report.
var errDamaged = errors.New("damage found")

func runFeedbackCheck(ctx context.Context, env *Env, args []string) error {
	path, err := dbFlag(env, "feedback check", feedbackCheckUsage, args, nil)
	if err != nil {
		return err
	}
	// The check reads the whole file and does not look at ctx: Ctrl-C
	// waited for its end, and the report then printed with exit 0. It
	// only reads, so abandoning it is safe.
	var rep *datasets.CheckReport
	if err := interruptible(ctx, func() error {
		var err error
		rep, err = datasets.CheckDB(path, dbLockWait)
		return err
	}); err != nil {
		return err
	}
	w := env.Stdout
	fmt.Fprintf(w, "feedback db %s: %d bytes", path, rep.FileBytes)
	if rep.PageSize > 0 {
		fmt.Fprintf(w, ", %s of %d bytes, free list %s", count(int(rep.Pages), "page"), rep.PageSize, map[bool]string{true: "synced", false: "not synced"}[rep.FreelistSynced])
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "records: %d read, %d unreadable; ids: %d, %d bad; feedback: %d read, %d unreadable, %d without a record; stored-response entries: %d, %d bad, %d without a record\n",
		rep.Records, rep.BadRecords, rep.IDs, rep.BadIDs, rep.Feedback, rep.BadFeedback, rep.OrphanFeedback, rep.Responses, rep.BadResponses, rep.OrphanResponses)
	if rep.NProblems > 0 {
		fmt.Fprintf(w, "%s in the file's structure (%s and %s unreadable):\n", count(rep.NProblems, "problem"), count(rep.BadPages, "page"), count(rep.BadElems, "entry"))
		for _, p := range rep.Problems {
			fmt.Fprintf(w, "  %s\n", p)
		}
		if n := rep.NProblems - len(rep.Problems); n > 0 {
			fmt.Fprintf(w, "  ... and %d more\n", n)
		}
	}
	switch l := rep.Log; {
	case !l.Exists:
		fmt.Fprintf(w, "feedback log %s: none (the server stopped cleanly)\n", l.Path)
	case l.Truncated:
		fmt.Fprintf(w, "feedback log %s: CUT SHORT: it is %d bytes, shorter than a log is written, and it holds records, which may have gone on past its end: acknowledged writes may be lost (a partial copy?); "+
			"put the whole file back, or 'triage serve --salvage-log' applies the %s\n", l.Path, l.Bytes, count(l.Records, "readable record"))
	case l.Acknowledged:
		fmt.Fprintf(w, "feedback log %s: DAMAGED at byte %d: %s after the damage, %s in it lost; "+
			"'triage serve --salvage-log' applies the %d and the other %s\n", l.Path, l.DamagedAt, count(l.After, "acknowledged record"), count(l.Lost, "record"), l.After, count(l.Records-l.After, "readable record"))
	case l.DamagedAt >= 0:
		fmt.Fprintf(w, "feedback log %s: %s to apply; its last append is torn at byte %d (%s lost, never acknowledged if a crash cut the write)\n", l.Path, count(l.Records, "record"), l.DamagedAt, count(l.Lost, "record"))
	default:
		fmt.Fprintf(w, "feedback log %s: %s to apply at the next open\n", l.Path, count(l.Records, "record"))
	}
	if rep.Damaged() && rep.PageSize == 0 {
		// No meta page could be read: salvage opens the file the same way,
		// so pointing the user at it would only lead to a second refusal.
		fmt.Fprintf(w, "DAMAGED beyond salvage: neither meta page can be read, so nothing in %s can be; give the file triage serve was started with, or restore a copy (GET /admin/feedback/snapshot makes one)\n", path)
		return errDamaged
	}
	if rep.Damaged() {
		fmt.Fprintf(w, "DAMAGED: copy what is readable with 'triage feedback salvage --db %s -o NEW.db'\n", path)
		return errDamaged
	}
	fmt.Fprintln(w, "no damage found")
	return nil
}

func runFeedbackSalvage(ctx context.Context, env *Env, args []string) error {
	var out string
	path, err := dbFlag(env, "feedback salvage", feedbackSalvageUsage, args, func(fs *flag.FlagSet) {
		fs.StringVar(&out, "o", "", "the new db file to write (must not exist)")
	})
	if err != nil {
		return err
	}
	if out == "" {
		return usagef("e.g. -o feedback-salvaged.db", "feedback salvage needs -o NEW.db")
	}
	rep, err := datasets.SalvageDB(ctx, path, out, dbLockWait)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "salvaged %s into %s: %s, %d feedback, %s; from the feedback log: %s applied, %d lost\n",
		path, out, count(rep.Records, "record"), rep.Feedback, count(rep.Responses, "stored-response entry"), count(rep.LogApplied, "write"), rep.LogLost)
	if rep.Recovered > 0 {
		fmt.Fprintf(env.Stdout, "of them, %d %s read from %s the damage cut off from the tree (with the free list lost, these may include entries removed or replaced earlier)\n",
			rep.Recovered, oneOr(rep.Recovered, "was", "were"), count(rep.RecoveredPages, "page"))
	}
	fmt.Fprintf(env.Stdout, "could not read: %s, %s, %s, %s, %s (with whatever they held); %s and %s had no readable record; %s of an id dropped\n",
		count(rep.BadRecords, "record"), count(rep.BadFeedback, "feedback entry"), count(rep.BadResponses, "stored-response entry"), count(rep.BadElems, "other entry"), count(rep.BadPages, "page"),
		count(rep.OrphanFeedback, "feedback entry"), count(rep.OrphanResponses, "stored-response entry"), count(rep.Duplicates, "older duplicate"))
	fmt.Fprintf(env.Stdout, "%s is untouched; check the copy, then serve from it (triage serve --db %s)\n", path, out)
	return nil
}

func runFeedbackCompact(ctx context.Context, env *Env, args []string) error {
	var out string
	path, err := dbFlag(env, "feedback compact", feedbackCompactUsage, args, func(fs *flag.FlagSet) {
		fs.StringVar(&out, "o", "", "write the compacted db here instead of over --db (must not exist; -o naming --db itself compacts in place, as no -o does)")
	})
	if err != nil {
		return err
	}
	res, err := datasets.CompactDB(ctx, path, out, datasets.StoreOptions{Timeout: dbLockWait})
	if err != nil {
		if errors.Is(err, datasets.ErrStoreLocked) {
			return fmt.Errorf("%w; stop the server first: compaction needs the file to itself", err)
		}
		return err
	}
	if out == "" {
		out = path
	}
	for _, p := range res.Removed {
		fmt.Fprintf(env.Stderr, "triage feedback compact: removed %s, left by a compaction that was stopped before it finished\n", p)
	}
	fmt.Fprintf(env.Stdout, "compacted %s: %d bytes, now %d (%s)\n", path, res.Before, res.After, out)
	return nil
}

// exportHTTP streams GET /admin/feedback/export, checking each line is a
// log record as it passes, so a truncated stream fails instead of leaving
// a short file.
func exportHTTP(ctx context.Context, from, token string, since time.Time, w io.Writer) (exportStats, error) {
	var st exportStats
	base, err := serverURL(from)
	if err != nil {
		return st, err
	}
	target := base + exportPath
	if !since.IsZero() {
		target += "?since=" + url.QueryEscape(since.Format(time.RFC3339Nano))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return st, fmt.Errorf("export from %s: %w", base, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	client := &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		ResponseHeaderTimeout: time.Minute,
	}}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return st, fmt.Errorf("no server answers at %s (connection refused); is triage serve running there?", base)
		}
		return st, fmt.Errorf("export from %s: %w", base, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return st, fmt.Errorf("%s refused the admin token (HTTP %d: %s); pass the token the server was started with (--token or TRIAGE_ADMIN_TOKEN)", base, resp.StatusCode, errorMessage(resp.Body))
	case resp.StatusCode == http.StatusNotFound:
		return st, fmt.Errorf("%s has no %s (HTTP 404): admin routes exist only when the server was started with TRIAGE_ADMIN_TOKEN set", base, exportPath)
	case resp.StatusCode/100 != 2:
		return st, fmt.Errorf("export from %s: HTTP %d: %s", base, resp.StatusCode, errorMessage(resp.Body))
	}
	rd := datasets.NewReader(resp.Body, base+exportPath, datasets.ReadOptions{AllowMissingScore: true})
	jw := datasets.NewWriter(w)
	for {
		r, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return st, fmt.Errorf("export from %s stopped after %s: %w", base, count(st.records, "record"), err)
		}
		if err := jw.Write(&r); err != nil {
			return st, err
		}
		st.add(&r)
	}
	if err := jw.Flush(); err != nil {
		return st, fmt.Errorf("write export: %w", err)
	}
	return st, nil
}

// serverURL accepts http://HOST:PORT or a bare HOST:PORT.
func serverURL(s string) (string, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", usagef("e.g. --from http://127.0.0.1:8080", "--from %q is not a server address", s)
	}
	return u.Scheme + "://" + u.Host, nil
}

// errorMessage is the message of a {"error": {"code", "message"}} body,
// or the body's start.
func errorMessage(body io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(body, 4096))
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
		return e.Error.Message
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "no message"
	}
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// parseSince reads --since: an RFC 3339 time, a date (midnight UTC: export
// a day's traffic without writing its clock), or a positive duration
// before now ("24h": what a nightly export job means).
func parseSince(v string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--since %q is not a time, a date or a duration", v)
}

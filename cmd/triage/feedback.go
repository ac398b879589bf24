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
	"net/url"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/triage-router/triage/datasets"
)

func init() {
	registerGroup("feedback", "served feedback: feedback export")
	register("feedback export", "write a server's decision log with its feedback as a JSONL log, from the server or its db file", runFeedbackExport)
}

const (
	feedbackExportUsage = "--from http://HOST:PORT [--token T] -o F\n       triage feedback export --db FILE -o F"
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
	out := fs.String("o", "", "write JSONL to F (default stdout)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *from != "" && *db != "":
		return usagef("use --from for a running server, --db for a stopped one's file", "--from and --db exclude each other")
	case *from == "" && *db == "":
		return usagef("give --from http://HOST:PORT or --db FILE", "feedback export needs a source")
	}
	if *token == "" {
		*token = env.Getenv("TRIAGE_ADMIN_TOKEN")
	}
	if *from != "" && *token == "" {
		return usagef("pass --token T or set TRIAGE_ADMIN_TOKEN to the server's admin token", "--from needs the admin token")
	}

	o, err := openOutput(env, *out)
	if err != nil {
		return err
	}
	defer o.Abort()
	var st exportStats
	if *db != "" {
		st, err = exportDB(ctx, *db, o)
	} else {
		st, err = exportHTTP(ctx, *from, *token, o)
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
	fmt.Fprintf(env.Stderr, "triage feedback export: %d records (%d with feedback, %d explored); outcomes: %s; written to %s\n",
		st.records, st.withOutcomes, st.explored, st.models(), where)
	return nil
}

// exportStats counts what an export held, for the summary line.
type exportStats struct {
	records, withOutcomes, explored int
	byModel                         map[string]int
}

func (s *exportStats) add(r *datasets.Record) {
	s.records++
	if len(r.Outcomes) > 0 {
		s.withOutcomes++
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
func exportDB(ctx context.Context, path string, w io.Writer) (exportStats, error) {
	var st exportStats
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return st, fmt.Errorf("feedback db %s does not exist; give the file triage serve was started with (--db)", path)
		}
		return st, fmt.Errorf("feedback db: %w", err)
	}
	store, err := datasets.OpenBoltStore(path, datasets.StoreOptions{Timeout: dbLockWait})
	if err != nil {
		if errors.Is(err, datasets.ErrStoreLocked) {
			return st, fmt.Errorf("feedback db %s is locked by another process (a running triage serve?); use --from http://HOST:PORT --token T to export through it", path)
		}
		return st, err
	}
	_, err = store.Export(ctx, &countingWriter{w: w, st: &st}, datasets.ExportOptions{})
	if cerr := store.Close(); err == nil {
		err = cerr
	}
	return st, err
}

// exportHTTP streams GET /admin/feedback/export, checking each line is a
// log record as it passes, so a truncated stream fails instead of leaving
// a short file.
func exportHTTP(ctx context.Context, from, token string, w io.Writer) (exportStats, error) {
	var st exportStats
	base, err := serverURL(from)
	if err != nil {
		return st, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+exportPath, nil)
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
			return st, fmt.Errorf("export from %s stopped after %d records: %w", base, st.records, err)
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

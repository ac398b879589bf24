package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/internal/syncbuf"
)

// Issue 13, end to end: damaged dbs, a damaged feedback log after a
// SIGKILL, and an idle-connection flood under a low file limit.

// TestMain lets this test binary stand in for the triage binary: with
// TRIAGE_TEST_MAIN=1 it runs main, so a test can start a real process it
// can SIGKILL or run under a low ulimit.
func TestMain(m *testing.M) {
	if os.Getenv("TRIAGE_TEST_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

// process is a triage child process.
type process struct {
	cmd    *exec.Cmd
	stderr *syncbuf.Buffer
	url    string
	done   chan error
}

// startProcess runs 'triage args...' as a child process, under
// 'ulimit -n nofile' when nofile is above 0, and waits until it listens.
func startProcess(t *testing.T, nofile int, args ...string) *process {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, args...)
	if nofile > 0 {
		cmd = exec.Command("sh", append([]string{"-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, nofile), self}, args...)...)
	}
	p := &process{cmd: cmd, stderr: &syncbuf.Buffer{}, done: make(chan error, 1)}
	cmd.Env = append(os.Environ(), "TRIAGE_TEST_MAIN=1", "TRIAGE_ADMIN_TOKEN="+adminToken, "GOMAXPROCS=2")
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	re := regexp.MustCompile(`triage serve: listening on (127\.0\.0\.1:\d+)`)
	deadline := time.After(30 * time.Second)
	for {
		if m := re.FindStringSubmatch(p.stderr.String()); m != nil {
			p.url = "http://" + m[1]
			return p
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("triage %s exited before listening (%v): %s", strings.Join(args, " "), err, p.stderr)
		case <-deadline:
			t.Fatalf("triage %s did not listen: %s", strings.Join(args, " "), p.stderr)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (p *process) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	p.done <- nil
}

// storeImage is a closed feedback db: its pages, and the size of its file,
// which runs a 128 MiB growth step (allocSize, holes) past its last page.
type storeImage struct {
	pages []byte
	size  int64
}

// damagedDB writes a small closed feedback db and returns its image, the
// pages the damage tests change. Copying the whole file into every case
// took most of their time under -race; write puts the holes back.
func damagedDB(t *testing.T) storeImage {
	t.Helper()
	path := filepath.Join(t.TempDir(), "feedback.db")
	st := fillStore(t, path)
	var entries []datasets.LogEntry
	for i := range 200 {
		entries = append(entries, datasets.LogEntry{ID: fmt.Sprintf("bulk-%d", i), TS: time.Unix(1_800_000_000+int64(i), 0),
			Decision: datasets.Decision{Kind: "fast", PHard: 0.1, ModelVersion: "v1"}, Request: []byte(fmt.Sprintf(`{"prompt":%q}`, strings.Repeat("words ", 100+i)))})
	}
	if err := st.AppendDecisions(entries); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := datasets.CheckDB(path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pages := make([]byte, int(rep.Pages)*rep.PageSize)
	if _, err := io.ReadFull(f, pages); err != nil {
		t.Fatal(err)
	}
	return storeImage{pages: pages, size: rep.FileBytes}
}

// write writes b, the image's pages with some damaged, to path; unless
// the damage cut them short, the file then runs on to the image's size as
// a hole (nothing written), so it has a real store's shape.
func (im storeImage) write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if len(b) == len(im.pages) && im.size > int64(len(b)) {
		if err := os.Truncate(path, im.size); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDamagedDBs(t *testing.T) {
	dir := t.TempDir()
	model := serveModel(t, dir)
	pristine := damagedDB(t)
	const page = datasets.DefaultPageSize
	cases := []struct {
		name   string
		damage func([]byte) []byte
		want   string
	}{
		{"truncated to 100 KiB", func(b []byte) []byte { return b[:100<<10] }, "truncated"},
		{"flipped bytes in page headers", func(b []byte) []byte {
			for p := 2; p*page < 100<<10; p++ {
				b[p*page+9] ^= 0x5a // the page's flags
			}
			return b
		}, "page"},
		{"zeroed pages", func(b []byte) []byte { clear(b[2*page : 6*page]); return b }, "page"},
		// Both meta pages gone: nothing can be read, and salvage, which
		// opens the file the same way, is not offered.
		{"overwritten meta pages", func(b []byte) []byte {
			for i := range b[:2*page] {
				b[i] = byte(i * 7)
			}
			return b
		}, "nothing in it can be read"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			db := filepath.Join(t.TempDir(), "feedback.db")
			pristine.write(t, db, c.damage(bytes.Clone(pristine.pages)))
			for _, args := range [][]string{
				{"serve", "--model", model, "--db", db, "--addr", "127.0.0.1:0"},
				{"feedback", "export", "--db", db, "-o", filepath.Join(t.TempDir(), "out.jsonl")},
			} {
				_, stderr, code := run(t, args...)
				salvageable := c.name != "overwritten meta pages"
				if code != 1 || !strings.Contains(stderr, "feedback db "+db+" is damaged") || !strings.Contains(stderr, c.want) ||
					strings.Contains(stderr, "triage feedback salvage --db "+db) != salvageable {
					t.Errorf("triage %s: exit %d, %q; want 1 and the damage named with what to do (salvage offered: %v)", args[0], code, stderr, salvageable)
				}
			}
			stdout, _, code := run(t, "feedback", "check", "--db", db)
			if code != 1 || !strings.Contains(stdout, "DAMAGED") {
				t.Errorf("feedback check: exit %d, %q; want 1 and DAMAGED", code, stdout)
			}
			if c.name == "overwritten meta pages" && (!strings.Contains(stdout, "1 problem in the file's structure") || !strings.Contains(stdout, "DAMAGED beyond salvage")) {
				t.Errorf("feedback check of a file with no readable meta page: %q; want one problem and no salvage offered", stdout)
			}
			if c.name != "zeroed pages" {
				return // datasets' tests salvage every kind of damage
			}
			out := filepath.Join(t.TempDir(), "salvaged.db")
			stdout, stderr, code := run(t, "feedback", "salvage", "--db", db, "-o", out)
			if code != 0 || !strings.Contains(stdout, "salvaged "+db+" into "+out) {
				t.Fatalf("feedback salvage: exit %d, %s %s", code, stdout, stderr)
			}
			if _, _, code := run(t, "feedback", "check", "--db", out); code != 0 {
				t.Errorf("the salvaged copy is not clean")
			}
			if _, stderr, code := run(t, "feedback", "export", "--db", out, "-o", filepath.Join(t.TempDir(), "out.jsonl")); code != 0 {
				t.Errorf("export of the salvaged copy: %s", stderr)
			}
		})
	}

	t.Run("a zero-byte db needs --init", func(t *testing.T) {
		db := filepath.Join(t.TempDir(), "feedback.db")
		if err := os.WriteFile(db, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		_, stderr, code := run(t, "serve", "--model", model, "--db", db, "--addr", "127.0.0.1:0")
		if code != 1 || !strings.Contains(stderr, db+" is 0 bytes") || !strings.Contains(stderr, "--init") {
			t.Errorf("serve on an empty file: exit %d, %q; want 1 and --init named", code, stderr)
		}
		url, _, _ := startServe(t, "--model", model, "--db", db, "--addr", "127.0.0.1:0", "--init")
		if status, _ := get(t, url+"/readyz"); status != 200 {
			t.Errorf("readyz after --init: %d", status)
		}
	})

	t.Run("check of a clean db, and compact", func(t *testing.T) {
		db := filepath.Join(t.TempDir(), "feedback.db")
		pristine.write(t, db, pristine.pages)
		stdout, _, code := run(t, "feedback", "check", "--db", db)
		if code != 0 || !strings.Contains(stdout, "records: 202 read, 0 unreadable") || !strings.Contains(stdout, "no damage found") {
			t.Errorf("check: exit %d, %s", code, stdout)
		}
		stdout, stderr, code := run(t, "feedback", "compact", "--db", db)
		if code != 0 || !strings.Contains(stdout, "compacted "+db) {
			t.Errorf("compact: exit %d, %s %s", code, stdout, stderr)
		}
		if recs := exportDBRecords(t, db); len(recs) != 202 {
			t.Errorf("%d records after compact, want 202", len(recs))
		}
	})
}

// TestCheckAndSalvageCountOnePageAsOne: check and salvage of a db with
// one unreadable page said "1 pages".
func TestCheckAndSalvageCountOnePageAsOne(t *testing.T) {
	pristine := damagedDB(t)
	const page = datasets.DefaultPageSize
	db := filepath.Join(t.TempDir(), "feedback.db")
	// Page 4 is a page of the tree in damagedDB's layout: zeroed, it is
	// the one unreadable page (the check below makes sure).
	b := bytes.Clone(pristine.pages)
	clear(b[4*page : 5*page])
	pristine.write(t, db, b)
	if rep, err := datasets.CheckDB(db, time.Second); err != nil || rep.BadPages != 1 || rep.BadElems != 0 {
		t.Fatalf("check report %+v, %v; the test wants one unreadable page and no entry (did damagedDB's layout change?)", rep, err)
	}
	stdout, _, code := run(t, "feedback", "check", "--db", db)
	if want := "(1 page and 0 entries unreadable)"; code != 1 || !strings.Contains(stdout, want) {
		t.Errorf("check: exit %d, %q; want 1 and %q", code, stdout, want)
	}
	stdout, stderr, code := run(t, "feedback", "salvage", "--db", db, "-o", filepath.Join(t.TempDir(), "salvaged.db"))
	if want := ", 1 page (with whatever they held)"; code != 0 || !strings.Contains(stdout, want) {
		t.Errorf("salvage: exit %d, %q %q; want 0 and %q", code, stdout, stderr, want)
	}
}

func exportDBRecords(t *testing.T, db string) []datasets.Record {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.jsonl")
	if _, stderr, code := run(t, "feedback", "export", "--db", db, "-o", out); code != 0 {
		t.Fatalf("export: %s", stderr)
	}
	return readRecords(t, out)
}

// TestMidLogFlipAfterSIGKILL: 300 acknowledged feedback writes, SIGKILL,
// one byte flipped at the log's midpoint. The restart refuses, naming the
// damage; with --salvage-log every acknowledged write but the damaged one
// is kept, and the loss is logged.
func TestMidLogFlipAfterSIGKILL(t *testing.T) {
	dir := t.TempDir()
	model := serveModel(t, dir)
	db := filepath.Join(dir, "feedback.db")
	p := startProcess(t, 0, "serve", "--model", model, "--db", db, "--addr", "127.0.0.1:0")
	const n = 300
	for i := range n {
		body := fmt.Sprintf(`{"request_id":"w%03d","model":%q,"score":1,"prompt":"question %d"}`, i, sampleFast, i)
		if status, b := post(t, p.url+"/v1/feedback", body); status != 200 {
			t.Fatalf("feedback %d: %d %s", i, status, b)
		}
	}
	p.kill(t)

	log, err := os.ReadFile(db + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	end := len(bytes.TrimRight(log, "\x00"))
	log[end/2] ^= 0x20
	if err := os.WriteFile(db+"-wal", log, 0o600); err != nil {
		t.Fatal(err)
	}

	_, stderr, code := run(t, "serve", "--model", model, "--db", db, "--addr", "127.0.0.1:0")
	m := regexp.MustCompile(`feedback log (\S+) is damaged at byte (\d+): the record there cannot be read, yet (\d+) acknowledged records follow it`).FindStringSubmatch(stderr)
	if code != 1 || m == nil {
		t.Fatalf("restart on the flipped log: exit %d, %q; want 1 and the damage named", code, stderr)
	}
	after, _ := strconv.Atoi(m[3])
	if at, _ := strconv.Atoi(m[2]); at > end/2 || at < end/2-200 || after < n/2-5 || after > n/2+5 {
		t.Errorf("damage at byte %s with %d after, want the record holding byte %d and about %d after", m[2], after, end/2, n/2)
	}
	if stdout, _, code := run(t, "feedback", "check", "--db", db); code != 1 || !strings.Contains(stdout, "DAMAGED at byte "+m[2]) {
		t.Errorf("check: exit %d, %s", code, stdout)
	}

	url, logs, stop := startServe(t, "--model", model, "--db", db, "--addr", "127.0.0.1:0", "--salvage-log")
	recs := exportRecords(t, url)
	if len(recs) != n-1 {
		t.Errorf("%d writes kept with --salvage-log, want %d (all but the damaged one)", len(recs), n-1)
	}
	stop()
	if !strings.Contains(logs.String(), "--salvage-log applied its readable records") || !strings.Contains(logs.String(), "records_lost=1") {
		t.Errorf("the loss is not logged: %s", logs)
	}
}

// flood opens n keep-alive connections to addr, each idle after one
// GET /healthz (whose answer it waits for when wait is set), and returns
// them.
func flood(t *testing.T, addr string, n int, wait bool) []net.Conn {
	t.Helper()
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := range n {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
		c.SetDeadline(time.Now().Add(2 * time.Second))
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		if !wait {
			continue
		}
		if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		c.SetDeadline(time.Time{})
	}
	return conns
}

func TestIdleConnectionFloodUnderALowFileLimit(t *testing.T) {
	dir := t.TempDir()
	model := serveModel(t, dir)
	const nofile, conns = 256, 1000

	t.Run("the default cap keeps health, readiness and reload working", func(t *testing.T) {
		p := startProcess(t, nofile, "serve", "--model", model, "--db", filepath.Join(t.TempDir(), "f.db"), "--addr", "127.0.0.1:0")
		if !strings.Contains(p.stderr.String(), "max_connections="+strconv.Itoa(nofile-64)) {
			t.Errorf("the cap is not the file limit less its reserve: %s", p.stderr)
		}
		flood(t, strings.TrimPrefix(p.url, "http://"), conns, true)
		client := &http.Client{Timeout: 3 * time.Second}
		for _, path := range []string{"/healthz", "/readyz", "/v1/model"} {
			resp, err := client.Get(p.url + path)
			if err != nil {
				t.Fatalf("%s under %d idle connections: %v", path, conns, err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("%s: %d", path, resp.StatusCode)
			}
		}
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		// The file is the one served: its reload says so.
		for i := 0; !strings.Contains(p.stderr.String(), "model file read again, version unchanged"); i++ {
			if i == 500 || strings.Contains(p.stderr.String(), "reload refused") {
				t.Fatalf("SIGHUP under the flood did not reload: %s", p.stderr)
			}
			time.Sleep(10 * time.Millisecond)
		}
		resp, err := client.Get(p.url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ev := regexp.MustCompile(`(?m)^triage_connections_evicted_total (\d+)`).FindSubmatch(b)
		if ev == nil || string(ev[1]) == "0" {
			t.Errorf("no idle connection was closed to make room: %s", ev)
		}
	})

	t.Run("a cap above the file limit fails accepts, which are logged at warn and counted", func(t *testing.T) {
		cfg := writeFile(t, t.TempDir(), "serve.yaml", "limits:\n  max_connections: 100000\n")
		p := startProcess(t, nofile, "serve", "--model", model, "--db", filepath.Join(t.TempDir(), "f.db"), "--addr", "127.0.0.1:0", "--config", cfg)
		if !strings.Contains(p.stderr.String(), "leaves no room under the file limit") {
			t.Errorf("no warning about the cap at start: %s", p.stderr)
		}
		// The server cannot take them all: its accepts fail once its
		// files run out, and the rest wait in the kernel's backlog.
		cs := flood(t, strings.TrimPrefix(p.url, "http://"), 400, false)
		for i := 0; !strings.Contains(p.stderr.String(), "accept failed"); i++ {
			if i == 500 {
				t.Fatalf("no accept failed with 400 connections under ulimit -n %d: %s", nofile, p.stderr)
			}
			time.Sleep(10 * time.Millisecond)
		}
		for _, c := range cs {
			c.Close()
		}
		var b []byte
		for range 100 {
			resp, err := (&http.Client{Timeout: 3 * time.Second}).Get(p.url + "/metrics")
			if err == nil {
				b, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if m := regexp.MustCompile(`(?m)^triage_accept_errors_total (\d+)`).FindSubmatch(b); m == nil || string(m[1]) == "0" {
			t.Errorf("accept errors not counted: %q", m)
		}
		if !regexp.MustCompile(`level=WARN msg="accept failed; retrying" err=".*too many open files`).MatchString(p.stderr.String()) {
			t.Errorf("accept errors not logged at warn: %s", p.stderr)
		}
	})
}

// TestOutputIsNotAnInput: -o naming a file the command reads is refused
// before anything is written (it once replaced a training log with the
// router, a CSV with its import, and a feedback db with its own export).
// calibrate and retrain do not count their --model as an input: writing a
// new version over it is how a router is updated in place for serve
// --watch.
// fileState says whether a command touched path: its bytes, or for a
// file over 1 MiB (a feedback db, preallocated to 128 MiB as a hole) its
// size and modification time, as TestInterruptedWritesNothing does:
// reading the db whole before and after each command cost about 10 s
// under -race. A file that does not exist is "absent".
func fileState(t *testing.T, path string) string {
	t.Helper()
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "absent"
	}
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > 1<<20 {
		return fmt.Sprintf("%d bytes, modified %s", fi.Size(), fi.ModTime().Format(time.RFC3339Nano))
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d bytes, sha256 %x", len(b), sha256.Sum256(b))
}

func TestOutputIsNotAnInput(t *testing.T) {
	dir := t.TempDir()
	pristine := damagedDB(t)
	db := filepath.Join(dir, "feedback.db")
	pristine.write(t, db, pristine.pages)
	log := writeFile(t, dir, "log.jsonl", `{"id":"a","prompt":"p","outcomes":{"f":{"score":1},"s":{"score":0}}}`+"\n")
	csv := writeFile(t, dir, "w.csv", "prompt,a,b\np,1,0\n")
	evals := filepath.Join(dir, "evals")
	if err := os.MkdirAll(evals, 0o755); err != nil {
		t.Fatal(err)
	}
	gsm := writeFile(t, evals, "gsm8k_responses.csv", "prompt,m1,m2\nq,True,False\n")
	for _, tt := range []struct {
		args []string
		in   string
	}{
		{[]string{"train", "--data", log, "--fast", "f", "--strong", "s", "-o", filepath.Join(dir, ".", "log.jsonl")}, log},
		{[]string{"export-libsvm", "--data", log, "--fast", "f", "--strong", "s", "-o", log}, log},
		{[]string{"import", "wide-csv", "--file", csv, "--prompt-col", "prompt", "-o", csv}, csv},
		{[]string{"import", "routellm", "--bench", "gsm8k", "--dir", evals, "-o", gsm}, gsm},
		{[]string{"feedback", "export", "--db", db, "-o", db}, db},
		{[]string{"feedback", "export", "--db", db, "-o", db + "-wal"}, db + "-wal"},
	} {
		before := fileState(t, tt.in)
		_, stderr, code := run(t, tt.args...)
		if code != 2 || !strings.Contains(stderr, "is also what this command reads") {
			t.Errorf("%v: exit %d, %q; want 2 and the clash named", tt.args, code, stderr)
		}
		if after := fileState(t, tt.in); after != before {
			t.Errorf("%v changed %s: %s, was %s", tt.args, tt.in, after, before)
		}
	}
	if err := checkNotInput("router.json", "log.jsonl"); err != nil {
		t.Errorf("a distinct output refused: %v", err)
	}
}

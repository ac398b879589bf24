package serve

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/triage-router/triage/serve/proxy"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/models"
)

// Issue 13: nothing acknowledged is lost, nothing panics, nothing leaks.

func TestModelInfoShowsTrainingDetailsToAdminsOnly(t *testing.T) {
	ts := newTestServer(t, func(o *Options) {
		withAdmin(o)
		a := testArtifact(t, "v1", 0)
		a.Training.Sources = []string{"/srv/private/logs/tenant-a.jsonl"}
		if err := a.Save(o.ModelPath); err != nil {
			t.Fatal(err)
		}
	})
	public := ts.do(t, "GET", "/v1/model", "").Body.String()
	for _, want := range []string{`"version":"v1"`, `"tiers":`, `"thresholds":`} {
		if !strings.Contains(public, want) {
			t.Errorf("public /v1/model %s lacks %s", public, want)
		}
	}
	for _, leak := range []string{"/srv/private", "sources", "training", "metrics"} {
		if strings.Contains(public, leak) {
			t.Errorf("public /v1/model %s shows %q", public, leak)
		}
	}
	for _, hdr := range [][]string{{"Authorization", "Bearer wrong"}, {"Authorization", "Basic " + token}} {
		if body := ts.do(t, "GET", "/v1/model", "", hdr...).Body.String(); body != public {
			t.Errorf("with %q: %s, want the public view", hdr[1], body)
		}
	}
	admin := ts.do(t, "GET", "/v1/model", "", "Authorization", "Bearer "+token).Body.String()
	for _, want := range []string{"/srv/private/logs/tenant-a.jsonl", `"metrics":{"apgr":0.61}`, `"features":`} {
		if !strings.Contains(admin, want) {
			t.Errorf("admin /v1/model %s lacks %s", admin, want)
		}
	}
}

// failingStore fails every feedback write as a full disk would, and says
// so on Ping, as BoltStore does after a failed log append.
type failingStore struct {
	Store
}

var errDiskFull = fmt.Errorf("%w (feedback log: write /var/lib/triage/feedback.db-wal: %w)", datasets.ErrWritesFailing, syscall.ENOSPC)

func (failingStore) RecordFeedback(context.Context, datasets.Feedback) (datasets.FeedbackResult, error) {
	return datasets.FeedbackResult{}, errDiskFull
}

func (failingStore) Ping() error { return errDiskFull }

func TestReadinessFollowsTheStore(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.Store = failingStore{Store: o.Store} })
	ts.do(t, "POST", "/v1/route", `{"prompt":"x","id":"r"}`)
	if w := ts.do(t, "POST", "/v1/feedback", `{"request_id":"r","model":"mixtral","score":1}`); w.Code != 500 {
		t.Fatalf("feedback on a full disk: %d, want 500", w.Code)
	}
	for range 3 {
		w := ts.do(t, "GET", "/readyz", "")
		if w.Code != 503 {
			t.Fatalf("readyz while feedback writes fail: %d %s, want 503", w.Code, w.Body)
		}
		e := errorOf(t, w)
		if e.Code != CodeNotReady || !strings.Contains(e.Message, "feedback writes are failing") || !strings.Contains(e.Message, "no space left on device") {
			t.Errorf("readyz error = %+v, want the reason", e)
		}
		if strings.Contains(e.Message, "/var/lib") {
			t.Errorf("readyz error %q shows a path", e.Message)
		}
	}
	if n := strings.Count(ts.logs.String(), "not ready"); n != 1 {
		t.Errorf("the failure was logged %d times for 3 probes, want once:\n%s", n, ts.logs)
	}
}

func TestOneIDOnePrompt(t *testing.T) {
	t.Run("another prompt under a routed id is 409, the same prompt is answered and logged once", func(t *testing.T) {
		ts := newTestServer(t, nil)
		if w := ts.do(t, "POST", "/v1/route", `{"id":"conv-42","prompt":"What is 2+2?"}`); w.Code != 200 {
			t.Fatalf("route: %d %s", w.Code, w.Body)
		}
		if w := ts.do(t, "POST", "/v1/feedback", `{"request_id":"conv-42","model":"mixtral","score":1}`); w.Code != 200 {
			t.Fatalf("feedback: %d %s", w.Code, w.Body)
		}
		w := ts.do(t, "POST", "/v1/route", `{"id":"conv-42","prompt":"Prove the Riemann hypothesis."}`)
		if w.Code != 409 {
			t.Fatalf("another prompt under conv-42: %d %s, want 409", w.Code, w.Body)
		}
		if e := errorOf(t, w); e.Code != CodeIDConflict || !strings.Contains(e.Message, "conv-42") {
			t.Errorf("error = %+v, want id_conflict naming the id", e)
		}
		for range 2 {
			if w := ts.do(t, "POST", "/v1/route", `{"id":"conv-42","prompt":"What is 2+2?"}`); w.Code != 200 {
				t.Fatalf("the same prompt again: %d %s, want 200", w.Code, w.Body)
			}
		}
		recs := ts.export(t)
		if len(recs) != 1 || recs[0].Prompt != "What is 2+2?" || recs[0].Outcomes["mixtral"].Score == nil {
			t.Errorf("export = %+v, want one record: the first prompt with its score", recs)
		}
	})

	t.Run("an id still in the decision-log queue is held too", func(t *testing.T) {
		var stuck *stuckLog
		ts := newTestServer(t, func(o *Options) {
			stuck = &stuckLog{Store: o.Store, release: make(chan struct{})}
			o.Store = stuck
		})
		ts.do(t, "POST", "/v1/route", `{"id":"q","messages":[{"role":"user","content":"hi"}]}`)
		if w := ts.do(t, "POST", "/v1/route", `{"id":"q","messages":[{"role":"user","content":"bye"}]}`); w.Code != 409 {
			t.Errorf("another prompt while the first is queued: %d, want 409", w.Code)
		}
		close(stuck.release)
		if w := ts.do(t, "POST", "/v1/route", `{"id":"q","messages":[{"role":"user","content":"bye"}]}`); w.Code != 409 {
			t.Errorf("another prompt once the first is written: %d, want 409", w.Code)
		}
	})

	t.Run("an id created by feedback holds its prompt", func(t *testing.T) {
		ts := newTestServer(t, nil)
		ts.do(t, "POST", "/v1/feedback", `{"request_id":"ext","model":"gpt-4","score":1,"prompt":"routed elsewhere"}`)
		if w := ts.do(t, "POST", "/v1/route", `{"id":"ext","prompt":"something else"}`); w.Code != 409 {
			t.Errorf("another prompt under a feedback-created id: %d, want 409", w.Code)
		}
		if w := ts.do(t, "POST", "/v1/route", `{"id":"ext","prompt":"routed elsewhere"}`); w.Code != 200 {
			t.Errorf("its own prompt: %d %s, want 200", w.Code, w.Body)
		}
	})

	t.Run("a batch with an id twice is 400 naming both positions", func(t *testing.T) {
		ts := newTestServer(t, nil)
		w := ts.do(t, "POST", "/v1/route/batch", `{"requests":[{"id":"a","prompt":"x"},{"prompt":"y"},{"id":"b","prompt":"z"},{"id":"a","prompt":"x"}]}`)
		if w.Code != 400 {
			t.Fatalf("status %d %s, want 400", w.Code, w.Body)
		}
		if e := errorOf(t, w); !strings.Contains(e.Message, "requests[0].id") || !strings.Contains(e.Message, "requests[3].id") {
			t.Errorf("error = %+v, want both positions", e)
		}
	})

	t.Run("a batch reusing a routed id for another prompt is 409 and logs nothing", func(t *testing.T) {
		ts := newTestServer(t, nil)
		ts.do(t, "POST", "/v1/route", `{"id":"a","prompt":"x"}`)
		w := ts.do(t, "POST", "/v1/route/batch", `{"requests":[{"id":"new","prompt":"n"},{"id":"a","prompt":"not x"}]}`)
		if w.Code != 409 {
			t.Fatalf("status %d %s, want 409", w.Code, w.Body)
		}
		if e := errorOf(t, w); !strings.Contains(e.Message, "requests[1].id") {
			t.Errorf("error = %+v, want the position", e)
		}
		// The refused batch's claim on "new" is gone: it can take a prompt.
		if w := ts.do(t, "POST", "/v1/route", `{"id":"new","prompt":"other"}`); w.Code != 200 {
			t.Errorf("route of the refused batch's new id: %d %s, want 200", w.Code, w.Body)
		}
		if recs := ts.export(t); len(recs) != 2 {
			t.Errorf("export has %d records, want 2 (a, new)", len(recs))
		}
	})
}

func TestFeedbackModelMustBeATier(t *testing.T) {
	ts := newTestServer(t, nil)
	ts.do(t, "POST", "/v1/route", `{"id":"r","prompt":"x"}`)
	w := ts.do(t, "POST", "/v1/feedback", `{"request_id":"r","model":"gtp-4","score":1}`)
	if w.Code != 400 {
		t.Fatalf("a model that is not a tier: %d, want 400", w.Code)
	}
	if e := errorOf(t, w); !strings.Contains(e.Message, `"gtp-4"`) || !strings.Contains(e.Message, "feedback.allow_other_models") {
		t.Errorf("error = %+v, want the model and the config key named", e)
	}
	open := newTestServer(t, func(o *Options) { o.Config.Feedback.AllowOtherModels = true })
	open.do(t, "POST", "/v1/route", `{"id":"r","prompt":"x"}`)
	if w := open.do(t, "POST", "/v1/feedback", `{"request_id":"r","model":"judge-v2","score":1}`); w.Code != 200 {
		t.Errorf("with allow_other_models: %d %s, want 200", w.Code, w.Body)
	}
}

// TestFeedbackUnderATierAlias: a client names a tier in feedback as it
// does in a proxy request ("fast", "strong"), and the outcome is stored
// under the name the router and the proxy record that tier under, so the
// next training run sees it; a record_as wins, as in the proxy's own
// records.
func TestFeedbackUnderATierAlias(t *testing.T) {
	for _, c := range []struct {
		name   string
		opts   func(*Options)
		fast   string
		strong string
	}{
		{"no proxy: the router's tiers", nil, "mixtral", "gpt-4"},
		{"a proxy with record_as on the strong tier", func(o *Options) {
			o.Config.Proxy.Tiers = proxy.Tiers{Fast: proxy.Tier{BaseURL: "http://127.0.0.1:9/v1", Model: "f"},
				Strong: proxy.Tier{BaseURL: "http://127.0.0.1:9/v1", Model: "s", RecordAs: "gpt-4-judged"}}
		}, "mixtral", "gpt-4-judged"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ts := newTestServer(t, c.opts)
			ts.do(t, "POST", "/v1/route", `{"id":"r","prompt":"x"}`)
			for _, m := range []string{"fast", "strong"} {
				if w := ts.do(t, "POST", "/v1/feedback", `{"request_id":"r","model":"`+m+`","score":1}`); w.Code != 200 {
					t.Fatalf("feedback under %q: %d %s, want 200", m, w.Code, w.Body)
				}
			}
			recs := ts.export(t)
			if len(recs) != 1 {
				t.Fatalf("export has %d records, want 1", len(recs))
			}
			out := recs[0].Outcomes
			if len(out) != 2 || out[c.fast].Score == nil || out[c.strong].Score == nil {
				t.Errorf("outcomes %+v, want scores under %q and %q", out, c.fast, c.strong)
			}
		})
	}
}

// TestFeedbackAfterATierChangingReload: a retrained router may name a new
// strong tier (gpt-4 swapped for gpt-4o). Requests routed before the
// reload still get their feedback under the tiers that served them,
// which the server takes, with a warning in its log at the reload; a name
// no served model had is still refused.
func TestFeedbackAfterATierChangingReload(t *testing.T) {
	ts := newTestServer(t, withAdmin)
	ts.do(t, "POST", "/v1/route", `{"id":"before","prompt":"x"}`)
	a := testArtifact(t, "v2", 0)
	a.Tiers.Strong = "gpt-4o"
	if err := a.Save(ts.model); err != nil {
		t.Fatal(err)
	}
	if w := ts.do(t, "POST", "/admin/reload", "", "Authorization", "Bearer "+token); w.Code != 200 {
		t.Fatalf("reload: %d %s", w.Code, w.Body)
	}
	if !strings.Contains(ts.logs.String(), "tiers differ from the old one's") {
		t.Errorf("log %q, want a warning about the changed tiers", ts.logs.String())
	}
	ts.do(t, "POST", "/v1/route", `{"id":"after","prompt":"x"}`)
	for _, c := range []struct {
		body   string
		status int
	}{
		{`{"request_id":"before","model":"gpt-4","score":1}`, 200},
		{`{"request_id":"after","model":"gpt-4o","score":1}`, 200},
		{`{"request_id":"before","model":"gtp-4","score":1}`, 400},
	} {
		if w := ts.do(t, "POST", "/v1/feedback", c.body); w.Code != c.status {
			t.Errorf("%s: %d %s, want %d", c.body, w.Code, w.Body, c.status)
		}
	}
}

// serveReal starts s on a loopback listener and returns its address once
// Serve has installed its connection limiter. Serve runs on a goroutine
// of its own: a test that dialled and then read s.limiter at once found
// it nil when that goroutine had not yet run (a nil dereference in
// holdOnlySlot, once in 10 to 60 runs under -race with other jobs on
// the machine).
func serveReal(t *testing.T, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Shutdown(context.Background())
		<-done
	})
	for deadline := time.Now().Add(10 * time.Second); s.limiter.Load() == nil; time.Sleep(time.Millisecond) {
		select {
		case err := <-done:
			done <- err // for the cleanup's wait
			t.Fatalf("Serve returned %v before it served", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("Serve did not start within 10s")
		}
	}
	return ln.Addr().String()
}

func TestBodyReadTimeoutIs408WithoutAddresses(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.Config.Limits.ReadTimeout = 300 * time.Millisecond })
	addr := serveReal(t, ts.Server)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A body that stops short of its Content-Length.
	fmt.Fprintf(c, "POST /v1/route HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"prompt\":")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 408 {
		t.Errorf("status %d %s, want 408", resp.StatusCode, body)
	}
	if strings.Contains(string(body), "127.0.0.1") || strings.Contains(string(body), "tcp") {
		t.Errorf("body %s shows the connection's addresses", body)
	}
	// The metrics count what the client got, a 408, not a 499 ("the
	// client went away first"): net/http cancels the request's context
	// when the body read times out. They are counted after the answer
	// is written, so wait for the count.
	timeouts := ts.m.requests.WithLabelValues("/v1/route", "POST", "408")
	gone := ts.m.requests.WithLabelValues("/v1/route", "POST", "499")
	for deadline := time.Now().Add(2 * time.Second); testutil.ToFloat64(timeouts)+testutil.ToFloat64(gone) == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if n408, n499 := testutil.ToFloat64(timeouts), testutil.ToFloat64(gone); n408 != 1 || n499 != 0 {
		t.Errorf("triage_http_requests_total for the timed-out body: 408 = %v, 499 = %v; want 1 and 0", n408, n499)
	}
}

func TestReloadBounds(t *testing.T) {
	t.Run("a file over limits.max_artifact_bytes is refused", func(t *testing.T) {
		ts := newTestServer(t, nil)
		writeArtifact(t, ts.model, "v2", 0)
		fi, err := os.Stat(ts.model)
		if err != nil {
			t.Fatal(err)
		}
		ts.cfg.Limits.MaxArtifactBytes = fi.Size() - 1
		_, err = ts.Reload()
		if !errors.Is(err, models.ErrBadArtifact) || !strings.Contains(err.Error(), "limits.max_artifact_bytes") {
			t.Errorf("reload of a file over the cap: %v, want the cap named", err)
		}
		if v := ts.Router().Artifact().Version; v != "v1" {
			t.Errorf("serving %s after a refused reload, want v1", v)
		}
	})

	t.Run("a FIFO at the model path is refused at once", func(t *testing.T) {
		ts := newTestServer(t, nil)
		os.Remove(ts.model)
		if err := syscall.Mkfifo(ts.model, 0o600); err != nil {
			t.Skipf("no FIFOs: %v", err)
		}
		_, err := ts.Reload()
		if !errors.Is(err, models.ErrBadArtifact) || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("reload of a FIFO: %v, want not a regular file", err)
		}
	})

	t.Run("a read that hangs fails the reload after reload_timeout and blocks nothing else", func(t *testing.T) {
		release := make(chan struct{})
		var calls atomic.Int32
		ts := newTestServer(t, func(o *Options) {
			withAdmin(o)
			o.Config.Limits.ReloadTimeout = 100 * time.Millisecond
		})
		good := ts.loadModel
		ts.loadModel = func(path string) (*models.Artifact, error) {
			if calls.Add(1) == 1 {
				<-release // a stuck mount
			}
			return good(path)
		}
		defer close(release)
		for i, want := range []string{"took over 100ms", "another reload"} {
			start := time.Now()
			_, err := ts.Reload()
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("reload %d: %v, want %q", i, err, want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("reload %d took %s", i, d)
			}
		}
		if w := ts.do(t, "GET", "/admin/feedback/export", "", "Authorization", "Bearer "+token); w.Code != 200 {
			t.Errorf("export while a reload hangs: %d", w.Code)
		}
		if w := ts.do(t, "GET", "/v1/model", ""); w.Code != 200 || !strings.Contains(w.Body.String(), `"v1"`) {
			t.Errorf("model while a reload hangs: %d %s", w.Code, w.Body)
		}
	})
}

func TestIdleConnectionsAreClosedToMakeRoom(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.Config.Limits.MaxConnections = 8 })
	addr := serveReal(t, ts.Server)
	// Eight keep-alive connections, each idle after one request.
	var idle []net.Conn
	for range 8 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		idle = append(idle, c)
		// The response reaches the client before the server marks the
		// connection idle: wait for it, so the idle list's order is
		// idle's, and the longest-idle connection is idle[0].
		waitIdle(t, ts.limiter.Load(), len(idle))
	}
	// A ninth client is served: the oldest idle connection makes room.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for range 3 {
		resp, err := client.Get("http://" + addr + "/healthz")
		if err != nil {
			t.Fatalf("healthz at the cap: %v", err)
		}
		resp.Body.Close()
	}
	if n := testutil.ToFloat64(ts.conns.evicted); n < 1 {
		t.Errorf("%v idle connections closed, want at least 1", n)
	}
	if n := ts.limiter.Load().open(); n > 8 {
		t.Errorf("%d connections open, want at most 8", n)
	}
	// The longest-idle connection is the one closed. A read that times
	// out is a connection still open: the check used to pass on that.
	idle[0].SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := idle[0].Read(make([]byte, 1))
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("the longest-idle connection is still open (read: %v)", err)
	}
}

// waitIdle waits until l holds n idle connections.
func waitIdle(t *testing.T, l *connLimiter, n int) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(time.Millisecond) {
		l.mu.Lock()
		got := l.idle.Len()
		l.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections idle, want %d", got, n)
		}
	}
}

// When every connection is in a request (clients sending their bodies
// slowly), a new connection waits unanswered in the listen backlog: health
// checks and /metrics too. That used to leave nothing in the server log
// to say why; it is said now, and the waiting client is served once a
// slot frees.
func TestEveryConnectionBusyIsSaid(t *testing.T) {
	ts := newTestServer(t, func(o *Options) { o.Config.Limits.MaxConnections = 1 })
	addr := serveReal(t, ts.Server)
	finish := holdOnlySlot(t, ts, addr)
	got := make(chan error, 1)
	go func() {
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := client.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		got <- err
	}()
	const said = "every client connection is in a request"
	for deadline := time.Now().Add(2 * time.Second); !strings.Contains(ts.logs.String(), said); {
		if time.Now().After(deadline) {
			t.Fatalf("a connection waits for a slot and the server log does not say so; log:\n%s", ts.logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if logs := ts.logs.String(); !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "max_connections=1") {
		t.Errorf("the warning lacks its level or the cap; log:\n%s", logs)
	}
	select {
	case err := <-got:
		t.Fatalf("healthz answered (%v) while the only slot was busy", err)
	default:
	}
	finish()
	if err := <-got; err != nil {
		t.Errorf("healthz once the slow request ended: %v", err)
	}
}

// holdOnlySlot starts a request on addr that sends its body slowly, so
// that it holds the only connection a cap of 1 allows, and waits until
// the limiter counts it active. finish sends the rest of the body.
func holdOnlySlot(t *testing.T, ts *testServer, addr string) (finish func()) {
	t.Helper()
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slow.Close() })
	body := `{"prompt":"slow"}`
	fmt.Fprintf(slow, "POST /v1/route HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body[:3])
	active := func() bool {
		l := ts.limiter.Load()
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.n == 1 && l.fresh.Len() == 0 && l.idle.Len() == 0
	}
	for deadline := time.Now().Add(2 * time.Second); !active(); {
		if time.Now().After(deadline) {
			t.Fatal("the slow request did not become active")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return func() { io.WriteString(slow, body[3:]) }
}

// The ops listener answers probes, scrapes and admin calls while client
// connections fill limits.max_connections, where the client listener
// makes them wait (above); it serves nothing else.
func TestOpsListenerAnswersWhenClientsFillTheCap(t *testing.T) {
	ts := newTestServer(t, func(o *Options) {
		o.Config.Limits.MaxConnections = 1
		withAdmin(o)
	})
	addr := serveReal(t, ts.Server)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opsDone := make(chan error, 1)
	go func() { opsDone <- ts.ServeOps(ln) }()
	ops := "http://" + ln.Addr().String()
	finish := holdOnlySlot(t, ts, addr)

	client := &http.Client{Timeout: 10 * time.Second}
	call := func(method, path string, hdr ...string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, ops+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s on the ops listener while the client cap is full: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, body := call(http.MethodGet, path); code != http.StatusOK {
			t.Errorf("GET %s on the ops listener: %d %s", path, code, body)
		}
	}
	if code, body := call(http.MethodPost, "/admin/reload", "Authorization", "Bearer "+token); code != http.StatusOK {
		t.Errorf("POST /admin/reload on the ops listener: %d %s", code, body)
	}
	if code, _ := call(http.MethodPost, "/admin/reload"); code != http.StatusUnauthorized {
		t.Errorf("POST /admin/reload without the token on the ops listener: %d, want 401", code)
	}
	// The API is not there: the client keys and the cap guard it on addr.
	if code, body := call(http.MethodPost, "/v1/route"); code != http.StatusNotFound || !strings.Contains(body, "ops listener") {
		t.Errorf("POST /v1/route on the ops listener: %d %s, want 404 naming the ops listener", code, body)
	}
	// Its connections are not the client listener's: the slow request
	// still holds the only slot there.
	if n := ts.limiter.Load().open(); n != 1 {
		t.Errorf("%d client connections open, want the slow one alone", n)
	}
	finish()
	if err := ts.Shutdown(context.Background()); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if err := <-opsDone; err != nil {
		t.Errorf("ServeOps after shutdown: %v, want nil", err)
	}
}

func TestDefaultMaxConnections(t *testing.T) {
	for _, c := range []struct {
		nofile uint64
		proxy  bool
		want   int
	}{
		{1024, false, 1024 - fileReserve},
		{1024, true, (1024 - fileReserve) / 3},
		{256, false, 256 - fileReserve},
		{0, false, maxDefaultConnections},
		{1 << 20, false, maxDefaultConnections},
		{10, false, 1},
	} {
		if got := defaultMaxConnections(c.nofile, c.proxy); got != c.want {
			t.Errorf("defaultMaxConnections(%d, %v) = %d, want %d", c.nofile, c.proxy, got, c.want)
		}
	}
}

func TestRetention(t *testing.T) {
	var now atomic.Pointer[time.Time]
	t0 := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	now.Store(&t0)
	ts := newTestServer(t, func(o *Options) {
		o.Now = func() time.Time { return *now.Load() }
		o.Config.Retention = RetentionConfig{MaxAge: time.Hour, Interval: time.Hour}
	})
	for i := range 5 {
		ts.do(t, "POST", "/v1/route", fmt.Sprintf(`{"id":"old-%d","prompt":"x"}`, i))
	}
	later := t0.Add(2 * time.Hour)
	now.Store(&later)
	ts.do(t, "POST", "/v1/route", `{"id":"new","prompt":"y"}`)
	if err := ts.dlog.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	ts.retention.pass(t.Context())
	recs := ts.export(t)
	if len(recs) != 1 || recs[0].ID != "new" {
		t.Errorf("export after retention = %v, want only the new record", recs)
	}
	if n := testutil.ToFloat64(ts.retention.removed.WithLabelValues("age")); n != 5 {
		t.Errorf("triage_retention_removed_total{reason=age} = %v, want 5", n)
	}
	// The removed ids are free again.
	if w := ts.do(t, "POST", "/v1/route", `{"id":"old-0","prompt":"a new prompt"}`); w.Code != 200 {
		t.Errorf("routing a removed id anew: %d", w.Code)
	}
	if !strings.Contains(ts.logs.String(), "retention removed records") {
		t.Errorf("retention did not log what it removed:\n%s", ts.logs)
	}
}

func TestRetentionConfig(t *testing.T) {
	for _, c := range []struct {
		yaml, want string
	}{
		{"retention: {max_bytes: 64}", "retention.max_bytes is 64"},
		{"retention: {max_age: -1h}", "retention.max_age"},
		{"retention: {interval: 0s}", "retention.interval"},
		{"limits: {max_connections: -1}", "limits.max_connections"},
		{"limits: {max_artifact_bytes: 0}", "limits.max_artifact_bytes"},
	} {
		if _, err := ParseConfig([]byte(c.yaml), DefaultConfig()); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %s", c.yaml, err, c.want)
		}
	}
	cfg, err := ParseConfig([]byte("retention: {max_age: 720h, max_bytes: 10737418240}\nfeedback: {allow_other_models: true}\nlimits: {max_connections: 5000}"), DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Retention.MaxAge != 720*time.Hour || cfg.Retention.MaxBytes != 10<<30 || !cfg.Feedback.AllowOtherModels || cfg.Limits.MaxConnections != 5000 {
		t.Errorf("config = %+v", cfg)
	}
}

package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/internal/echo"
)

// TestErrorsEchoClientInputByItsStart: an error that names what the
// client sent (an id, a model, a role) repeats its start, escaped, not
// all of it: a GET of an 8,000-character id came back whole in an
// 8,263-byte body.
func TestErrorsEchoClientInputByItsStart(t *testing.T) {
	r := newRig(t, rigOptions{})
	long := strings.Repeat("x", 8000)
	get := func(t *testing.T, h http.HandlerFunc, path string) (int, []byte) {
		t.Helper()
		w := httptest.NewRecorder()
		h(w, httptest.NewRequest(http.MethodGet, path, nil))
		return w.Code, w.Body.Bytes()
	}
	post := func(t *testing.T, body string) (int, []byte) {
		t.Helper()
		got := r.do(t, context.Background(), r.url, body)
		return got.status, got.body
	}
	for _, tc := range []struct {
		name   string
		answer func(t *testing.T) (int, []byte)
		status int
		want   string
	}{
		{"an unknown stored response's id, in OpenAI's words", func(t *testing.T) (int, []byte) {
			return get(t, r.h.ServeStoredResponse, "/v1/responses/"+long)
		}, 404, "No response found with id '" + long[:echo.MaxBytes] + "...'."},
		{"an id with a line break and a quote", func(t *testing.T) (int, []byte) {
			return get(t, r.h.ServeStoredResponse, "/v1/responses/a%0Ab'c")
		}, 404, `No response found with id 'a\nb\'c'.`},
		{"a model not served", func(t *testing.T) (int, []byte) {
			return post(t, `{"model":"`+long+`","messages":[{"role":"user","content":"hi"}]}`)
		}, 400, `model "` + long[:echo.MaxBytes] + `"... is not served here`},
		{"a model looked up", func(t *testing.T) (int, []byte) {
			return get(t, r.h.ServeModels, "/v1/models/"+long)
		}, 404, `model "` + long[:echo.MaxBytes] + `"... is not served here`},
		{"a message's role", func(t *testing.T) (int, []byte) {
			return post(t, `{"messages":[{"role":"`+long+`"}]}`)
		}, 400, "a " + long[:echo.MaxBytes] + "... message needs its content"},
	} {
		t.Run(tc.name+" is repeated by its start", func(t *testing.T) {
			status, body := tc.answer(t)
			_, msg := errorBody(t, body)
			if status != tc.status || !strings.Contains(msg, tc.want) || len(body) > 1000 {
				t.Errorf("%d, %d bytes: %.300s; want %d with %q, under 1000 bytes", status, len(body), body, tc.status, tc.want)
			}
		})
	}
}

// brokenStore is a ResponseStore whose every read fails, naming the ids
// it was asked for.
type brokenStore struct {
	mu    sync.Mutex
	asked []string
}

func (s *brokenStore) LookupResponse(id string, _ time.Time) (datasets.StoredResponse, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked = append(s.asked, id)
	return datasets.StoredResponse{}, false, errors.New("disk gone")
}

// TestLookupLogsNoIDTheDBCannotHold: a previous_response_id the feedback
// db cannot hold (longer than a key may be) is not read for, so a failing
// db's log line never repeats it: a client could make that line as long
// as its body.
func TestLookupLogsNoIDTheDBCannotHold(t *testing.T) {
	store := &brokenStore{}
	r := newRig(t, rigOptions{responses: store})
	long := strings.Repeat("x", 8000)
	for _, id := range []string{long, "resp_short"} {
		req, _ := http.NewRequest(http.MethodPost, r.url+"/v1/responses", strings.NewReader(`{"input":"hi","previous_response_id":"`+id+`"}`))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	r.recordings(t)
	store.mu.Lock()
	defer store.mu.Unlock()
	if len(store.asked) != 1 || store.asked[0] != "resp_short" {
		t.Errorf("the store was asked for %d ids, want only resp_short", len(store.asked))
	}
	if logs := r.logs.String(); strings.Contains(logs, long[:300]) || !strings.Contains(logs, "response_id=resp_short") {
		t.Errorf("logs (%d bytes):\n%.500s\nwant the failed lookup of resp_short, and no line with the long id", len(logs), logs)
	}
}

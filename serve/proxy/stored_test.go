package proxy

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestStoredResponseRoutes: GET and DELETE /v1/responses/{id}, its
// cancel and its input_items reach the tier that stored the response;
// an id the proxy never relayed is its own 404 in OpenAI's shape.
func TestStoredResponseRoutes(t *testing.T) {
	p := newPinRig(t, "")
	first := p.ask(t, "E explain", "", false)
	if p.tierOf(first.id) != "strong" {
		t.Fatalf("first answer %s", first.body)
	}
	for _, tc := range []struct {
		method, path, want string
	}{
		{http.MethodGet, "/v1/responses/" + first.id + "?include[]=message.output_text.logprobs", `"tier_seen":"include[]=message.output_text.logprobs"`},
		{http.MethodGet, "/v1/responses/" + first.id + "?stream=true&starting_after=3", "data: {\"type\":\"response.output_text.delta\",\"delta\":\"later\",\"sequence_number\":3}\n\nevent: response.completed"},
		{http.MethodGet, "/v1/responses/" + first.id + "/input_items", `"text":"strong"`},
		{http.MethodPost, "/v1/responses/" + first.id + "/cancel", `"status":"cancelled"`},
		{http.MethodDelete, "/v1/responses/" + first.id, `"deleted":true`},
	} {
		t.Run(tc.method+" "+strings.Replace(tc.path, first.id, "{id}", 1)+" reaches the tier that stored it", func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, p.url+tc.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || !strings.Contains(string(b), tc.want) {
				t.Errorf("%d %s; want 200 with %s", resp.StatusCode, b, tc.want)
			}
			if got := resp.Header.Get(HeaderModel); got != "strong-model" {
				t.Errorf("X-Triage-Model %q, want strong-model", got)
			}
			if got := resp.Header.Get("X-Request-Id"); got != "req_get_strong" {
				t.Errorf("X-Request-Id %q, want the upstream's", got)
			}
		})
	}
	t.Run("an id the proxy never relayed is a 404 in OpenAI's shape", func(t *testing.T) {
		resp, err := http.Get(p.url + "/v1/responses/resp_unknown_7")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		code, msg := errorBody(t, b)
		if resp.StatusCode != http.StatusNotFound || code != "not_found" || !strings.Contains(msg, "resp_unknown_7") {
			t.Errorf("%d %s", resp.StatusCode, b)
		}
		// The id an SDK shows for the error (e.request_id), as on the
		// proxy's other errors.
		if got := resp.Header.Get("X-Request-Id"); len(got) != 32 {
			t.Errorf("X-Request-Id %q, want the proxy's own id", got)
		}
	})
}

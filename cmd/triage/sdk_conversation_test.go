package main

import (
	"context"
	"net/http"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
)

// TestOpenAISDKConversation: a Responses API conversation held with
// previous_response_id, as an app holds one with the official SDK,
// through triage serve in front of two sims that each know only the
// responses they stored: every turn reaches the tier that stored the
// one before it, whatever the router says of the new input, plain and
// streamed, across a restart of the server; a stored response is
// retrieved through the proxy; an id it never relayed routes as any
// request and gets the upstream's own 404.
func TestOpenAISDKConversation(t *testing.T) {
	r := newSDKRig(t)
	ctx := context.Background()
	web := r.client(sdkKey)
	esc, fast := r.picks["escalate"], r.picks["fast"]
	turn := func(prompt, prev string, meta map[string]string) responses.ResponseNewParams {
		p := responses.ResponseNewParams{Model: "gpt-4o", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String(prompt)}, Metadata: meta}
		if prev != "" {
			p.PreviousResponseID = openai.String(prev)
		}
		return p
	}
	// continues asks a follow-up the router would send fast, and wants it
	// answered by the strong tier that stored prev.
	continues := func(t *testing.T, web openai.Client, prev string) string {
		t.Helper()
		var resp *http.Response
		got, err := web.Responses.New(ctx, turn(fast.Prompt, prev, fast.Meta), option.WithResponseInto(&resp))
		if err != nil {
			t.Fatalf("follow-up of %s: %v", prev, err)
		}
		if got.Model != sampleStrong || resp.Header.Get("X-Triage-Decision") != "escalate+pinned" || got.OutputText() == "" {
			t.Errorf("follow-up of %s: model %q decision %q, want %s escalate+pinned", prev, got.Model, resp.Header.Get("X-Triage-Decision"), sampleStrong)
		}
		return got.ID
	}

	first, err := web.Responses.New(ctx, turn(esc.Prompt, "", esc.Meta))
	if err != nil || first.Model != sampleStrong {
		t.Fatalf("first turn: %v, model %v; want the strong tier's answer", err, first)
	}
	if got, err := web.Responses.New(ctx, turn(fast.Prompt, "", fast.Meta)); err != nil || got.Model != sampleFast {
		t.Fatalf("the follow-up's input alone: %v, model %v; want it routed fast", err, got)
	}
	var last string
	t.Run("a plain follow-up reaches the tier that stored its response", func(t *testing.T) {
		last = continues(t, web, first.ID)
	})
	t.Run("a streamed follow-up too", func(t *testing.T) {
		stream := web.Responses.NewStreaming(ctx, turn(fast.Prompt, last, fast.Meta))
		var model, id string
		for stream.Next() {
			if ev := stream.Current(); ev.Type == "response.completed" {
				model, id = ev.Response.Model, ev.Response.ID
			}
		}
		if err := stream.Err(); err != nil || model != sampleStrong {
			t.Fatalf("stream: %v, model %q; want %s", err, model, sampleStrong)
		}
		last = id
	})
	t.Run("a stored response is retrieved from its tier", func(t *testing.T) {
		got, err := web.Responses.Get(ctx, first.ID, responses.ResponseGetParams{})
		if err != nil || got.ID != first.ID || got.Model != sampleStrong {
			t.Errorf("GET %s: %v, %+v", first.ID, err, got)
		}
		_, err = web.Responses.Get(ctx, "resp_never_relayed", responses.ResponseGetParams{})
		if e := apiError(t, err); e.StatusCode != 404 || e.Code != "not_found" {
			t.Errorf("GET of an unknown id: %d %q, want the proxy's 404", e.StatusCode, e.Code)
		}
	})
	r.restart(t)
	web = r.client(sdkKey)
	t.Run("after a restart the conversation goes on at its tier", func(t *testing.T) {
		continues(t, web, last)
	})
	t.Run("an id the proxy never relayed routes as before, and the tier answers 404", func(t *testing.T) {
		_, err := web.Responses.New(ctx, turn(fast.Prompt, "resp_never_relayed", fast.Meta))
		if e := apiError(t, err); e.StatusCode != 404 || e.Param != "previous_response_id" {
			t.Errorf("status %d param %q, want the fast sim's 404 for previous_response_id", e.StatusCode, e.Param)
		}
	})
	recs := r.exported(t)
	pinned := 0
	for _, rec := range recs {
		if rec.Decision != nil && rec.Decision.Pinned {
			pinned++
		}
	}
	if pinned != 3 {
		t.Errorf("%d requests recorded as pinned, want 3", pinned)
	}
}

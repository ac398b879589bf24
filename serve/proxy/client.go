package proxy

import (
	"context"
	"time"

	"github.com/triage-router/triage/datasets"
)

type clientMetaKey struct{}

type clientNameKey struct{}

// WithClientName returns ctx carrying the name of the client key a
// request was authenticated with (the server's client_keys). A stored
// Responses API response belongs to the key that made it: the proxy
// calls every tier with its own key, so no upstream can keep one client
// from reading or continuing another's responses, and the proxy does.
func WithClientName(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, clientNameKey{}, name)
}

// ClientName is the name WithClientName put in ctx, or "" (a server
// without client keys).
func ClientName(ctx context.Context) string {
	n, _ := ctx.Value(clientNameKey{}).(string)
	return n
}

// WithClientMeta returns ctx carrying the meta of the client key a
// request was authenticated with (the server's client_keys), for the
// routes to merge into the request's own: the router sees it as meta
// features and it is recorded, so a proxied request carries the meta
// (tenant, app) the router was trained with although the app sends none.
func WithClientMeta(ctx context.Context, meta datasets.Meta) context.Context {
	return context.WithValue(ctx, clientMetaKey{}, meta)
}

// ClientMeta is the meta WithClientMeta put in ctx, or nil.
func ClientMeta(ctx context.Context) datasets.Meta {
	m, _ := ctx.Value(clientMetaKey{}).(datasets.Meta)
	return m
}

// MergeMeta is the request's meta with the client key's on top: a key's
// meta wins, so a client cannot claim another tenant in its request. It
// returns req itself when the key has none.
func MergeMeta(req, key datasets.Meta) datasets.Meta {
	if len(key) == 0 {
		return req
	}
	out := make(datasets.Meta, len(req)+len(key))
	for k, v := range req {
		out[k] = v
	}
	for k, v := range key {
		out[k] = v
	}
	return out
}

type statusKey struct{}

// Report is what the proxy's handlers tell the server about a request,
// so the server's HTTP metrics agree with the proxy's.
type Report struct {
	// Status is the status counted in triage_proxy_requests_total: 499
	// when the client went away, 502 for a stream the upstream broke
	// after a 200 was sent.
	Status int
	// Answered is when the client's answer was sent, if the handler
	// went on after it (a race's loser given loser_grace); else zero,
	// and the answer's time is the handler's end.
	Answered time.Time
}

// WithStatusReport returns ctx and the Report the proxy's handlers fill
// in for the request served with it.
func WithStatusReport(ctx context.Context) (context.Context, *Report) {
	p := new(Report)
	return context.WithValue(ctx, statusKey{}, p), p
}

// reportStatus puts status where WithStatusReport asked for it.
func reportStatus(ctx context.Context, status int) {
	if p, ok := ctx.Value(statusKey{}).(*Report); ok {
		p.Status = status
	}
}

// reportAnswered notes that the client's answer was sent at t.
func reportAnswered(ctx context.Context, t time.Time) {
	if p, ok := ctx.Value(statusKey{}).(*Report); ok {
		p.Answered = t
	}
}

package proxy

import (
	"context"

	"github.com/triage-router/triage/datasets"
)

type clientMetaKey struct{}

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

// WithStatusReport returns ctx and where the proxy's handlers put the
// status they counted in triage_proxy_requests_total: 499 when the
// client went away, 502 for a stream the upstream broke after a 200 was
// sent. The server counts its own HTTP metrics with it, so the two
// agree.
func WithStatusReport(ctx context.Context) (context.Context, *int) {
	p := new(int)
	return context.WithValue(ctx, statusKey{}, p), p
}

// reportStatus puts status where WithStatusReport asked for it.
func reportStatus(ctx context.Context, status int) {
	if p, ok := ctx.Value(statusKey{}).(*int); ok {
		*p = status
	}
}

// Package proxy is an OpenAI-compatible POST /v1/chat/completions (and
// /v1/completions, routed on the prompt) that routes each request with
// the current router and speculates: the latency of the fast model at
// close to the quality of the strong one, for a client that only changes
// its base URL. POST /v1/embeddings is passed to a configured tier.
//
// Routing. A client "model" of "triage" (or none) is routed; "fast" or
// "strong" picks that tier and bypasses the router (the request is still
// recorded, with Recording.Forced); other names go through the config's
// aliases (exact, then "*") or are a 400. fast sends to the fast tier, escalate
// to the strong one. speculate sends to both at once, asking the fast
// upstream for token log-probabilities ("logprobs": true, hidden from a
// client that did not ask): the first whole answer decides. A strong
// answer first is kept and the fast call cancelled. A fast answer first
// is judged by its confidence: the mean token log-probability, mapped
// through the artifact's confidence calibration
// (Router.CalibratedConfidence); at or above the policy's
// accept_confidence it is kept and the strong call is cancelled, else the
// strong answer is awaited. This is the replay rule of docs/design.md, so what
// `triage curves` predicts for a policy is what the proxy does. An
// artifact without a confidence calibration never accepts on confidence.
// Cancelling a call cancels its context, which closes the upstream
// connection (HTTP/1.1) or resets the stream (HTTP/2): the upstream stops
// generating.
//
// More than two tiers. The config may list N upstreams, cheapest first
// (Tiers.Ordered); the router (the Router interface, a Choice per
// request) picks a tier by index, and a race pairs it with the next one
// up under the same rule as a speculation, the cheaper answer judged by
// its tier's confidence calibration. The two-tier words stay: fast is the
// cheapest tier alone, escalate a dearer one alone, speculate a race; a
// client names a tier by its config name; fallback goes to the next
// cheaper tier (the cheapest's to the next one up). The router's tiers
// and the config's are matched by position, so the server refuses a
// model whose tier count differs.
//
// Streaming ("stream": true). fast and escalate relay the upstream's
// server-sent events unchanged as they arrive, flushing each. A
// speculation cannot show the client a fast answer it may discard, so
// the fast stream is buffered until it ends and judged whole; if kept it
// is then written at once. If rejected (or failed), the strong stream is
// relayed from that moment, its buffered part first, then live; a strong
// stream that ends before the fast one is kept as in the plain case. The
// effect on time to first token: a speculated request's first token
// arrives when the fast answer is complete (fast total latency, not fast
// TTFT) if accepted, and at max(fast total latency, strong TTFT) if not;
// fast and escalate requests keep their upstream's TTFT. To record usage
// the proxy asks streams for stream_options.include_usage and removes the
// usage chunk (and the "usage": null fields) when the client did not ask.
//
// Failures. With Config.Fallback (the default) a tier that fails (5xx,
// timeout, connection error; 429 with FallbackOn429) before the first
// byte of its answer reached the client is answered by the other tier,
// marked "+fallback" in X-Triage-Decision and in the recording. After
// the first byte, a broken stream (a transport error, a timeout between
// chunks, or no "data: [DONE]") aborts the client's connection
// (http.ErrAbortHandler), so its SDK raises an error rather than take a
// truncated answer as whole. A strong-tier error after a fast answer
// returns the fast answer, whatever its confidence. An upstream 4xx is
// the client's mistake and passes through unchanged, status, headers and
// body (in a speculation, only if the other tier did not answer). When
// no tier answers the client gets a 502 naming what each tier did,
// without upstream addresses (they go to the log). The proxy's own errors
// are OpenAI's shape, {"error":{"message","type","param","code"}}
// (ErrorBody). The served upstream's response headers pass through but
// hop-by-hop ones and cookies. Every response carries X-Triage-Decision,
// X-Triage-Model and X-Triage-Request-Id.
//
// Recording. Every routed request is queued for the Recorder (off the
// request path; a full queue drops and counts): the messages, metadata,
// decision with p_hard and model version, and per upstream call its
// latency, token usage, cost at the tier's prices per 1k input and output
// tokens, the fast tier's raw confidence and the answer text (unless
// record_responses is off). A cancelled call (the loser of a speculation,
// a timeout, a client gone) has no usage; it is recorded with Cancelled,
// the time it ran, and a pro-rata cost on its own request: its prompt
// tokens estimated from its text (at the tier's prompt tokens per byte)
// and the tier's mean output tokens, at the tier's prices, times the
// share of the tier's mean latency the call ran, capped at the whole (no
// cost before the tier's first completed call). Outcomes
// are recorded under the router artifact's tier names (or a tier's
// record_as), so the next training run uses them with no client code.
// StoreRecorder writes recordings into datasets.BoltStore.
//
// Conversation state (the Responses API). The proxy remembers which tier
// served each stored response it relays (responseTiers: the newest in
// memory, all in the feedback db in the commit of their requests'
// records, for Config.ResponseTTL or until retention removes the
// record), so that a request continuing one
// (previous_response_id) goes to that tier alone, pinned: where the
// tiers are different servers, no other can continue it. GET and DELETE
// /v1/responses/{id}, its cancel and its input_items go there too
// (ServeStoredResponse). An unknown id routes as any request. Each
// entry also keeps its owner, the client key its request was made with
// (WithClientName): the tiers are called with the proxy's key and cannot
// tell clients apart, so the proxy answers another key's request about
// it with the 404 of an unknown id, and refuses a follow-up naming it
// without routing it.
//
// Caveats: only choice 0 is judged and recorded; a stream is judged only
// after it ends, so a very long fast answer delays a speculation's first
// token by its whole length; API keys come from the environment variable
// a tier names and are never logged.
package proxy

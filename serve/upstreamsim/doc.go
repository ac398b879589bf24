// Package upstreamsim is an OpenAI-compatible chat completions server that
// answers from a labelled log, so the speculating proxy (serve/proxy) can be
// demonstrated, tested and benchmarked end to end with no external service.
//
// One Server plays one model of the log. A request's prompt is looked up by
// exact match, first as the content of its last user message, then as every
// message's content joined with "\n" (datasets.Record.Text's rule, so a
// record logged with a plain prompt matches a one-message chat). A known
// prompt is answered with the model's recorded response, or, when the
// record has none or Options.Reply is ReplyPlaceholder, with a placeholder
// naming the recorded score: "[sim] recorded score 1 for MODEL on ID". An
// unknown prompt gets Options.Default.
//
// Latency. The answer waits the record's latency_ms; a record without one
// waits a draw from a lognormal fitted to the model's logged latencies (or
// DefaultLatencyMedian with DefaultLatencySigma when the log has fewer than
// two). Draws are seeded by Options.Seed and the prompt, so a prompt waits
// the same time on every run whatever the request order. LatencyScale
// shrinks or stretches every wait; FixedLatency replaces them all (the
// proxy's overhead benchmark uses a fixed 50 ms). A streamed answer sends
// its first content after StreamTTFTShare of the wait and spreads the rest
// over the remaining chunks, so the last chunk lands at the full latency.
//
// Log-probabilities. With "logprobs": true every answer carries
// choices[0].logprobs.content with one entry per token (tokens are runs of
// non-space characters with their leading spaces). The values vary from
// token to token but their mean is the record's confidence (the log's mean
// token log-probability), so a client that averages them recovers the
// logged value; a record without one uses DefaultConfidence.
//
// Cancellation. A request whose client goes away before the whole answer is
// written is counted as cancelled (Stats.Cancelled, GET /sim/stats) and
// logged. This is how a test sees, from the upstream side, that the proxy
// really closed the losing call of a speculation.
//
// Caveats: token counts are whitespace tokens, not a real tokenizer's; the
// usage block reports the record's input_tokens/output_tokens when logged.
// Options.Fault lets tests inject upstream errors; the command line does
// not expose it.
package upstreamsim

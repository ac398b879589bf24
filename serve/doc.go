// Package serve is the routing server: it answers POST /v1/route with the
// current router's decision (fast, speculate or escalate, with p_hard and
// the tiers), records every decision for retraining, accepts feedback
// about the answers, and exposes the model, health and Prometheus metrics.
//
// The route path never waits on the disk. Routed requests go through a
// bounded queue to one writer goroutine that commits them in batches; when
// the queue is full a record is dropped and counted
// (triage_decision_log_dropped_total), and the route still answers.
// Feedback is the opposite: POST /v1/feedback answers 2xx only after the
// feedback is committed (concurrent writes share commits). Feedback for a
// request whose decision is still queued flushes the queue before it
// concludes the id is unknown.
//
// The model is swapped atomically on Reload (POST /admin/reload, served
// here; SIGHUP and serve --watch in cmd/triage): the new artifact is
// loaded and validated first, a bad file leaves the old one serving and
// the error says why, and requests in flight finish on the router they
// started with.
//
// Requests are decoded strictly: the body must be valid UTF-8 JSON holding
// one object, and a field the server does not know is rejected with 400
// and code "unknown_field" naming it, so a misspelt "promt" is an error
// rather than a silently empty prompt. Errors are always
// {"error": {"code": ..., "message": ...}}, mapped to a status by
// ErrorStatus alone.
//
// The package defines the interfaces it consumes (Store, made of
// FeedbackSink, DecisionLog, Exporter, RequestIndex and Pruner);
// datasets.BoltStore implements them. Metrics go
// to the *prometheus.Registry in Options, never the default registry.
//
// Caveats: gin's mode is process-global, so the command sets release mode;
// the export is read in short transactions and is not a point-in-time view
// (the snapshot is); a record dropped from a full queue makes later
// feedback for its id 404 unless the feedback carries the prompt.
package serve

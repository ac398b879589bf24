package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/serve/upstreamsim"
)

func init() {
	register("upstream-sim", "serve an OpenAI-compatible model that answers from a labelled log", runUpstreamSim)
}

func runUpstreamSim(ctx context.Context, env *Env, args []string) error {
	// The same reasoning as serve's: per-request garbage, a small live
	// heap (the log's answers). The sims share the benchmark machine with
	// the proxy they measure, so their collector's CPU is the proxy's loss.
	defer setGCPercent(env, serveGCPercent)()
	fs := newFlagSet(env, "upstream-sim", "--data F --model MODEL [--addr 127.0.0.1:0] [--default TEXT] [--default-latency D] [--latency-scale X | --fixed-latency D] [--seed N] [--fail-share P] [--reply recorded|placeholder] [--stream-chunks N] [--skip-bad]")
	var data logList
	fs.Var(&data, "data", "labelled JSONL log(s) to answer from, comma-separated or repeated; a folder stands for its *.jsonl and *.jsonl.gz files")
	model := fs.String("model", "", "the model of the log's outcomes this server plays")
	addr := fs.String("addr", "127.0.0.1:0", "listen address; port 0 picks a free one (printed on stderr)")
	def := fs.String("default", upstreamsim.DefaultAnswer, "answer to prompts that are not in the log")
	defLat := fs.Duration("default-latency", 0, "wait for prompts not in the log (0 draws from the model's latency lognormal)")
	scale := fs.Float64("latency-scale", 1, "multiply every wait by this (e.g. 0.1 for a quick replay)")
	fixed := fs.Duration("fixed-latency", 0, "answer everything after exactly this wait (benchmarks), overriding the log")
	seed := fs.Uint64("seed", 1, "seed of the lognormal latency draws (a prompt always draws the same wait) and of the failing prompts")
	failShare := fs.Float64("fail-share", 0, "answer this share of prompts 503 at once, the same prompts on every call (e.g. 0.2 to see a proxy fall back)")
	reply := fs.String("reply", "recorded", "recorded: the logged response (else a placeholder naming the score); placeholder: always the placeholder")
	chunks := fs.Int("stream-chunks", upstreamsim.DefaultStreamChunks, "most content chunks in a streamed answer")
	skipBad := fs.Bool("skip-bad", false, "skip malformed lines instead of stopping: name the first five on stderr and count them all")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(data) == 0 {
		return usagef("e.g. --data gsm8k.jsonl", "--data is required")
	}
	if *model == "" {
		return usagef("name one of the log's outcome keys", "--model is required")
	}
	if *scale <= 0 {
		return usagef("use a positive factor", "--latency-scale is %v", *scale)
	}
	if !(*failShare >= 0 && *failShare <= 1) {
		return usagef("use a share such as 0.2", "--fail-share is %v, want a share in [0,1]", *failShare)
	}
	if *fixed > 0 && flagsGiven(fs)["latency-scale"] {
		// Refused, not ignored: a fixed wait is not scaled.
		return usagef("give one: --fixed-latency answers everything after that wait, unscaled", "--latency-scale and --fixed-latency exclude each other")
	}
	if *fixed > 0 && flagsGiven(fs)["default-latency"] {
		// Refused, not ignored: the fixed wait is every answer's, the
		// prompts not in the log included.
		return usagef("give one: --fixed-latency is also the wait of prompts not in the log", "--default-latency and --fixed-latency exclude each other")
	}
	if *chunks < 1 {
		// The sim would quietly use its default instead.
		return usagef(fmt.Sprintf("use 1 or more (1: the whole answer in one chunk; default %d)", upstreamsim.DefaultStreamChunks), "--stream-chunks is %d", *chunks)
	}
	if *fixed < 0 || *defLat < 0 {
		return usagef("use a positive duration such as 50ms", "latencies must not be negative")
	}
	rp, err := upstreamsim.ParseReply(*reply)
	if err != nil {
		return usagef("use recorded or placeholder", "--reply: %v", err)
	}
	var recs []datasets.Record
	skipped := 0
	simOpts := readOptions(env, "upstream-sim", *skipBad)
	simOpts.AllowMissingScore = true
	if err := checkLogFolders(data); err != nil {
		return err
	}
	for _, p := range data {
		// An outcome without a score (a feedback export's) still has the
		// answer and latency the sim plays back.
		r, n, err := datasets.ReadFile(p, simOpts)
		if err != nil {
			return err
		}
		recs = append(recs, r...)
		skipped += n
	}
	logger := slog.New(slog.NewTextHandler(env.Stderr, nil))
	sim, err := upstreamsim.New(upstreamsim.Options{
		Model: *model, Records: recs, Reply: rp, Default: *def, DefaultLatency: *defLat,
		LatencyScale: *scale, FixedLatency: *fixed, Seed: *seed, FailShare: *failShare, StreamChunks: *chunks, Logger: logger,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return listenError(err)
	}
	median, sigma := sim.LatencyFit()
	latency := fmt.Sprintf("recorded latency_ms x %g, else lognormal median %v sigma %.2f", *scale, median.Round(time.Millisecond), sigma)
	if *fixed > 0 {
		latency = fmt.Sprintf("fixed %v", *fixed)
	}
	fmt.Fprintf(env.Stderr, "triage upstream-sim: %s answers %s (%s skipped); latency: %s\n", *model, count(sim.Len(), "prompt"), count(skipped, "bad line"), latency)
	fmt.Fprintf(env.Stderr, "triage upstream-sim: listening on %s\n", ln.Addr())
	srv := &http.Server{Handler: sim, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelDebug)}
	// HTTP/1.1, and HTTP/2 with prior knowledge for clients that speak it
	// (a proxy tier with h2c: true).
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	// In-flight answers may be minutes away in a replayed log: give them a
	// moment, then cut them off (they count as cancelled).
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	st := sim.Stats()
	fmt.Fprintf(env.Stderr, "triage upstream-sim: stopped; %s, %d answered, %d cancelled by the client, %s, %d failed\n",
		count(int(st.Requests), "request"), st.Answered, st.Cancelled, count(int(st.Unknown), "unknown prompt"), st.Failed)
	return nil
}

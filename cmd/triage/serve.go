package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/serve"
)

func init() {
	register("serve", "start the routing server", runServe)
}

const serveUsage = "--model FILE --db FILE [--addr 127.0.0.1:8080] [--ops-addr HOST:PORT] [--config FILE] [--watch] [--init] [--salvage-log]"

// serveEnvUsage ends serve -h: the variables serve reads (a format: %d
// is serveGCPercent).
const serveEnvUsage = `
environment:
  TRIAGE_ADMIN_TOKEN   the /admin routes' bearer token; without it they are 404 (docs/serving.md)
  ` + serve.ClientKeysEnv + `   client keys, name=key,name=key: every /v1/ route then needs one (docs/proxy.md)
  GOGC                 the collector's target; serve runs at %d unless it is set
`

// ServeConfig is everything triage serve needs: the server's own config
// (file and flags) and the paths and secrets the command resolves.
type ServeConfig struct {
	// Serve is the server configuration: addr, limits, thresholds, db and
	// queue tuning. A --config file is read over DefaultConfig, then the
	// flags that were given are applied on top.
	Serve serve.Config
	// ModelPath is the router artifact (--model); SIGHUP and
	// POST /admin/reload read it again.
	ModelPath string
	// DBPath is the bbolt feedback db (--db), created if absent.
	DBPath string
	// ConfigPath is the --config file, if any.
	ConfigPath string
	// AdminToken enables /admin; from $TRIAGE_ADMIN_TOKEN.
	AdminToken string
	// Watch reloads the model when its file changes (--watch).
	Watch bool
	// Init starts a new store in an existing empty --db file (--init),
	// which is otherwise refused.
	Init bool
	// SalvageLog applies a damaged feedback log's readable records
	// (--salvage-log), which is otherwise refused.
	SalvageLog bool
	// CPUProfile is a file for a Go CPU profile of the whole run
	// (--cpuprofile), written at shutdown: how bench/proxy/profile.sh
	// sees where a proxied request's CPU goes under real load.
	CPUProfile string
}

// DefaultServeConfig returns the defaults.
func DefaultServeConfig() ServeConfig {
	return ServeConfig{Serve: serve.DefaultConfig()}
}

// ServeCommand runs the server: ParseFlags, Run (which returns once the
// server listens), then Close for a graceful stop. runServe drives it,
// and tests drive runServe through Main on 127.0.0.1:0.
type ServeCommand struct {
	Config ServeConfig

	env    *Env
	log    *slog.Logger
	store  *datasets.BoltStore
	srv    *serve.Server
	ln     net.Listener
	opsLn  net.Listener // the ops listener, if ops_addr is set
	served chan error
	hup    chan os.Signal
	watch  *serve.Watcher
	wg     sync.WaitGroup
	closed bool
	// discardDB: Run created the db file and then failed (a bad model,
	// config or key), so Close removes the empty file instead of leaving
	// 128 MiB behind that a retry with the right flags would not expect.
	discardDB bool
}

// NewServeCommand returns a command with the default config.
func NewServeCommand(env *Env) *ServeCommand {
	return &ServeCommand{Config: DefaultServeConfig(), env: env}
}

// ParseFlags reads args, the --config file and $TRIAGE_ADMIN_TOKEN into
// c.Config. Flags win over the file.
func (c *ServeCommand) ParseFlags(args []string) error {
	fs := newFlagSet(c.env, "serve", serveUsage)
	// The admin routes and client keys are set from the environment, not
	// by a flag: -h must say so, or a user reading it finds no way to
	// turn /admin on.
	flagsUsage := fs.Usage
	fs.Usage = func() {
		flagsUsage()
		fmt.Fprintf(fs.Output(), serveEnvUsage, serveGCPercent)
	}
	cfg := &c.Config
	fs.StringVar(&cfg.ModelPath, "model", "", "router artifact to serve (from triage train)")
	fs.StringVar(&cfg.DBPath, "db", "", "bbolt file for the decision log and feedback; created if absent")
	fs.StringVar(&cfg.ConfigPath, "config", "", "YAML or JSON config file (see docs/serving.md); flags win over it")
	fs.BoolVar(&cfg.Watch, "watch", false, "reload the model when its file is written or renamed into place (SIGHUP and /admin/reload work either way)")
	fs.BoolVar(&cfg.Init, "init", false, "start a new store in --db when it is an existing empty (0-byte) file, which is otherwise refused")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", "", "write a CPU profile (go tool pprof) of the run to this file at shutdown")
	fs.BoolVar(&cfg.SalvageLog, "salvage-log", false, "apply the readable records of a damaged feedback log, skipping the damaged bytes (refused otherwise; see 'triage feedback check')")
	// Flags that override the file are applied after it is read, and only
	// when given: their defaults must not undo the file.
	def := serve.DefaultConfig()
	var (
		addr            = fs.String("addr", def.Addr, "listen address, host:port (port 0 picks one)")
		opsAddr         = fs.String("ops-addr", "", "a second listen address for /healthz, /readyz, /metrics and /admin, outside the client connection cap (off when empty)")
		maxBody         = fs.Int64("max-body-bytes", def.Limits.MaxBodyBytes, "largest request body; larger gets 413")
		maxPrompt       = fs.Int("max-prompt-bytes", def.Limits.MaxPromptBytes, "largest prompt; larger gets 413")
		maxBatch        = fs.Int("max-batch", def.Limits.MaxBatch, "most requests in one /v1/route/batch call")
		speculate       = fs.Float64("speculate-above", 0, "override the model's speculate_above threshold (two-tier routers: an N-tier one is refused with it)")
		escalate        = fs.Float64("escalate-above", 0, "override the model's escalate_above threshold (two-tier routers: an N-tier one is refused with it)")
		accept          = fs.Float64("accept-confidence", 0, "override the model's accept_confidence (two-tier routers: an N-tier one is refused with it)")
		dbTimeout       = fs.Duration("db-timeout", def.DB.OpenTimeout, "how long to wait for a db file locked by another process")
		queue           = fs.Int("decision-queue", def.DecisionLog.QueueSize, "routed requests that may wait for the disk before they are dropped")
		readTimeout     = fs.Duration("read-timeout", def.Limits.ReadTimeout, "time to read a whole request")
		writeTimeout    = fs.Duration("write-timeout", def.Limits.WriteTimeout, "time to write a response")
		shutdownTimeout = fs.Duration("shutdown-timeout", def.ShutdownTimeout, "wait for in-flight requests on SIGINT/SIGTERM")
	)
	apply := map[string]func(*serve.Config){}
	setThreshold := func(dst **float64, v float64) { *dst = &v }
	apply["addr"] = func(s *serve.Config) { s.Addr = *addr }
	apply["ops-addr"] = func(s *serve.Config) { s.OpsAddr = *opsAddr }
	apply["max-body-bytes"] = func(s *serve.Config) { s.Limits.MaxBodyBytes = *maxBody }
	apply["max-prompt-bytes"] = func(s *serve.Config) { s.Limits.MaxPromptBytes = *maxPrompt }
	apply["max-batch"] = func(s *serve.Config) { s.Limits.MaxBatch = *maxBatch }
	apply["speculate-above"] = func(s *serve.Config) { setThreshold(&s.Thresholds.SpeculateAbove, *speculate) }
	apply["escalate-above"] = func(s *serve.Config) { setThreshold(&s.Thresholds.EscalateAbove, *escalate) }
	apply["accept-confidence"] = func(s *serve.Config) { setThreshold(&s.Thresholds.AcceptConfidence, *accept) }
	apply["db-timeout"] = func(s *serve.Config) { s.DB.OpenTimeout = *dbTimeout }
	apply["decision-queue"] = func(s *serve.Config) { s.DecisionLog.QueueSize = *queue }
	apply["read-timeout"] = func(s *serve.Config) { s.Limits.ReadTimeout = *readTimeout }
	apply["write-timeout"] = func(s *serve.Config) { s.Limits.WriteTimeout = *writeTimeout }
	apply["shutdown-timeout"] = func(s *serve.Config) { s.ShutdownTimeout = *shutdownTimeout }
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if cfg.ModelPath == "" {
		return usagef("train one with 'triage train ... -o router.json'", "serve needs --model FILE")
	}
	if cfg.DBPath == "" {
		return usagef("it is created if absent, e.g. --db feedback.db", "serve needs --db FILE")
	}
	if cfg.ConfigPath != "" {
		sc, err := serve.LoadConfig(cfg.ConfigPath, cfg.Serve)
		if err != nil {
			return err
		}
		cfg.Serve = sc
	}
	fs.Visit(func(f *flag.Flag) {
		if set, ok := apply[f.Name]; ok {
			set(&cfg.Serve)
		}
	})
	if err := cfg.Serve.Validate(); err != nil {
		return usagef("check the flags and the config file", "%v", err)
	}
	addrFrom := "addr in " + cfg.ConfigPath
	if flagsGiven(fs)["addr"] {
		addrFrom = "--addr"
	}
	if err := checkAddr(cfg.Serve.Addr, addrFrom); err != nil {
		return err
	}
	if cfg.Serve.OpsAddr != "" {
		from := "ops_addr in " + cfg.ConfigPath
		if flagsGiven(fs)["ops-addr"] {
			from = "--ops-addr"
		}
		if err := checkAddr(cfg.Serve.OpsAddr, from); err != nil {
			return err
		}
	}
	if c.env.Getenv != nil {
		cfg.AdminToken = c.env.Getenv("TRIAGE_ADMIN_TOKEN")
	}
	return nil
}

// checkAddr returns a usage error for a listen address that is not
// host:port, with the likeliest fix: a bare port needs its colon.
func checkAddr(addr, from string) error {
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		if _, perr := strconv.ParseUint(port, 10, 16); perr != nil && port != "" {
			if _, lerr := net.LookupPort("tcp", port); lerr != nil {
				return usagef("want host:port, e.g. 127.0.0.1:8080", "%s %q has no usable port", from, addr)
			}
		}
		return nil
	}
	if _, perr := strconv.ParseUint(addr, 10, 16); perr == nil {
		return usagef(fmt.Sprintf("for port %s write 127.0.0.1:%s (this machine only) or :%s (every interface)", addr, addr, addr),
			"%s %s is a port without a host", from, addr)
	}
	return usagef("want host:port, e.g. 127.0.0.1:8080", "%s %q is not host:port", from, addr)
}

// Run binds the address, opens the db, loads the model and starts
// serving. The address is bound first so that a port already in use
// leaves no new db file behind, and a db file Run creates is removed by
// Close if Run then fails. It returns once the server listens; the
// bound address is printed to stderr as "triage serve: listening on
// HOST:PORT".
func (c *ServeCommand) Run(ctx context.Context) (err error) {
	cfg := c.Config
	c.log = slog.New(slog.NewTextHandler(c.env.Stderr, nil))
	// gin's mode is process-wide; debug mode prints every route.
	gin.SetMode(gin.ReleaseMode)

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.Serve.Addr)
	if err != nil {
		return listenError(err)
	}
	c.ln = ln
	if cfg.Serve.OpsAddr != "" {
		if c.opsLn, err = lc.Listen(ctx, "tcp", cfg.Serve.OpsAddr); err != nil {
			return fmt.Errorf("ops listener: %w", listenError(err))
		}
	}
	_, statErr := os.Lstat(cfg.DBPath)
	fresh := errors.Is(statErr, os.ErrNotExist)
	store, err := datasets.OpenBoltStore(cfg.DBPath, datasets.StoreOptions{Timeout: cfg.Serve.DB.OpenTimeout, MaxBatchSize: cfg.Serve.DB.MaxBatch,
		Init: cfg.Init, SalvageLog: cfg.SalvageLog})
	if err != nil {
		return err
	}
	c.store = store
	defer func() { c.discardDB = err != nil && fresh }()
	logReplay(c.log, cfg.DBPath, store.Replay())
	if rm := store.RemovedSnapshots(); len(rm) > 0 {
		c.log.Info("removed the temporary copies of snapshots a stopped server left beside the db", "db", cfg.DBPath, "files", strings.Join(rm, ","))
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv, err := serve.New(serve.Options{
		Config:     cfg.Serve,
		ModelPath:  cfg.ModelPath,
		Store:      store,
		Registry:   reg,
		Logger:     c.log,
		AdminToken: cfg.AdminToken,
		Getenv:     c.env.Getenv,
	})
	if err != nil {
		return err
	}
	c.srv = srv
	if cfg.Watch {
		// Reload logs its outcome, as for SIGHUP. Set up before serving,
		// so that nothing fails once a request may have been recorded
		// (a failed Run removes the db it created).
		c.watch, err = serve.WatchModel(cfg.ModelPath, 0, func() { srv.Reload() }, c.log)
		if err != nil {
			return err
		}
	}
	c.served = make(chan error, 1)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.served <- srv.Serve(ln)
	}()
	if c.opsLn != nil {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			if err := srv.ServeOps(c.opsLn); err != nil {
				// The API goes on; probes of the ops listener now fail,
				// which is what an orchestrator should see.
				c.log.Error("ops listener stopped", "addr", c.opsLn.Addr().String(), "err", err)
			}
		}()
	}
	c.hup = make(chan os.Signal, 1)
	signal.Notify(c.hup, syscall.SIGHUP)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for range c.hup {
			// Reload logs its outcome (and why a file was refused).
			srv.Reload()
		}
	}()

	tr := srv.TierRouter()
	a := tr.Artifact()
	admin := "off (set TRIAGE_ADMIN_TOKEN to enable /admin)"
	if cfg.AdminToken != "" {
		admin = "on"
	}
	tiers := []any{"fast", a.Tiers.Fast, "strong", a.Tiers.Strong}
	if a.IsMultiTier() {
		tiers = []any{"tiers", strings.Join(tr.Names(), ",")}
	}
	c.log.Info("serving", append(append([]any{"model", cfg.ModelPath, "version", a.Version}, tiers...), "db", cfg.DBPath, "admin", admin,
		"max_connections", srv.MaxConnections())...)
	fmt.Fprintf(c.env.Stderr, "triage serve: listening on %s\n", ln.Addr())
	if c.opsLn != nil {
		fmt.Fprintf(c.env.Stderr, "triage serve: ops endpoints (/healthz, /readyz, /metrics, /admin) on %s\n", c.opsLn.Addr())
	}
	return nil
}

// logReplay says what opening the db found in its feedback log: what was
// replayed, and any loss, which is never silent.
func logReplay(log *slog.Logger, db string, r datasets.ReplayStats) {
	switch {
	case r.Truncated:
		log.Warn("feedback log was cut short; --salvage-log applied its readable records, and those past its end are lost",
			"db", db, "log_bytes", r.DamagedAt, "records_applied", r.Replayed)
	case r.DamagedAt >= 0 && r.Salvaged:
		log.Warn("feedback log was damaged; --salvage-log applied its readable records and skipped the damaged bytes",
			"db", db, "damaged_at_byte", r.DamagedAt, "records_lost", r.Lost, "records_applied", r.Replayed)
	case r.DamagedAt >= 0:
		log.Warn("feedback log's last append was torn (a power cut writes blocks out of order); its readable records were applied",
			"db", db, "torn_at_byte", r.DamagedAt, "records_lost", r.Lost, "records_applied", r.Replayed)
	case r.Replayed > 0:
		log.Info("feedback log replayed after an unclean stop", "db", db, "records", r.Replayed)
	}
}

// Close stops accepting requests, waits for those in flight, drains the
// decision log and closes the db.
func (c *ServeCommand) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	var errs []error
	if c.hup != nil {
		signal.Stop(c.hup)
		close(c.hup)
	}
	if c.watch != nil {
		errs = append(errs, c.watch.Close())
	}
	if c.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), c.Config.Serve.ShutdownTimeout)
		errs = append(errs, c.srv.Shutdown(ctx))
		cancel()
	}
	if c.ln != nil {
		// Serve closes it on Shutdown; a Run that failed before serving
		// did not hand it over. A second Close only errs, unread.
		c.ln.Close()
	}
	if c.opsLn != nil {
		c.opsLn.Close()
	}
	c.wg.Wait()
	if c.store != nil {
		err := c.store.Close()
		errs = append(errs, err)
		if c.discardDB && err == nil {
			// Closed cleanly, the store left no feedback log beside it.
			errs = append(errs, os.Remove(c.Config.DBPath))
		}
	}
	if c.srv != nil {
		c.log.Info("stopped")
	}
	return errors.Join(errs...)
}

// serveGCPercent is serve's GOGC unless the environment sets one. A
// route's garbage (its body, prompt, features and answer) dies with the
// request, and the live heap is small (the weights, the queues), so
// collecting at 5x it rather than 2x costs a few tens of MB and cuts the
// collector's share of the route path's CPU. bench/serve/throughput.sh on
// a 2-core VM, one run after the other: GOGC 100 gave 0.78 of the floor's
// requests/s at 244 MiB peak RSS, GOGC 400 gave 0.89 at 283 MiB.
const serveGCPercent = 400

func runServe(ctx context.Context, env *Env, args []string) error {
	defer setGCPercent(env, serveGCPercent)()
	c := NewServeCommand(env)
	if err := c.ParseFlags(args); err != nil {
		return err
	}
	if c.Config.CPUProfile != "" {
		f, err := os.Create(c.Config.CPUProfile)
		if err != nil {
			return fmt.Errorf("create --cpuprofile file: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fmt.Errorf("start the CPU profile: %w", err)
		}
		defer func() {
			pprof.StopCPUProfile()
			if err := f.Close(); err != nil {
				fmt.Fprintf(env.Stderr, "triage serve: close --cpuprofile file: %v\n", err)
			}
		}()
	}
	if err := c.Run(ctx); err != nil {
		c.Close()
		return err
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-c.served:
	}
	return errors.Join(err, c.Close())
}

// listenError says what to do about the two listen failures a user meets:
// a port another process holds, and a port below 1024 without the right.
func listenError(err error) error {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("listen: %w: another process (another triage serve?) listens there; stop it, or pick another port (port 0 picks a free one)", err)
	case errors.Is(err, syscall.EACCES):
		return fmt.Errorf("listen: %w: ports below 1024 need root or CAP_NET_BIND_SERVICE; pick a port from 1024 up", err)
	}
	return fmt.Errorf("listen: %w", err)
}

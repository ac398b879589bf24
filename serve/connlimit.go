package serve

import (
	"container/list"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Connection limits. Each client connection holds a file descriptor, and
// an idle keep-alive connection holds it for limits.idle_timeout: some
// 20,000 idle connections used to exhaust the file limit, after which
// /healthz timed out and a SIGHUP reload failed to open the model file
// (issue 13). The listener below admits at most MaxConnections; when a
// new connection arrives at the cap, the connection idle the longest is
// closed to make room (as net/http's IdleTimeout would close it later), so
// health checks and real requests keep getting through an idle flood.
// Only when every connection is busy does Accept wait.
const (
	// fileReserve is the file descriptors kept back from the default
	// MaxConnections: the db and its log, a snapshot's temporary file, a
	// reload's model file, the watcher, the listener, stdio, /proc reads
	// for the process metrics.
	fileReserve = 64
	// upstreamPerConn is how many upstream connections a proxied request
	// may hold (both tiers of a speculation) besides its own.
	upstreamPerConn = 2
	// maxDefaultConnections caps the default: each connection costs some
	// 10 KiB of buffers and goroutine stack, so a file limit of a million
	// would otherwise allow gigabytes of idle connections.
	maxDefaultConnections = 65536
	// freshGrace is how long a new connection may wait for its first
	// request before it counts as idle and may be closed to make room:
	// long enough for a client that connected to send its request.
	freshGrace = time.Second
	// acceptLogEvery rate-limits the warning for accept errors, which
	// net/http retries in a tight loop.
	acceptLogEvery = time.Second
	// busyLogEvery rate-limits the warning that every connection is
	// busy, which holds as long as the slow clients do.
	busyLogEvery = 10 * time.Second
)

// defaultMaxConnections is the connection cap for a process whose file
// limit is nofile (0 when unknown): below it by fileReserve, and by room
// for upstream calls when the proxy is on.
func defaultMaxConnections(nofile uint64, proxy bool) int {
	if nofile == 0 {
		return maxDefaultConnections
	}
	n := int64(nofile) - fileReserve
	if proxy {
		n /= 1 + upstreamPerConn
	}
	return int(min(max(n, 1), maxDefaultConnections))
}

// connLimiter is a net.Listener that admits at most max connections, and
// the http.Server ConnState hook that tells it which are idle.
type connLimiter struct {
	net.Listener
	max int
	log *slog.Logger
	m   connMetrics

	mu    sync.Mutex
	conns map[net.Conn]*connEntry
	// idle holds connections between requests, oldest first; fresh,
	// connections that have not sent a request yet, oldest first.
	idle, fresh list.List
	n           int
	freed       chan struct{} // a slot came free
	closed      chan struct{}
	closeOnce   sync.Once

	lastWarn   time.Time
	suppressed int
	// lastBusyWarn rate-limits the warning that every connection is
	// busy and new ones wait; busyWaits counts the waits since.
	lastBusyWarn time.Time
	busyWaits    int
}

type connEntry struct {
	c     net.Conn
	since time.Time
	elem  *list.Element
	in    *list.List
}

type connMetrics struct {
	open     prometheus.GaugeFunc
	evicted  prometheus.Counter
	acceptEr prometheus.Counter
	capacity prometheus.Gauge
}

func newConnLimiter(ln net.Listener, max int, log *slog.Logger, m connMetrics) *connLimiter {
	l := &connLimiter{Listener: ln, max: max, log: log, m: m, conns: map[net.Conn]*connEntry{},
		freed: make(chan struct{}, 1), closed: make(chan struct{})}
	m.capacity.Set(float64(max))
	return l
}

// registerConnMetrics registers the connection series; open reads the
// current limiter, if any.
func registerConnMetrics(reg prometheus.Registerer, open func() float64) connMetrics {
	m := connMetrics{
		open: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "triage_connections_open",
			Help: "Client connections open.",
		}, open),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "triage_connections_evicted_total",
			Help: "Idle client connections closed to make room under limits.max_connections.",
		}),
		acceptEr: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "triage_accept_errors_total",
			Help: "Errors accepting a connection (too many open files, ...); each is retried.",
		}),
		capacity: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "triage_connections_max",
			Help: "The cap on client connections (limits.max_connections, or the default from the file limit).",
		}),
	}
	reg.MustRegister(m.open, m.evicted, m.acceptEr, m.capacity)
	return m
}

// Accept waits for a connection and a free slot for it.
func (l *connLimiter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		select {
		case <-l.closed:
		default:
			l.acceptError(err)
		}
		return nil, err
	}
	if !l.admit(c) {
		c.Close()
		return nil, net.ErrClosed
	}
	return c, nil
}

// acceptError counts an accept error and logs it at warn, at most once a
// second (net/http retries at once), with how many were not logged.
func (l *connLimiter) acceptError(err error) {
	l.m.acceptEr.Inc()
	l.mu.Lock()
	now := time.Now()
	if now.Sub(l.lastWarn) < acceptLogEvery {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	n := l.suppressed
	l.lastWarn, l.suppressed = now, 0
	l.mu.Unlock()
	l.log.Warn("accept failed; retrying", "err", err, "open_connections", l.open(), "max_connections", l.max, "not_logged_since_last", n)
}

// admit takes a slot for c, closing the longest-idle connection when
// none is free, or waiting for one when every connection is busy. It
// returns false when the listener was closed meanwhile.
func (l *connLimiter) admit(c net.Conn) bool {
	waited := false
	l.mu.Lock()
	for l.n >= l.max {
		if e := l.evictable(time.Now()); e != nil {
			l.drop(e)
			e.c.Close()
			l.m.evicted.Inc()
			continue
		}
		say := false
		if !waited && l.fresh.Len() == 0 {
			// Every connection is in a request: the wait lasts as long
			// as the slowest of them, not freshGrace.
			waited, say = true, l.busy(time.Now())
		}
		open := l.n
		l.mu.Unlock()
		if say {
			l.sayBusy(open)
		}
		select {
		case <-l.freed:
		case <-l.closed:
			return false
		case <-time.After(freshGrace / 4):
			// A fresh connection may have become evictable.
		}
		l.mu.Lock()
	}
	l.n++
	l.add(c, &l.fresh)
	l.mu.Unlock()
	return true
}

// busy counts a connection that waits because every connection is in a
// request, and reports whether to say so now: at most once per
// busyLogEvery. Called with mu held.
func (l *connLimiter) busy(now time.Time) bool {
	l.busyWaits++
	if !l.lastBusyWarn.IsZero() && now.Sub(l.lastBusyWarn) < busyLogEvery {
		return false
	}
	l.lastBusyWarn = now
	return true
}

// sayBusy logs that every connection is busy and new ones wait: clients
// then see connections that are not answered (health checks and /metrics
// too), and nothing else said why.
func (l *connLimiter) sayBusy(open int) {
	l.mu.Lock()
	n := l.busyWaits
	l.busyWaits = 0
	l.mu.Unlock()
	l.log.Warn("every client connection is in a request: new connections wait unanswered in the listen backlog (health checks too) until one ends; raise limits.max_connections, or look for clients sending slowly (limits.read_timeout bounds a request's body, read_header_timeout its headers)",
		"open_connections", open, "max_connections", l.max, "waited_since_last_warning", n)
}

// evictable is the connection to close to make room: the longest idle,
// else the oldest that sent nothing for freshGrace. Called with mu held.
func (l *connLimiter) evictable(now time.Time) *connEntry {
	if f := l.idle.Front(); f != nil {
		return f.Value.(*connEntry)
	}
	if f := l.fresh.Front(); f != nil {
		if e := f.Value.(*connEntry); now.Sub(e.since) >= freshGrace {
			return e
		}
	}
	return nil
}

func (l *connLimiter) add(c net.Conn, in *list.List) {
	e := &connEntry{c: c, since: time.Now(), in: in}
	e.elem = in.PushBack(e)
	l.conns[c] = e
}

// drop forgets e and frees its slot. Called with mu held.
func (l *connLimiter) drop(e *connEntry) {
	if e.in != nil {
		e.in.Remove(e.elem)
		e.in = nil
	}
	delete(l.conns, e.c)
	l.n--
	select {
	case l.freed <- struct{}{}:
	default:
	}
}

// connState is the http.Server ConnState hook.
func (l *connLimiter) connState(c net.Conn, st http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.conns[c]
	if e == nil {
		return // closed to make room, or not admitted by this limiter
	}
	switch st {
	case http.StateActive:
		if e.in != nil {
			e.in.Remove(e.elem)
			e.in = nil
		}
	case http.StateIdle:
		if e.in != nil {
			e.in.Remove(e.elem)
		}
		e.since, e.in = time.Now(), &l.idle
		e.elem = l.idle.PushBack(e)
	case http.StateHijacked, http.StateClosed:
		l.drop(e)
	}
}

func (l *connLimiter) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

// Close stops accepting and wakes an Accept waiting for a slot.
func (l *connLimiter) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	err := l.Listener.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

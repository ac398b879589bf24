// Command loadgen is a closed-loop HTTP load generator for the proxy
// benchmarks: C clients, each on its own keep-alive HTTP/1.1 connection,
// POST a chat completion, wait for the whole answer, and send the next,
// for a fixed time. It prints the latency percentiles and the rate of the
// requests that started after the warm-up and succeeded (a 2xx answer
// read whole); failures are counted apart, their latencies left out.
//
//	loadgen -url http://127.0.0.1:8080/v1/chat/completions -c 200 -duration 10s -data log.jsonl
//
// Bodies are built from the log's prompts, round robin, so the router sees
// varied requests. Loopback only: it refuses other hosts, so a typo cannot
// point 200 clients at a real provider.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/triage-router/triage/datasets"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

type stats struct {
	URL        string         `json:"url"`
	Clients    int            `json:"clients"`
	Requests   int            `json:"requests"`
	Errors     int            `json:"errors"`
	RPS        float64        `json:"rps"`
	MeanMS     float64        `json:"mean_ms"`
	P50MS      float64        `json:"p50_ms"`
	P90MS      float64        `json:"p90_ms"`
	P99MS      float64        `json:"p99_ms"`
	P999MS     float64        `json:"p999_ms"`
	MaxMS      float64        `json:"max_ms"`
	ByModel    map[string]int `json:"by_model,omitempty"`
	ByDecision map[string]int `json:"by_decision,omitempty"`
	// P99ByDecision is the p99 latency of each decision's requests, so a
	// tail can be told apart: a speculation whose fast answer is refused
	// waits for the strong one.
	P99ByDecision map[string]float64 `json:"p99_ms_by_decision,omitempty"`
	Status        map[string]int     `json:"status,omitempty"`
	// CPUSeconds is this process's user+system CPU time, to tell what
	// the load generator itself took of a shared machine.
	CPUSeconds float64 `json:"cpu_seconds"`
	// AllRequests counts the warm-up's requests too (what CPUSeconds
	// paid for).
	AllRequests int64 `json:"all_requests"`
}

func run() error {
	target := flag.String("url", "", "chat completions URL (loopback only)")
	clients := flag.Int("c", 200, "concurrent clients")
	dur := flag.Duration("duration", 10*time.Second, "measured time (at most 10m)")
	warm := flag.Duration("warmup", 2*time.Second, "time before measuring")
	ramp := flag.Duration("ramp", 0, "start the clients evenly over this time instead of all at once (at most the warm-up)")
	data := flag.String("data", "", "JSONL log whose prompts make the bodies (default: one fixed prompt)")
	model := flag.String("model", "triage", "the \"model\" field of each body")
	maxPrompts := flag.Int("max-prompts", 1000, "use at most this many prompts of the log")
	jsonOut := flag.Bool("json", false, "print the result as JSON")
	withMeta := flag.Bool("meta", false, "send each record's meta as the request's \"metadata\" (what the router was trained with)")
	var headers headerList
	flag.Var(&headers, "H", "a header to send, \"Name: value\" (repeatable)")
	flag.Parse()
	u, err := url.Parse(*target)
	if err != nil || u.Host == "" {
		return fmt.Errorf("-url %q is not a URL", *target)
	}
	if ip := net.ParseIP(u.Hostname()); (ip == nil || !ip.IsLoopback()) && u.Hostname() != "localhost" {
		return fmt.Errorf("-url host %s is not loopback; this tool only loads local servers", u.Hostname())
	}
	if *clients < 1 || *clients > 5000 {
		return fmt.Errorf("-c %d, want 1..5000", *clients)
	}
	if *ramp < 0 || *ramp > *warm {
		return fmt.Errorf("-ramp %v, want 0 up to the warm-up (%v), so every client runs through the measured window", *ramp, *warm)
	}
	if *dur <= 0 || *dur > 10*time.Minute {
		return fmt.Errorf("-duration %v, want up to 10m", *dur)
	}
	bodies, err := makeBodies(*data, *model, *maxPrompts, *withMeta)
	if err != nil {
		return err
	}
	if u.Scheme != "http" {
		return fmt.Errorf("-url scheme %q, want http", u.Scheme)
	}
	reqs := make([][]byte, len(bodies))
	for i, b := range bodies {
		reqs[i] = request(u.Host, u.RequestURI(), b, headers...)
	}

	start := time.Now()
	measureFrom := start.Add(*warm)
	stop := measureFrom.Add(*dur)
	var next atomic.Uint64
	var all atomic.Int64
	var mu sync.Mutex
	var lat []float64
	latBy := map[string][]float64{}
	st := stats{URL: *target, Clients: *clients, ByModel: map[string]int{}, ByDecision: map[string]int{}, Status: map[string]int{}}
	var wg sync.WaitGroup
	for i := range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Clients that start together stay in step behind an upstream
			// with a fixed latency: they arrive in bursts of all of them,
			// every period, for the whole run. A ramp spreads their phases.
			time.Sleep(*ramp * time.Duration(i) / time.Duration(*clients))
			c := &conn{addr: u.Host, timeout: time.Minute}
			defer c.close()
			mine := newTally()
			for {
				t0 := time.Now()
				if t0.After(stop) {
					break
				}
				resp, err := c.do(reqs[next.Add(1)%uint64(len(reqs))])
				d := time.Since(t0)
				all.Add(1)
				if t0.Before(measureFrom) {
					continue
				}
				mine.add(resp, err, d)
			}
			mu.Lock()
			lat = append(lat, mine.lat...)
			for k, v := range mine.latBy {
				latBy[k] = append(latBy[k], v...)
			}
			st.Errors += mine.errs
			for k, v := range mine.models {
				st.ByModel[k] += v
			}
			for k, v := range mine.decisions {
				st.ByDecision[k] += v
			}
			for k, v := range mine.statuses {
				st.Status[k] += v
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(lat) == 0 {
		return fmt.Errorf("no request succeeded in the measured window (%d failed; statuses %v)", st.Errors, st.Status)
	}
	slices.Sort(lat)
	var sum float64
	for _, v := range lat {
		sum += v
	}
	pct := func(p float64) float64 { return percentile(lat, p) }
	st.Requests = len(lat)
	st.AllRequests = all.Load()
	st.RPS = float64(len(lat)) / dur.Seconds()
	st.MeanMS = sum / float64(len(lat))
	st.P50MS, st.P90MS, st.P99MS, st.P999MS, st.MaxMS = pct(.5), pct(.9), pct(.99), pct(.999), lat[len(lat)-1]
	if len(latBy) > 0 {
		st.P99ByDecision = map[string]float64{}
		for k, v := range latBy {
			slices.Sort(v)
			st.P99ByDecision[k] = percentile(v, .99)
		}
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		st.CPUSeconds = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	if *jsonOut {
		b, _ := json.Marshal(st)
		fmt.Println(string(b))
		return nil
	}
	fmt.Printf("%s: %d clients, %d requests (%d errors), %.0f req/s; latency ms: mean %.2f p50 %.2f p90 %.2f p99 %.2f p99.9 %.2f max %.2f\n",
		st.URL, st.Clients, st.Requests, st.Errors, st.RPS, st.MeanMS, st.P50MS, st.P90MS, st.P99MS, st.P999MS, st.MaxMS)
	return nil
}

// tally is one client's record of the requests it started in the
// measured window. Only a 2xx answer read whole is a success: its latency
// goes to lat (and to latBy under its decision); a failure is counted in
// errs, its latency dropped, so an error answered at once (a 502, a
// refused connection) cannot pull the percentiles down.
type tally struct {
	lat                         []float64
	latBy                       map[string][]float64
	errs                        int
	models, decisions, statuses map[string]int
}

func newTally() *tally {
	return &tally{latBy: map[string][]float64{}, models: map[string]int{}, decisions: map[string]int{}, statuses: map[string]int{}}
}

// add records one request that took d and ended with resp and err.
func (t *tally) add(resp response, err error, d time.Duration) {
	if resp.status != 0 {
		t.statuses[strconv.Itoa(resp.status)]++
	}
	if err != nil || resp.status < 200 || resp.status >= 300 {
		t.errs++
		return
	}
	ms := float64(d.Microseconds()) / 1000
	t.lat = append(t.lat, ms)
	if resp.model != "" {
		t.models[resp.model]++
	}
	if resp.decision != "" {
		t.decisions[resp.decision]++
		t.latBy[resp.decision] = append(t.latBy[resp.decision], ms)
	}
}

// headerList is the -H flags.
type headerList []string

func (h *headerList) String() string { return fmt.Sprint(*h) }

func (h *headerList) Set(v string) error {
	name, _, ok := strings.Cut(v, ":")
	if !ok || strings.TrimSpace(name) == "" || strings.ContainsAny(v, "\r\n") {
		return fmt.Errorf("header %q is not \"Name: value\"", v)
	}
	*h = append(*h, v)
	return nil
}

// percentile is the nearest-rank p-quantile of sorted, non-empty lat: the
// smallest value that at least a share p of them do not exceed.
func percentile(lat []float64, p float64) float64 {
	i := int(float64(len(lat))*p+0.999999) - 1
	return lat[max(0, min(len(lat)-1, i))]
}

func makeBodies(path, model string, maxN int, withMeta bool) ([][]byte, error) {
	prompts := []string{"What is the capital of France?"}
	metas := []datasets.Meta{nil}
	if path != "" {
		prompts, metas = prompts[:0], metas[:0]
		_, err := datasets.EachFile(path, datasets.ReadOptions{SkipBad: true, AllowMissingScore: true}, func(r datasets.Record) error {
			if len(prompts) < maxN {
				prompts = append(prompts, r.Text())
				metas = append(metas, r.Meta)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if len(prompts) == 0 {
			return nil, fmt.Errorf("%s has no prompts", path)
		}
	}
	out := make([][]byte, len(prompts))
	for i, p := range prompts {
		req := map[string]any{"model": model, "messages": []map[string]string{{"role": "user", "content": p}}}
		if withMeta && len(metas[i]) > 0 {
			req["metadata"] = metas[i]
		}
		b, err := json.Marshal(req)
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

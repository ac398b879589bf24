// Command feedbackload drives POST /v1/feedback on a running triage serve
// with many concurrent clients, for the feedback-throughput and crash
// figures of bench/serve. It is a benchmark tool, not part of triage.
//
// Load (default): route -ids requests first, then -clients clients post
// feedback for them (each client its own model name, so writes are new
// (request, model) pairs until they wrap) for -duration, and print
// acknowledged writes per second with latency percentiles. The posts go
// through rawClient, a minimal keep-alive HTTP/1.1 client (one
// connection per client, one POST at a time, the whole response read,
// only 2xx counted).
//
//	feedbackload -url http://127.0.0.1:18081 -clients 64 -duration 10s
//
// Crash (-acked FILE): every client alternates between feedback that
// carries its prompt (creating the record) and route-then-feedback, with
// ids unique to -round, and appends each 2xx-acknowledged (request id,
// model, score) to FILE. A client stops after repeated connection errors,
// which is what a killed server looks like.
//
// Verify (-verify FILE -export FILE): check that every acknowledged
// feedback in FILE is in an export (JSONL from /admin/feedback/export)
// with its score; print the lost count and exit 1 if any is lost, or if
// FILE holds none (a check of nothing).
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:18081", "base URL of triage serve")
	clients := flag.Int("clients", 64, "concurrent clients")
	duration := flag.Duration("duration", 10*time.Second, "how long to post")
	ids := flag.Int("ids", 2000, "requests to route before the load (load mode)")
	acked := flag.String("acked", "", "crash mode: append acknowledged feedback to this file")
	round := flag.Int("round", 0, "crash mode: round number, to keep ids unique across rounds")
	verify := flag.String("verify", "", "verify mode: acknowledged-feedback file")
	export := flag.String("export", "", "verify mode: export JSONL file")
	flag.Parse()
	var err error
	switch {
	case *verify != "":
		err = runVerify(*verify, *export)
	case *acked != "":
		err = runCrash(*url, *clients, *duration, *round, *acked)
	default:
		err = runLoad(*url, *clients, *duration, *ids)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "feedbackload:", err)
		os.Exit(1)
	}
}

func newClient(n int) *http.Client {
	tr := &http.Transport{
		MaxIdleConnsPerHost: n,
		MaxConnsPerHost:     n,
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// post sends body and returns the status, or 0 on a transport error.
func post(c *http.Client, url string, body []byte) (int, []byte) {
	resp, err := c.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, nil
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, b
}

func routeIDs(c *http.Client, url string, n, par int) ([]string, error) {
	out := make([]string, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				st, b := post(c, url+"/v1/route", []byte(fmt.Sprintf(`{"prompt":"question %d: what is %d + %d?"}`, i, i, i)))
				var r struct {
					RequestID string `json:"request_id"`
				}
				if st != 200 || json.Unmarshal(b, &r) != nil {
					failed.Add(1)
					continue
				}
				out[i] = r.RequestID
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		return nil, fmt.Errorf("%d of %d routes failed", f, n)
	}
	return out, nil
}

func runLoad(url string, clients int, d time.Duration, nIDs int) error {
	c := newClient(clients)
	ids, err := routeIDs(c, url, nIDs, clients)
	if err != nil {
		return err
	}
	addr := strings.TrimPrefix(url, "http://")
	if addr == url || strings.Contains(addr, "/") {
		return fmt.Errorf("load mode wants -url http://host:port, got %q", url)
	}
	var ok, bad, errs atomic.Int64
	lat := make([][]time.Duration, clients)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &rawClient{addr: addr}
			defer cl.close()
			model := fmt.Sprintf("model-%d", w)
			var body []byte
			for i := 0; ctx.Err() == nil; i++ {
				body = append(body[:0], `{"request_id":`...)
				body = strconv.AppendQuote(body, ids[(i*clients+w)%len(ids)])
				body = append(body, `,"model":`...)
				body = strconv.AppendQuote(body, model)
				body = append(body, `,"score":`...)
				body = strconv.AppendInt(body, int64(i%2), 10)
				body = append(body, `,"latency_ms":`...)
				body = strconv.AppendInt(body, int64(100+i%50), 10)
				body = append(body, '}')
				t := time.Now()
				st, err := cl.post("/v1/feedback", body)
				switch {
				case err != nil:
					errs.Add(1)
				case st >= 200 && st < 300:
					ok.Add(1)
					lat[w] = append(lat[w], time.Since(t))
				default:
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	pct := func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[int(p*float64(len(all)-1))]
	}
	fmt.Printf("clients %d, %s: %d acknowledged feedback writes (%.0f/s), %d non-2xx, %d transport errors; latency p50 %s p99 %s\n",
		clients, el.Round(time.Millisecond), ok.Load(), float64(ok.Load())/el.Seconds(), bad.Load(), errs.Load(),
		pct(0.5).Round(time.Microsecond), pct(0.99).Round(time.Microsecond))
	if bad.Load() > 0 {
		return fmt.Errorf("%d feedback posts got a non-2xx status", bad.Load())
	}
	if errs.Load() > 0 {
		// A reset or timed-out connection is not a slow write: the server
		// failed (or died) during the run, so the rate above is not one.
		return fmt.Errorf("%d feedback posts failed on the connection", errs.Load())
	}
	return nil
}

// rawClient is a minimal HTTP/1.1 client on one keep-alive connection:
// one POST, then its whole response (status line, headers, a
// Content-Length or chunked body), then the next POST. net/http's client
// costs this tool about as much CPU per request as the server spends
// answering it, and on a 2-core machine the load generator shares the
// cores with the server it measures; this one does the same exchange on
// the wire for a fraction of that.
type rawClient struct {
	addr string
	conn net.Conn
	r    *bufio.Reader
	req  []byte
}

func (c *rawClient) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// post sends body to path and returns the response status once the whole
// response has been read. On any error the connection is dropped, so the
// next call dials afresh.
func (c *rawClient) post(path string, body []byte) (int, error) {
	if c.conn == nil {
		conn, err := net.DialTimeout("tcp", c.addr, 2*time.Second)
		if err != nil {
			return 0, err
		}
		c.conn, c.r = conn, bufio.NewReaderSize(conn, 4096)
	}
	c.req = append(c.req[:0], "POST "...)
	c.req = append(c.req, path...)
	c.req = append(c.req, " HTTP/1.1\r\nHost: "...)
	c.req = append(c.req, c.addr...)
	c.req = append(c.req, "\r\nUser-Agent: feedbackload\r\nContent-Type: application/json\r\nContent-Length: "...)
	c.req = strconv.AppendInt(c.req, int64(len(body)), 10)
	c.req = append(c.req, "\r\n\r\n"...)
	c.req = append(c.req, body...)
	c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	st, keep, err := c.exchange()
	if err != nil || !keep {
		c.close()
	}
	return st, err
}

func (c *rawClient) exchange() (status int, keep bool, err error) {
	if _, err := c.conn.Write(c.req); err != nil {
		return 0, false, err
	}
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	length, chunked, keep := -1, false, true
	for {
		h, err := c.r.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		k, v, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return 0, false, fmt.Errorf("bad header line %q", h)
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(v)); err != nil || length < 0 {
				return 0, false, fmt.Errorf("bad Content-Length %q", v)
			}
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(v, []byte("chunked"))
		case bytes.EqualFold(k, []byte("Connection")):
			keep = !bytes.EqualFold(v, []byte("close"))
		}
	}
	switch {
	case chunked:
		for {
			l, err := c.r.ReadSlice('\n')
			if err != nil {
				return 0, false, err
			}
			n, err := strconv.ParseInt(string(bytes.TrimSpace(bytes.SplitN(l, []byte(";"), 2)[0])), 16, 64)
			if err != nil {
				return 0, false, fmt.Errorf("bad chunk size %q", l)
			}
			// The chunk and its CRLF; after the last (empty) chunk, the
			// CRLF that ends the (absent) trailers.
			if _, err := c.r.Discard(int(n) + 2); err != nil {
				return 0, false, err
			}
			if n == 0 {
				break
			}
		}
	case length >= 0:
		if _, err := c.r.Discard(length); err != nil {
			return 0, false, err
		}
	default:
		// Body until close: read it and drop the connection.
		_, err := io.Copy(io.Discard, c.r)
		return status, false, err
	}
	return status, keep, nil
}

func runCrash(url string, clients int, d time.Duration, round int, ackedPath string) error {
	f, err := os.OpenFile(ackedPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	var mu sync.Mutex
	w := bufio.NewWriter(f)
	c := newClient(clients)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var ok, bad atomic.Int64
	var wg sync.WaitGroup
	for cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fails := 0
			for i := 0; ctx.Err() == nil && fails < 20; i++ {
				id := fmt.Sprintf("crash-%d-%d-%d", round, cl, i)
				model := fmt.Sprintf("model-%d", i%3)
				score := float64((cl+i)%5) / 4
				var body []byte
				if i%2 == 0 {
					body = fmt.Appendf(nil, `{"request_id":%q,"model":%q,"score":%g,"prompt":"prompt of %s"}`, id, model, score, id)
				} else {
					// Route first (its decision goes through the queue),
					// then feedback without the prompt.
					st, _ := post(c, url+"/v1/route", fmt.Appendf(nil, `{"prompt":"prompt of %s","id":%q}`, id, id))
					if st != 200 {
						fails++
						continue
					}
					body = fmt.Appendf(nil, `{"request_id":%q,"model":%q,"score":%g}`, id, model, score)
				}
				st, _ := post(c, url+"/v1/feedback", body)
				switch st {
				case 200:
					fails = 0
					ok.Add(1)
					mu.Lock()
					fmt.Fprintf(w, "%s\t%s\t%g\n", id, model, score)
					mu.Unlock()
				case 0:
					fails++
				default:
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	fmt.Printf("round %d: %d feedback acknowledged, %d non-2xx\n", round, ok.Load(), bad.Load())
	return w.Flush()
}

func runVerify(ackedPath, exportPath string) error {
	type key struct{ id, model string }
	got := map[key]float64{}
	ef, err := os.Open(exportPath)
	if err != nil {
		return err
	}
	defer ef.Close()
	sc := bufio.NewScanner(ef)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	records := 0
	for sc.Scan() {
		var r struct {
			ID       string `json:"id"`
			Outcomes map[string]struct {
				Score *float64 `json:"score"`
			} `json:"outcomes"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return fmt.Errorf("export line %d: %w", records+1, err)
		}
		records++
		for m, o := range r.Outcomes {
			if o.Score != nil {
				got[key{r.ID, m}] = *o.Score
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	af, err := os.Open(ackedPath)
	if err != nil {
		return err
	}
	defer af.Close()
	acked, lost := 0, 0
	sc = bufio.NewScanner(af)
	for sc.Scan() {
		parts := strings.Split(sc.Text(), "\t")
		if len(parts) != 3 {
			return fmt.Errorf("bad acked line %q", sc.Text())
		}
		want, _ := strconv.ParseFloat(parts[2], 64)
		acked++
		if s, ok := got[key{parts[0], parts[1]}]; !ok || s != want {
			lost++
			if lost <= 5 {
				fmt.Printf("lost: %s %s score %v (export has %v, present %v)\n", parts[0], parts[1], want, s, ok)
			}
		}
	}
	fmt.Printf("acknowledged %d, exported records %d, lost %d\n", acked, records, lost)
	if acked == 0 {
		// Nothing to lose is not durability: the load never got a write
		// acknowledged (server down, every post refused).
		return fmt.Errorf("%s holds no acknowledged feedback, so nothing was checked", ackedPath)
	}
	if lost > 0 {
		return fmt.Errorf("%d acknowledged feedback writes are missing", lost)
	}
	return nil
}

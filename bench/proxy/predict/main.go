// Command predict checks that the proxy does what `triage curves`
// predicts: it replays a labelled log through the proxy (whose upstreams
// are `triage upstream-sim --reply placeholder`, so each answer names the
// recorded score of the model that gave it) and compares the observed
// quality and strong share with the curves.csv row of the same thresholds.
//
//	predict dedupe -data log.jsonl -o unique.jsonl
//	predict pick -curves curves.csv -kind fast-escalate -share 0.3
//	predict run -url URL -data unique.jsonl -curves curves.csv -thresholds "S E A" -strong MODEL
//
// dedupe keeps the first record of each prompt: a sim answers a prompt
// with its first record, so a log with repeated prompts would be replayed
// with other records' outcomes. pick prints the thresholds of the row of
// a kind whose strong share is nearest the target. run prints both
// figures and exits 1 when either differs by more than -tol points.
package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/triage-router/triage/datasets"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: predict dedupe|pick|run [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "dedupe":
		err = dedupe(os.Args[2:])
	case "pick":
		err = pick(os.Args[2:])
	case "run":
		err = runReplay(os.Args[2:])
	default:
		err = fmt.Errorf("unknown mode %q; want dedupe, pick or run", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "predict:", err)
		os.Exit(1)
	}
}

func dedupe(args []string) error {
	fs := flag.NewFlagSet("dedupe", flag.ExitOnError)
	data := fs.String("data", "", "labelled JSONL log")
	out := fs.String("o", "", "output JSONL")
	fs.Parse(args)
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	defer f.Close()
	w := datasets.NewWriter(f)
	seen := map[string]bool{}
	kept, dropped := 0, 0
	_, err = datasets.EachFile(*data, datasets.ReadOptions{}, func(r datasets.Record) error {
		if seen[r.Text()] {
			dropped++
			return nil
		}
		seen[r.Text()] = true
		kept++
		return w.Write(&r)
	})
	if err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "predict dedupe: kept %d records, dropped %d with a repeated prompt\n", kept, dropped)
	return nil
}

// row is one operating point of curves.csv.
type row map[string]string

func (r row) f(k string) float64 {
	v, _ := strconv.ParseFloat(r[k], 64)
	return v
}

func readCurves(path string) ([]row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(recs) < 2 {
		return nil, fmt.Errorf("%s has no rows", path)
	}
	var out []row
	for _, rec := range recs[1:] {
		r := row{}
		for i, h := range recs[0] {
			r[h] = rec[i]
		}
		out = append(out, r)
	}
	return out, nil
}

func pick(args []string) error {
	fs := flag.NewFlagSet("pick", flag.ExitOnError)
	curves := fs.String("curves", "", "curves.csv from triage curves")
	kind := fs.String("kind", "fast-escalate", "fast-escalate, speculate or combined")
	share := fs.Float64("share", 0.3, "target strong share")
	minSpec := fs.Float64("min-speculate", 0.15, "for speculating kinds: least speculate share")
	minAcc := fs.Float64("min-accepted", 0.05, "for speculating kinds: least accepted share")
	gateLo := fs.Float64("min-gate", 0.5, "for speculating kinds: least accept_confidence, so the gate rejects some fast answers")
	gateHi := fs.Float64("max-gate", 0.95, "for speculating kinds: largest accept_confidence")
	fs.Parse(args)
	rows, err := readCurves(*curves)
	if err != nil {
		return err
	}
	var best row
	bestD := math.Inf(1)
	for _, r := range rows {
		if r["kind"] != *kind {
			continue
		}
		if *kind != "fast-escalate" && (r.f("speculate_share") < *minSpec || r.f("accepted_share") < *minAcc ||
			r.f("accept_confidence") < *gateLo || r.f("accept_confidence") > *gateHi) {
			continue
		}
		if d := math.Abs(r.f("strong_share") - *share); d < bestD {
			best, bestD = r, d
		}
	}
	if best == nil {
		return fmt.Errorf("no %s row in %s fits", *kind, *curves)
	}
	b, _ := json.Marshal(best)
	fmt.Fprintf(os.Stderr, "predict pick: %s\n", b)
	fmt.Println(best["speculate_above"], best["escalate_above"], best["accept_confidence"])
	return nil
}

var placeholder = regexp.MustCompile(`^\[sim\] recorded score (\S+) for (.+) on (.+)$`)

type observed struct {
	n, errors                 int
	score, strong             float64
	fast, speculate, escalate int
	accepted                  int
	latMS                     []float64
}

func runReplay(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	target := fs.String("url", "", "proxy chat completions URL (loopback)")
	data := fs.String("data", "", "the labelled log the sims answer from (deduplicated)")
	curves := fs.String("curves", "", "curves.csv of the same router and log")
	thresholds := fs.String("thresholds", "", `"speculate_above escalate_above accept_confidence" the proxy runs with`)
	strong := fs.String("strong", "", "strong model name as in the log")
	clients := fs.Int("c", 16, "concurrent clients")
	scale := fs.Float64("latency-scale", 1, "the sims' --latency-scale, to put observed latency back on the log's scale")
	tol := fs.Float64("tol", 2, "largest allowed difference, in points (1 point = 0.01)")
	fs.Parse(args)
	u, err := url.Parse(*target)
	if err != nil || u.Host == "" {
		return fmt.Errorf("-url %q is not a URL", *target)
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-url host %s is not a loopback IP", u.Hostname())
	}
	th := strings.Fields(*thresholds)
	if len(th) != 3 {
		return fmt.Errorf("-thresholds %q, want three numbers", *thresholds)
	}
	rows, err := readCurves(*curves)
	if err != nil {
		return err
	}
	var pred row
	for _, r := range rows {
		if r["speculate_above"] == th[0] && r["escalate_above"] == th[1] && r["accept_confidence"] == th[2] {
			pred = r
			break
		}
	}
	if pred == nil {
		return fmt.Errorf("no row of %s has thresholds %s", *curves, *thresholds)
	}
	recs, _, err := datasets.ReadFile(*data, datasets.ReadOptions{})
	if err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *clients}, Timeout: 5 * time.Minute}
	var mu sync.Mutex
	obs := observed{}
	work := make(chan *datasets.Record)
	var wg sync.WaitGroup
	for range *clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				score, model, decision, ms, err := ask(client, *target, r)
				mu.Lock()
				obs.n++
				if err != nil {
					obs.errors++
					if obs.errors <= 3 {
						fmt.Fprintf(os.Stderr, "predict: %s: %v\n", r.ID, err)
					}
					mu.Unlock()
					continue
				}
				obs.score += score
				if model == *strong {
					obs.strong++
				}
				switch decision {
				case "fast":
					obs.fast++
				case "speculate":
					obs.speculate++
					if model != *strong {
						obs.accepted++
					}
				case "escalate":
					obs.escalate++
				}
				obs.latMS = append(obs.latMS, ms / *scale)
				mu.Unlock()
			}
		}()
	}
	start := time.Now()
	for i := range recs {
		work <- &recs[i]
	}
	close(work)
	wg.Wait()
	if obs.errors > 0 {
		return fmt.Errorf("%d of %d requests failed", obs.errors, obs.n)
	}
	n := float64(obs.n)
	slices.Sort(obs.latMS)
	var lsum float64
	for _, v := range obs.latMS {
		lsum += v
	}
	p95 := obs.latMS[max(0, int(math.Ceil(0.95*n))-1)]
	gotShare, gotQ := obs.strong/n, obs.score/n
	wantShare, wantQ := pred.f("strong_share"), pred.f("quality")
	dShare, dQ := 100*(gotShare-wantShare), 100*(gotQ-wantQ)
	fmt.Printf("thresholds speculate_above=%s escalate_above=%s accept_confidence=%s (%s); %d requests in %.1fs\n",
		th[0], th[1], th[2], pred["kind"], obs.n, time.Since(start).Seconds())
	fmt.Printf("  %-28s %12s %9s %9s %9s %9s %12s %12s\n", "", "strong_share", "quality", "fast", "speculate", "escalate", "accepted", "lat_mean_ms")
	fmt.Printf("  %-28s %12.4f %9.4f %9.4f %9.4f %9.4f %12.4f %12.1f\n", "predicted (triage curves)", wantShare, wantQ,
		pred.f("fast_share"), pred.f("speculate_share"), pred.f("escalate_share"), pred.f("accepted_share"), pred.f("latency_mean_ms"))
	fmt.Printf("  %-28s %12.4f %9.4f %9.4f %9.4f %9.4f %12.4f %12.1f\n", "observed (proxy + sims)", gotShare, gotQ,
		float64(obs.fast)/n, float64(obs.speculate)/n, float64(obs.escalate)/n, float64(obs.accepted)/n, lsum/n)
	fmt.Printf("  difference: strong share %+.2f points, quality %+.2f points (tolerance %.1f); observed latency p95 %.1f ms vs predicted %s (log scale)\n",
		dShare, dQ, *tol, p95, pred["latency_p95_ms"])
	if math.Abs(dShare) > *tol || math.Abs(dQ) > *tol {
		return errors.New("FAIL: the proxy differs from the prediction by more than the tolerance")
	}
	fmt.Println("  PASS")
	return nil
}

// ask sends one record and reads the placeholder answer.
func ask(client *http.Client, target string, r *datasets.Record) (score float64, model, decision string, ms float64, err error) {
	msgs := r.Messages
	if len(msgs) == 0 {
		msgs = []datasets.Message{{Role: "user", Content: r.Prompt}}
	}
	body, _ := json.Marshal(map[string]any{"model": "triage", "messages": msgs, "metadata": r.Meta})
	t0 := time.Now()
	resp, err := client.Post(target, "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, "", "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	ms = float64(time.Since(t0).Microseconds()) / 1000
	if err != nil {
		return 0, "", "", 0, err
	}
	if resp.StatusCode != 200 {
		return 0, "", "", 0, fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	var a struct {
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(b, &a); err != nil || len(a.Choices) == 0 {
		return 0, "", "", 0, fmt.Errorf("answer %s is not a chat completion", b)
	}
	m := placeholder.FindStringSubmatch(a.Choices[0].Message.Content)
	if m == nil {
		return 0, "", "", 0, fmt.Errorf("answer %q is not a sim placeholder; run the sims with --reply placeholder", a.Choices[0].Message.Content)
	}
	if m[3] != r.ID {
		return 0, "", "", 0, fmt.Errorf("the sim answered for record %s; deduplicate the log", m[3])
	}
	score, err = strconv.ParseFloat(m[1], 64)
	return score, m[2], resp.Header.Get("X-Triage-Decision"), ms, err
}

package report

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/triage-router/triage/classifier"
	"github.com/triage-router/triage/datasets/safefile"
	"github.com/triage-router/triage/internal/racetest"
	"github.com/triage-router/triage/models"
	"github.com/triage-router/triage/models/replay"
)

func TestAIQ(t *testing.T) {
	tests := []struct {
		name string
		pts  []Point
		want float64
	}{
		// Hull (0,.5) (1,.7) (2,.8), then flat to cost 3: areas 0.6 + 0.75
		// + 0.8 = 2.15 over a range of 3. (1,.55) is dominated and (3,.75)
		// lies after the best quality.
		{"a concave front with a flat tail", []Point{{0, 0.5}, {1, 0.7}, {2, 0.8}, {1, 0.55}, {3, 0.75}}, 2.15 / 3},
		// (1,.6) is under the chord from (0,.5) to (2,.9) (0.7 at 1), so
		// the hull is the chord: area 1.4 over 2.
		{"a point under the chord is mixed away", []Point{{0, 0.5}, {1, 0.6}, {2, 0.9}}, 0.7},
		{"a single cost is its best quality", []Point{{1, 0.5}, {1, 0.6}}, 0.6},
		{"NaNs are ignored", []Point{{0, 0.5}, {math.NaN(), 1}, {2, 0.9}}, 0.7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := AIQ(tc.pts); math.Abs(got-tc.want) > 1e-12 {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	if got := AIQ(nil); !math.IsNaN(got) {
		t.Errorf("no points: got %v, want NaN", got)
	}
}

func TestParetoFront(t *testing.T) {
	pts := []Point{{3, 0.9}, {1, 0.5}, {2, 0.4}, {2, 0.7}, {1, 0.45}, {4, 0.9}, {math.NaN(), 1}}
	// Lower x and higher y win: (1,.5) then (2,.7) then (3,.9); (4,.9)
	// is no better than (3,.9).
	want := []int{1, 3, 0}
	got := ParetoFront(pts)
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

func TestReliability(t *testing.T) {
	p := []float64{0.05, 0.15, 0.12, 1, 0.95, math.NaN()}
	y := []float64{0, 1, 0, 1, 0, 1}
	bins := Reliability(p, y, 10)
	tests := []struct {
		name  string
		bin   int
		n     int
		meanP float64
		rate  float64
	}{
		{"the first bin holds 0.05", 0, 1, 0.05, 0},
		{"the second bin averages 0.15 and 0.12", 1, 2, 0.135, 0.5},
		{"p = 1 falls in the last bin with 0.95", 9, 2, 0.975, 0.5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := bins[tc.bin]
			if b.N != tc.n || math.Abs(b.MeanP-tc.meanP) > 1e-12 || b.Rate != tc.rate {
				t.Errorf("got %+v, want n %d mean %v rate %v", b, tc.n, tc.meanP, tc.rate)
			}
		})
	}
	if b := bins[5]; b.N != 0 || !math.IsNaN(b.MeanP) {
		t.Errorf("an empty bin: got %+v", b)
	}
}

// tiedScores draws scores with many ties, and 0/1 tier scores.
func tiedScores(seed uint64, n int) (score, weak, strong []float64) {
	rng := rand.New(rand.NewPCG(seed, 3))
	score, weak, strong = make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range score {
		score[i] = math.Round(rng.Float64()*10) / 10
		weak[i] = float64(rng.IntN(2))
		if rng.Float64() < 0.3+0.5*score[i] {
			strong[i] = 1
		}
	}
	return score, weak, strong
}

func TestAPGRSortedEqualsClassifierAPGR(t *testing.T) {
	// The bootstrap's O(n) APGR must be the metric eval reports when every
	// request counts once.
	for _, seed := range []uint64{1, 2, 3} {
		score, weak, strong := tiedScores(seed, 500)
		gain, start, _ := sortedGains(score, weak, strong)
		w := make([]int32, len(score))
		for i := range w {
			w[i] = 1
		}
		got := apgrSorted(gain, start, w)
		want := classifier.APGR(score, weak, strong)
		if math.Abs(got-want) > 1e-12 {
			t.Errorf("seed %d: got %v, want classifier.APGR %v", seed, got, want)
		}
	}
}

func TestBootstrapAPGR(t *testing.T) {
	score, weak, strong := tiedScores(4, 2000)
	est := classifier.APGR(score, weak, strong)
	a := BootstrapAPGR(score, weak, strong, 300, 9)
	b := BootstrapAPGR(score, weak, strong, 300, 9)
	t.Run("it is reproducible for a seed", func(t *testing.T) {
		if a != b {
			t.Errorf("got %+v and %+v", a, b)
		}
	})
	t.Run("it brackets the estimate", func(t *testing.T) {
		if !(a.Lo < est && est < a.Hi) {
			t.Errorf("interval %+v does not hold APGR %v", a, est)
		}
	})
}

func TestBootstrapPoint(t *testing.T) {
	t.Run("identical requests give a zero-width interval", func(t *testing.T) {
		out := make([]replay.Replayed, 50)
		strong := make([]float64, 50)
		for i := range out {
			out[i] = replay.Replayed{KeptStrong: true, Score: 1, LatencyMS: 700, CostUSD: 0.002}
			strong[i] = 1
		}
		iv := BootstrapPoint(out, strong, 100, 1)
		// Every resample: share 1, quality 1, cost 1000*0.002 = 2, p95 700.
		for _, c := range []struct {
			name string
			iv   Interval
			want float64
		}{{"share", iv.StrongShare, 1}, {"quality", iv.Quality, 1}, {"relative", iv.RelQuality, 1}, {"cost", iv.CostPer1k, 2}, {"p95", iv.LatencyP95MS, 700}} {
			if math.Abs(c.iv.Lo-c.want) > 1e-12 || math.Abs(c.iv.Hi-c.want) > 1e-12 {
				t.Errorf("%s: got %+v, want [%v, %v]", c.name, c.iv, c.want, c.want)
			}
		}
	})
	t.Run("the one-pass p95 equals replay.Percentile of each resample", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(5, 5))
		out := make([]replay.Replayed, 300)
		strong := make([]float64, 300)
		for i := range out {
			out[i] = replay.Replayed{LatencyMS: math.Round(rng.ExpFloat64() * 100)} // ties on purpose
		}
		got := BootstrapPoint(out, strong, 100, 3)
		// The same resamples, done the slow way.
		rs := newResampler(len(out), 3)
		p95 := make([]float64, 100)
		for b := range p95 {
			var lat []float64
			for i, k := range rs.next() {
				for range k {
					lat = append(lat, out[i].LatencyMS)
				}
			}
			p95[b] = replay.Percentile(lat, 0.95)
		}
		if want := percentileInterval(p95); got.LatencyP95MS != want {
			t.Errorf("got %+v, want %+v", got.LatencyP95MS, want)
		}
	})
	t.Run("a half-strong log brackets one half", func(t *testing.T) {
		out := make([]replay.Replayed, 400)
		strong := make([]float64, 400)
		for i := range out {
			out[i] = replay.Replayed{KeptStrong: i%2 == 0, Score: float64(i % 2), LatencyMS: float64(i)}
			strong[i] = 1
		}
		iv := BootstrapPoint(out, strong, 200, 2)
		if !(iv.StrongShare.Lo < 0.5 && 0.5 < iv.StrongShare.Hi) || iv.StrongShare.Hi-iv.StrongShare.Lo > 0.15 {
			t.Errorf("got share interval %+v", iv.StrongShare)
		}
	})
}

func TestWriteCurvesCSV(t *testing.T) {
	pts := []replay.OperatingPoint{{
		Policy: models.Policy{SpeculateAbove: 0.1, EscalateAbove: 0.7, AcceptConfidence: 0.8}, Kind: replay.KindCombined,
		StrongShare: 0.25, Quality: 0.8, PGR: math.NaN(), CostPer1k: 1.5, LatencyMeanMS: 500, LatencyP50MS: 400, LatencyP95MS: 1200, LatencyP99MS: 2000,
		FastShare: 0.5, SpeculateShare: 0.3, EscalateShare: 0.2, AcceptedShare: 0.1,
	}}
	var b bytes.Buffer
	if err := WriteCurvesCSV(&b, pts, []int{0}, nil); err != nil {
		t.Fatal(err)
	}
	want := "speculate_above,escalate_above,accept_confidence,strong_share,quality,pgr,cost_per_1k,latency_mean_ms,latency_p50_ms,latency_p95_ms,latency_p99_ms,fast_share,speculate_share,escalate_share,accepted_share,kind,pareto_p95,pareto_cost\n" +
		"0.1,0.7,0.8,0.25,0.8,,1.5,500,400,1200,2000,0.5,0.3,0.2,0.1,combined,true,false\n"
	if got := b.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// testRun builds a run on a random log with confidence and per-request
// latency.
func testRun(t *testing.T, name, dir string, seed uint64) *Run {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 11))
	n := 600
	reqs := make([]replay.Request, n)
	p, y, fast, strong := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range reqs {
		ph := rng.Float64()
		f, s := 0.0, 0.0
		if rng.Float64() > ph {
			f = 1
		}
		if rng.Float64() < 0.9 {
			s = 1
		}
		conf := math.Min(1, math.Max(0, 1-ph+0.2*rng.NormFloat64()))
		reqs[i] = replay.Request{PHard: ph, FastScore: f, StrongScore: s, FastLatencyMS: 300 + 200*rng.Float64(), StrongLatencyMS: 900 + 900*rng.Float64(),
			FastCostUSD: 0.0002, StrongCostUSD: 0.004, Confidence: conf, HasConfidence: true}
		p[i], fast[i], strong[i] = ph, f, s
		if s > f {
			y[i] = 1
		}
	}
	rp, err := replay.NewReplayer(reqs, replay.BillProrata)
	if err != nil {
		t.Fatal(err)
	}
	a := &models.Artifact{Version: "test-" + name, Tiers: models.Tiers{Fast: "f", Strong: "s"}, Label: "strong-wins",
		Policy:                models.Policy{SpeculateAbove: 0.3, EscalateAbove: 0.7, AcceptConfidence: 0.6},
		ConfidenceCalibration: &classifier.Calibration{Method: "identity"}}
	return &Run{Name: name, Dir: dir, Artifact: a, Replayer: rp, Points: rp.Sweep(rp.QuantileGrid(20, 4), replay.SweepOptions{}),
		PHard: p, Label: y, Fast: fast, Strong: strong, Sources: []string{"latency: test"}}
}

func TestWriteReport(t *testing.T) {
	racetest.SkipSlow(t)
	dir := t.TempDir()
	page := &Page{Title: "test report", Data: []string{"x.jsonl"}, Billing: replay.BillProrata, Grid: "21 thresholds", Resamples: 50, Seed: 1}
	for i, name := range []string{"alpha", "beta"} {
		s, err := Analyze(testRun(t, name, name, uint64(i+1)), Options{Resamples: 50})
		if err != nil {
			t.Fatal(err)
		}
		page.Sections = append(page.Sections, s)
	}
	if err := Write(context.Background(), dir, page); err != nil {
		t.Fatal(err)
	}
	html, err := os.ReadFile(filepath.Join(dir, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("every image the page shows exists and decodes", func(t *testing.T) {
		srcs := regexp.MustCompile(`src="([^"]+)"`).FindAllStringSubmatch(string(html), -1)
		// 5 plots (with a confidence diagram) for each of 2 routers.
		if len(srcs) != 10 {
			t.Errorf("got %d images, want 10", len(srcs))
		}
		for _, m := range srcs {
			f, err := os.Open(filepath.Join(dir, m[1]))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := png.Decode(f); err != nil {
				t.Errorf("%s: %v", m[1], err)
			}
			f.Close()
			svg, err := os.ReadFile(filepath.Join(dir, strings.TrimSuffix(m[1], ".png")+".svg"))
			if err != nil || !bytes.Contains(svg, []byte("<svg")) {
				t.Errorf("%s: no SVG next to it (%v)", m[1], err)
			}
		}
	})
	t.Run("the speculation table names its units", func(t *testing.T) {
		// Its cost columns gave "$0.5935" under "cost, fast/escalate",
		// and nothing in that section said per how many requests (the
		// metric table above says per 1,000).
		for _, want := range []string{"<th>cost per 1k, fast/escalate</th>", "<th>cost per 1k, any policy</th>"} {
			if !bytes.Contains(html, []byte(want)) {
				t.Errorf("index.html lacks %q", want)
			}
		}
	})
	t.Run("the page needs nothing from the network", func(t *testing.T) {
		for _, bad := range []string{"http://", "https://", "<script", "@import", "<link"} {
			if bytes.Contains(html, []byte(bad)) {
				t.Errorf("index.html contains %q", bad)
			}
		}
	})
	t.Run("metrics.json holds eval's APGR and CPT", func(t *testing.T) {
		for _, s := range page.Sections {
			b, err := os.ReadFile(filepath.Join(dir, s.Dir, "metrics.json"))
			if err != nil {
				t.Fatal(err)
			}
			var m struct {
				APGR, CPT50 float64
				CI          [2]float64 `json:"apgr_ci95"`
				ConfECE     float64    `json:"confidence_ece"`
			}
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			run := testRun(t, s.Name, s.Dir, map[string]uint64{"alpha": 1, "beta": 2}[s.Name])
			want := models.Evaluate(run.PHard, run.Label, run.Fast, run.Strong)
			if m.APGR != want.APGR || m.CPT50 != want.CPT50 {
				t.Errorf("%s: got apgr %v cpt50 %v, want %v %v", s.Name, m.APGR, m.CPT50, want.APGR, want.CPT50)
			}
			if !(m.CI[0] <= m.APGR && m.APGR <= m.CI[1]) {
				t.Errorf("%s: interval %v does not hold %v", s.Name, m.CI, m.APGR)
			}
		}
	})
	t.Run("curves.csv has a row per operating point", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(dir, "alpha", "curves.csv"))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := bytes.Count(b, []byte("\n")), len(page.Sections[0].Points)+1; got != want {
			t.Errorf("got %d lines, want %d", got, want)
		}
	})
}

func TestSavingSaysHowMuchLower(t *testing.T) {
	saving := funcs["saving"].(func(fe, any *replay.OperatingPoint, p95 bool) string)
	fe := &replay.OperatingPoint{LatencyP95MS: 1000, CostPer1k: 2}
	for _, tt := range []struct {
		name string
		any  *replay.OperatingPoint
		p95  bool
		want string
	}{
		{"a lower p95 is a positive saving", &replay.OperatingPoint{LatencyP95MS: 940, CostPer1k: 2}, true, "6%"},
		{"a lower cost is a positive saving", &replay.OperatingPoint{LatencyP95MS: 1000, CostPer1k: 1.5}, false, "25%"},
		{"no lower figure saves nothing", &replay.OperatingPoint{LatencyP95MS: 1200, CostPer1k: 2}, true, "none"},
	} {
		if got := saving(fe, tt.any, tt.p95); got != tt.want {
			t.Errorf("%s: saving = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// A report is moved into place whole: a write that is interrupted (or
// fails) part-way left the folder half old report, half new.
func TestWriteReportWholeOrNotAtAll(t *testing.T) {
	racetest.SkipSlow(t)
	dir := t.TempDir()
	page := func(name string) *Page {
		p := &Page{Title: name, Data: []string{"x.jsonl"}, Billing: replay.BillProrata, Grid: "21 thresholds", Resamples: 20, Seed: 1}
		s, err := Analyze(testRun(t, name, "", 1), Options{Resamples: 20})
		if err != nil {
			t.Fatal(err)
		}
		p.Sections = []*Section{s}
		return p
	}
	if err := Write(context.Background(), dir, page("first")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644)
	before := readDir(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Write(ctx, dir, page("second")); !errors.Is(err, context.Canceled) {
		t.Fatalf("an interrupted write: %v, want context.Canceled", err)
	}
	if after := readDir(t, dir); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("after an interrupted write the folder holds %v, want the first report as it was, %v", after, before)
	}
	if err := Write(context.Background(), dir, page("second")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "index.html")); !strings.Contains(string(b), "second") {
		t.Error("index.html is not the second report's")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "notes.txt")); string(b) != "mine" {
		t.Error("a file of the user's in the folder was not kept")
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".report-new-*")); len(m) > 0 {
		t.Errorf("staging folders left: %v", m)
	}
}

// readDir maps every file under dir to its contents.
func readDir(tb testing.TB, dir string) map[string]string {
	tb.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(p)
			out[p] = string(b)
		}
		return err
	})
	return out
}

// The moves that put a report in place are renames into the report's
// folders, and a rename survives a crash only once its folder is synced:
// none was, so a report 'curves' said it wrote could be lost, or come
// back as the old one, after a power cut. Every folder of the new report
// is synced before it is swapped in, and every folder whose entries the
// swap changed, including a new report folder's parents, after.
func TestWriteReportSyncsItsFolders(t *testing.T) {
	racetest.SkipSlow(t)
	root := t.TempDir()
	dir := filepath.Join(root, "new", "report")
	var before, after []string
	syncDir = func(d string) error {
		if _, err := os.Stat(filepath.Join(dir, "index.html")); err != nil {
			before = append(before, d)
		} else {
			after = append(after, d)
		}
		return nil
	}
	defer func() { syncDir = safefile.SyncDir }()
	p := &Page{Title: "synced", Data: []string{"x.jsonl"}, Billing: replay.BillProrata, Grid: "21 thresholds", Resamples: 20, Seed: 1}
	s, err := Analyze(testRun(t, "alpha", "alpha", 1), Options{Resamples: 20})
	if err != nil {
		t.Fatal(err)
	}
	p.Sections = []*Section{s}
	if err := Write(context.Background(), dir, p); err != nil {
		t.Fatal(err)
	}
	// Before the swap: the stage beside dir and its section folder.
	if len(before) != 2 || filepath.Dir(before[0]) != filepath.Dir(dir) ||
		!strings.HasPrefix(filepath.Base(before[0]), sideStagePrefix(dir)) || before[1] != filepath.Join(before[0], "alpha") {
		t.Errorf("synced %v before the swap, want the new report's folder beside %s and its alpha", before, dir)
	}
	if want := []string{root, filepath.Join(root, "new")}; fmt.Sprint(after) != fmt.Sprint(want) {
		t.Errorf("synced %v after the swap, want %v", after, want)
	}
	// A failed sync is the command's error: the report may not last.
	syncDir = func(d string) error { return fmt.Errorf("sync directory %s: input/output error", d) }
	if err := Write(context.Background(), dir, p); err == nil || !strings.Contains(err.Error(), "input/output error") {
		t.Errorf("a failed folder sync: err = %v", err)
	}
}

// A report's files were moved into its folder one by one, index.html
// last: a reader between two moves (a browser, a CI job publishing the
// folder), or a crash there, found files of the old report and of the new
// one side by side. At every step of a write, the folder must hold one
// whole report, the old or the new, with the user's own file kept; and
// no old report is left behind once it is done.
func TestWriteStagedReadersSeeOneWholeReport(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "report")
	files := []string{"index.html", "curves.csv", filepath.Join("alpha", "metrics.json"), filepath.Join("alpha", "plot.svg")}
	fill := func(version string) func(string) error {
		return func(stage string) error {
			for _, f := range files {
				p := filepath.Join(stage, f)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					return err
				}
				if err := safefile.WriteFile(p, []byte(version)); err != nil {
					return err
				}
			}
			return nil
		}
	}
	// whole says which report dir holds, or what is wrong with it.
	whole := func() (string, error) {
		got := readDir(t, dir)
		version := got[filepath.Join(dir, "index.html")]
		for _, f := range files {
			if v, ok := got[filepath.Join(dir, f)]; !ok || v != version {
				return "", fmt.Errorf("a mixed report: %v", got)
			}
		}
		if got[filepath.Join(dir, "notes.txt")] != "mine" && version != "first" {
			return "", fmt.Errorf("the user's notes.txt is gone: %v", got)
		}
		return version, nil
	}
	if err := writeStaged(context.Background(), dir, fill("first")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	var seen []string
	publishStep = func(step string) {
		v, err := whole()
		if err != nil {
			t.Errorf("at step %q: %v", step, err)
		}
		seen = append(seen, v)
	}
	defer func() { publishStep = func(string) {} }()
	for _, version := range []string{"second", "third"} {
		if err := writeStaged(context.Background(), dir, fill(version)); err != nil {
			t.Fatal(err)
		}
		if v, err := whole(); err != nil || v != version {
			t.Errorf("after the write of the %s report: %q, %v", version, v, err)
		}
	}
	// Before and after each swap; each step saw the old or the new report.
	if want := []string{"first", "second", "second", "third"}; fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("the steps saw the reports %v, want %v", seen, want)
	}
	// Old versions do not pile up beside the folder.
	if entries, _ := os.ReadDir(root); len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("beside the report: %v, want only the report folder", names)
	}
}

// A run killed while it wrote (kill -9, the OOM killer) left its staging
// folder, a partial report, inside the report folder for good: 2 of 9
// killed curves runs on RouteLLM MMLU did. The next report into the
// folder removes such folders, and leaves a running report's alone; so
// too the folders beside it that a report is now staged in, which hold
// the old report once swapped (a run killed before it removed that).
func TestWriteStagedRemovesStaleStages(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "report")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	stageIn := func(in, name string) string {
		p := filepath.Join(in, name)
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p, "curves.csv"), []byte("half"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
		return p
	}
	stage := func(name string) string { return stageIn(dir, name) }
	dead := stage(stagePrefix + "123")
	live := stage(stagePrefix + "456")
	mine := stage(".report-new-notes") // not a name MkdirTemp makes
	deadBeside := stageIn(root, sideStagePrefix(dir)+"123")
	liveBeside := stageIn(root, sideStagePrefix(dir)+"456")
	for _, p := range []string{live, liveBeside} {
		d, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if err := safefile.TryLock(d); err != nil {
			t.Fatal(err)
		}
	}
	fill := func(stage string) error {
		return os.WriteFile(filepath.Join(stage, "index.html"), []byte("new"), 0o644)
	}
	if err := writeStaged(context.Background(), dir, fill); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dead, deadBeside} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the killed run's %s is still there (%v)", p, err)
		}
	}
	for _, p := range []string{live, mine, liveBeside} {
		if _, err := os.Stat(filepath.Join(p, "curves.csv")); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "index.html")); string(b) != "new" {
		t.Errorf("index.html holds %q", b)
	}
}

// A report folder that is a mount point (a container's volume) cannot be
// swapped with the new report beside it: the run failed after all its
// work with "device or resource busy". CheckFolder refuses it first.
func TestCheckFolderRefusesAMountPoint(t *testing.T) {
	const mnt = "/dev/shm" // a tmpfs on most Linux systems: only read here
	fi, err := os.Stat(mnt)
	if err != nil || !fi.IsDir() || !mountPoint(mnt) {
		t.Skipf("%s is not a mount point here", mnt)
	}
	err = CheckFolder(mnt)
	if !errors.Is(err, errMountPoint) {
		t.Fatalf("CheckFolder(%s) = %v, want the mount point refused", mnt, err)
	}
	if want := filepath.Join(mnt, "report"); !strings.Contains(err.Error(), want) {
		t.Errorf("the error %q does not suggest %s", err, want)
	}
	if err := CheckFolder(t.TempDir()); err != nil {
		t.Errorf("CheckFolder of a plain folder: %v", err)
	}
}

// A filesystem mounted on a folder inside the report folder went with
// the old folder in the swap, and removing the old report emptied it
// (its files were copied, not kept, into the new one). The report is
// refused instead, before the work and at the swap, and nothing changes.
func TestWriteStagedRefusesAMountInsideTheFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "report")
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	keep := filepath.Join(data, "keep.txt")
	if err := os.WriteFile(keep, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	defer func(f func(string) bool) { isMountPoint = f }(isMountPoint)
	isMountPoint = func(p string) bool { return filepath.Base(p) == "data" }

	if err := CheckFolder(dir); err == nil || !strings.Contains(err.Error(), data) {
		t.Errorf("CheckFolder = %v, want the mount point %s refused", err, data)
	}
	fill := func(stage string) error {
		return os.WriteFile(filepath.Join(stage, "index.html"), []byte("new"), 0o644)
	}
	if err := writeStaged(context.Background(), dir, fill); err == nil || !strings.Contains(err.Error(), data) {
		t.Errorf("writeStaged = %v, want the mount point %s refused", err, data)
	}
	if b, err := os.ReadFile(keep); string(b) != "precious" {
		t.Errorf("%s holds %q (%v), want it kept", keep, b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "index.html")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the report was replaced (%v)", err)
	}
	// The same refusal where a mount appears after the check: carry's.
	if err := carry(dir, t.TempDir()); err == nil || !strings.Contains(err.Error(), data) {
		t.Errorf("carry = %v, want the mount point %s refused", err, data)
	}
}

// A read-only report folder (0555) is replaced like any other: the swap
// needs only its parent writable. The new folder took its mode before the
// report was written into it, so the run failed after all its work with
// "permission denied" on a hidden stage folder (the build before the swap
// refused such a folder up front); and a read-only folder that an
// unprivileged run swapped out could not be emptied, so old reports
// piled up beside it.
func TestWriteStagedReplacesAReadOnlyFolder(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "report")
	keep := filepath.Join(dir, "keep")
	if err := os.MkdirAll(keep, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{filepath.Join(dir, "notes.txt"), filepath.Join(keep, "data.csv")} {
		if err := os.WriteFile(f, []byte("mine"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{keep, dir} {
		if err := os.Chmod(d, 0o555); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { os.Chmod(dir, 0o755); os.Chmod(keep, 0o755) })
	fill := func(stage string) error {
		if fi, err := os.Stat(stage); err != nil || fi.Mode().Perm()&0o700 != 0o700 {
			return fmt.Errorf("the report is written into %s, mode %v (%v): its owner cannot write it", stage, fi.Mode(), err)
		}
		return os.WriteFile(filepath.Join(stage, "index.html"), []byte("new"), 0o644)
	}
	if err := writeStaged(context.Background(), dir, fill); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "index.html")); string(b) != "new" {
		t.Errorf("index.html holds %q (%v)", b, err)
	}
	for _, f := range []string{filepath.Join(dir, "notes.txt"), filepath.Join(keep, "data.csv")} {
		if b, err := os.ReadFile(f); string(b) != "mine" {
			t.Errorf("%s holds %q (%v), want it kept", f, b, err)
		}
	}
	for _, d := range []string{dir, keep} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o555 {
			t.Errorf("%s: mode %v (%v), want 0555 as before", d, fi.Mode(), err)
		}
	}
	if es, _ := os.ReadDir(root); len(es) != 1 {
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		t.Errorf("beside the report folder: %v, want only it", names)
	}
}

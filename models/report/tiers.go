package report

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"html/template"
	"image/color"
	"math"
	"path/filepath"
	"slices"
	"strconv"

	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/triage-router/triage/datasets/safefile"
	"github.com/triage-router/triage/models"
	"github.com/triage-router/triage/models/replay"
)

// TierRun is one N-tier router's λ sweep over a log, for WriteTiers.
type TierRun struct {
	// Name labels the router (its file name).
	Name  string
	Tiers []models.Tier
	Curve replay.TierCurve
	// CostUnit names the cost axis ("price units per request", "USD per
	// request").
	CostUnit string
	// NoLatency says the log has no latency (nor --latency defaults):
	// the latency columns are left empty, a figure the data cannot give,
	// not the 0 ms the replay sums to.
	NoLatency bool
	// Current is the replay at the artifact's own policy.
	Current replay.TierPoint
	// InSample counts the requests replayed that the router was trained
	// on (0 for figures on new traffic, or with --unseen).
	InSample int
	// Notes are what a reader of the figures must know about the
	// requests they rest on: that the router was trained on some of
	// them, or that --unseen left those out.
	Notes []string
}

// tierMetrics is one router's entry of tiers_metrics.json: the figures
// curves prints (AIQ, the oracle, each single tier, the current policy)
// at full precision, for scripts, as metrics.json is for two tiers.
// Quality is on [0,1] and cost per request, as in tiers_curves.csv; a
// figure the data cannot give is null.
type tierMetrics struct {
	Router   string `json:"router"`
	Requests int    `json:"requests"`
	InSample int    `json:"in_sample"`
	// QualityUnit names the scale of quality, oracle and AIQ here
	// ([0,1]), which train --json and eval --json give on 0-100.
	QualityUnit string            `json:"quality_unit"`
	CostUnit    string            `json:"cost_unit"`
	Tiers       []models.Tier     `json:"tiers"`
	CostLo      jnum              `json:"cost_lo"`
	CostHi      jnum              `json:"cost_hi"`
	AIQ         jnum              `json:"aiq"`
	HullAIQ     jnum              `json:"hull_aiq"`
	Oracle      tierMetricsPoint  `json:"oracle"`
	Singles     []tierMetricsTier `json:"singles"`
	Policy      models.TierPolicy `json:"policy"`
	Current     tierMetricsPoint  `json:"current"`
	Points      int               `json:"operating_points"`
	Notes       []string          `json:"notes,omitempty"`
}

type tierMetricsPoint struct {
	Quality       float64            `json:"quality"`
	Cost          float64            `json:"cost"`
	LatencyMeanMS *jnum              `json:"latency_mean_ms,omitempty"`
	LatencyP95MS  *jnum              `json:"latency_p95_ms,omitempty"`
	Shares        map[string]float64 `json:"shares,omitempty"`
	RaceShare     *jnum              `json:"race_share,omitempty"`
	AcceptedShare *jnum              `json:"accepted_share,omitempty"`
}

type tierMetricsTier struct {
	Tier    string  `json:"tier"`
	Quality float64 `json:"quality"`
	Cost    float64 `json:"cost"`
}

// TiersMetrics is the content of tiers_metrics.json, one entry per
// router, for curves --json to print what the report holds.
func TiersMetrics(runs []TierRun) any {
	ms := make([]tierMetrics, len(runs))
	for i := range runs {
		ms[i] = runs[i].metrics()
	}
	return ms
}

// metrics is r's tiers_metrics.json entry.
func (r *TierRun) metrics() tierMetrics {
	c, cur := &r.Curve, &r.Current
	m := tierMetrics{Router: r.Name, Requests: cur.N, InSample: r.InSample, QualityUnit: "mean score on 0-1", CostUnit: r.CostUnit, Tiers: r.Tiers,
		CostLo: jnum(c.Lo), CostHi: jnum(c.Hi), AIQ: jnum(c.AIQ), HullAIQ: jnum(c.HullAIQ),
		Oracle: tierMetricsPoint{Quality: c.Oracle.Quality, Cost: c.Oracle.Cost}, Policy: cur.Policy, Points: len(c.Points), Notes: r.Notes,
		Current: tierMetricsPoint{Quality: cur.Quality, Cost: cur.CostPer1k / 1000, Shares: map[string]float64{},
			RaceShare: jptr(&cur.RaceShare), AcceptedShare: jptr(&cur.AcceptedShare)}}
	if !r.NoLatency {
		m.Current.LatencyMeanMS, m.Current.LatencyP95MS = jptr(&cur.LatencyMeanMS), jptr(&cur.LatencyP95MS)
	}
	for k, t := range r.Tiers {
		if k < len(cur.Shares) {
			m.Current.Shares[t.Name] = cur.Shares[k]
		}
		if k < len(c.Singles) {
			m.Singles = append(m.Singles, tierMetricsTier{Tier: t.Name, Quality: c.Singles[k].Quality, Cost: c.Singles[k].Cost})
		}
	}
	return m
}

// TierCurvesColumns are the first columns of tiers_curves.csv, in order;
// one share:<tier> column per tier follows.
var TierCurvesColumns = []string{"router", "lambda", "margin", "race", "quality", "cost", "latency_mean_ms", "latency_p95_ms", "race_share", "accepted_share", "pareto"}

// WriteTiers writes, into dir, tiers_curves.csv (one row per operating
// point of every router), tiers_reference.csv (every single tier, the
// oracle and the convex hull of single tiers, per router),
// tiers_metrics.json (per router: AIQ, the oracle, the single tiers and
// the current policy's figures, at full precision), the plots
// quality_vs_cost and tier_shares (.svg and .png) and index.html. Like
// Write, it writes them into a new folder and swaps that with dir whole
// (writeStaged), so a reader, a failure, an interruption (ctx) or a crash
// sees the old report or the new one, never a mix.
func WriteTiers(ctx context.Context, dir string, runs []TierRun, data []string) error {
	if len(runs) == 0 {
		return fmt.Errorf("report: nothing to write")
	}
	return writeStaged(ctx, dir, func(stage string) error { return writeTierFiles(stage, runs, data) })
}

// knob formats a policy's λ, margin or race for tiers_curves.csv exactly,
// as encoding/json writes it: calibrate --json and the artifact give the
// policy they chose that way, and a user looks for it among the rows (to
// 8 significant figures it matched only approximately). The figures a
// policy gives keep 8, as they are measured, not chosen.
func knob(x float64) string {
	b, err := json.Marshal(x)
	if err != nil {
		return "" // NaN or ±Inf, which no policy holds: left empty, as f leaves NaN
	}
	return string(b)
}

// writeTierFiles writes WriteTiers' files into dir.
func writeTierFiles(dir string, runs []TierRun, data []string) error {
	var names []string
	for _, r := range runs {
		for _, t := range r.Tiers {
			if !slices.Contains(names, t.Name) {
				names = append(names, t.Name)
			}
		}
	}
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	head := slices.Clone(TierCurvesColumns)
	for _, n := range names {
		head = append(head, "share:"+n)
	}
	w.Write(head)
	f := func(x float64) string {
		if math.IsNaN(x) {
			return ""
		}
		return strconv.FormatFloat(x, 'g', 8, 64)
	}
	for _, r := range runs {
		for i, p := range r.Curve.Points {
			mean, p95 := p.LatencyMeanMS, p.LatencyP95MS
			if r.NoLatency {
				mean, p95 = math.NaN(), math.NaN()
			}
			row := []string{r.Name, knob(p.Policy.Lambda), knob(p.Policy.Margin), knob(p.Policy.Race), f(p.Quality), f(p.CostPer1k / 1000),
				f(mean), f(p95), f(p.RaceShare), f(p.AcceptedShare), strconv.FormatBool(r.Curve.Pareto[i])}
			for _, n := range names {
				k := slices.IndexFunc(r.Tiers, func(t models.Tier) bool { return t.Name == n })
				if k < 0 {
					row = append(row, "")
				} else {
					row = append(row, f(p.Shares[k]))
				}
			}
			w.Write(row)
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("tiers_curves.csv: %w", err)
	}
	if err := safefile.WriteFile(filepath.Join(dir, "tiers_curves.csv"), b.Bytes()); err != nil {
		return err
	}
	b.Reset()
	w = csv.NewWriter(&b)
	w.Write([]string{"router", "kind", "name", "cost", "quality"})
	for _, r := range runs {
		c := &r.Curve
		for k, s := range c.Singles {
			w.Write([]string{r.Name, "single", r.Tiers[k].Name, f(s.Cost), f(s.Quality)})
		}
		w.Write([]string{r.Name, "oracle", "oracle", f(c.Oracle.Cost), f(c.Oracle.Quality)})
		for _, h := range replay.UpperHull(c.Singles) {
			w.Write([]string{r.Name, "hull", "convex hull of single tiers", f(h.Cost), f(h.Quality)})
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("tiers_reference.csv: %w", err)
	}
	if err := safefile.WriteFile(filepath.Join(dir, "tiers_reference.csv"), b.Bytes()); err != nil {
		return err
	}
	mj, err := json.MarshalIndent(TiersMetrics(runs), "", "  ")
	if err != nil {
		return fmt.Errorf("encode tiers_metrics.json: %w", err)
	}
	if err := safefile.WriteFile(filepath.Join(dir, "tiers_metrics.json"), append(mj, '\n')); err != nil {
		return err
	}
	if err := qualityCostFigure(runs).write(dir, "quality_vs_cost"); err != nil {
		return err
	}
	if err := sharesFigure(runs[0]).write(dir, "tier_shares"); err != nil {
		return err
	}
	b.Reset()
	if err := tiersPage.Execute(&b, struct {
		Runs []TierRun
		Data []string
	}{runs, data}); err != nil {
		return fmt.Errorf("index.html: %w", err)
	}
	return safefile.WriteFile(filepath.Join(dir, "index.html"), b.Bytes())
}

var runColours = []color.NRGBA{colBlue, colGreen, colPurple, colOrange, colRed}

// qualityCostFigure draws every router's Pareto front over the λ sweep,
// the first router's single tiers, oracle and hull of single tiers.
// Quality is on 0-100, as the page's tables and every printed N-tier
// figure give it: on [0,1] the axis read 0.425-0.625 under a page that
// says quality is 0-100 beside tables of 46.16 and 49.83.
func qualityCostFigure(runs []TierRun) *figure {
	fig := newFigure("Quality against cost as λ sweeps", "mean cost per request ("+runs[0].CostUnit+")", "quality (mean score of kept answers, 0-100)")
	for i, r := range runs {
		var xs, ys []float64
		for j, p := range r.Curve.Points {
			if r.Curve.Pareto[j] {
				xs, ys = append(xs, p.CostPer1k/1000), append(ys, 100*p.Quality)
			}
		}
		idx := make([]int, len(xs))
		for j := range idx {
			idx[j] = j
		}
		slices.SortFunc(idx, func(a, b int) int { return cmpFloat(xs[a], xs[b]) })
		sx, sy := make([]float64, len(xs)), make([]float64, len(xs))
		for j, k := range idx {
			sx[j], sy[j] = xs[k], ys[k]
		}
		col := runColours[i%len(runColours)]
		fig.line(r.Name+" (Pareto front)", sx, sy, col, 2, nil, plotter.NoStep)
	}
	c := runs[0].Curve
	var hx, hy []float64
	for _, h := range replay.UpperHull(c.Singles) {
		hx, hy = append(hx, h.Cost), append(hy, 100*h.Quality)
	}
	fig.line("convex hull of single tiers", hx, hy, colGray, 1.2, []vg.Length{4, 3}, plotter.NoStep)
	var sx, sy []float64
	for _, s := range c.Singles {
		sx, sy = append(sx, s.Cost), append(sy, 100*s.Quality)
	}
	fig.points("single tiers", sx, sy, colBlack, draw.CircleGlyph{}, 3)
	fig.points("oracle", []float64{c.Oracle.Cost}, []float64{100 * c.Oracle.Quality}, colRed, draw.PyramidGlyph{}, 4)
	// Each router's own policy, as the two-tier plots mark the current
	// thresholds: without it the page showed a sweep and no way to tell
	// where on it the artifact being judged sits.
	for i, r := range runs {
		if r.Current.N == 0 {
			continue
		}
		label := "current policy"
		if len(runs) > 1 {
			label += " (" + r.Name + ")"
		}
		fig.points(label, []float64{r.Current.CostPer1k / 1000}, []float64{100 * r.Current.Quality}, runColours[i%len(runColours)], draw.BoxGlyph{}, 4)
	}
	return fig
}

// sharesFigure draws each tier's share of kept answers against cost.
func sharesFigure(r TierRun) *figure {
	fig := newFigure("Each tier's share as λ sweeps ("+r.Name+")", "mean cost per request ("+r.CostUnit+")", "share of requests")
	pts := slices.Clone(r.Curve.Points)
	slices.SortStableFunc(pts, func(a, b replay.TierPoint) int { return cmpFloat(a.CostPer1k, b.CostPer1k) })
	cols := []color.NRGBA{colBlue, colOrange, colGreen, colRed, colPurple, colGray, colBlack}
	for k, t := range r.Tiers {
		var xs, ys []float64
		for _, p := range pts {
			xs, ys = append(xs, p.CostPer1k/1000), append(ys, p.Shares[k])
		}
		var dashes []vg.Length
		if k >= len(cols) {
			dashes = []vg.Length{3, 2}
		}
		fig.line(t.Name, xs, ys, cols[k%len(cols)], 1.5, dashes, plotter.NoStep)
	}
	return fig
}

// The page's numbers show an undefined figure (NaN: AIQ when every tier
// costs the same, as unpriced tiers do) as "–", as the two-tier page
// does, not as "NaN".
var tiersPage = template.Must(template.New("tiers").Funcs(template.FuncMap{
	"pct": func(x float64) string { return num("%.2f", 100*x) },
	"num": func(x float64) string { return num("%.5g", x) },
	// perReq is a TierPoint's cost per request (it holds it per 1,000).
	"perReq": func(x float64) string { return num("%.5g", x/1000) },
	"share":  func(xs []float64, k int) string { return num("%.1f%%", 100*xs[k]) },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Triage: N-tier quality and cost</title>
<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}td,th{padding:.2em .6em;border-bottom:1px solid #ccc;text-align:right}td:first-child,th:first-child{text-align:left}</style>
</head><body>
<h1>N-tier routers: quality against cost as λ sweeps</h1>
<p>Log: {{range $i, $d := .Data}}{{if $i}}, {{end}}{{$d}}{{end}}. Quality is the mean score of the kept answers (0-100); cost the mean cost per request.
AIQ is the mean, over the single tiers' cost range, of the quality the upper convex hull of each curve delivers
(0 below a curve's cheapest point); the hull of single tiers is what mixing models at random, without a router, reaches.</p>
<table><tr><th>router</th><th>AIQ</th><th>AIQ of the hull of single tiers</th><th>oracle</th><th>cost range</th></tr>
{{range .Runs}}<tr><td>{{.Name}}</td><td>{{pct .Curve.AIQ}}</td><td>{{pct .Curve.HullAIQ}}</td><td>{{pct .Curve.Oracle.Quality}}</td><td>{{num .Curve.Lo}} to {{num .Curve.Hi}}</td></tr>
{{end}}</table>
{{range .Runs}}<h2>{{.Name}}: single tiers</h2>{{range .Notes}}<p><strong>{{.}}</strong></p>{{end}}<table><tr><th>tier</th><th>price</th><th>mean cost</th><th>quality</th></tr>
{{$r := .}}{{range $k, $t := .Tiers}}<tr><td>{{$t.Name}}</td><td>{{num $t.Price}}</td><td>{{num (index $r.Curve.Singles $k).Cost}}</td><td>{{pct (index $r.Curve.Singles $k).Quality}}</td></tr>
{{end}}</table>
{{with .Current}}{{if .N}}<p>Current policy (λ {{num .Policy.Lambda}}, margin {{num .Policy.Margin}}, race {{num .Policy.Race}}): quality {{pct .Quality}}, mean cost {{perReq .CostPer1k}};
{{$c := .}}{{range $k, $t := $r.Tiers}}{{if $k}}, {{end}}{{$t.Name}} {{share $c.Shares $k}}{{end}}.</p>
{{end}}{{end}}{{end}}
<p><img src="quality_vs_cost.svg" alt="quality against cost for each router's Pareto front over the λ sweep, the single tiers, the oracle and the convex hull of single tiers"></p>
<p><img src="tier_shares.svg" alt="each tier's share of requests against cost as λ sweeps"></p>
<p>Data: <a href="tiers_curves.csv">tiers_curves.csv</a> (one row per operating point), <a href="tiers_reference.csv">tiers_reference.csv</a> (reference points), <a href="tiers_metrics.json">tiers_metrics.json</a> (AIQ, oracle, single tiers and the current policy per router); their quality is on 0-1, as <code>quality_unit</code> says.</p>
</body></html>
`))

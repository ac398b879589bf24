package report

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/triage-router/triage/datasets/safefile"
	"github.com/triage-router/triage/models"
	"github.com/triage-router/triage/models/replay"
)

// Page is the report: one or more sections side by side.
type Page struct {
	// Title heads the page.
	Title string
	// Data are the log files replayed.
	Data []string
	// Billing is how cancelled calls were charged.
	Billing replay.CancelBilling
	// Grid describes the threshold grid, for a person.
	Grid string
	// Resamples and Seed of the bootstrap.
	Resamples int
	Seed      uint64
	// Generated stamps the page; zero omits it (for golden tests).
	Generated time.Time
	Sections  []*Section
}

// Write writes, for every section, curves.csv, metrics.json and the plots into
// dir/Section.Dir, then dir/index.html.
//
// The report is written into a new folder beside dir and swapped with dir
// in one step once it is whole (see writeStaged): a reader, a failure
// part-way (a full disk), an interruption (ctx) or a crash at any point
// sees dir's old report or the new one, never half of each. Other files
// in dir stay.
func Write(ctx context.Context, dir string, page *Page) error {
	if len(page.Sections) == 0 {
		return fmt.Errorf("report: nothing to write")
	}
	return writeStaged(ctx, dir, func(stage string) error { return writeFiles(stage, page) })
}

// writeFiles writes the report's files into dir.
func writeFiles(dir string, page *Page) error {
	for _, s := range page.Sections {
		sd := filepath.Join(dir, filepath.FromSlash(s.Dir))
		if err := os.MkdirAll(sd, 0o755); err != nil {
			return fmt.Errorf("create report folder: %w", err)
		}
		if err := writeCSVFile(filepath.Join(sd, "curves.csv"), s); err != nil {
			return err
		}
		mj, err := json.MarshalIndent(s.Metrics(), "", "  ")
		if err != nil {
			return fmt.Errorf("encode metrics.json: %w", err)
		}
		if err := safefile.WriteFile(filepath.Join(sd, "metrics.json"), append(mj, '\n')); err != nil {
			return err
		}
		figs, err := plotFigures(sd, s)
		if err != nil {
			return err
		}
		s.Figures = figs
	}
	var b bytes.Buffer
	if err := WriteHTML(&b, page); err != nil {
		return err
	}
	return safefile.WriteFile(filepath.Join(dir, "index.html"), b.Bytes())
}

func writeCSVFile(path string, s *Section) error {
	f, err := safefile.Create(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	if err := WriteCurvesCSV(f, s.Points, s.FrontP95, s.FrontCost); err != nil {
		return fmt.Errorf("write curves.csv: %w", err)
	}
	return f.Commit()
}

// WriteHTML renders the page. Images are referenced by relative path, and
// the page carries its own style: it needs no network and no script.
func WriteHTML(w *bytes.Buffer, page *Page) error {
	if err := pageTmpl.Execute(w, page); err != nil {
		return fmt.Errorf("render index.html: %w", err)
	}
	return nil
}

// figureRow is one kind of figure across the sections.
type figureRow struct {
	Title string
	Cells []figureCell
}

type figureCell struct {
	Section string
	PNG     string
	SVG     string
	Alt     string
	Missing string
}

func (p *Page) FigureRows() []figureRow {
	var order []string
	titles := map[string]string{}
	for _, s := range p.Sections {
		for _, f := range s.Figures {
			if _, ok := titles[f.Base]; !ok {
				order = append(order, f.Base)
				titles[f.Base] = f.Title
			}
		}
	}
	rows := make([]figureRow, 0, len(order))
	for _, base := range order {
		r := figureRow{Title: titles[base]}
		for _, s := range p.Sections {
			c := figureCell{Section: s.Name, Missing: "not available: the log has no fast-tier confidence"}
			for _, f := range s.Figures {
				if f.Base == base && f.Missing != "" {
					c = figureCell{Section: s.Name, Missing: f.Missing}
				} else if f.Base == base {
					c = figureCell{Section: s.Name, PNG: path.Join(s.Dir, f.Base+".png"), SVG: path.Join(s.Dir, f.Base+".svg"), Alt: f.Alt}
				}
			}
			r.Cells = append(r.Cells, c)
		}
		rows = append(rows, r)
	}
	return rows
}

// Columns is the CSS column count for the figures.
func (p *Page) Columns() int {
	if len(p.Sections) == 1 {
		return 2
	}
	return len(p.Sections)
}

func num(format string, x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return "–"
	}
	return fmt.Sprintf(format, x)
}

var funcs = template.FuncMap{
	"f3":  func(x float64) string { return num("%.3f", x) },
	"f4":  func(x float64) string { return num("%.4f", x) },
	"pct": func(x float64) string { return num("%.1f%%", 100*x) },
	"ms":  func(x float64) string { return num("%.0f ms", x) },
	"usd": func(x float64) string { return num("$%.4g", x) },
	"pf3": func(x *float64) string {
		if x == nil {
			return "–"
		}
		return num("%.3f", *x)
	},
	"ci3": func(iv Interval) string {
		if !iv.Valid() {
			return ""
		}
		return fmt.Sprintf("[%.3f, %.3f]", iv.Lo, iv.Hi)
	},
	"ci4": func(iv Interval) string {
		if !iv.Valid() {
			return ""
		}
		return fmt.Sprintf("[%.4f, %.4f]", iv.Lo, iv.Hi)
	},
	"cims": func(iv Interval) string {
		if !iv.Valid() {
			return ""
		}
		return fmt.Sprintf("[%.0f, %.0f]", iv.Lo, iv.Hi)
	},
	"ciusd": func(iv Interval) string {
		if !iv.Valid() {
			return ""
		}
		return fmt.Sprintf("[$%.4g, $%.4g]", iv.Lo, iv.Hi)
	},
	"rel": func(q, r float64) string { return num("%.3f", q/r) },
	// billing says in words how cancelled calls were charged.
	"billing": func(b replay.CancelBilling) string {
		if b == replay.BillFull {
			return "in full"
		}
		return "pro rata (for the part of the call that ran)"
	},
	"policy": func(p models.Policy) string {
		return fmt.Sprintf("%.4g / %.4g / %.3g", p.SpeculateAbove, p.EscalateAbove, p.AcceptConfidence)
	},
	"pointP95": func(op *replay.OperatingPoint) string {
		if op == nil {
			return "not reached"
		}
		return num("%.0f ms", op.LatencyP95MS)
	},
	"pointCost": func(op *replay.OperatingPoint) string {
		if op == nil {
			return "not reached"
		}
		return num("$%.4g", op.CostPer1k)
	},
	"pointPolicy": func(op *replay.OperatingPoint) string {
		if op == nil {
			return ""
		}
		return fmt.Sprintf("%s: %.4g / %.4g / %.3g", op.Kind, op.Policy.SpeculateAbove, op.Policy.EscalateAbove, op.Policy.AcceptConfidence)
	},
	"saving": func(fe, any *replay.OperatingPoint, p95 bool) string {
		if fe == nil || any == nil {
			return ""
		}
		a, b := fe.CostPer1k, any.CostPer1k
		if p95 {
			a, b = fe.LatencyP95MS, any.LatencyP95MS
		}
		if !(a > 0) || b >= a {
			return "none"
		}
		// The column says "saved": a positive share of the
		// fast/escalate figure, so the sign and the word agree.
		return fmt.Sprintf("%.0f%%", 100*(a-b)/a)
	},
	"stamp": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
}

var pageTmpl = template.Must(template.New("index").Funcs(funcs).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Liberation Sans", Arial, sans-serif; margin: 24px; color: #1a1a1a; max-width: 1600px; }
h1 { font-size: 1.5em; margin: 0 0 .3em; }
h2 { font-size: 1.2em; margin: 1.6em 0 .5em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
h3 { font-size: 1em; margin: 1em 0 .4em; }
p.meta, ul.meta { color: #444; font-size: .9em; margin: .2em 0; }
ul.meta { padding-left: 1.2em; }
table { border-collapse: collapse; font-size: .9em; margin: .4em 0 1em; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
span.ci { color: #666; font-size: .85em; margin-left: .4em; }
tr.current td { background: #fff4ec; }
.figs { display: grid; grid-template-columns: repeat({{.Columns}}, minmax(0, 1fr)); gap: 16px; }
figure { margin: 0; border: 1px solid #e4e4e4; padding: 8px; background: #fff; }
figure img { width: 100%; height: auto; display: block; }
figcaption { font-size: .85em; color: #333; margin-top: 4px; }
.missing { color: #777; font-style: italic; padding: 2em 1em; }
.note { font-size: .85em; color: #555; max-width: 70em; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<p class="meta">Data: {{range $i, $d := .Data}}{{if $i}}, {{end}}<code>{{$d}}</code>{{end}}.
Cancelled calls billed <b>{{billing .Billing}}</b>. Grid: {{.Grid}}.
Bootstrap: {{.Resamples}} resamples, seed {{.Seed}}.{{if not .Generated.IsZero}} Generated {{stamp .Generated}}.{{end}}</p>
{{range .Sections}}<ul class="meta"><li><b>{{.Name}}</b>: artifact {{.Artifact.Version}}, fast <code>{{.Artifact.Tiers.Fast}}</code>, strong <code>{{.Artifact.Tiers.Strong}}</code>, label {{.Artifact.Label}}, {{.N}} requests replayed.</li>
{{range .Sources}}<li>{{.}}</li>{{end}}</ul>
{{end}}

<h2>Metrics</h2>
<table>
<tr><th>metric</th>{{range .Sections}}<th>{{.Name}}</th>{{end}}</tr>
<tr><td>always fast / always strong quality</td>{{range .Sections}}<td class="num">{{f4 .RFast}} / {{f4 .RStrong}}</td>{{end}}</tr>
<tr><td>APGR (95% bootstrap interval)</td>{{range .Sections}}<td class="num">{{f3 .Eval.APGR}}<span class="ci">{{ci3 .APGR}}</span></td>{{end}}</tr>
<tr><td>CPT(50%) / CPT(80%) / CPT(95%)</td>{{range .Sections}}<td class="num">{{f3 .Eval.CPT50}} / {{f3 .Eval.CPT80}} / {{f3 .Eval.CPT95}}</td>{{end}}</tr>
<tr><td>AUC of p_hard for the label</td>{{range .Sections}}<td class="num">{{pf3 .Eval.AUC}}</td>{{end}}</tr>
<tr><td>ECE of p_hard (10 bins)</td>{{range .Sections}}<td class="num">{{pf3 .Eval.ECE}}</td>{{end}}</tr>
<tr><td>AIQ, all policies / fast-escalate only</td>{{range .Sections}}<td class="num">{{f4 .AIQ}} / {{f4 .AIQFastEscalate}}</td>{{end}}</tr>
<tr><td>training log's signal (train's out-of-fold check)</td>{{range .Sections}}<td>{{with .Artifact.Signal}}{{if .Significant}}{{.}}{{else}}<b>{{.}}</b>{{end}}{{else}}not recorded in this artifact{{end}}</td>{{end}}</tr>
<tr><td>random router / oracle APGR</td>{{range .Sections}}<td class="num">{{f3 .Random.APGR}} / {{f3 .Oracle.APGR}}</td>{{end}}</tr>
<tr><td>confidence gate: calibration, ECE (10 bins, n)</td>{{range .Sections}}<td class="num">{{if .ConfidenceN}}{{with .Artifact.ConfidenceCalibration}}{{.Method}}{{else}}none{{end}}, {{f3 .ConfidenceECE}} (n={{.ConfidenceN}}){{else}}no confidence in the log{{end}}</td>{{end}}</tr>
<tr class="current"><td>current thresholds: speculate_above / escalate_above / accept_confidence</td>{{range .Sections}}<td class="num">{{policy .Current.Policy}}</td>{{end}}</tr>
<tr class="current"><td>current: decisions fast / speculate / escalate</td>{{range .Sections}}<td class="num">{{pct .Current.FastShare}} / {{pct .Current.SpeculateShare}} / {{pct .Current.EscalateShare}}</td>{{end}}</tr>
<tr class="current"><td>current: strong share</td>{{range .Sections}}<td class="num">{{f3 .Current.StrongShare}}<span class="ci">{{ci3 .CurrentIntervals.StrongShare}}</span></td>{{end}}</tr>
<tr class="current"><td>current: quality (95% bootstrap interval)</td>{{range .Sections}}<td class="num">{{f4 .Current.Quality}}<span class="ci">{{ci4 .CurrentIntervals.Quality}}</span></td>{{end}}</tr>
<tr class="current"><td>current: quality relative to always strong</td>{{range .Sections}}<td class="num">{{rel .Current.Quality .RStrong}}<span class="ci">{{ci3 .CurrentIntervals.RelQuality}}</span></td>{{end}}</tr>
<tr class="current"><td>current: PGR</td>{{range .Sections}}<td class="num">{{f3 .Current.PGR}}</td>{{end}}</tr>
<tr class="current"><td>current: cost per 1,000 requests</td>{{range .Sections}}<td class="num">{{usd .Current.CostPer1k}}<span class="ci">{{ciusd .CurrentIntervals.CostPer1k}}</span></td>{{end}}</tr>
<tr class="current"><td>current: latency mean / p50 / p95 / p99</td>{{range .Sections}}<td class="num">{{ms .Current.LatencyMeanMS}} / {{ms .Current.LatencyP50MS}} / {{ms .Current.LatencyP95MS}}<span class="ci">{{cims .CurrentIntervals.LatencyP95MS}}</span> / {{ms .Current.LatencyP99MS}}</td>{{end}}</tr>
</table>
<p class="note">APGR and CPT are computed by the same code as <code>triage eval</code> (ties in p_hard count as a random order). AIQ is RouterBench's area under the non-decreasing convex hull of quality against cost per 1,000 requests, divided by the cost range of the grid. Intervals are 2.5% and 97.5% bootstrap percentiles over requests, thresholds held fixed. Percentiles of latency are nearest-rank.</p>

<h2>Where speculation helps</h2>
<p class="note">For each quality level (as a share of the gap between always fast and always strong), the lowest p95 latency and the lowest cost of any fast/escalate policy, against the lowest of any policy of the grid (speculate band and speculate + escalate included). "Saved" is how much lower the second is, as a share of the first. Policies are written speculate_above / escalate_above / accept_confidence.</p>
{{range .Sections}}{{$sec := .}}<h3>{{.Name}}</h3>
{{if .NoLatency}}<p class="note">The log has no latency, so the p95 columns are empty: pass <code>--latency FAST=MS,STRONG=MS</code> to fill them.</p>
{{end}}{{if .NoCost}}<p class="note">The log has no cost, so the cost columns are empty: pass <code>--cost FAST=USD,STRONG=USD</code> to fill them.</p>
{{end}}<table>
<tr><th>PGR</th><th>quality</th><th>p95, fast/escalate</th><th>p95, any policy</th><th>p95 saved</th><th>cost per 1k, fast/escalate</th><th>cost per 1k, any policy</th><th>cost saved</th></tr>
{{range .Gains}}<tr><td class="num">{{f3 .PGR}}</td><td class="num">{{f4 .Quality}}</td>
{{if $sec.NoLatency}}<td class="num">–</td><td class="num">–</td><td class="num">–</td>
{{else}}<td class="num" title="{{pointPolicy .P95FastEscalate}}">{{pointP95 .P95FastEscalate}}</td>
<td class="num" title="{{pointPolicy .P95Any}}">{{pointP95 .P95Any}}<br><span class="ci">{{pointPolicy .P95Any}}</span></td>
<td class="num">{{saving .P95FastEscalate .P95Any true}}</td>
{{end}}{{if $sec.NoCost}}<td class="num">–</td><td class="num">–</td><td class="num">–</td></tr>
{{else}}<td class="num" title="{{pointPolicy .CostFastEscalate}}">{{pointCost .CostFastEscalate}}</td>
<td class="num" title="{{pointPolicy .CostAny}}">{{pointCost .CostAny}}<br><span class="ci">{{pointPolicy .CostAny}}</span></td>
<td class="num">{{saving .CostFastEscalate .CostAny false}}</td></tr>
{{end}}{{end}}</table>
{{end}}

<h2>Plots</h2>
<p class="note">Each image links to its SVG. In the latency and cost plots the faded dots are the grid's operating points coloured by kind (fast/escalate; speculate band: fast + speculate; speculate + escalate), the solid lines each kind's Pareto front, and the dashed black line the front over all policies. The red marker is the artifact's current thresholds.</p>
{{if eq (len .Sections) 1}}<div class="figs">
{{range .FigureRows}}{{range .Cells}}<figure>{{if .PNG}}<a href="{{.SVG}}"><img src="{{.PNG}}" alt="{{.Alt}}"></a>{{else}}<div class="missing">{{.Missing}}</div>{{end}}</figure>
{{end}}{{end}}</div>
{{else}}{{range .FigureRows}}<h3>{{.Title}}</h3>
<div class="figs">
{{range .Cells}}<figure>{{if .PNG}}<a href="{{.SVG}}"><img src="{{.PNG}}" alt="{{.Alt}}"></a>{{else}}<div class="missing">{{.Missing}}</div>{{end}}<figcaption>{{.Section}}</figcaption></figure>
{{end}}</div>
{{end}}{{end}}
<p class="note">Files: {{range .Sections}}<a href="{{if .Dir}}{{.Dir}}/{{end}}curves.csv">{{if .Dir}}{{.Dir}}/{{end}}curves.csv</a> {{end}}— one row per operating point.</p>
</body>
</html>
`))

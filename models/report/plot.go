package report

import (
	"bytes"
	"fmt"
	"image/color"
	"image/png"
	"math"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/triage-router/triage/datasets/safefile"
	"github.com/triage-router/triage/models/replay"
)

// Figure is one plot written as base.svg and base.png.
type Figure struct {
	// Base is the file name without extension, relative to the section's
	// folder.
	Base string
	// Title is the caption; Alt describes the plot for a screen reader.
	Title, Alt string
	// Missing, when set, says why the plot was not drawn (and no file
	// was written) and how to get it.
	Missing string
}

// Plot geometry. The legend gets its own strip to the right of the axes,
// so it can never cover data or tick labels.
const (
	plotWidth  = 7.2 * vg.Inch
	plotHeight = 4.2 * vg.Inch
	pngDPI     = 144
	fontSize   = 10
	// maxScatter bounds the glyphs drawn per kind: the fronts carry the
	// information, the cloud only its shape, and 50k glyphs make a slow
	// SVG.
	maxScatter = 1500
)

// Okabe-Ito colours, distinguishable with the common colour blindnesses.
var (
	colBlue   = color.NRGBA{0x00, 0x72, 0xB2, 0xff}
	colOrange = color.NRGBA{0xE6, 0x9F, 0x00, 0xff}
	colGreen  = color.NRGBA{0x00, 0x9E, 0x73, 0xff}
	colRed    = color.NRGBA{0xD5, 0x5E, 0x00, 0xff}
	colPurple = color.NRGBA{0xCC, 0x79, 0xA7, 0xff}
	colGray   = color.NRGBA{0x80, 0x80, 0x80, 0xff}
	colBlack  = color.NRGBA{0x00, 0x00, 0x00, 0xff}
)

func faded(c color.NRGBA) color.NRGBA { c.A = 0x50; return c }

var kindStyle = []struct {
	kind  replay.Kind
	label string
	col   color.NRGBA
}{
	{replay.KindFastEscalate, "fast/escalate", colBlue},
	{replay.KindSpeculate, "speculate band", colOrange},
	{replay.KindCombined, "speculate + escalate", colGreen},
}

// figure is a plot with its own legend.
type figure struct {
	p   *plot.Plot
	leg plot.Legend
}

// sans is Liberation Sans, which gonum embeds: every PNG renders the same
// glyphs whatever fonts the machine has.
func sans(size vg.Length) font.Font {
	return font.Font{Typeface: "Liberation", Variant: "Sans", Size: size}
}

func newFigure(title, x, y string) *figure {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font = sans(fontSize + 2)
	p.Title.Padding = 6
	p.X.Label.Text = x
	p.Y.Label.Text = y
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = sans(fontSize)
		a.Tick.Label.Font = sans(fontSize - 1)
		a.Tick.Marker = exactTicks{}
	}
	p.Add(plotter.NewGrid())
	leg := plot.NewLegend()
	leg.TextStyle.Font = sans(fontSize - 1)
	leg.Top, leg.Left = true, true
	leg.Padding = 2
	return &figure{p: p, leg: leg}
}

func (f *figure) line(label string, xs, ys []float64, col color.Color, width vg.Length, dashes []vg.Length, step plotter.StepKind) {
	if len(xs) == 0 {
		return
	}
	l, err := plotter.NewLine(xys(xs, ys))
	if err != nil {
		return // nothing finite to draw
	}
	l.Color, l.Width, l.Dashes, l.StepStyle = col, width, dashes, step
	f.p.Add(l)
	if label != "" {
		f.leg.Add(label, l)
	}
}

func (f *figure) points(label string, xs, ys []float64, col color.Color, shape draw.GlyphDrawer, radius vg.Length) {
	if len(xs) == 0 {
		return
	}
	s, err := plotter.NewScatter(xys(xs, ys))
	if err != nil {
		return
	}
	s.Color, s.Shape, s.Radius = col, shape, radius
	f.p.Add(s)
	if label != "" {
		f.leg.Add(label, s)
	}
}

// xys drops non-finite points, which plotter refuses.
func xys(xs, ys []float64) plotter.XYs {
	out := make(plotter.XYs, 0, len(xs))
	for i := range xs {
		if finite(xs[i]) && finite(ys[i]) {
			out = append(out, plotter.XY{X: xs[i], Y: ys[i]})
		}
	}
	return out
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// exactTicks is gonum's default ticker with labels that say their tick's
// value. gonum rounds every label to a precision it picks from the step,
// which on a narrow range is too few digits: the N-tier report's cost axis
// (7.24 to 7.38 price units) read "7.2", "7.3", "7.3" under ticks at 7.25,
// 7.30 and 7.35, and on 7.18 to 7.38 put "7.3" and "7.4" under 7.28 and
// 7.36. Where a label does not round-trip to its tick, every label gets the
// fewest decimals with which they all do.
type exactTicks struct{}

func (exactTicks) Ticks(min, max float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(min, max)
	// A millionth of the range: a label within it names its tick.
	tol := 1e-6 * (max - min)
	exact := func(prec int) bool {
		for _, t := range ts {
			if t.Label == "" {
				continue
			}
			l := t.Label
			if prec >= 0 {
				l = strconv.FormatFloat(t.Value, 'f', prec, 64)
			}
			v, err := strconv.ParseFloat(l, 64)
			if err != nil || math.Abs(v-t.Value) > tol {
				return false
			}
		}
		return true
	}
	if exact(-1) {
		return ts
	}
	for prec := 0; prec <= 12; prec++ {
		if exact(prec) {
			for i := range ts {
				if ts[i].Label != "" {
					ts[i].Label = strconv.FormatFloat(ts[i].Value, 'f', prec, 64)
				}
			}
			break
		}
	}
	return ts
}

// render draws the plot with the legend in a strip on its right.
func (f *figure) render(c draw.Canvas) {
	// A white page under the legend strip too: the plot paints only its
	// own part, and an SVG is otherwise transparent there.
	c.SetColor(color.White)
	c.Fill(c.Rectangle.Path())
	legW := f.leg.Rectangle(c).Size().X + 0.15*vg.Inch
	f.p.Draw(draw.Crop(c, 0, -legW, 0, 0))
	lc := draw.Crop(c, c.Size().X-legW+0.1*vg.Inch, 0, 0, -0.45*vg.Inch)
	f.leg.Draw(lc)
}

// write saves dir/base.svg and dir/base.png atomically.
func (f *figure) write(dir, base string) error {
	sc := vgsvg.New(plotWidth, plotHeight)
	f.render(draw.New(sc))
	var b bytes.Buffer
	if _, err := sc.WriteTo(&b); err != nil {
		return fmt.Errorf("render %s.svg: %w", base, err)
	}
	if err := safefile.WriteFile(filepath.Join(dir, base+".svg"), b.Bytes()); err != nil {
		return err
	}
	ic := vgimg.NewWith(vgimg.UseWH(plotWidth, plotHeight), vgimg.UseDPI(pngDPI), vgimg.UseBackgroundColor(color.White))
	f.render(draw.New(ic))
	b.Reset()
	// Fastest compression: flat-colour plots shrink well anyway, and
	// the default level costs more time than the rest of the plot.
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&b, ic.Image()); err != nil {
		return fmt.Errorf("render %s.png: %w", base, err)
	}
	return safefile.WriteFile(filepath.Join(dir, base+".png"), b.Bytes())
}

// plotFigures writes the section's plots into dir.
func plotFigures(dir string, s *Section) ([]Figure, error) {
	var figs []Figure
	add := func(f *figure, fig Figure) error {
		if err := f.write(dir, fig.Base); err != nil {
			return err
		}
		figs = append(figs, fig)
		return nil
	}
	if err := add(shareFigure(s), Figure{Base: "quality_vs_strong_share", Title: "Quality against share of strong answers",
		Alt: "quality of kept answers against the share of requests answered by the strong tier, for this router, the random router and the oracle"}); err != nil {
		return nil, err
	}
	p95Fig := Figure{Base: "quality_vs_p95_latency", Title: "Quality against p95 latency",
		Alt: "quality against p95 latency for every operating point, with Pareto fronts per policy kind"}
	if s.NoLatency {
		p95Fig.Missing = "not available: the log has no latency; pass --latency FAST=MS,STRONG=MS"
		figs = append(figs, p95Fig)
	} else if err := add(tradeoffFigure(s, true), p95Fig); err != nil {
		return nil, err
	}
	costFig := Figure{Base: "quality_vs_cost", Title: "Quality against cost per 1,000 requests",
		Alt: "quality against cost per 1000 requests for every operating point, with Pareto fronts per policy kind"}
	if s.NoCost {
		costFig.Missing = "not available: the log has no cost; pass --cost FAST=USD,STRONG=USD"
		figs = append(figs, costFig)
	} else if err := add(tradeoffFigure(s, false), costFig); err != nil {
		return nil, err
	}
	if err := add(reliabilityFigure("Reliability of p_hard", "predicted p_hard (bin mean)", "observed share labelled hard",
		s.PHardBins, s.Eval.ECE), Figure{Base: "reliability_p_hard", Title: "Reliability of p_hard (10 bins)",
		Alt: "observed frequency of the label against predicted p_hard per bin"}); err != nil {
		return nil, err
	}
	if s.ConfidenceN > 0 {
		ece := s.ConfidenceECE
		if err := add(reliabilityFigure("Reliability of the fast tier's calibrated confidence", "calibrated confidence (bin mean)", "observed share of fast answers correct",
			s.ConfidenceBins, &ece), Figure{Base: "reliability_confidence", Title: "Reliability of the confidence gate (10 bins)",
			Alt: "observed share of correct fast answers against calibrated confidence per bin"}); err != nil {
			return nil, err
		}
	}
	return figs, nil
}

func shareFigure(s *Section) *figure {
	f := newFigure("Quality against share of strong answers", "strong-tier answers (share of requests, 0-1)", "quality (mean score of kept answers, 0-1)")
	f.line("oracle", s.OracleCurve.X, s.OracleCurve.Y, colPurple, 1.5, []vg.Length{2, 2}, plotter.NoStep)
	f.line("random router", []float64{0, 1}, []float64{s.RFast, s.RStrong}, colGray, 1.2, []vg.Length{5, 3}, plotter.NoStep)
	f.line(fmt.Sprintf("this router (APGR %.3f)", s.Eval.APGR), s.RouterCurve.X, s.RouterCurve.Y, colBlue, 2, nil, plotter.NoStep)
	f.points("always fast", []float64{0}, []float64{s.RFast}, colBlack, draw.TriangleGlyph{}, 4)
	f.points("always strong", []float64{1}, []float64{s.RStrong}, colBlack, draw.BoxGlyph{}, 4)
	f.points("current thresholds", []float64{s.Current.StrongShare}, []float64{s.Current.Quality}, colRed, draw.PyramidGlyph{}, 5)
	f.p.X.Min, f.p.X.Max = 0, 1
	pad(&f.p.X, 0.02)
	pad(&f.p.Y, 0.03)
	return f
}

// tradeoffFigure plots quality against p95 latency (p95) or cost: the
// cloud of operating points by kind, each kind's Pareto front, the front of
// all policies, and the reference points.
func tradeoffFigure(s *Section, p95 bool) *figure {
	title, xl := "Quality against cost", "cost per 1,000 requests (USD)"
	if p95 {
		title, xl = "Quality against p95 latency", "p95 latency of kept answers (ms)"
	}
	f := newFigure(title, xl, "quality (mean score of kept answers, 0-1)")
	x := func(op *replay.OperatingPoint) float64 {
		if p95 {
			return op.LatencyP95MS
		}
		return op.CostPer1k
	}
	for _, ks := range kindStyle {
		var px, py []float64
		var idx []int
		for i := range s.Points {
			if s.Points[i].Kind == ks.kind {
				idx = append(idx, i)
			}
		}
		if len(idx) == 0 {
			continue
		}
		stride := max(1, (len(idx)+maxScatter-1)/maxScatter)
		for k := 0; k < len(idx); k += stride {
			op := &s.Points[idx[k]]
			px, py = append(px, x(op)), append(py, op.Quality)
		}
		f.points("", px, py, faded(ks.col), draw.CircleGlyph{}, 1.3)
		// The kind's own front.
		pts := make([]Point, len(idx))
		for k, i := range idx {
			pts[k] = Point{x(&s.Points[i]), s.Points[i].Quality}
		}
		var fx, fy []float64
		for _, k := range ParetoFront(pts) {
			fx, fy = append(fx, pts[k].X), append(fy, pts[k].Y)
		}
		f.line(ks.label+" front", fx, fy, ks.col, 1.6, nil, plotter.PostStep)
	}
	front := s.FrontCost
	if p95 {
		front = s.FrontP95
	}
	var fx, fy []float64
	for _, i := range front {
		fx, fy = append(fx, x(&s.Points[i])), append(fy, s.Points[i].Quality)
	}
	f.line("Pareto front, all policies", fx, fy, colBlack, 1, []vg.Length{4, 2}, plotter.PostStep)
	// Always fast / always strong are fast/escalate points of the grid.
	var fastOnly, strongOnly *replay.OperatingPoint
	for i := range s.Points {
		op := &s.Points[i]
		if op.Kind != replay.KindFastEscalate {
			continue
		}
		if op.FastShare == 1 {
			fastOnly = op
		}
		if op.EscalateShare == 1 {
			strongOnly = op
		}
	}
	if fastOnly != nil {
		f.points("always fast", []float64{x(fastOnly)}, []float64{fastOnly.Quality}, colBlack, draw.TriangleGlyph{}, 4)
	}
	if strongOnly != nil {
		f.points("always strong", []float64{x(strongOnly)}, []float64{strongOnly.Quality}, colBlack, draw.BoxGlyph{}, 4)
	}
	f.points("current thresholds", []float64{x(&s.Current)}, []float64{s.Current.Quality}, colRed, draw.PyramidGlyph{}, 5)
	pad(&f.p.X, 0.03)
	pad(&f.p.Y, 0.03)
	f.leg.Add("grid points (faded, by kind)", glyphThumb{draw.GlyphStyle{Color: faded(colGray), Radius: 2.5, Shape: draw.CircleGlyph{}}})
	return f
}

// pad widens an axis by frac of its range on both sides, so glyphs at the
// extremes are not cut by the frame.
func pad(a *plot.Axis, frac float64) {
	d := a.Max - a.Min
	if !(d > 0) {
		d = math.Max(math.Abs(a.Max), 1)
	}
	a.Min -= frac * d
	a.Max += frac * d
}

// glyphThumb draws a legend entry for a style with no data of its own.
type glyphThumb struct{ sty draw.GlyphStyle }

func (g glyphThumb) Thumbnail(c *draw.Canvas) {
	c.DrawGlyph(g.sty, c.Center())
}

func reliabilityFigure(title, x, y string, bins []Bin, ece *float64) *figure {
	if ece != nil && finite(*ece) {
		title = fmt.Sprintf("%s (ECE %.3f)", title, *ece)
	}
	f := newFigure(title, x, y)
	f.line("perfectly calibrated", []float64{0, 1}, []float64{0, 1}, colGray, 1, []vg.Length{4, 3}, plotter.NoStep)
	var bx, by []float64
	total := 0
	for _, b := range bins {
		total += b.N
	}
	for _, b := range bins {
		if b.N == 0 {
			continue
		}
		bx, by = append(bx, b.MeanP), append(by, b.Rate)
	}
	f.line("observed, per bin", bx, by, colBlue, 1.5, nil, plotter.NoStep)
	f.points("", bx, by, colBlue, draw.CircleGlyph{}, 3)
	// Bin counts as bars along the bottom, scaled to 0.25 of the height.
	if total > 0 {
		var hx, hy []float64
		for _, b := range bins {
			share := float64(b.N) / float64(total)
			hx = append(hx, b.Lo, b.Lo, b.Hi, b.Hi)
			hy = append(hy, 0, 0.25*share, 0.25*share, 0)
		}
		f.line("share of requests per bin (x 0.25)", hx, hy, colGray, 0.8, nil, plotter.NoStep)
	}
	f.p.X.Min, f.p.X.Max, f.p.Y.Min, f.p.Y.Max = 0, 1, 0, 1
	pad(&f.p.X, 0.02)
	pad(&f.p.Y, 0.02)
	return f
}

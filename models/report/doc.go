// Package report turns a router's replay on a labelled log into what a
// person reads before picking an operating point: curves.csv, plots (SVG
// and PNG, drawn with gonum.org/v1/plot), reliability diagrams and one
// self-contained index.html that puts several routers side by side.
//
// The figures come from models: the operating points from the policy
// replay (replay.Replayer), APGR and CPT from models.Evaluate, the same
// function `triage eval` prints, so the report and eval agree. This package
// adds the figures that only a report needs: AIQ (RouterBench's area under
// the non-decreasing convex hull of quality against cost), Pareto fronts,
// reliability bins and 95% bootstrap intervals.
//
// Caveats: bootstrap intervals resample requests with the thresholds held
// fixed, so they measure sampling noise of the log, not the extra optimism
// of having chosen the thresholds on the same log. AIQ is computed on the
// operating points of the grid; a coarser grid gives a (slightly) lower
// hull.
package report

package report

import (
	"encoding/json"
	"math"

	"github.com/triage-router/triage/models"
	"github.com/triage-router/triage/models/replay"
)

// jnum is a float that encodes NaN and infinities as null.
type jnum float64

func (f jnum) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return []byte("null"), nil
	}
	return json.Marshal(float64(f))
}

func jptr(x *float64) *jnum {
	if x == nil {
		return nil
	}
	v := jnum(*x)
	return &v
}

func jci(iv Interval) [2]jnum { return [2]jnum{jnum(iv.Lo), jnum(iv.Hi)} }

// MetricsJSON is metrics.json: the page's metric table for scripts and
// tests, with the same figures as index.html.
type MetricsJSON struct {
	Name            string  `json:"name"`
	Version         string  `json:"version"`
	N               int     `json:"n"`
	InSample        int     `json:"in_sample"`
	RFast           jnum    `json:"r_fast"`
	RStrong         jnum    `json:"r_strong"`
	APGR            jnum    `json:"apgr"`
	APGRCI95        [2]jnum `json:"apgr_ci95"`
	CPT50           jnum    `json:"cpt50"`
	CPT80           jnum    `json:"cpt80"`
	CPT95           jnum    `json:"cpt95"`
	AUC             *jnum   `json:"auc"`
	ECE             *jnum   `json:"ece"`
	AIQ             jnum    `json:"aiq"`
	AIQFastEscalate jnum    `json:"aiq_fast_escalate"`
	RandomAPGR      jnum    `json:"random_apgr"`
	OracleAPGR      jnum    `json:"oracle_apgr"`
	// Signal is the artifact's record of whether its training log let
	// it beat random (train's out-of-fold check), and SignalLine says
	// it in words; both absent when the artifact has none.
	Signal     *models.Signal `json:"signal,omitempty"`
	SignalLine string         `json:"signal_line,omitempty"`
	// ConfidenceECE is the gate's ECE (10 bins); null without confidence.
	ConfidenceECE jnum       `json:"confidence_ece"`
	ConfidenceN   int        `json:"confidence_n"`
	Current       PointJSON  `json:"current"`
	Gains         []GainJSON `json:"gains"`
	Sources       []string   `json:"sources"`
	Points        int        `json:"operating_points"`
}

// PointJSON is an operating point with its intervals where known.
type PointJSON struct {
	Policy          models.Policy `json:"policy"`
	Kind            replay.Kind   `json:"kind"`
	StrongShare     jnum          `json:"strong_share"`
	StrongShareCI95 *[2]jnum      `json:"strong_share_ci95,omitempty"`
	Quality         jnum          `json:"quality"`
	QualityCI95     *[2]jnum      `json:"quality_ci95,omitempty"`
	PGR             jnum          `json:"pgr"`
	CostPer1k       jnum          `json:"cost_per_1k"`
	LatencyMeanMS   jnum          `json:"latency_mean_ms"`
	LatencyP50MS    jnum          `json:"latency_p50_ms"`
	LatencyP95MS    jnum          `json:"latency_p95_ms"`
	LatencyP99MS    jnum          `json:"latency_p99_ms"`
	FastShare       jnum          `json:"fast_share"`
	SpeculateShare  jnum          `json:"speculate_share"`
	EscalateShare   jnum          `json:"escalate_share"`
}

// GainJSON is one row of "where speculation helps".
type GainJSON struct {
	PGR              jnum       `json:"pgr"`
	Quality          jnum       `json:"quality"`
	P95FastEscalate  *PointJSON `json:"p95_fast_escalate"`
	P95Any           *PointJSON `json:"p95_any"`
	CostFastEscalate *PointJSON `json:"cost_fast_escalate"`
	CostAny          *PointJSON `json:"cost_any"`
}

func pointJSON(op *replay.OperatingPoint) *PointJSON {
	if op == nil {
		return nil
	}
	return &PointJSON{
		Policy: op.Policy, Kind: op.Kind, StrongShare: jnum(op.StrongShare), Quality: jnum(op.Quality), PGR: jnum(op.PGR),
		CostPer1k: jnum(op.CostPer1k), LatencyMeanMS: jnum(op.LatencyMeanMS), LatencyP50MS: jnum(op.LatencyP50MS),
		LatencyP95MS: jnum(op.LatencyP95MS), LatencyP99MS: jnum(op.LatencyP99MS),
		FastShare: jnum(op.FastShare), SpeculateShare: jnum(op.SpeculateShare), EscalateShare: jnum(op.EscalateShare),
	}
}

// Metrics returns the section's metrics.json content.
func (s *Section) Metrics() MetricsJSON {
	m := MetricsJSON{
		Name: s.Name, Version: s.Artifact.Version, N: s.N, InSample: s.InSample, RFast: jnum(s.RFast), RStrong: jnum(s.RStrong),
		APGR: jnum(s.Eval.APGR), APGRCI95: jci(s.APGR), CPT50: jnum(s.Eval.CPT50), CPT80: jnum(s.Eval.CPT80), CPT95: jnum(s.Eval.CPT95),
		AUC: jptr(s.Eval.AUC), ECE: jptr(s.Eval.ECE), AIQ: jnum(s.AIQ), AIQFastEscalate: jnum(s.AIQFastEscalate),
		RandomAPGR: jnum(s.Random.APGR), OracleAPGR: jnum(s.Oracle.APGR),
		ConfidenceECE: jnum(s.ConfidenceECE), ConfidenceN: s.ConfidenceN, Sources: s.Sources, Points: len(s.Points),
	}
	if sig := s.Artifact.Signal; sig != nil {
		m.Signal, m.SignalLine = sig, sig.String()
	}
	m.Current = *pointJSON(&s.Current)
	sc, qc := jci(s.CurrentIntervals.StrongShare), jci(s.CurrentIntervals.Quality)
	m.Current.StrongShareCI95, m.Current.QualityCI95 = &sc, &qc
	for _, g := range s.Gains {
		m.Gains = append(m.Gains, GainJSON{
			PGR: jnum(g.PGR), Quality: jnum(g.Quality),
			P95FastEscalate: pointJSON(g.P95FastEscalate), P95Any: pointJSON(g.P95Any),
			CostFastEscalate: pointJSON(g.CostFastEscalate), CostAny: pointJSON(g.CostAny),
		})
	}
	return m
}

package models

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"os"
	"syscall"
	"time"

	"github.com/triage-router/triage/classifier"
	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/datasets/safefile"
	"github.com/triage-router/triage/features"
	"github.com/triage-router/triage/internal/gunzip"
)

// FormatVersion is the artifact layout this code writes. Bump it when a
// field changes meaning; Load refuses versions it does not know.
// Version 2 added the per-tier scorer (Scorer, FastWeights, FastBias); a
// version 1 file is a label-scorer router and still loads. Version 3
// added the gain and blend scorers (GainWeights, GainBias), Signal and
// MetricsFrom; version 1 and 2 files still load. Version 4 added the
// N-tier router (ScorerTiers: TierList, TierHeads, TierPolicy); a two-tier
// router is written as before and older files still load unchanged.
// Version 5 added the difficulty view (Difficulty), mixed into a two-tier
// router's score; older files have none and score as before.
const FormatVersion = 5

// minFormatVersion is the oldest layout Load still reads.
const minFormatVersion = 1

// Scorers: how a router turns a feature vector into the raw score its
// calibration maps to p_hard.
const (
	// ScorerLabel is one logistic regression on the training label; the
	// score is its logit.
	ScorerLabel = "label"
	// ScorerPerTier is one logistic regression per tier, each predicting
	// that tier's score (a soft target in [0,1]); the score is the
	// predicted gain of the strong tier, σ(z_strong) − σ(z_fast). The
	// calibration still maps it to the probability of the label, so p_hard
	// means the same thing; only the ranking changes (see docs/quality.md).
	ScorerPerTier = "per-tier"
)

// ErrBadArtifact is wrapped by every Load failure that is the file's fault
// (as opposed to I/O), so a server can tell "corrupt" from "unreadable".
var ErrBadArtifact = errors.New("bad router artifact")

// SourceDigest identifies a training log's bytes and, for a gzip-compressed
// log, the bytes of its content: a training log then matches a copy that
// is compressed where it was not (or the other way round).
type SourceDigest struct {
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
	// ContentBytes and ContentSHA256 are those of the decompressed log,
	// for a gzip file only (a plain file's content is its bytes).
	ContentBytes  int64  `json:"content_bytes,omitempty"`
	ContentSHA256 string `json:"content_sha256,omitempty"`
}

// Content is the size and SHA-256 of the log's content: decompressed for a
// gzip file, its bytes otherwise.
func (d SourceDigest) Content() (int64, string) {
	if d.ContentSHA256 != "" {
		return d.ContentBytes, d.ContentSHA256
	}
	return d.Bytes, d.SHA256
}

// Fingerprint identifies the training data, so two artifacts can be told
// apart by what they learned from.
type Fingerprint struct {
	// Records is the number of labelled examples used for fitting.
	Records int `json:"records"`
	// Skipped counts records without both tiers' scores.
	Skipped int `json:"skipped"`
	// Holdout is the number of examples kept out for the metrics.
	Holdout int `json:"holdout"`
	// SHA256 hashes the ids and labels of the training examples in order.
	SHA256 string `json:"sha256"`
	// L2 is the regularisation strength used (of the strong tier's head
	// for ScorerPerTier and ScorerBlend, whose fast head's is FastL2 and
	// gain head's GainL2); L2Chosen says whether CV picked it.
	L2       float64 `json:"l2"`
	FastL2   float64 `json:"fast_l2,omitempty"`
	GainL2   float64 `json:"gain_l2,omitempty"`
	L2Chosen bool    `json:"l2_chosen_by_cv"`
	// MetaOff says the router leaves the log's meta out: the selection
	// found it did not rank better with it (or training was told so).
	MetaOff bool `json:"meta_off,omitempty"`
	// IDF says whether the fit used IDF-scaled columns (folded into the
	// weights, so serving does not depend on it).
	IDF bool `json:"idf"`
	// Seed of the split.
	Seed uint64 `json:"seed"`
	// Sources are the files trained on, as given.
	Sources []string `json:"sources,omitempty"`
	// SourceDigests are the sizes and contents' SHA-256 of the sources
	// that are regular files (not a pipe), so a byte-identical copy of a
	// training log (moved to another machine or folder) is still known
	// as one.
	SourceDigests []SourceDigest `json:"source_digests,omitempty"`
	// HoldoutShare is the share of the sources' ids (by id hash with
	// Seed, datasets.InHoldout) kept out of training by `triage train
	// --holdout`; HeldSince, for a router made by retrain, is the time
	// from which the timestamped records judged it rather than trained
	// it, and TrainedThrough the time of the newest record it trained on.
	// Together with Sources they tell which records the router was
	// trained on, which a later retrain's gate must not judge on: for a
	// router made by retrain, every record up to TrainedThrough (and
	// every untimed one). HeldSince alone said "every record before it",
	// which missed the records retrain trains on after it (one-sided
	// traffic, paired records the previous champion trained on, ties), so
	// a later gate judged on them; it is kept for routers made before.
	// HeadRecords counts, when some training records had one tier's
	// outcome only, the rows each per-tier head fitted ("fast", "strong")
	// and the paired ones ("paired"); a later retrain scales each head's
	// penalty by them (see retrain.Run).
	HeadRecords    map[string]int `json:"head_records,omitempty"`
	HoldoutShare   float64        `json:"holdout_share,omitempty"`
	HeldSince      time.Time      `json:"held_since,omitzero"`
	TrainedThrough time.Time      `json:"trained_through,omitzero"`
}

// Artifact is a trained router: everything serving needs to compute the
// same p_hard that evaluation measured, plus what a person needs to trust it.
type Artifact struct {
	FormatVersion int `json:"format_version"`
	// Version identifies this artifact; it is new for every write that
	// changes the router (train, calibrate, retrain).
	Version   string    `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	// Parent is the version this one was derived from, if any.
	Parent string `json:"parent,omitempty"`

	Features features.Spec `json:"features"`
	// Scorer is ScorerLabel, ScorerPerTier, ScorerGain or ScorerBlend;
	// "" (version 1 files) means ScorerLabel.
	Scorer string `json:"scorer,omitempty"`
	// Weights and Bias are the raw parameters of the logistic regression
	// on the label (ScorerLabel), of the gain (ScorerGain) or of the
	// strong tier's head (ScorerPerTier, ScorerBlend).
	Weights Weights `json:"weights"`
	Bias    float64 `json:"bias"`
	// FastWeights and FastBias are the fast tier's head (ScorerPerTier,
	// ScorerBlend).
	FastWeights Weights `json:"fast_weights,omitempty"`
	FastBias    float64 `json:"fast_bias,omitempty"`
	// GainWeights and GainBias are the gain head of ScorerBlend.
	GainWeights Weights `json:"gain_weights,omitempty"`
	GainBias    float64 `json:"gain_bias,omitempty"`
	// Calibration maps the raw score to p_hard.
	Calibration classifier.Calibration `json:"calibration"`
	// ConfidenceCalibration maps the fast tier's raw confidence to
	// P(fast answer correct); nil when the training log had no confidence.
	ConfidenceCalibration *classifier.Calibration `json:"confidence_calibration,omitempty"`

	Tiers Tiers  `json:"tiers"`
	Label string `json:"label"`

	Policy Policy `json:"policy"`
	// PolicyTarget says how the thresholds were chosen.
	PolicyTarget string `json:"policy_target,omitempty"`
	// ExpectedShares is the share of each decision the thresholds give on
	// the data they were set on, so a server can report drift.
	ExpectedShares map[Decision]float64 `json:"expected_shares,omitempty"`

	Training Fingerprint `json:"training"`
	// Signal says whether the training log let the router beat random
	// routing; nil in files before format 3.
	Signal *Signal `json:"signal,omitempty"`
	// Metrics are figures of the router (apgr, cpt50, auc, log_loss, ...),
	// measured as MetricsFrom says.
	Metrics map[string]float64 `json:"metrics,omitempty"`
	// MetricsFrom is MetricsOutOfFold or MetricsHeldOut ("" in files
	// before format 3, whose metrics are held out).
	MetricsFrom string `json:"metrics_from,omitempty"`
	// TierList, TierHeads and TierPolicy are the N-tier router
	// (ScorerTiers): the tiers cheapest first, one head per tier, and the
	// policy over their predictions. Empty for a two-tier router.
	TierList   []Tier      `json:"tier_list,omitempty"`
	TierHeads  []TierHead  `json:"tier_heads,omitempty"`
	TierPolicy *TierPolicy `json:"tier_policy,omitempty"`

	// Difficulty is the difficulty view mixed into the score (see
	// Difficulty); nil when the router scores with its scorer alone, as
	// every file before format 5 does.
	Difficulty *Difficulty `json:"difficulty,omitempty"`

	// TopFeatures are the largest weights with readable names.
	TopFeatures []NamedWeight `json:"top_features,omitempty"`

	// Checksum is the SHA-256 of the artifact with this field empty.
	Checksum string `json:"checksum"`
}

// Weights is a dense weight vector stored compactly: only non-zero entries,
// as little-endian (uint32 index, float64 value) pairs in base64. Hashed
// features never seen in training keep weight 0, so this is much smaller
// than the dense vector, and it round-trips bit-exactly.
type Weights []float64

type weightsJSON struct {
	Dim      int    `json:"dim"`
	NonZero  int    `json:"non_zero"`
	Encoding string `json:"encoding"`
	Data     string `json:"data"`
}

const weightsEncoding = "sparse-u32-f64le-base64"

// MarshalJSON implements json.Marshaler.
func (w Weights) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	nz := 0
	var rec [12]byte
	for i, v := range w {
		if v == 0 {
			continue
		}
		nz++
		binary.LittleEndian.PutUint32(rec[:4], uint32(i))
		binary.LittleEndian.PutUint64(rec[4:], math.Float64bits(v))
		buf.Write(rec[:])
	}
	return json.Marshal(weightsJSON{Dim: len(w), NonZero: nz, Encoding: weightsEncoding, Data: base64.StdEncoding.EncodeToString(buf.Bytes())})
}

// maxWeightsDim is the largest feature space a spec can ask for. A head is
// decoded into a dense slice of its dim before the spec is checked, so a
// few bytes saying dim 1<<26 made 512 MB; this cap keeps that to what a
// valid artifact may need.
var maxWeightsDim = features.Spec{HashBits: features.MaxHashBits, Numeric: true, Meta: true, MetaBits: features.MaxMetaBits}.Dim()

// maxHeadWeights bounds the weights all of an artifact's heads hold
// together: the four heads (weights, fast_weights, gain_weights and the
// difficulty view's) of a two-tier router on the largest feature spec,
// 512 MiB dense. The cap per head alone did not bound a file: each head
// of a hundred bytes saying the largest dim made 128 MiB, and tier_heads
// may list any number of them, so a 600-byte file made 771 MiB and a
// few kilobytes exhausted the memory of a server reloading it. An N-tier
// router on the default spec fits 256 tiers within it.
var maxHeadWeights = 4 * maxWeightsDim

// headWeights returns how many weights the artifact's heads hold in all
// (as decoded, or as declared in a file: see checkDeclaredHeads).
func headWeights(dims []int) (int, int) {
	total := 0
	for _, d := range dims {
		// Each dim is at most maxWeightsDim once decoded; clamping keeps
		// a declared one from overflowing the sum.
		total += min(max(d, 0), maxWeightsDim+1)
	}
	return total, len(dims)
}

func checkHeadWeights(dims []int) error {
	if total, n := headWeights(dims); total > maxHeadWeights {
		return fmt.Errorf("the %d heads hold %d weights in all, over the limit of %d (four heads on the largest feature spec); use fewer tiers or a smaller feature spec (hash_bits)", n, total, maxHeadWeights)
	}
	return nil
}

// checkDeclaredHeads checks, before any head is decoded into its dense
// slice, that the dims the file declares fit maxHeadWeights. Anything
// else wrong with the file is left to the full decode to report.
func checkDeclaredHeads(b []byte) error {
	type head struct {
		Dim int `json:"dim"`
	}
	var h struct {
		Weights     head `json:"weights"`
		FastWeights head `json:"fast_weights"`
		GainWeights head `json:"gain_weights"`
		Difficulty  *struct {
			Weights head `json:"weights"`
		} `json:"difficulty"`
		TierHeads []struct {
			Weights head `json:"weights"`
		} `json:"tier_heads"`
	}
	// Errors are ignored: a syntax error leaves h empty and the full
	// decode reports it; a type error elsewhere leaves the dims read.
	_ = json.NewDecoder(bytes.NewReader(b)).Decode(&h)
	dims := []int{h.Weights.Dim, h.FastWeights.Dim, h.GainWeights.Dim}
	if h.Difficulty != nil {
		dims = append(dims, h.Difficulty.Weights.Dim)
	}
	for _, t := range h.TierHeads {
		dims = append(dims, t.Weights.Dim)
	}
	return checkHeadWeights(dims)
}

// UnmarshalJSON implements json.Unmarshaler.
func (w *Weights) UnmarshalJSON(b []byte) error {
	var j weightsJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	if j.Encoding != weightsEncoding {
		return fmt.Errorf("weights.encoding is %q, want %q", j.Encoding, weightsEncoding)
	}
	if j.Dim < 0 || j.Dim > maxWeightsDim {
		return fmt.Errorf("weights.dim is %d, want 0..%d (the largest feature spec's)", j.Dim, maxWeightsDim)
	}
	raw, err := base64.StdEncoding.DecodeString(j.Data)
	if err != nil {
		return fmt.Errorf("weights.data: %w", err)
	}
	if len(raw)%12 != 0 || len(raw)/12 != j.NonZero {
		return fmt.Errorf("weights.data holds %d bytes, want %d entries of 12", len(raw), j.NonZero)
	}
	out := make(Weights, j.Dim)
	for p := 0; p < len(raw); p += 12 {
		i := binary.LittleEndian.Uint32(raw[p:])
		if int(i) >= j.Dim {
			return fmt.Errorf("weights.data: index %d is outside dim %d", i, j.Dim)
		}
		out[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[p+4:]))
	}
	*w = out
	return nil
}

// NewVersion returns a fresh artifact version: the UTC time and a random
// suffix, so versions sort by creation and never collide.
func NewVersion(t time.Time) string {
	var b [4]byte
	rand.Read(b[:])
	return t.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// Validate checks the artifact is internally consistent: the version, the
// feature spec, weight dimension, finite numbers, calibration and policy.
func (a *Artifact) Validate() error {
	if err := checkFormatVersion(a.FormatVersion); err != nil {
		return err
	}
	if a.Version == "" {
		return errors.New("version is empty")
	}
	if err := a.Features.Validate(); err != nil {
		return fmt.Errorf("features: %w", err)
	}
	// What Parse refuses to decode must not be written.
	if err := checkHeadWeights(a.headDims()); err != nil {
		return err
	}
	if a.ScorerKind() == ScorerTiers {
		if a.FormatVersion < scorerFormat[ScorerTiers] {
			return fmt.Errorf("scorer %q needs format_version %d, the file says %d", ScorerTiers, scorerFormat[ScorerTiers], a.FormatVersion)
		}
		if a.Difficulty != nil {
			return fmt.Errorf("difficulty is set but the scorer is %q; it belongs to a two-tier router", ScorerTiers)
		}
		return a.validateTiers()
	}
	if len(a.TierList) != 0 || len(a.TierHeads) != 0 || a.TierPolicy != nil {
		return fmt.Errorf("tier_list, tier_heads or tier_policy are set but the scorer is %q; they belong to an N-tier router (scorer %q)", a.ScorerKind(), ScorerTiers)
	}
	if err := checkHead("weights", "bias", a.Weights, a.Bias, a.Features.Dim()); err != nil {
		return err
	}
	kind := a.ScorerKind()
	if need := scorerFormat[kind]; need == 0 {
		return fmt.Errorf("scorer is %q, want %q, %q, %q or %q", a.Scorer, ScorerLabel, ScorerPerTier, ScorerGain, ScorerBlend)
	} else if a.FormatVersion < need {
		return fmt.Errorf("scorer %q needs format_version %d, the file says %d", kind, need, a.FormatVersion)
	}
	usesFast := kind == ScorerPerTier || kind == ScorerBlend
	switch {
	case usesFast:
		if err := checkHead("fast_weights", "fast_bias", a.FastWeights, a.FastBias, a.Features.Dim()); err != nil {
			return err
		}
	case len(a.FastWeights) != 0:
		return fmt.Errorf("fast_weights are set but the scorer is %q; they belong to a per-tier or blend router", kind)
	}
	switch {
	case kind == ScorerBlend:
		if err := checkHead("gain_weights", "gain_bias", a.GainWeights, a.GainBias, a.Features.Dim()); err != nil {
			return err
		}
	case len(a.GainWeights) != 0:
		return fmt.Errorf("gain_weights are set but the scorer is %q; they belong to a blend router", kind)
	}
	if a.Difficulty != nil {
		if a.FormatVersion < difficultyFormat {
			return fmt.Errorf("difficulty needs format_version %d, the file says %d", difficultyFormat, a.FormatVersion)
		}
		if err := a.Difficulty.validate(a.Features.Dim()); err != nil {
			return err
		}
	}
	if a.FormatVersion < 3 && (a.Signal != nil || a.MetricsFrom != "") {
		return fmt.Errorf("signal and metrics_from need format_version 3, the file says %d", a.FormatVersion)
	}
	if err := a.Calibration.Validate(); err != nil {
		return fmt.Errorf("calibration: %w", err)
	}
	if a.ConfidenceCalibration != nil {
		if err := a.ConfidenceCalibration.Validate(); err != nil {
			return fmt.Errorf("confidence_calibration: %w", err)
		}
	}
	if a.Tiers.Fast == "" || a.Tiers.Strong == "" {
		return errors.New("tiers: fast and strong model names are required")
	}
	if err := a.Policy.Validate(); err != nil {
		return err
	}
	return nil
}

// maxParam bounds every weight and bias an artifact may hold. Trained
// heads stay far inside it (the largest weight in the quality suite's 230
// fold routers is 92, the largest bias 8.7); what passes it cannot
// overflow a logit to ±Inf on any request, where a weight of 1e308 (a
// damaged or hand-made file, whose checksum a development build rewrote)
// turned p_hard into NaN, which the policy then sent to the fast tier.
const maxParam = 1e6

// checkHead checks one logistic regression's parameters: dim weights,
// all finite and within ±maxParam.
func checkHead(weights, bias string, w Weights, b float64, dim int) error {
	if len(w) != dim {
		return fmt.Errorf("%s.dim is %d but the feature spec has %d dimensions", weights, len(w), dim)
	}
	for i, v := range w {
		if !(math.Abs(v) <= maxParam) {
			return fmt.Errorf("%s[%d] is %v, want a finite number within ±%g (a trained head's are within ±100)", weights, i, v, float64(maxParam))
		}
	}
	if !(math.Abs(b) <= maxParam) {
		return fmt.Errorf("%s is %v, want a finite number within ±%g", bias, b, float64(maxParam))
	}
	return nil
}

// headDims lists the length of every head the artifact holds.
func (a *Artifact) headDims() []int {
	dims := []int{len(a.Weights), len(a.FastWeights), len(a.GainWeights)}
	if a.Difficulty != nil {
		dims = append(dims, len(a.Difficulty.Weights))
	}
	for _, h := range a.TierHeads {
		dims = append(dims, len(h.Weights))
	}
	return dims
}

func checkFormatVersion(v int) error {
	if v < minFormatVersion || v > FormatVersion {
		return fmt.Errorf("format_version is %d, this build reads %d to %d; retrain or use a matching triage", v, minFormatVersion, FormatVersion)
	}
	return nil
}

// ScorerKind is the artifact's scorer, with "" read as ScorerLabel.
func (a *Artifact) ScorerKind() string {
	if a.Scorer == "" {
		return ScorerLabel
	}
	return a.Scorer
}

// scorerFormat is the first format version of each scorer.
var scorerFormat = map[string]int{ScorerLabel: 1, ScorerPerTier: 2, ScorerGain: 3, ScorerBlend: 3, ScorerTiers: 4}

// MetricsFrom values.
const (
	// MetricsOutOfFold: the p_hard each training request got from the
	// cross-validation fit without it.
	MetricsOutOfFold = "out-of-fold"
	// MetricsHeldOut: p_hard on requests kept out of training.
	MetricsHeldOut = "held-out"
)

// ScoreWeights is one weight per feature that says which way, and how
// strongly, the feature moves the raw score, in log-odds: the weights
// themselves for ScorerLabel and ScorerGain, the strong head's minus the
// fast head's for ScorerPerTier, and the mean of that and the gain head's
// for ScorerBlend. A positive weight pushes a request towards the strong
// tier. For ranking features and reading them, not for scoring.
func (a *Artifact) ScoreWeights() []float64 {
	kind := a.ScorerKind()
	if kind == ScorerLabel || kind == ScorerGain {
		return a.Weights
	}
	w := make([]float64, len(a.Weights))
	for i := range w {
		w[i] = a.scoreWeight(i)
	}
	return w
}

// scoreWeight is ScoreWeights()[i] without building the vector.
func (a *Artifact) scoreWeight(i int) float64 {
	switch a.ScorerKind() {
	case ScorerPerTier:
		return a.Weights[i] - a.FastWeights[i]
	case ScorerBlend:
		return (a.Weights[i] - a.FastWeights[i] + a.GainWeights[i]) / 2
	}
	return a.Weights[i]
}

// setHeads stores the fitted heads the artifact's scorer uses.
func (a *Artifact) setHeads(m [numHeads]*classifier.Model) {
	first := m[headOf(a.Scorer)]
	a.Weights, a.Bias = Weights(first.W), first.B
	if f := m[headFast]; f != nil {
		a.FastWeights, a.FastBias = Weights(f.W), f.B
	}
	if g := m[headGain]; g != nil && a.Scorer == ScorerBlend {
		a.GainWeights, a.GainBias = Weights(g.W), g.B
	}
}

// checksum hashes the artifact's JSON with the checksum field empty.
func (a *Artifact) checksum() (string, error) {
	c := *a
	c.Checksum = ""
	b, err := json.Marshal(&c)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// Marshal validates the artifact, sets its checksum and returns its JSON.
func (a *Artifact) Marshal() ([]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("refuse to write an invalid artifact: %w", err)
	}
	sum, err := a.checksum()
	if err != nil {
		return nil, fmt.Errorf("encode artifact: %w", err)
	}
	a.Checksum = sum
	b, err := json.MarshalIndent(a, "", " ")
	if err != nil {
		return nil, fmt.Errorf("encode artifact: %w", err)
	}
	return append(b, '\n'), nil
}

// Save writes the artifact atomically: a reader sees the old file or the
// whole new one, never a torn write.
func (a *Artifact) Save(path string) error {
	b, err := a.Marshal()
	if err != nil {
		return err
	}
	if err := safefile.WriteFile(path, b); err != nil {
		return fmt.Errorf("save artifact: %w", err)
	}
	return nil
}

// Parse decodes and verifies an artifact: JSON, checksum, version and
// internal consistency. Errors wrap ErrBadArtifact. Anything but white
// space after the artifact's JSON is refused: the checksum covers the
// decoded artifact, not the file's bytes, so trailing data would pass it.
func Parse(b []byte) (*Artifact, error) {
	if err := checkDeclaredHeads(b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadArtifact, err)
	}
	var a Artifact
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&a); err != nil {
		if isLog(b) {
			return nil, fmt.Errorf("%w: %s", ErrBadArtifact, errIsLog)
		}
		return nil, fmt.Errorf("%w: decode%s: %w", ErrBadArtifact, syntaxAt(b, err), err)
	}
	if a.FormatVersion == 0 && isLog(b) {
		return nil, fmt.Errorf("%w: %s", ErrBadArtifact, errIsLog)
	}
	if rest := bytes.TrimSpace(b[dec.InputOffset():]); len(rest) > 0 {
		return nil, fmt.Errorf("%w: %d bytes of trailing data after the artifact's JSON (at byte %d); the file was appended to or is not one artifact", ErrBadArtifact, len(rest), dec.InputOffset())
	}
	// The version is checked before the checksum: a file from another
	// build would also fail the checksum, with a less useful message.
	if err := checkFormatVersion(a.FormatVersion); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadArtifact, err)
	}
	if a.Checksum == "" {
		return nil, fmt.Errorf("%w: checksum is missing; %s", ErrBadArtifact, noHandEdits)
	}
	sum, err := a.checksum()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadArtifact, err)
	}
	if sum != a.Checksum {
		return nil, fmt.Errorf("%w: checksum mismatch (file says %.12s, content hashes to %.12s): the file was changed or truncated, or written by a development build with other fields; %s", ErrBadArtifact, a.Checksum, sum, noHandEdits)
	}
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadArtifact, err)
	}
	return &a, nil
}

// syntaxAt says where in b a JSON syntax error is, as an editor shows a
// place: " at line L, column C" (or "" for other errors). An artifact is
// indented JSON of thousands of lines, and a comma left by a hand edit was
// reported only as "invalid character ','". The error's offset counts the
// bytes read, the last of them the one that is wrong.
func syntaxAt(b []byte, err error) string {
	var se *json.SyntaxError
	if !errors.As(err, &se) || se.Offset <= 0 || se.Offset > int64(len(b)) {
		return ""
	}
	before := b[:se.Offset-1]
	line := 1 + bytes.Count(before, []byte("\n"))
	col := len(before) - bytes.LastIndexByte(before, '\n')
	return fmt.Sprintf(" at line %d, column %d", line, col)
}

// noHandEdits is what a refused checksum adds: the likeliest change is a
// threshold edited by hand, which the checksum refuses by design, and the
// message left the person with no way to make the change.
const noHandEdits = "an artifact is not edited by hand: set its thresholds with 'triage calibrate' (which writes a new version), or override them where it is served (serve's --speculate-above, --escalate-above and --accept-confidence, or thresholds: in its config)"

// errIsLog is what Parse says of a log passed where an artifact belongs,
// the likeliest mix-up of two files that are both JSON.
const errIsLog = "this is a log (JSON Lines records), not an artifact; make a router from it with 'triage train --data LOG ... -o router.json'"

// isLog reports whether b starts with a log record: a JSON object with an
// id and a prompt, messages or outcomes, none of which an artifact has.
func isLog(b []byte) bool {
	first, _, _ := bytes.Cut(b, []byte("\n"))
	var rec struct {
		ID       *string         `json:"id"`
		Prompt   *string         `json:"prompt"`
		Messages json.RawMessage `json:"messages"`
		Outcomes json.RawMessage `json:"outcomes"`
	}
	if json.Unmarshal(first, &rec) != nil {
		return false
	}
	return rec.ID != nil && (rec.Prompt != nil || rec.Messages != nil || rec.Outcomes != nil)
}

// DefaultMaxArtifactBytes is the largest artifact Load reads. A router on
// 2^18 hashed features with every weight set is about 4 MiB; the cap only
// stops a wrong file (a dataset, a disk image) from being read whole.
const DefaultMaxArtifactBytes = 256 << 20

// Load reads and verifies an artifact file of at most
// DefaultMaxArtifactBytes.
func Load(path string) (*Artifact, error) { return LoadFile(path, DefaultMaxArtifactBytes) }

// LoadFile reads and verifies an artifact file. It reads regular files
// only, and at most maxBytes of them (0 means DefaultMaxArtifactBytes): a
// FIFO or a device at the path would block the read or never end, and a
// huge file would be read whole into memory. The file is opened without
// blocking, so a FIFO is refused rather than waited on.
func LoadFile(path string, maxBytes int64) (*Artifact, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxArtifactBytes
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) && path == "-" {
		// "-" is standard input to the commands' --data, but an artifact
		// is read from a file; the hint below would say to train with
		// -o -, which train refuses.
		return nil, fmt.Errorf("load artifact: - would be standard input, and a router artifact is read from a file: give its path (./- for a file named -)")
	}
	if errors.Is(err, fs.ErrNotExist) {
		// The commonest first mistake: serving or measuring before
		// training, or a path typed wrong. Say which command makes one.
		return nil, fmt.Errorf("load artifact: %w; no router there yet: make one with 'triage train --data LOG --fast MODEL --strong MODEL -o %s', or check the path", err, path)
	}
	if err != nil {
		return nil, fmt.Errorf("load artifact: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("load artifact: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("load artifact %s: %w: it is %s, not a regular file", path, ErrBadArtifact, safefile.KindOf(fi.Mode()))
	}
	if fi.Size() > maxBytes {
		return nil, fmt.Errorf("load artifact %s: %w: the file is %d bytes, over the limit of %d (limits.max_artifact_bytes)", path, ErrBadArtifact, fi.Size(), maxBytes)
	}
	// A feedback db given as the artifact is told from its first page,
	// before its hundreds of MiB are read.
	head := make([]byte, 64)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("load artifact: %w", err)
	}
	if datasets.IsBoltFile(head[:n]) {
		return nil, fmt.Errorf("load artifact %s: %w: this is a feedback db (a bbolt file), not a router artifact; pass the JSON file 'triage train -o' or 'triage retrain -o' wrote", path, ErrBadArtifact)
	}
	// The file may grow between the stat and the read.
	b, err := io.ReadAll(io.LimitReader(io.MultiReader(bytes.NewReader(head[:n]), f), maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("load artifact: %w", err)
	}
	if int64(len(b)) > maxBytes {
		return nil, fmt.Errorf("load artifact %s: %w: the file grew past the limit of %d bytes while it was read (limits.max_artifact_bytes)", path, ErrBadArtifact, maxBytes)
	}
	// Two files a decoder's "EOF" or "invalid character '\x1f'" would
	// leave unexplained.
	switch {
	case len(b) == 0:
		return nil, fmt.Errorf("load artifact %s: %w: the file is empty (0 bytes); a router artifact is the JSON file 'triage train -o' writes", path, ErrBadArtifact)
	case gunzip.Starts(b):
		return nil, fmt.Errorf("load artifact %s: %w: the file is gzip-compressed; logs may be, artifacts are plain JSON: decompress it first (gunzip)", path, ErrBadArtifact)
	}
	a, err := Parse(b)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		// A copy or a write that did not finish: say so, not just "EOF".
		return nil, fmt.Errorf("load artifact %s: %w; the file ends inside the artifact's JSON after %d bytes: it was cut short (a copy or a write that did not finish); copy it again, or train again", path, err, len(b))
	}
	if err != nil {
		return nil, fmt.Errorf("load artifact %s: %w", path, err)
	}
	return a, nil
}

// Derive returns a copy of a with a new version whose parent is a, for
// commands that change thresholds or weights.
func (a *Artifact) Derive(now time.Time) *Artifact {
	c := *a
	c.Metrics = maps.Clone(a.Metrics)
	c.ExpectedShares = maps.Clone(a.ExpectedShares)
	c.Parent = a.Version
	c.Version = NewVersion(now)
	c.CreatedAt = now.UTC()
	c.Checksum = ""
	return &c
}

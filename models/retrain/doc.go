// Package retrain turns what a server observed into the next router, and
// decides whether it may replace the one serving.
//
// Run merges a champion's training sources with exported feedback
// (MergeRecords), turns the records into labelled examples with their
// exploration propensities (LabelledExamples), fits a challenger on the
// older part (each per-tier head on the records where its tier ran, the
// other tier imputed where the champion can say how it would have done;
// see ImputeMode and HeadEstimator), and compares both routers on the
// newest records neither trained on (Compare): the challenger is promoted
// only when it is not worse than the champion by more than a margin, on
// inverse-propensity-weighted figures with bootstrap intervals.
//
// The package sits above models: it uses models' training, routers and
// artifacts, and models knows nothing of it. docs/loop.md explains the
// estimators and what each measured.
package retrain

// Package models turns labelled examples into a router and serves it: the
// versioned artifact on disk, the training that fits and selects it, the
// policy that turns its p_hard into a decision, and the Router that scores
// a request at serving time exactly as training measured it.
//
// # Training
//
// Train (or TrainDesign, for a log streamed into a Design) fits logistic
// regression heads on hashed features (package features, solver in
// package classifier). Which heads, and each head's L2 strength, are
// chosen inside Train by a K-fold cross-validation on the ranking the
// router is judged on, out-of-fold APGR, with a one-standard-error rule
// towards fewer heads and stronger penalties: the gain scorer (one head
// on the strong tier's gain), per-tier (one head per tier, the score the
// predicted gain) or a blend of both. The meta block is kept only where
// it ranks better than without it. The final heads are fitted on every
// training example, and p_hard is isotonic regression on the chosen
// router's out-of-fold scores, which never reverses their order. Before
// anything routes, Signal says whether the log shows the router beating a
// random one: a router that cannot route, or is not shown to, escalates
// every request by default (NoRoutePolicy). docs/quality.md measures each
// of these choices on the quality suite. TrainTiers does the same for
// routers among more than two tiers.
//
// # Artifacts
//
// An Artifact carries everything serving needs to compute the same p_hard
// (feature spec, weights, calibration, policy) and what a person needs to
// trust it (figures, signal, sources, fingerprint). Save writes it
// atomically; Parse and LoadFile verify JSON, checksum, format version and
// internal consistency (Validate), and every failure that is the file's
// fault wraps ErrBadArtifact.
//
// # Serving
//
// NewRouter (NewTierRouter for N tiers) validates an artifact once; its
// Route is safe for concurrent use and allocates nothing per call in
// steady state. Policy.Decide maps p_hard to fast, speculate or escalate;
// a p_hard that is not a number escalates.
//
// The packages above this one build on it: models/replay replays a policy
// on a log, models/report draws the curves, models/retrain trains the
// next router from served feedback and gates its promotion.
package models

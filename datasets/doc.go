// Package datasets is Triage's data layer: the log record everything else
// learns from, its JSONL form, the labels and splits training uses, and the
// feedback store the server writes.
//
// Records. A Record is one logged request (a prompt or chat messages, meta
// such as subject or tenant) with the Outcome each model produced for it: a
// score in [0,1] and optionally latency, cost, the fast model's confidence
// and the response. Validate checks a record against docs/design.md and returns a
// *FieldError naming the field.
//
// JSONL. Reader streams records one line at a time; memory is bounded by the
// longest line (16 MiB by default, ReadOptions.MaxLineBytes) plus the set of
// ids seen, which is kept to reject duplicates within a file. A bad line is
// a *LineError naming file, line and field ("log.jsonl:3:
// outcomes.gpt-4.score is 7, want a value in [0,1]; ..."), or, with
// ReadOptions.SkipBad, is counted and skipped. Meta values may be JSON
// strings, numbers or booleans and are kept as strings; null means absent.
// EachFile streams a file to a callback; ReadFile collects it;
// EachFileParallel decodes on several goroutines (with the caller's work on
// each record) and still calls back in file order with the same errors.
// Lines of the usual shape are decoded without reflection (by the scanner
// in datasets/jsonscan, which serve's body decoders share), and any other
// line by encoding/json, which also words the errors. Writer writes records
// back, one per line, without HTML escaping.
//
// Labels. Training a router for a (fast, strong) pair turns the two scores
// into a 0/1 target with a Label: "strong-wins" (default; strong beats
// fast), "weak-fails" (fast below 0.5) or "gap:T" (strong minus fast above
// T, ignoring float rounding below 1e-9 so 1-10 grades divided by 10 do not
// flip). ParseLabel reads the command-line form and Label.String writes it.
//
// Splits. InHoldout and Fold place a record by a fixed hash of its id and a
// seed (FNV-1a 64 with a murmur3 finalizer, not hash/maphash), so a record
// lands on the same side and in the same fold on every run and machine, and
// as the log grows. The holdout and the folds are drawn independently.
//
// Feedback store. BoltStore (store.go) keeps the server's decision log and
// the feedback clients post, in one bbolt file that a single process opens
// read-write. A feedback write returns only after its commit (writes from
// many requests share a group commit): an fdatasync'd append to a
// write-ahead log beside the file (wal.go), applied to bbolt when half
// full, before an export or snapshot and at Close, and replayed at open.
// Export turns the store back into records for retraining; Snapshot
// streams a consistent copy of the file.
//
// Damage. Open walks an existing file with a bounds-checked reader of
// bbolt's format (boltfile.go) before bbolt may touch it, then runs bbolt's
// Tx.Check: bbolt trusts its file, and a truncated or corrupt one makes it
// fault or panic where no recover reaches. A damaged file is a
// *DamageError; an empty one is ErrEmptyDB unless StoreOptions.Init. The
// feedback log tells a torn tail from damage to acknowledged records and
// refuses the latter (*WALDamageError) unless StoreOptions.SalvageLog.
// CheckDB reports damage without changing anything; SalvageDB copies
// whatever is readable into a new file; CompactDB rewrites a file without
// its free pages.
//
// One id, one prompt. RequestFingerprint says which prompt an id holds, so
// a caller can refuse another prompt under it; AppendDecisions keeps the
// first record of an id.
//
// Retention. Prune removes records older than a maximum age, and, over a
// size bound, records without feedback before those with, oldest first.
//
// Importers. The subpackage importers converts published routing data
// (RouteLLM's MMLU, GSM8K and MT-Bench files; wide CSVs with a score column
// per model, such as arena-hard grades or RouterBench) into records.
//
// Caveats: ids must be unique within a file but not across files; joining
// several logs with the same ids is the caller's concern. Scores must
// already be in [0,1]; rescaling belongs to the importers.
package datasets

// Package devnet assembles `pouw dev`: a coordinator on the embedded bolt
// store with file blobs and a reaper, a local farm (the scheduler's agent)
// proving with the real backends, and a generator of synthetic intents
// across all tiers (trace/workload), reporting progress and a summary.
//
// It is the one place that wires coordinator and farm together in one
// process; it holds no logic of its own beyond the wiring and the
// coordinator-side Verifier over a backends.Registry. Nothing else in the
// module may import it (tests excepted).
package devnet

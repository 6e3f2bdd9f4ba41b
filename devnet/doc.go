// Package devnet assembles whole processes from the rooms of the module:
// the farm of `pouw farm` (GPU source, slots, metrics endpoint, agent,
// worker processes), and `pouw dev` — a coordinator on the embedded bolt
// store with file blobs and a lease reaper, a local farm proving with the
// real backends, and a generator of synthetic intents across all tiers
// (trace/workload), reporting progress and a summary. It also holds the
// coordinator-side Verifier over a backends.Registry.
//
// It is wiring, not logic: everything it runs lives in coordinator/...,
// scheduler/..., gpu and backends/.... Only cmd/pouw and tests import it.
package devnet

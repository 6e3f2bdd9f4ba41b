// Package devnet assembles whole processes from the rooms of the module:
// the farm of `pouw farm` (GPU source, slots, metrics endpoint, agent,
// worker processes), and `pouw dev` — a coordinator on the embedded bolt
// store with file blobs and a lease reaper, a local farm proving with the
// real backends, and a generator of synthetic intents across all tiers
// (trace/workload) — with DevOptions.BatchBackend, Full work as batches of
// the batch DAG (POST /v1/pouw/batches) — reporting progress and a summary.
//
// It is wiring, not logic: everything it runs lives in coordinator/...,
// scheduler/..., gpu and backends/.... Only cmd/pouw and tests import it.
package devnet

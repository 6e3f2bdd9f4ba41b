// Package pouw holds the domain types of Proof-of-Useful-Work as they travel on
// the wire: ProofJob, JobTier, job states, attempts, prover statistics, events,
// and the deterministic job ID derivation of SPEC.md.
//
// It is the root of the import graph: it imports nothing of this module
// (package trace may import pouw, never the reverse).
package pouw

// Package trace is the contract between the node and the provers: the pouw VM
// v1 (docs/vm.md) — its instruction set, programs and their binary encoding,
// the interpreter that turns an intent into an execution trace, the trace
// layout (column indices) and every constraint of the relation as an
// executable spec (Check), the binary trace format and its BLAKE3 hash
// (docs/trace-format.md), and the tier slicing (Micro windows, Full batches).
//
// Backends prove "this trace is a valid execution of these programs with this
// statement" exactly as Check defines it; they use Check as their oracle.
//
// It imports only package pouw of this module (and its own subpackages),
// never backends, coordinator or scheduler.
package trace

// Package aggregate is the gnark backend of pouwfarm ("aggregate"): one
// Groth16 proof on BLS12-377 per intent (the Macro tier, the docs/vm.md
// relation as an R1CS circuit with Goldilocks emulated), and one Groth16
// proof on BW6-761 that verifies k of them in-circuit (the Full tier in
// aggregate mode, Plonky2's role in SPEC.md). BW6-761's scalar field is
// BLS12-377's base field, so the inner verifier is native arithmetic
// (gnark's std/recursion/groth16).
//
// It owns the two circuits, the statement encoding they prove (statement.go,
// docs/aggregate.md), key setup and key directories, the proof envelope
// (key id + gnark proof) and the backends.Backend implementation.
//
// Groth16 needs a circuit-specific setup. Keys made by Setup come from a
// single party's randomness and are trusted: whoever ran it can forge
// proofs. Production keys come from gnark's mpcsetup ceremony
// (docs/aggregate.md).
//
// It imports pouw, trace and backends of this module, never coordinator,
// scheduler or farm code. gnark's Prove takes no context: a caller that
// must stop proving promptly runs it in a worker process it can kill.
package aggregate

// Package plonkish is the Halo2-style backend ("plonkish"): docs/vm.md's
// relation as a PLONKish circuit over BN254 with a transparent IPA
// commitment (no trusted setup), implementing backends.Backend.
//
// Layers, each in its own package and tested on its own: ipa (commitment,
// multiopen, transcript), circuit (the PLONKish system: keygen, prover,
// verifier, MockProver), goldilocks (the Goldilocks-in-BN254 gadget), and
// here the VM circuit (vm.go) and the Backend.
//
// It imports trace, pouw and backends only (never coordinator or
// scheduler). docs/plonkish.md describes the circuit and the proof format.
package plonkish

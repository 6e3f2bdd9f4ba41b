// Package ipa is a transparent polynomial commitment scheme over BN254 G1:
// Pedersen vector commitments to coefficient vectors, opened with a
// Bulletproofs-style inner-product argument (IPA), plus Halo2's batched
// multi-point opening ("multiopen") and the BLAKE3 Fiat–Shamir transcript
// the plonkish backend uses throughout.
//
// Generators. G_i = HashToG1(seed || "G" || be32(i)) and
// U = HashToG1(seed || "U"), with RFC 9380's hash-to-curve for BN254 G1
// (SVDW map, expand_message_xmd with SHA-256, random-oracle variant) under
// the domain separation tag DST below. Nobody knows a discrete-log relation
// between them, and anybody can recompute them: there is no trusted setup.
// G_i does not depend on the size, so the generators of size 2^k are a
// prefix of those of any larger size (one cache serves every k).
//
// Commitments are not hiding: the traces the farm proves are public, so
// zero knowledge buys nothing and blinding would only cost time. The
// scheme is binding under the discrete-log assumption in G1.
//
// The package owns the commitment scheme only; it must not import the
// circuit layer, trace or anything outside gnark-crypto and BLAKE3.
package ipa

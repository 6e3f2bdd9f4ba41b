//go:build !icicle

package aggregate

import (
	"log/slog"

	"github.com/consensys/gnark/backend"
	"github.com/consensys/gnark/backend/groth16"
	"github.com/consensys/gnark/backend/witness"
	"github.com/consensys/gnark/constraint"
)

// GPUAccelerated reports whether this binary was built with the icicle tag,
// whose Groth16 prover runs on NVIDIA GPUs through ICICLE (docs/gpu.md).
// The default build is pure Go and proves on the CPU.
func GPUAccelerated() bool { return false }

// accel is the Groth16 prover of a build without the icicle tag: gnark's
// CPU prover.
type accel struct{}

func newAccel(*slog.Logger) *accel { return &accel{} }

// devices returns how many GPUs the prover uses (none), and why.
func (*accel) devices() (int, string) { return 0, "built without the icicle tag" }

func (*accel) prove(ccs constraint.ConstraintSystem, pk groth16.ProvingKey, w witness.Witness, opts ...backend.ProverOption) (groth16.Proof, error) {
	return groth16.Prove(ccs, pk, w, opts...)
}

package aggregate

import "errors"

// ErrGPU is wrapped by a failure of the GPU prover of the icicle build
// (an ICICLE or CUDA error during a proof).
var ErrGPU = errors.New("aggregate: GPU prover failed")

// GPU memory per constraint of an ICICLE proof, from the sizes of what it
// puts on the device, not measured on a GPU (docs/gpu.md): the MSM bases
// (four G1 and one G2 point per wire, wires ≈ constraints) and seven
// scalar vectors, doubled for the power-of-two domain. BLS12-377: 4×96 +
// 192 + 7×32 = 800 bytes; BW6-761: 4×192 + 192 + 7×48 = 1296 bytes.
const (
	innerGPUBytesPerConstraint = 2 * 800
	outerGPUBytesPerConstraint = 2 * 1296
)

// HasGPUPath reports whether this backend proves on a GPU: only in a binary
// built with the icicle tag, when ICICLE's CUDA backend loaded and found a
// device (the farm then gives it GPU slots; scheduler/agent.GPUProver).
func (b *Backend) HasGPUPath() bool {
	n, _ := b.accel.devices()
	return n > 0
}

// GPU returns how many GPUs the backend proves on, and why none.
func (b *Backend) GPU() (devices int, reason string) { return b.accel.devices() }

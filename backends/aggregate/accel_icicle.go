//go:build icicle

package aggregate

import (
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"

	"github.com/consensys/gnark/backend"
	"github.com/consensys/gnark/backend/accelerated/icicle"
	icicle_bls12377 "github.com/consensys/gnark/backend/accelerated/icicle/groth16/bls12-377"
	icicle_bw6761 "github.com/consensys/gnark/backend/accelerated/icicle/groth16/bw6-761"
	"github.com/consensys/gnark/backend/groth16"
	groth16_bls12377 "github.com/consensys/gnark/backend/groth16/bls12-377"
	groth16_bw6761 "github.com/consensys/gnark/backend/groth16/bw6-761"
	"github.com/consensys/gnark/backend/witness"
	"github.com/consensys/gnark/constraint"
	cs_bls12377 "github.com/consensys/gnark/constraint/bls12-377"
	cs_bw6761 "github.com/consensys/gnark/constraint/bw6-761"
	icicle_runtime "github.com/ingonyama-zk/icicle-gnark/v3/wrappers/golang/runtime"
)

// GPUAccelerated reports whether this binary was built with the icicle tag,
// whose Groth16 prover runs on NVIDIA GPUs through ICICLE (docs/gpu.md).
// This build was.
func GPUAccelerated() bool { return true }

// accel is the Groth16 prover of the icicle build: gnark's ICICLE prover on
// device 0 of the given ICICLE backend when one is there, gnark's CPU prover
// otherwise. The farm pins a worker process to one GPU with
// CUDA_VISIBLE_DEVICES, so device 0 is the slot's GPU.
type accel struct {
	backend icicle.Backend
	n       int    // devices ICICLE found; 0: prove on the CPU
	reason  string // why n is 0

	mu   sync.Mutex
	keys map[groth16.ProvingKey]groth16.ProvingKey // gnark's key -> its ICICLE copy
}

func newAccel(log *slog.Logger) *accel { return newAccelOn(log, icicle.CUDA) }

// newAccelOn probes ICICLE's backend b (CUDA in production; tests use its
// built-in CPU backend, which needs no GPU).
func newAccelOn(log *slog.Logger, b icicle.Backend) *accel {
	a := &accel{backend: b, keys: map[groth16.ProvingKey]groth16.ProvingKey{}}
	a.n, a.reason = probe(b)
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if a.n > 0 {
		log.Info("aggregate: Groth16 proving on GPU with ICICLE", "icicle_backend", b.String(), "devices", a.n)
	} else {
		log.Warn("aggregate: built with icicle but no ICICLE device; proving on the CPU", "icicle_backend", b.String(), "reason", a.reason)
	}
	return a
}

// probe loads ICICLE's backend b and counts its devices.
func probe(b icicle.Backend) (n int, reason string) {
	if b != icicle.CPU { // the CPU backend is built into ICICLE's libraries
		if e := icicle_runtime.LoadBackendFromEnvOrDefault(); e != icicle_runtime.Success {
			return 0, fmt.Sprintf("ICICLE's %s backend did not load from $ICICLE_BACKEND_INSTALL_DIR (%q) nor /opt/icicle/lib/backend: %s",
				b, os.Getenv("ICICLE_BACKEND_INSTALL_DIR"), e.AsString())
		}
	}
	dev := icicle_runtime.CreateDevice(b.String(), 0)
	if !icicle_runtime.IsDeviceAvailable(&dev) {
		return 0, fmt.Sprintf("ICICLE has no %s device type registered (no %s backend library in the backend directory)", b, b)
	}
	// ICICLE's device is per OS thread, and a thread whose SetDevice fails
	// stays on ICICLE's CPU device, which would count itself: set and count
	// on a thread of our own, which exits with the goroutine (never
	// unlocked), taking the device setting with it.
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() {
			if r := recover(); r != nil {
				n, reason = 0, fmt.Sprintf("ICICLE panicked: %v", r)
			}
		}()
		runtime.LockOSThread()
		if e := icicle_runtime.SetDevice(&dev); e != icicle_runtime.Success {
			n, reason = 0, fmt.Sprintf("ICICLE cannot use %s device 0 (CUDA_VISIBLE_DEVICES=%q): %s", b, os.Getenv("CUDA_VISIBLE_DEVICES"), e.AsString())
			return
		}
		var e icicle_runtime.EIcicleError
		if n, e = icicle_runtime.GetDeviceCount(); e != icicle_runtime.Success {
			n, reason = 0, fmt.Sprintf("counting %s devices: %s", b, e.AsString())
		} else if n == 0 {
			reason = fmt.Sprintf("ICICLE found no %s device", b)
		}
	}()
	<-done
	return n, reason
}

// devices returns how many devices ICICLE proves on, and why none.
func (a *accel) devices() (int, string) { return a.n, a.reason }

func (a *accel) prove(ccs constraint.ConstraintSystem, pk groth16.ProvingKey, w witness.Witness, opts ...backend.ProverOption) (proof groth16.Proof, err error) {
	if a.n == 0 {
		return groth16.Prove(ccs, pk, w, opts...)
	}
	dpk, err := a.deviceKey(pk)
	if err != nil {
		return nil, err
	}
	io := []icicle.Option{icicle.WithBackend(a.backend)}
	if len(opts) > 0 {
		io = append(io, icicle.WithProverOptions(opts...))
	}
	cfg, err := icicle.NewConfig(io...)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrGPU, err)
	}
	// gnark's ICICLE prover panics on device errors; those raised on the
	// calling goroutine become errors here (a panic on one of its own
	// goroutines ends the process, which is why the farm proves this
	// backend in worker processes).
	defer func() {
		if r := recover(); r != nil {
			proof, err = nil, fmt.Errorf("%w: ICICLE %s prover: %v", ErrGPU, a.backend, r)
		}
	}()
	// The per-curve provers, not icicle/groth16.Prove: that one links
	// ICICLE's libraries of all four curves gnark supports; these two need
	// only BLS12-377's and BW6-761's.
	switch r1cs := ccs.(type) {
	case *cs_bls12377.R1CS:
		proof, err = icicle_bls12377.Prove(r1cs, dpk.(*icicle_bls12377.ProvingKey), w, cfg)
	case *cs_bw6761.R1CS:
		proof, err = icicle_bw6761.Prove(r1cs, dpk.(*icicle_bw6761.ProvingKey), w, cfg)
	default:
		return nil, fmt.Errorf("%w: no ICICLE prover for %T", ErrGPU, ccs)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: ICICLE %s prover: %w", ErrGPU, a.backend, err)
	}
	return proof, nil
}

// deviceKey returns the ICICLE proving key of pk, made once: it shares pk's
// vectors and keeps what ICICLE precomputes on the device between proofs.
func (a *accel) deviceKey(pk groth16.ProvingKey) (groth16.ProvingKey, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if d, ok := a.keys[pk]; ok {
		return d, nil
	}
	var d groth16.ProvingKey
	switch k := pk.(type) {
	case *groth16_bls12377.ProvingKey:
		d = &icicle_bls12377.ProvingKey{ProvingKey: *k}
	case *groth16_bw6761.ProvingKey:
		d = &icicle_bw6761.ProvingKey{ProvingKey: *k}
	default:
		return nil, fmt.Errorf("%w: no ICICLE proving key for %T", ErrGPU, pk)
	}
	a.keys[pk] = d
	return d, nil
}

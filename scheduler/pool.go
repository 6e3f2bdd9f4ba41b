package scheduler

import (
	"sync"

	"github.com/pouwfarm/pouwfarm/gpu"
)

// Pool is an Allocator shared by the agent's goroutines. Every method is
// atomic; the algorithm itself stays lock-free in Allocator.
type Pool struct {
	mu sync.Mutex
	a  Allocator
}

// NewPool returns a pool over a (which the pool now owns).
func NewPool(a Allocator) *Pool { return &Pool{a: a} }

// Reservation is a job placed and reserved on a slot. Release it on every
// exit path (defer r.Release()); releasing more than once is harmless.
type Reservation struct {
	pool *Pool
	once sync.Once
	p    Placement
}

// Placement returns where the job was placed and what it holds.
func (r *Reservation) Placement() Placement { return r.p }

// Release gives the slot's resources back, once.
func (r *Reservation) Release() {
	r.once.Do(func() {
		r.pool.mu.Lock()
		defer r.pool.mu.Unlock()
		// Cannot fail: the reservation came from this pool and once guards
		// a second release.
		_ = r.pool.a.Release(r.p)
	})
}

// Acquire places j on the best slot and reserves it. The error wraps
// ErrNoFit (a *NoFitError) when no slot can take it now.
func (p *Pool) Acquire(j Job) (*Reservation, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pl, err := p.a.PlaceAndReserve(j)
	if err != nil {
		return nil, err
	}
	return &Reservation{pool: p, p: pl}, nil
}

// Claims returns what the free slots can take now (Allocator.Claims).
func (p *Pool) Claims() []Claim {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.a.Claims()
}

// Snapshot returns a copy of the allocator, to inspect or try placements on.
func (p *Pool) Snapshot() Allocator {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.a.Copy()
}

// SetHealth takes a slot out of service (reason non-empty) or back in.
func (p *Pool) SetHealth(slot, reason string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.a.SetHealth(slot, reason)
}

// SyncGPUHealth takes every GPU slot whose device is now unhealthy out of
// service, with the device's reason. Devices are as gpu.Source reports them.
func (p *Pool) SyncGPUHealth(devs []gpu.Device) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range devs {
		for i := range p.a.slots {
			s := &p.a.slots[i]
			if s.Kind == GPU && s.GPUIndex == d.Index {
				if d.Healthy {
					s.unhealthy = ""
				} else {
					s.unhealthy = d.UnhealthyReason
				}
			}
		}
	}
}

//go:build cgo

package scheduler_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"github.com/pouwfarm/pouwfarm/gpu"
	"github.com/pouwfarm/pouwfarm/scheduler"
)

// From go-nvml's DGX H100 mock to placements: eight 80 GiB GPU slots; an
// XID on GPU 5 takes exactly that slot out of placement and claims.
func TestDGXH100GPUsBecomeSlotsAndAnXIDTakesOneOut(t *testing.T) {
	srv := dgxh100.New()
	events := make(chan nvml.EventData, 1)
	srv.EventSetCreateFunc = func() (nvml.EventSet, nvml.Return) {
		return &mock.EventSet{
			WaitFunc: func(ms uint32) (nvml.EventData, nvml.Return) {
				select {
				case e := <-events:
					return e, nvml.SUCCESS
				case <-time.After(time.Duration(ms) * time.Millisecond):
					return nvml.EventData{}, nvml.ERROR_TIMEOUT
				}
			},
			FreeFunc: func() nvml.Return { return nvml.SUCCESS },
		}, nvml.SUCCESS
	}
	for _, d := range srv.Devices {
		dev := d.(*server.Device)
		dev.GetSupportedEventTypesFunc = func() (uint64, nvml.Return) { return nvml.EventTypeXidCriticalError, nvml.SUCCESS }
		dev.RegisterEventsFunc = func(uint64, nvml.EventSet) nvml.Return { return nvml.SUCCESS }
	}
	changed := make(chan gpu.Device, 1)
	m := gpu.New(srv, nil, gpu.WithEventWait(10*time.Millisecond), gpu.WithHealthChange(func(d gpu.Device) { changed <- d }))

	slots, excl, err := scheduler.DeviceModel(scheduler.HostOptions{GPUs: scheduler.GPUSelection{All: true}}, m.Devices(), m.Unavailable())
	if err != nil || len(excl) != 0 || len(slots) != 8 {
		t.Fatalf("slots %v, exclusions %v, %v", slots, excl, err)
	}
	for _, s := range slots {
		if s.Kind != scheduler.GPU || s.Capacity.MemoryBytes != 80*GiB {
			t.Errorf("slot %+v, want a GPU slot of 80 GiB", s)
		}
	}
	pool := scheduler.NewPool(mustAlloc(t, slots, stark))

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() { _ = m.WatchHealth(ctx) }()
	events <- nvml.EventData{Device: srv.Devices[5], EventType: nvml.EventTypeXidCriticalError, EventData: 48}
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("XID 48 did not mark GPU 5 unhealthy")
	}
	pool.SyncGPUHealth(m.Devices()) // what the agent does before each claim

	var used []string
	for i := 0; i < 8*2; i++ { // two jobs per GPU fill every healthy one
		r, err := pool.Acquire(job("j", full, "stark", 1<<20))
		if err != nil {
			if i < 7*2 {
				t.Fatalf("job %d not placed: %v", i, err)
			}
			if !strings.Contains(err.Error(), "gpu5: unhealthy: XID 48") {
				t.Errorf("rejection does not name the unhealthy GPU: %v", err)
			}
			break
		}
		used = append(used, r.Placement().Slot)
	}
	if slices.Contains(used, "gpu5") || len(used) != 14 {
		t.Errorf("placements %v: want 14 on the 7 healthy GPUs, none on gpu5", used)
	}
}

package devnet_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/devnet"
	"github.com/pouwfarm/pouwfarm/gpu"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/scheduler"
	"github.com/pouwfarm/pouwfarm/trace"
	"github.com/pouwfarm/pouwfarm/trace/workload"
)

// BenchmarkFarmThroughput measures jobs per second through the coordinator
// and a farm of 2 CPU slots (claim, download, BLAKE3 check, prove, submit,
// verify, complete) against the same proofs proved and verified back to back
// in one process by 2 goroutines. It reports both rates, their ratio and the
// orchestration overhead per job (extra slot time per job). Run with a fixed
// count: -bench FarmThroughput -benchtime 20x.
func BenchmarkFarmThroughput(b *testing.B) {
	const slots = 2
	// 4096 steps prove in ~130 ms on an idle 2-core host: the issue measures
	// orchestration against jobs of at least ~100 ms of proving.
	for _, steps := range []uint64{1024, 4096} {
		b.Run(fmt.Sprintf("stark/macro/steps=%d", steps), func(b *testing.B) {
			traces := make([]*trace.Trace, b.N)
			for i := range traces {
				tr, err := workload.Macro("mimc", uint64(i)+1, steps)
				if err != nil {
					b.Fatal(err)
				}
				traces[i] = tr
			}
			reg, err := devnet.Backends()
			if err != nil {
				b.Fatal(err)
			}

			// Baseline: prove and verify back to back, 2 at a time.
			st, _ := reg.Get("stark")
			baseStart := time.Now()
			var wg sync.WaitGroup
			next := make(chan *trace.Trace)
			for w := 0; w < slots; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for tr := range next {
						h, err := trace.Hash(tr)
						if err != nil {
							b.Error(err)
							return
						}
						stmt := backends.Statement{Header: &tr.Header, TraceHash: h, JobID: "0123456789abcdef0123456789abcdef", ProverID: "bench"}
						proof, err := st.Prove(context.Background(), tr, stmt)
						if err != nil {
							b.Error(err)
							return
						}
						if err := st.Verify(context.Background(), stmt, proof); err != nil {
							b.Error(err)
						}
					}
				}()
			}
			for _, tr := range traces {
				next <- tr
			}
			close(next)
			wg.Wait()
			base := time.Since(baseStart)

			// Through the coordinator and a farm.
			c := startCoordinatorB(b)
			defer c.Close()
			admin := adminOfB(b, c)
			var ids []string
			for _, tr := range traces {
				var buf bytes.Buffer
				if err := trace.Encode(&buf, tr); err != nil {
					b.Fatal(err)
				}
				info, err := admin.UploadBlob(context.Background(), buf.Bytes())
				if err != nil {
					b.Fatal(err)
				}
				if _, err := admin.Deposit(context.Background(), 10, "bench"); err != nil {
					b.Fatal(err)
				}
				resp, err := admin.Ingest(context.Background(), pouw.IngestRequest{Tier: pouw.TierMacro, IntentID: tr.Header.IntentID,
					TraceHash: info.Hash, FeeBudget: 10, RewardBudget: 10})
				if err != nil {
					b.Fatal(err)
				}
				ids = append(ids, resp.Job.JobID)
			}
			pr, err := admin.RegisterProver(context.Background(), "bench-farm")
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			farmStart := time.Now()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			farmReg := prometheus.NewRegistry()
			go func() {
				done <- devnet.RunFarm(ctx, devnet.FarmOptions{
					Registry:    farmReg,
					Coordinator: c.URL, Token: pr.Token, ProverID: "bench-farm",
					Host: scheduler.HostOptions{CPUCores: slots, HostMemoryBytes: 8 << 30}, GPUs: gpu.Null{Reason: "bench"},
					Backends: reg, IdleMin: 5 * time.Millisecond, IdleMax: 50 * time.Millisecond,
				})
			}()
			for _, id := range ids {
				for {
					j, err := admin.Job(context.Background(), id)
					if err != nil {
						b.Fatal(err)
					}
					if j.State == pouw.StateCompleted {
						break
					}
					if j.State == pouw.StateDead {
						b.Fatalf("job %s dead: %s", id, j.DeadReason)
					}
					time.Sleep(2 * time.Millisecond)
				}
			}
			farm := time.Since(farmStart)
			b.StopTimer()
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}

			n := float64(b.N)
			farmRate, baseRate := n/farm.Seconds(), n/base.Seconds()
			b.ReportMetric(farmRate, "jobs/s")
			b.ReportMetric(baseRate, "baseline-jobs/s")
			b.ReportMetric(farmRate/baseRate, "ratio")
			b.ReportMetric(float64((farm-base).Milliseconds())*slots/n, "overhead-ms/job")
			// Measured directly: mean claim (granted) + download + submit
			// (which includes the coordinator's verification).
			mean := func(name, label, value string) float64 {
				mfs, err := farmReg.Gather()
				if err != nil {
					b.Fatal(err)
				}
				for _, mf := range mfs {
					if mf.GetName() != name {
						continue
					}
					for _, m := range mf.GetMetric() {
						for _, l := range m.GetLabel() {
							if l.GetName() == label && l.GetValue() == value && m.GetHistogram().GetSampleCount() > 0 {
								return m.GetHistogram().GetSampleSum() / float64(m.GetHistogram().GetSampleCount())
							}
						}
					}
				}
				return 0
			}
			claim := mean("pouw_farm_claim_duration_seconds", "result", "granted")
			dl := mean("pouw_farm_stage_duration_seconds", "stage", "download")
			sub := mean("pouw_farm_stage_duration_seconds", "stage", "submit")
			b.ReportMetric(claim*1000, "claim-ms")
			b.ReportMetric(dl*1000, "download-ms")
			b.ReportMetric(sub*1000, "submit+verify-ms")
		})
	}
}

func startCoordinatorB(b *testing.B) *devnet.Coordinator {
	reg, err := devnet.Backends()
	if err != nil {
		b.Fatal(err)
	}
	c, err := devnet.StartCoordinator(devnet.CoordinatorOptions{
		DataDir: b.TempDir(), Addr: "127.0.0.1:0", AdminToken: "devnet-bench-admin-token-0123456789", Backends: reg,
	})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

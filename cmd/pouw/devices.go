package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pouwfarm/pouwfarm/gpu"
	"github.com/pouwfarm/pouwfarm/scheduler"
	"github.com/pouwfarm/pouwfarm/scheduler/agent"
)

func init() { commands = append(commands, newDevicesCmd) }

// farmHostFlags are the flags that say what of this host a farm uses; pouw
// devices, pouw farm and pouw dev share them.
type farmHostFlags struct {
	cpu          int
	coresPerSlot int
	gpus         string
	jobsPerGPU   int
	memory       int64
	maxTrace     int64
}

func (h *farmHostFlags) register(f *pflag.FlagSet) {
	f.IntVar(&h.cpu, "cpu", runtime.NumCPU(), "CPU cores given to proving (0: no CPU slots) [POUW_CPU]")
	f.IntVar(&h.coresPerSlot, "cores-per-slot", 1, "cores per CPU slot; each slot proves one job at a time [POUW_CORES_PER_SLOT]")
	f.StringVar(&h.gpus, "gpus", "all", "GPUs to use: all, none, or NVML indices like 0,1 [POUW_GPUS]")
	f.IntVar(&h.jobsPerGPU, "jobs-per-gpu", 2, "proofs one GPU runs at once while its memory lasts [POUW_JOBS_PER_GPU]")
	f.Int64Var(&h.memory, "memory", 0, "host memory in bytes shared by the CPU slots (0: 80% of physical memory) [POUW_MEMORY]")
	f.Int64Var(&h.maxTrace, "max-trace-bytes", 0, "largest trace a slot accepts (0: bounded only by memory) [POUW_MAX_TRACE_BYTES]")
}

// options turns the flags into the scheduler's host options.
func (h *farmHostFlags) options(sel scheduler.GPUSelection) scheduler.HostOptions {
	mem := h.memory
	if mem == 0 {
		mem = scheduler.HostMemoryBytes() / 10 * 8
	}
	return scheduler.HostOptions{
		CPUCores: h.cpu, CoresPerSlot: h.coresPerSlot, HostMemoryBytes: mem,
		GPUs: sel, JobsPerGPU: h.jobsPerGPU, MaxTraceBytes: h.maxTrace,
	}
}

// model discovers GPUs through src and builds this host's slots.
func (h *farmHostFlags) model(src gpu.Source) ([]scheduler.Slot, []scheduler.Exclusion, error) {
	sel, err := scheduler.ParseGPUSelection(h.gpus)
	if err != nil {
		return nil, nil, err
	}
	return scheduler.DeviceModel(h.options(sel), src.Devices(), src.Unavailable())
}

func newDevicesCmd() *cobra.Command {
	var host farmHostFlags
	var asJSON bool
	var aggKeys aggregateKeysFlag
	cmd := &cobra.Command{
		Use:   "devices",
		Short: "List the CPU and GPU slots this host would schedule proofs on",
		Long: `List the slots a farm on this host would schedule proofs on: CPU slots
(groups of --cores-per-slot cores sharing --memory) and one slot per NVIDIA GPU
found through NVML (its memory is the resource), and every device left out
with the reason (not selected by --gpus, MIG enabled, unhealthy, no driver),
and the claims an idle farm on this host would make: per slot, the tiers in
its order of preference, the backends and the largest trace that fits now.

Without the NVIDIA driver (or in a build without cgo) there are no GPU slots;
the farm then runs CPU-only.`,
		Example: `  pouw devices
  pouw devices --cpu 8 --cores-per-slot 2 --gpus 0,1 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnvTwins(cmd, "POUW_"); err != nil {
				return err
			}
			logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			src := openGPUs(logger, host.gpus)
			if c, ok := src.(interface{ Close() error }); ok {
				defer c.Close()
			}
			slots, excl, err := host.model(src)
			if err != nil {
				return err
			}
			var bc backendConfig
			if err := aggKeys.load(&bc); err != nil {
				return err
			}
			reg, err := newRegistry(bc)
			if err != nil {
				return err
			}
			alloc, err := scheduler.NewAllocator(slots, agent.SchedulerBackends(reg))
			if err != nil {
				return err
			}
			claims := alloc.Claims()
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{
					"slots": nonNil(slots), "excluded": nonNil(excl), "gpus": nonNil(src.Devices()), "gpu_unavailable": src.Unavailable(),
					"claims": nonNil(claims),
				})
			}
			return printDevices(cmd, slots, excl, claims)
		},
	}
	host.register(cmd.Flags())
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	aggKeys.register(cmd.Flags())
	return cmd
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func printDevices(cmd *cobra.Command, slots []scheduler.Slot, excl []scheduler.Exclusion, claims []scheduler.Claim) error {
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SLOT\tKIND\tCORES\tMEMORY\tJOBS\tDEVICE")
	for _, s := range slots {
		cores := "-"
		if s.Kind == scheduler.CPU {
			cores = strconv.Itoa(s.Capacity.Cores)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\n", s.ID, s.Kind, cores, humanBytes(s.Capacity.MemoryBytes), s.MaxJobs, s.Device)
	}
	if len(slots) == 0 {
		fmt.Fprintln(w, "(none)\t\t\t\t\t")
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if len(excl) > 0 {
		fmt.Fprintln(cmd.OutOrStdout())
		w = tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "EXCLUDED\tREASON")
		for _, e := range excl {
			fmt.Fprintf(w, "%s\t%s\n", e.Device, e.Reason)
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
	if len(claims) > 0 {
		fmt.Fprintln(cmd.OutOrStdout())
		w = tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "CLAIM (idle farm)\tTIERS\tBACKENDS\tMAX TRACE")
		for _, c := range claims {
			tiers := make([]string, len(c.Tiers))
			for i, t := range c.Tiers {
				tiers[i] = t.String()
			}
			max := "no bound"
			if c.MaxTraceBytes > 0 {
				max = humanBytes(c.MaxTraceBytes)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", c.Slot, strings.Join(tiers, ","), strings.Join(c.Backends, ","), max)
		}
		return w.Flush()
	}
	return nil
}

func humanBytes(b int64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := int64(unit), 0
	for n := b / unit; n >= unit; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTPE"[exp])
}

// openGPUs opens NVML unless --gpus none says not to look.
func openGPUs(logger *slog.Logger, sel string) gpu.Source {
	if strings.TrimSpace(sel) == "none" {
		return gpu.Null{Reason: "--gpus none"}
	}
	return gpu.Open(logger)
}

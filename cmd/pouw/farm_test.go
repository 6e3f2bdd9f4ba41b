package main

import (
	"bytes"
	"slices"
	"testing"

	"github.com/pouwfarm/pouwfarm/scheduler"
)

func TestFarmRefusesNonsensicalFlagsWithOneLine(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--drain-grace", "-1s"}, "--drain-grace must be ≥ 0"},
		{[]string{"--cores-per-slot", "0"}, "--cores-per-slot must be ≥ 1"},
		{[]string{"--cpu", "-3"}, "--cpu must be ≥ 0"},
		{[]string{"--memory", "-1"}, "--memory must be ≥ 0"},
		{[]string{"--jobs-per-gpu", "0"}, "--jobs-per-gpu must be ≥ 1"},
		{[]string{"--max-trace-bytes", "-5"}, "--max-trace-bytes must be ≥ 0"},
		{[]string{"--isolate", "stark,bogus"}, `--isolate: unknown backend "bogus" (want all, none, or a comma list of plonkish, stark, aggregate)`},
		{nil, "--coordinator and --token are required (or POUW_COORDINATOR, POUW_TOKEN)"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			t.Setenv("POUW_COORDINATOR", "")
			t.Setenv("POUW_TOKEN", "")
			args := append([]string{"farm"}, tc.args...)
			if tc.args != nil {
				args = append(args, "--coordinator", "http://127.0.0.1:1", "--token", "x", "--gpus", "none")
			}
			root := newRootCmd()
			root.SetArgs(args)
			var out bytes.Buffer
			root.SetOut(&out)
			root.SetErr(&out)
			err := root.Execute()
			if err == nil || err.Error() != tc.want {
				t.Fatalf("pouw %v = %v, want %q", args, err, tc.want)
			}
		})
	}
}

func TestWorkerEnvShowsEachWorkerOnlyItsGPU(t *testing.T) {
	for _, tc := range []struct {
		slot scheduler.Slot
		want []string
	}{
		{scheduler.Slot{ID: "cpu0", Kind: scheduler.CPU, GPUIndex: -1, Capacity: scheduler.Resources{Cores: 4}},
			[]string{"GOMAXPROCS=4", "CUDA_DEVICE_ORDER=PCI_BUS_ID", "CUDA_VISIBLE_DEVICES="}},
		{scheduler.Slot{ID: "gpu3", Kind: scheduler.GPU, GPUIndex: 3},
			[]string{"GOMAXPROCS=1", "CUDA_DEVICE_ORDER=PCI_BUS_ID", "CUDA_VISIBLE_DEVICES=3"}},
	} {
		if got := workerEnv(tc.slot); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.slot.ID, got, tc.want)
		}
	}
}

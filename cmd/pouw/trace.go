package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/zeebo/blake3"

	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
	"github.com/pouwfarm/pouwfarm/trace/workload"
)

func init() { commands = append(commands, newTraceCmd) }

func newTraceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "trace",
		Short: "Make, inspect and assemble pouw VM traces (docs/vm.md)",
		Long: `Tools for the pouw VM v1 and its execution traces (docs/vm.md,
docs/trace-format.md): generate a trace from a workload, inspect and check a
trace file, assemble a program.`,
	}
	cmd.AddCommand(newTraceGenCmd(), newTraceInspectCmd(), newTraceAsmCmd())
	return cmd
}

// parseSteps accepts 65536, 2^16 or 64k.
func parseSteps(s string) (uint64, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	if b, e, ok := strings.Cut(s, "^"); ok {
		base, err1 := strconv.ParseUint(b, 10, 64)
		exp, err2 := strconv.ParseUint(e, 10, 8)
		if err1 != nil || err2 != nil || base != 2 || exp > 40 {
			return 0, fmt.Errorf("steps %q: want a number, 2^k or Nk", s)
		}
		return 1 << exp, nil
	}
	mult := uint64(1)
	if strings.HasSuffix(s, "k") {
		mult, s = 1000, strings.TrimSuffix(s, "k")
	} else if strings.HasSuffix(s, "m") {
		mult, s = 1000_000, strings.TrimSuffix(s, "m")
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("steps %q: want a number, 2^k or Nk", s)
	}
	return v * mult, nil
}

// checkGenSteps refuses a step count whose trace the VM cannot hold
// (docs/vm.md: N ≤ 2^28 rows) before any work starts, saying how much memory
// it would have needed: generating it would run for a long time only to
// fail.
func checkGenSteps(arg string, steps uint64) error {
	const maxSteps = uint64(1) << trace.MaxLogRows
	if steps == 0 {
		return fmt.Errorf("--steps %s: want at least 1", arg)
	}
	if steps <= maxSteps {
		return nil
	}
	rows := uint64(1) << bits.Len64(steps-1) // the power of two the trace would pad to
	mem := "more than 8 EiB"
	if rows <= math.MaxInt64/(trace.Width*8) {
		mem = humanBytes(int64(rows * trace.Width * 8))
	}
	return fmt.Errorf("--steps %s: a VM trace holds at most 2^%d rows (docs/vm.md), and this one would need %s of rows in memory",
		arg, trace.MaxLogRows, mem)
}

func newTraceGenCmd() *cobra.Command {
	var (
		name, stepsArg, tierArg, out string
		seed, window, windowIndex    uint64
		intents                      int
		asJSON                       bool
	)
	cmd := &cobra.Command{
		Use:   "gen",
		Short: "Generate a trace from a workload and write it to a file",
		Long: `Generate a trace of a workload (fib, mimc, poly, transfers), deterministic
from --seed and sized by --steps, and write its binary encoding to --out.
Prints the trace_hash (BLAKE3 of the file; b3sum FILE prints the same) and
the sizes.

Tiers (docs/vm.md §10):
  macro  one intent of about --steps steps
  full   --intents intents back to back, about --steps steps in total
  micro  window --window-index (W = --window rows) of the macro trace`,
		Example: `  pouw trace gen --workload fib --steps 65536 --tier macro --out fib.trace
  pouw trace gen --workload transfers --steps 2^14 --tier full --intents 8 --out batch.trace
  pouw trace gen --workload mimc --steps 4096 --tier micro --window 16 --window-index 3 --out w3.trace`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnvTwins(cmd, "POUW_"); err != nil {
				return err
			}
			steps, err := parseSteps(stepsArg)
			if err != nil {
				return err
			}
			tier, err := pouw.ParseTier(tierArg)
			if err != nil {
				return fmt.Errorf("--tier: %w", err)
			}
			if out == "" {
				return errors.New("--out is required")
			}
			if err := checkGenSteps(stepsArg, steps); err != nil {
				return err
			}
			t0 := time.Now()
			var tr *trace.Trace
			var windows uint64
			// The VM loop takes no context, so generation runs beside the
			// command and an interrupt (cmd.Context() is cancelled on
			// SIGINT/SIGTERM) returns at once; the process then exits,
			// taking the abandoned generation with it.
			done := make(chan struct{})
			go func() {
				defer close(done)
				switch tier {
				case pouw.TierMacro:
					tr, err = workload.Macro(name, seed, steps)
				case pouw.TierFull:
					tr, err = workload.Full(name, seed, steps, intents)
				case pouw.TierMicro:
					var macro *trace.Trace
					if macro, err = workload.Macro(name, seed, steps); err == nil {
						windows = trace.Windows(macro, max(window, 1))
						tr, err = trace.Window(macro, window, windowIndex)
					}
				}
			}()
			select {
			case <-done:
			case <-cmd.Context().Done():
				return fmt.Errorf("trace gen interrupted: %w", context.Cause(cmd.Context()))
			}
			if err != nil {
				return err
			}
			genTime := time.Since(t0)
			f, err := os.Create(out)
			if err != nil {
				return err
			}
			hs := blake3.New()
			bw := bufio.NewWriterSize(io.MultiWriter(f, hs), 1<<20)
			err = trace.Encode(bw, tr)
			if err == nil {
				err = bw.Flush()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("write %s: %w", out, err)
			}
			var th pouw.Hash
			copy(th[:], hs.Sum(nil))
			h := &tr.Header
			size := trace.EncodedSize(h)
			if asJSON {
				o := map[string]any{
					"file": out, "trace_hash": th, "tier": h.Tier, "workload": name, "seed": seed,
					"steps": h.Steps(), "rows": h.Rows, "columns": h.Width, "bytes": size,
					"intent_id": h.IntentID, "segments": len(h.Segments), "gen_ms": genTime.Milliseconds(),
				}
				if tier == pouw.TierMicro {
					o["window"], o["window_index"], o["windows"] = window, windowIndex, windows
				}
				return json.NewEncoder(cmd.OutOrStdout()).Encode(o)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "wrote %s\n", out)
			fmt.Fprintf(w, "trace_hash  %s\n", th)
			fmt.Fprintf(w, "tier        %s (%s, seed %d)\n", h.Tier, name, seed)
			fmt.Fprintf(w, "steps       %d in %d segment(s)\n", h.Steps(), len(h.Segments))
			fmt.Fprintf(w, "rows        %d x %d columns\n", h.Rows, h.Width)
			fmt.Fprintf(w, "bytes       %d (header %d, rows %d)\n", size, size-int64(h.Rows)*trace.Width*8, int64(h.Rows)*trace.Width*8)
			if tier == pouw.TierMicro {
				fmt.Fprintf(w, "window      %d of %d (W=%d)\n", windowIndex, windows, window)
			}
			fmt.Fprintf(w, "generated   in %s\n", genTime.Round(time.Millisecond))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&name, "workload", "fib", "workload: "+strings.Join(workload.Names(), ", ")+" [POUW_WORKLOAD]")
	f.StringVar(&stepsArg, "steps", "65536", "target step count (65536, 2^16, 64k) [POUW_STEPS]")
	f.StringVar(&tierArg, "tier", "macro", "micro, macro or full [POUW_TIER]")
	f.Uint64Var(&seed, "seed", 1, "seed of the workload's programs and inputs [POUW_SEED]")
	f.IntVar(&intents, "intents", 4, "full tier: number of intents in the batch [POUW_INTENTS]")
	f.Uint64Var(&window, "window", trace.DefaultWindow, "micro tier: window size W in steps, a power of two [POUW_WINDOW]")
	f.Uint64Var(&windowIndex, "window-index", 0, "micro tier: which window of the intent to write [POUW_WINDOW_INDEX]")
	f.StringVar(&out, "out", "", "output file (required) [POUW_OUT]")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// readTrace decodes a trace file and hashes its bytes in the same pass.
func readTrace(path string, limit int64) (*trace.Trace, pouw.Hash, error) {
	var th pouw.Hash
	f, err := os.Open(path)
	if err != nil {
		return nil, th, err
	}
	defer f.Close()
	hs := blake3.New()
	tr, err := trace.Decode(io.TeeReader(bufio.NewReaderSize(f, 1<<20), hs), limit)
	if err != nil {
		return nil, th, fmt.Errorf("%s: %w", path, err)
	}
	copy(th[:], hs.Sum(nil))
	return tr, th, nil
}

func newTraceInspectCmd() *cobra.Command {
	var (
		limit   int64
		rows    int
		noCheck bool
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Print a trace file's header, hash and Check result",
		Long: `Decode a trace file, print its header (the statement a verifier derives:
tier, programs, segments with their public inputs and outputs), its
trace_hash, and the result of trace.Check — every constraint of docs/vm.md.
Exits 1 when the trace is invalid (the first violations are printed).`,
		Example: `  pouw trace inspect fib.trace
  pouw trace inspect --rows 4 --json fib.trace`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := applyEnvTwins(cmd, "POUW_"); err != nil {
				return err
			}
			tr, th, err := readTrace(args[0], limit)
			if err != nil {
				return err
			}
			var checkErr error
			checked := "skipped"
			if !noCheck {
				t0 := time.Now()
				checkErr = trace.Check(tr)
				checked = fmt.Sprintf("ok (%s)", time.Since(t0).Round(time.Millisecond))
				if checkErr != nil {
					checked = "FAILED: " + checkErr.Error()
				}
			}
			h := &tr.Header
			if asJSON {
				if err := json.NewEncoder(cmd.OutOrStdout()).Encode(inspectJSON(h, th, checked, tr, rows)); err != nil {
					return err
				}
			} else {
				printInspect(cmd.OutOrStdout(), h, th, checked, tr, rows)
			}
			if checkErr != nil {
				return exitError{code: 1, msg: "trace fails Check: " + checkErr.Error()}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.Int64Var(&limit, "max-bytes", 8<<30, "refuse files larger than this [POUW_MAX_BYTES]")
	f.IntVar(&rows, "rows", 0, "also print the first N rows")
	f.BoolVar(&noCheck, "no-check", false, "skip trace.Check")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

type segmentJSON struct {
	Kind        string    `json:"kind"`
	Program     uint32    `json:"program"`
	IntentID    pouw.Hash `json:"intent_id"`
	StartRow    uint64    `json:"start_row"`
	EndRow      uint64    `json:"end_row"`
	Steps       uint64    `json:"steps"`
	StartPC     uint64    `json:"start_pc"`
	StartRegs   []uint64  `json:"start_regs"`
	Outputs     []uint64  `json:"outputs,omitempty"`
	WindowIndex *uint64   `json:"window_index,omitempty"`
	EndPC       *uint64   `json:"end_pc,omitempty"`
	EndRegs     []uint64  `json:"end_regs,omitempty"`
}

func inspectJSON(h *trace.Header, th pouw.Hash, checked string, tr *trace.Trace, rows int) map[string]any {
	progs := make([]map[string]any, len(h.Programs))
	for g, p := range h.Programs {
		progs[g] = map[string]any{"hash": h.ProgramHashes[g], "instructions": len(p.Instrs), "inputs": p.NumInputs, "outputs": p.Outputs}
	}
	segs := make([]segmentJSON, len(h.Segments))
	for k, s := range h.Segments {
		j := segmentJSON{Kind: s.Kind.String(), Program: s.Program, IntentID: s.IntentID, StartRow: s.StartRow,
			EndRow: s.EndRow, Steps: s.Steps(), StartPC: s.Start.PC, StartRegs: s.Start.Regs[:], Outputs: s.Outputs}
		if s.Kind == trace.SegWindow {
			wi, ep := s.WindowIndex, s.End.PC
			j.WindowIndex, j.EndPC, j.EndRegs = &wi, &ep, s.End.Regs[:]
		}
		segs[k] = j
	}
	o := map[string]any{
		"trace_hash": th, "statement_digest": trace.StatementDigest(h), "tier": h.Tier, "format_version": h.FormatVersion,
		"vm_version": h.VMVersion, "rows": h.Rows, "columns": h.Width, "steps": h.Steps(), "bytes": trace.EncodedSize(h),
		"intent_id": h.IntentID, "programs": progs, "segments": segs, "check": checked,
	}
	if !h.Parent.IsZero() {
		o["parent"] = h.Parent
	}
	if rows > 0 {
		var rs [][]uint64
		for i := uint64(0); i < min(uint64(rows), h.Rows); i++ {
			rs = append(rs, tr.Row(i))
		}
		o["columns_names"], o["first_rows"] = trace.ColumnNames(), rs
	}
	return o
}

func printInspect(w io.Writer, h *trace.Header, th pouw.Hash, checked string, tr *trace.Trace, rows int) {
	fmt.Fprintf(w, "trace_hash  %s\n", th)
	fmt.Fprintf(w, "format      v%d, VM v%d, tier %s\n", h.FormatVersion, h.VMVersion, h.Tier)
	fmt.Fprintf(w, "rows        %d x %d columns (%d bytes)\n", h.Rows, h.Width, trace.EncodedSize(h))
	fmt.Fprintf(w, "steps       %d\n", h.Steps())
	fmt.Fprintf(w, "intent_id   %s\n", h.IntentID)
	if !h.Parent.IsZero() {
		fmt.Fprintf(w, "parent      %s\n", h.Parent)
	}
	fmt.Fprintf(w, "statement   %s (BLAKE3 of the header)\n", trace.StatementDigest(h))
	fmt.Fprintf(w, "programs\n")
	for g, p := range h.Programs {
		fmt.Fprintf(w, "  %d  %s  %d instructions, %d inputs, outputs %v\n", g, h.ProgramHashes[g], len(p.Instrs), p.NumInputs, regList(p.Outputs))
	}
	fmt.Fprintf(w, "segments\n")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  #\tkind\tprog\trows\tsteps\tstart\tpublic values")
	for k, s := range h.Segments {
		var pub string
		if s.Kind == trace.SegIntent {
			p := h.Programs[s.Program]
			pub = fmt.Sprintf("inputs %s -> outputs %s", short(s.Start.Regs[:p.NumInputs]), short(s.Outputs))
		} else {
			pub = fmt.Sprintf("window %d: pc %d -> pc %d", s.WindowIndex, s.Start.PC, s.End.PC)
		}
		fmt.Fprintf(tw, "  %d\t%s\t%d\t%d..%d\t%d\tpc %d\t%s\n", k, s.Kind, s.Program, s.StartRow, s.EndRow, s.Steps(), s.Start.PC, pub)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "check       %s\n", checked)
	if rows > 0 {
		names := trace.ColumnNames()
		for i := uint64(0); i < min(uint64(rows), h.Rows); i++ {
			r := tr.Row(i)
			in := h.Programs[min(r[trace.ColProg], uint64(len(h.Programs)-1))]
			text := "?"
			if r[trace.ColPC] < uint64(len(in.Instrs)) {
				var b strings.Builder
				_ = trace.Disassemble(&b, &trace.Program{Instrs: []trace.Instr{in.Instrs[r[trace.ColPC]]}})
				lines := strings.Split(strings.TrimSpace(b.String()), "\n")
				text = strings.TrimSpace(lines[len(lines)-1])
			}
			fmt.Fprintf(w, "row %d: pc=%d %-22s", i, r[trace.ColPC], text)
			for c := trace.ColR0; c < trace.ColR0+trace.NumRegs; c++ {
				if r[c] != 0 {
					fmt.Fprintf(w, " %s=%s", names[c], short([]uint64{r[c]}))
				}
			}
			fmt.Fprintf(w, " va=%s vb=%s vd=%s\n", short([]uint64{r[trace.ColVA]}), short([]uint64{r[trace.ColVB]}), short([]uint64{r[trace.ColVD]}))
		}
	}
}

func regList(rs []uint8) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = "r" + strconv.Itoa(int(r))
	}
	return "[" + strings.Join(s, " ") + "]"
}

// short prints values, abbreviating long lists and large numbers.
func short(vs []uint64) string {
	var parts []string
	for i, v := range vs {
		if i == 4 && len(vs) > 5 {
			parts = append(parts, fmt.Sprintf("... (%d more)", len(vs)-4))
			break
		}
		s := strconv.FormatUint(v, 10)
		if len(s) > 12 {
			s = s[:5] + ".." + s[len(s)-4:]
		}
		parts = append(parts, s)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func newTraceAsmCmd() *cobra.Command {
	var (
		out, run string
		limit    uint64
		asJSON   bool
	)
	cmd := &cobra.Command{
		Use:   "asm FILE.s",
		Short: "Assemble a program, print its hash, optionally run it",
		Long: `Assemble the text form of docs/vm.md §5 into a program, print its hash
(BLAKE3 of its binary encoding) and size, write the encoding with --out, and
with --run execute it on comma-separated inputs and print its outputs.`,
		Example: `  pouw trace asm fib.s --run 10
  pouw trace asm fib.s --out fib.bin`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := applyEnvTwins(cmd, "POUW_"); err != nil {
				return err
			}
			src, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			p, err := trace.Assemble(string(src))
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			enc, _ := p.MarshalBinary()
			if out != "" {
				if err := os.WriteFile(out, enc, 0o644); err != nil {
					return err
				}
			}
			res := map[string]any{"program_hash": p.Hash(), "instructions": len(p.Instrs), "inputs": p.NumInputs, "outputs": p.Outputs, "bytes": len(enc)}
			var outputs []uint64
			var steps uint64
			if cmd.Flags().Changed("run") {
				var in []uint64
				for _, s := range strings.Split(run, ",") {
					if s = strings.TrimSpace(s); s == "" {
						continue
					}
					v, err := strconv.ParseUint(s, 0, 64)
					if err != nil {
						return fmt.Errorf("--run: %w", err)
					}
					in = append(in, v)
				}
				end, n, err := trace.Run(p, in, limit)
				if err != nil {
					return err
				}
				for _, o := range p.Outputs {
					outputs = append(outputs, end.Regs[o])
				}
				steps = n
				res["run_outputs"], res["run_steps"] = outputs, steps
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(res)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "program_hash  %s\n", p.Hash())
			fmt.Fprintf(w, "instructions  %d (%d bytes encoded), %d inputs, outputs %s\n", len(p.Instrs), len(enc), p.NumInputs, regList(p.Outputs))
			if out != "" {
				fmt.Fprintf(w, "wrote         %s\n", out)
			}
			if cmd.Flags().Changed("run") {
				fmt.Fprintf(w, "run           %d steps, outputs %v\n", steps, outputs)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&out, "out", "", "write the program's binary encoding here")
	f.StringVar(&run, "run", "", "execute on these comma-separated inputs and print the outputs")
	f.Uint64Var(&limit, "limit", 1<<32, "step limit for --run")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

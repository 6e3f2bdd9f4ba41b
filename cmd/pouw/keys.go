package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	gnarklog "github.com/consensys/gnark/logger"
	"github.com/spf13/cobra"

	"github.com/pouwfarm/pouwfarm/backends/aggregate"
)

func init() { commands = append(commands, newKeysCmd) }

func newKeysCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Proving and verifying keys for backends that need them (aggregate)",
		PersistentPreRun: func(*cobra.Command, []string) {
			// gnark logs every compile to stdout; our own slog lines say
			// what happens.
			gnarklog.Disable()
		},
	}
	cmd.AddCommand(newKeysSetupCmd(), newKeysCheckCmd())
	return cmd
}

func newKeysSetupCmd() *cobra.Command {
	var backend, out, steps string
	var k, progLen int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Compile the aggregate backend's circuits and run their Groth16 setup once",
		Long: `Compile the circuits of the aggregate backend and write a key directory:

  - the intent circuit (Groth16 on BLS12-377) for intents of at most --steps
    steps (a power of two, 2^8 .. 2^12) and programs of at most --prog-len
    instructions;
  - the aggregation circuit (Groth16 on BW6-761) verifying --k intent proofs
    (a power of two, 2 .. 16).

The directory holds both constraint systems, proving and verifying keys and
manifest.json with the key ids (BLAKE3 of each verifying key). Proofs carry
the key id; coordinators and farms refuse proofs and directories made for
other keys.

TRUSTED SETUP: this runs a single-party Groth16 setup. Whoever runs it could
keep the randomness and forge proofs for any statement. Use it for
development and tests only; production keys come from a multi-party
ceremony (gnark's mpcsetup, docs/aggregate.md).

Setup is slow: minutes for 2^12 steps or k=16 on a small machine. It runs
once per key directory, never in the proving path.`,
		Example: `  pouw keys setup --backend aggregate --steps 2^12 --k 4 --out keys/agg-4096-k4`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnvTwins(cmd, "POUW_KEYS_", "json"); err != nil {
				return err
			}
			if backend != aggregate.Name {
				return fmt.Errorf("--backend %q: only %q needs keys", backend, aggregate.Name)
			}
			if out == "" {
				return fmt.Errorf("--out: a key directory is required")
			}
			ls, err := parseKeySteps(steps)
			if err != nil {
				return fmt.Errorf("--steps: %w", err)
			}
			p := aggregate.Params{LogSteps: ls, ProgLen: progLen, K: k}
			if err := p.Validate(); err != nil {
				return err
			}
			if _, err := os.Stat(out + "/manifest.json"); err == nil {
				return fmt.Errorf("--out %s already holds keys; choose another directory", out)
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			t0 := time.Now()
			keys, st, err := aggregate.Setup(cmd.Context(), p, out, log)
			if err != nil {
				return err
			}
			res := map[string]any{
				"dir": out, "params": p,
				"intent_key_id": keys.IntentKeyID, "aggregate_key_id": keys.AggKeyID,
				"intent_constraints": st.IntentConstraints, "aggregate_constraints": st.AggConstraints,
				"intent_setup_seconds": st.IntentSetup.Seconds(), "aggregate_setup_seconds": st.AggSetup.Seconds(),
				"total_seconds": time.Since(t0).Seconds(), "trusted_setup": true,
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(res)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "keys written to %s (%v)\n", out, p)
			fmt.Fprintf(w, "intent    key id %s  %d constraints  setup %s\n", keys.IntentKeyID, st.IntentConstraints, st.IntentSetup.Round(time.Millisecond))
			fmt.Fprintf(w, "aggregate key id %s  %d constraints  setup %s\n", keys.AggKeyID, st.AggConstraints, st.AggSetup.Round(time.Millisecond))
			fmt.Fprintln(w, "WARNING: single-party setup; these keys are trusted (development only)")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&backend, "backend", aggregate.Name, "backend to make keys for [POUW_KEYS_BACKEND]")
	f.StringVar(&steps, "steps", "256", "size class: largest intent in steps, a power of two 256..4096, as 4096 or 2^12 [POUW_KEYS_STEPS]")
	f.IntVar(&k, "k", 4, "intent proofs per aggregate proof: 2, 4, 8 or 16 [POUW_KEYS_K]")
	f.IntVar(&progLen, "prog-len", aggregate.DefaultProgLen, "largest program, in instructions [POUW_KEYS_PROG_LEN]")
	f.StringVar(&out, "out", "", "key directory to create (required) [POUW_KEYS_OUT]")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newKeysCheckCmd() *cobra.Command {
	var dir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check a key directory: key ids and that its circuits are this binary's",
		Long: `Load a key directory, check that its verifying keys hash to the manifest's
key ids, and recompile both circuits to check they are the ones the keys
were made for (after an upgrade that changed a circuit, old keys only make
proofs that fail). Exits non-zero on any mismatch.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnvTwins(cmd, "POUW_KEYS_", "json"); err != nil {
				return err
			}
			keys, err := aggregate.LoadKeys(dir)
			if err != nil {
				return err
			}
			if err := keys.CheckCircuits(); err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{
					"dir": dir, "params": keys.Params, "intent_key_id": keys.IntentKeyID, "aggregate_key_id": keys.AggKeyID, "ok": true,
				})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%v, intent key %s, aggregate key %s)\n", dir, keys.Params, keys.IntentKeyID, keys.AggKeyID)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "key directory (required) [POUW_KEYS_DIR]")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	_ = cmd.MarkFlagRequired("dir")
	return cmd
}

// parseKeySteps reads a power of two written as 4096 or 2^12 and returns its
// exponent.
func parseKeySteps(s string) (int, error) {
	if base, exp, ok := strings.Cut(s, "^"); ok {
		if base != "2" {
			return 0, fmt.Errorf("%q: only powers of two", s)
		}
		e, err := strconv.Atoi(exp)
		if err != nil || e < 0 || e > 30 {
			return 0, fmt.Errorf("%q: bad exponent", s)
		}
		return e, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q: not a number", s)
	}
	return aggregate.LogStepsFor(n)
}

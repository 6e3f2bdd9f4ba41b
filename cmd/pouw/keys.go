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
	cmd.AddCommand(newKeysSetupCmd(), newKeysCheckCmd(), newKeysCeremonyCmd())
	return cmd
}

func newKeysSetupCmd() *cobra.Command {
	var backend, out, steps string
	var k, progLen int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Compile the aggregate backend's circuits and run a single-party (TRUSTED) Groth16 setup",
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

TRUSTED SETUP: this runs a single-party Groth16 setup. The keys are
TRUSTED: whoever runs it could keep the randomness and forge proofs for any
statement. Use it for development and tests only. Production keys come from
the multi-party ceremony, 'pouw keys ceremony' (gnark's mpcsetup, sound if
one participant destroyed their randomness; docs/aggregate.md, Ceremony).

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
			fmt.Fprintln(w, "WARNING: single-party setup; these keys are TRUSTED (development only; production keys: pouw keys ceremony)")
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
					"setup": keys.Setup, "ceremony": keys.Ceremony,
				})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok (%v, intent key %s, aggregate key %s)\n", dir, keys.Params, keys.IntentKeyID, keys.AggKeyID)
			fmt.Fprintf(cmd.OutOrStdout(), "setup: %s\n", keys.Setup)
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

// ceremonyLong is the overview 'pouw keys ceremony --help' prints.
const ceremonyLong = `The production path for aggregate keys: gnark's mpcsetup multi-party
Groth16 ceremony. The keys are sound if at least one participant of each
phase destroyed their randomness (a contribution forgets it when it exits).
Single-party keys ('pouw keys setup') are TRUSTED: whoever made them can
forge proofs.

Every step reads the previous state file and writes the next, so each
participant runs 'contribute' on their own machine and passes the file on.
Each contribution prints its BLAKE3; participants publish it and check the
sealed transcript lists it. 'verify' checks a whole transcript (every
contribution in order, from the recomputed start); 'seal' verifies, then
applies a public random beacon (--beacon, hex, e.g. the hash of a block
mined after the last contribution) and writes the result.

  1. phase 1 (powers of tau), once per curve, circuit-independent; --size
     is a power of two >= the circuit's constraints (2^16 serves the
     smallest size class on both curves; a larger one serves every class):
       pouw keys ceremony phase1 init --curve bls12-377 --size 2^16 --out bls.0
       pouw keys ceremony phase1 contribute --in bls.0 --out bls.1   (each participant)
       pouw keys ceremony phase1 seal --beacon HEX --out bls.srs bls.1 bls.2 ...
     and the same with --curve bw6-761 (bw6.srs).
  2. the intent circuit's phase 2 (BLS12-377):
       pouw keys ceremony intent init --srs bls.srs --steps 256 --k 2 --out intent.0
       pouw keys ceremony intent contribute --in intent.0 --out intent.1
       pouw keys ceremony intent seal --srs bls.srs --beacon HEX --out intent.keys intent.1 intent.2 ...
  3. the aggregation circuit's phase 2 (BW6-761); the circuit embeds the
     sealed intent verifying key, so it starts after step 2:
       pouw keys ceremony aggregate init --srs bw6.srs --intent intent.keys --out agg.0
       pouw keys ceremony aggregate contribute --in agg.0 --out agg.1
       pouw keys ceremony aggregate seal --srs bw6.srs --intent intent.keys --beacon HEX --out agg.keys agg.1 ...
  4. pouw keys ceremony finalize --intent intent.keys --aggregate agg.keys --out DIR
     writes a key directory for --aggregate-keys; its manifest records the
     contributions and the transcript's BLAKE3.

Anyone can re-check a step: 'verify' with --beacon and --srs/--sealed
recomputes the seal and compares it byte for byte.`

func newKeysCeremonyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ceremony",
		Short: "Multi-party Groth16 setup (gnark mpcsetup): the production path for aggregate keys",
		Long:  ceremonyLong,
	}
	cmd.AddCommand(newCeremonyPhase1Cmd(), newCeremonyPhase2Cmd(aggregate.KindIntent), newCeremonyPhase2Cmd(aggregate.KindAggregate),
		newCeremonyFinalizeCmd())
	return cmd
}

// ceremonyOut prints what a step did, as text or JSON.
func ceremonyOut(cmd *cobra.Command, asJSON bool, v any, text string) error {
	if asJSON {
		return json.NewEncoder(cmd.OutOrStdout()).Encode(v)
	}
	_, err := fmt.Fprint(cmd.OutOrStdout(), text)
	return err
}

func ceremonyLog(cmd *cobra.Command) *slog.Logger {
	return slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
}

func fileLine(what string, i aggregate.CeremonyFileInfo) string {
	return fmt.Sprintf("%s %s: %s on %s, 2^%d, index %d\nBLAKE3 %s\n", what, i.Path, i.Kind, i.Curve, i.LogN, i.Index, i.Hash)
}

func reportText(r aggregate.TranscriptReport) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s transcript on %s (2^%d): %d contribution(s) verified\n", r.Kind, r.Curve, r.LogN, len(r.Contributions))
	if r.Params != nil {
		fmt.Fprintf(&b, "params %v\n", *r.Params)
	}
	for i, h := range r.Contributions {
		fmt.Fprintf(&b, "  %d  %s\n", i+1, h)
	}
	if !r.Transcript.IsZero() {
		fmt.Fprintf(&b, "transcript BLAKE3 %s\n", r.Transcript)
	}
	if !r.KeyID.IsZero() {
		fmt.Fprintf(&b, "key id %s\n", r.KeyID)
	}
	return b.String()
}

// newContributeCmd contributes to a state of kind want.
func newContributeCmd(want aggregate.CeremonyKind) *cobra.Command {
	var in, out string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "contribute",
		Short: "Add your randomness (crypto/rand) to the state --in and write the next state --out",
		Long: `Read the latest state file, add fresh randomness (crypto/rand; it is
forgotten when the command exits) and write the next state. Publish the
printed BLAKE3 of your output: the sealed transcript lists every
contribution's hash in order, so you can check yours was included.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			kind, err := aggregate.CeremonyFileKind(in)
			if err != nil {
				return err
			}
			if kind != want {
				return fmt.Errorf("--in %s holds a %s file, this command contributes to %s", in, kind, want)
			}
			t0 := time.Now()
			i, err := aggregate.Contribute(cmd.Context(), in, out, ceremonyLog(cmd))
			if err != nil {
				return err
			}
			return ceremonyOut(cmd, asJSON, i, fileLine("contribution written to", i)+fmt.Sprintf("took %s\n", time.Since(t0).Round(time.Millisecond)))
		},
	}
	cmd.Flags().StringVar(&in, "in", "", "latest state file (required)")
	cmd.Flags().StringVar(&out, "out", "", "next state file to write (required)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	_ = cmd.MarkFlagRequired("in")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

// beaconFlag parses --beacon when given.
func beaconFlag(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	b, err := aggregate.ParseBeacon(s)
	if err != nil {
		return nil, fmt.Errorf("--beacon: %w", err)
	}
	return b, nil
}

// requiredBeacon is beaconFlag for the seal commands, which need one.
func requiredBeacon(s string) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("--beacon: required (a public random value fixed after the last contribution)")
	}
	return beaconFlag(s)
}

func newCeremonyPhase1Cmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "phase1",
		Short: "Powers of tau, once per curve: init, contribute, verify, seal",
	}
	var curve, size, out string
	var asJSON bool
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Write the (deterministic) start of a powers-of-tau ceremony",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := aggregate.CeremonyCurve(curve)
			if err != nil {
				return fmt.Errorf("--curve: %w", err)
			}
			logN, err := parseKeySteps(size)
			if err != nil {
				return fmt.Errorf("--size: %w", err)
			}
			i, err := aggregate.Phase1Init(c, logN, out)
			if err != nil {
				return err
			}
			return ceremonyOut(cmd, asJSON, i, fileLine("phase-1 start written to", i))
		},
	}
	initCmd.Flags().StringVar(&curve, "curve", "", "bls12-377 (intent circuit) or bw6-761 (aggregation circuit) (required)")
	initCmd.Flags().StringVar(&size, "size", "2^16", "powers of tau: a power of two >= the circuit's constraints, as 65536 or 2^16")
	initCmd.Flags().StringVar(&out, "out", "", "file to write (required)")
	initCmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	_ = initCmd.MarkFlagRequired("curve")
	_ = initCmd.MarkFlagRequired("out")

	var vBeacon, vSRS string
	var vJSON bool
	verifyCmd := &cobra.Command{
		Use:   "verify CONTRIBUTION...",
		Short: "Check a phase-1 transcript: every contribution, in order",
		Long: `Check every contribution file, in order, from the recomputed start. With
--beacon and --srs, also recompute the seal and check the SRS file is it.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			beacon, err := beaconFlag(vBeacon)
			if err != nil {
				return err
			}
			if (beacon == nil) != (vSRS == "") {
				return fmt.Errorf("--beacon and --srs go together")
			}
			r, err := aggregate.Phase1Verify(cmd.Context(), files, beacon, vSRS, ceremonyLog(cmd))
			if err != nil {
				return err
			}
			text := reportText(r)
			if vSRS != "" {
				text += vSRS + " is the seal of this transcript\n"
			}
			return ceremonyOut(cmd, vJSON, r, text)
		},
	}
	verifyCmd.Flags().StringVar(&vBeacon, "beacon", "", "the beacon the SRS was sealed with (hex), with --srs")
	verifyCmd.Flags().StringVar(&vSRS, "srs", "", "sealed SRS file to check against the transcript")
	verifyCmd.Flags().BoolVar(&vJSON, "json", false, "print JSON")

	var sBeacon, sOut string
	var sJSON bool
	sealCmd := &cobra.Command{
		Use:   "seal CONTRIBUTION...",
		Short: "Verify a phase-1 transcript and seal it with a public beacon into an SRS",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			beacon, err := requiredBeacon(sBeacon)
			if err != nil {
				return err
			}
			r, i, err := aggregate.Phase1Seal(cmd.Context(), files, beacon, sOut, ceremonyLog(cmd))
			if err != nil {
				return err
			}
			return ceremonyOut(cmd, sJSON, map[string]any{"transcript": r, "file": i}, reportText(r)+fileLine("SRS written to", i))
		},
	}
	sealCmd.Flags().StringVar(&sBeacon, "beacon", "", "public random beacon, hex, 16..256 bytes (required)")
	sealCmd.Flags().StringVar(&sOut, "out", "", "SRS file to write (required)")
	sealCmd.Flags().BoolVar(&sJSON, "json", false, "print JSON")
	_ = sealCmd.MarkFlagRequired("out")

	cmd.AddCommand(initCmd, newContributeCmd(aggregate.KindPhase1), verifyCmd, sealCmd)
	return cmd
}

// newCeremonyPhase2Cmd is 'intent' or 'aggregate': a circuit's phase 2.
func newCeremonyPhase2Cmd(kind aggregate.CeremonyKind) *cobra.Command {
	name, curve := "intent", "BLS12-377"
	if kind == aggregate.KindAggregate {
		name, curve = "aggregate", "BW6-761"
	}
	cmd := &cobra.Command{
		Use:   name,
		Short: fmt.Sprintf("Phase 2 of the %s circuit (%s): init, contribute, verify, seal", name, curve),
	}
	var srs, intentKeys string
	addSource := func(c *cobra.Command) {
		c.Flags().StringVar(&srs, "srs", "", "sealed phase-1 SRS of "+curve+" (required)")
		_ = c.MarkFlagRequired("srs")
		if kind == aggregate.KindAggregate {
			c.Flags().StringVar(&intentKeys, "intent", "", "sealed intent keys (intent seal --out) (required)")
			_ = c.MarkFlagRequired("intent")
		}
	}
	var out, steps string
	var k, progLen int
	var asJSON bool
	initCmd := &cobra.Command{
		Use:   "init",
		Short: "Compile the " + name + " circuit and write the start of its phase 2",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var i aggregate.CeremonyFileInfo
			var err error
			if kind == aggregate.KindIntent {
				ls, perr := parseKeySteps(steps)
				if perr != nil {
					return fmt.Errorf("--steps: %w", perr)
				}
				p := aggregate.Params{LogSteps: ls, ProgLen: progLen, K: k}
				if err := p.Validate(); err != nil {
					return err
				}
				i, err = aggregate.IntentInit(cmd.Context(), p, srs, out)
			} else {
				i, err = aggregate.AggregateInit(cmd.Context(), intentKeys, srs, out)
			}
			if err != nil {
				return err
			}
			return ceremonyOut(cmd, asJSON, i, fileLine("phase-2 start written to", i))
		},
	}
	addSource(initCmd)
	if kind == aggregate.KindIntent {
		initCmd.Flags().StringVar(&steps, "steps", "256", "size class: largest intent in steps, a power of two 256..4096")
		initCmd.Flags().IntVar(&k, "k", 4, "intent proofs per aggregate proof: 2, 4, 8 or 16")
		initCmd.Flags().IntVar(&progLen, "prog-len", aggregate.DefaultProgLen, "largest program, in instructions")
	}
	initCmd.Flags().StringVar(&out, "out", "", "file to write (required)")
	initCmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	_ = initCmd.MarkFlagRequired("out")

	var vBeacon, vSealed string
	var vJSON bool
	verifyCmd := &cobra.Command{
		Use:   "verify CONTRIBUTION...",
		Short: "Check a phase-2 transcript: every contribution, in order",
		Long: `Recompute the start from the SRS (and the sealed intent keys) and check
every contribution file in order. With --beacon and --sealed, also
recompute the seal and check the sealed keys file is it.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			beacon, err := beaconFlag(vBeacon)
			if err != nil {
				return err
			}
			if (beacon == nil) != (vSealed == "") {
				return fmt.Errorf("--beacon and --sealed go together")
			}
			r, err := aggregate.Phase2Verify(cmd.Context(), kind, aggregate.Phase2Source{SRS: srs, IntentKeys: intentKeys}, files, beacon, vSealed, ceremonyLog(cmd))
			if err != nil {
				return err
			}
			text := reportText(r)
			if vSealed != "" {
				text += vSealed + " is the seal of this transcript\n"
			}
			return ceremonyOut(cmd, vJSON, r, text)
		},
	}
	addSource(verifyCmd)
	verifyCmd.Flags().StringVar(&vBeacon, "beacon", "", "the beacon the keys were sealed with (hex), with --sealed")
	verifyCmd.Flags().StringVar(&vSealed, "sealed", "", "sealed keys file to check against the transcript")
	verifyCmd.Flags().BoolVar(&vJSON, "json", false, "print JSON")

	var sBeacon, sOut string
	var sJSON bool
	sealCmd := &cobra.Command{
		Use:   "seal CONTRIBUTION...",
		Short: "Verify a phase-2 transcript and seal it with a public beacon into keys",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			beacon, err := requiredBeacon(sBeacon)
			if err != nil {
				return err
			}
			r, i, err := aggregate.Phase2Seal(cmd.Context(), kind, aggregate.Phase2Source{SRS: srs, IntentKeys: intentKeys}, files, beacon, sOut, ceremonyLog(cmd))
			if err != nil {
				return err
			}
			return ceremonyOut(cmd, sJSON, map[string]any{"transcript": r, "file": i}, reportText(r)+fileLine("sealed keys written to", i))
		},
	}
	addSource(sealCmd)
	sealCmd.Flags().StringVar(&sBeacon, "beacon", "", "public random beacon, hex, 16..256 bytes (required)")
	sealCmd.Flags().StringVar(&sOut, "out", "", "sealed keys file to write (required)")
	sealCmd.Flags().BoolVar(&sJSON, "json", false, "print JSON")
	_ = sealCmd.MarkFlagRequired("out")

	cmd.AddCommand(initCmd, newContributeCmd(kind), verifyCmd, sealCmd)
	return cmd
}

func newCeremonyFinalizeCmd() *cobra.Command {
	var intentKeys, aggKeys, out string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "finalize",
		Short: "Write a key directory from the sealed intent and aggregate keys",
		Long: `Check that the sealed aggregate keys were made around the sealed intent key
and that both circuits are this binary's, then write a key directory that
'pouw keys check' and --aggregate-keys accept. Its manifest's "setup" and
"ceremony" record the contributions and the transcript's BLAKE3. It does
not re-verify the transcripts: 'intent verify' and 'aggregate verify' with
--beacon and --sealed do.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := os.Stat(out + "/manifest.json"); err == nil {
				return fmt.Errorf("--out %s already holds keys; choose another directory", out)
			}
			keys, err := aggregate.Finalize(cmd.Context(), intentKeys, aggKeys, out, ceremonyLog(cmd))
			if err != nil {
				return err
			}
			return ceremonyOut(cmd, asJSON, map[string]any{
				"dir": out, "params": keys.Params, "intent_key_id": keys.IntentKeyID, "aggregate_key_id": keys.AggKeyID,
				"setup": keys.Setup, "ceremony": keys.Ceremony,
			}, fmt.Sprintf("keys written to %s (%v)\nintent key id %s\naggregate key id %s\nsetup: %s\n", out, keys.Params, keys.IntentKeyID, keys.AggKeyID, keys.Setup))
		},
	}
	cmd.Flags().StringVar(&intentKeys, "intent", "", "sealed intent keys (required)")
	cmd.Flags().StringVar(&aggKeys, "aggregate", "", "sealed aggregate keys (required)")
	cmd.Flags().StringVar(&out, "out", "", "key directory to create (required)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	for _, f := range []string{"intent", "aggregate", "out"} {
		_ = cmd.MarkFlagRequired(f)
	}
	return cmd
}

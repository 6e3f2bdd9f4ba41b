package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pouwfarm/pouwfarm/pouw"
)

func init() { commands = append(commands, newJobIDCmd) }

func newJobIDCmd() *cobra.Command {
	var intent, traceHash, tier string
	var seq uint64
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "jobid",
		Short: "Derive a deterministic PoUW job ID",
		Long: `Derive the job ID of SPEC.md:

  hex(BLAKE3("rivellum-pouw-job-v1" || intent_id || trace_hash || tier || created_seq)[:16])

intent_id and trace_hash are 32 bytes given as 64 hex characters, tier is
micro, macro or full (one byte 0, 1, 2), created_seq a uint64 (big-endian).`,
		Example: `  pouw jobid --intent 00..00 --trace-hash ff..ff --tier macro --seq 7`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in, err := pouw.ParseHash(intent)
			if err != nil {
				return fmt.Errorf("--intent: %w", err)
			}
			th, err := pouw.ParseHash(traceHash)
			if err != nil {
				return fmt.Errorf("--trace-hash: %w", err)
			}
			t, err := pouw.ParseTier(tier)
			if err != nil {
				return fmt.Errorf("--tier: %w", err)
			}
			id := pouw.JobID(in, th, t, seq)
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]any{
					"job_id": id, "intent_id": in, "trace_hash": th, "tier": t, "created_seq": seq,
				})
			}
			fmt.Fprintln(cmd.OutOrStdout(), id)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&intent, "intent", "", "intent id, 64 hex characters (required)")
	f.StringVar(&traceHash, "trace-hash", "", "BLAKE3 of the trace, 64 hex characters (required)")
	f.StringVar(&tier, "tier", "", "micro, macro or full (required)")
	f.Uint64Var(&seq, "seq", 0, "created_seq of the job")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	for _, n := range []string{"intent", "trace-hash", "tier"} {
		_ = cmd.MarkFlagRequired(n)
	}
	return cmd
}

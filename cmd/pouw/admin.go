package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/zeebo/blake3"

	"github.com/pouwfarm/pouwfarm/coordinator/client"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/trace"
)

func init() {
	for _, mk := range []func() *cobra.Command{newIngestCmd, newJobsCmd, newProversCmd, newPoolCmd, newStatusCmd,
		newEventsCmd, newDeadLetterCmd, newTokensCmd, newBlobCmd} {
		commands = append(commands, func() *cobra.Command { return annotateEnvTwins(mk()) })
	}
}

// apiFlags are the connection flags of every command that talks to a
// coordinator.
type apiFlags struct {
	coordinator string
	token       string
	tokenFile   string
	asJSON      bool
	// TLS: the CA verifying an https:// coordinator, and a client
	// certificate for mTLS.
	ca, clientCert, clientKey string
}

const apiHelp = `
Connection: --coordinator (POUW_COORDINATOR, default http://127.0.0.1:8080)
and a bearer token: --token (POUW_TOKEN), else --token-file
(POUW_TOKEN_FILE), else ./data/admin.token when it exists (the token a local
'pouw coordinator' generated). --json prints machine-readable output.`

func (a *apiFlags) register(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&a.coordinator, "coordinator", "http://127.0.0.1:8080", "coordinator base URL")
	f.StringVar(&a.token, "token", "", "bearer token (admin or prover)")
	f.StringVar(&a.tokenFile, "token-file", "", "file holding the bearer token")
	f.BoolVar(&a.asJSON, "json", false, "print JSON")
	f.StringVar(&a.ca, "ca", "", "PEM CA that verifies an https:// coordinator (default: the system's roots)")
	f.StringVar(&a.clientCert, "client-cert", "", "PEM client certificate (mTLS)")
	f.StringVar(&a.clientKey, "client-key", "", "PEM private key of --client-cert")
}

func (a *apiFlags) client(cmd *cobra.Command) (*client.Client, error) {
	if err := applyEnvTwins(cmd, "POUW_"); err != nil {
		return nil, err
	}
	tok := a.token
	if tok == "" {
		path := a.tokenFile
		if path == "" {
			if _, err := os.Stat(filepath.Join("data", "admin.token")); err == nil {
				path = filepath.Join("data", "admin.token")
			}
		}
		if path != "" {
			b, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("token file: %w", err)
			}
			tok = strings.TrimSpace(string(b))
		}
	}
	var tlsCfg *tls.Config
	if a.ca != "" || a.clientCert != "" || a.clientKey != "" {
		var err error
		if tlsCfg, err = client.TLSConfig(a.ca, a.clientCert, a.clientKey); err != nil {
			return nil, err
		}
	}
	return client.New(a.coordinator, client.Options{Token: tok, TLS: tlsCfg})
}

// print writes v as JSON with --json, else calls table.
func (a *apiFlags) print(cmd *cobra.Command, v any, table func(w io.Writer)) error {
	out := cmd.OutOrStdout()
	if a.asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

func fmtMs(ms int64) string {
	if ms == 0 {
		return "-"
	}
	return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05Z")
}

func jobsTable(w io.Writer, jobs []pouw.ProofJob) {
	fmt.Fprintln(w, "JOB ID\tTIER\tSTATE\tBACKEND\tREWARD\tATTEMPTS\tDEADLINE\tPROVER")
	for _, j := range jobs {
		p := j.ProverID
		if p == "" {
			p = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%d/%d\t%s\t%s\n", j.JobID, j.Tier, j.State, j.Backend,
			j.RewardBudget, j.Attempts, j.MaxRetries, fmtMs(j.DeadlineMs), p)
	}
}

func jobDetail(w io.Writer, j pouw.ProofJob) {
	rows := [][2]string{
		{"job_id", j.JobID}, {"state", string(j.State)}, {"tier", j.Tier.String()}, {"backend", j.Backend},
		{"intent_id", j.IntentID.String()}, {"trace_ref", j.TraceRef}, {"trace_bytes", strconv.FormatInt(j.TraceBytes, 10)},
		{"fee_budget", strconv.FormatUint(j.FeeBudget, 10)}, {"reward_budget", strconv.FormatUint(j.RewardBudget, 10)},
		{"attempts", fmt.Sprintf("%d of %d", j.Attempts, j.MaxRetries)}, {"created", fmtMs(j.CreatedAtMs)},
		{"created_seq", strconv.FormatUint(j.CreatedSeq, 10)}, {"deadline", fmtMs(j.DeadlineMs)},
		{"lease_expires", fmtMs(j.LeaseExpiresAtMs)},
	}
	if j.ProverID != "" {
		rows = append(rows, [2]string{"prover_id", j.ProverID})
	}
	if j.ProofRef != "" {
		rows = append(rows, [2]string{"proof_ref", j.ProofRef}, [2]string{"completed", fmtMs(j.CompletedAtMs)})
	}
	if j.DeadReason != "" {
		rows = append(rows, [2]string{"dead_reason", j.DeadReason})
	}
	if len(j.DependsOn) > 0 {
		rows = append(rows, [2]string{"depends_on", strings.Join(j.DependsOn, ",")})
	}
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%s\n", r[0], r[1])
	}
}

func newIngestCmd() *cobra.Command {
	var a apiFlags
	var tracePath, tier, intent, dependsOn string
	var fee, reward uint64
	var retries uint32
	var ttl time.Duration
	var batch bool
	var batchReward, batchFee uint64
	cmd := &cobra.Command{
		Use:   "ingest --trace FILE --reward N | ingest --batch TRACE... --reward N",
		Short: "Upload a trace and create its proof job, or a batch of traces (admin)",
		Long: `Upload a trace file (pouw trace gen writes one) to the coordinator's blob
store under its BLAKE3 hash, then create the proof job. The tier and intent
id are read from the trace header unless given. Ingesting the same intent,
tier and trace again returns the existing job. The reward is reserved from
the fee pool (deposit first: pouw pool deposit).

--batch TRACE... makes a batch (POST /v1/pouw/batches): k Macro intent traces
(k = 2, 4, 8 or 16; pouw trace gen --tier macro) become k Macro jobs and one
Full aggregation job that waits for them and proves them all with one
aggregate proof. Each child is paid --reward, the aggregation job
--batch-reward (default --reward); the pool must cover all k+1. The
coordinator proves batches with the aggregate backend, so it must run with
--aggregate-keys, and the children's intents must fit its keys' size class.
Sending the same batch again returns the same jobs.` + apiHelp,
		Example: `  pouw trace gen --workload fib --steps 1024 --out fib.trace
  pouw ingest --trace fib.trace --reward 100 --fee 150
  pouw trace gen --workload fib --steps 200 --seed 1 --out a.trace
  pouw trace gen --workload fib --steps 200 --seed 2 --out b.trace
  pouw ingest --batch a.trace b.trace --reward 100`,
		Args: func(cmd *cobra.Command, args []string) error {
			if !batch && len(args) > 0 {
				return fmt.Errorf("unexpected arguments %q: trace files are given with --trace FILE, or as arguments after --batch", args)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(cmd) // applies the environment twins
			if err != nil {
				return err
			}
			given := func(name string) bool {
				_, env := os.LookupEnv(envName("POUW_", name))
				return cmd.Flags().Changed(name) || env
			}
			if !given("reward") {
				return errors.New("--reward is required")
			}
			if batch {
				for _, n := range []string{"trace", "tier", "intent", "depends-on"} {
					if cmd.Flags().Changed(n) {
						return fmt.Errorf("--%s is for one job; --batch takes its traces as arguments", n)
					}
				}
				if len(args) == 0 {
					return errors.New("--batch needs trace files (pouw ingest --batch A.trace B.trace)")
				}
				return ingestBatch(cmd.Context(), c, &a, cmd, args, batchOptions{fee: fee, reward: reward, batchFee: batchFee,
					batchReward: batchReward, retries: retries, ttl: ttl})
			}
			if tracePath == "" {
				return errors.New("--trace is required (or --batch TRACE...)")
			}
			if cmd.Flags().Changed("batch-reward") || cmd.Flags().Changed("batch-fee") {
				return errors.New("--batch-reward and --batch-fee go with --batch")
			}
			f, err := os.Open(tracePath)
			if err != nil {
				return fmt.Errorf("--trace: %w", err)
			}
			defer f.Close()
			st, err := f.Stat()
			if err != nil {
				return err
			}
			req := pouw.IngestRequest{FeeBudget: fee, RewardBudget: reward, MaxRetries: retries}
			if req.FeeBudget == 0 {
				req.FeeBudget = reward
			}
			if h, _, err := trace.DecodeHeader(f, 16<<20); err == nil {
				req.Tier, req.IntentID = h.Tier, h.IntentID
			} else if tier == "" || intent == "" {
				return fmt.Errorf("--trace: cannot read a trace header (%v); give --tier and --intent", err)
			}
			if tier != "" {
				if req.Tier, err = pouw.ParseTier(tier); err != nil {
					return fmt.Errorf("--tier: %w", err)
				}
			}
			if intent != "" {
				if req.IntentID, err = pouw.ParseHash(intent); err != nil {
					return fmt.Errorf("--intent: %w", err)
				}
			}
			if dependsOn != "" {
				req.DependsOn = strings.Split(dependsOn, ",")
			}
			if ttl > 0 {
				req.DeadlineMs = time.Now().Add(ttl).UnixMilli()
			}
			h, err := hashFile(f)
			if err != nil {
				return err
			}
			req.TraceHash = h
			ctx := cmd.Context()
			if _, err := c.UploadBlobFrom(ctx, h, f, st.Size()); err != nil {
				return fmt.Errorf("uploading the trace: %w", err)
			}
			res, err := c.Ingest(ctx, req)
			if err != nil {
				return err
			}
			return a.print(cmd, res, func(w io.Writer) {
				if !res.Created {
					fmt.Fprintln(w, "already ingested; the existing job:")
				}
				jobDetail(w, res.Job)
			})
		},
	}
	a.register(cmd)
	f := cmd.Flags()
	f.StringVar(&tracePath, "trace", "", "trace file (required without --batch)")
	f.Uint64Var(&reward, "reward", 0, "reward paid to the prover from the pool; with --batch, to each child (required)")
	f.Uint64Var(&fee, "fee", 0, "fee budget, the upper bound for bids (default: the reward)")
	f.BoolVar(&batch, "batch", false, "make a batch of the Macro traces given as arguments: k child jobs and one aggregation job")
	f.Uint64Var(&batchReward, "batch-reward", 0, "with --batch: the aggregation job's reward (default: --reward)")
	f.Uint64Var(&batchFee, "batch-fee", 0, "with --batch: the aggregation job's fee budget (default: its reward)")
	f.StringVar(&tier, "tier", "", "micro, macro or full (default: from the trace header)")
	f.StringVar(&intent, "intent", "", "intent id, 64 hex (default: from the trace header)")
	f.Uint32Var(&retries, "max-retries", 0, "failed attempts before dead letter (default: the coordinator's)")
	f.DurationVar(&ttl, "ttl", 0, "deadline from now (default: the coordinator's)")
	f.StringVar(&dependsOn, "depends-on", "", "comma-separated job ids this job waits for")
	return cmd
}

// batchOptions are the budgets and limits of pouw ingest --batch.
type batchOptions struct {
	fee, reward, batchFee, batchReward uint64
	retries                            uint32
	ttl                                time.Duration
}

// ingestBatch checks the batch's traces (k valid, every one a Macro trace,
// no trace twice), uploads them and posts the batch.
func ingestBatch(ctx context.Context, c *client.Client, a *apiFlags, cmd *cobra.Command, paths []string, o batchOptions) error {
	if !pouw.ValidBatchSize(len(paths)) {
		return fmt.Errorf("--batch: %d traces; a batch has 2, 4, 8 or 16 (a power of two in [%d, %d])", len(paths), pouw.MinBatch, pouw.MaxBatch)
	}
	if o.fee == 0 {
		o.fee = o.reward
	}
	if o.batchReward == 0 {
		o.batchReward = o.reward
	}
	if o.batchFee == 0 {
		o.batchFee = o.batchReward
	}
	req := pouw.BatchRequest{FeeBudget: o.batchFee, RewardBudget: o.batchReward, MaxRetries: o.retries}
	if o.ttl > 0 {
		req.DeadlineMs = time.Now().Add(o.ttl).UnixMilli()
	}
	type file struct {
		f    *os.File
		size int64
	}
	files := make([]file, len(paths))
	defer func() {
		for _, f := range files {
			if f.f != nil {
				f.f.Close()
			}
		}
	}()
	seen := map[pouw.Hash]string{}
	for i, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("--batch: %w", err)
		}
		files[i].f = f
		st, err := f.Stat()
		if err != nil {
			return err
		}
		files[i].size = st.Size()
		h, _, err := trace.DecodeHeader(f, 16<<20)
		if err != nil {
			return fmt.Errorf("--batch: %s: not a trace: %w", p, err)
		}
		if h.Tier != pouw.TierMacro {
			return fmt.Errorf("--batch: %s is a %s trace; a batch takes Macro intent traces (pouw trace gen --tier macro)", p, h.Tier)
		}
		th, err := hashFile(f)
		if err != nil {
			return err
		}
		if prev, dup := seen[th]; dup {
			return fmt.Errorf("--batch: %s and %s are the same trace; a batch proves distinct intents", prev, p)
		}
		seen[th] = p
		req.Intents = append(req.Intents, pouw.BatchIntent{IntentID: h.IntentID, TraceHash: th, FeeBudget: o.fee, RewardBudget: o.reward})
	}
	for i, f := range files {
		if _, err := c.UploadBlobFrom(ctx, req.Intents[i].TraceHash, f.f, f.size); err != nil {
			return fmt.Errorf("uploading %s: %w", paths[i], err)
		}
	}
	res, err := c.CreateBatch(ctx, req)
	if err != nil {
		return fmt.Errorf("creating the batch: %w", err)
	}
	return a.print(cmd, res, func(w io.Writer) {
		if !res.Created {
			fmt.Fprintln(w, "already ingested; the existing batch:")
		}
		fmt.Fprintln(w, "aggregation job (waits for every child):")
		jobDetail(w, res.Aggregation)
		fmt.Fprintf(w, "\nchildren (%d, in batch order):\n", len(res.Children))
		jobsTable(w, res.Children)
	})
}

// hashFile returns the BLAKE3 of an open file, rewinding it.
func hashFile(f *os.File) (pouw.Hash, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return pouw.Hash{}, err
	}
	h := newHasher()
	if _, err := io.Copy(h, f); err != nil {
		return pouw.Hash{}, err
	}
	var out pouw.Hash
	copy(out[:], h.Sum(nil))
	_, err := f.Seek(0, io.SeekStart)
	return out, err
}

func listFlags(cmd *cobra.Command, tier *string, limit *int, cursor *string, all *bool) {
	f := cmd.Flags()
	f.StringVar(tier, "tier", "", "only this tier")
	f.IntVar(limit, "limit", 50, "jobs per page (1-1000)")
	f.StringVar(cursor, "cursor", "", "next_cursor of a previous page")
	f.BoolVar(all, "all", false, "follow next_cursor to the end")
}

func listAll(ctx context.Context, tier string, limit int, cursor string, all bool,
	list func(context.Context, client.ListOptions) (pouw.JobList, error)) (pouw.JobList, error) {
	o := client.ListOptions{Limit: limit, Cursor: cursor}
	if tier != "" {
		t, err := pouw.ParseTier(tier)
		if err != nil {
			return pouw.JobList{}, fmt.Errorf("--tier: %w", err)
		}
		o.Tier = &t
	}
	var out pouw.JobList
	for {
		page, err := list(ctx, o)
		if err != nil {
			return out, err
		}
		out.Jobs = append(out.Jobs, page.Jobs...)
		out.NextCursor = page.NextCursor
		if !all || page.NextCursor == "" {
			return out, nil
		}
		o.Cursor = page.NextCursor
	}
}

func printList(a *apiFlags, cmd *cobra.Command, l pouw.JobList) error {
	if l.Jobs == nil {
		l.Jobs = []pouw.ProofJob{}
	}
	return a.print(cmd, l, func(w io.Writer) {
		jobsTable(w, l.Jobs)
		if l.NextCursor != "" {
			fmt.Fprintf(w, "more: --cursor %s\n", l.NextCursor)
		}
	})
}

func newJobsCmd() *cobra.Command {
	var a apiFlags
	cmd := &cobra.Command{
		Use:   "jobs",
		Short: "List, inspect and work proof jobs",
		Long: `List pending jobs, show one job or its attempt history, and — with a prover
token — claim, renew, submit, fail and release leases by hand.` + apiHelp,
		Args: cobra.NoArgs,
	}
	a.register(cmd)

	var tier, cursor string
	var limit int
	var all bool
	pending := &cobra.Command{
		Use: "pending", Short: "List pending jobs in claim order", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client(cmd)
			if err != nil {
				return err
			}
			l, err := listAll(cmd.Context(), tier, limit, cursor, all, c.Pending)
			if err != nil {
				return err
			}
			return printList(&a, cmd, l)
		},
	}
	listFlags(pending, &tier, &limit, &cursor, &all)

	show := &cobra.Command{
		Use: "show JOB_ID", Short: "Show a job with its trace reference", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(cmd)
			if err != nil {
				return err
			}
			j, err := c.Job(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.print(cmd, j, func(w io.Writer) { jobDetail(w, j) })
		},
	}
	history := &cobra.Command{
		Use: "history JOB_ID", Short: "Show every attempt of a job", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(cmd)
			if err != nil {
				return err
			}
			h, err := c.History(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.print(cmd, pouw.HistoryResponse{JobID: args[0], Attempts: h}, func(w io.Writer) {
				fmt.Fprintln(w, "#\tPROVER\tLEASE\tCLAIMED\tENDED\tOUTCOME\tREASON")
				for _, at := range h {
					fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", at.Number, at.ProverID, at.LeaseID,
						fmtMs(at.ClaimedAtMs), fmtMs(at.EndedAtMs), at.Outcome, at.Reason)
				}
			})
		},
	}

	var tiers, backendsList string
	var maxTrace int64
	var minReward uint64
	claim := &cobra.Command{
		Use: "claim", Short: "Claim the next job that fits (prover token); prints the lease token", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client(cmd)
			if err != nil {
				return err
			}
			req := pouw.ClaimRequest{MaxTraceBytes: maxTrace, MinReward: minReward}
			for _, b := range strings.Split(backendsList, ",") {
				if b = strings.TrimSpace(b); b != "" {
					req.Backends = append(req.Backends, b)
				}
			}
			for _, s := range strings.Split(tiers, ",") {
				t, err := pouw.ParseTier(strings.TrimSpace(s))
				if err != nil {
					return fmt.Errorf("--tiers: %w", err)
				}
				req.Tiers = append(req.Tiers, t)
			}
			l, err := c.Claim(cmd.Context(), req)
			if errors.Is(err, client.ErrNoJob) {
				return exitError{code: 3, msg: "no pending job fits this claim"}
			}
			if err != nil {
				return err
			}
			return a.print(cmd, l, func(w io.Writer) {
				jobDetail(w, l.Job)
				fmt.Fprintf(w, "lease_token\t%s\n", l.LeaseToken)
			})
		},
	}
	claim.Flags().StringVar(&tiers, "tiers", "micro,macro,full", "tiers in preference order")
	claim.Flags().StringVar(&backendsList, "backends", "plonkish,stark", "backends this prover runs (the default tier table proves micro with plonkish, macro and full with stark)")
	claim.Flags().Int64Var(&maxTrace, "max-trace-bytes", 0, "largest trace accepted (0: any)")
	claim.Flags().Uint64Var(&minReward, "min-reward", 0, "only jobs paying at least this")

	var leaseToken, reason, proofPath string
	leaseCmd := func(use, short string, do func(ctx context.Context, c *client.Client, id string) (pouw.ProofJob, error)) *cobra.Command {
		sub := &cobra.Command{
			Use: use + " JOB_ID --lease-token T", Short: short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := a.client(cmd)
				if err != nil {
					return err
				}
				j, err := do(cmd.Context(), c, args[0])
				if err != nil {
					return err
				}
				return a.print(cmd, j, func(w io.Writer) { jobDetail(w, j) })
			},
		}
		sub.Flags().StringVar(&leaseToken, "lease-token", "", "the lease token of the claim (required)")
		_ = sub.MarkFlagRequired("lease-token")
		return sub
	}
	renew := leaseCmd("renew", "Extend a lease", func(ctx context.Context, c *client.Client, id string) (pouw.ProofJob, error) {
		return c.Renew(ctx, id, leaseToken)
	})
	submit := leaseCmd("submit", "Submit a proof file; the coordinator verifies it", func(ctx context.Context, c *client.Client, id string) (pouw.ProofJob, error) {
		proof, err := os.ReadFile(proofPath)
		if err != nil {
			return pouw.ProofJob{}, fmt.Errorf("--proof: %w", err)
		}
		return c.Submit(ctx, id, leaseToken, proof)
	})
	submit.Flags().StringVar(&proofPath, "proof", "", "proof file (pouw prove writes one) (required)")
	_ = submit.MarkFlagRequired("proof")
	fail := leaseCmd("fail", "Report that the job could not be proven (counts as a failed attempt)", func(ctx context.Context, c *client.Client, id string) (pouw.ProofJob, error) {
		return c.Fail(ctx, id, leaseToken, reason)
	})
	fail.Flags().StringVar(&reason, "reason", "", "why")
	release := leaseCmd("release", "Give a lease back without penalty", func(ctx context.Context, c *client.Client, id string) (pouw.ProofJob, error) {
		return c.Release(ctx, id, leaseToken, reason)
	})
	release.Flags().StringVar(&reason, "reason", "", "why")

	cmd.AddCommand(pending, show, history, claim, renew, submit, fail, release)
	return cmd
}

func newDeadLetterCmd() *cobra.Command {
	var a apiFlags
	var tier, cursor string
	var limit int
	var all bool
	cmd := &cobra.Command{
		Use:   "dead-letter",
		Short: "List dead jobs; requeue one (admin)",
		Long:  `List the dead-letter queue, most recently dead first; 'requeue' brings a dead job back to pending with its attempts reset and its reward reserved again.` + apiHelp,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client(cmd)
			if err != nil {
				return err
			}
			l, err := listAll(cmd.Context(), tier, limit, cursor, all, c.DeadLetter)
			if err != nil {
				return err
			}
			if a.asJSON {
				return printList(&a, cmd, l)
			}
			return a.print(cmd, l, func(w io.Writer) {
				fmt.Fprintln(w, "JOB ID\tTIER\tATTEMPTS\tREWARD\tREASON")
				for _, j := range l.Jobs {
					fmt.Fprintf(w, "%s\t%s\t%d/%d\t%d\t%s\n", j.JobID, j.Tier, j.Attempts, j.MaxRetries, j.RewardBudget, j.DeadReason)
				}
				if l.NextCursor != "" {
					fmt.Fprintf(w, "more: --cursor %s\n", l.NextCursor)
				}
			})
		},
	}
	a.register(cmd)
	listFlags(cmd, &tier, &limit, &cursor, &all)
	cmd.AddCommand(&cobra.Command{
		Use: "requeue JOB_ID", Short: "Bring a dead job back to pending (admin)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(cmd)
			if err != nil {
				return err
			}
			j, err := c.Requeue(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.print(cmd, j, func(w io.Writer) { jobDetail(w, j) })
		},
	})
	return cmd
}

func newProversCmd() *cobra.Command {
	var a apiFlags
	cmd := &cobra.Command{
		Use:   "provers",
		Short: "List registered provers and their statistics",
		Long:  `List registered provers with SPEC.md's statistics: jobs completed and failed, fees earned, average completion time, last seen. Register one with 'pouw tokens create'.` + apiHelp,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client(cmd)
			if err != nil {
				return err
			}
			ps, err := c.Provers(cmd.Context())
			if err != nil {
				return err
			}
			if ps == nil {
				ps = []pouw.ProverStats{}
			}
			return a.print(cmd, pouw.ProverList{Provers: ps}, func(w io.Writer) {
				fmt.Fprintln(w, "PROVER\tCOMPLETED\tFAILED\tEARNED\tAVG MS\tLAST SEEN")
				for _, p := range ps {
					fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%s\n", p.ProverID, p.JobsCompleted, p.JobsFailed,
						p.TotalFeeEarned, p.AvgCompletionTimeMs, fmtMs(p.LastSeenMs))
				}
			})
		},
	}
	a.register(cmd)
	printSuspension := func(cmd *cobra.Command, s client.Suspension) error {
		return a.print(cmd, s, func(w io.Writer) {
			fmt.Fprintf(w, "prover_id\t%s\nsuspended\t%t\n", s.ProverID, s.Suspended)
			if s.Reason != "" {
				fmt.Fprintf(w, "reason\t%s\n", s.Reason)
			}
		})
	}
	var reason string
	suspend := &cobra.Command{
		Use: "suspend PROVER_ID --reason TEXT", Short: "Suspend a prover (admin): it may no longer claim", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(cmd)
			if err != nil {
				return err
			}
			if reason == "" {
				return errors.New("--reason is required (it goes to the audit log)")
			}
			s, err := c.Suspend(cmd.Context(), args[0], reason)
			if err != nil {
				return err
			}
			return printSuspension(cmd, s)
		},
	}
	suspend.Flags().StringVar(&reason, "reason", "", "why (recorded in the audit log)")
	cmd.AddCommand(suspend, &cobra.Command{
		Use: "unsuspend PROVER_ID", Short: "Lift a prover's suspension (admin); its earlier rejections are forgotten", Args: cobra.ExactArgs(1),
		Example: `  pouw provers unsuspend gpu-box-1`,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(cmd)
			if err != nil {
				return err
			}
			s, err := c.Unsuspend(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printSuspension(cmd, s)
		},
	})
	return cmd
}

func newTokensCmd() *cobra.Command {
	var a apiFlags
	cmd := &cobra.Command{
		Use:   "tokens",
		Short: "Create, rotate and revoke prover tokens (admin)",
		Long: `Register provers, rotate and revoke their tokens. A token is printed once;
the coordinator keeps only its hash, so store it now (a farm reads it from
--token or POUW_TOKEN). Tokens expire after the coordinator's --token-ttl.
'rotate' issues a new token while the old ones keep working for a grace
period; 'revoke' ends every token of a prover at once, on every coordinator
of the deployment. Each is recorded in the event stream (admin.action).` + apiHelp,
		Args: cobra.NoArgs,
	}
	a.register(cmd)
	cmd.AddCommand(&cobra.Command{
		Use: "create PROVER_ID", Short: "Register a prover and print its token (once)", Args: cobra.ExactArgs(1),
		Example: `  pouw tokens create gpu-box-1`,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(cmd)
			if err != nil {
				return err
			}
			r, err := c.RegisterProver(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.print(cmd, r, func(w io.Writer) {
				fmt.Fprintf(w, "prover_id\t%s\ntoken\t%s\n", r.ProverID, r.Token)
				fmt.Fprintln(w, "(shown once: the coordinator keeps only its hash)")
			})
		},
	})
	var grace time.Duration
	rotate := &cobra.Command{
		Use: "rotate PROVER_ID", Short: "Issue a new token; the old ones keep working for --grace", Args: cobra.ExactArgs(1),
		Example: `  pouw tokens rotate gpu-box-1 --grace 2h`,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(cmd)
			if err != nil {
				return err
			}
			if grace < 0 {
				return errors.New("--grace must not be negative")
			}
			r, err := c.RotateToken(cmd.Context(), args[0], grace)
			if err != nil {
				return err
			}
			return a.print(cmd, r, func(w io.Writer) {
				fmt.Fprintf(w, "prover_id\t%s\ntoken\t%s\n", r.ProverID, r.Token)
				if r.ExpiresAtMs > 0 {
					fmt.Fprintf(w, "expires\t%s\n", fmtMs(r.ExpiresAtMs))
				}
				fmt.Fprintf(w, "old tokens until\t%s\n", fmtMs(r.OldValidUntilMs))
				fmt.Fprintln(w, "(shown once: the coordinator keeps only its hash)")
			})
		},
	}
	rotate.Flags().DurationVar(&grace, "grace", 0, "how long the old tokens keep working (0: the coordinator's --rotate-grace)")
	cmd.AddCommand(rotate)
	cmd.AddCommand(&cobra.Command{
		Use: "revoke PROVER_ID", Short: "Revoke every token of a prover, at once, everywhere", Args: cobra.ExactArgs(1),
		Example: `  pouw tokens revoke gpu-box-1 && pouw tokens rotate gpu-box-1`,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(cmd)
			if err != nil {
				return err
			}
			n, err := c.RevokeTokens(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			out := struct {
				ProverID string `json:"prover_id"`
				Revoked  int    `json:"revoked"`
			}{args[0], n}
			return a.print(cmd, out, func(w io.Writer) {
				fmt.Fprintf(w, "prover_id\t%s\nrevoked\t%d\n", args[0], n)
			})
		},
	})
	return cmd
}

func newPoolCmd() *cobra.Command {
	var a apiFlags
	show := func(cmd *cobra.Command, p pouw.PoolStatus) error {
		return a.print(cmd, p, func(w io.Writer) {
			fmt.Fprintf(w, "deposited\t%d\navailable\t%d\nreserved\t%d\npaid\t%d\n", p.Deposited, p.Available, p.Reserved, p.Paid)
		})
	}
	cmd := &cobra.Command{
		Use:   "pool",
		Short: "Show the fee pool; deposit into it (admin)",
		Long:  `Show the fee pool ledger (deposited = available + reserved + paid). Ingest reserves a job's reward; completion pays it; dead letter returns it.` + apiHelp,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client(cmd)
			if err != nil {
				return err
			}
			p, err := c.Pool(cmd.Context())
			if err != nil {
				return err
			}
			return show(cmd, p)
		},
	}
	a.register(cmd)
	var memo string
	dep := &cobra.Command{
		Use: "deposit AMOUNT", Short: "Add funds to the pool (admin)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil {
				return fmt.Errorf("amount %q: want a positive integer", args[0])
			}
			c, err := a.client(cmd)
			if err != nil {
				return err
			}
			p, err := c.Deposit(cmd.Context(), n, memo)
			if err != nil {
				return err
			}
			return show(cmd, p)
		},
	}
	dep.Flags().StringVar(&memo, "memo", "", "where the funds come from")
	cmd.AddCommand(dep)
	return cmd
}

func newStatusCmd() *cobra.Command {
	var a apiFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show jobs per state and tier, the pool and the provers",
		Long:  `Show the PoUW system status: jobs per state and tier, the age of the oldest pending job, the fee pool and the number of provers.` + apiHelp,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client(cmd)
			if err != nil {
				return err
			}
			s, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			return a.print(cmd, s, func(w io.Writer) {
				fmt.Fprint(w, "TIER")
				for _, st := range pouw.States {
					fmt.Fprintf(w, "\t%s", strings.ToUpper(string(st)))
				}
				fmt.Fprintln(w, "\tOLDEST PENDING")
				for _, ts := range s.Tiers {
					fmt.Fprint(w, ts.Tier)
					for _, st := range pouw.States {
						fmt.Fprintf(w, "\t%d", ts.Counts[st])
					}
					fmt.Fprintf(w, "\t%s\n", time.Duration(ts.OldestPendingAgeMs)*time.Millisecond)
				}
				fmt.Fprintf(w, "\npool\tdeposited %d, available %d, reserved %d, paid %d\n",
					s.Pool.Deposited, s.Pool.Available, s.Pool.Reserved, s.Pool.Paid)
				fmt.Fprintf(w, "provers\t%d\nlast_seq\t%d\n", s.Provers, s.LastSeq)
			})
		},
	}
	a.register(cmd)
	return cmd
}

func newEventsCmd() *cobra.Command {
	var a apiFlags
	var after int64
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Follow the event stream",
		Long: `Follow the coordinator's event stream (every state change), reconnecting
with Last-Event-ID when the connection drops, until interrupted. --after N
replays the retained events after id N first. With --json each event is one
JSON line.` + apiHelp,
		Example: `  pouw events
  pouw events --after 0 --json | jq .`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client(cmd)
			if err != nil {
				return err
			}
			var from *uint64
			if after >= 0 {
				v := uint64(after)
				from = &v
			}
			out := cmd.OutOrStdout()
			enc := json.NewEncoder(out)
			_, err = c.Follow(cmd.Context(), from, client.StreamHandler{
				Event: func(ev pouw.Event) error {
					if a.asJSON {
						return enc.Encode(ev)
					}
					_, err := fmt.Fprintln(out, eventLine(ev))
					return err
				},
				Reset: func(r pouw.ResetEvent) error {
					fmt.Fprintf(cmd.ErrOrStderr(), "pouw: events were lost to retention (%s)\n", r.Reason)
					return nil
				},
			})
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
	a.register(cmd)
	cmd.Flags().Int64Var(&after, "after", -1, "start after this event id (-1: from now)")
	return cmd
}

// eventLine is one event as pouw events prints it: id, time, type, then
// the fields the event has.
func eventLine(ev pouw.Event) string {
	line := fmt.Sprintf("%d  %s  %-18s", ev.ID, fmtMs(ev.AtMs), ev.Type)
	// Audit events say who did what (admin.action, prover.suspended).
	if ev.Action != "" {
		line += " action=" + ev.Action
	}
	if ev.Actor != "" {
		line += " actor=" + ev.Actor
	}
	if ev.JobID != "" {
		line += " job=" + ev.JobID
	}
	if ev.Tier != nil {
		line += " tier=" + ev.Tier.String()
	}
	if ev.State != "" {
		line += " state=" + string(ev.State)
	}
	if ev.ProverID != "" {
		line += " prover=" + ev.ProverID
	}
	if ev.Attempts > 0 {
		line += " attempts=" + strconv.FormatUint(uint64(ev.Attempts), 10)
	}
	if ev.Amount > 0 {
		line += " amount=" + strconv.FormatUint(ev.Amount, 10)
	}
	if ev.Reason != "" {
		line += " reason=" + strconv.Quote(ev.Reason)
	}
	return line
}

func newBlobCmd() *cobra.Command {
	var a apiFlags
	cmd := &cobra.Command{
		Use:   "blob",
		Short: "Upload (admin) or download content-addressed blobs (traces, proofs)",
		Long:  `Blobs are keyed by the BLAKE3 of their bytes: a job's trace_ref and proof_ref. Downloads are checked against the key.` + apiHelp,
		Args:  cobra.NoArgs,
	}
	a.register(cmd)
	put := &cobra.Command{
		Use: "put FILE", Short: "Upload a file; prints its hash", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client(cmd)
			if err != nil {
				return err
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			st, err := f.Stat()
			if err != nil {
				return err
			}
			h, err := hashFile(f)
			if err != nil {
				return err
			}
			info, err := c.UploadBlobFrom(cmd.Context(), h, f, st.Size())
			if err != nil {
				return err
			}
			return a.print(cmd, info, func(w io.Writer) {
				fmt.Fprintf(w, "hash\t%s\nsize\t%d\ncreated\t%v\n", info.Hash, info.Size, info.Created)
			})
		},
	}
	var outPath string
	get := &cobra.Command{
		Use: "get HASH --out FILE", Short: "Download a blob, checking its hash", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := pouw.ParseHash(args[0])
			if err != nil {
				return err
			}
			c, err := a.client(cmd)
			if err != nil {
				return err
			}
			f, err := os.Create(outPath)
			if err != nil {
				return err
			}
			n, err := c.DownloadBlob(cmd.Context(), h, f)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				_ = os.Remove(outPath)
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %d bytes to %s\n", n, outPath)
			return nil
		},
	}
	get.Flags().StringVar(&outPath, "out", "", "file to write (required)")
	_ = get.MarkFlagRequired("out")
	cmd.AddCommand(put, get)
	return cmd
}

func newHasher() *blake3.Hasher { return blake3.New() }

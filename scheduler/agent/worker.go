package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/scheduler"
	"github.com/pouwfarm/pouwfarm/trace"
)

// Worker processes: a proof system that cannot stop on a context (gnark's
// Groth16 takes none) and that uses every core whatever the slot says runs
// in a per-slot worker process — pouw itself, started with the slot's
// GOMAXPROCS, keeping its keys loaded between jobs. Cancelling kills the
// process (the next job starts a fresh one); a backend that crashes or runs
// out of memory takes only its worker down, and the job is reported failed.
//
// The protocol on the worker's stdin/stdout is a sequence of frames:
//
//	request:  u32 len, JSON workRequest; u64 len, the trace encoding
//	response: u32 len, JSON workResponse; u64 len, the proof
//
// all lengths big-endian, each bounded (maxFrameJSON, the trace and proof
// limits), so neither side allocates what the other merely claims.
//
// An aggregation request (an aggregation job of the batch DAG) lists its
// children in workRequest.Children, at most pouw.MaxBatch, each with the
// lengths of its parts; its body is the children's trace header encodings
// (trace.AppendHeader) back to back, then their proofs back to back, in
// child order, and nothing else. The worker checks every length against the
// body before slicing it and calls the backend's Aggregate.

const maxFrameJSON = 64 << 10

// MaxProofBytes bounds a proof read back from a worker.
const MaxProofBytes = 256 << 20

type workRequest struct {
	Backend   string    `json:"backend"`
	JobID     string    `json:"job_id"`
	ProverID  string    `json:"prover_id"`
	TraceHash pouw.Hash `json:"trace_hash"`
	// Children, when present, make this an aggregation request.
	Children []workChild `json:"children,omitempty"`
}

// workChild is one child of an aggregation request: its statement but for
// the header, and the lengths of its header encoding and proof in the body.
type workChild struct {
	JobID       string    `json:"job_id"`
	ProverID    string    `json:"prover_id"`
	TraceHash   pouw.Hash `json:"trace_hash"`
	HeaderBytes int64     `json:"header_bytes"`
	ProofBytes  int64     `json:"proof_bytes"`
}

type workResponse struct {
	Error string `json:"error,omitempty"`
}

func writeFrame(w io.Writer, head any, body []byte) error {
	j, err := json.Marshal(head)
	if err != nil {
		return err
	}
	var n [12]byte
	binary.BigEndian.PutUint32(n[:4], uint32(len(j)))
	binary.BigEndian.PutUint64(n[4:], uint64(len(body)))
	// Header length, JSON, body length, body.
	for _, p := range [][]byte{n[:4], j, n[4:], body} {
		if len(p) == 0 {
			// An empty write blocks on a synchronous pipe until the other
			// side reads, which it has no reason to do.
			continue
		}
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	return nil
}

// errFrame marks a malformed or oversized frame.
var errFrame = errors.New("worker protocol: bad frame")

func readFrame(r io.Reader, head any, maxBody int64) ([]byte, error) {
	var n [8]byte
	if _, err := io.ReadFull(r, n[:4]); err != nil {
		return nil, err
	}
	hl := binary.BigEndian.Uint32(n[:4])
	if hl > maxFrameJSON {
		return nil, fmt.Errorf("%w: header of %d bytes", errFrame, hl)
	}
	hb := make([]byte, hl)
	if _, err := io.ReadFull(r, hb); err != nil {
		return nil, fmt.Errorf("%w: %v", errFrame, err)
	}
	if err := json.Unmarshal(hb, head); err != nil {
		return nil, fmt.Errorf("%w: %v", errFrame, err)
	}
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, fmt.Errorf("%w: %v", errFrame, err)
	}
	bl := binary.BigEndian.Uint64(n[:])
	if bl > uint64(maxBody) {
		return nil, fmt.Errorf("%w: body of %d bytes exceeds %d", errFrame, bl, maxBody)
	}
	// Grow as bytes arrive rather than trusting the length up front.
	var buf bytes.Buffer
	if _, err := io.CopyN(&buf, r, int64(bl)); err != nil {
		return nil, fmt.Errorf("%w: %v", errFrame, err)
	}
	return buf.Bytes(), nil
}

// ServeWorker is the worker process's side: it reads requests from r,
// proves each with reg, and writes the answers to w, until r ends. A trace
// larger than maxTrace is refused. ctx is handed to the backend (a worker
// is normally stopped by being killed, not by ctx).
func ServeWorker(ctx context.Context, r io.Reader, w io.Writer, reg *backends.Registry, maxTrace int64) error {
	br := bufio.NewReader(r)
	bw := bufio.NewWriter(w)
	for {
		var req workRequest
		raw, err := readFrame(br, &req, maxTrace)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		proof, perr := serveOne(ctx, req, raw, reg)
		resp := workResponse{}
		if perr != nil {
			resp.Error = perr.Error()
			proof = nil
		}
		if err := writeFrame(bw, resp, proof); err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
	}
}

func serveOne(ctx context.Context, req workRequest, raw []byte, reg *backends.Registry) ([]byte, error) {
	b, err := reg.Get(req.Backend)
	if err != nil {
		return nil, err
	}
	if req.Children != nil {
		agg, ok := b.(backends.Aggregator)
		if !ok {
			return nil, fmt.Errorf("backend %q does not aggregate proofs", req.Backend)
		}
		sts, proofs, err := decodeAggregateRequest(req, raw)
		if err != nil {
			return nil, err
		}
		batch := backends.Statement{TraceHash: req.TraceHash, JobID: req.JobID, ProverID: req.ProverID}
		return agg.Aggregate(ctx, batch, sts, proofs)
	}
	t, err := trace.Decode(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		return nil, fmt.Errorf("trace does not decode: %w", err)
	}
	st := backends.Statement{Header: &t.Header, TraceHash: req.TraceHash, JobID: req.JobID, ProverID: req.ProverID}
	return b.Prove(ctx, t, st)
}

// encodeAggregateRequest builds the request and body of an aggregation
// request for children and their proofs.
func encodeAggregateRequest(backend string, batch backends.Statement, children []backends.Statement, proofs [][]byte) (workRequest, []byte, error) {
	if len(children) != len(proofs) {
		return workRequest{}, nil, fmt.Errorf("aggregate: %d statements and %d proofs", len(children), len(proofs))
	}
	if len(children) == 0 || len(children) > pouw.MaxBatch {
		return workRequest{}, nil, fmt.Errorf("aggregate: %d children (1..%d)", len(children), pouw.MaxBatch)
	}
	// The request's own job, prover and trace hash are the batch's: the
	// aggregate proof is bound to them.
	req := workRequest{Backend: backend, JobID: batch.JobID, ProverID: batch.ProverID, TraceHash: batch.TraceHash,
		Children: make([]workChild, len(children))}
	var body []byte
	for i, c := range children {
		if c.Header == nil {
			return workRequest{}, nil, fmt.Errorf("aggregate: child %d has no header", i)
		}
		n := len(body)
		body = trace.AppendHeader(body, c.Header)
		req.Children[i] = workChild{JobID: c.JobID, ProverID: c.ProverID, TraceHash: c.TraceHash,
			HeaderBytes: int64(len(body) - n), ProofBytes: int64(len(proofs[i]))}
	}
	for _, p := range proofs {
		body = append(body, p...)
	}
	return req, body, nil
}

// decodeAggregateRequest is the worker's side of encodeAggregateRequest: at
// most pouw.MaxBatch children, every length checked against what is left of
// the body before it is sliced, the lengths covering the body exactly, and
// every header decoding whole and valid. The proofs alias body.
func decodeAggregateRequest(req workRequest, body []byte) ([]backends.Statement, [][]byte, error) {
	n := len(req.Children)
	if n == 0 || n > pouw.MaxBatch {
		return nil, nil, fmt.Errorf("%w: %d children (1..%d)", errFrame, n, pouw.MaxBatch)
	}
	rest := body
	take := func(l int64, what string, i int) ([]byte, error) {
		if l < 0 || l > int64(len(rest)) {
			return nil, fmt.Errorf("%w: child %d: %s of %d bytes, %d left in the body", errFrame, i, what, l, len(rest))
		}
		p := rest[:l:l]
		rest = rest[l:]
		return p, nil
	}
	sts := make([]backends.Statement, n)
	for i, c := range req.Children {
		hb, err := take(c.HeaderBytes, "header", i)
		if err != nil {
			return nil, nil, err
		}
		h, used, err := trace.DecodeHeader(bytes.NewReader(hb), int64(len(hb)))
		if err != nil {
			return nil, nil, fmt.Errorf("%w: child %d: header: %w", errFrame, i, err)
		}
		if used != int64(len(hb)) {
			return nil, nil, fmt.Errorf("%w: child %d: header is %d bytes, request says %d", errFrame, i, used, len(hb))
		}
		sts[i] = backends.Statement{Header: h, TraceHash: c.TraceHash, JobID: c.JobID, ProverID: c.ProverID}
	}
	proofs := make([][]byte, n)
	for i, c := range req.Children {
		p, err := take(c.ProofBytes, "proof", i)
		if err != nil {
			return nil, nil, err
		}
		proofs[i] = p
	}
	if len(rest) != 0 {
		return nil, nil, fmt.Errorf("%w: %d bytes after the last proof", errFrame, len(rest))
	}
	return sts, proofs, nil
}

// ErrWorkerDied is wrapped when a worker process ends or breaks the
// protocol in the middle of a job.
var ErrWorkerDied = errors.New("worker process died")

// WorkerPool runs proofs in per-slot worker processes.
type WorkerPool struct {
	// Command returns the command that starts a worker for slot; it should
	// set GOMAXPROCS to the slot's cores. Stdin, Stdout and Stderr are
	// set by the pool.
	Command func(slot scheduler.Slot) *exec.Cmd
	// OnStart, when set, is told of every worker process started.
	OnStart func(slot scheduler.Slot, p *os.Process)
	Logger  *slog.Logger

	mu   sync.Mutex
	idle map[string][]*worker // by slot id
	all  map[*worker]bool
}

type worker struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Reader
	stderr *tailBuffer
	done   chan struct{}
}

// tailBuffer keeps the last bytes a worker wrote to stderr, for the reason
// of a failure.
type tailBuffer struct {
	mu sync.Mutex
	b  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 2048 {
		t.b = t.b[len(t.b)-2048:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}

func (p *WorkerPool) start(slot scheduler.Slot) (*worker, error) {
	cmd := p.Command(slot)
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	tb := &tailBuffer{}
	cmd.Stderr = tb
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting a worker for %s: %w", slot.ID, err)
	}
	if p.OnStart != nil {
		p.OnStart(slot, cmd.Process)
	}
	if p.Logger != nil {
		p.Logger.Info("worker process started", "slot", slot.ID, "pid", cmd.Process.Pid)
	}
	w := &worker{cmd: cmd, in: in, out: bufio.NewReader(out), stderr: tb, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(w.done) }()
	p.mu.Lock()
	if p.all == nil {
		p.all = map[*worker]bool{}
	}
	p.all[w] = true
	p.mu.Unlock()
	return w, nil
}

func (p *WorkerPool) get(slot scheduler.Slot) (*worker, error) {
	p.mu.Lock()
	for len(p.idle[slot.ID]) > 0 {
		ws := p.idle[slot.ID]
		w := ws[len(ws)-1]
		p.idle[slot.ID] = ws[:len(ws)-1]
		select {
		case <-w.done: // died while idle
			delete(p.all, w)
			continue
		default:
		}
		p.mu.Unlock()
		return w, nil
	}
	p.mu.Unlock()
	return p.start(slot)
}

func (p *WorkerPool) put(slot scheduler.Slot, w *worker) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.idle == nil {
		p.idle = map[string][]*worker{}
	}
	p.idle[slot.ID] = append(p.idle[slot.ID], w)
}

func (p *WorkerPool) kill(w *worker) {
	_ = w.cmd.Process.Kill()
	<-w.done
	p.mu.Lock()
	delete(p.all, w)
	p.mu.Unlock()
}

// Prove proves a trace (its encoding, already hash-checked) in a worker of
// slot. When ctx ends first the worker is killed and ctx's error returned.
func (p *WorkerPool) Prove(ctx context.Context, slot scheduler.Slot, backend string, traceBytes []byte, st backends.Statement) ([]byte, error) {
	req := workRequest{Backend: backend, JobID: st.JobID, ProverID: st.ProverID, TraceHash: st.TraceHash}
	return p.do(ctx, slot, req, traceBytes)
}

// Aggregate proves an aggregate proof over children's proofs (the
// aggregation job of a batch) with backend in a worker of slot. When ctx
// ends first the worker is killed and ctx's error returned.
func (p *WorkerPool) Aggregate(ctx context.Context, slot scheduler.Slot, backend string, batch backends.Statement, children []backends.Statement, proofs [][]byte) ([]byte, error) {
	req, body, err := encodeAggregateRequest(backend, batch, children, proofs)
	if err != nil {
		return nil, err
	}
	return p.do(ctx, slot, req, body)
}

// do sends one request to a worker of slot and reads its answer.
func (p *WorkerPool) do(ctx context.Context, slot scheduler.Slot, req workRequest, body []byte) ([]byte, error) {
	w, err := p.get(slot)
	if err != nil {
		return nil, err
	}
	type result struct {
		proof []byte
		err   error
	}
	res := make(chan result, 1)
	go func() {
		if err := writeFrame(w.in, req, body); err != nil {
			res <- result{err: fmt.Errorf("%w: sending the job: %v", ErrWorkerDied, err)}
			return
		}
		var resp workResponse
		proof, err := readFrame(w.out, &resp, MaxProofBytes)
		switch {
		case err != nil:
			res <- result{err: fmt.Errorf("%w: %v", ErrWorkerDied, err)}
		case resp.Error != "":
			res <- result{err: errors.New(resp.Error), proof: nil}
		default:
			res <- result{proof: proof}
		}
	}()
	select {
	case <-ctx.Done():
		// The only way to stop a backend that ignores its context.
		p.kill(w)
		return nil, context.Cause(ctx)
	case r := <-res:
		if errors.Is(r.err, ErrWorkerDied) {
			p.kill(w)
			if tail := w.stderr.String(); tail != "" {
				r.err = fmt.Errorf("%w; its last words: %s", r.err, tail)
			}
			return nil, r.err
		}
		p.put(slot, w)
		return r.proof, r.err
	}
}

// Close kills every worker.
func (p *WorkerPool) Close() {
	p.mu.Lock()
	ws := make([]*worker, 0, len(p.all))
	for w := range p.all {
		ws = append(ws, w)
	}
	p.idle = nil
	p.mu.Unlock()
	for _, w := range ws {
		_ = w.in.Close()
		p.kill(w)
	}
}

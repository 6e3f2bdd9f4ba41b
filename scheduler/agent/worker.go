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

const maxFrameJSON = 64 << 10

// MaxProofBytes bounds a proof read back from a worker.
const MaxProofBytes = 256 << 20

type workRequest struct {
	Backend   string    `json:"backend"`
	JobID     string    `json:"job_id"`
	ProverID  string    `json:"prover_id"`
	TraceHash pouw.Hash `json:"trace_hash"`
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
	t, err := trace.Decode(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		return nil, fmt.Errorf("trace does not decode: %w", err)
	}
	st := backends.Statement{Header: &t.Header, TraceHash: req.TraceHash, JobID: req.JobID, ProverID: req.ProverID}
	return b.Prove(ctx, t, st)
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
		req := workRequest{Backend: backend, JobID: st.JobID, ProverID: st.ProverID, TraceHash: st.TraceHash}
		if err := writeFrame(w.in, req, traceBytes); err != nil {
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

// Package redistest runs a private redis-server for tests: started from PATH
// on a free loopback port with its data in a temporary directory, AOF on and
// RDB snapshots off, stopped at cleanup. Kill (SIGKILL) and Restart (same
// directory and port, so the AOF is replayed) let fault tests crash it.
//
// It never connects to, or starts anything on, the shared instance at
// 127.0.0.1:6379. When redis-server is not installed the calling test fails
// with a message saying so; it never skips, so a missing dependency cannot
// turn a red suite green.
//
// It is generic: it knows nothing of pouwfarm's stores and imports nothing
// of this module, so the store, API, farm and chaos tests can all use it.
package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// sharedPort is the port of the machine's shared Redis; a private server
// must never use it.
const sharedPort = 6379

// Options configure a private server. The zero value is AOF with
// appendfsync everysec, which is fast enough for ordinary tests.
type Options struct {
	// Dir holds the server's data (AOF) and log. Start uses t.TempDir()
	// when empty; New requires it.
	Dir string
	// AppendFsync is "always", "everysec" (default) or "no". Fault tests
	// that SIGKILL the server and count on every acknowledged write use
	// "always".
	AppendFsync string
	// ExtraArgs are appended to the redis-server command line
	// (e.g. "--maxmemory-policy", "allkeys-lru").
	ExtraArgs []string
	// StartTimeout bounds how long to wait until the server answers PING
	// (default 15s; replaying a large AOF takes a while).
	StartTimeout time.Duration
}

// Server is one private redis-server process.
type Server struct {
	opts Options
	bin  string
	port int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Start starts a private server for the test and stops it at cleanup. It
// fails the test (never skips) when redis-server is missing or does not
// come up.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	if opts.Dir == "" {
		opts.Dir = tb.TempDir()
	}
	s, err := New(opts)
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// New starts a private server outside a test (for TestMain, to share one
// server across a package run). The caller must Close it.
func New(opts Options) (*Server, error) {
	if opts.Dir == "" {
		return nil, errors.New("redistest: Options.Dir is required")
	}
	if opts.AppendFsync == "" {
		opts.AppendFsync = "everysec"
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 15 * time.Second
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redis-server not found in PATH (install the Debian package redis-server; ./scripts/test.sh does): %w", err)
	}
	s := &Server{opts: opts, bin: bin}
	// The free port is found by binding :0 and closing it, so another
	// process can take it before redis-server binds; retry a few times.
	var lastErr error
	for try := 0; try < 5; try++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s.port = port
		if lastErr = s.launch(); lastErr == nil {
			return s, nil
		}
	}
	return nil, lastErr
}

// Addr is "127.0.0.1:port".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL is "redis://127.0.0.1:port/0", the form of the coordinator's --store
// flag.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Port is the server's TCP port.
func (s *Server) Port() int { return s.port }

// Dir is the server's data directory.
func (s *Server) Dir() string { return s.opts.Dir }

// Running reports whether the process is alive.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL — a crash: nothing is flushed beyond what the AOF's
// fsync policy already wrote — and waits until the process is gone.
func (s *Server) Kill() error {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	default:
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("redistest: kill: %w", err)
	}
	<-done
	return nil
}

// Restart starts the server again on the same port and directory (it
// replays its AOF) after Kill or a crash, and waits until it answers.
func (s *Server) Restart() error {
	if s.Running() {
		return errors.New("redistest: restart: server is still running (Kill it first)")
	}
	return s.launch()
}

// Close stops the server (SIGKILL: its data directory is disposable).
func (s *Server) Close() error { return s.Kill() }

// LogTail returns the end of the server's log, for failure messages.
func (s *Server) LogTail() string {
	b, err := os.ReadFile(s.logPath())
	if err != nil {
		return ""
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func (s *Server) logPath() string { return filepath.Join(s.opts.Dir, "redis.log") }

func (s *Server) launch() error {
	if s.port == sharedPort {
		return errors.New("redistest: refusing to use the shared port 6379")
	}
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--protected-mode", "yes",
		"--dir", s.opts.Dir,
		"--logfile", s.logPath(),
		"--daemonize", "no",
		"--appendonly", "yes",
		"--appendfsync", s.opts.AppendFsync,
		"--save", "",
		"--maxmemory-policy", "noeviction",
	}
	args = append(args, s.opts.ExtraArgs...)
	cmd := exec.Command(s.bin, args...)
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("redistest: start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	deadline := time.Now().Add(s.opts.StartTimeout)
	for {
		select {
		case <-done:
			return fmt.Errorf("redistest: redis-server on port %d exited at start; log:\n%s", s.port, s.LogTail())
		default:
		}
		if err := ping(s.Addr()); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			_ = s.Kill()
			return fmt.Errorf("redistest: redis-server on port %d did not answer within %v: %v; log:\n%s",
				s.port, s.opts.StartTimeout, err, s.LogTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ping speaks just enough RESP to see +PONG; "-LOADING" (AOF replay) and a
// refused connection both mean not yet.
func ping(addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

func freePort() (int, error) {
	for i := 0; i < 10; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("redistest: find a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		_ = l.Close()
		if port != sharedPort {
			return port, nil
		}
	}
	return 0, errors.New("redistest: no free port")
}

// NewShared starts one private redis-server in a fresh temporary directory,
// for a whole test binary (from TestMain, where there is no testing.T).
// stop kills it and removes the directory. A missing redis-server is an error
// the caller must fail on, never a reason to skip.
func NewShared(name string) (srv *Server, stop func(), err error) {
	dir, err := os.MkdirTemp("", name+"-")
	if err != nil {
		return nil, nil, err
	}
	srv, err = New(Options{Dir: dir})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return srv, func() { srv.Close(); os.RemoveAll(dir) }, nil
}

package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// redisNode is one redis-server the harness crashes, restarts, promotes
// and demotes. It follows internal/redistest's approach (a private server
// on a free loopback port, never the shared 6379, AOF on, RDB off,
// noeviction), but keeps its role in its own hands: a promoted replica must
// come back from a crash as a primary, not as a replica of the dead one
// (redistest restarts with the arguments it started with).
type redisNode struct {
	p         *proc
	port      int
	dir       string
	replicaOf string // "host:port" of its primary; "" for a primary
}

func newRedisNode(dir, replicaOf string) (*redisNode, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("chaos: redis-server not found in PATH (./scripts/test.sh installs it): %w", err)
	}
	var lastErr error
	for try := 0; try < 5; try++ {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		_, port, _ := net.SplitHostPort(addr)
		n := &redisNode{dir: dir, replicaOf: replicaOf}
		n.port, _ = strconv.Atoi(port)
		if n.port == 6379 {
			continue
		}
		n.p = &proc{name: "redis-" + port, bin: bin, logPath: filepath.Join(dir, "redis.log")}
		if lastErr = n.start(); lastErr == nil {
			return n, nil
		}
	}
	return nil, lastErr
}

func (n *redisNode) Addr() string { return "127.0.0.1:" + strconv.Itoa(n.port) }

func (n *redisNode) start() error {
	n.p.args = []string{
		"--port", strconv.Itoa(n.port), "--bind", "127.0.0.1", "--protected-mode", "yes",
		"--dir", n.dir, "--daemonize", "no",
		"--appendonly", "yes", "--appendfsync", "always", "--save", "",
		"--maxmemory-policy", "noeviction", "--hash-max-listpack-value", "128",
	}
	if n.replicaOf != "" {
		host, port, _ := net.SplitHostPort(n.replicaOf)
		n.p.args = append(n.p.args, "--replicaof", host, port)
	}
	if err := n.p.start(); err != nil {
		return err
	}
	rc := newRedis(n.Addr())
	defer rc.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := rc.Ping(ctx).Err() // LOADING (AOF replay) is an error: not yet
		cancel()
		if err == nil {
			return nil
		}
		if !n.p.running() {
			return fmt.Errorf("chaos: redis-server on port %d exited at start (log %s)", n.port, n.p.logPath)
		}
		if time.Now().After(deadline) {
			n.p.kill()
			return fmt.Errorf("chaos: redis-server on port %d did not answer: %w", n.port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill is a crash: SIGKILL, nothing flushed beyond the AOF's fsyncs.
func (n *redisNode) Kill() error { n.p.kill(); return nil }

// Restart starts it again on the same port and directory (AOF replay).
func (n *redisNode) Restart() error {
	if n.p.running() {
		return errors.New("chaos: redis is still running")
	}
	return n.start()
}

func (n *redisNode) Close() error { n.p.kill(); return nil }

// Package chaos runs pouwfarm as real processes on loopback — a redis-server
// with AOF and a replica, two coordinators on one Redis prefix, three farms
// and a load generator — injects faults at random times from a printed seed
// (SIGKILL and SIGSTOP of farms, coordinator and Redis crashes, replica
// promotion, store clock jumps, corrupted traces, garbage proofs), and then
// proves with an invariant checker that nothing was lost: every job in
// exactly one state, nothing completed or paid twice, the pool balanced,
// every completed proof verifying again offline, and every completion
// acknowledged before a fault still there after it.
//
// The checker (Snapshot, Collect, Check) is ordinary code with ordinary
// unit tests. The scenarios that start processes live behind the `chaos`
// build tag (go test -tags chaos ./chaos/...) and in `pouw chaos`.
//
// It talks to the coordinators only over HTTP (coordinator/client) and
// reads the store through redisstore and the blob files directly, the way
// an auditor would; it never patches what it finds. It may import
// coordinator/client, coordinator/store/..., coordinator/blob, backends,
// trace and pouw; it must not import coordinator/api, scheduler or devnet
// (the processes under test are the `pouw` binary, not linked code).
package chaos

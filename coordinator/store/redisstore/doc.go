// Package redisstore is the production store.Store: the job queue, leases,
// fee pool, prover registry and event log of one deployment in Redis, shared
// by any number of coordinator processes.
//
// Every state transition is one Lua script (scripts.go), run by SHA with a
// fallback to EVAL on NOSCRIPT (go-redis Script). A script validates
// everything before its first write, because Redis never rolls a script
// back; an error reply therefore means nothing changed. Time inside the
// scripts is Redis TIME, so every coordinator judges leases and deadlines
// by one clock. With Options.TestClock the scripts add an offset read from a
// test-only key, and take the base from another when it is set, so tests
// move time without sleeping; without it (production) they read Redis TIME
// alone.
//
// # Redis settings it needs
//
//   - appendonly yes, and appendfsync always for the guarantee that an
//     acknowledged completion, payment or created_seq survives a crash
//     (everysec may lose the last second of writes: a completion could be
//     lost and a created_seq handed out again).
//   - maxmemory-policy noeviction: an evicted job, lease or ledger key is a
//     wrong answer, not a cache miss. With noeviction Redis refuses writes
//     when full and the store reports ErrUnavailable.
//   - Redis 7.0 or later (tested with 7.0.15): scripts read TIME before
//     they write, which needs effect replication, the only mode since 7.0.
//     A replica for failover; Options.WaitReplicas makes
//     the scripts that move money or hand out created_seq (enqueue,
//     complete, fail, reap, requeue, deposit) WAIT for it.
//
// Recommended: hash-max-listpack-value 128, so that a job hash holding a
// trace ref like "traces/<64 hex>" stays a compact listpack (about 0.7 KB
// per job instead of 1.4 KB).
//
// New reads maxmemory-policy and appendonly with CONFIG GET and logs a
// warning when they differ (it does not fail: managed Redis services often
// refuse CONFIG).
//
// # Key layout
//
// All keys of a deployment share the base B = "{<Prefix>}:" — one hash tag,
// hence one Redis Cluster slot, so every script may touch all of them.
// Independent deployments on one Redis use different prefixes.
//
//	B seq                     INCR counter of created_seq (never reused)
//	B job:<id>                hash: the job (short field names, see Enqueue's script)
//	B hist:<id>               list: the job's ended attempts but the current one, one
//	                          tab-separated line each, oldest first; the current attempt
//	                          (active, or completed: completion is final) is kept in the job's
//	                          fields ln, prover, lh, lclaim, cmpl and History appends it, so a
//	                          job completed at its first attempt has no list at all
//	B dd:<hex>                "<job id>|<until ms>": the dedup entry of
//	                          BLAKE3(intent_id|tier|trace_hash)[:16], TTL = DedupWindow
//	B pend:<tier>:<backend>   zset, all scores 0, members in claim order (ZRANGEBYLEX):
//	                          deadline(16 hex) reward'(14 hex) created_seq(16 hex)
//	                          trace_bytes(16 hex) job_id; reward' = 2^53-1-reward,
//	                          so higher rewards sort first
//	B pseq:<tier>             zset job id by created_seq: the oldest pending job
//	B wait:<tier>             zset job id by deadline: jobs waiting on dependencies
//	B rdeps:<id>              set: waiting jobs that depend on <id>
//	B leases:<tier>           zset job id by lease expiry (ms): the reaper's index
//	B dead:<tier>             zset job id by the id of its job.dead event
//	B backends                set of backend names seen at enqueue
//	B pool                    hash dep, avail, res, paid, and c0 c1 c2: jobs completed per
//	                          tier (cumulative; beside the payment, so a completion
//	                          writes both with one HSET)
//	B prover:<id>             hash th (token hash), cat (registered at), sus and sr
//	                          (suspended, reason), lift (suspension lifted at)
//	B ptok:<token hash>       string prover id (deleted by revocation)
//	B ptokexp:<token hash>    string ms: the token stops working then (absent: never)
//	B ptoks:<id>              set of the prover's token hashes (rotation, revocation)
//	B provers                 set of prover ids
//	B pstats:<id>             hash done, failed, earned, ctime, seen
//	B evseq                   INCR counter of event ids
//	B events                  stream, entry id "<event id>-0", capped at MaxEvents
//	                          (exactly below 1000, by whole stream nodes above)
//	B test:clock_offset_ms    test-only: ms added to the clock
//	B test:clock_frozen_ms    test-only: replaces Redis TIME when set
//
// The layout changed on 2026-11-25, to save Redis calls on the hot path:
// the hist list no longer holds the active or completed attempt, and the
// completed counts moved from their own "completed" hash into the pool
// hash. Data written before is not migrated (no deployment existed): a job
// leased or completed under the old layout would show that attempt twice
// in History, and the old completed counts would be ignored.
//
// Status counts jobs per state from these indexes (ZCARD), so transitions
// keep no counters; "completed" is cumulative (it does not drop when a
// completed job expires).
//
// A claim reads the head of one pend zset per (tier, backend) it asks for:
// O(log n) whatever the depth. With min_reward or max trace bytes it scans
// on from the head until a job fits, at most Options.MaxClaimScan entries in
// all, then answers ErrNoJob. A completed job's job and hist keys expire
// after Retention (by the store's clock for reads, by Redis TTL for
// memory); the dedup entry lives DedupWindow; dead jobs, prover statistics
// and the pool persist.
//
// Lease tokens are 16 random bytes (hex, from Options.Rand); Redis keeps
// only BLAKE3(token), and history shows lease_id = hex(BLAKE3(token)[:8]).
//
// go-redis resends a command whose connection dropped before the reply. An
// identical Complete is answered "completed" again (it pays once); a
// resent Claim leases a second job, whose lease then expires; a resent
// Deposit is applied twice (the API needs idempotency keys for that).
//
// This package imports store, pouw and go-redis; it must not import api,
// blob, scheduler or backends.
package redisstore

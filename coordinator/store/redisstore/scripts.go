package redisstore

import (
	"strings"

	"github.com/redis/go-redis/v9"
)

// Every script gets KEYS[1] = the deployment's key base "{prefix}:" and
// ARGV[1..7] = the store's configuration (see Store.cfg); its own arguments
// start at ARGV[8]. Every key is built from KEYS[1], so all of them live in
// one hash slot (Redis Cluster runs the script on that slot's node).
//
// Rules the scripts follow:
//   - Every redis.call costs microseconds (about 3 µs each on a small
//     shared VM, most of it the call's own overhead, not the command): read
//     a job once, with one HMGET of JOBFIELDS and the extra fields the
//     script needs, and answer with that read patched with what the script
//     wrote instead of reading it back (jobreply); build what can be built
//     (history lines) instead of reading it; keep no counter an index
//     already holds (counts are ZCARDs). BenchmarkRedisScriptServerTime -v
//     prints the calls each hot script makes.
//   - Validate everything, then write: Redis does not roll a script back,
//     so an error reply must come before the first write.
//   - Lua numbers are doubles. Amounts, times and sequence numbers stay
//     below 2^53 (checked), are passed to Redis as strings made with
//     istr (string.format %d: tostring would print %.14g and lose digits),
//     and never go through cjson, which prints numbers with 14 digits.
//   - Errors are replies "POUW_<CODE> message"; redisstore.go maps the code
//     to the sentinel error.
const prelude = `
local K = KEYS[1]
local MAXEV = ARGV[1]
local LEASE = {tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])}
local RETAIN = ARGV[5]
local DEDUP = ARGV[6]
local MAXSCAN = tonumber(ARGV[7])
local MAXAMT = 9007199254740991

local function istr(n) return string.format('%d', n) end

-- getjob reads a job's fields in the order of jobFields (redisstore.go):
-- half the reply of HGETALL, which Lua converts element by element.
local function getjob(jk) return redis.call('HMGET', jk, JOBFIELDS) end
local function hex16(n) return string.format('%016x', n) end
local function jkey(id) return K .. 'job:' .. id end
local function hkey(id) return K .. 'hist:' .. id end

-- The store's clock: Redis TIME plus the test-only offset key. Tests may
-- also freeze the base time, so that a test reads the same millisecond as
-- the script that ran before it. Without Options.TestClock this helper is
-- replaced by prodNowMs (scripts.go), which reads Redis TIME only.
local function now_ms()
  local v = redis.call('MGET', K .. 'test:clock_offset_ms', K .. 'test:clock_frozen_ms')
  local base = tonumber(v[2])
  if not base then
    local t = redis.call('TIME')
    base = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return base + (tonumber(v[1]) or 0)
end

-- expired reports whether a completed job's detail is past retention by
-- the store's clock (its keys also carry a TTL, which Redis applies by its
-- own clock; in production the two agree).
local function expired(jk, now)
  local f = redis.call('HMGET', jk, 'state', 'rexp')
  return f[1] == 'completed' and f[2] and now >= tonumber(f[2])
end

local function emit(typ, now, f)
  local id = redis.call('INCR', K .. 'evseq')
  -- Exact trimming costs a listpack rewrite per event; from 1000 events on,
  -- trim by whole stream nodes ('~'), keeping at most a node more.
  local args = {'XADD', K .. 'events', 'MAXLEN', '=', MAXEV, istr(id) .. '-0', 't', typ, 'a', istr(now)}
  if tonumber(MAXEV) >= 1000 then args[4] = '~' end
  for i = 1, #f do args[#args + 1] = f[i] end
  redis.call(unpack(args))
  return id
end

local function jev(typ, now, id, tier, state, att, prover, amount, reason)
  local f = {'j', id, 'ti', tier, 's', state}
  if att and tonumber(att) > 0 then f[#f + 1] = 'n'; f[#f + 1] = istr(tonumber(att)) end
  if prover and prover ~= '' then f[#f + 1] = 'p'; f[#f + 1] = prover end
  if amount and tonumber(amount) > 0 then f[#f + 1] = 'm'; f[#f + 1] = istr(tonumber(amount)) end
  if reason and reason ~= '' then f[#f + 1] = 'r'; f[#f + 1] = reason end
  return emit(typ, now, f)
end

-- pm_of builds a job's member in its pend zset from its fields. It is not
-- stored: a value over 64 bytes would turn the job's hash from a compact
-- listpack into a hashtable, about 1 KB more per job.
local function pm_of(jk)
  local f = redis.call('HMGET', jk, 'dl', 'reward', 'seq', 'tb', 'id')
  return string.format('%016x%014x%016x%016x', tonumber(f[1]), MAXAMT - tonumber(f[2]), tonumber(f[3]),
    tonumber(f[4])) .. f[5]
end

local function pend_add(id, tier, backend, pm, seq)
  redis.call('ZADD', K .. 'pend:' .. tier .. ':' .. backend, 0, pm)
  redis.call('ZADD', K .. 'pseq:' .. tier, seq, id)
end

local function pend_rem(id, tier, backend, pm)
  redis.call('ZREM', K .. 'pend:' .. tier .. ':' .. backend, pm)
  redis.call('ZREM', K .. 'pseq:' .. tier, id)
end

local function pool_move(from, to, amount)
  if amount > 0 then
    redis.call('HINCRBY', K .. 'pool', from, istr(-amount))
    redis.call('HINCRBY', K .. 'pool', to, istr(amount))
  end
end

local function seen(prover, now)
  if prover and prover ~= '' then
    redis.call('HSET', K .. 'pstats:' .. prover, 'seen', istr(now))
  end
end

-- An attempt is one tab-separated line: number, prover, lease id, claimed,
-- ended, outcome, reason (last: it may hold anything; prover ids hold no
-- control characters). Built from the job's fields, it needs no read.
local function attempt(n, prover, lh, claimed, ended, outcome, reason)
  return table.concat({n, prover, string.sub(lh, 1, 16), claimed, ended, outcome, reason or ''}, '\t')
end

-- The current attempt lives in the job's fields (ln, prover, lh, lclaim,
-- and cmpl once completed), not in the history list: a claim writes no
-- line, a completion writes none either (completed is final, so the fields
-- never change again), the end of any other lease appends the finished
-- line, and History adds the active or completed one from the fields. So
-- while a job is leased the list holds its ln - 1 earlier attempts, and a
-- completion needs to set the list's TTL only when ln > 1.
local function end_attempt(id, f, now, outcome, reason)
  -- f: ln, prover, lh, lclaim of the job
  redis.call('RPUSH', hkey(id), attempt(f[1], f[2], f[3], f[4], istr(now), outcome, reason))
end

-- jobreply cuts a getjob-ordered HMGET that asked for extra fields after
-- JOBFIELDS down to the job reply (Lua stops an array at the first nil).
local function jobreply(f)
  for i = #f, NJOB + 1, -1 do f[i] = nil end
  return f
end

-- kill moves a job (and, transitively, every job waiting on it) to the
-- dead-letter queue and returns its reservation to the pool.
local function kill(id0, reason0, now)
  local stack = {{id0, reason0}}
  while #stack > 0 do
    local top = table.remove(stack)
    local id, reason = top[1], top[2]
    local jk = jkey(id)
    local f = redis.call('HMGET', jk, 'state', 'tier', 'backend', 'rd', 'reward', 'att')
    local st = f[1]
    if st == 'pending' or st == 'waiting' or st == 'leased' then
      local tier = f[2]
      if st == 'pending' then pend_rem(id, tier, f[3], pm_of(jk))
      elseif st == 'waiting' then redis.call('ZREM', K .. 'wait:' .. tier, id)
      else redis.call('ZREM', K .. 'leases:' .. tier, id) end
      local r = tonumber(f[5])
      pool_move('res', 'avail', r)
      redis.call('HSET', jk, 'state', 'dead', 'dreason', reason, 'lexp', '0')
      redis.call('HDEL', jk, 'prover', 'lh', 'lclaim')
      local ev = jev('job.dead', now, id, tier, 'dead', f[6], '', r, reason)
      redis.call('ZADD', K .. 'dead:' .. tier, ev, id)
      if f[4] then
        local rd = K .. 'rdeps:' .. id
        local deps = redis.call('SMEMBERS', rd)
        for i = 1, #deps do stack[#stack + 1] = {deps[i], 'dependency ' .. id .. ' is dead'} end
        redis.call('DEL', rd)
        redis.call('HDEL', jk, 'rd')
      end
    end
  end
end

-- ready makes pending every waiting job whose last dependency was id.
local function ready(id, now)
  local rd = K .. 'rdeps:' .. id
  local deps = redis.call('SMEMBERS', rd)
  for i = 1, #deps do
    local d = deps[i]
    local dk = jkey(d)
    local f = redis.call('HMGET', dk, 'state', 'tier', 'backend', 'seq', 'seq', 'att')
    if f[1] == 'waiting' then
      local n = redis.call('HINCRBY', dk, 'waitn', -1)
      if n <= 0 then
        redis.call('ZREM', K .. 'wait:' .. f[2], d)
        redis.call('HSET', dk, 'state', 'pending')
        redis.call('HDEL', dk, 'waitn')
        pend_add(d, f[2], f[3], pm_of(dk), f[5])
        jev('job.ready', now, d, f[2], 'pending', f[6])
      end
    end
  end
  redis.call('DEL', rd)
  redis.call('HDEL', jkey(id), 'rd')
end

-- end_lease ends the current lease of a leased job with outcome; rejected,
-- failed and expired count as failures. The job goes back to pending, or to
-- dead letter when it has no retries left or its deadline has come.
local function end_lease(id, outcome, reason, now)
  local jk = jkey(id)
  local f = redis.call('HMGET', jk, 'tier', 'backend', 'seq', 'seq', 'maxr', 'dl', 'prover', 'att',
    'ln', 'lh', 'lclaim')
  local failure = outcome ~= 'released'
  local att = tonumber(f[8])
  if failure then att = redis.call('HINCRBY', jk, 'att', 1) end
  local prover = f[7] or ''
  end_attempt(id, {f[9], prover, f[10], f[11]}, now, outcome, reason)
  redis.call('ZREM', K .. 'leases:' .. f[1], id)
  if prover ~= '' then
    if failure then redis.call('HINCRBY', K .. 'pstats:' .. prover, 'failed', 1) end
    -- An expiry is the prover's silence, not a sign of life.
    if outcome ~= 'expired' then seen(prover, now) end
  end
  local dead = nil
  if att >= tonumber(f[5]) then
    dead = 'max_retries reached (' .. istr(att) .. ' failed attempts), last: ' .. outcome
    if reason and reason ~= '' then dead = dead .. ': ' .. reason end
  elseif now >= tonumber(f[6]) then
    dead = 'deadline passed'
  end
  -- One event for the end of the lease, then one for the move to dead letter.
  local after = 'pending'
  if dead then after = 'dead' end
  jev('job.' .. outcome, now, id, f[1], after, att, prover, 0, reason)
  if dead then
    kill(id, dead, now)
  else
    redis.call('HSET', jk, 'state', 'pending', 'lexp', '0')
    redis.call('HDEL', jk, 'prover', 'lh', 'lclaim')
    pend_add(id, f[1], f[2], pm_of(jk), f[4])
  end
end

-- check_lease explains why (id, prover, lease hash) is not the job's
-- current, unexpired lease, as an error reply string; nil when it is.
local function check_lease(id, prover, lh, now)
  local f = redis.call('HMGET', jkey(id), 'state', 'lh', 'prover', 'lexp')
  if not f[1] then return 'POUW_NOTFOUND job ' .. id .. ' not found' end
  if f[1] == 'leased' and f[2] == lh then
    if f[3] ~= prover then return 'POUW_NOTHOLDER job ' .. id .. ' is leased to another prover' end
    if now >= tonumber(f[4]) then
      return 'POUW_LEASELOST job ' .. id .. ': the lease expired at ' .. f[4] .. ' (now ' .. istr(now) .. ')'
    end
    return nil
  end
  if f[1] == 'leased' and now < tonumber(f[4]) and f[3] ~= prover then
    -- A prover that never held this job is not one whose lease was lost.
    local held = false
    local hs = redis.call('LRANGE', hkey(id), 0, -1)
    for i = 1, #hs do
      if string.match(hs[i], '^[^\t]*\t([^\t]*)') == prover then held = true; break end
    end
    if not held then return 'POUW_NOTHOLDER job ' .. id .. ' is leased to another prover' end
  end
  return 'POUW_LEASELOST job ' .. id .. ': the token is not its current lease (job is ' .. f[1] .. ')'
end

-- live_job reads the job (getjob's fields, then its lease hash) in one
-- call and returns it when (prover, lh) holds the job's unexpired lease, or
-- nil and the reason. The caller patches what it writes into the reply.
local function live_job(id, prover, lh, now)
  local f = redis.call('HMGET', jkey(id), JOBFIELDS, 'lh')
  if f[JF_state] == 'leased' and f[NJOB + 1] == lh and f[JF_prover] == prover and now < tonumber(f[JF_lexp]) then
    return f
  end
  return nil, check_lease(id, prover, lh, now)
end
`

// ARGV: dedupkey tier intent trace tref tb backend fee reward dl maxr
// dlhex rinvhex tbhex ndeps deps... base ncand ids...
//
// The job id needs created_seq and BLAKE3, which Lua lacks, so the caller
// derives the ids for created_seq base+1 .. base+ncand and the script uses
// the one for the next value of the counter; when the counter is outside
// that window it writes nothing and answers {2, current} so the caller can
// try again. A refused or deduplicated enqueue consumes no created_seq.
const luaEnqueue = `
local now = now_ms()
local ddk = K .. 'dd:' .. ARGV[8]
local tier, intent, trace, tref, tb, backend = ARGV[9], ARGV[10], ARGV[11], ARGV[12], ARGV[13], ARGV[14]
local fee, reward, dl, maxr = ARGV[15], ARGV[16], ARGV[17], ARGV[18]
local dlhex, rinvhex, tbhex = ARGV[19], ARGV[20], ARGV[21]
local nd = tonumber(ARGV[22])
local at = 23 + nd
local base, ncand = tonumber(ARGV[at]), tonumber(ARGV[at + 1])
local dd = redis.call('GET', ddk)
if dd then
  local existing, until_ms = string.match(dd, '^(%x+)|(%d+)$')
  if existing and now < tonumber(until_ms) then
    local ek = jkey(existing)
    if expired(ek, now) then return {0, existing, {}} end
    return {0, existing, getjob(ek)}
  end
end
if tonumber(dl) <= now then
  return redis.error_reply('POUW_INVALID deadline_ms ' .. dl .. ' is not after the store clock ' .. istr(now))
end
local deps, waitfor = {}, {}
for i = 1, nd do
  local d = ARGV[22 + i]
  local st = redis.call('HGET', jkey(d), 'state')
  if not st then return redis.error_reply('POUW_NOTFOUND dependency ' .. d .. ' not found') end
  if st == 'dead' then return redis.error_reply('POUW_CONFLICT dependency ' .. d .. ' is dead') end
  deps[#deps + 1] = d
  if st ~= 'completed' then waitfor[#waitfor + 1] = d end
end
local r = tonumber(reward)
local avail = tonumber(redis.call('HGET', K .. 'pool', 'avail') or '0')
if avail < r then
  return redis.error_reply('POUW_FUNDS the pool has ' .. istr(avail) .. ' available, reward_budget is ' .. reward)
end
local cur = tonumber(redis.call('GET', K .. 'seq') or '0')
local idx = cur + 1 - base
if idx < 1 or idx > ncand then return {2, istr(cur)} end
local id = ARGV[at + 1 + idx]
local jk = jkey(id)
if redis.call('EXISTS', jk) == 1 then
  return redis.error_reply('POUW_CONFLICT job id ' .. id .. ' exists already')
end
local seq = istr(redis.call('INCR', K .. 'seq'))
local pm = dlhex .. rinvhex .. hex16(tonumber(seq)) .. tbhex .. id
local state = 'pending'
if #waitfor > 0 then state = 'waiting' end
redis.call('HSET', jk, 'id', id, 'tier', tier, 'intent', intent, 'trace', trace, 'tref', tref, 'tb', tb,
  'backend', backend, 'fee', fee, 'reward', reward, 'cat', istr(now), 'seq', seq, 'lexp', '0', 'dl', dl,
  'maxr', maxr, 'att', '0', 'ln', '0', 'state', state)
if #deps > 0 then redis.call('HSET', jk, 'deps', table.concat(deps, ',')) end
if #waitfor > 0 then
  redis.call('HSET', jk, 'waitn', istr(#waitfor))
  for i = 1, #waitfor do
    redis.call('SADD', K .. 'rdeps:' .. waitfor[i], id)
    redis.call('HSET', jkey(waitfor[i]), 'rd', '1')
  end
  redis.call('ZADD', K .. 'wait:' .. tier, dl, id)
else
  pend_add(id, tier, backend, pm, seq)
end
redis.call('SET', ddk, id .. '|' .. istr(now + tonumber(DEDUP)), 'PX', DEDUP)
pool_move('avail', 'res', r)
redis.call('SADD', K .. 'backends', backend)
jev('job.created', now, id, tier, state, 0, '', r, '')
return {1, id, getjob(jk)}
`

// ARGV: prover leasehash rewardthreshold tbthreshold ntiers tiers... nbackends backends...
// A pending member is deadline(16 hex) rinv(14) seq(16) trace_bytes(16)
// job_id(32): fixed width, so byte order is claim order and the filters are
// string comparisons.
const luaClaim = `
local now = now_ms()
local prover, lh, rthr, tbthr = ARGV[8], ARGV[9], ARGV[10], ARGV[11]
local nt = tonumber(ARGV[12])
local tiers = {}
for i = 1, nt do tiers[i] = ARGV[12 + i] end
local nb = tonumber(ARGV[13 + nt])
local backends = {}
for i = 1, nb do backends[i] = ARGV[13 + nt + i] end
if redis.call('EXISTS', K .. 'prover:' .. prover) == 0 then
  return redis.error_reply('POUW_NOTFOUND prover ' .. prover .. ' is not registered')
end
-- Only jobs whose deadline is still ahead: deadline >= now + 1.
local from = '[' .. hex16(now + 1)
local budget = MAXSCAN
for ti = 1, nt do
  local t = tiers[ti]
  local best, bestkey = nil, nil
  for bi = 1, nb do
    local key = K .. 'pend:' .. t .. ':' .. backends[bi]
    local off, found = 0, nil
    while budget > 0 and not found do
      local n = math.min(budget, 32)
      local ms = redis.call('ZRANGEBYLEX', key, from, '+', 'LIMIT', off, n)
      for i = 1, #ms do
        budget = budget - 1
        local m = ms[i]
        if (rthr == '' or string.sub(m, 17, 30) <= rthr) and (tbthr == '' or string.sub(m, 47, 62) <= tbthr) then
          found = m
          break
        end
      end
      if #ms < n then break end
      off = off + n
    end
    if found and (best == nil or found < best) then best, bestkey = found, key end
  end
  if best then
    local id = string.sub(best, 63)
    local jk = jkey(id)
    -- One read of the job (and its lease counter); the reply is this read
    -- with the fields the claim sets, so nothing is read back.
    local job = redis.call('HMGET', jk, JOBFIELDS, 'ln')
    local ln = istr((tonumber(job[NJOB + 1]) or 0) + 1)
    redis.call('ZREM', bestkey, best)
    redis.call('ZREM', K .. 'pseq:' .. t, id)
    local lexp = istr(now + LEASE[tonumber(t) + 1])
    redis.call('HSET', jk, 'state', 'leased', 'prover', prover, 'lh', lh, 'lexp', lexp, 'lclaim', istr(now), 'ln', ln)
    redis.call('ZADD', K .. 'leases:' .. t, lexp, id)
    seen(prover, now)
    job[JF_state], job[JF_prover], job[JF_lexp] = 'leased', prover, lexp
    jev('job.claimed', now, id, t, 'leased', job[JF_att], prover)
    return jobreply(job)
  end
end
return redis.error_reply('POUW_NOJOB no pending job fits the claim')
`

// ARGV: id prover leasehash
const luaRenew = `
local now = now_ms()
local id, prover, lh = ARGV[8], ARGV[9], ARGV[10]
local f, e = live_job(id, prover, lh, now)
if not f then return redis.error_reply(e) end
local lexp = istr(now + LEASE[tonumber(f[JF_tier]) + 1])
redis.call('HSET', jkey(id), 'lexp', lexp)
redis.call('ZADD', K .. 'leases:' .. f[JF_tier], lexp, id)
seen(prover, now)
f[JF_lexp] = lexp
jev('job.renewed', now, id, f[JF_tier], 'leased', f[JF_att], prover)
return jobreply(f)
`

// ARGV: id prover leasehash budgetms
const luaBeginVerify = `
local now = now_ms()
local id, prover, lh, budget = ARGV[8], ARGV[9], ARGV[10], tonumber(ARGV[11])
local f, e = live_job(id, prover, lh, now)
if not f then return redis.error_reply(e) end
if now + budget > tonumber(f[JF_lexp]) then
  local lexp = istr(now + budget)
  redis.call('HSET', jkey(id), 'lexp', lexp)
  redis.call('ZADD', K .. 'leases:' .. f[JF_tier], lexp, id)
  f[JF_lexp] = lexp
end
seen(prover, now)
return jobreply(f)
`

// ARGV: id prover leasehash proofref
const luaComplete = `
local now = now_ms()
local id, prover, lh, proof = ARGV[8], ARGV[9], ARGV[10], ARGV[11]
local jk = jkey(id)
-- One read: the job reply plus the lease fields; the reply is patched with
-- what the script writes instead of read back.
local f = redis.call('HMGET', jk, JOBFIELDS, 'lh', 'lclaim', 'ln', 'rd')
local state, flh, fprover = f[JF_state], f[NJOB + 1], f[JF_prover]
if state == 'completed' and flh == lh and fprover == prover and f[JF_proof] == proof then
  -- The same completion again (go-redis resends a command whose reply was
  -- lost in a connection reset) answers what happened: completed. Another
  -- proof on the ended lease is refused as lease lost.
  return jobreply(f)
end
if not (state == 'leased' and flh == lh and fprover == prover and now < tonumber(f[JF_lexp])) then
  return redis.error_reply(check_lease(id, prover, lh, now))
end
local tier, lclaim, rd = f[JF_tier], f[NJOB + 2], f[NJOB + 4]
local r = tonumber(f[JF_reward])
local snow = istr(now)
redis.call('HSET', jk, 'state', 'completed', 'proof', proof, 'cmpl', snow, 'lexp', '0',
  'rexp', istr(now + tonumber(RETAIN)))
redis.call('ZREM', K .. 'leases:' .. tier, id)
-- Payment and the tier's completed count in one read and one write of the
-- pool hash (two HINCRBYs and a third on another key cost a call more).
local pk, ck = K .. 'pool', 'c' .. tier
local pool = redis.call('HMGET', pk, 'res', 'paid', ck)
redis.call('HSET', pk, 'res', istr((tonumber(pool[1]) or 0) - r), 'paid', istr((tonumber(pool[2]) or 0) + r),
  ck, istr((tonumber(pool[3]) or 0) + 1))
local ps = K .. 'pstats:' .. prover
local st = redis.call('HMGET', ps, 'done', 'earned', 'ctime')
redis.call('HSET', ps, 'done', istr((tonumber(st[1]) or 0) + 1), 'earned', istr((tonumber(st[2]) or 0) + r),
  'ctime', istr((tonumber(st[3]) or 0) + now - tonumber(lclaim)), 'seen', snow)
jev('job.completed', now, id, tier, 'completed', f[JF_att], prover, r, '')
if rd then ready(id, now) end
redis.call('PEXPIRE', jk, RETAIN)
if tonumber(f[NJOB + 3]) > 1 then redis.call('PEXPIRE', hkey(id), RETAIN) end
f[JF_state], f[JF_proof], f[JF_cmpl], f[JF_lexp] = 'completed', proof, snow, '0'
return jobreply(f)
`

// ARGV: id prover leasehash outcome reason
const luaFail = `
local now = now_ms()
local id, prover, lh, outcome, reason = ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12]
local e = check_lease(id, prover, lh, now)
if e then return redis.error_reply(e) end
end_lease(id, outcome, reason, now)
return getjob(jkey(id))
`

// ARGV: id prover leasehash reason
const luaRelease = `
local now = now_ms()
local id, prover, lh, reason = ARGV[8], ARGV[9], ARGV[10], ARGV[11]
local e = check_lease(id, prover, lh, now)
if e then return redis.error_reply(e) end
end_lease(id, 'released', reason, now)
return getjob(jkey(id))
`

// ARGV: limit
const luaReap = `
local now = now_ms()
local limit = tonumber(ARGV[8])
local n = 0
for t = 0, 2 do
  if n >= limit then break end
  local ids = redis.call('ZRANGEBYSCORE', K .. 'leases:' .. t, '-inf', istr(now), 'LIMIT', 0, limit - n)
  for i = 1, #ids do
    end_lease(ids[i], 'expired', 'lease expired', now)
    n = n + 1
  end
end
for t = 0, 2 do
  if n >= limit then break end
  local ids = redis.call('ZRANGEBYSCORE', K .. 'wait:' .. t, '-inf', istr(now), 'LIMIT', 0, limit - n)
  for i = 1, #ids do
    kill(ids[i], 'deadline passed while waiting for dependencies', now)
    n = n + 1
  end
end
if n < limit then
  local backends = redis.call('SMEMBERS', K .. 'backends')
  for t = 0, 2 do
    for b = 1, #backends do
      if n >= limit then break end
      local ms = redis.call('ZRANGEBYLEX', K .. 'pend:' .. t .. ':' .. backends[b], '-', '(' .. hex16(now + 1), 'LIMIT', 0, limit - n)
      for i = 1, #ms do
        kill(string.sub(ms[i], 63), 'deadline passed while pending', now)
        n = n + 1
      end
    end
  end
end
return n
`

// ARGV: id
const luaRequeue = `
local now = now_ms()
local id = ARGV[8]
local jk = jkey(id)
local f = redis.call('HMGET', jk, 'state', 'tier', 'backend', 'seq', 'seq', 'reward', 'dl', 'deps')
if not f[1] then return redis.error_reply('POUW_NOTFOUND job ' .. id .. ' not found') end
if f[1] ~= 'dead' then
  return redis.error_reply('POUW_CONFLICT job ' .. id .. ' is ' .. f[1] .. '; only dead jobs can be requeued')
end
if now >= tonumber(f[7]) then
  return redis.error_reply('POUW_CONFLICT job ' .. id .. ': its deadline_ms ' .. f[7] .. ' has passed')
end
-- Dependencies again: a dead one refuses, a completed (or expired, hence
-- completed) one is done, any other one is waited for.
local waitfor = {}
if f[8] and f[8] ~= '' then
  for d in string.gmatch(f[8], '[^,]+') do
    local st = redis.call('HGET', jkey(d), 'state')
    if st == 'dead' then
      return redis.error_reply('POUW_CONFLICT job ' .. id .. ' depends on job ' .. d .. ', which is dead')
    end
    if st and st ~= 'completed' then waitfor[#waitfor + 1] = d end
  end
end
local r = tonumber(f[6])
local avail = tonumber(redis.call('HGET', K .. 'pool', 'avail') or '0')
if avail < r then
  return redis.error_reply('POUW_FUNDS the pool has ' .. istr(avail) .. ' available, reward_budget is ' .. f[6])
end
local state = 'pending'
if #waitfor > 0 then state = 'waiting' end
redis.call('ZREM', K .. 'dead:' .. f[2], id)
redis.call('HSET', jk, 'state', state, 'att', '0')
redis.call('HDEL', jk, 'dreason', 'waitn')
pool_move('avail', 'res', r)
if #waitfor > 0 then
  redis.call('HSET', jk, 'waitn', istr(#waitfor))
  for i = 1, #waitfor do
    redis.call('SADD', K .. 'rdeps:' .. waitfor[i], id)
    redis.call('HSET', jkey(waitfor[i]), 'rd', '1')
  end
  redis.call('ZADD', K .. 'wait:' .. f[2], f[7], id)
else
  pend_add(id, f[2], f[3], pm_of(jk), f[5])
end
jev('job.requeued', now, id, f[2], state, 0, '', r, '')
return getjob(jk)
`

// ARGV: id
const luaHistory = `
local id = ARGV[8]
local f = redis.call('HMGET', jkey(id), 'state', 'rexp', 'ln', 'prover', 'lh', 'lclaim', 'cmpl')
if not f[1] or (f[1] == 'completed' and f[2] and now_ms() >= tonumber(f[2])) then
  return redis.error_reply('POUW_NOTFOUND job ' .. id .. ' not found')
end
local hs = redis.call('LRANGE', hkey(id), 0, -1)
-- The current attempt is kept in the job's fields (see end_attempt).
if f[1] == 'leased' then hs[#hs + 1] = attempt(f[3], f[4], f[5], f[6], '', 'active', '') end
if f[1] == 'completed' then hs[#hs + 1] = attempt(f[3], f[4], f[5], f[6], f[7], 'completed', '') end
return hs
`

// ARGV: tier|” cursor|” limit. Returns {more, member1, job1, member2, job2, ...}.
const luaPending = `
local tierarg, cursor, limit = ARGV[8], ARGV[9], tonumber(ARGV[10])
local tiers = {'0', '1', '2'}
if tierarg ~= '' then tiers = {tierarg} end
local backends = redis.call('SMEMBERS', K .. 'backends')
local from = '-'
if cursor ~= '' then from = '(' .. cursor end
local all = {}
for ti = 1, #tiers do
  for b = 1, #backends do
    local ms = redis.call('ZRANGEBYLEX', K .. 'pend:' .. tiers[ti] .. ':' .. backends[b], from, '+', 'LIMIT', 0, limit + 1)
    for i = 1, #ms do all[#all + 1] = ms[i] end
  end
end
table.sort(all)
local out = {0}
if #all > limit then out[1] = 1 end
for i = 1, math.min(limit, #all) do
  out[#out + 1] = all[i]
  out[#out + 1] = getjob(jkey(string.sub(all[i], 63)))
end
return out
`

// ARGV: tier|” cursor|” limit. Most recently dead first; the score is the
// id of the job.dead event. Returns {more, score1, job1, ...}.
const luaDeadLetter = `
local tierarg, cursor, limit = ARGV[8], ARGV[9], tonumber(ARGV[10])
local tiers = {'0', '1', '2'}
if tierarg ~= '' then tiers = {tierarg} end
local max = '+inf'
if cursor ~= '' then max = '(' .. cursor end
local all = {}
for ti = 1, #tiers do
  local ms = redis.call('ZREVRANGEBYSCORE', K .. 'dead:' .. tiers[ti], max, '-inf', 'WITHSCORES', 'LIMIT', 0, limit + 1)
  for i = 1, #ms, 2 do all[#all + 1] = {tonumber(ms[i + 1]), ms[i]} end
end
table.sort(all, function(a, b) return a[1] > b[1] end)
local out = {0}
if #all > limit then out[1] = 1 end
for i = 1, math.min(limit, #all) do
  out[#out + 1] = istr(all[i][1])
  out[#out + 1] = getjob(jkey(all[i][2]))
end
return out
`

// ARGV: after limit
const luaEvents = `
local after, limit = tonumber(ARGV[8]), ARGV[9]
local last = tonumber(redis.call('GET', K .. 'evseq') or '0')
if after >= last then return {} end
local first = redis.call('XRANGE', K .. 'events', '-', '+', 'COUNT', 1)
if #first == 0 or tonumber(string.match(first[1][1], '^(%d+)')) > after + 1 then
  return redis.error_reply('POUW_TRUNCATED events after ' .. ARGV[8] .. ' were dropped by retention')
end
return redis.call('XRANGE', K .. 'events', istr(after + 1) .. '-0', '+', 'COUNT', limit)
`

// Returns {now, pool, nprovers, lastseq, then per tier: waiting, pending,
// leased, completed, dead, oldest pending created_at_ms or ”}. Counts come
// from the indexes themselves (ZCARD), so transitions keep no counters
// except the cumulative completed count.
const luaStatus = `
local now = now_ms()
local out = {istr(now), redis.call('HGETALL', K .. 'pool'), redis.call('SCARD', K .. 'provers'),
  redis.call('GET', K .. 'seq') or '0'}
local backends = redis.call('SMEMBERS', K .. 'backends')
for t = 0, 2 do
  local pending = 0
  for b = 1, #backends do pending = pending + redis.call('ZCARD', K .. 'pend:' .. t .. ':' .. backends[b]) end
  out[#out + 1] = redis.call('ZCARD', K .. 'wait:' .. t)
  out[#out + 1] = pending
  out[#out + 1] = redis.call('ZCARD', K .. 'leases:' .. t)
  out[#out + 1] = tonumber(redis.call('HGET', K .. 'pool', 'c' .. t) or '0')
  out[#out + 1] = redis.call('ZCARD', K .. 'dead:' .. t)
  local o = ''
  local ids = redis.call('ZRANGE', K .. 'pseq:' .. t, 0, 0)
  if #ids > 0 then o = redis.call('HGET', jkey(ids[1]), 'cat') or '' end
  out[#out + 1] = o
end
return out
`

// ARGV: id tokenhash createdms (0 = now) ttlms (0 = never expires)
const luaRegister = `
local now = now_ms()
local id, th, cat, ttl = ARGV[8], ARGV[9], ARGV[10], tonumber(ARGV[11])
if cat == '0' then cat = istr(now) end
if redis.call('EXISTS', K .. 'prover:' .. id) == 1 then
  return redis.error_reply('POUW_EXISTS prover ' .. id .. ' is already registered')
end
if redis.call('EXISTS', K .. 'ptok:' .. th) == 1 then
  return redis.error_reply('POUW_EXISTS a prover with this token hash is already registered')
end
redis.call('HSET', K .. 'prover:' .. id, 'th', th, 'cat', cat)
redis.call('SET', K .. 'ptok:' .. th, id)
redis.call('SADD', K .. 'ptoks:' .. id, th)
if ttl > 0 then redis.call('SET', K .. 'ptokexp:' .. th, istr(now + ttl)) end
redis.call('SADD', K .. 'provers', id)
emit('prover.registered', now, {'p', id})
return 1
`

// ARGV: tokenhash. Returns {id, prover hash, token expiry}. An expired
// token is not found.
const luaProverByToken = `
local id = redis.call('GET', K .. 'ptok:' .. ARGV[8])
if not id then return redis.error_reply('POUW_NOTFOUND no prover has this token') end
local exp = redis.call('GET', K .. 'ptokexp:' .. ARGV[8]) or '0'
if exp ~= '0' and now_ms() >= tonumber(exp) then
  return redis.error_reply('POUW_NOTFOUND no prover has this token')
end
return {id, redis.call('HGETALL', K .. 'prover:' .. id), exp}
`

// ARGV: id tokenhash ttlms gracems (0: none)
const luaAddToken = `
local now = now_ms()
local id, th, ttl, grace = ARGV[8], ARGV[9], tonumber(ARGV[10]), tonumber(ARGV[11])
if grace > 0 then grace = now + grace end
local pk = K .. 'prover:' .. id
if redis.call('EXISTS', pk) == 0 then return redis.error_reply('POUW_NOTFOUND prover ' .. id) end
if redis.call('EXISTS', K .. 'ptok:' .. th) == 1 then
  return redis.error_reply('POUW_EXISTS another token has this hash')
end
local sk = K .. 'ptoks:' .. id
redis.call('SADD', sk, redis.call('HGET', pk, 'th'))
if grace > 0 then
  for _, old in ipairs(redis.call('SMEMBERS', sk)) do
    if redis.call('EXISTS', K .. 'ptok:' .. old) == 1 then
      local e = tonumber(redis.call('GET', K .. 'ptokexp:' .. old) or '0')
      if e == 0 or e > grace then redis.call('SET', K .. 'ptokexp:' .. old, istr(grace)) end
    end
  end
end
redis.call('SET', K .. 'ptok:' .. th, id)
redis.call('SADD', sk, th)
if ttl > 0 then redis.call('SET', K .. 'ptokexp:' .. th, istr(now + ttl)) end
return 1
`

// ARGV: id. Returns how many tokens were revoked.
const luaRevokeTokens = `
local id = ARGV[8]
local pk = K .. 'prover:' .. id
if redis.call('EXISTS', pk) == 0 then return redis.error_reply('POUW_NOTFOUND prover ' .. id) end
local sk = K .. 'ptoks:' .. id
redis.call('SADD', sk, redis.call('HGET', pk, 'th'))
local n = 0
for _, th in ipairs(redis.call('SMEMBERS', sk)) do
  n = n + redis.call('DEL', K .. 'ptok:' .. th)
  redis.call('DEL', K .. 'ptokexp:' .. th)
end
redis.call('DEL', sk)
return n
`

// ARGV: id suspended(0|1) reason. Returns the prover hash.
const luaSuspend = `
local id, sus, reason = ARGV[8], ARGV[9], ARGV[10]
local pk = K .. 'prover:' .. id
if redis.call('EXISTS', pk) == 0 then return redis.error_reply('POUW_NOTFOUND prover ' .. id) end
if sus == '1' then
  redis.call('HSET', pk, 'sus', '1', 'sr', reason)
else
  redis.call('HSET', pk, 'lift', istr(now_ms()))
  redis.call('HDEL', pk, 'sus', 'sr')
end
return redis.call('HGETALL', pk)
`

// ARGV: type actor action job prover amount reason
const luaAudit = `
local f = {}
local names = {'c', 'x', 'j', 'p', 'm', 'r'}
for i = 1, 6 do
  local v = ARGV[8 + i]
  if v ~= '' and v ~= '0' then f[#f + 1] = names[i]; f[#f + 1] = v end
end
emit(ARGV[8], now_ms(), f)
return 1
`

// Returns {id1, stats1, id2, stats2, ...}.
const luaProvers = `
local ids = redis.call('SMEMBERS', K .. 'provers')
table.sort(ids)
local out = {}
for i = 1, #ids do
  out[#out + 1] = ids[i]
  out[#out + 1] = redis.call('HGETALL', K .. 'pstats:' .. ids[i])
end
return out
`

// ARGV: amount by
const luaDeposit = `
local now = now_ms()
local amt, by = ARGV[8], ARGV[9]
local dep = tonumber(redis.call('HGET', K .. 'pool', 'dep') or '0')
if dep + tonumber(amt) > MAXAMT then
  return redis.error_reply('POUW_INVALID deposit of ' .. amt .. ' would take the pool past 2^53-1')
end
redis.call('HINCRBY', K .. 'pool', 'dep', amt)
redis.call('HINCRBY', K .. 'pool', 'avail', amt)
local f = {'m', amt}
if by ~= '' then f[3] = 'r'; f[4] = 'by ' .. by end
emit('pool.deposit', now, f)
return redis.call('HGETALL', K .. 'pool')
`

// ARGV: id
const luaJob = `
local jk = jkey(ARGV[8])
if expired(jk, now_ms()) then return {} end
return getjob(jk)
`

// Returns the store clock in ms.
const luaNow = `return istr(now_ms())`

type scripts struct {
	enqueue, claim, renew, beginVerify, complete, fail, release, reap, requeue,
	history, pending, deadLetter, events, status, register, proverByToken,
	provers, deposit, now, job *redis.Script
	addToken, revokeTokens, suspend, audit *redis.Script
}

// placeholders are filled from jobFields, so Lua and Go agree on the order.
var placeholders = strings.NewReplacer(jobPlaceholders()...)

// helper is one "local function" of the prelude with its comment.
type helper struct {
	name, src string
}

// splitPrelude cuts the prelude into its configuration header and helpers.
func splitPrelude() (header string, helpers []helper) {
	lines := strings.SplitAfter(prelude, "\n")
	var cur *helper
	var pending strings.Builder // comment lines above the next helper
	for _, l := range lines {
		if name, ok := strings.CutPrefix(l, "local function "); ok {
			name = name[:strings.IndexByte(name, '(')]
			helpers = append(helpers, helper{name: name, src: pending.String() + l})
			pending.Reset()
			cur = &helpers[len(helpers)-1]
			continue
		}
		switch {
		case strings.HasPrefix(l, "--"):
			pending.WriteString(l)
		case cur == nil:
			header += pending.String() + l
			pending.Reset()
		default:
			cur.src += pending.String() + l
			pending.Reset()
		}
	}
	return header, helpers
}

// assemble prepends to body the header and only the helpers it calls,
// directly or through other helpers: EVALSHA runs the whole chunk on every
// call, and each function definition costs a closure.
func assemble(body string) string {
	header, helpers := splitPrelude()
	need := make([]bool, len(helpers))
	text := body
	for changed := true; changed; {
		changed = false
		for i, h := range helpers {
			if !need[i] && strings.Contains(text, h.name+"(") {
				need[i] = true
				text += h.src
				changed = true
			}
		}
	}
	var b strings.Builder
	b.WriteString(header)
	for i, h := range helpers {
		if need[i] {
			b.WriteString(h.src)
		}
	}
	b.WriteString(body)
	return placeholders.Replace(b.String())
}

// prodNowMs replaces the prelude's now_ms in production scripts: Redis
// TIME only, so the test-only clock keys, should anyone write them, move
// nothing (and a script does one call fewer).
const prodNowMs = `local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`

// newScripts assembles every script; testClock keeps the now_ms that reads
// the test-only clock keys.
func newScripts(testClock bool) scripts {
	s := func(body string) *redis.Script {
		src := assemble(body)
		if !testClock {
			src = withProdClock(src)
		}
		return redis.NewScript(src)
	}
	return scripts{
		enqueue: s(luaEnqueue), claim: s(luaClaim), renew: s(luaRenew),
		beginVerify: s(luaBeginVerify), complete: s(luaComplete), fail: s(luaFail),
		release: s(luaRelease), reap: s(luaReap), requeue: s(luaRequeue),
		history: s(luaHistory), pending: s(luaPending), deadLetter: s(luaDeadLetter),
		events: s(luaEvents), status: s(luaStatus), register: s(luaRegister),
		proverByToken: s(luaProverByToken), provers: s(luaProvers), deposit: s(luaDeposit),
		now: s(luaNow), job: s(luaJob),
		addToken: s(luaAddToken), revokeTokens: s(luaRevokeTokens), suspend: s(luaSuspend), audit: s(luaAudit),
	}
}

// withProdClock swaps the test clock's now_ms in src for prodNowMs.
func withProdClock(src string) string {
	i := strings.Index(src, "local function now_ms()")
	if i < 0 {
		return src
	}
	j := strings.Index(src[i:], "\nend\n")
	if j < 0 {
		panic("redisstore: now_ms without an end")
	}
	return src[:i] + prodNowMs + src[i+j+len("\nend\n"):]
}

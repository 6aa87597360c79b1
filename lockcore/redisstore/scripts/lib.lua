-- Shared by every script: lockproxy prepends this file to each one when it
-- loads it, since Redis scripts cannot include one another.
-- Keys, by the convention of every script:
-- KEYS[1] lock key (value: token "<fence>:<nonce>", PX ttl; "<token>!" once
--         revoked: held, but by no client, until the holder's sidecar
--         releases it). Held by many (readers, or a semaphore's permits),
--         a zset instead: see "Names held by many" below.
-- KEYS[2] fence key (hash: fence = the name's last fence issued, as of its
--         last release, or on a Cluster of its last grant; released = last
--         released token)
-- KEYS[3] queue (zset: waiter -> arrival time in µs)
-- KEYS[4] waiters' entries (hash: waiter -> "<deadline ms>:<ttl ms>:<nonce>",
--         and ":<kind>" after it when the waiter asks to be one of many (see
--         kinds below); the waiter is presumed dead after the deadline; ttl
--         and nonce let a release grant it the lock)
-- and, but on a Cluster, where it would sit in another slot, the store-wide
-- state hash as the key after the script's own (see note_state). On a
-- Cluster each shard has a state hash of its own, in another slot of its
-- primary, named in an argument instead (see usable).

-- The batch script (batch.lua) points these at each of its calls' own keys
-- and arguments in turn, without copying them into the tables Redis made.
local KEYS, ARGV = KEYS, ARGV

-- usable returns key when this script can use it, else false: on a Redis
-- Cluster, a key outside the script's slot can be used only while this node
-- owns the key's slot (and, while that slot migrates away, still has the
-- key). The probe is a read, so a script bails out before writing anything.
local function usable(key)
  if not key or key == '' then return false end
  local r = redis.pcall('EXISTS', key)
  if type(r) == 'table' and r.err then return false end
  return key
end

-- clock returns Redis's time in µs and in ms. It asks Redis once a script:
-- each later call in the script (each call of a batch asks once) is one µs
-- on, so that what replies say of a queue stays ordered by their time,
-- while staying behind the real clock (a call takes more than a µs).
local clock_at, clock_calls
local function clock()
  if not clock_at then
    local t = redis.call('TIME')
    clock_at, clock_calls = tonumber(t[1]) * 1000000 + tonumber(t[2]), 0
  end
  local us = clock_at + clock_calls
  clock_calls = clock_calls + 1
  return us, math.floor(us / 1000)
end

-- get_once reads key once a script, for keys no script writes.
local got = {}
local function get_once(key)
  local v = got[key]
  if v == nil then
    v = redis.call('GET', key)
    got[key] = v
  end
  return v
end

-- live_head returns the first waiter whose sidecar still keeps it alive,
-- dropping dead ones on the way, so a crashed sidecar cannot block the queue.
local function live_head(now_ms)
  while true do
    local head = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
    if not head then return false end
    local entry = redis.call('HGET', KEYS[4], head)
    local deadline = entry and tonumber(string.match(entry, '^%d+'))
    if deadline and deadline >= now_ms then return head end
    redis.call('ZREM', KEYS[3], head)
    redis.call('HDEL', KEYS[4], head)
  end
end

local function dequeue(waiter)
  if waiter == '' then return end
  redis.call('ZREM', KEYS[3], waiter)
  redis.call('HDEL', KEYS[4], waiter)
end

-- fences_by_name says whether a name's fence key keeps its last fence
-- through grants too, not only through releases. On one Redis there is no
-- need: the store-wide state hash (KEYS[5]) holds the largest fence any
-- name was granted, and outlives every name's fence key. On a Cluster a
-- name's slot may move to a shard whose state hash is behind it.
local function fences_by_name() return KEYS[5] == nil end

-- batched is set by the batch script (batch.lua): the state hash is then
-- read once for all its calls and written once, at the end, by
-- flush_state.
local batched = false
local states = {} -- state key -> what read_state read, as updated since

-- read_state reads the state hash state, when there is one: its largest
-- fence and its high-water mark, or nil for either when it has none.
local function read_state(state)
  if not state then return nil end
  local st = states[state]
  if st then return st end
  local cur = redis.call('HMGET', state, 'fence', 'hwm')
  st = {fence = tonumber(cur[1]), hwm = tonumber(cur[2])}
  st.new = not st.fence and not st.hwm
  states[state] = st
  return st
end

-- flush_state writes what note_state noted in each state hash. After the
-- HSET, which may have created the hash, its expiry: set before, it would
-- have been on no key. GT, so that a sidecar with a shorter retention does
-- not cut another's; but a hash just made has no expiry, which GT takes
-- for an endless one.
local function flush_state()
  for state, st in pairs(states) do
    local set = {}
    if st.fence_raised then
      set[#set + 1] = 'fence'
      set[#set + 1] = string.format('%d', st.fence)
    end
    if st.expire then
      set[#set + 1] = 'hwm'
      set[#set + 1] = string.format('%d', st.hwm)
    end
    if #set > 0 then redis.call('HSET', state, unpack(set)) end
    if st.expire then
      if st.new then
        redis.call('PEXPIRE', state, st.expire)
      else
        redis.call('PEXPIRE', state, st.expire, 'GT')
      end
    end
    st.fence_raised, st.expire, st.new = false, nil, false
  end
end

-- note_state records a grant or a renewal in the store-wide state hash
-- state, when there is one (read once a script, by read_state): fence is the
-- largest fence granted, hwm the latest end (ms, Redis's clock) of any
-- lease. Sidecars read both in their health check: fences then keep rising
-- after a failover to a server whose clock is behind, and the quiet period
-- after a loss lasts only as long as a lease could. The hash lives until
-- its hwm plus the fence retention, like a name's fence key after its
-- lease.
local function note_state(state, fence, deadline_ms, ttl, retention)
  if not state then return end
  local st = read_state(state)
  if fence and (not st.fence or fence > st.fence) then
    st.fence, st.fence_raised = fence, true
  end
  if not st.hwm or deadline_ms > st.hwm then
    st.hwm = deadline_ms
    st.expire = math.max(st.expire or 0, ttl + retention)
  end
  if not batched then flush_state() end
end

-- grant gives the lock to nonce for ttl ms with a new fence: Redis's clock in
-- µs, or one more than the largest fence known (the store's, the name's
-- last on a Cluster, or floor, the largest the sidecar has seen) if the
-- clock has not passed it, so fences keep rising after the fence key is
-- forgotten, after a failover to a server whose clock is behind, and after
-- a restart that lost every key. It returns the token. With if_free, only
-- if nobody holds it: else it returns false and the holder's token.
local function next_fence(now_us, floor, state)
  local st = read_state(state)
  local fence = now_us
  floor = tonumber(floor)
  if floor and floor >= fence then fence = floor + 1 end
  if st and st.fence and st.fence >= fence then fence = st.fence + 1 end
  if fences_by_name() then
    local last = tonumber(redis.call('HGET', KEYS[2], 'fence'))
    if last and last >= fence then fence = last + 1 end
  end
  return fence
end

-- MANY is what on_lock returns when the lock key holds many (a zset).
local MANY = {}

-- on_lock runs a command on the lock key that works on a string: it
-- returns MANY when the key holds many instead. Any other failure (out of
-- memory, say) is raised, by running the command again.
local function on_lock(...)
  local r = redis.pcall(...)
  if type(r) == 'table' and r.err then
    if string.find(r.err, '^WRONGTYPE') then return MANY end
    return redis.call(...)
  end
  return r
end

local function grant(nonce, ttl, retention, now_us, floor, state, if_free)
  local fence = next_fence(now_us, floor, state)
  local by_name = fences_by_name()
  local fence_s = string.format('%d', fence)
  local token = fence_s .. ':' .. nonce
  if if_free then
    local cur = on_lock('SET', KEYS[1], token, 'NX', 'PX', ttl, 'GET')
    if cur then return false, cur end
  else
    redis.call('SET', KEYS[1], token, 'PX', ttl)
  end
  note_state(state, fence, math.floor(now_us / 1000) + ttl, ttl, retention)
  if by_name then
    redis.call('HSET', KEYS[2], 'fence', fence_s)
    redis.call('PEXPIRE', KEYS[2], ttl + retention)
  end
  return token
end

-- entry_of returns a queued waiter's ttl (ms), nonce and kind, or nil.
local function entry_of(waiter)
  local entry = redis.call('HGET', KEYS[4], waiter)
  if not entry then return nil end
  local ttl, nonce, kind = string.match(entry, '^%d+:(%d+):([^:]+):?(.*)$')
  return tonumber(ttl), nonce, kind
end

-- wake tells the sidecar of waiter that it is first.
local function wake(channel, sharded, waiter)
  redis.call(sharded == '1' and 'SPUBLISH' or 'PUBLISH', channel, waiter)
end

-- oom_check fails the script, before it writes anything, when Redis is out
-- of memory: SETRANGE with nothing to set changes nothing, but it is a
-- command that may use memory, which Redis refuses as a script's first
-- write under maxmemory (before it finds that the key holds many).
local function oom_check()
  on_lock('SETRANGE', KEYS[1], 0, '')
end

-- matches reports whether the held token cur is want, or has the nonce of a
-- nonce-only ":<nonce>".
local function matches(cur, want)
  return cur and (cur == want or (string.sub(want, 1, 1) == ':' and string.sub(cur, -#want) == want))
end

-- Names held by many. A name held by readers (kind 's') or by a
-- semaphore's permits (kind 'l<n>', n the limit) has a zset as its lock
-- key: each holder's nonce (with '!' after it once revoked) scored by the
-- end of its lease (ms, Redis's clock), and the kind as '~<kind>', scored
-- +inf. The key lives as long as its longest lease; a holder whose lease
-- has ended is dropped by the next script that looks. Each holder's fence
-- is in the fence hash (KEYS[2]) as 'f:<nonce>', so that a token is found
-- by its nonce in one step. The exclusive kind is ''. Kinds of one family
-- may hold or wait for a name together: '' and 's' (a read-write lock), or
-- one semaphore's 'l<n>'.

local function family(kind)
  if string.sub(kind, 1, 1) == 'l' then return kind end
  return ''
end

-- limit_of is a semaphore kind's limit, or nil.
local function limit_of(kind)
  return kind and string.sub(kind, 1, 1) == 'l' and tonumber(string.sub(kind, 2)) or nil
end

-- many_kind is the kind the lock key's holders hold it as.
local function many_kind()
  local m = redis.call('ZRANGE', KEYS[1], -1, -1)[1]
  return m and string.sub(m, 2) or ''
end

-- settle_many drops the holders whose leases ended by now_ms, and the key
-- with the last of them. It returns how many hold it still.
local function settle_many(now_ms)
  local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms)
  if #gone > 0 then
    redis.call('ZREM', KEYS[1], unpack(gone))
    local fields = {}
    for i, m in ipairs(gone) do
      fields[i] = 'f:' .. (string.match(m, '^(.-)!?$'))
    end
    redis.call('HDEL', KEYS[2], unpack(fields))
  end
  local n = redis.call('ZCARD', KEYS[1]) - 1
  if n <= 0 then
    redis.call('DEL', KEYS[1])
    return 0
  end
  return n
end

-- longest_many and soonest_many are the most and the least time (ms) any
-- holder has left.
local function longest_many(now_ms)
  local r = redis.call('ZRANGE', KEYS[1], -2, -2, 'WITHSCORES')
  if not r[1] or string.sub(r[1], 1, 1) == '~' then return 0 end
  return math.max(tonumber(r[2]) - now_ms, 0)
end

local function soonest_many(now_ms)
  local r = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  if not r[1] or string.sub(r[1], 1, 1) == '~' then return 0 end
  return math.max(tonumber(r[2]) - now_ms, 0)
end

-- extend makes key live at least ms more.
local function extend(key, ms)
  if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, ms) end
end

-- each_live calls f(waiter, kind) for each live waiter in queue order,
-- until f returns false.
local function each_live(now_ms, f)
  local from = 0
  while true do
    local ws = redis.call('ZRANGE', KEYS[3], from, from + 15)
    for _, w in ipairs(ws) do
      local entry = redis.call('HGET', KEYS[4], w)
      local deadline = entry and tonumber(string.match(entry, '^%d+'))
      if deadline and deadline >= now_ms then
        if f(w, string.match(entry, '^%d+:%d+:[^:]+:?(.*)$') or '') == false then return end
      end
    end
    if #ws < 16 then return end
    from = from + 16
  end
end

-- first_kind is the kind of the first live waiter, unless it is waiter.
local function first_kind(waiter, now_ms)
  local kind
  each_live(now_ms, function(w, k)
    if w ~= waiter then kind = k end
    return false
  end)
  return kind
end

-- admits says whether a request of kind by waiter ("" for none queued) may
-- hold a name that count others of its family hold: a reader unless a
-- writer waits ahead of it; a semaphore's permit when one is left after
-- the live waiters ahead of it.
local function admits(kind, count, waiter, now_ms)
  local limit = limit_of(kind)
  if limit and count >= limit then return false end
  local ok, ahead = true, 0
  each_live(now_ms, function(w, k)
    if w == waiter then return false end
    if limit then
      ahead = ahead + 1
      if count + ahead >= limit then ok = false end
    elseif k ~= 's' then
      ok = false
    end
    return ok
  end)
  return ok
end

-- admitted returns, in queue order, the waiters whose try would be
-- granted now, each as {waiter, kind}: with the name free (count 0), an
-- exclusive first waiter alone; else readers up to the first writer, or a
-- semaphore's waiters up to its free permits. kind is what the count
-- holders hold it as.
local function admitted(now_ms, count, kind)
  local out = {}
  each_live(now_ms, function(w, k)
    if k == '' then
      if count == 0 and #out == 0 then out[1] = {w, k} end
      return false
    end
    if count > 0 and family(k) ~= family(kind) then return false end
    local limit = limit_of(k)
    if limit and count + #out >= limit then return false end
    out[#out + 1] = {w, k}
  end)
  return out
end

-- wake_admitted wakes the admitted waiters' sidecars and returns the
-- waiters.
local function wake_admitted(channel, sharded, now_ms, count, kind)
  local woken = {}
  for i, wk in ipairs(admitted(now_ms, count, kind)) do
    woken[i] = wk[1]
    wake(channel, sharded, wk[1])
  end
  return woken
end

-- grant_permit gives nonce a place among the many holders of kind, for
-- ttl ms, with a new fence (see grant), and returns its token.
local function grant_permit(kind, nonce, ttl, retention, now_us, now_ms, floor, state)
  local fence = next_fence(now_us, floor, state)
  local fence_s = string.format('%d', fence)
  local deadline = now_ms + ttl
  redis.call('ZADD', KEYS[1], deadline, nonce)
  redis.call('ZADD', KEYS[1], 'NX', '+inf', '~' .. kind)
  extend(KEYS[1], ttl)
  if fences_by_name() then
    redis.call('HSET', KEYS[2], 'f:' .. nonce, fence_s, 'fence', fence_s)
  else
    redis.call('HSET', KEYS[2], 'f:' .. nonce, fence_s)
  end
  extend(KEYS[2], ttl + retention)
  note_state(state, fence, deadline, ttl, retention)
  return fence_s .. ':' .. nonce
end

-- grant_admitted is wake_admitted for a release of one of many, or of a
-- lock whose first waiters are readers or a semaphore's, when grant_ttl
-- (ms) is set: each waiter that would be granted is granted at once (a
-- writer the lock, when the last reader has gone), for at most grant_ttl
-- until its sidecar renews it, and its sidecar learns the token from the
-- wake ("<waiter> <token> <ttl>"), whichever sidecar it is: its own try
-- would have cost a round trip each, one waiter after another. count and
-- kind are as for wake_admitted; floor and state as for grant.
local function grant_admitted(channel, sharded, now_us, now_ms, count, kind, grant_ttl, retention, floor, state)
  if grant_ttl <= 0 then
    wake_admitted(channel, sharded, now_ms, count, kind)
    return
  end
  for i, wk in ipairs(admitted(now_ms, count, kind)) do
    local w, k = wk[1], wk[2]
    local ttl, nonce = entry_of(w)
    if ttl and nonce then
      ttl = math.min(ttl, grant_ttl)
      dequeue(w)
      -- Each grant its own µs, so fences rise from one to the next.
      local token
      if k == '' then
        token = grant(nonce, ttl, retention, now_us, floor, state)
      else
        token = grant_permit(k, nonce, ttl, retention, now_us + i - 1, now_ms, floor, state)
      end
      wake(channel, sharded, w .. ' ' .. token .. ' ' .. ttl)
    else
      wake(channel, sharded, w)
    end
  end
end

-- holder_of splits a token of a name held by many: its fence ("" for a
-- nonce-only token), nonce, and whether it names the revoked form.
local function holder_of(token)
  local fence, rest = string.match(token, '^(%d*):(.+)$')
  if not rest then return nil end
  local nonce, bang = string.match(rest, '^(.-)(!?)$')
  return fence, nonce, bang == '!'
end

-- Shared by every script: lockproxy prepends this file to each one when it
-- loads it, since Redis scripts cannot include one another.
-- Keys, by the convention of every script:
-- KEYS[1] lock key (value: token "<fence>:<nonce>", PX ttl; "<token>!" once
--         revoked: held, but by no client, until the holder's sidecar
--         releases it)
-- KEYS[2] fence key (hash: fence = the name's last fence issued, as of its
--         last release, or on a Cluster of its last grant; released = last
--         released token)
-- KEYS[3] queue (zset: waiter -> arrival time in µs)
-- KEYS[4] waiters' entries (hash: waiter -> "<deadline ms>:<ttl ms>:<nonce>"; the
--         waiter is presumed dead after the deadline; ttl and nonce let a
--         release grant it the lock)
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
local function grant(nonce, ttl, retention, now_us, floor, state, if_free)
  local st = read_state(state)
  local fence = now_us
  floor = tonumber(floor)
  if floor and floor >= fence then fence = floor + 1 end
  if st and st.fence and st.fence >= fence then fence = st.fence + 1 end
  local by_name = fences_by_name()
  if by_name then
    local last = tonumber(redis.call('HGET', KEYS[2], 'fence'))
    if last and last >= fence then fence = last + 1 end
  end
  local fence_s = string.format('%d', fence)
  local token = fence_s .. ':' .. nonce
  if if_free then
    local cur = redis.call('SET', KEYS[1], token, 'NX', 'PX', ttl, 'GET')
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

-- entry_of returns a queued waiter's ttl (ms) and nonce, or nil.
local function entry_of(waiter)
  local entry = redis.call('HGET', KEYS[4], waiter)
  if not entry then return nil end
  local ttl, nonce = string.match(entry, '^%d+:(%d+):(.+)$')
  return tonumber(ttl), nonce
end

-- wake tells the sidecar of waiter that it is first.
local function wake(channel, sharded, waiter)
  redis.call(sharded == '1' and 'SPUBLISH' or 'PUBLISH', channel, waiter)
end

-- oom_check fails the script, before it writes anything, when Redis is out
-- of memory: SETRANGE with nothing to set changes nothing, but it is a
-- command that may use memory, which Redis refuses as a script's first
-- write under maxmemory.
local function oom_check()
  redis.call('SETRANGE', KEYS[1], 0, '')
end

-- matches reports whether the held token cur is want, or has the nonce of a
-- nonce-only ":<nonce>".
local function matches(cur, want)
  return cur and (cur == want or (string.sub(want, 1, 1) == ':' and string.sub(cur, -#want) == want))
end

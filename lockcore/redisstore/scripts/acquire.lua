-- Take a lock if it is free and no earlier waiter is queued for it, or
-- refresh it if this nonce already holds it; otherwise queue the waiter.
-- ARGV[1] nonce, ARGV[2] ttl ms, ARGV[3] fence retention ms,
-- ARGV[4] waiter id ("" to try once without queueing), ARGV[5] waiter ttl ms,
-- ARGV[6] wake channel, ARGV[7] "1" to publish with SPUBLISH (Cluster),
-- ARGV[8] the largest fence the sidecar has seen (see grant);
-- ARGV[9] the kind asked for: '' (one holder), 's' (a reader) or 'l<n>' (a
-- permit of a semaphore of n; see "Names held by many" in lib.lua);
-- KEYS[5] the state hash (see note_state);
-- ARGV[10] with KEYS[6]: the epoch the sidecar last checked (see Health).
-- On a Cluster, with KEYS 1 to 4 only: ARGV[10] the node the sidecar
-- believes is the slot's primary, ARGV[11] that shard's epoch key and
-- ARGV[12] its epoch as the sidecar last checked it, ARGV[13] its state hash.
-- A queued waiter's entry keeps its nonce and ttl, so that a release on any
-- sidecar can grant it the lock.
-- Returns {1, token, first, now, ttl} when the nonce holds the lock now,
-- for ttl ms more: a lock it already held is not extended, since the
-- sidecar that asked may never have learned of it;
-- {0, pttl, first, now, 0} when another token holds it (or a revoked one);
-- {2, 0, first, now, 0} when it is free but reserved for the first live waiter
-- (or, held by many, its free places are kept for the waiters ahead: first
-- is then the first of those, who have been woken);
-- {3, 0, false, 0, 0} when the epoch key is not what the sidecar last saw:
-- the upstream lost its data (or another server took over) since, and
-- holders through the old one may not know yet, so nothing is granted;
-- {4, node, false, 0, 0}, on a Cluster, when the script ran on another node
-- than the one named: the sidecar's view of the Cluster is behind, and
-- nothing was written. (When a reshard has just moved the shard's epoch key
-- away, the epoch is not checked here: a restart of this node, the other
-- way its data could be lost, is found by the sidecar's connections.)
-- {5, kind, false, now, 0} when the name is held, or waited for first, as a
-- kind of another family than the one asked for: nothing was written.
-- first is the first live waiter after this call, or false; now is Redis's
-- clock in µs, which orders what replies say of the queue.
local state = KEYS[5]
if #KEYS == 4 and ARGV[11] then
  local me = redis.call('CLUSTER', 'MYID')
  if me ~= ARGV[10] then
    return {4, me, false, 0, 0}
  end
  if usable(ARGV[11]) and redis.call('GET', ARGV[11]) ~= ARGV[12] then
    return {3, 0, false, 0, 0}
  end
  state = usable(ARGV[13])
elseif KEYS[6] and get_once(KEYS[6]) ~= ARGV[10] then
  return {3, 0, false, 0, 0}
end
local ttl = tonumber(ARGV[2])
local waiter = ARGV[4]
local kind = ARGV[9]
-- With nobody queued (the usual case) there is no queue to read, and no
-- dequeue to write.
local queued = redis.call('EXISTS', KEYS[3]) == 1
if queued then
  -- A Redis out of memory refuses this at once, as it refuses any first
  -- write that may use memory, whatever path the script would take:
  -- without it, a dequeue (which frees memory) would come first, and Redis
  -- lets every write after a script's first one through. With no queue,
  -- the first write is one that may use memory.
  oom_check()
end
local now_us, now_ms = clock()
local cur
if not queued and kind == '' then
  -- Free and nobody queued, the usual case, takes one write; held, it
  -- reads the holder's token.
  local token
  token, cur = grant(ARGV[1], ttl, tonumber(ARGV[3]), now_us, ARGV[8], state, true)
  if token then return {1, token, false, now_us, ttl} end
else
  if not queued then oom_check() end
  cur = on_lock('GET', KEYS[1])
end
if cur == MANY and settle_many(now_ms) == 0 then
  -- Its last holders' leases had ended.
  cur = nil
  if not queued and kind == '' then
    local token = grant(ARGV[1], ttl, tonumber(ARGV[3]), now_us, ARGV[8], state)
    return {1, token, false, now_us, ttl}
  end
end

local function enqueue()
  if waiter == '' then return end
  if not redis.call('ZSCORE', KEYS[3], waiter) then
    redis.call('ZADD', KEYS[3], now_us, waiter)
  end
  local alive = tonumber(ARGV[5])
  local entry = (now_ms + alive) .. ':' .. ttl .. ':' .. ARGV[1]
  if kind ~= '' then entry = entry .. ':' .. kind end
  redis.call('HSET', KEYS[4], waiter, entry)
  redis.call('PEXPIRE', KEYS[3], alive)
  redis.call('PEXPIRE', KEYS[4], alive)
  queued = true
end

-- first is the first live waiter, or false.
local function first()
  return queued and live_head(now_ms)
end

if kind ~= '' or cur == MANY then
  -- Held by many, or asked to be one of many.
  if cur and cur ~= MANY then
    -- Held by one: readers wait for the writer; a semaphore is the wrong kind.
    if family(kind) ~= '' then return {5, '', false, now_us, 0} end
    enqueue()
    return {0, redis.call('PTTL', KEYS[1]), first(), now_us, 0}
  end
  local count = 0
  if cur == MANY then
    local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
    if score then
      -- Its own place, as it stands (see below).
      if queued then dequeue(waiter) end
      local fence = redis.call('HGET', KEYS[2], 'f:' .. ARGV[1])
      return {1, fence .. ':' .. ARGV[1], first(), now_us, tonumber(score) - now_ms}
    end
    local held = many_kind()
    if family(kind) ~= family(held) then return {5, held, false, now_us, 0} end
    count = redis.call('ZCARD', KEYS[1]) - 1
    if kind == '' then
      -- A writer waits for every reader.
      enqueue()
      return {0, longest_many(now_ms), first(), now_us, 0}
    end
  else
    local fk = queued and first_kind(waiter, now_ms)
    if fk and family(fk) ~= family(kind) then return {5, fk, false, now_us, 0} end
  end
  if admits(kind, count, waiter, now_ms) then
    if queued then dequeue(waiter) end
    local token = grant_permit(kind, ARGV[1], ttl, tonumber(ARGV[3]), now_us, now_ms, ARGV[8], state)
    return {1, token, first(), now_us, ttl}
  end
  enqueue()
  local woken = wake_admitted(ARGV[6], ARGV[7], now_ms, count, cur == MANY and kind or nil)
  if #woken > 0 then return {2, 0, woken[1], now_us, 0} end
  local left = 0
  if count > 0 then
    left = kind == 's' and longest_many(now_ms) or soonest_many(now_ms)
  end
  return {0, left, first(), now_us, 0}
end

if cur then
  -- A retry of an acquire whose reply was lost, or a waiter that a release
  -- granted the lock, finds its own nonce: succeed again, as it stands.
  if matches(cur, ':' .. ARGV[1]) then
    if queued then dequeue(waiter) end
    return {1, cur, first(), now_us, redis.call('PTTL', KEYS[1])}
  end
  enqueue()
  return {0, redis.call('PTTL', KEYS[1]), first(), now_us, 0}
end

local head = first()
if head and head ~= waiter then
  local _, _, hk = entry_of(head)
  if hk and family(hk) ~= '' then
    -- A semaphore's waiters keep the name theirs.
    return {5, hk, false, now_us, 0}
  end
  enqueue()
  -- Free but reserved: nudge the head's sidecar, which may have missed the
  -- release (expiry publishes nothing).
  wake(ARGV[6], ARGV[7], head)
  return {2, 0, head, now_us, 0}
end
if queued then dequeue(waiter) end
local token = grant(ARGV[1], ttl, tonumber(ARGV[3]), now_us, ARGV[8], state)
return {1, token, first(), now_us, ttl}

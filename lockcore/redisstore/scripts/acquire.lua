-- Take a lock if it is free and no earlier waiter is queued for it, or
-- refresh it if this nonce already holds it; otherwise queue the waiter.
-- KEYS[1] lock key (value: token "<fence>:<nonce>", PX ttl)
-- KEYS[2] fence key (hash: fence = last fence issued, released = last released token)
-- KEYS[3] queue (zset: waiter -> arrival time in µs)
-- KEYS[4] waiter deadlines (hash: waiter -> ms after which it is presumed dead)
-- ARGV[1] nonce, ARGV[2] ttl ms, ARGV[3] fence retention ms,
-- ARGV[4] waiter id ("" to try once without queueing), ARGV[5] waiter ttl ms,
-- ARGV[6] wake channel, ARGV[7] "1" to publish with SPUBLISH (Cluster)
-- Returns {1, token, first} when the nonce holds the lock now;
-- {0, pttl, first} when another token holds it;
-- {2, 0, first} when it is free but reserved for the first live waiter.
-- first is the first live waiter after this call, or false. Every reply
-- ends with Redis's clock in µs, which orders what replies say of the queue.
local ttl = tonumber(ARGV[2])
local keep = ttl + tonumber(ARGV[3])
local waiter = ARGV[4]
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now_us / 1000)

local function enqueue()
  if waiter == '' then return end
  if not redis.call('ZSCORE', KEYS[3], waiter) then
    redis.call('ZADD', KEYS[3], now_us, waiter)
  end
  local alive = tonumber(ARGV[5])
  redis.call('HSET', KEYS[4], waiter, now_ms + alive)
  redis.call('PEXPIRE', KEYS[3], alive)
  redis.call('PEXPIRE', KEYS[4], alive)
end

local function dequeue()
  if waiter == '' then return end
  redis.call('ZREM', KEYS[3], waiter)
  redis.call('HDEL', KEYS[4], waiter)
end

-- The first waiter whose sidecar still keeps it alive; dead ones are dropped
-- on the way, so a crashed sidecar cannot block the queue.
local function live_head()
  while true do
    local head = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
    if not head then return false end
    local deadline = tonumber(redis.call('HGET', KEYS[4], head))
    if deadline and deadline >= now_ms then return head end
    redis.call('ZREM', KEYS[3], head)
    redis.call('HDEL', KEYS[4], head)
  end
end

local cur = redis.call('GET', KEYS[1])
if cur then
  -- A retry of an acquire whose reply was lost finds its own nonce: succeed again.
  local suffix = ':' .. ARGV[1]
  if string.sub(cur, -#suffix) == suffix then
    redis.call('PEXPIRE', KEYS[1], ttl)
    redis.call('PEXPIRE', KEYS[2], keep)
    dequeue()
    return {1, cur, live_head(), now_us}
  end
  enqueue()
  return {0, redis.call('PTTL', KEYS[1]), live_head(), now_us}
end

local head = live_head()
if head and head ~= waiter then
  enqueue()
  -- Free but reserved: nudge the head's sidecar, which may have missed the
  -- release (expiry publishes nothing).
  redis.call(ARGV[7] == '1' and 'SPUBLISH' or 'PUBLISH', ARGV[6], head)
  return {2, 0, head, now_us}
end
dequeue()

-- The fence is Redis's clock in microseconds, or the last fence + 1 if the
-- clock has not passed it, so it keeps rising after the fence key is forgotten
-- and after a restart that lost every key.
local fence = now_us
local last = tonumber(redis.call('HGET', KEYS[2], 'fence'))
if last and last >= fence then
  fence = last + 1
end
fence = string.format('%d', fence)
local token = fence .. ':' .. ARGV[1]
redis.call('SET', KEYS[1], token, 'PX', ttl)
redis.call('HSET', KEYS[2], 'fence', fence)
redis.call('PEXPIRE', KEYS[2], keep)
return {1, token, live_head(), now_us}

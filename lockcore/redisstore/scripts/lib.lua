-- Shared by every script: lockproxy prepends this file to each one when it
-- loads it, since Redis scripts cannot include one another.
-- Keys, by the convention of every script:
-- KEYS[1] lock key (value: token "<fence>:<nonce>", PX ttl; "<token>!" once
--         revoked: held, but by no client, until the holder's sidecar
--         releases it)
-- KEYS[2] fence key (hash: fence = last fence issued, released = last released token)
-- KEYS[3] queue (zset: waiter -> arrival time in µs)
-- KEYS[4] waiters' entries (hash: waiter -> "<deadline ms>:<ttl ms>:<nonce>"; the
--         waiter is presumed dead after the deadline; ttl and nonce let a
--         release grant it the lock)

-- clock returns Redis's time in µs and in ms.
local function clock()
  local t = redis.call('TIME')
  local us = tonumber(t[1]) * 1000000 + tonumber(t[2])
  return us, math.floor(us / 1000)
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

-- grant gives the lock to nonce for ttl ms with a new fence: Redis's clock in
-- µs, or the last fence + 1 if the clock has not passed it, so fences keep
-- rising after the fence key is forgotten and after a restart that lost
-- every key. It returns the token.
local function grant(nonce, ttl, retention, now_us)
  local fence = now_us
  local last = tonumber(redis.call('HGET', KEYS[2], 'fence'))
  if last and last >= fence then
    fence = last + 1
  end
  fence = string.format('%d', fence)
  local token = fence .. ':' .. nonce
  redis.call('SET', KEYS[1], token, 'PX', ttl)
  redis.call('HSET', KEYS[2], 'fence', fence)
  redis.call('PEXPIRE', KEYS[2], ttl + retention)
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

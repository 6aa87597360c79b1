-- Free a lock if the token holds it, and hand it on: to the candidate in the
-- same step when the candidate is the first live waiter, else by waking the
-- first live waiter's sidecar.
-- KEYS[1] lock key, KEYS[2] fence key, KEYS[3] queue, KEYS[4] waiter deadlines
-- ARGV[1] token, or ":<nonce>" to match any fence; ARGV[2] fence retention ms;
-- ARGV[3] "1" when this call repeats one whose reply was lost;
-- ARGV[4] candidate waiter ("" for none), ARGV[5] its nonce, ARGV[6] its ttl ms;
-- ARGV[7] wake channel, ARGV[8] "1" to publish with SPUBLISH (Cluster)
-- Returns {released (1/0), token granted to the candidate or false, first,
-- now}: first is the first live waiter afterwards, or false; now is Redis's
-- clock in µs (0 when the queue was not looked at).
local function matches(cur)
  return cur and (cur == ARGV[1] or (string.sub(ARGV[1], 1, 1) == ':' and string.sub(cur, -#ARGV[1]) == ARGV[1]))
end
local cur = redis.call('GET', KEYS[1])
if not matches(cur) then
  -- Only a repeat may claim an earlier release; a client releasing twice gets 0.
  if ARGV[3] == '1' and matches(redis.call('HGET', KEYS[2], 'released')) then
    return {1, false, false, 0}
  end
  return {0, false, false, 0}
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[2], 'released', cur)
redis.call('PEXPIRE', KEYS[2], ARGV[2])

local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now_us / 1000)
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
local head = live_head()
if not head then return {1, false, false, now_us} end
if head ~= ARGV[4] then
  redis.call(ARGV[8] == '1' and 'SPUBLISH' or 'PUBLISH', ARGV[7], head)
  return {1, false, head, now_us}
end

-- The candidate is next: grant it now, saving its sidecar a round trip.
redis.call('ZREM', KEYS[3], head)
redis.call('HDEL', KEYS[4], head)
local ttl = tonumber(ARGV[6])
local fence = now_us
local last = tonumber(redis.call('HGET', KEYS[2], 'fence'))
if last and last >= fence then
  fence = last + 1
end
fence = string.format('%d', fence)
local token = fence .. ':' .. ARGV[5]
redis.call('SET', KEYS[1], token, 'PX', ttl)
redis.call('HSET', KEYS[2], 'fence', fence)
redis.call('PEXPIRE', KEYS[2], ttl + tonumber(ARGV[2]))
return {1, token, live_head(), now_us}

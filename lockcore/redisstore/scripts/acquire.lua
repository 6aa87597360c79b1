-- Take a lock if it is free, or refresh it if this nonce already holds it.
-- KEYS[1] lock key (value: token "<fence>:<nonce>", PX ttl)
-- KEYS[2] fence key (hash: fence = last fence issued, released = last released token)
-- ARGV[1] nonce, ARGV[2] ttl ms, ARGV[3] fence retention ms
-- Returns {1, token} when the nonce holds the lock now, {0, pttl} when another does.
local ttl = tonumber(ARGV[2])
local keep = ttl + tonumber(ARGV[3])
local cur = redis.call('GET', KEYS[1])
if cur then
  -- A retry of an acquire whose reply was lost finds its own nonce: succeed again.
  local suffix = ':' .. ARGV[1]
  if string.sub(cur, -#suffix) == suffix then
    redis.call('PEXPIRE', KEYS[1], ttl)
    redis.call('PEXPIRE', KEYS[2], keep)
    return {1, cur}
  end
  return {0, redis.call('PTTL', KEYS[1])}
end
-- The fence is Redis's clock in microseconds, or the last fence + 1 if the
-- clock has not passed it, so it keeps rising after the fence key is forgotten
-- and after a restart that lost every key.
local t = redis.call('TIME')
local fence = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(redis.call('HGET', KEYS[2], 'fence'))
if last and last >= fence then
  fence = last + 1
end
fence = string.format('%d', fence)
local token = fence .. ':' .. ARGV[1]
redis.call('SET', KEYS[1], token, 'PX', ttl)
redis.call('HSET', KEYS[2], 'fence', fence)
redis.call('PEXPIRE', KEYS[2], keep)
return {1, token}

-- Extend the deadlines of a sidecar's waiters that are still queued.
-- KEYS[3] queue, KEYS[4] waiter deadlines (KEYS[1], KEYS[2] unused)
-- ARGV[1] waiter ttl ms, ARGV[2..] waiters
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local alive = tonumber(ARGV[1])
local kept = 0
for i = 2, #ARGV do
  if redis.call('ZSCORE', KEYS[3], ARGV[i]) then
    redis.call('HSET', KEYS[4], ARGV[i], now_ms + alive)
    kept = kept + 1
  end
end
if kept > 0 then
  redis.call('PEXPIRE', KEYS[3], alive)
  redis.call('PEXPIRE', KEYS[4], alive)
end
return kept

-- Extend the deadlines of a sidecar's waiters that are still queued.
-- ARGV[1] waiter ttl ms, ARGV[2..] waiters
local _, now_ms = clock()
local alive = tonumber(ARGV[1])
local kept = 0
for i = 2, #ARGV do
  local entry = redis.call('HGET', KEYS[4], ARGV[i])
  if entry and redis.call('ZSCORE', KEYS[3], ARGV[i]) then
    redis.call('HSET', KEYS[4], ARGV[i], (now_ms + alive) .. string.match(entry, '^%d+(.*)$'))
    kept = kept + 1
  end
end
if kept > 0 then
  redis.call('PEXPIRE', KEYS[3], alive)
  redis.call('PEXPIRE', KEYS[4], alive)
end
return kept

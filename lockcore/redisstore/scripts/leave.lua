-- Take a waiter out of a lock's queue. If it was first and the lock is free,
-- wake the next live waiter's sidecar.
-- KEYS[1] lock key, KEYS[3] queue, KEYS[4] waiter deadlines (KEYS[2] unused)
-- ARGV[1] waiter, ARGV[2] wake channel, ARGV[3] "1" to publish with SPUBLISH
local first = redis.call("ZRANGE", KEYS[3], 0, 0)[1]
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
if first ~= ARGV[1] or redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
while true do
  local head = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
  if not head then return 0 end
  local deadline = tonumber(redis.call('HGET', KEYS[4], head))
  if deadline and deadline >= now_ms then
    redis.call(ARGV[3] == '1' and 'SPUBLISH' or 'PUBLISH', ARGV[2], head)
    return 1
  end
  redis.call('ZREM', KEYS[3], head)
  redis.call('HDEL', KEYS[4], head)
end

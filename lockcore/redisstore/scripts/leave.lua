-- Take a waiter out of a lock's queue. If it was first and the lock is free,
-- wake the next live waiter's sidecar.
-- ARGV[1] waiter, ARGV[2] wake channel, ARGV[3] "1" to publish with SPUBLISH
local first = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
dequeue(ARGV[1])
if first ~= ARGV[1] or redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local _, now_ms = clock()
local head = live_head(now_ms)
if not head then return 0 end
wake(ARGV[2], ARGV[3], head)
return 1

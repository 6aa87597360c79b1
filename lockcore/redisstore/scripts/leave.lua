-- Take a waiter out of a lock's queue. If it was first and the lock is free,
-- or the lock is held by many, wake the sidecars of the waiters that may
-- now come in (see wake_admitted).
-- ARGV[1] waiter, ARGV[2] wake channel, ARGV[3] "1" to publish with SPUBLISH
local first = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
local was = redis.call('ZSCORE', KEYS[3], ARGV[1])
dequeue(ARGV[1])
local cur = on_lock('GET', KEYS[1])
local _, now_ms = clock()
if cur == MANY then
  -- Held by many: those it kept out (readers behind a writer) may come in.
  if not was then return 0 end
  local kind = many_kind()
  return #wake_admitted(ARGV[2], ARGV[3], now_ms, settle_many(now_ms), kind)
end
if first ~= ARGV[1] or cur then
  return 0
end
return #wake_admitted(ARGV[2], ARGV[3], now_ms, 0, nil)

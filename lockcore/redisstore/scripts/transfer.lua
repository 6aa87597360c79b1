-- Pass a held lock straight to a waiter of the same sidecar, which has
-- already told that waiter it holds it: nobody else could take the lock in
-- between, because the old token held it until this moment.
-- ARGV[1] old token, ARGV[2] new token, ARGV[3] new fence (old fence + 1),
-- ARGV[4] ttl ms, ARGV[5] fence retention ms, ARGV[6] waiter;
-- KEYS[5] the state hash, or on a Cluster ARGV[7] the shard's (see usable)
-- Returns {1, first, now} when the new token holds the lock (also when a
-- repeat finds it already does), {0, false, now} when the old token no
-- longer held it; now is Redis's clock in µs.
local cur = on_lock('GET', KEYS[1])
local now_us, now_ms = clock()
if cur == MANY then
  return {0, false, now_us} -- held by many: never passed on this way
end
if cur == ARGV[2] then
  return {1, live_head(now_ms), now_us}
end
if cur ~= ARGV[1] then
  return {0, false, now_us}
end
local last = tonumber(redis.call('HGET', KEYS[2], 'fence'))
if last and last >= tonumber(ARGV[3]) then
  return {0, false, now_us} -- the new fence would not be the largest: refuse
end
local ttl = tonumber(ARGV[4])
redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
redis.call('HSET', KEYS[2], 'fence', ARGV[3], 'released', cur)
redis.call('PEXPIRE', KEYS[2], ttl + tonumber(ARGV[5]))
note_state(KEYS[5] or usable(ARGV[7]), tonumber(ARGV[3]), now_ms + ttl, ttl, tonumber(ARGV[5]))
dequeue(ARGV[6])
return {1, live_head(now_ms), now_us}

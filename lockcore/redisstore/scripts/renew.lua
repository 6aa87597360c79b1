-- Set a lock's ttl if the token holds it. Repeating it is harmless.
-- ARGV[1] token, or ":<nonce>" to match any fence; ARGV[2] ttl ms;
-- ARGV[3] fence retention ms; ARGV[4] "1" when the caller is not the
-- lease's holder: the ttl may then grow, never shrink, since the holder
-- vouches for the lock until a validity computed from the ttl it set;
-- KEYS[5] the state hash, or on a Cluster ARGV[5] the shard's (see usable).
-- Returns 1 when renewed (for at least the ttl), 0 when the token does not
-- hold the lock, 2 when it held it until a revoke took it (see revoke.lua).
local cur = on_lock('GET', KEYS[1])
if cur == MANY then
  -- One of many: the token's own place.
  local fence, nonce, revoked = holder_of(ARGV[1])
  if not nonce or revoked then return 0 end
  local _, now_ms = clock()
  if fence ~= '' and redis.call('HGET', KEYS[2], 'f:' .. nonce) ~= fence then return 0 end
  local score = tonumber(redis.call('ZSCORE', KEYS[1], nonce))
  if not score or score <= now_ms then
    if fence ~= '' and redis.call('ZSCORE', KEYS[1], nonce .. '!') then return 2 end
    return 0
  end
  local ttl = tonumber(ARGV[2])
  local deadline = now_ms + ttl
  if ARGV[4] == '1' and score >= deadline then return 1 end
  local retention = tonumber(ARGV[3])
  redis.call('ZADD', KEYS[1], 'XX', deadline, nonce)
  extend(KEYS[1], ttl)
  extend(KEYS[2], ttl + retention)
  note_state(KEYS[5] or usable(ARGV[5]), nil, deadline, ttl, retention)
  return 1
end
if not matches(cur, ARGV[1]) then
  if cur and cur == ARGV[1] .. '!' then return 2 end
  return 0
end
local ttl = tonumber(ARGV[2])
if ARGV[4] == '1' and redis.call('PTTL', KEYS[1]) >= ttl then
  return 1
end
local retention = tonumber(ARGV[3])
redis.call('PEXPIRE', KEYS[1], ttl)
if fences_by_name() then
  redis.call('PEXPIRE', KEYS[2], ttl + retention)
end
local _, now_ms = clock()
note_state(KEYS[5] or usable(ARGV[5]), nil, now_ms + ttl, ttl, retention)
return 1

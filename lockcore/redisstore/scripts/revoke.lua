-- Revoke a lock for a connection that is not its holder's, when the holder
-- is a client of another sidecar: the lock stays held, with its ttl, under
-- "<token>!", which no client has, so nobody is granted it while its
-- holder may still believe it holds it; the holder's sidecar is told on its
-- own channel, ends the lease, tells its client, and releases "<token>!".
-- If it never does, the lock expires by its ttl.
-- ARGV[1] token (a full one); ARGV[2] "1" when this call repeats one whose
-- reply was lost; ARGV[3] the holder's sidecar's channel; ARGV[4] the
-- message: "<token> <name>"
-- Returns 1 when revoked, 0 when the token did not hold the lock (or was
-- revoked already, by another call).
local cur = on_lock('GET', KEYS[1])
if cur == MANY then
  -- One of many: its place stays, under "<nonce>!", with its lease.
  local fence, nonce, revoked = holder_of(ARGV[1])
  if not nonce or fence == '' or revoked
      or redis.call('HGET', KEYS[2], 'f:' .. nonce) ~= fence then
    return 0
  end
  local _, now_ms = clock()
  local score = tonumber(redis.call('ZSCORE', KEYS[1], nonce))
  if not score or score <= now_ms then
    if ARGV[2] == '1' and redis.call('ZSCORE', KEYS[1], nonce .. '!') then return 1 end
    return 0
  end
  redis.call('ZREM', KEYS[1], nonce)
  redis.call('ZADD', KEYS[1], score, nonce .. '!')
  redis.call('PUBLISH', ARGV[3], ARGV[4])
  return 1
end
if cur and cur == ARGV[1] .. '!' then
  if ARGV[2] == '1' then return 1 end
  return 0
end
if cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], cur .. '!', 'KEEPTTL')
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1

-- Set a lock's ttl if the token holds it. Repeating it is harmless.
-- ARGV[1] token, or ":<nonce>" to match any fence; ARGV[2] ttl ms; ARGV[3] fence retention ms
-- Returns 1 when renewed, 0 when the token does not hold the lock.
if matches(redis.call('GET', KEYS[1]), ARGV[1]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[2]) + tonumber(ARGV[3]))
  return 1
end
return 0

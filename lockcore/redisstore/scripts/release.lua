-- Free a lock if the token holds it.
-- KEYS[1] lock key, KEYS[2] fence key
-- ARGV[1] token, or ":<nonce>" to match any fence; ARGV[2] fence retention ms;
-- ARGV[3] "1" when this call repeats one whose reply was lost
-- Returns 1 when released (by this call, or by the lost call it repeats), else 0.
local function matches(cur)
  return cur and (cur == ARGV[1] or (string.sub(ARGV[1], 1, 1) == ':' and string.sub(cur, -#ARGV[1]) == ARGV[1]))
end
local cur = redis.call('GET', KEYS[1])
if matches(cur) then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[2], 'released', cur)
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  return 1
end
-- Only a repeat may claim an earlier release; a client releasing twice gets 0.
if ARGV[3] == '1' and matches(redis.call('HGET', KEYS[2], 'released')) then
  return 1
end
return 0

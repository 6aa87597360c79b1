-- Report a lock's holder without changing anything.
-- Returns {token or false, pttl, last fence or false, queued waiters}; held
-- by many, also the kind and, for each holder whose lease has not ended,
-- its nonce (with '!' when revoked), ms left and fence.
local cur = on_lock('GET', KEYS[1])
local out = {cur ~= MANY and cur, redis.call('PTTL', KEYS[1]), redis.call('HGET', KEYS[2], 'fence'),
  redis.call('ZCARD', KEYS[3])}
if cur ~= MANY then return out end
local _, now_ms = clock()
local held = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now_ms, '+inf', 'WITHSCORES')
out[5] = ''
for i = 1, #held, 2 do
  local m = held[i]
  if string.sub(m, 1, 1) == '~' then
    out[5] = string.sub(m, 2)
  else
    out[#out + 1] = m
    out[#out + 1] = tonumber(held[i + 1]) - now_ms
    out[#out + 1] = redis.call('HGET', KEYS[2], 'f:' .. string.match(m, '^(.-)!?$')) or false
  end
end
return out

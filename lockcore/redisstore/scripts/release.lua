-- Free a lock if the token holds it, and hand it on to the first live
-- waiter (held by many, free the token's place, and wake the waiters
-- that lets in, as when the first waiter is a reader or a semaphore's): to the candidate (of this sidecar) in the same step when it is
-- first; else, when grant_ttl is set, to the first waiter of another
-- sidecar, for at most grant_ttl until its sidecar renews it, sending
-- "~first <first> <now>" (the first live waiter afterwards, if any: news for
-- every sidecar, which sidecars that predate it ignore as a wake of no
-- waiter of theirs) and then the token, in the wake "<waiter> <token> <ttl
-- ms>"; else by waking that sidecar.
-- ARGV[1] token, or ":<nonce>" to match any fence; ARGV[2] fence retention ms;
-- ARGV[3] "1" when this call repeats one whose reply was lost;
-- ARGV[4] candidate waiter ("" for none), ARGV[5] its nonce, ARGV[6] its ttl ms;
-- ARGV[7] wake channel, ARGV[8] "1" to publish with SPUBLISH (Cluster);
-- ARGV[9] grant_ttl ms (0: only wake another sidecar's waiter);
-- ARGV[10] the prefix of this sidecar's waiter ids, never granted this way;
-- ARGV[11] the largest fence the sidecar has seen; KEYS[5] the state hash,
-- or on a Cluster ARGV[12] the shard's (see usable)
-- Returns {released (1/0), token granted to the candidate or false, first,
-- now}: first is the first live waiter afterwards, or false; now is Redis's
-- clock in µs (0 when the queue was not looked at).
local state = KEYS[5] or usable(ARGV[12])
local retention = tonumber(ARGV[2])
local cur = on_lock('GET', KEYS[1])
if cur == MANY then
  -- One of many: its place goes to the waiters it lets in, whose own tries
  -- take their places (a writer's, once the last reader has gone).
  local fence, nonce, revoked = holder_of(ARGV[1])
  local member = nonce and (revoked and nonce .. '!' or nonce)
  local now_us, now_ms = clock()
  local score = member and redis.call('ZSCORE', KEYS[1], member)
  if not score or tonumber(score) <= now_ms
      or (fence ~= '' and redis.call('HGET', KEYS[2], 'f:' .. nonce) ~= fence) then
    if ARGV[3] == '1' and matches(redis.call('HGET', KEYS[2], 'released'), ARGV[1]) then
      return {1, false, false, 0}
    end
    return {0, false, false, 0}
  end
  local kind = many_kind()
  redis.call('ZREM', KEYS[1], member)
  redis.call('HDEL', KEYS[2], 'f:' .. nonce)
  redis.call('HSET', KEYS[2], 'released', ARGV[1])
  extend(KEYS[2], retention)
  local count = settle_many(now_ms)
  grant_admitted(ARGV[7], ARGV[8], now_us, now_ms, count, kind, tonumber(ARGV[9]), retention, ARGV[11], state)
  return {1, false, live_head(now_ms), now_us}
end
if not matches(cur, ARGV[1]) then
  -- Only a repeat may claim an earlier release; a client releasing twice gets 0.
  if ARGV[3] == '1' and matches(redis.call('HGET', KEYS[2], 'released'), ARGV[1]) then
    return {1, false, false, 0}
  end
  return {0, false, false, 0}
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[2], 'released', cur, 'fence', string.match(cur, '^%d+'))
redis.call('PEXPIRE', KEYS[2], retention)

local now_us, now_ms = clock()
local head = live_head(now_ms)
if not head then return {1, false, false, now_us} end
if head ~= ARGV[4] then
  -- (A candidate is one holder's waiter: its entry need not be read.)
  local ttl, nonce, kind = entry_of(head)
  if kind and kind ~= '' then
    -- Readers, or a semaphore's waiters: granted together, told by wakes.
    grant_admitted(ARGV[7], ARGV[8], now_us, now_ms, 0, nil, tonumber(ARGV[9]), retention, ARGV[11], state)
    return {1, false, live_head(now_ms), now_us}
  end
  local grant_ttl = tonumber(ARGV[9])
  local ours = string.sub(head, 1, #ARGV[10]) == ARGV[10]
  if grant_ttl > 0 and nonce and not ours then
    -- Its sidecar learns the token from the wake, saving a round trip; if the
    -- wake is lost, the waiter's own try (same nonce) finds the lock its own.
    ttl = math.min(ttl, grant_ttl)
    dequeue(head)
    local token = grant(nonce, ttl, retention, now_us, ARGV[11], state)
    local first = live_head(now_ms)
    -- Who is first goes out before the grant: a sidecar whose waiter is
    -- granted learns who is next before that waiter can release, so its
    -- next release can go to that one without a round trip.
    if first then
      wake(ARGV[7], ARGV[8], '~first ' .. first .. ' ' .. string.format('%d', now_us))
    end
    wake(ARGV[7], ARGV[8], head .. ' ' .. token .. ' ' .. ttl)
    return {1, false, first, now_us}
  end
  wake(ARGV[7], ARGV[8], head)
  return {1, false, head, now_us}
end
-- The candidate is next: grant it now, saving its sidecar a round trip.
dequeue(head)
local token = grant(ARGV[5], tonumber(ARGV[6]), retention, now_us, ARGV[11], state)
return {1, token, live_head(now_ms), now_us}

-- Run several calls of the scripts above in one: each is the script's own
-- body (in ops, which lockproxy builds when it loads this), run with KEYS
-- and ARGV set to that call's, so it behaves exactly as if sent alone.
-- ARGV[1] the number of calls n; then for each call its op, its number of
-- keys and its number of arguments; then every call's arguments, in order.
-- KEYS holds every call's keys, in order.
-- The store-wide state hash is read once and written once for every call
-- (see note_state), and Redis's clock and the epoch read once (see clock
-- and get_once).
-- Returns one reply per call: the op's own, or an error reply when the op
-- failed (Redis refused one of its commands), which fails that call only.
batched = true
local all_keys, all_args = KEYS, ARGV
local n = tonumber(all_args[1])
local ki, ai = 0, 1 + 3 * n
local out = {}
for c = 1, n do
  local op = all_args[3 * c - 1]
  local nk, na = tonumber(all_args[3 * c]), tonumber(all_args[3 * c + 1])
  KEYS = {unpack(all_keys, ki + 1, ki + nk)}
  ARGV = {unpack(all_args, ai + 1, ai + na)}
  ki, ai = ki + nk, ai + na
  local ok, r = pcall(ops[op])
  if ok then
    out[c] = r
  elseif type(r) == 'table' and r.err then
    out[c] = r
  else
    out[c] = redis.error_reply(tostring(r))
  end
end
-- Even if a call failed: what the others granted and renewed is noted.
flush_state()
return out

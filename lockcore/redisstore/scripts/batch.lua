-- Run several calls of the scripts above in one: each is the script's own
-- body (in ops, which lockproxy builds when it loads this), run with KEYS
-- and ARGV set to that call's, so it behaves exactly as if sent alone.
-- ARGV[1] the number of calls n; then for each call its op, its number of
-- keys and its number of arguments; then every call's arguments, in order.
-- KEYS holds every call's keys, in order.
-- The store-wide state hash is read once and written once for every call
-- (see note_state).
-- Returns one reply per call: the op's own, or an error reply when the op
-- failed (Redis refused one of its commands), which fails that call only.
batched = true
local all_keys, all_args = {}, {}
for i = 1, #KEYS do all_keys[i] = KEYS[i] end
for i = 1, #ARGV do all_args[i] = ARGV[i] end
local n = tonumber(all_args[1])
local ki, ai = 0, 1 + 3 * n
local out = {}
for c = 1, n do
  local op = all_args[3 * c - 1]
  local nk, na = tonumber(all_args[3 * c]), tonumber(all_args[3 * c + 1])
  for i = #KEYS, 1, -1 do KEYS[i] = nil end
  for i = #ARGV, 1, -1 do ARGV[i] = nil end
  for i = 1, nk do KEYS[i] = all_keys[ki + i] end
  for i = 1, na do ARGV[i] = all_args[ai + i] end
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

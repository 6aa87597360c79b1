-- Report a lock's holder without changing anything.
-- KEYS[1] lock key, KEYS[2] fence key
-- Returns {token or false, pttl, last fence or false}.
return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1]), redis.call('HGET', KEYS[2], 'fence')}

-- Report a lock's holder without changing anything.
-- Returns {token or false, pttl, last fence or false, queued waiters}.
return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1]), redis.call('HGET', KEYS[2], 'fence'),
  redis.call('ZCARD', KEYS[3])}

// LockClient and Lock through require('lockproxy') (the CommonJS build),
// against the sidecar at LOCKPROXY_URL.
'use strict';

const assert = require('node:assert/strict');
const { test } = require('node:test');

const {
  LockClient,
  Lock,
  LockError,
  LockAcquisitionError,
  LockNotOwnedError,
  LockExtensionError,
  LockExpiredError,
} = require('lockproxy');
const { url, adminPassword, uniquePrefix, sleep, waitFor, abortedWithin } = require('./helpers.cjs');

const TOKEN = /^([1-9][0-9]*):[0-9a-f]{16}\.[0-9a-f]{32}$/;

// client makes a LockClient with a key prefix of this test's own, closed
// when the test ends.
function client(t, options = {}) {
  const c = new LockClient({ url, keyPrefix: uniquePrefix(t.name.slice(0, 20).replace(/\W+/g, '-')), ...options });
  t.after(() => c.close());
  return c;
}

test('acquire gives a Lock with key, token, fence, ttl and acquiredAt; release frees it, and is idempotent', async (t) => {
  const c = client(t);
  const before = Date.now();
  const lock = await c.acquire('order:1', { ttl: 5000 });
  assert.ok(lock instanceof Lock);
  assert.match(lock.key, /:order:1$/);
  assert.match(lock.token, TOKEN);
  assert.equal(lock.fence, BigInt(TOKEN.exec(lock.token)[1]));
  assert.equal(typeof lock.fence, 'bigint');
  assert.equal(lock.ttl, 5000);
  assert.ok(lock.acquiredAt instanceof Date && lock.acquiredAt.getTime() >= before);
  assert.ok(lock.expiresAt.getTime() >= before + 5000);
  assert.equal(lock.isAutoRenewing, true);
  assert.equal(lock.mode, 'owned');
  assert.equal(lock.signal.aborted, false);
  assert.equal(await lock.isHeld(), true);
  assert.equal(await c.isLocked('order:1'), true);
  const info = await c.info('order:1');
  assert.equal(info.held, true);
  assert.equal(info.fence, lock.fence);
  assert.equal(info.kind, 'exclusive');

  await lock.release();
  assert.equal(await c.isLocked('order:1'), false);
  assert.equal(await lock.isHeld(), false);
  await lock.release(); // again: nothing happens
  await Promise.all([lock.release(), lock.release()]);
  assert.equal(lock.signal.aborted, false, 'a release is not a loss');
});

test('fences rise with each new holder, across clients', async (t) => {
  const prefix = uniquePrefix('fences');
  const c1 = client(t, { keyPrefix: prefix });
  const c2 = client(t, { keyPrefix: prefix });
  let last = 0n;
  for (let i = 0; i < 6; i++) {
    const lock = await (i % 2 ? c1 : c2).acquire('fenced');
    assert.ok(lock.fence > last, `fence ${lock.fence} after ${last}`);
    last = lock.fence;
    await lock.release();
  }
});

test('acquire waits in the sidecar queue and gets the lock at its release', async (t) => {
  const prefix = uniquePrefix('handoff');
  const holder = client(t, { keyPrefix: prefix });
  const waiter = client(t, { keyPrefix: prefix });
  const first = await holder.acquire('job');
  setTimeout(() => void first.release(), 200);
  const start = Date.now();
  const second = await waiter.acquire('job', { waitTimeout: 10000 });
  const waited = Date.now() - start;
  assert.ok(waited >= 150, `waited ${waited} ms, the holder released after 200`);
  assert.ok(waited < 5000, `waited ${waited} ms for a lock released after 200`);
  assert.ok(second.fence > first.fence);
  await second.release();
});

test('acquire rejects with LockAcquisitionError when the wait runs out; tryAcquire gives null', async (t) => {
  const prefix = uniquePrefix('timeout');
  const holder = client(t, { keyPrefix: prefix });
  const other = client(t, { keyPrefix: prefix });
  const lock = await holder.acquire('busy');

  let start = Date.now();
  const err = await other.acquire('busy', { waitTimeout: 300 }).then(
    () => assert.fail('acquired a held lock'),
    (e) => e,
  );
  const waited = Date.now() - start;
  assert.ok(err instanceof LockAcquisitionError, String(err));
  assert.ok(err instanceof LockError);
  assert.equal(err.code, 'LOCK_ACQUISITION_TIMEOUT');
  assert.equal(err.reason, 'timeout');
  assert.equal(err.lockKey, 'busy');
  assert.equal(err.name, 'LockAcquisitionError');
  assert.ok(waited >= 250, `gave up after ${waited} ms of a 300 ms wait`);

  // No waitTimeout: the default wait, 700 ms (@nestjs-redisx/locks' retries).
  start = Date.now();
  await assert.rejects(other.acquire('busy'), { code: 'LOCK_ACQUISITION_TIMEOUT' });
  assert.ok(Date.now() - start >= 600, `default wait was ${Date.now() - start} ms`);

  await assert.rejects(other.acquire('busy', { waitTimeout: 0 }), {
    name: 'LockAcquisitionError',
    code: 'LOCK_ACQUISITION_FAILED',
    reason: 'held',
  });
  assert.equal(await other.tryAcquire('busy'), null);
  assert.equal(await lock.isHeld(), true, 'the holder was not disturbed');
  await lock.release();
  const mine = await other.tryAcquire('busy');
  assert.ok(mine);
  await mine.release();
});

test('withLock runs fn under the lock, gives it the lock, returns its result and releases', async (t) => {
  const c = client(t);
  const result = await c.withLock('w', async (lock) => {
    assert.ok(lock instanceof Lock);
    assert.equal(await c.isLocked('w'), true);
    return `fence ${lock.fence}`;
  });
  assert.match(result, /^fence \d+$/);
  assert.equal(await c.isLocked('w'), false);
  // fn may be synchronous, and take no argument, as in @nestjs-redisx/locks.
  assert.equal(await c.withLock('w', () => 42, { ttl: 2000 }), 42);
});

test('withLock releases the lock when fn throws, and rejects with fn\'s error', async (t) => {
  const c = client(t);
  const boom = new Error('boom');
  await assert.rejects(
    c.withLock('x', async () => {
      await sleep(10);
      throw boom;
    }),
    (err) => err === boom,
  );
  assert.equal(await c.isLocked('x'), false);
  const lock = await c.tryAcquire('x');
  assert.ok(lock, 'the lock is free again');
  await lock.release();
});

test('each owned lock has a connection of its own: no reentrancy, and one release frees one lock', async (t) => {
  const c = client(t);
  const a = await c.acquire('a');
  const b = await c.acquire('b');
  // The same client asking again contends like anyone: its new connection
  // does not hold the lock.
  assert.equal(await c.tryAcquire('a'), null);
  await a.release();
  assert.equal(await b.isHeld(), true);
  assert.equal(await c.isLocked('a'), false);
  assert.equal(await c.isLocked('b'), true);
  await b.release();
});

test('signal aborts when the lock is lost (MAXHOLD), and the lock then refuses extend and release', async (t) => {
  const c = client(t);
  const lock = await c.acquire('capped', { ttl: 600, maxHold: 300 });
  const took = await abortedWithin(lock.signal, 5000);
  assert.ok(took >= 200, `aborted after ${took} ms of a 300 ms MAXHOLD`);
  assert.ok(lock.signal.reason instanceof LockExpiredError, String(lock.signal.reason));
  assert.equal(lock.signal.reason.code, 'LOCK_EXPIRED');
  assert.equal(lock.lost, true);
  assert.equal(await lock.isHeld(), false);
  assert.equal(await c.isLocked('capped'), false);
  await assert.rejects(lock.extend(1000), (e) => e instanceof LockExtensionError && e.code === 'LOCK_EXTENSION_FAILED');
  await assert.rejects(lock.release(), (e) => e instanceof LockNotOwnedError && e.code === 'LOCK_NOT_OWNED');
  await lock.release(); // settled: nothing more
});

test('withLock rejects with LockExpiredError when the lock is lost before fn returns', async (t) => {
  const c = client(t);
  let ran = false;
  await assert.rejects(
    c.withLock(
      'lost',
      async (lock) => {
        await abortedWithin(lock.signal, 5000);
        ran = true;
        return 'done';
      },
      { ttl: 600, maxHold: 200 },
    ),
    (e) => e instanceof LockExpiredError && e.code === 'LOCK_EXPIRED' && e.lockKey.endsWith(':lost'),
  );
  assert.ok(ran);
});

test('extend sets the ttl the sidecar renews with; after release it is LockNotOwnedError', async (t) => {
  const c = client(t);
  const lock = await c.acquire('ext', { ttl: 1000 });
  await lock.extend(8000);
  assert.equal(lock.ttl, 8000);
  const info = await c.info('ext');
  assert.ok(info.ttl > 2000, `ttl after extend(8000): ${info.ttl}`);
  await lock.release();
  await assert.rejects(lock.extend(1000), (e) => e instanceof LockNotOwnedError);
});

test('forceRelease without adminPassword is a clear error', async (t) => {
  const c = client(t);
  await assert.rejects(c.forceRelease('k'), /forceRelease\(\) needs the adminPassword option/);
});

test('forceRelease (admin) revokes the holder: its signal aborts', { skip: !adminPassword && 'LOCKPROXY_ADMIN_PASSWORD is not set' }, async (t) => {
  const prefix = uniquePrefix('force');
  const holder = client(t, { keyPrefix: prefix });
  const admin = client(t, { keyPrefix: prefix, adminPassword });
  const lock = await holder.acquire('stuck', { ttl: 900 });
  assert.equal(await admin.forceRelease('stuck'), true);
  await abortedWithin(lock.signal, 5000);
  assert.ok(lock.signal.reason instanceof LockExpiredError);
  assert.equal(await holder.isLocked('stuck'), false);
  assert.equal(await admin.forceRelease('stuck'), false, 'nobody holds it now');
  await assert.rejects(lock.release(), LockNotOwnedError);
});

test('pooled mode: DETACHED locks, released by token over a shared connection', async (t) => {
  const prefix = uniquePrefix('pooled');
  const pooled = client(t, { keyPrefix: prefix, mode: 'pooled' });
  const owned = client(t, { keyPrefix: prefix });
  assert.equal(pooled.mode, 'pooled');

  const lock = await pooled.acquire('d', { ttl: 5000 });
  assert.equal(lock.mode, 'detached');
  assert.equal(lock.isAutoRenewing, false);
  assert.equal(await lock.isHeld(), true);
  assert.equal(await owned.isLocked('d'), true);
  // A second acquire through the same shared connection contends.
  assert.equal(await pooled.tryAcquire('d'), null);
  await lock.extend(6000);
  assert.equal(lock.ttl, 6000);

  // A waiter in pooled mode waits on a connection of its own and gets it at
  // the release.
  setTimeout(() => void lock.release(), 150);
  const next = await pooled.acquire('d', { waitTimeout: 10000, ttl: 300 });
  assert.ok(next.fence > lock.fence);
  // Nothing renews a DETACHED lock: it ends with its ttl.
  const took = await abortedWithin(next.signal, 5000);
  assert.ok(took >= 150, `aborted after ${took} ms of a 300 ms ttl`);
  await waitFor('the detached lock expired', async () => !(await owned.isLocked('d')));
  await assert.rejects(next.release(), LockNotOwnedError);
});

test('autoRenew: false takes a DETACHED lock in owned mode; maxHold with it is an error', async (t) => {
  const c = client(t);
  const lock = await c.acquire('det', { autoRenew: false, ttl: 5000 });
  assert.equal(lock.mode, 'detached');
  await lock.release();
  assert.equal(await c.isLocked('det'), false);
  await assert.rejects(c.acquire('det', { autoRenew: false, maxHold: 100 }), TypeError);
});

test('errors of the sidecar are thrown as they are, not as LockAcquisitionError', async (t) => {
  const c = client(t);
  const err = await c.acquire('bad', { ttl: 1 }).then(
    () => assert.fail('acquired with a 1 ms ttl'),
    (e) => e,
  );
  assert.ok(!(err instanceof LockAcquisitionError));
  assert.match(err.message, /invalid ttl/);
  await assert.rejects(c.acquire('bad', { ttl: -5 }), TypeError);
});

test('close releases the locks still held and refuses new ones', async (t) => {
  const prefix = uniquePrefix('close');
  const c = new LockClient({ url, keyPrefix: prefix });
  const watcher = client(t, { keyPrefix: prefix });
  const lock = await c.acquire('held');
  assert.equal(await watcher.isLocked('held'), true);
  await c.close();
  assert.equal(await watcher.isLocked('held'), false);
  await assert.rejects(c.acquire('held'), /closed/);
  await lock.release(); // already released by close: nothing happens
});

test('maxIdleConnections keeps released connections for the next locks', async (t) => {
  const c = client(t, { maxIdleConnections: 1 });
  for (let i = 0; i < 5; i++) {
    const lock = await c.acquire('reuse');
    assert.equal(await lock.isHeld(), true);
    await lock.release();
  }
  // A lost lock's connection is not kept.
  const lost = await c.acquire('reuse', { ttl: 300, maxHold: 100 });
  await abortedWithin(lost.signal, 5000);
  await assert.rejects(lost.release(), LockNotOwnedError);
  const again = await c.acquire('reuse');
  await again.release();
});

test('the error classes carry @nestjs-redisx/locks\' codes', () => {
  const cases = [
    [new LockAcquisitionError('k', 'timeout'), 'LOCK_ACQUISITION_TIMEOUT'],
    [new LockAcquisitionError('k', 'held'), 'LOCK_ACQUISITION_FAILED'],
    [new LockNotOwnedError('k', 't'), 'LOCK_NOT_OWNED'],
    [new LockExtensionError('k', 't'), 'LOCK_EXTENSION_FAILED'],
    [new LockExpiredError('k'), 'LOCK_EXPIRED'],
  ];
  for (const [err, code] of cases) {
    assert.equal(err.code, code);
    assert.equal(err.lockKey, 'k');
    assert.ok(err instanceof LockError && err instanceof Error);
    assert.equal(err.toJSON().code, code);
  }
  assert.ok(!(new LockNotOwnedError('k', 't') instanceof LockAcquisitionError));
  assert.equal(new LockNotOwnedError('k', 't').toJSON().token, 't');
});

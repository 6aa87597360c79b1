// import … from 'lockproxy' (the ES module build), and the same package
// through require() in one process: both builds work, and share what must be
// shared (the LOCK_SERVICE symbol, @WithLock's registry, instanceof).
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';

import * as esm from 'lockproxy';
import { LockClient, LockAcquisitionError, LockError, LOCK_SERVICE, WithLock, LockproxyModule } from 'lockproxy';

const require = createRequire(import.meta.url);
const cjs = require('lockproxy');
const { url, uniquePrefix } = require('./helpers.cjs');

test('the ES module build exports what the CommonJS build does', () => {
  assert.deepEqual(Object.keys(esm).sort(), Object.keys(cjs).sort());
  for (const name of ['LockClient', 'Lock', 'LockproxyModule', 'WithLock', 'LOCK_SERVICE', 'LockAcquisitionError']) {
    assert.ok(name in esm, name);
  }
  assert.notEqual(esm.LockClient, cjs.LockClient, 'two builds, two copies');
  assert.equal(LOCK_SERVICE, cjs.LOCK_SERVICE);
  assert.equal(LOCK_SERVICE, Symbol.for('LOCK_SERVICE'));
  assert.equal(typeof WithLock, 'function');
  assert.equal(typeof LockproxyModule.forRoot, 'function');
});

test('a LockClient from the ES module build takes and releases locks', async (t) => {
  const c = new LockClient({ url, keyPrefix: uniquePrefix('esm') });
  t.after(() => c.close());
  const lock = await c.acquire('m', { ttl: 3000 });
  assert.equal(typeof lock.fence, 'bigint');
  assert.equal(await c.isLocked('m'), true);
  const err = await c.acquire('m', { waitTimeout: 50 }).catch((e) => e);
  assert.ok(err instanceof LockAcquisitionError);
  // instanceof holds across the two builds.
  assert.ok(err instanceof cjs.LockAcquisitionError);
  assert.ok(err instanceof cjs.LockError && err instanceof LockError);
  assert.ok(!(err instanceof cjs.LockNotOwnedError));
  assert.ok(new cjs.LockExpiredError('k') instanceof esm.LockExpiredError);
  await lock.release();
  assert.equal(await c.isLocked('m'), false);
});

test('@WithLock from one build uses a service registered through the other', async (t) => {
  const service = cjs.createLockService({ url, keyPrefix: uniquePrefix('esm-withlock') });
  t.after(() => service.close());
  class Jobs {
    async run(id) {
      return service.isLocked(`job:${id}`);
    }
  }
  const d = Object.getOwnPropertyDescriptor(Jobs.prototype, 'run');
  Object.defineProperty(Jobs.prototype, 'run', WithLock({ key: 'job:{0}' })(Jobs.prototype, 'run', d));
  assert.equal(await new Jobs().run('7'), true, 'the method ran under the lock');
  await service.close();
  await assert.rejects(new Jobs().run('7'), /no lock service/);
});

// The compatibility scenario for ioredis, run by compat/scenario_test.go
// with LOCKPROXY_ADDR=host:port. Regions between "snippet:begin" and
// "snippet:end" are quoted in docs/clients.md.
'use strict';

const Redis = require('ioredis');
const { assert, host, port, fenceOf, infoFields, waitUntil, runSteps, LockBusy } = require('./harness');

// snippet:begin ioredis-owned
// One Redis instance is one connection, and the lock belongs to it: give
// each holder an instance of its own (a WAIT also holds up every other
// command queued on that connection).
async function withLock(name, work, options) {
  const conn = new Redis(options);
  try {
    const token = await conn.call('LOCK.ACQUIRE', name, 30000, 'WAIT', 5000);
    if (token === null) throw new LockBusy(name); // held for the whole WAIT
    try {
      return await work(BigInt(token.split(':')[0])); // pass the fence on
    } finally {
      await conn.call('LOCK.RELEASE', name);
    }
  } finally {
    conn.disconnect(); // closing the connection would release it too
  }
}
// snippet:end

const prefix = 'ioredis:';
const r = new Redis({ host, port }); // the defaults, but for the address
const info = async (c, name) => infoFields(await c.call('LOCK.INFO', name));
const name = prefix + 'a';

runSteps(
  [
    ['handshake', async () => {
      assert.equal(await r.ping(), 'PONG');
      const line = await r.call('CLIENT', 'INFO');
      assert.match(line, / resp=2\s/, `CLIENT INFO = ${line}`);
      assert.match(line, / lib-name=ioredis\s/, `CLIENT INFO = ${line}`);
    }],
    ['acquire-info-held', async () => {
      const token = await r.call('LOCK.ACQUIRE', name, 30000);
      const fence = fenceOf(token);
      const got = await info(r, name);
      assert.ok(Number(got.ttl) > 25000 && Number(got.ttl) <= 30000, `ttl ${got.ttl}`);
      delete got.ttl;
      assert.deepEqual(got, { held: '1', fence: String(fence), owner: 'self', mode: 'owned', waiters: '0', kind: 'exclusive', holders: '1', limit: '0' });
      assert.deepEqual(await r.call('LOCK.HELD'), [name]);
      assert.equal(await r.call('LOCK.ACQUIRE', name, 30000), token, 'acquiring again');
      const other = new Redis({ host, port });
      assert.equal((await info(other, name)).owner, 'other', 'owner from another connection');
      other.disconnect();
    }],
    ['renew', async () => {
      assert.equal(await r.call('LOCK.RENEW', name, 60000), 1);
      assert.ok(Number((await info(r, name)).ttl) > 30000, 'ttl after LOCK.RENEW');
    }],
    ['release', async () => {
      assert.equal(await r.call('LOCK.RELEASE', name), 1);
      assert.equal(await r.call('LOCK.RELEASE', name), 0, 'second LOCK.RELEASE');
      assert.deepEqual(await r.call('LOCK.HELD'), []);
      const got = await info(r, name);
      delete got.fence;
      assert.deepEqual(got, { held: '0', ttl: '-2', owner: 'none', waiters: '0', kind: 'none', holders: '0', limit: '0' });
    }],
    ['wait-handoff', async () => {
      const name = prefix + 'w';
      const holderFence = fenceOf(await r.call('LOCK.ACQUIRE', name, 30000));
      const waiter = withLock(name, async (fence) => fence, { host, port });
      await waitUntil('the waiter is queued', async () => (await info(r, name)).waiters === '1');
      const start = Date.now();
      assert.equal(await r.call('LOCK.RELEASE', name), 1, "holder's LOCK.RELEASE");
      const fence = await waiter;
      assert.ok(fence > holderFence, `waiter's fence ${fence} <= holder's ${holderFence}`);
      assert.ok(Date.now() - start < 1000, `hand-off took ${Date.now() - start} ms`);
      assert.equal((await info(r, name)).held, '0', 'released by withLock');
    }],
    ['detached-pooled', async () => {
      const name = prefix + 'd';
      const a = new Redis({ host, port });
      const b = new Redis({ host, port });
      assert.notEqual(await a.client('ID'), await b.client('ID'));
      // snippet:begin ioredis-detached
      // A DETACHED lock is a lease that any connection may release with
      // its token: acquired on one, released on another.
      const token = await a.call('LOCK.ACQUIRE', name, 60000, 'DETACHED');
      if (token === null) throw new LockBusy(name); // someone else holds it
      // ... later, from any connection, of any process:
      const released = await b.call('LOCK.RELEASE', name, token);
      // snippet:end
      fenceOf(token);
      assert.equal(released, 1, 'LOCK.RELEASE with the token from another connection');
      assert.deepEqual(await a.call('LOCK.HELD'), [], 'LOCK.HELD on the acquiring connection');
      assert.equal(await b.call('LOCK.RELEASE', name, token), 0, 'releasing the token again');
      a.disconnect();
      b.disconnect();
    }],
    ['release-on-close', async () => {
      for (const how of ['quit', 'disconnect']) {
        const name = `${prefix}c-${how}`;
        const owner = new Redis({ host, port });
        fenceOf(await owner.call('LOCK.ACQUIRE', name, 30000));
        await owner[how]();
        const start = Date.now();
        fenceOf(await r.call('LOCK.ACQUIRE', name, 30000, 'WAIT', 2000));
        assert.ok(Date.now() - start < 1000, `after ${how}() the lock took ${Date.now() - start} ms to come free`);
        assert.equal(await r.call('LOCK.RELEASE', name), 1);
      }
    }],
    ['lock-lost', async () => {
      // ioredis speaks RESP2 only: no push; a lost lock shows in
      // LOCK.HELD, LOCK.RENEW and LOCK.RELEASE.
      const name = prefix + 'm';
      fenceOf(await r.call('LOCK.ACQUIRE', name, 30000, 'MAXHOLD', 200));
      await waitUntil('the MAXHOLD cap drops the lock', async () => (await r.call('LOCK.HELD')).length === 0);
      assert.equal(await r.call('LOCK.RENEW', name, 30000), 0, 'LOCK.RENEW after the cap');
      assert.equal(await r.ping(), 'PONG');
      const other = new Redis({ host, port });
      // LOCK.HELD drops the lock as the cap's release is sent, a round trip
      // before it lands: wait for it.
      fenceOf(await other.call('LOCK.ACQUIRE', name, 1000, 'DETACHED', 'WAIT', 1000));
      other.disconnect();
    }],
  ],
  async () => r.quit(),
);

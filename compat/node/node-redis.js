// The compatibility scenario for node-redis (the npm package "redis"), run
// by compat/scenario_test.go with LOCKPROXY_ADDR=host:port. Regions between
// "snippet:begin" and "snippet:end" are quoted in docs/clients.md.
'use strict';

const { createClient, createClientPool } = require('redis');
const { assert, host, port, fenceOf, infoFields, waitUntil, runSteps, LockBusy } = require('./harness');

// snippet:begin node-redis-owned
// A node-redis client is one connection that pipelines every caller's
// commands. The lock belongs to that connection, and a WAIT holds up the
// commands queued behind it, so take the lock on a duplicate of its own.
async function withLock(client, name, work) {
  const conn = client.duplicate();
  conn.on('error', (err) => console.error('lock connection:', err));
  await conn.connect();
  try {
    const token = await conn.sendCommand(['LOCK.ACQUIRE', name, '30000', 'WAIT', '5000']);
    if (token === null) throw new LockBusy(name); // held for the whole WAIT
    try {
      return await work(BigInt(token.split(':')[0])); // pass the fence on
    } finally {
      await conn.sendCommand(['LOCK.RELEASE', name]);
    }
  } finally {
    conn.destroy(); // closing the connection would release it too
  }
}
// snippet:end

const prefix = 'node-redis:';
const newClient = () => createClient({ socket: { host, port } }).on('error', (err) => console.error('client:', err));
const info = async (c, name) => infoFields(await c.sendCommand(['LOCK.INFO', name]));
const name = prefix + 'a';
let r;

runSteps(
  [
    ['handshake', async () => {
      r = await newClient().connect(); // the defaults, but for the address: RESP2 in node-redis 5
      assert.equal(await r.ping(), 'PONG');
      const line = String(await r.sendCommand(['CLIENT', 'INFO']));
      assert.match(line, / resp=2\s/, `CLIENT INFO = ${line}`);
      assert.match(line, / lib-name=node-redis\s/, `CLIENT INFO = ${line}`);
    }],
    ['client-info-parsed', async () => {
      // clientInfo() reads the fields of Redis's CLIENT INFO line; a missing
      // one comes out as NaN.
      const got = await r.clientInfo();
      assert.equal(got.resp, 2);
      const missing = ['fd', 'sub', 'psub', 'multi', 'qbufFree', 'argvMem', 'obl', 'oll', 'omem', 'totMem']
        .filter((k) => Number.isNaN(got[k]));
      assert.ok(missing.length === 0, `clientInfo() fields that are NaN: ${missing.join(', ')}`);
    }],
    ['acquire-info-held', async () => {
      const token = await r.sendCommand(['LOCK.ACQUIRE', name, '30000']);
      const fence = fenceOf(token);
      const got = await info(r, name);
      assert.ok(Number(got.ttl) > 25000 && Number(got.ttl) <= 30000, `ttl ${got.ttl}`);
      delete got.ttl;
      assert.deepEqual(got, { held: '1', fence: String(fence), owner: 'self', mode: 'owned', waiters: '0', kind: 'exclusive', holders: '1', limit: '0' });
      assert.deepEqual(await r.sendCommand(['LOCK.HELD']), [name]);
      assert.equal(await r.sendCommand(['LOCK.ACQUIRE', name, '30000']), token, 'acquiring again');
      const other = await newClient().connect();
      assert.equal((await info(other, name)).owner, 'other', 'owner from another connection');
      other.destroy();
    }],
    ['renew', async () => {
      assert.equal(await r.sendCommand(['LOCK.RENEW', name, '60000']), 1);
      assert.ok(Number((await info(r, name)).ttl) > 30000, 'ttl after LOCK.RENEW');
    }],
    ['release', async () => {
      assert.equal(await r.sendCommand(['LOCK.RELEASE', name]), 1);
      assert.equal(await r.sendCommand(['LOCK.RELEASE', name]), 0, 'second LOCK.RELEASE');
      assert.deepEqual(await r.sendCommand(['LOCK.HELD']), []);
      const got = await info(r, name);
      delete got.fence;
      assert.deepEqual(got, { held: '0', ttl: '-2', owner: 'none', waiters: '0', kind: 'none', holders: '0', limit: '0' });
    }],
    ['wait-handoff', async () => {
      const name = prefix + 'w';
      const holderFence = fenceOf(await r.sendCommand(['LOCK.ACQUIRE', name, '30000']));
      const waiter = withLock(r, name, async (fence) => fence);
      await waitUntil('the waiter is queued', async () => (await info(r, name)).waiters === '1');
      const start = Date.now();
      assert.equal(await r.sendCommand(['LOCK.RELEASE', name]), 1, "holder's LOCK.RELEASE");
      const fence = await waiter;
      assert.ok(fence > holderFence, `waiter's fence ${fence} <= holder's ${holderFence}`);
      assert.ok(Date.now() - start < 1000, `hand-off took ${Date.now() - start} ms`);
      assert.equal((await info(r, name)).held, '0', 'released by withLock');
    }],
    ['detached-pooled', async () => {
      const name = prefix + 'd';
      const pool = createClientPool({ socket: { host, port } }, { minimum: 2 });
      pool.on('error', (err) => console.error('pool:', err));
      await pool.connect();
      // snippet:begin node-redis-detached
      // A pool runs each command on whichever connection is free: take a
      // DETACHED lock and release it by its token, from any connection.
      const token = await pool.sendCommand(['LOCK.ACQUIRE', name, '60000', 'DETACHED']);
      if (token === null) throw new LockBusy(name); // someone else holds it
      // ... later, from any connection, of any process:
      const released = await pool.sendCommand(['LOCK.RELEASE', name, token]);
      // snippet:end
      fenceOf(token);
      assert.equal(released, 1, 'LOCK.RELEASE with the token');
      // The same again with the two commands surely on two connections:
      // pool.execute lends one connection for the callback's duration.
      const again = await pool.sendCommand(['LOCK.ACQUIRE', name, '60000', 'DETACHED']);
      await pool.execute(async (a) => {
        const idA = await a.sendCommand(['CLIENT', 'ID']);
        await pool.execute(async (b) => {
          assert.notEqual(await b.sendCommand(['CLIENT', 'ID']), idA, 'two connections');
          assert.equal(await b.sendCommand(['LOCK.RELEASE', name, again]), 1);
          assert.equal(await a.sendCommand(['LOCK.RELEASE', name, again]), 0, 'releasing the token again');
        });
      });
      pool.destroy();
    }],
    ['release-on-close', async () => {
      for (const how of ['close', 'destroy']) {
        const name = `${prefix}c-${how}`;
        const owner = await newClient().connect();
        fenceOf(await owner.sendCommand(['LOCK.ACQUIRE', name, '30000']));
        await owner[how]();
        const start = Date.now();
        fenceOf(await r.sendCommand(['LOCK.ACQUIRE', name, '30000', 'WAIT', '2000']));
        assert.ok(Date.now() - start < 1000, `after ${how}() the lock took ${Date.now() - start} ms to come free`);
        assert.equal(await r.sendCommand(['LOCK.RELEASE', name]), 1);
      }
    }],
    ['lock-lost', async () => {
      // node-redis 5 speaks RESP2 by default, so no push: the lost lock
      // shows in LOCK.HELD, LOCK.RENEW and LOCK.RELEASE, and the
      // connection must stay in step.
      const name = prefix + 'm';
      fenceOf(await r.sendCommand(['LOCK.ACQUIRE', name, '30000', 'MAXHOLD', '200']));
      await waitUntil('the MAXHOLD cap drops the lock', async () => (await r.sendCommand(['LOCK.HELD'])).length === 0);
      assert.equal(await r.sendCommand(['LOCK.RENEW', name, '30000']), 0, 'LOCK.RENEW after the cap');
      assert.equal(await r.ping(), 'PONG');
      const other = await newClient().connect();
      // LOCK.HELD drops the lock as the cap's release is sent, a round trip
      // before it lands: wait for it.
      fenceOf(await other.sendCommand(['LOCK.ACQUIRE', name, '1000', 'DETACHED', 'WAIT', '1000']));
      other.destroy();
    }],
  ],
  async () => r && r.close(),
);

// Locks between processes: mutual exclusion, and an owned lock freed when its
// holder is killed.
'use strict';

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { test } = require('node:test');

const { LockClient } = require('lockproxy');
const { url, uniquePrefix, waitFor } = require('./helpers.cjs');

const worker = path.join(__dirname, 'fixtures', 'worker.cjs');

function run(args) {
  const child = spawn(process.execPath, [worker, ...args], { env: process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (b) => (out += b));
  child.stderr.on('data', (b) => (err += b));
  const done = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal, out, err })));
  return { child, done, output: () => out };
}

test('withLock keeps 4 processes out of each other\'s critical sections', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lockproxy-mutex-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const counter = path.join(dir, 'counter');
  const journal = path.join(dir, 'journal');
  fs.writeFileSync(counter, '0');
  fs.writeFileSync(journal, '');
  const prefix = uniquePrefix('mutex');
  const workers = 4;
  const iterations = 25;

  const results = await Promise.all(
    Array.from({ length: workers }, () => run(['count', prefix, String(iterations), counter, journal]).done),
  );
  for (const r of results) assert.equal(r.code, 0, `a worker failed: ${r.err}`);

  assert.equal(Number(fs.readFileSync(counter, 'utf8')), workers * iterations, 'an increment was lost: two workers overlapped');
  // The journal alternates enter/exit of one process, and fences rise.
  const lines = fs.readFileSync(journal, 'utf8').trim().split('\n');
  assert.equal(lines.length, 2 * workers * iterations);
  let lastFence = 0n;
  for (let i = 0; i < lines.length; i += 2) {
    const [enter, pid, fence] = lines[i].split(' ');
    assert.equal(enter, 'enter', `line ${i + 1}: ${lines[i]}`);
    assert.equal(lines[i + 1], `exit ${pid} ${fence}`, `line ${i + 2}: another process entered while ${pid} held the lock`);
    assert.ok(BigInt(fence) > lastFence, `fence ${fence} after ${lastFence}`);
    lastFence = BigInt(fence);
  }
  const pids = new Set(lines.map((l) => l.split(' ')[1]));
  assert.equal(pids.size, workers);
});

test('an owned lock is free as soon as its holder is killed', async (t) => {
  const prefix = uniquePrefix('killed');
  const holder = run(['hold', prefix]);
  t.after(() => holder.child.kill('SIGKILL'));
  await waitFor('the holder printed its token', () => holder.output().includes('\n'));

  const c = new LockClient({ url, keyPrefix: prefix });
  t.after(() => c.close());
  assert.equal(await c.isLocked('held'), true);
  assert.equal(await c.tryAcquire('held'), null);

  holder.child.kill('SIGKILL');
  const start = Date.now();
  // Its ttl is 60 s: only the closed connection can free it this soon.
  const lock = await c.acquire('held', { waitTimeout: 10000 });
  assert.ok(Date.now() - start < 5000, `free after ${Date.now() - start} ms`);
  assert.ok(lock.fence > BigInt(holder.output().split(':')[0]));
  await lock.release();
  const r = await holder.done;
  assert.equal(r.signal, 'SIGKILL');
});

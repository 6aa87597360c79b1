// npm run bench: what withLock() costs over raw LOCK.ACQUIRE + LOCK.RELEASE
// on one connection, against one sidecar, in one run.
//
//   LOCKPROXY_URL=redis://127.0.0.1:6380 npm run bench   (a running sidecar)
//   npm run bench                                        (builds ./cmd/lockproxy and runs it on the embedded store)
//
// BENCH_N (default 2000) lock/unlock cycles per round, BENCH_ROUNDS (3)
// rounds; the variants take turns within each round, and the median round
// of each is printed. Uncontended: one key, one caller at a time.
'use strict';

const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');
const { Redis } = require('ioredis');

const { LockClient } = require('lockproxy');

const N = Number(process.env.BENCH_N || 2000);
const ROUNDS = Number(process.env.BENCH_ROUNDS || 3);
const TTL = 30000;

// startSidecar builds lockproxy and runs it on 127.0.0.1:0 with the
// embedded store; it resolves with its URL and a stop function.
async function startSidecar() {
  const repo = path.join(__dirname, '..', '..', '..');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lockproxy-bench-'));
  const bin = path.join(dir, 'lockproxy');
  const build = spawnSync('go', ['build', '-o', bin, './cmd/lockproxy'], { cwd: repo, stdio: 'inherit' });
  if (build.status !== 0) throw new Error('go build ./cmd/lockproxy failed');
  const env = { ...process.env, LOCKPROXY_LISTEN: '127.0.0.1:0', LOCKPROXY_LOG_FORMAT: 'json', LOCKPROXY_UPSTREAM: '' };
  const child = spawn(bin, [], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const addr = await new Promise((resolve, reject) => {
    const lines = readline.createInterface({ input: child.stderr });
    lines.on('line', (line) => {
      try {
        const rec = JSON.parse(line);
        if (rec.msg === 'lockproxy started') resolve(rec.listen);
      } catch {
        // not JSON
      }
    });
    child.on('exit', (code) => reject(new Error(`lockproxy exited (${code}) during start-up`)));
  });
  const stop = () => {
    child.kill('SIGTERM');
    fs.rmSync(dir, { recursive: true, force: true });
  };
  return { url: `redis://${addr}`, stop };
}

async function time(fn) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < N; i++) await fn(i);
  return Number(process.hrtime.bigint() - start) / 1e3 / N; // µs per cycle
}

async function main() {
  let url = process.env.LOCKPROXY_URL;
  let stop = () => {};
  if (!url) ({ url, stop } = await startSidecar());
  const prefix = `bench:${process.pid}:`;

  const raw = new Redis(url, { enableReadyCheck: false });
  const owned = new LockClient({ url, keyPrefix: prefix });
  const reuse = new LockClient({ url, keyPrefix: prefix, maxIdleConnections: 1 });
  const pooled = new LockClient({ url, keyPrefix: prefix, mode: 'pooled' });
  const noop = async () => {};

  const variants = [
    ['raw LOCK.ACQUIRE + LOCK.RELEASE, one connection', async () => {
      const token = await raw.call('LOCK.ACQUIRE', `${prefix}raw`, TTL);
      if (token === null) throw new Error('raw: not acquired');
      await raw.call('LOCK.RELEASE', `${prefix}raw`);
    }],
    ['withLock, owned (a new connection per lock; the default)', () => owned.withLock('owned', noop, { ttl: TTL })],
    ['withLock, owned, maxIdleConnections: 1 (connection kept)', () => reuse.withLock('reuse', noop, { ttl: TTL })],
    ['withLock, pooled (DETACHED, shared connection)', () => pooled.withLock('pooled', noop, { ttl: TTL })],
  ];

  // Warm up: JIT, connections, the sidecar's state for each name.
  const n = N;
  for (const [, fn] of variants) for (let i = 0; i < Math.min(200, n); i++) await fn(i);

  const results = variants.map(() => []);
  for (let r = 0; r < ROUNDS; r++) {
    for (let v = 0; v < variants.length; v++) results[v].push(await time(variants[v][1]));
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const base = median(results[0]);
  console.log(`lockproxy at ${url}, node ${process.version}, ${N} cycles x ${ROUNDS} rounds, median round:`);
  for (let v = 0; v < variants.length; v++) {
    const m = median(results[v]);
    const extra = v === 0 ? '' : `  (+${(m - base).toFixed(1)} µs, x${(m / base).toFixed(2)})`;
    console.log(`  ${variants[v][0].padEnd(60)} ${m.toFixed(1).padStart(8)} µs/op${extra}`);
    console.log(`  ${''.padEnd(60)} rounds: ${results[v].map((x) => x.toFixed(1)).join(', ')}`);
  }

  raw.disconnect();
  await Promise.all([owned.close(), reuse.close(), pooled.close()]);
  stop();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

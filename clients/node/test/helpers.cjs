// Shared by the tests: the sidecar they run against (LOCKPROXY_URL, which
// clients/node/node_test.go sets), a key prefix of each test file's own, so
// that files running at once never share a lock name, and small waits.
'use strict';

const crypto = require('node:crypto');

const url = process.env.LOCKPROXY_URL;
if (!url) {
  throw new Error(
    'LOCKPROXY_URL is not set: these tests run against a lockproxy sidecar. Run them with ' +
      '`go test ./clients/node/` (it starts the sidecars), or start one (`go run ./cmd/lockproxy`) ' +
      'and run `LOCKPROXY_URL=redis://127.0.0.1:6380 npm test` in clients/node',
  );
}

// The sidecar's LOCKPROXY_ADMIN_PASSWORD, when it has one.
const adminPassword = process.env.LOCKPROXY_ADMIN_PASSWORD || undefined;

/** A key prefix no other test process uses. */
function uniquePrefix(what) {
  return `test:${what}:${process.pid}:${crypto.randomBytes(4).toString('hex')}:`;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves once cond() is true; rejects after ms. */
async function waitFor(what, cond, ms = 10000) {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting until ${what}`);
    await sleep(10);
  }
}

/** Resolves with how long signal took to abort; rejects after ms. */
function abortedWithin(signal, ms) {
  const start = Date.now();
  if (signal.aborted) return Promise.resolve(0);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`signal not aborted within ${ms} ms`)), ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve(Date.now() - start);
    });
  });
}

module.exports = { url, adminPassword, uniquePrefix, sleep, waitFor, abortedWithin };

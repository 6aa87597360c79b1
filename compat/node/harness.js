// Step runner and checks shared by the Node.js scenarios (ioredis.js,
// node-redis.js), which compat/scenario_test.go runs with
// LOCKPROXY_ADDR=host:port. Each step prints "ok <step>" or
// "FAIL <step>: why"; the process exits 1 when one failed.
'use strict';

const assert = require('node:assert/strict');

const addr = process.env.LOCKPROXY_ADDR || '';
const colon = addr.lastIndexOf(':');
const host = addr.slice(0, colon);
const port = Number(addr.slice(colon + 1));

const TOKEN = /^[1-9][0-9]*:[0-9a-f]{16}\.[0-9a-f]{32}$/;

class LockBusy extends Error {}

// fenceOf checks a token's format and returns its fence, a BigInt: fences
// are int64s, past what a Number holds exactly.
function fenceOf(token) {
  assert.ok(typeof token === 'string' && TOKEN.test(token), `${JSON.stringify(token)} is not a token`);
  return BigInt(token.split(':')[0]);
}

// infoFields turns LOCK.INFO's reply (a flat array in RESP2, an object in
// RESP3) into an object of strings.
function infoFields(reply) {
  const out = {};
  if (Array.isArray(reply)) {
    for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = String(reply[i + 1]);
  } else {
    for (const [k, v] of Object.entries(reply)) out[k] = String(v);
  }
  return out;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitUntil(what, cond) {
  const deadline = Date.now() + 5000;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after 5s waiting until ${what}`);
    await sleep(10);
  }
}

// runSteps runs [name, async fn] pairs in order, each on its own, and
// exits with 1 when one failed.
async function runSteps(steps, cleanup) {
  let failed = false;
  for (const [name, fn] of steps) {
    try {
      await fn();
      console.log(`ok ${name}`);
    } catch (err) {
      failed = true;
      const where = (err.stack || '').split('\n').find((l) => l.includes('/compat/node/') && !l.includes('harness.js'));
      console.log(`FAIL ${name}: ${err.message.replace(/\n/g, ' ')}${where ? ` (${where.trim()})` : ''}`);
    }
  }
  try {
    await cleanup();
  } catch (err) {
    console.log(`cleanup: ${err.message}`);
  }
  process.exit(failed ? 1 : 0);
}

module.exports = { assert, host, port, fenceOf, infoFields, sleep, waitUntil, runSteps, LockBusy };

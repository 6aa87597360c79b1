// Sells stock to 50 concurrent buyers without overselling, with ioredis.
//
// The Node.js version of examples/inventory: a lock per SKU makes each
// read-check-write of that SKU's stock run alone, and buyers of one SKU
// queue for it (WAIT) instead of failing. Each buyer takes an owned lock
// on a connection of its own, so lockproxy renews it while the buyer works
// and releases it if the buyer dies.
//
//   LOCKPROXY_ADDR=127.0.0.1:6380 node examples/inventory/node/inventory.js
//
// It uses the ioredis of compat/node (`make deps`, or
// `npm ci --prefix compat/node`), or one NODE_PATH or your own node_modules
// provides. Exits 1 on an error or an oversell.
'use strict';

const path = require('node:path');

function loadIoredis() {
  try {
    return require('ioredis');
  } catch {
    return require(path.join(__dirname, '..', '..', '..', 'compat', 'node', 'node_modules', 'ioredis'));
  }
}
const Redis = loadIoredis();

// connect returns a client with one connection of its own, to the sidecar
// at LOCKPROXY_ADDR (host:port or unix:/path).
function connect() {
  const addr = process.env.LOCKPROXY_ADDR || '127.0.0.1:6380';
  if (addr.startsWith('unix:')) return new Redis({ path: addr.slice('unix:'.length) });
  const colon = addr.lastIndexOf(':');
  return new Redis({ host: addr.slice(0, colon), port: Number(addr.slice(colon + 1)) });
}

// Stands in for a stock table read and written in separate steps (SELECT,
// then UPDATE): without a lock, two buyers can both read 1 and both sell it.
const stock = new Map([['red-shirt', 10], ['blue-shirt', 5]]);

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// snippet:begin node-buy
// buy sells one unit of sku if any is left, under the SKU's lock, and
// resolves to whether it sold one.
async function buy(sku) {
  const conn = connect(); // a connection of its own: the lock is owned by it
  try {
    const token = await conn.call('LOCK.ACQUIRE', `sku:${sku}`, 30000, 'WAIT', 30000);
    if (token === null) throw new Error(`sku:${sku} still held after 30s`);
    try {
      const n = stock.get(sku);
      if (n === 0) return false; // sold out
      await sleep(1); // the gap between SELECT and UPDATE, where an oversell would happen
      stock.set(sku, n - 1);
      return true;
    } finally {
      await conn.call('LOCK.RELEASE', `sku:${sku}`);
    }
  } finally {
    conn.disconnect(); // closing the connection would release the lock too
  }
}
// snippet:end

async function main() {
  const initial = new Map(stock);
  const skus = [...initial.keys()];
  const sold = new Map(skus.map((sku) => [sku, 0]));
  const buyers = 50;
  await Promise.all(Array.from({ length: buyers }, async (_, i) => {
    const sku = skus[i % skus.length];
    if (await buy(sku)) sold.set(sku, sold.get(sku) + 1);
  }));
  let oversold = false;
  for (const sku of [...skus].sort()) {
    oversold ||= sold.get(sku) > initial.get(sku) || stock.get(sku) !== initial.get(sku) - sold.get(sku);
    console.log(`${sku}: sold ${sold.get(sku)} of ${initial.get(sku)}, ${stock.get(sku)} left, oversold: ${oversold}`);
  }
  process.exitCode = oversold ? 1 : 0;
}

main().catch((err) => {
  console.error('error:', err);
  process.exitCode = 1;
});

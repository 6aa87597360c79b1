// The NestJS application of test/nest (PaymentService, InventoryService and
// docs/migration.md's OrderService, written for @nestjs-redisx/locks) on
// LockproxyModule, compiled by `npm run build:test`.
'use strict';

const assert = require('node:assert/strict');
const { test } = require('node:test');

const { uniquePrefix, sleep } = require('./helpers.cjs');

// The application reads its key prefix when its module is loaded.
process.env.LOCKPROXY_TEST_PREFIX = uniquePrefix('nest');

require('reflect-metadata');
const { NestFactory } = require('@nestjs/core');
const { BadRequestException, ConflictException } = require('@nestjs/common');
const { LOCK_SERVICE, LockClient, LockAcquisitionError, WithLock } = require('lockproxy');

const build = './build/nest';
const { AppModule, AsyncAppModule } = require(`${build}/app.module.js`);
const { PaymentService } = require(`${build}/payment.service.js`);
const { InventoryService } = require(`${build}/inventory.service.js`);
const { OrderService } = require(`${build}/order.service.js`);
const { OrdersRepository, PaymentGateway, InventoryRepository } = require(`${build}/stores.js`);

async function start(t, module = AppModule) {
  const app = await NestFactory.createApplicationContext(module, { logger: false });
  t.after(() => app.close());
  return app;
}

test('@WithLock fails closed: without LockproxyModule the method throws and does not run', async () => {
  const inventory = new InventoryRepository();
  inventory.set('red', 3);
  const service = new InventoryService(inventory);
  await assert.rejects(service.reserveStock('red', 1), /no lock service, so the method did not run/);
  assert.equal(inventory.peek('red'), 3);
});

test('PaymentService: five concurrent payments of one order charge it once', async (t) => {
  const app = await start(t);
  const payments = app.get(PaymentService);
  app.get(OrdersRepository).add({ id: '42', amount: 100, paid: false });

  const results = await Promise.allSettled(Array.from({ length: 5 }, () => payments.processPayment('42')));
  const paid = results.filter((r) => r.status === 'fulfilled');
  const refused = results.filter((r) => r.status === 'rejected');
  assert.equal(paid.length, 1, JSON.stringify(results));
  assert.equal(paid[0].value.orderId, '42');
  for (const r of refused) {
    assert.ok(r.reason instanceof BadRequestException, String(r.reason));
    assert.equal(r.reason.message, 'Already paid');
  }
  assert.equal(app.get(PaymentGateway).charges.length, 1);
  assert.equal(await payments.isBeingProcessed('42'), false);
});

test('PaymentService.refund: {0.orderId} key; onLockFailed makes a ConflictException', async (t) => {
  const app = await start(t);
  const payments = app.get(PaymentService);
  const locks = app.get(LOCK_SERVICE);
  assert.ok(locks instanceof LockClient);

  const held = await locks.acquire('payment:7');
  assert.equal(await payments.isBeingProcessed('7'), true);
  const err = await payments.refund({ orderId: '7', reason: 'duplicate' }).catch((e) => e);
  assert.ok(err instanceof ConflictException, String(err));
  assert.equal(err.message, 'Order payment:7 already being processed');
  assert.deepEqual(app.get(PaymentGateway).refunds, []);
  await held.release();

  await payments.refund({ orderId: '7', reason: 'duplicate' });
  assert.deepEqual(app.get(PaymentGateway).refunds, ['7']);
});

test('InventoryService: 30 buyers of 10 units: 10 sold, none oversold', async (t) => {
  // Without the lock, the same read-check-write oversells: the test can tell.
  const bare = new InventoryRepository();
  bare.set('red-shirt', 10);
  const unlocked = await Promise.all(
    Array.from({ length: 30 }, async () => {
      if ((await bare.getStock('red-shirt')) < 1) return false;
      await bare.decrement('red-shirt', 1);
      return true;
    }),
  );
  assert.ok(unlocked.filter(Boolean).length > 10, 'the unlocked control did not oversell');

  const app = await start(t);
  const inventory = app.get(InventoryService);
  const stock = app.get(InventoryRepository);
  stock.set('red-shirt', 10);
  stock.set('blue-shirt', 5);
  const buys = await Promise.all([
    ...Array.from({ length: 30 }, () => inventory.reserveStock('red-shirt', 1)),
    ...Array.from({ length: 10 }, () => inventory.reserveStock('blue-shirt', 1)),
  ]);
  assert.equal(buys.slice(0, 30).filter(Boolean).length, 10);
  assert.equal(buys.slice(30).filter(Boolean).length, 5);
  assert.equal(stock.peek('red-shirt'), 0);
  assert.equal(stock.peek('blue-shirt'), 0);
});

test('InventoryService.syncInventory: onLockFailed \'skip\' skips while another sync runs', async (t) => {
  const app = await start(t);
  const inventory = app.get(InventoryService);
  // No waitTimeout: the second waits the default 700 ms, then skips.
  const first = inventory.syncInventory(1500);
  await sleep(100);
  assert.equal(await inventory.syncInventory(0), undefined, 'the second sync ran alongside the first');
  assert.equal(await first, 'synced');
  assert.equal(app.get(InventoryRepository).syncs.length, 1);
  assert.equal(await inventory.syncInventory(0), 'synced');
});

test('InventoryService: {0.sku} and key-function keys; onLockFailed default throws LockAcquisitionError', async (t) => {
  const app = await start(t);
  const inventory = app.get(InventoryService);
  const locks = app.get(LOCK_SERVICE);
  app.get(InventoryRepository).set('red', 4);

  const held = await locks.acquire('inventory:red');
  const err = await inventory.adjust({ sku: 'red', delta: 1 }).catch((e) => e);
  assert.ok(err instanceof ConflictException, String(err));
  assert.equal(err.message, 'inventory:red is being updated');
  await held.release();
  assert.equal(await inventory.adjust({ sku: 'red', delta: 1 }), 5);

  let release;
  const counting = inventory.count('red', 'w1', new Promise((resolve) => (release = resolve)));
  await sleep(100);
  assert.equal(await locks.isLocked('inventory:w1:red'), true);
  await assert.rejects(inventory.count('red', 'w1', Promise.resolve()), (e) => {
    return e instanceof LockAcquisitionError && e.code === 'LOCK_ACQUISITION_FAILED' && e.lockKey === 'inventory:w1:red';
  });
  assert.equal(await inventory.count('red', 'w2', Promise.resolve()), 5, 'another warehouse is another lock');
  release();
  assert.equal(await counting, 5);
});

test('OrderService (docs/migration.md): @WithLock and withLock keep charges of one order apart', async (t) => {
  const app = await start(t);
  const orders = app.get(OrderService);
  await Promise.all([
    ...Array.from({ length: 4 }, () => orders.pay('9')),
    ...Array.from({ length: 4 }, () => orders.payByHand('9').catch((e) => e)),
  ]);
  // payByHand waits only the default 700 ms: some may time out, none overlap.
  assert.ok(orders.charged.length >= 4);
  assert.equal(orders.maxInFlight, 1);
});

test('forRootAsync: options from an injected provider', async (t) => {
  const app = await start(t, AsyncAppModule);
  const locks = app.get(LOCK_SERVICE);
  assert.ok(locks instanceof LockClient);
  const lock = await locks.acquire('async');
  assert.equal(lock.ttl, 20000, 'defaultTtl from the factory');
  await lock.release();
  const payments = app.get(PaymentService);
  app.get(OrdersRepository).add({ id: '1', amount: 5, paid: false });
  const results = await Promise.allSettled([payments.processPayment('1'), payments.processPayment('1')]);
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
});

test('an error of the sidecar is thrown, even with onLockFailed \'skip\'', async (t) => {
  await start(t);
  class Broken {
    async run() {
      return 'ran';
    }
  }
  const d = Object.getOwnPropertyDescriptor(Broken.prototype, 'run');
  Object.defineProperty(Broken.prototype, 'run', WithLock({ key: 'broken', ttl: 1, onLockFailed: 'skip' })(Broken.prototype, 'run', d));
  await assert.rejects(new Broken().run(), /invalid ttl/);
});

test('after the application closes, @WithLock fails closed again', async () => {
  const app = await NestFactory.createApplicationContext(AppModule, { logger: false });
  const inventory = app.get(InventoryService);
  app.get(InventoryRepository).set('green', 2);
  assert.equal(await inventory.reserveStock('green', 1), true);
  await app.close();
  await assert.rejects(inventory.reserveStock('green', 1), /no lock service/);
  assert.equal(app.get(InventoryRepository).peek('green'), 1);
});

import type { Redis } from 'ioredis';

import { Connector, DEFAULT_URL, infoFields } from './connection.js';
import { LockAcquisitionError, LockExpiredError, LockNotOwnedError } from './errors.js';
import { Lock, type LockHost, wholeMs } from './lock.js';
import type { ILock, ILockOptions, ILockService, LockClientOptions, LockInfo } from './types.js';

const DEFAULT_TTL = 30000;
const DEFAULT_CHECK_FRACTION = 1 / 3;
const DEFAULT_IDLE = 4;

type Retry = NonNullable<LockClientOptions['retry']>;

// retryWait is how long @nestjs-redisx/locks' retry loop would have slept in
// all: the sidecar's WAIT replaces the loop with one bound.
function retryWait(r: Retry): number {
  const n = r.maxRetries ?? 3;
  const max = r.maxDelay ?? 3000;
  const mul = r.multiplier ?? 2;
  let delay = r.initialDelay ?? 100;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    sum += delay;
    delay = Math.min(delay * mul, max);
  }
  return Math.ceil(sum);
}

/**
 * Distributed locks through a lockproxy sidecar, with @nestjs-redisx/locks'
 * `ILockService` API.
 *
 * In owned mode (the default) each lock gets an ioredis connection of its
 * own: the sidecar renews the lock while that connection is open and
 * releases it the moment it closes, whatever happens to this process. In
 * pooled mode every lock is DETACHED: taken and released by its token over
 * shared connections, and renewed by nobody.
 *
 * close() releases the locks still held and closes every connection.
 */
export class LockClient implements ILockService {
  private readonly connector: Connector;
  private readonly keyPrefix: string;
  private readonly defaultTtl: number;
  private readonly defaultWait: number;
  private readonly retry: Retry;
  private readonly pooled: boolean;
  private readonly adminPassword: string | undefined;
  private readonly maxIdle: number;
  private idle: Redis[] = [];
  private sharedConn: Redis | undefined;
  private adminConn: Redis | undefined;
  private readonly active = new Set<Lock>();
  private readonly waiting = new Set<Redis>(); // connections of acquires in flight
  private closed = false;
  private readonly closers: Array<() => void> = [];
  // What each Lock needs of its client.
  private readonly host: LockHost;

  constructor(options: LockClientOptions = {}) {
    this.connector = new Connector(options.url ?? DEFAULT_URL, options.clientName, options.redisOptions);
    this.keyPrefix = options.keyPrefix ?? '';
    this.defaultTtl = wholeMs(options.defaultTtl ?? DEFAULT_TTL, 'defaultTtl');
    this.retry = options.retry ?? {};
    this.defaultWait =
      options.defaultWaitTimeout !== undefined
        ? wholeMs(options.defaultWaitTimeout, 'defaultWaitTimeout')
        : retryWait(this.retry);
    if (options.mode !== undefined && options.mode !== 'owned' && options.mode !== 'pooled') {
      throw new TypeError(`lockproxy: mode must be 'owned' or 'pooled': got ${String(options.mode)}`);
    }
    this.pooled = options.mode === 'pooled' || (options.mode === undefined && options.autoRenew?.enabled === false);
    this.adminPassword = options.adminPassword;
    const f = options.checkFraction ?? DEFAULT_CHECK_FRACTION;
    if (!(f > 0 && f < 1)) throw new TypeError(`lockproxy: checkFraction must be between 0 and 1: got ${f}`);
    this.maxIdle = options.maxIdleConnections ?? DEFAULT_IDLE;
    this.host = {
      checkFraction: f,
      shared: () => this.shared(),
      recycle: (conn, clean) => this.recycle(conn, clean),
      forget: (lock) => this.active.delete(lock),
    };
  }

  /** 'owned' or 'pooled': see LockClientOptions.mode. */
  get mode(): 'owned' | 'pooled' {
    return this.pooled ? 'pooled' : 'owned';
  }

  /**
   * Acquires the lock, waiting up to `waitTimeout` ms (default: the client's
   * `defaultWaitTimeout`) in the sidecar's queue. Rejects with
   * LockAcquisitionError when the wait ran out (code
   * LOCK_ACQUISITION_TIMEOUT; with `waitTimeout: 0`, LOCK_ACQUISITION_FAILED),
   * and with the sidecar's own error (`UPSTREAM …`, `ERR …`) otherwise.
   */
  async acquire(key: string, options: ILockOptions = {}): Promise<Lock> {
    const wait = this.waitOf(options);
    const lock = await this.take(key, options, wait);
    if (!lock) throw new LockAcquisitionError(key, wait > 0 ? 'timeout' : 'held');
    return lock;
  }

  /** Tries once: the lock, or null when someone holds it or waits for it first. */
  tryAcquire(key: string, options: ILockOptions = {}): Promise<Lock | null> {
    return this.take(key, options, 0);
  }

  /**
   * Acquires the lock, runs fn with it, and releases it, whatever fn did.
   * Rejects with fn's error; with LockExpiredError when fn succeeded but the
   * lock was lost before it returned (pass `lock.signal` on to stop early,
   * and `lock.fence` to what the lock protects); and as acquire() does.
   */
  async withLock<T>(key: string, fn: (lock: Lock) => Promise<T> | T, options: ILockOptions = {}): Promise<T> {
    const lock = await this.acquire(key, options);
    return runLocked(lock, () => fn(lock));
  }

  /** Whether anyone holds the lock (`LOCK.INFO` → held). */
  async isLocked(key: string): Promise<boolean> {
    return (await this.info(key)).held;
  }

  /** `LOCK.INFO` of a key. */
  async info(key: string): Promise<LockInfo> {
    const conn = this.shared();
    let reply: unknown;
    try {
      reply = await conn.call('LOCK.INFO', this.keyPrefix + key);
    } catch (err) {
      throw this.connector.explain(err, conn, `LOCK.INFO ${key}`);
    }
    const f = infoFields(reply);
    return {
      held: f.held === '1',
      fence: BigInt(f.fence ?? '0'),
      ttl: Number(f.ttl ?? -2),
      owner: (f.owner ?? 'none') as LockInfo['owner'],
      waiters: Number(f.waiters ?? 0),
      kind: (f.kind ?? 'none') as LockInfo['kind'],
      holders: Number(f.holders ?? 0),
      limit: Number(f.limit ?? 0),
    };
  }

  /**
   * Revokes every holder of the lock (`LOCK.FORCERELEASE`, admin only): each
   * is told before anyone else can have it, and their `signal` aborts at
   * their next check. Needs the `adminPassword` option. Resolves true when
   * someone held it.
   */
  async forceRelease(key: string): Promise<boolean> {
    if (this.adminPassword === undefined || this.adminPassword === '') {
      throw new Error(
        'lockproxy: forceRelease() needs the adminPassword option (the sidecar\'s LOCKPROXY_ADMIN_PASSWORD): ' +
          'LOCK.FORCERELEASE is admin only. A holder releases its own lock with lock.release(); ' +
          'a crashed holder\'s owned lock is released when its connection closes',
      );
    }
    this.assertOpen();
    const conn = (this.adminConn ??= this.connector.open('admin', this.adminPassword));
    try {
      return Number(await conn.call('LOCK.FORCERELEASE', this.keyPrefix + key)) > 0;
    } catch (err) {
      throw this.connector.explain(err, conn, `LOCK.FORCERELEASE ${key}`);
    }
  }

  /** Releases every lock still held, then closes every connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const f of this.closers.splice(0)) f();
    for (const c of this.waiting) c.disconnect(); // their acquires reject
    await Promise.allSettled([...this.active].map((l) => l.release()));
    for (const c of this.idle.splice(0)) c.disconnect();
    this.sharedConn?.disconnect();
    this.adminConn?.disconnect();
  }

  /** NestJS calls it when the application closes. */
  onModuleDestroy(): Promise<void> {
    return this.close();
  }

  /** Runs f once, when the client closes (LockproxyModule unregisters its service so). */
  onClose(f: () => void): void {
    if (this.closed) f();
    else this.closers.push(f);
  }

  private shared(): Redis {
    this.assertOpen();
    this.sharedConn ??= this.connector.open('shared');
    return this.sharedConn;
  }

  private recycle(conn: Redis, clean: boolean): void {
    if (clean && !this.closed && conn.status === 'ready' && this.idle.length < this.maxIdle) {
      this.idle.push(conn);
    } else {
      conn.disconnect();
    }
  }

  private waitOf(options: ILockOptions): number {
    if (options.waitTimeout !== undefined) return wholeMs(options.waitTimeout, 'waitTimeout');
    if (options.retry !== undefined) return retryWait({ ...this.retry, ...options.retry });
    return this.defaultWait;
  }

  private borrow(): Redis {
    for (let c = this.idle.pop(); c; c = this.idle.pop()) {
      if (c.status === 'ready') return c;
      c.disconnect();
    }
    return this.connector.open('lock');
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('lockproxy: this LockClient is closed');
  }

  private async take(key: string, options: ILockOptions, wait: number): Promise<Lock | null> {
    this.assertOpen();
    const name = this.keyPrefix + key;
    const ttl = options.ttl !== undefined ? wholeMs(options.ttl, 'ttl') : this.defaultTtl;
    const detached = this.pooled || options.autoRenew === false;
    const args: Array<string | number> = [name, ttl];
    if (wait > 0) args.push('WAIT', wait);
    if (options.maxHold !== undefined) {
      if (detached) {
        throw new TypeError(
          'lockproxy: maxHold caps owned locks; a DETACHED lock (autoRenew: false, or pooled mode) lives for its ttl',
        );
      }
      args.push('MAXHOLD', wholeMs(options.maxHold, 'maxHold'));
    }
    if (detached) args.push('DETACHED');

    // An owned lock takes a connection of its own, for as long as it is held;
    // so does a DETACHED acquire that waits, for the wait (a WAIT blocks its
    // connection). Others go over the shared connection.
    const own = !detached || wait > 0;
    const conn = own ? this.borrow() : this.shared();
    const sentAt = Date.now();
    let reply: unknown;
    if (own) this.waiting.add(conn);
    try {
      reply = await conn.call('LOCK.ACQUIRE', ...args);
    } catch (err) {
      if (own) this.recycle(conn, false);
      throw this.connector.explain(err, conn, `LOCK.ACQUIRE ${name}`);
    } finally {
      this.waiting.delete(conn);
    }
    if (reply === null) {
      if (own) this.recycle(conn, true);
      return null;
    }
    if (typeof reply !== 'string' || !/^[1-9][0-9]*:/.test(reply)) {
      if (own) this.recycle(conn, false);
      throw new Error(`lockproxy: LOCK.ACQUIRE answered ${JSON.stringify(reply)}, not a token: is ${this.connector.where} a lockproxy sidecar?`);
    }
    if (detached && own) this.recycle(conn, true);
    // The lease began when the sidecar granted it: after the send, and for a
    // lock that was waited for, just before the reply (at a release).
    const grantedAt = wait > 0 ? Date.now() : sentAt;
    const lock = new Lock(name, reply, ttl, grantedAt, detached ? undefined : conn, this.host);
    this.active.add(lock);
    if (this.closed) {
      // close() ran while this acquire was in flight.
      await lock.release().catch(() => {});
      throw new Error('lockproxy: this LockClient was closed during the acquire');
    }
    return lock;
  }
}

/**
 * Runs fn while lock is held and releases the lock after, as withLock() and
 * @WithLock do: fn's error wins; a lock lost before fn returned turns its
 * success into LockExpiredError. Other release errors are not fn's: the
 * result stands (an owned lock's connection is closed, which releases it).
 */
export async function runLocked<T>(lock: ILock, fn: () => Promise<T> | T): Promise<T> {
  let result: T;
  try {
    result = await fn();
  } catch (err) {
    await lock.release().catch(() => {});
    throw err;
  }
  let releaseErr: unknown;
  try {
    await lock.release();
  } catch (err) {
    releaseErr = err;
  }
  if (lock.signal.aborted) throw lock.signal.reason;
  if (releaseErr instanceof LockNotOwnedError) {
    throw new LockExpiredError(lock.key, 'LOCK.RELEASE answered 0: it was lost before the function returned', releaseErr);
  }
  return result;
}

import type { RedisOptions } from 'ioredis';

/**
 * Options of one acquire: @nestjs-redisx/locks' `ILockOptions`, plus
 * `maxHold`.
 */
export interface ILockOptions {
  /**
   * The lease in ms (default: the client's `defaultTtl`). For an owned lock
   * (the default) the sidecar renews it while the lock's connection is open:
   * it is how long the lock outlives a sidecar that dies, not a hold limit
   * (that is `maxHold`). For a DETACHED lock (`autoRenew: false`, or the
   * client's pooled mode) it is the lock's whole life unless extended.
   */
  ttl?: number;
  /**
   * How long acquire() waits in the sidecar's queue (`LOCK.ACQUIRE … WAIT
   * ms`), in ms. `0`: try once. Default: the client's `defaultWaitTimeout`.
   * tryAcquire() never waits.
   */
  waitTimeout?: number;
  /**
   * `false`: a DETACHED lock, taken and released by its token, not renewed
   * and not released when a connection closes. Default `true` (owned), unless
   * the client is in pooled mode.
   */
  autoRenew?: boolean;
  /**
   * @nestjs-redisx/locks' retry settings. The sidecar's queue replaces the
   * retry loop: when `waitTimeout` is not given, the wait is the sum of the
   * delays these would have slept (3 retries from 100 ms, doubling: 700 ms).
   */
  retry?: {
    maxRetries?: number;
    initialDelay?: number;
  };
  /**
   * Owned locks only: the sidecar releases the lock this many ms after it was
   * acquired, renewals included (`MAXHOLD`), and `Lock.signal` aborts. The
   * equivalent of a lease that is not renewed forever.
   */
  maxHold?: number;
}

/** Options of a LockClient, and of LockproxyModule.forRoot(). */
export interface LockClientOptions {
  /**
   * The sidecar: `redis://[user:password@]host:port` (password: the sidecar's
   * LOCKPROXY_PASSWORD), `rediss://…` (TLS) or `unix:///path/to.sock`.
   * Default `redis://127.0.0.1:6380`.
   */
  url?: string;
  /** The ttl of a lock acquired without one, in ms. Default 30000. */
  defaultTtl?: number;
  /**
   * How long acquire() and @WithLock wait for a lock by default, in ms.
   * Default: the sum of the delays of `retry` (700 ms with its defaults).
   */
  defaultWaitTimeout?: number;
  /** @nestjs-redisx/locks' retry settings, turned into `defaultWaitTimeout`. */
  retry?: {
    maxRetries?: number;
    initialDelay?: number;
    maxDelay?: number;
    multiplier?: number;
  };
  /**
   * Prepended to every key to make the lock's name at the sidecar (which
   * adds its own LOCKPROXY_KEY_PREFIX in Redis). Default `''`.
   */
  keyPrefix?: string;
  /**
   * The sidecar's LOCKPROXY_ADMIN_PASSWORD. forceRelease() needs it: it
   * sends `LOCK.FORCERELEASE` on a connection of its own that did
   * `AUTH admin <password>`.
   */
  adminPassword?: string;
  /**
   * `'owned'` (default): each lock on a connection of its own, renewed by the
   * sidecar while it is open and released when it closes. `'pooled'`: every
   * lock DETACHED, released by its token over shared connections (see the
   * README for what that gives up).
   */
  mode?: 'owned' | 'pooled';
  /**
   * @nestjs-redisx/locks' autoRenew settings: `enabled: false` is
   * `mode: 'pooled'`. `intervalFraction` is the sidecar's
   * LOCKPROXY_RENEW_FRACTION and is ignored here.
   */
  autoRenew?: {
    enabled?: boolean;
    intervalFraction?: number;
  };
  /**
   * How often a held lock is checked (LOCK.HELD on its connection; LOCK.INFO
   * for a DETACHED one), as a fraction of its ttl. A failed check aborts
   * `Lock.signal`. Default 1/3.
   */
  checkFraction?: number;
  /**
   * How many idle connections to keep for later locks (default 4): opening
   * one per lock costs more than the lock. A connection is kept only when
   * its release answered 1, so it holds nothing; 0 closes each lock's
   * connection at its release.
   */
  maxIdleConnections?: number;
  /** CLIENT SETNAME for every connection: LOCK.LIST shows it for holders. */
  clientName?: string;
  /**
   * More ioredis options for every connection (tls, connectTimeout, …).
   * Reconnection is always off for a lock's own connection: a new connection
   * would not hold its lock.
   */
  redisOptions?: RedisOptions;
}

/** What `LOCK.INFO` tells about a lock name. */
export interface LockInfo {
  held: boolean;
  /** The holder's fence; when free, the last one issued (or 0). */
  fence: bigint;
  /** ms left, -2 when free. */
  ttl: number;
  owner: 'self' | 'other' | 'none';
  waiters: number;
  kind: 'exclusive' | 'shared' | 'semaphore' | 'none';
  holders: number;
  limit: number;
}

/** An acquired lock: @nestjs-redisx/locks' `ILock`, plus `fence` and `signal`. */
export interface ILock {
  /** The lock's name at the sidecar: the client's keyPrefix and the key. */
  readonly key: string;
  /** LOCK.ACQUIRE's reply, `<fence>:<random>`. */
  readonly token: string;
  /** The fencing token: larger for each new holder of the name. */
  readonly fence: bigint;
  readonly ttl: number;
  readonly acquiredAt: Date;
  readonly expiresAt: Date;
  readonly isAutoRenewing: boolean;
  /** Aborted, with a LockExpiredError, when the lock is found lost. */
  readonly signal: AbortSignal;
  release(): Promise<void>;
  extend(ttl: number): Promise<void>;
  isHeld(): Promise<boolean>;
  stopAutoRenew(): void;
}

/** @nestjs-redisx/locks' `ILockService`, which LockClient implements. */
export interface ILockService {
  acquire(key: string, options?: ILockOptions): Promise<ILock>;
  tryAcquire(key: string, options?: ILockOptions): Promise<ILock | null>;
  withLock<T>(key: string, fn: (lock: ILock) => Promise<T> | T, options?: ILockOptions): Promise<T>;
  isLocked(key: string): Promise<boolean>;
  forceRelease(key: string): Promise<boolean>;
}

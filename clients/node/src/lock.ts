import type { Redis } from 'ioredis';

import { infoFields } from './connection.js';
import { LockExpiredError, LockExtensionError, LockNotOwnedError } from './errors.js';
import type { ILock } from './types.js';

/** What a Lock needs from the client that acquired it. */
export interface LockHost {
  /** The shared connection, for DETACHED locks' RENEW, RELEASE and INFO. */
  shared(): Redis;
  /** Takes back a lock's connection: kept idle when clean, else closed. */
  recycle(conn: Redis, clean: boolean): void;
  /** The lock is settled: released, or given up. */
  forget(lock: Lock): void;
  readonly checkFraction: number;
}

/** The shortest pause between two checks of a held lock. */
const MIN_CHECK_MS = 10;

/**
 * An acquired lock. An owned lock (the default) has a connection of its own:
 * the sidecar renews the lock while that connection is open and releases it
 * when it closes. A DETACHED lock is released by its token over the client's
 * shared connection and lives until its ttl unless extended.
 */
export class Lock implements ILock {
  readonly key: string;
  readonly token: string;
  readonly fence: bigint;
  readonly acquiredAt: Date;
  /** true for an owned lock, renewed by the sidecar; false for a DETACHED one. */
  readonly isAutoRenewing: boolean;
  readonly signal: AbortSignal;

  private _ttl: number;
  private validFrom: number; // when the lease last began, as far as we know: a lower bound
  private readonly conn: Redis | undefined; // owned locks only
  private readonly host: LockHost;
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private settled = false; // release() was called: no more checks
  private releasing: Promise<void> | undefined;
  private released = false;
  private readonly onClose = (): void => this.lose('its connection to the sidecar closed');

  /** @internal Made by LockClient. */
  constructor(key: string, token: string, ttl: number, grantedAt: number, conn: Redis | undefined, host: LockHost) {
    this.key = key;
    this.token = token;
    this.fence = BigInt(token.slice(0, token.indexOf(':')));
    this.acquiredAt = new Date();
    this._ttl = ttl;
    this.validFrom = grantedAt;
    this.conn = conn;
    this.host = host;
    this.isAutoRenewing = conn !== undefined;
    this.signal = this.controller.signal;
    // The sidecar releases an owned lock when its connection closes.
    conn?.on('close', this.onClose);
    this.schedule();
  }

  /** The ttl: as acquired, or as last extended. */
  get ttl(): number {
    return this._ttl;
  }

  /**
   * When the lease runs out if nothing renews it: for an owned lock, ttl after
   * the last check that found it held (the sidecar renews it, so this keeps
   * moving); for a DETACHED lock, ttl after its acquire or last extend.
   */
  get expiresAt(): Date {
    return new Date(this.validFrom + this._ttl);
  }

  /** 'owned' (renewed on its connection) or 'detached' (by token). */
  get mode(): 'owned' | 'detached' {
    return this.conn ? 'owned' : 'detached';
  }

  /** The lock was found lost (signal aborted). */
  get lost(): boolean {
    return this.signal.aborted;
  }

  /**
   * Releases the lock and, for an owned lock, closes its connection.
   * Idempotent: later calls do nothing, concurrent ones share the first.
   * Rejects with LockNotOwnedError when the sidecar answers that the lock was
   * no longer held (it was lost), and with the sidecar's error otherwise.
   */
  release(): Promise<void> {
    if (this.released) return Promise.resolve();
    this.releasing ??= this.doRelease().finally(() => {
      this.released = true;
    });
    return this.releasing;
  }

  private async doRelease(): Promise<void> {
    this.settled = true;
    this.stopTimer();
    try {
      if (this.conn) {
        this.conn.off('close', this.onClose);
        if (this.lost) {
          this.host.recycle(this.conn, false);
          throw new LockNotOwnedError(this.key, this.token, this.signal.reason);
        }
        let reply: unknown;
        try {
          reply = await this.conn.call('LOCK.RELEASE', this.key);
        } catch (err) {
          this.host.recycle(this.conn, false); // closing it releases the lock
          throw err;
        }
        this.host.recycle(this.conn, isOne(reply));
        if (!isOne(reply)) throw new LockNotOwnedError(this.key, this.token);
      } else {
        const reply = await this.host.shared().call('LOCK.RELEASE', this.key, this.token);
        if (!isOne(reply)) throw new LockNotOwnedError(this.key, this.token);
      }
    } finally {
      this.host.forget(this);
    }
  }

  /**
   * Sets the lock's ttl (`LOCK.RENEW`): for an owned lock, the ttl its
   * renewals use from now on; for a DETACHED one, its new life from now
   * (through another connection than the one that took it, it is lengthened,
   * never shortened). Rejects with LockNotOwnedError after release(), and with
   * LockExtensionError when the lock is no longer held.
   */
  async extend(ttl: number): Promise<void> {
    if (this.settled) throw new LockNotOwnedError(this.key, this.token);
    if (this.lost) throw new LockExtensionError(this.key, this.token, this.signal.reason);
    const ms = wholeMs(ttl, 'ttl');
    const sentAt = Date.now();
    const reply = this.conn
      ? await this.conn.call('LOCK.RENEW', this.key, ms)
      : await this.host.shared().call('LOCK.RENEW', this.key, ms, this.token);
    if (!isOne(reply)) {
      this.lose('LOCK.RENEW answered 0');
      throw new LockExtensionError(this.key, this.token);
    }
    this._ttl = ms;
    this.validFrom = sentAt;
    if (!this.settled) {
      this.stopTimer();
      this.schedule();
    }
  }

  /**
   * Asks the sidecar whether the lock is still held: LOCK.HELD on its
   * connection for an owned lock, LOCK.INFO's fence for a DETACHED one.
   * false after release() or once lost; a false answer aborts `signal`.
   */
  async isHeld(): Promise<boolean> {
    if (this.settled || this.lost) return false;
    const held = await this.ask();
    if (!held && !this.settled) this.lose(this.goneDetail());
    return held && !this.settled;
  }

  /**
   * Not available: the sidecar renews an owned lock for as long as its
   * connection is open. Cap it with `maxHold`, or take it with
   * `autoRenew: false` (DETACHED), whose ttl is its whole life.
   */
  stopAutoRenew(): void {
    throw new Error(
      `lockproxy: stopAutoRenew() is not available: the sidecar renews owned lock "${this.key}" while its connection is open; ` +
        'acquire it with { maxHold } to cap it, or { autoRenew: false } for a DETACHED lock that expires with its ttl',
    );
  }

  private async ask(): Promise<boolean> {
    if (this.conn) {
      const names = (await this.conn.call('LOCK.HELD')) as unknown[];
      return Array.isArray(names) && names.some((n) => String(n) === this.key);
    }
    const info = infoFields(await this.host.shared().call('LOCK.INFO', this.key));
    return info.held === '1' && info.fence === this.fence.toString();
  }

  // schedule sets the next check, a fraction of the ttl from now; for a
  // DETACHED lock, no later than its expiry.
  private schedule(): void {
    if (this.settled || this.lost) return;
    let wait = Math.max(MIN_CHECK_MS, Math.floor(this._ttl * this.host.checkFraction));
    if (!this.conn) wait = Math.min(wait, Math.max(0, this.validFrom + this._ttl - Date.now()));
    this.timer = setTimeout(() => void this.check(), wait);
    this.timer.unref();
  }

  private async check(): Promise<void> {
    this.timer = undefined;
    if (this.settled || this.lost) return;
    if (!this.conn && Date.now() >= this.validFrom + this._ttl) {
      this.lose(`its ttl of ${this._ttl} ms ran out`);
      return;
    }
    const askedAt = Date.now();
    let held: boolean;
    try {
      held = await this.ask();
    } catch (err) {
      if (this.settled) return;
      if (this.conn) {
        // The lock's own connection failed: the sidecar releases the lock.
        this.lose(`checking it failed: ${(err as Error).message}`, err);
      } else {
        this.schedule(); // the shared connection may come back before the ttl runs out
      }
      return;
    }
    if (this.settled) return;
    if (!held) {
      this.lose(this.goneDetail());
      return;
    }
    if (this.conn) this.validFrom = askedAt;
    this.schedule();
  }

  private goneDetail(): string {
    return this.conn
      ? 'LOCK.HELD on its connection no longer lists it (MAXHOLD reached, released by its token or force-released, or the sidecar could not renew it)'
      : 'LOCK.INFO shows another fence or none (released by its token or force-released, or its ttl ran out)';
  }

  private lose(detail: string, cause?: unknown): void {
    this.stopTimer();
    if (this.signal.aborted || this.settled) return;
    this.controller.abort(new LockExpiredError(this.key, detail, cause));
  }

  private stopTimer(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }
}

// isOne reads an integer reply of 1, as a number or, with ioredis'
// stringNumbers, a string.
function isOne(reply: unknown): boolean {
  return reply === 1 || reply === '1';
}

/** A duration for the sidecar: a whole number of ms, at least 0. */
export function wholeMs(value: number, what: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new TypeError(`lockproxy: ${what} must be a number of ms, at least 0: got ${String(value)}`);
  }
  return Math.ceil(value);
}

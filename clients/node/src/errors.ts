// The errors of @nestjs-redisx/locks (packages/locks/src/shared/errors), with
// the same class names, `code` strings (its core ErrorCode values) and fields,
// so that code catching them keeps working.

/** The `code` of every error this package throws for a lock. */
export type LockErrorCode =
  | 'LOCK_ACQUISITION_FAILED'
  | 'LOCK_ACQUISITION_TIMEOUT'
  | 'LOCK_NOT_OWNED'
  | 'LOCK_EXTENSION_FAILED'
  | 'LOCK_EXPIRED';

// KINDS holds, on each error, the names of its classes, so that instanceof
// holds between the CommonJS and the ES module copy of this package when an
// application loads both (the dual package hazard).
const KINDS = Symbol.for('lockproxy.errorKinds');

/** The base class of every lock error: a `code`, and the lock's key. */
export class LockError extends Error {
  readonly code: LockErrorCode;
  readonly lockKey: string;

  constructor(message: string, code: LockErrorCode, lockKey: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = new.target.name;
    this.code = code;
    this.lockKey = lockKey;
    const kinds: string[] = [];
    for (let c: unknown = new.target; typeof c === 'function' && c !== Error; c = Object.getPrototypeOf(c)) {
      kinds.push((c as { name: string }).name);
    }
    Object.defineProperty(this, KINDS, { value: kinds, enumerable: false });
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    if (Function.prototype[Symbol.hasInstance].call(this, value)) return true;
    const kinds = (value as { [KINDS]?: unknown } | null | undefined)?.[KINDS];
    return Array.isArray(kinds) && kinds.includes(this.name);
  }

  toJSON(): Record<string, unknown> {
    return { name: this.name, message: this.message, code: this.code, lockKey: this.lockKey };
  }
}

/**
 * The lock could not be acquired: `reason` is `'timeout'` when a wait ran out
 * (code `LOCK_ACQUISITION_TIMEOUT`), `'held'` when it was taken and no wait
 * was asked for (code `LOCK_ACQUISITION_FAILED`). Errors of the sidecar itself
 * (`-UPSTREAM …`, `-ERR …`) are not wrapped in it: they are not "busy".
 */
export class LockAcquisitionError extends LockError {
  constructor(
    key: string,
    public readonly reason: 'timeout' | 'held' | 'error',
    cause?: unknown,
  ) {
    super(
      `Failed to acquire lock "${key}": ${reason}`,
      reason === 'timeout' ? 'LOCK_ACQUISITION_TIMEOUT' : 'LOCK_ACQUISITION_FAILED',
      key,
      cause,
    );
  }
}

/** release() or extend() of a lock this client no longer holds: released, or lost. */
export class LockNotOwnedError extends LockError {
  constructor(
    key: string,
    public readonly token: string,
    cause?: unknown,
  ) {
    super(`Lock "${key}" not owned by token "${token}"`, 'LOCK_NOT_OWNED', key, cause);
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), token: this.token };
  }
}

/** extend() failed: the sidecar answered that the lock is no longer held. */
export class LockExtensionError extends LockError {
  constructor(
    key: string,
    public readonly token: string,
    cause?: unknown,
  ) {
    super(`Failed to extend lock "${key}"`, 'LOCK_EXTENSION_FAILED', key, cause);
  }

  override toJSON(): Record<string, unknown> {
    return { ...super.toJSON(), token: this.token };
  }
}

/**
 * The lock was lost while held: its MAXHOLD ran out, an operator
 * force-released it, its connection closed, or (DETACHED) its ttl ran out.
 * It is the reason of `Lock.signal`, and withLock() rejects with it when the
 * lock was lost before the function returned.
 */
export class LockExpiredError extends LockError {
  constructor(
    key: string,
    public readonly detail?: string,
    cause?: unknown,
  ) {
    super(`Lock "${key}" expired${detail ? `: ${detail}` : ''}`, 'LOCK_EXPIRED', key, cause);
  }
}

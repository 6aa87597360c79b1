// The NestJS side: LockproxyModule, the LOCK_SERVICE token and @WithLock, as
// @nestjs-redisx/locks has them. Nothing here loads @nestjs/*: the module is
// a plain dynamic module, so `require('lockproxy')` works without NestJS.

import { LockClient, runLocked } from './client.js';
import { LockAcquisitionError } from './errors.js';
import type { ILock, ILockOptions, ILockService, LockClientOptions } from './types.js';

/** The injection token of the lock service: `@Inject(LOCK_SERVICE)`. The same symbol as @nestjs-redisx/locks'. */
export const LOCK_SERVICE: unique symbol = Symbol.for('LOCK_SERVICE');

/** The injection token of LockproxyModule's options. */
export const LOCKPROXY_OPTIONS: unique symbol = Symbol.for('LOCKPROXY_OPTIONS');

/** Where @WithLock keeps its options on the method it wraps (with reflect-metadata). */
export const WITH_LOCK_OPTIONS: unique symbol = Symbol.for('WITH_LOCK_OPTIONS');

// The services @WithLock may use, the last registered first. It lives on
// globalThis so that the CommonJS and the ES module copies of this package
// share it.
const REGISTRY = Symbol.for('lockproxy.lockServices');

function registry(): ILockService[] {
  const g = globalThis as { [REGISTRY]?: ILockService[] };
  return (g[REGISTRY] ??= []);
}

/**
 * Makes service the one @WithLock uses (LockproxyModule does it for its
 * LOCK_SERVICE). Returns a function that takes it back. Without any, a
 * @WithLock method throws instead of running unlocked.
 */
export function registerLockService(service: ILockService): () => void {
  const services = registry();
  services.push(service);
  return () => {
    const i = services.lastIndexOf(service);
    if (i >= 0) services.splice(i, 1);
  };
}

function currentLockService(): ILockService | undefined {
  const services = registry();
  return services[services.length - 1];
}

/** Options of LockproxyModule.forRoot(): a LockClient's, and whether the module is global (default true). */
export interface LockproxyModuleOptions extends LockClientOptions {
  isGlobal?: boolean;
}

/** Options of LockproxyModule.forRootAsync(). */
export interface LockproxyModuleAsyncOptions {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  imports?: any[];
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  inject?: any[];
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  useFactory: (...args: any[]) => LockClientOptions | Promise<LockClientOptions>;
  isGlobal?: boolean;
}

/** A NestJS DynamicModule (written out so that this package needs no @nestjs/common types). */
export interface LockproxyDynamicModule {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  module: new (...args: any[]) => LockproxyModule;
  global: boolean;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  imports: any[];
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  providers: any[];
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  exports: any[];
}

/**
 * Creates the LockClient that LockproxyModule provides as LOCK_SERVICE and
 * registers it for @WithLock until it is closed (NestJS closes it when the
 * application closes).
 */
export function createLockService(options: LockClientOptions): LockClient {
  const client = new LockClient(options);
  client.onClose(registerLockService(client));
  return client;
}

const serviceProvider = {
  provide: LOCK_SERVICE,
  useFactory: (options: LockClientOptions) => createLockService(options),
  inject: [LOCKPROXY_OPTIONS],
};

/**
 * The NestJS module: provides LOCK_SERVICE (a LockClient) and makes
 * @WithLock work.
 *
 *     @Module({ imports: [LockproxyModule.forRoot({ url: 'redis://127.0.0.1:6380' })] })
 *     export class AppModule {}
 */
export class LockproxyModule {
  static forRoot(options: LockproxyModuleOptions = {}): LockproxyDynamicModule {
    const { isGlobal, ...clientOptions } = options;
    return {
      module: LockproxyModule,
      global: isGlobal ?? true,
      imports: [],
      providers: [{ provide: LOCKPROXY_OPTIONS, useValue: clientOptions }, serviceProvider],
      exports: [LOCK_SERVICE, LOCKPROXY_OPTIONS],
    };
  }

  static forRootAsync(options: LockproxyModuleAsyncOptions): LockproxyDynamicModule {
    return {
      module: LockproxyModule,
      global: options.isGlobal ?? true,
      imports: options.imports ?? [],
      providers: [
        { provide: LOCKPROXY_OPTIONS, useFactory: options.useFactory, inject: options.inject ?? [] },
        serviceProvider,
      ],
      exports: [LOCK_SERVICE, LOCKPROXY_OPTIONS],
    };
  }
}

/** @WithLock's options: @nestjs-redisx/locks' `IWithLockOptions`, plus `maxHold`. */
export interface IWithLockOptions {
  /**
   * The lock key: a template, where `{0}` is the first argument and
   * `{0.id}` its `id`, or a function of the arguments.
   */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  key: string | ((...args: any[]) => string);
  ttl?: number;
  waitTimeout?: number;
  autoRenew?: boolean;
  maxHold?: number;
  /**
   * When the lock could not be acquired: `'throw'` the LockAcquisitionError
   * (default), `'skip'` the method and return undefined, or throw the error
   * the function makes. Errors of the sidecar itself always throw.
   */
  onLockFailed?: 'throw' | 'skip' | ((key: string) => Error);
}

/**
 * Runs the method under a lock from the lock service LockproxyModule
 * registered, and releases it after. Without one (no LockproxyModule, or
 * the application closed) the method throws and does not run: it never runs
 * unlocked.
 */
export function WithLock(options: IWithLockOptions): MethodDecorator {
  return (target: object, propertyKey: string | symbol, descriptor: PropertyDescriptor) => {
    const original = descriptor.value as unknown;
    if (typeof original !== 'function') {
      throw new TypeError(`@WithLock decorates methods: ${String(propertyKey)} is not one`);
    }
    const where = `${(target as { constructor?: { name?: string } }).constructor?.name ?? '?'}.${String(propertyKey)}`;
    const lockOptions: ILockOptions = {
      ttl: options.ttl,
      waitTimeout: options.waitTimeout,
      autoRenew: options.autoRenew,
      maxHold: options.maxHold,
    };
    for (const k of Object.keys(lockOptions) as Array<keyof ILockOptions>) {
      if (lockOptions[k] === undefined) delete lockOptions[k];
    }

    const wrapped = async function (this: unknown, ...args: unknown[]): Promise<unknown> {
      const service = currentLockService();
      if (!service) {
        throw new Error(
          `@WithLock on ${where}: no lock service, so the method did not run: import LockproxyModule.forRoot(…) ` +
            '(or forRootAsync) in the application, and call the method once it is initialised and before it is closed',
        );
      }
      const key = buildLockKey(args, options);
      let lock: ILock;
      try {
        lock = await service.acquire(key, lockOptions);
      } catch (err) {
        if (err instanceof LockAcquisitionError) return lockFailed(key, options, err);
        throw err;
      }
      return runLocked(lock, () => (original as (...a: unknown[]) => unknown).apply(this, args));
    };
    Object.defineProperty(wrapped, 'name', { value: (original as { name: string }).name });
    descriptor.value = wrapped;
    const reflect = Reflect as unknown as { defineMetadata?: (k: unknown, v: unknown, t: object) => void };
    reflect.defineMetadata?.(WITH_LOCK_OPTIONS, options, wrapped);
    return descriptor;
  };
}

// buildLockKey fills a key template as @nestjs-redisx/locks does: {n} is the
// n-th argument, {n.prop} its property prop; or calls the key function.
function buildLockKey(args: unknown[], options: IWithLockOptions): string {
  if (typeof options.key === 'function') return options.key(...args);
  return options.key.replace(/\{(\d+)(?:\.(\w+))?\}/g, (_m, index: string, prop: string | undefined) => {
    const arg = args[Number(index)];
    if (prop !== undefined && typeof arg === 'object' && arg !== null) {
      return String((arg as Record<string, unknown>)[prop]);
    }
    return String(arg);
  });
}

function lockFailed(key: string, options: IWithLockOptions, err: LockAcquisitionError): undefined {
  const on = options.onLockFailed ?? 'throw';
  if (on === 'skip') return undefined;
  if (typeof on === 'function') throw on(key);
  throw err;
}

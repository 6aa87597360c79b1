// lockproxy: distributed locks through a lockproxy sidecar, on ioredis.
export { LockClient } from './client.js';
export { Lock } from './lock.js';
export {
  LockError,
  LockAcquisitionError,
  LockNotOwnedError,
  LockExtensionError,
  LockExpiredError,
  type LockErrorCode,
} from './errors.js';
export {
  LockproxyModule,
  LOCK_SERVICE,
  LOCKPROXY_OPTIONS,
  WITH_LOCK_OPTIONS,
  WithLock,
  createLockService,
  registerLockService,
  type IWithLockOptions,
  type LockproxyModuleOptions,
  type LockproxyModuleAsyncOptions,
  type LockproxyDynamicModule,
} from './nestjs.js';
export type { ILock, ILockOptions, ILockService, LockClientOptions, LockInfo } from './types.js';

import { Redis, type RedisOptions } from 'ioredis';

export const DEFAULT_URL = 'redis://127.0.0.1:6380';

/** ioredis options for a lockproxy URL: redis://, rediss:// or unix://. */
export function optionsFromUrl(url: string): RedisOptions {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new TypeError(
      `lockproxy: url ${JSON.stringify(url)} is not a URL: want redis://[user:password@]host:port, rediss://… or unix:///path/to.sock`,
    );
  }
  const o: RedisOptions = {};
  switch (u.protocol) {
    case 'redis:':
    case 'rediss:': {
      const host = u.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1';
      o.host = host;
      o.port = u.port ? Number(u.port) : 6380;
      if (u.protocol === 'rediss:') o.tls = { servername: host };
      const db = u.pathname.replace(/^\//, '');
      if (db !== '') o.db = Number(db);
      break;
    }
    case 'unix:':
      o.path = decodeURIComponent(u.pathname);
      break;
    default:
      throw new TypeError(`lockproxy: url ${JSON.stringify(url)}: want redis://, rediss:// or unix://`);
  }
  if (u.username) o.username = decodeURIComponent(u.username);
  if (u.password) o.password = decodeURIComponent(u.password);
  return o;
}

// Defaults for every connection: no INFO ready check and no CLIENT SETINFO,
// which would each cost a round trip before the first command. A command that
// was sent when a connection dropped is never sent again on a new one: an
// acquire resent could take a lock nobody hears of.
// A command waiting for the shared connection to come back fails after two
// attempts to reconnect, rather than ioredis' twenty. Integers come as
// strings: LOCK.INFO's fence is an int64, past what a Number holds exactly.
const DEFAULTS: RedisOptions = {
  enableReadyCheck: false,
  disableClientInfo: true,
  autoResendUnfulfilledCommands: false,
  maxRetriesPerRequest: 2,
  stringNumbers: true,
};

// A lock's own connection never reconnects: the sidecar released its owned
// lock when it closed, and a new connection would not hold it.
const NO_RECONNECT: RedisOptions = {
  retryStrategy: () => null,
  reconnectOnError: () => false,
  autoResubscribe: false,
  lazyConnect: false,
  enableOfflineQueue: true,
};

export type ConnKind = 'lock' | 'shared' | 'admin';

/** Opens ioredis connections to one sidecar. */
export class Connector {
  /** The sidecar's address, without credentials, for error messages. */
  readonly where: string;
  private readonly base: RedisOptions;
  private readonly lastError = new WeakMap<Redis, Error>();

  constructor(url: string, clientName: string | undefined, extra: RedisOptions | undefined) {
    this.base = { ...DEFAULTS, ...extra, ...optionsFromUrl(url) };
    if (clientName !== undefined) this.base.connectionName = clientName;
    this.where = this.base.path ?? `${this.base.host}:${this.base.port}`;
  }

  /**
   * err as it should reach the caller: a reply of the sidecar (ReplyError:
   * `ERR …`, `UPSTREAM …`) as it is; a failed connection with what failed.
   */
  explain(err: unknown, conn: Redis, what: string): unknown {
    if (err instanceof Error && err.name === 'ReplyError') return err;
    const cause = this.lastError.get(conn)?.message ?? (err instanceof Error ? err.message : String(err));
    return new Error(`lockproxy: ${what}: no answer from the sidecar at ${this.where}: ${cause}`, { cause: err });
  }

  open(kind: ConnKind, adminPassword?: string): Redis {
    const o: RedisOptions = { ...this.base };
    if (kind === 'lock') Object.assign(o, NO_RECONNECT);
    if (kind === 'admin') {
      o.username = 'admin';
      o.password = adminPassword;
    }
    const conn = new Redis(o);
    // Errors reach the commands they fail (see explain); without a listener
    // ioredis would print each one.
    conn.on('error', (err: Error) => this.lastError.set(conn, err));
    return conn;
  }
}

/** LOCK.INFO's reply (a flat field/value array in RESP2) as an object. */
export function infoFields(reply: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (Array.isArray(reply)) {
    for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = String(reply[i + 1]);
  } else if (reply && typeof reply === 'object') {
    for (const [k, v] of Object.entries(reply)) out[k] = String(v);
  }
  return out;
}

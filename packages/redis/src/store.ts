import { randomBytes } from 'node:crypto';
import {
  ConfigurationError,
  type KeyfobLogger,
  redact,
  type StoredToken,
  type TokenStore,
  type TokenStoreLock,
} from '@keyfob/core';
import { commandsFor, type RedisClientLike, type RedisCommands, storeError } from './client.js';
import { open, parseEncryptionKey, seal, tokenFingerprint } from './crypto.js';

export interface RedisTokenStoreOptions {
  /**
   * An ioredis client (`new Redis(...)` or a `Cluster`), or a node-redis v4/v5 client (`createClient()`,
   * connected). The store never connects, quits or reconfigures it: `close()` leaves it open.
   */
  client: RedisClientLike;
  /**
   * Prepended to every key. Defaults to `'keyfob:'`. Token entries are `<prefix>token:{<key>}`,
   * locks `<prefix>lock:{<key>}`: the hash tag `{<key>}` puts the entry and the lock of one cache key
   * in the same Redis Cluster slot, and spreads different keys over the masters. A prefix holding a
   * hash tag of its own (`'{svc}:keyfob:'`) pins every key of the store to one slot.
   */
  prefix?: string | undefined;
  /**
   * Encrypts stored token sets with AES-256-GCM: 32 bytes as a Buffer, 64 hex characters or base64.
   * Entries that do not decrypt with it (another key, tampered, plain text) are treated as missing.
   */
  encryptionKey?: Buffer | Uint8Array | string | undefined;
  /** Where a warning goes when a stored entry is unreadable (wrong key, corrupt). Defaults to none. */
  logger?: KeyfobLogger | undefined;
}

/** Stored value, as JSON. `fp` tells which access token it holds (compare-and-delete) without decrypting `data`. */
interface Envelope {
  v: 1;
  fp: string;
  /** `'A256GCM'` when `data` is the sealed JSON of the token set. */
  enc?: 'A256GCM';
  data: StoredToken | string;
}

/** Deletes KEYS[1] only if it holds the token fingerprinted ARGV[1]. */
const COMPARE_AND_DELETE = `local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local ok, d = pcall(cjson.decode, v)
if ok and type(d) == 'table' and d['fp'] == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/** Releases a lock only if this process still owns it (it may have expired and been taken by another). */
const RELEASE_LOCK = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/**
 * A {@link TokenStore} on Redis: every process of a service shares one token per cache key, and the
 * lock makes one process fetch it while the others wait for it. Give it to `new TokenManager({ store })`.
 * Errors never carry a token or a command argument.
 *
 * Redis Cluster: every command and every Lua script touches exactly one key, and the keys of one
 * cache key (entry and lock) share a hash slot (`{<key>}` hash tag), so no operation can fail with
 * CROSSSLOT, now or when a script someday touches both. A master that fails makes its keys' calls
 * fail: the TokenManager then fetches directly (and warns) until the store answers again.
 */
export class RedisTokenStore implements TokenStore {
  readonly #redis: RedisCommands;
  readonly #prefix: string;
  readonly #key: Buffer | undefined;
  readonly #logger: KeyfobLogger | undefined;
  #closed = false;

  constructor(options: RedisTokenStoreOptions) {
    if (!options || typeof options !== 'object') {
      throw new ConfigurationError('RedisTokenStore: options are required ({ client }).');
    }
    this.#redis = commandsFor(options.client);
    const prefix = options.prefix ?? 'keyfob:';
    if (typeof prefix !== 'string') throw new ConfigurationError('RedisTokenStore: prefix must be a string.');
    // Redis Cluster hashes the first `{...}` of a key: an unclosed or empty one in the prefix would make
    // it take `{<prefix rest>token:{<key>` (or the whole key), splitting an entry and its lock over slots.
    const open = prefix.indexOf('{');
    if (open !== -1 && prefix.indexOf('}', open + 1) <= open + 1) {
      throw new ConfigurationError(`RedisTokenStore: prefix "${prefix}" has an unclosed or empty hash tag.`, {
        hint: "Close it ('{svc}:keyfob:' pins every key to one slot) or leave braces out of the prefix.",
      });
    }
    this.#prefix = prefix;
    this.#key = options.encryptionKey === undefined ? undefined : parseEncryptionKey(options.encryptionKey);
    this.#logger = options.logger;
  }

  /** Key prefix in use. */
  get prefix(): string {
    return this.#prefix;
  }

  /** Whether token sets are encrypted at rest. */
  get encrypted(): boolean {
    return this.#key !== undefined;
  }

  async get(key: string): Promise<StoredToken | undefined> {
    const redisKey = this.#tokenKey(key);
    const raw = await this.#run('get', [redisKey], () => this.#redis.get(redisKey));
    if (raw === null) return undefined;
    let env: Partial<Envelope>;
    try {
      env = JSON.parse(raw) as Partial<Envelope>;
    } catch {
      return this.#unreadable('is not JSON');
    }
    if (env?.v !== 1 || typeof env.fp !== 'string') return this.#unreadable('has an unknown format');
    if (this.#key) {
      if (env.enc !== 'A256GCM' || typeof env.data !== 'string') return this.#unreadable('is not encrypted');
      const plain = open(env.data, this.#key, aad(key, env.fp));
      if (plain === undefined) return this.#unreadable('does not decrypt with this encryptionKey');
      try {
        return JSON.parse(plain) as StoredToken;
      } catch {
        return this.#unreadable('is corrupt');
      }
    }
    if (env.enc !== undefined) return this.#unreadable('is encrypted and this store has no encryptionKey');
    return env.data && typeof env.data === 'object' ? env.data : this.#unreadable('is corrupt');
  }

  async set(key: string, token: StoredToken, ttlMs: number): Promise<void> {
    if (!token || typeof token.accessToken !== 'string') {
      throw new TypeError('RedisTokenStore: set() needs a StoredToken with an accessToken.');
    }
    const fp = tokenFingerprint(token.accessToken, this.#key);
    const env: Envelope = this.#key
      ? { v: 1, fp, enc: 'A256GCM', data: seal(JSON.stringify(token), this.#key, aad(key, fp)) }
      : { v: 1, fp, data: token };
    const value = JSON.stringify(env);
    const redisKey = this.#tokenKey(key);
    const ms = ttl(ttlMs);
    await this.#run('set', [redisKey, value], () => this.#redis.setPx(redisKey, value, ms, false));
  }

  async delete(key: string, ifAccessToken?: string): Promise<boolean> {
    const redisKey = this.#tokenKey(key);
    if (ifAccessToken === undefined) {
      return (await this.#run('delete', [redisKey], () => this.#redis.del(redisKey))) > 0;
    }
    const fp = tokenFingerprint(ifAccessToken, this.#key);
    const n = await this.#run('delete', [redisKey, fp], () =>
      this.#redis.eval1(COMPARE_AND_DELETE, redisKey, fp),
    );
    return Number(n) > 0;
  }

  /**
   * `SET <prefix>lock:{<key>} <random> NX PX ttlMs`: a lock, or `undefined` while another process
   * holds it. `release()` deletes it at once, only while this process still owns it (compare-and-
   * delete), so a waiting process can take over as soon as the holder's request ends.
   */
  async lock(key: string, ttlMs: number): Promise<TokenStoreLock | undefined> {
    const lockKey = this.#redisKey('lock', key);
    const owner = randomBytes(16).toString('hex');
    const ok = await this.#run('lock', [lockKey, owner], () =>
      this.#redis.setPx(lockKey, owner, ttl(ttlMs), true),
    );
    if (!ok) return undefined;
    let released: Promise<void> | undefined;
    const release = (): Promise<void> => {
      released ??= this.#run('unlock', [lockKey, owner], () =>
        this.#redis.eval1(RELEASE_LOCK, lockKey, owner),
      ).then(() => undefined);
      return released;
    };
    return { release };
  }

  /** Marks the store closed. The Redis client is yours: it is left open (quit it yourself). */
  close(): void {
    this.#closed = true;
  }

  toJSON(): Record<string, unknown> {
    return { store: 'redis', prefix: this.#prefix, encrypted: this.encrypted };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `RedisTokenStore { prefix: '${this.#prefix}', encrypted: ${this.encrypted} }`;
  }

  #tokenKey(key: string): string {
    return this.#redisKey('token', key);
  }

  /** `<prefix><kind>:{<key>}`: the hash tag keeps one cache key's entry and lock in one cluster slot. */
  #redisKey(kind: 'token' | 'lock', key: string): string {
    if (typeof key !== 'string' || key === '')
      throw new TypeError('RedisTokenStore: key must be a non-empty string.');
    return `${this.#prefix}${kind}:{${key}}`;
  }

  async #run<T>(op: string, args: readonly string[], call: () => Promise<T>): Promise<T> {
    if (this.#closed) throw storeError(op, new Error('the store is closed'), []);
    try {
      return await call();
    } catch (e) {
      throw storeError(op, e, args);
    }
  }

  #unreadable(why: string): undefined {
    try {
      this.#logger?.warn(
        redact(`keyfob: stored token entry ${why}; ignoring it (a new token will be fetched and stored)`),
      );
    } catch {
      // A broken logger must not break token delivery.
    }
    return undefined;
  }
}

const aad = (key: string, fp: string) => `keyfob-redis:v1:${key}:${fp}`;

/** Whole milliseconds, at least 1 (Redis rejects PX 0). */
function ttl(ms: number): number {
  if (typeof ms !== 'number' || Number.isNaN(ms))
    throw new TypeError('RedisTokenStore: ttlMs must be a number.');
  return Math.max(1, Math.ceil(Math.min(ms, 2 ** 47)));
}

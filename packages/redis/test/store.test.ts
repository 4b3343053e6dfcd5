import { randomBytes } from 'node:crypto';
import { inspect } from 'node:util';
import { ConfigurationError, clientCredentials, type StoredToken, TokenManager } from '@keyfob/core';
import {
  type IoRedisLikeClient,
  type RedisClientLike,
  RedisTokenStore,
  RedisTokenStoreError,
} from '@keyfob/redis';
import { genericClientCredentials } from '@keyfob/testing';
import { type Cluster, Redis } from 'ioredis';
import { createClient } from 'redis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type RedisServer, skipRedis, startRedisServer } from './redis-server.js';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

// Type-level: both ioredis classes fit the structural client type (tsc checks this file).
export const clusterFits = (c: Cluster, r: Redis): RedisClientLike[] => [c, r];

const token = (accessToken: string, extra: Partial<StoredToken> = {}): StoredToken => ({
  accessToken,
  tokenType: 'Bearer',
  expiresAt: Date.now() + 60_000,
  raw: { access_token: accessToken, token_type: 'Bearer', expires_in: 60 },
  ...extra,
});

describe('RedisTokenStore options (no Redis needed)', () => {
  const fakeIoredis = {
    get: async () => null,
    set: async () => 'OK',
    del: async () => 0,
    eval: async () => 0,
  };

  it('rejects a missing or unusable client with a ConfigurationError', () => {
    expect(() => new RedisTokenStore(undefined as never)).toThrow(ConfigurationError);
    expect(() => new RedisTokenStore({} as never)).toThrow(/client is required/);
    expect(() => new RedisTokenStore({ client: { get: () => null } } as never)).toThrow(/no set, del, eval/);
  });

  it('validates encryptionKey at construction, without echoing it', () => {
    const hex = randomBytes(32).toString('hex');
    const b64 = randomBytes(32).toString('base64');
    const b64url = randomBytes(32).toString('base64url');
    for (const key of [randomBytes(32), hex, b64, b64url, new Uint8Array(32).fill(7)]) {
      expect(new RedisTokenStore({ client: fakeIoredis, encryptionKey: key }).encrypted).toBe(true);
    }
    const secretish = 'my-passphrase-that-is-not-a-key';
    let error: unknown;
    try {
      new RedisTokenStore({ client: fakeIoredis, encryptionKey: secretish });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as ConfigurationError).code).toBe('KEYFOB_CONFIGURATION');
    expect(String((error as Error).message)).not.toContain(secretish);
    expect(() => new RedisTokenStore({ client: fakeIoredis, encryptionKey: randomBytes(16) })).toThrow(
      /is 16 bytes/,
    );
    expect(() => new RedisTokenStore({ client: fakeIoredis, encryptionKey: hex.slice(2) })).toThrow(
      ConfigurationError,
    );
    expect(() => new RedisTokenStore({ client: fakeIoredis, encryptionKey: 42 as never })).toThrow(
      ConfigurationError,
    );
  });

  it('refuses a prefix whose hash tag would split an entry and its lock over cluster slots', () => {
    for (const prefix of ['{svc:keyfob:', 'keyfob{}:', 'a{']) {
      expect(() => new RedisTokenStore({ client: fakeIoredis, prefix }), prefix).toThrow(ConfigurationError);
    }
    for (const prefix of ['{svc}:keyfob:', 'keyfob:', 'a}b:', '']) {
      expect(new RedisTokenStore({ client: fakeIoredis, prefix }).prefix).toBe(prefix);
    }
  });

  it('prints no key and no client', () => {
    const key = randomBytes(32).toString('hex');
    const store = new RedisTokenStore({ client: fakeIoredis, encryptionKey: key, prefix: 'svc:' });
    expect(inspect(store)).toBe("RedisTokenStore { prefix: 'svc:', encrypted: true }");
    expect(JSON.stringify(store)).toBe('{"store":"redis","prefix":"svc:","encrypted":true}');
    expect(inspect(store, { showHidden: true })).not.toContain(key);
  });
});

describe.skipIf(skipRedis)('RedisTokenStore on a real redis-server', () => {
  let server: RedisServer;
  let redis: Redis;
  beforeAll(async () => {
    server = await startRedisServer();
    redis = new Redis({ port: server.port, host: '127.0.0.1', maxRetriesPerRequest: 1 });
  });
  afterAll(async () => {
    redis?.disconnect();
    await server?.stop();
  });

  const newStore = (opts: { prefix?: string; encryptionKey?: Buffer } = {}) =>
    new RedisTokenStore({
      client: redis,
      prefix: opts.prefix ?? `t${randomBytes(4).toString('hex')}:`,
      ...opts,
    });

  it('set / get round-trip, expiring with the TTL', async () => {
    const store = newStore({ prefix: 'rt:' });
    const t = token('at_roundtrip_value', { refreshToken: 'rt_value', scope: 'a b' });
    await store.set('client_credentials:abc', t, 60_000);
    expect(await store.get('client_credentials:abc')).toEqual(t);
    const pttl = await redis.pttl('rt:token:{client_credentials:abc}');
    expect(pttl).toBeGreaterThan(50_000);
    expect(pttl).toBeLessThanOrEqual(60_000);
    expect(await store.get('client_credentials:other')).toBeUndefined();
    await store.set('short', t, 1);
    for (let i = 0; i < 50 && (await redis.exists('rt:token:{short}')); i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(await store.get('short')).toBeUndefined();
  });

  it('compare-and-delete: delete(key, otherToken) keeps the entry; the right token deletes it', async () => {
    const store = newStore();
    await store.set('k', token('at_current'), 60_000);
    expect(await store.delete('k', 'at_older')).toBe(false);
    expect((await store.get('k'))?.accessToken).toBe('at_current');
    expect(await store.delete('k', 'at_current')).toBe(true);
    expect(await store.get('k')).toBeUndefined();
    expect(await store.delete('k', 'at_current')).toBe(false);
    await store.set('k', token('at_again'), 60_000);
    expect(await store.delete('k')).toBe(true);
    expect(await store.delete('k')).toBe(false);
  });

  it('lock: a second lock() on the same key is refused; release by a non-owner deletes nothing', async () => {
    const storeA = newStore({ prefix: 'lk:' });
    const storeB = newStore({ prefix: 'lk:' });
    const a = await storeA.lock('key1', 10_000);
    expect(a).toBeDefined();
    expect(await storeB.lock('key1', 10_000)).toBeUndefined();
    expect(await storeA.lock('key1', 10_000)).toBeUndefined();
    // Another key is independent.
    const other = await storeB.lock('key2', 10_000);
    expect(other).toBeDefined();
    await other!.release();

    // The lock expires (A stalled past its TTL) and B takes it: A's late release must not drop B's lock.
    const shortA = await storeA.lock('key3', 50);
    expect(shortA).toBeDefined();
    let b: Awaited<ReturnType<RedisTokenStore['lock']>>;
    for (let i = 0; i < 100 && !b; i++) {
      b = await storeB.lock('key3', 10_000);
      if (!b) await new Promise((r) => setTimeout(r, 10));
    }
    expect(b).toBeDefined();
    await shortA!.release();
    expect(await redis.exists('lk:lock:{key3}')).toBe(1);
    expect(await storeA.lock('key3', 10_000)).toBeUndefined();
    await b!.release();
    expect(await redis.exists('lk:lock:{key3}')).toBe(0);

    await a!.release();
    await a!.release(); // idempotent
    const again = await storeB.lock('key1', 10_000);
    expect(again).toBeDefined();
    await again!.release();
  });

  it('encryption: the raw value holds no token text; wrong key = missing; compare-and-delete still works', async () => {
    const key = randomBytes(32);
    const store = newStore({ prefix: 'enc:', encryptionKey: key });
    const t = token('at_SECRET_ACCESS_VALUE_123', { refreshToken: 'rt_SECRET_REFRESH_VALUE_456' });
    await store.set('per-user:k', t, 60_000);
    const raw = await redis.get('enc:token:{per-user:k}');
    expect(raw).toBeTypeOf('string');
    expect(raw).not.toContain('SECRET');
    expect(raw).not.toContain('access_token');
    expect(JSON.parse(raw!)).toMatchObject({ v: 1, enc: 'A256GCM' });
    expect(await store.get('per-user:k')).toEqual(t);

    // Two writes of the same token differ (random IV).
    await store.set('per-user:k2', t, 60_000);
    expect(JSON.parse((await redis.get('enc:token:{per-user:k2}'))!).data).not.toBe(JSON.parse(raw!).data);

    const warnings: string[] = [];
    const wrong = new RedisTokenStore({
      client: redis,
      prefix: 'enc:',
      encryptionKey: randomBytes(32),
      logger: { warn: (m) => warnings.push(m), error: (m) => warnings.push(m) },
    });
    expect(await wrong.get('per-user:k')).toBeUndefined();
    expect(warnings.join('\n')).toMatch(/does not decrypt/);
    const plain = newStore({ prefix: 'enc:' });
    expect(await plain.get('per-user:k')).toBeUndefined();
    // An entry moved to another key does not decrypt there (bound to its key).
    await redis.set('enc:token:{moved}', raw!);
    expect(await store.get('moved')).toBeUndefined();
    // A plain-text entry is not trusted by an encrypting store.
    await plain.set('plain', token('at_plain'), 60_000);
    expect(await store.get('plain')).toBeUndefined();

    expect(await store.delete('per-user:k', 'at_other')).toBe(false);
    expect(await store.delete('per-user:k', 'at_SECRET_ACCESS_VALUE_123')).toBe(true);
    expect(await redis.exists('enc:token:{per-user:k}')).toBe(0);
  });

  it('a restarted process (new TokenManager, same store) reuses the stored token: 0 new requests', async () => {
    const api = await genericClientCredentials({ clientId: 'svc', clientSecret: 'pw-restart' });
    cleanup.push(() => api.close());
    const store = newStore({ encryptionKey: randomBytes(32) });
    const make = () =>
      new TokenManager({
        tokenUrl: api.tokenUrl,
        grant: clientCredentials({ clientId: 'svc', clientSecret: 'pw-restart' }),
        store,
      });
    const first = make();
    const t1 = await first.getToken();
    await first.close();
    expect(api.tokenRequests()).toHaveLength(1);
    const second = make();
    cleanup.push(() => second.close());
    const t2 = await second.getToken();
    expect(t2.accessToken).toBe(t1.accessToken);
    expect(api.tokenRequests()).toHaveLength(1);
  });

  it('a 401 on one process invalidates the shared token once; a stale invalidate does not drop the new one', async () => {
    const api = await genericClientCredentials({ clientId: 'svc', clientSecret: 'pw-401' });
    cleanup.push(() => api.close());
    const store = newStore();
    const make = () =>
      new TokenManager({
        tokenUrl: api.tokenUrl,
        grant: clientCredentials({ clientId: 'svc', clientSecret: 'pw-401' }),
        store,
      });
    const a = make();
    const b = make();
    cleanup.push(
      () => a.close(),
      () => b.close(),
    );
    const t1 = await a.getToken();
    expect((await b.getToken()).accessToken).toBe(t1.accessToken);
    expect(await a.invalidate(t1)).toBe(true);
    const t2 = await a.getToken();
    expect(t2.accessToken).not.toBe(t1.accessToken);
    expect(api.tokenRequests()).toHaveLength(2);
    // b still holds t1 in its L1; its late 401 for t1 must not delete t2 from Redis.
    await b.invalidate(t1);
    const c = make();
    cleanup.push(() => c.close());
    expect((await c.getToken()).accessToken).toBe(t2.accessToken);
    expect((await b.getToken()).accessToken).toBe(t2.accessToken);
    expect(api.tokenRequests()).toHaveLength(2);
  });

  it('errors carry no token or command argument', async () => {
    const store = newStore({ prefix: 'err:' });
    // Redis refuses writes (OOM): ioredis' ReplyError carries the command with its arguments (the value).
    await redis.config('SET', 'maxmemory', '1');
    let error: unknown;
    try {
      await store.set('k', token('at_TOKEN_IN_ARGS_789', { refreshToken: 'rt_REFRESH_IN_ARGS' }), 60_000);
    } catch (e) {
      error = e;
    } finally {
      await redis.config('SET', 'maxmemory', '0');
    }
    expect(error).toBeInstanceOf(RedisTokenStoreError);
    expect(error).toMatchObject({ code: 'KEYFOB_STORE' });
    expect((error as Error).message).toMatch(/RedisTokenStore: set failed .*OOM/);
    const all = `${(error as Error).message} ${(error as Error).stack} ${inspect(error, { depth: 5, showHidden: true })} ${JSON.stringify(error)}`;
    expect(all).not.toContain('IN_ARGS');
    expect((error as Error).cause).toBeUndefined();

    // A dead connection: the error from ioredis is replaced, the value being written is not in it.
    const dead = new Redis({
      port: server.port,
      host: '127.0.0.1',
      enableOfflineQueue: false,
      lazyConnect: true,
    });
    const deadStore = new RedisTokenStore({ client: dead });
    error = undefined;
    try {
      await deadStore.set('k', token('at_WRITTEN_VALUE_000'), 1_000);
    } catch (e) {
      error = e;
    }
    dead.disconnect();
    expect((error as Error).message).toMatch(/RedisTokenStore: set failed/);
    expect(inspect(error, { depth: 5, showHidden: true })).not.toContain('WRITTEN_VALUE');
  });

  it('a closed store refuses calls and leaves the client open', async () => {
    const store = newStore();
    store.close();
    await expect(store.get('k')).rejects.toThrow(/closed/);
    expect(await redis.ping()).toBe('PONG');
  });

  it('accepts a node-redis v5 client directly (detected by isOpen / sendCommand)', async () => {
    const client = createClient({ url: server.url, disableOfflineQueue: true });
    await client.connect();
    cleanup.push(() => client.close());
    const store = new RedisTokenStore({ client, prefix: 'nr:' });
    const ioStore = newStore({ prefix: 'nr:' });
    await store.set('k', token('at_node_redis'), 60_000);
    expect((await ioStore.get('k'))?.accessToken).toBe('at_node_redis');
    expect(await store.delete('k', 'at_other')).toBe(false);
    expect(await store.delete('k', 'at_node_redis')).toBe(true);
    const lock = await store.lock('k', 10_000);
    expect(lock).toBeDefined();
    expect(await ioStore.lock('k', 10_000)).toBeUndefined();
    expect(await store.lock('k', 10_000)).toBeUndefined();
    await lock!.release();
    expect(await redis.exists('nr:lock:{k}')).toBe(0);

    const api = await genericClientCredentials({ clientId: 'svc', clientSecret: 'pw-nr' });
    cleanup.push(() => api.close());
    const m1 = new TokenManager({
      tokenUrl: api.tokenUrl,
      grant: clientCredentials({ clientId: 'svc', clientSecret: 'pw-nr' }),
      store,
    });
    const m2 = new TokenManager({
      tokenUrl: api.tokenUrl,
      grant: clientCredentials({ clientId: 'svc', clientSecret: 'pw-nr' }),
      store: ioStore,
    });
    cleanup.push(
      () => m1.close(),
      () => m2.close(),
    );
    const [a, b] = await Promise.all([m1.getToken(), m2.getToken()]);
    expect(a.accessToken).toBe(b.accessToken);
    expect(api.tokenRequests()).toHaveLength(1);
  });
});

describe.skipIf(skipRedis)('the README wrapper for other clients', () => {
  it('an IoRedisLikeClient wrapping node-redis command methods works like ioredis', async () => {
    const server = await startRedisServer();
    cleanup.push(() => server.stop());
    const nr = createClient({ url: server.url, disableOfflineQueue: true });
    await nr.connect();
    cleanup.push(() => nr.close());
    // Same code as the README's createCluster() example (a cluster has the same command methods).
    const client: IoRedisLikeClient = {
      get: (key) => nr.get(key),
      set: (key: string, value: string, _px: 'PX', ms: number, nx?: 'NX') =>
        nr.set(key, value, nx ? { PX: ms, NX: true } : { PX: ms }),
      del: (key) => nr.del(key),
      eval: (script, _numkeys, ...args) =>
        nr.eval(script, { keys: [String(args[0])], arguments: args.slice(1).map(String) }),
    };
    const store = new RedisTokenStore({ client, prefix: 'w:' });
    await store.set('k', token('at_wrapped'), 60_000);
    expect((await store.get('k'))?.accessToken).toBe('at_wrapped');
    expect(await store.delete('k', 'at_other')).toBe(false);
    expect(await store.delete('k', 'at_wrapped')).toBe(true);
    const lock = await store.lock('k', 10_000);
    expect(lock).toBeDefined();
    expect(await store.lock('k', 10_000)).toBeUndefined();
    await lock!.release();
    expect(await nr.exists('w:lock:{k}')).toBe(0);
  });
});

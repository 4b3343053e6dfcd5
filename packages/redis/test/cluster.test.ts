import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { clientCredentials, fingerprint, type StoredToken, TokenManager } from '@keyfob/core';
import { type RedisClientLike, RedisTokenStore } from '@keyfob/redis';
import { genericClientCredentials } from '@keyfob/testing';
import { Cluster } from 'ioredis';
import { createCluster } from 'redis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runFleet } from './fleet-runner.js';
import { clusterState, keySlot, type RedisCluster, skipRedis, startRedisCluster } from './redis-server.js';

// One real Redis Cluster (three masters of Debian's redis-server, `redis-cli --cluster create`)
// for the healthy-cluster tests; the failover test makes its own, since it kills a master.

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

const token = (accessToken: string): StoredToken => ({
  accessToken,
  tokenType: 'Bearer',
  expiresAt: Date.now() + 60_000,
  raw: { access_token: accessToken, token_type: 'Bearer', expires_in: 60 },
});

/** ioredis Cluster with the README's fail-fast options. */
async function ioredisCluster(cluster: RedisCluster): Promise<Cluster> {
  const c = new Cluster(cluster.rootNodes, {
    enableOfflineQueue: false,
    redisOptions: { maxRetriesPerRequest: 1 },
    clusterRetryStrategy: () => 200,
    lazyConnect: true,
  });
  c.on('error', () => {}); // a killed master is expected in one test; the store reports it
  cleanup.push(() => c.disconnect());
  await c.connect();
  return c;
}

async function nodeRedisCluster(cluster: RedisCluster) {
  const c = createCluster({
    rootNodes: cluster.rootNodes.map((n) => ({ url: `redis://${n.host}:${n.port}` })),
    defaults: { socket: { reconnectStrategy: () => 200, connectTimeout: 500 }, disableOfflineQueue: true },
  });
  c.on('error', () => {});
  await c.connect();
  cleanup.push(() => c.destroy());
  return c;
}

const clients = {
  ioredis: ioredisCluster,
  'node-redis': nodeRedisCluster,
} satisfies Record<string, (c: RedisCluster) => Promise<RedisClientLike>>;

describe.skipIf(skipRedis)('RedisTokenStore on a real Redis Cluster', () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    cluster = await startRedisCluster(3);
  }, 30_000);
  afterAll(async () => {
    await cluster?.stop();
  });

  it("one cache key's entry and lock share a slot; different keys spread over the masters", async () => {
    const port = cluster.nodes[0]!.port;
    const slots = new Set<number>();
    for (let i = 0; i < 12; i++) {
      const key = `client_credentials:${randomBytes(12).toString('base64url')}`;
      const entry = await keySlot(port, `keyfob:token:{${key}}`);
      expect(await keySlot(port, `keyfob:lock:{${key}}`)).toBe(entry);
      slots.add(entry);
    }
    expect(slots.size).toBeGreaterThan(1);
  });

  for (const [name, connect] of Object.entries(clients)) {
    it(`${name}: get / set / compare-and-delete / lock on keys across all masters, encrypted`, async () => {
      const client = await connect(cluster);
      const store = new RedisTokenStore({ client, prefix: `${name}:`, encryptionKey: randomBytes(32) });
      const keys = Array.from({ length: 9 }, (_, i) => `k${i}:${randomBytes(6).toString('hex')}`);
      for (const k of keys) await store.set(k, token(`tok-${k}`), 30_000);
      for (const k of keys) expect((await store.get(k))?.accessToken).toBe(`tok-${k}`);
      // Encrypted at rest, on whichever master owns the slot.
      const probe = await connect(cluster);
      const raw = await (name === 'ioredis'
        ? (probe as Cluster).get(`${name}:token:{${keys[0]}}`)
        : (probe as Awaited<ReturnType<typeof nodeRedisCluster>>).get(`${name}:token:{${keys[0]}}`));
      expect(raw).toBeTruthy();
      expect(raw).not.toContain(`tok-${keys[0]}`);
      // Compare-and-delete (a Lua script on the key's master).
      expect(await store.delete(keys[1]!, 'tok-other')).toBe(false);
      expect(await store.delete(keys[1]!, `tok-${keys[1]}`)).toBe(true);
      expect(await store.get(keys[1]!)).toBeUndefined();
      // Lock: exclusive, released by its owner only.
      const lock = await store.lock(keys[2]!, 10_000);
      expect(lock).toBeDefined();
      expect(await store.lock(keys[2]!, 10_000)).toBeUndefined();
      await lock!.release();
      const again = await store.lock(keys[2]!, 10_000);
      expect(again).toBeDefined();
      await again!.release();
    });

    it(`${name}: 4 managers (own connections) x 100 concurrent getToken() on a cold cache make 1 token request`, async () => {
      const api = await genericClientCredentials({ clientId: 'fleet', clientSecret: 'fleet-secret-cluster' });
      cleanup.push(() => api.close());
      const encryptionKey = randomBytes(32);
      const managers = await Promise.all(
        Array.from({ length: 4 }, async () => {
          const store = new RedisTokenStore({
            client: await connect(cluster),
            prefix: `fleet-${name}:`,
            encryptionKey,
          });
          const m = new TokenManager({
            tokenUrl: api.tokenUrl,
            grant: clientCredentials({ clientId: 'fleet', clientSecret: 'fleet-secret-cluster' }),
            store,
          });
          cleanup.push(() => m.close());
          return m;
        }),
      );
      const tokens = await Promise.all(
        managers.flatMap((m) => Array.from({ length: 100 }, () => m.getToken().then((t) => t.accessToken))),
      );
      expect(api.tokenRequests()).toHaveLength(1);
      expect(new Set(tokens).size).toBe(1);
      expect(tokens).toHaveLength(400);
    });
  }

  it('3 processes x 100 concurrent getToken() (ioredis Cluster, encrypted) make 1 token request', async () => {
    const api = await genericClientCredentials({ clientId: 'fleet', clientSecret: 'fleet-secret-cluster' });
    cleanup.push(() => api.close());
    const results = await runFleet({
      processes: 3,
      tokenUrl: api.tokenUrl,
      clientId: 'fleet',
      clientSecret: 'fleet-secret-cluster',
      cluster: { ports: cluster.nodes.map((n) => n.port), client: 'ioredis' },
      encryptionKey: randomBytes(32).toString('base64'),
      mode: 'burst',
      calls: 100,
    });
    expect(results.flatMap((r) => r.errors)).toEqual([]);
    expect(results.flatMap((r) => r.warnings)).toEqual([]);
    expect(api.tokenRequests()).toHaveLength(1);
    const issued = [...api.issuer.issued.keys()].map(fingerprint);
    const calls: Record<string, number> = {};
    for (const r of results) for (const [fp, n] of Object.entries(r.tokens)) calls[fp] = (calls[fp] ?? 0) + n;
    expect(calls).toEqual({ [issued[0]!]: 300 });
  }, 60_000);
});

describe.skipIf(skipRedis)('a Redis Cluster master fails', () => {
  for (const [name, connect] of Object.entries(clients)) {
    it(`${name}: callers still get tokens (fetched directly, with a warning), no caller error`, async () => {
      const cluster = await startRedisCluster(3);
      cleanup.push(() => cluster.stop());
      const api = await genericClientCredentials({ clientId: 'svc', clientSecret: 'svc-secret-failover' });
      cleanup.push(() => api.close());
      const client = await connect(cluster);
      const warnings: string[] = [];
      const manager = new TokenManager({
        tokenUrl: api.tokenUrl,
        grant: clientCredentials({ clientId: 'svc', clientSecret: 'svc-secret-failover' }),
        store: new RedisTokenStore({ client }),
        storeTimeoutMs: 500,
        logger: { warn: (m) => warnings.push(m), error: (m) => warnings.push(m) },
      });
      cleanup.push(() => manager.close());
      // Tokens for several scopes (cache keys spread over the masters) while all is well.
      const scopes = ['a', 'b', 'c', 'd', 'e', 'f'];
      for (const scope of scopes) await manager.getToken({ scope });
      expect(warnings).toEqual([]);
      const before = api.tokenRequests().length;

      await cluster.nodes[1]!.kill();
      // Once the survivors mark the master failed (cluster-node-timeout 1 s), every key is refused
      // with CLUSTERDOWN (full coverage required), not only those of its slots.
      const survivor = cluster.nodes[0]!.port;
      for (let i = 0; i < 100 && (await clusterState(survivor)) !== 'fail'; i++) await sleep(100);
      expect(await clusterState(survivor)).toBe('fail');
      // New cache keys (never cached in this process): each needs the store, which is failing.
      const results = await Promise.allSettled(
        ['g', 'h', 'i', 'j', 'k', 'l'].map((scope) => manager.getToken({ scope, forceRefresh: true })),
      );
      expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
      expect(api.tokenRequests().length).toBe(before + 6);
      // Cached ones are still served from memory.
      for (const scope of scopes) expect((await manager.getToken({ scope })).accessToken).toBeTruthy();
      expect(warnings.some((w) => /token store \w+ failed/.test(w))).toBe(true);
      for (const w of warnings) expect(w).not.toContain('svc-secret-failover');
    }, 45_000);
  }
});

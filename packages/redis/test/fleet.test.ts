import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type AccessToken,
  authorizationCode,
  clientCredentials,
  fingerprint,
  TokenManager,
} from '@keyfob/core';
import { RedisTokenStore } from '@keyfob/redis';
import { genericClientCredentials, startServer } from '@keyfob/testing';
import { Redis, type RedisOptions } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { runFleet } from './fleet-runner.js';
import { type RedisServer, skipRedis, startRedisServer } from './redis-server.js';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

async function redisServer(): Promise<RedisServer> {
  const s = await startRedisServer();
  cleanup.push(() => s.stop());
  return s;
}

/** The options the README recommends: fail fast when Redis is away, never queue. */
function client(port: number, extra: RedisOptions = {}): Redis {
  const r = new Redis({
    port,
    host: '127.0.0.1',
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    ...extra,
  });
  r.on('error', () => {}); // connection errors while Redis is down are expected; the store reports them
  cleanup.push(() => r.disconnect());
  return r;
}

async function ready(r: Redis): Promise<void> {
  for (let i = 0; i < 200 && r.status !== 'ready'; i++) await sleep(25);
  expect(r.status).toBe('ready');
}

function logs() {
  const lines: string[] = [];
  const push = (m: string) => lines.push(m);
  return { lines, logger: { debug: push, info: push, warn: push, error: push } };
}

describe.skipIf(skipRedis)('a fleet sharing tokens through Redis', () => {
  it('8 processes x 200 concurrent getToken() on a cold cache: 1 token request, 1,600 calls, one token', async () => {
    const redis = await redisServer();
    const api = await genericClientCredentials({ clientId: 'fleet', clientSecret: 'fleet-secret' });
    cleanup.push(() => api.close());
    const results = await runFleet({
      processes: 8,
      tokenUrl: api.tokenUrl,
      clientId: 'fleet',
      clientSecret: 'fleet-secret',
      redisPort: redis.port,
      mode: 'burst',
      calls: 200,
    });
    expect(results).toHaveLength(8);
    expect(results.flatMap((r) => r.errors)).toEqual([]);
    expect(api.tokenRequests()).toHaveLength(1);
    const issued = [...api.issuer.issued.keys()].map(fingerprint);
    expect(issued).toHaveLength(1);
    const perToken: Record<string, number> = {};
    for (const r of results)
      for (const [fp, n] of Object.entries(r.tokens)) perToken[fp] = (perToken[fp] ?? 0) + n;
    expect(perToken).toEqual({ [issued[0]!]: 1_600 });
    expect(results.flatMap((r) => r.warnings)).toEqual([]);
  });

  it('short-lived tokens across the fleet: about one token request per lifetime, not one per process', async () => {
    const redis = await redisServer();
    const api = await genericClientCredentials({
      clientId: 'fleet',
      clientSecret: 'fleet-secret',
      expiresIn: 2,
    });
    cleanup.push(() => api.close());
    const processes = 4;
    const lifetimes = 3;
    const results = await runFleet({
      processes,
      tokenUrl: api.tokenUrl,
      clientId: 'fleet',
      clientSecret: 'fleet-secret',
      redisPort: redis.port,
      mode: 'loop',
      durationMs: lifetimes * 2_000,
    });
    expect(results.flatMap((r) => r.errors)).toEqual([]);
    // Nobody was handed an expired token, and every member crossed several expiries.
    expect(results.reduce((n, r) => n + r.expired, 0)).toBe(0);
    for (const r of results) expect(Object.keys(r.tokens).length).toBeGreaterThanOrEqual(lifetimes);
    const requests = api.tokenRequests().length;
    expect(requests).toBeGreaterThanOrEqual(lifetimes);
    expect(requests).toBeLessThanOrEqual(lifetimes + 2);
    expect(requests).toBeLessThan((processes * lifetimes) / 2);
    // Every token a member used came from the one shared sequence.
    const issued = new Set([...api.issuer.issued.keys()].map(fingerprint));
    for (const r of results) for (const fp of Object.keys(r.tokens)) expect(issued.has(fp)).toBe(true);
  });

  it('rotating refresh tokens of a user are renewed once across the fleet, never twice with the same one', async () => {
    const redis = await redisServer();
    const used = new Set<string>();
    const reused: string[] = [];
    let live = 'rt_0';
    let n = 0;
    const server = await startServer((req) => {
      const p = req.params;
      if (p.grant_type === 'authorization_code' && p.code === 'code-alice') {
        return {
          body: { access_token: `at_${++n}`, token_type: 'Bearer', expires_in: 1, refresh_token: live },
        };
      }
      if (p.grant_type === 'refresh_token') {
        if (used.has(p.refresh_token!) || p.refresh_token !== live) {
          reused.push(p.refresh_token!);
          return {
            status: 400,
            body: { error: 'invalid_grant', error_description: 'refresh token already used' },
          };
        }
        used.add(p.refresh_token!);
        live = `rt_${randomBytes(6).toString('hex')}`;
        return {
          body: { access_token: `at_${++n}`, token_type: 'Bearer', expires_in: 1, refresh_token: live },
        };
      }
      return { status: 400, body: { error: 'invalid_request' } };
    });
    cleanup.push(() => server.close());
    const tokenUrl = `${server.url}/token`;
    const grant = () =>
      authorizationCode({
        clientId: 'web',
        clientSecret: 'web-secret',
        redirectUri: 'http://127.0.0.1/callback',
        authorizeUrl: 'http://127.0.0.1/authorize',
        pkce: false,
      });
    // Three "processes": each its own manager, grant and Redis connection.
    const managers = await Promise.all(
      [0, 1, 2].map(async () => {
        const r = client(redis.port);
        await ready(r);
        const g = grant();
        const m = new TokenManager({ tokenUrl, grant: g, store: new RedisTokenStore({ client: r }) });
        cleanup.push(() => m.close());
        return { m, g };
      }),
    );
    await expect(managers[1]!.m.getToken({ subject: 'alice' })).rejects.toThrow(/No token set is stored/);
    const first = await managers[0]!.g.exchange('code-alice', { subject: 'alice' });
    const refreshes = () => server.requests.filter((r) => r.params.grant_type === 'refresh_token').length;
    // The others read alice's set from Redis.
    for (const { m } of managers)
      expect((await m.getToken({ subject: 'alice' })).accessToken).toBe(first.accessToken);
    for (let round = 1; round <= 2; round++) {
      await sleep(1_100); // the 1 s access token is now expired everywhere
      const got = await Promise.all(
        managers.flatMap(({ m }) => Array.from({ length: 30 }, () => m.getToken({ subject: 'alice' }))),
      );
      expect(new Set(got.map((t: AccessToken) => t.accessToken)).size).toBe(1);
      expect(got[0]!.accessToken).not.toBe(first.accessToken);
      expect(refreshes()).toBe(round);
    }
    expect(reused).toEqual([]);
    expect(used.size).toBe(2);
  });

  it('Redis killed mid-run: no caller-visible failure; restarted: sharing resumes', async () => {
    const redis = await redisServer();
    const api = await genericClientCredentials({ clientId: 'svc', clientSecret: 'svc-secret' });
    cleanup.push(() => api.close());
    const log = logs();
    const make = (r: Redis, logger?: ReturnType<typeof logs>['logger']) => {
      const m = new TokenManager({
        tokenUrl: api.tokenUrl,
        grant: clientCredentials({ clientId: 'svc', clientSecret: 'svc-secret' }),
        store: new RedisTokenStore({ client: r }),
        ...(logger ? { logger } : {}),
      });
      cleanup.push(() => m.close());
      return m;
    };
    const r1 = client(redis.port);
    await ready(r1);
    const m1 = make(r1, log.logger);
    const t1 = await m1.getToken();

    await redis.kill();
    // Serving from L1 needs no Redis.
    expect((await m1.getToken()).accessToken).toBe(t1.accessToken);
    // A 401 and a forced refresh with Redis gone: the manager fetches directly.
    await m1.invalidate(t1);
    const during = await Promise.all(Array.from({ length: 20 }, () => m1.getToken()));
    expect(new Set(during.map((t) => t.accessToken)).size).toBe(1);
    expect(during[0]!.accessToken).not.toBe(t1.accessToken);
    const forced = await m1.getToken({ forceRefresh: true });
    expect(forced.accessToken).not.toBe(during[0]!.accessToken);
    expect(log.lines.some((l) => /token store \w+ failed \(RedisTokenStore: \w+ failed/.test(l))).toBe(true);

    await redis.restart();
    await ready(r1);
    // The store is bypassed for a backoff period after the failures; a background probe closes
    // the circuit (bounded wait: the backoff starts at about 1 s).
    for (let i = 0; i < 300 && !log.lines.some((l) => l.includes('token store is reachable again')); i++)
      await sleep(50);
    expect(log.lines.some((l) => l.includes('token store is reachable again'))).toBe(true);
    const t4 = await m1.getToken({ forceRefresh: true });
    const before = api.tokenRequests().length;
    const r2 = client(redis.port);
    await ready(r2);
    const m2 = make(r2);
    expect((await m2.getToken()).accessToken).toBe(t4.accessToken);
    expect(api.tokenRequests()).toHaveLength(before);
    // No log line carries a token.
    for (const t of [t1, during[0]!, forced, t4]) expect(log.lines.join('\n')).not.toContain(t.accessToken);
  });

  it('lock waiters follow the holder: when its request fails, another process takes over at once, not after lockWaitMs', async () => {
    const redis = await redisServer();
    let n = 0;
    const server = await startServer(() =>
      n++ === 0
        ? { status: 400, delayMs: 800, body: { error: 'invalid_request' } }
        : { body: { access_token: `tok-${n}-after-holder`, token_type: 'Bearer', expires_in: 3600 } },
    );
    cleanup.push(() => server.close());
    const make = async () => {
      const r = client(redis.port);
      await ready(r);
      const m = new TokenManager({
        tokenUrl: `${server.url}/token`,
        grant: clientCredentials({ clientId: 'svc', clientSecret: 'svc-secret-lock' }),
        store: new RedisTokenStore({ client: r }),
        lockWaitMs: 60_000, // waiting this out would time the test out
      });
      cleanup.push(() => m.close());
      return m;
    };
    const [holder, waiter] = await Promise.all([make(), make()]);
    const held = holder.getToken().then(
      () => 'resolved',
      (e: unknown) => e,
    );
    // The holder has the lock and its request is at the endpoint (bounded wait).
    for (let i = 0; i < 200 && server.requests.length === 0; i++) await sleep(10);
    expect(server.requests).toHaveLength(1);
    const token = await waiter.getToken();
    expect(token.accessToken).toBe('tok-2-after-holder');
    expect(await held).toMatchObject({ code: 'KEYFOB_TOKEN_ENDPOINT', status: 400 });
    expect(server.requests).toHaveLength(2);
  }, 15_000);

  it('with ioredis defaults (offline queue) a dead Redis costs storeTimeoutMs, never a hang or a failure', async () => {
    const redis = await redisServer();
    const api = await genericClientCredentials({ clientId: 'svc', clientSecret: 'svc-secret' });
    cleanup.push(() => api.close());
    const r = new Redis({ port: redis.port, host: '127.0.0.1' });
    r.on('error', () => {});
    cleanup.push(() => r.disconnect());
    await ready(r);
    const m = new TokenManager({
      tokenUrl: api.tokenUrl,
      grant: clientCredentials({ clientId: 'svc', clientSecret: 'svc-secret' }),
      store: new RedisTokenStore({ client: r }),
      storeTimeoutMs: 200,
    });
    cleanup.push(() => m.close());
    const t1 = await m.getToken();
    await redis.kill();
    const t2 = await m.getToken({ forceRefresh: true });
    expect(t2.accessToken).not.toBe(t1.accessToken);
    expect(api.tokenRequests()).toHaveLength(2);
  });
});

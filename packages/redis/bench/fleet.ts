/**
 * What does sharing tokens through Redis buy a fleet, and what does it cost the hot path?
 * - benchFleet: N processes (test/fixtures/fleet-member.ts) call getToken() in a loop for M lifetimes of a
 *   short-lived token; token requests counted with the Redis store vs without (each process on its own).
 * - benchHotPath: cached getToken() ns/op with the Redis store vs the memory default (tinybench): an L1 hit
 *   never touches Redis, so both should be the same within noise.
 * Starts and stops its own redis-server (skips when there is none). Run: `pnpm --filter @keyfob/redis bench`.
 */
import { pathToFileURL } from 'node:url';
import { clientCredentials, TokenManager } from '@keyfob/core';
import { RedisTokenStore } from '@keyfob/redis';
import { genericClientCredentials } from '@keyfob/testing';
import { Redis } from 'ioredis';
import { Bench } from 'tinybench';
import { runFleet } from '../test/fleet-runner.js';
import { haveRedisServer, startRedisServer } from '../test/redis-server.js';

export interface FleetFigures {
  /** Token requests the endpoint saw with the Redis store. */
  withRedis: number;
  /** Token requests the endpoint saw without a store. */
  withoutRedis: number;
  /** One fetch per refresh cycle for the whole fleet (a token is used for 80% of its life, then renewed ahead). */
  expectedWith: number;
  /** The same, once per process. */
  expectedWithout: number;
}

export interface HotPathFigures {
  /** Cached getToken() with the memory default, ns/op. */
  memory: number;
  /** Cached getToken() with a RedisTokenStore behind the L1, ns/op. */
  redis: number;
}

function requireRedis(): void {
  if (!haveRedisServer()) {
    throw new Error(
      'redis-server is not on PATH; install it (apt-get install redis-server, brew install redis) to run this benchmark.',
    );
  }
}

export async function benchFleet(
  opts: { processes?: number; lifetimes?: number; lifetimeSeconds?: number } = {},
): Promise<FleetFigures> {
  requireRedis();
  const processes = opts.processes ?? 4;
  const lifetimes = opts.lifetimes ?? 3;
  const lifetimeSeconds = opts.lifetimeSeconds ?? 2;
  const durationMs = lifetimes * lifetimeSeconds * 1000;
  const redis = await startRedisServer();
  const count = async (redisPort: number | undefined) => {
    const api = await genericClientCredentials({
      clientId: 'bench',
      clientSecret: 'bench-secret',
      expiresIn: lifetimeSeconds,
    });
    try {
      const results = await runFleet({
        processes,
        tokenUrl: api.tokenUrl,
        clientId: 'bench',
        clientSecret: 'bench-secret',
        ...(redisPort === undefined ? {} : { redisPort }),
        mode: 'loop',
        durationMs,
        timeoutMs: durationMs + 60_000,
      });
      const errors = results.flatMap((r) => r.errors);
      if (errors.length)
        throw new Error(`benchmark invalid: ${errors.length} getToken() calls failed: ${errors[0]}`);
      return api.tokenRequests().length;
    } finally {
      await api.close();
    }
  };
  try {
    const withRedis = await count(redis.port);
    const withoutRedis = await count(undefined);
    const cycles = Math.ceil(durationMs / (lifetimeSeconds * 1000 * 0.8));
    return { withRedis, withoutRedis, expectedWith: cycles, expectedWithout: processes * cycles };
  } finally {
    await redis.stop();
  }
}

export async function benchHotPath(opts: { timeMs?: number } = {}): Promise<HotPathFigures> {
  requireRedis();
  const redis = await startRedisServer();
  const api = await genericClientCredentials({ clientId: 'bench', clientSecret: 'bench-secret' });
  const client = new Redis({
    port: redis.port,
    host: '127.0.0.1',
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    lazyConnect: true,
  });
  await client.connect();
  const grant = () => clientCredentials({ clientId: 'bench', clientSecret: 'bench-secret' });
  const memory = new TokenManager({ tokenUrl: api.tokenUrl, grant: grant() });
  const shared = new TokenManager({
    tokenUrl: api.tokenUrl,
    grant: grant(),
    store: new RedisTokenStore({ client }),
  });
  try {
    await memory.getToken();
    await shared.getToken();
    // Interleaved rounds, alternating which task goes first, median of the means: order and JIT drift hit both alike.
    const rounds: Record<'memory' | 'redis', number[]> = { memory: [], redis: [] };
    for (let i = 0; i < 5; i++) {
      const bench = new Bench({ time: opts.timeMs ?? 500, warmup: true });
      const tasks = [
        ['memory', () => memory.getToken()],
        ['redis', () => shared.getToken()],
      ] as const;
      for (const [name, fn] of i % 2 ? [...tasks].reverse() : tasks) bench.add(name, fn);
      await bench.run();
      for (const name of ['memory', 'redis'] as const) {
        const r = bench.getTask(name)?.result as { latency?: { mean: number } } | undefined;
        if (!r?.latency) throw new Error(`benchmark task ${name} produced no result`);
        rounds[name].push(r.latency.mean * 1e6);
      }
    }
    const median = (xs: number[]) => Math.round([...xs].sort((a, b) => a - b)[xs.length >> 1]!);
    if (api.tokenRequests().length !== 2) throw new Error('benchmark invalid: the hot path fetched tokens');
    return { memory: median(rounds.memory), redis: median(rounds.redis) };
  } finally {
    await memory.close();
    await shared.close();
    client.disconnect();
    await api.close();
    await redis.stop();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (!haveRedisServer()) {
    console.warn(
      '@keyfob/redis bench SKIPPED: redis-server is not on PATH (apt-get install redis-server, brew install redis).',
    );
  } else {
    const f = await benchFleet();
    console.log('@keyfob/redis fleet: 4 processes, 3 lifetimes of a 2 s token, token requests');
    console.log(
      `  with RedisTokenStore  ${String(f.withRedis).padStart(3)}   (expected about ${f.expectedWith})`,
    );
    console.log(
      `  without (memory only) ${String(f.withoutRedis).padStart(3)}   (expected about ${f.expectedWithout})`,
    );
    const h = await benchHotPath();
    console.log(
      '@keyfob/redis hot path: cached getToken(), ns/op (tinybench, median of 5 interleaved rounds)',
    );
    console.log(`  memory default        ${String(h.memory).padStart(6)} ns/op`);
    console.log(`  RedisTokenStore       ${String(h.redis).padStart(6)} ns/op`);
  }
}

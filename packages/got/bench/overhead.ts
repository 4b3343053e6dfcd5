/**
 * What do keyfob's got hooks cost per request? Requests/s through the hooks vs the same got
 * instance with a hard-coded `Authorization` header, against a local node:http server that checks
 * the Bearer header. Interleaved rounds, medians. Run: `pnpm --filter @keyfob/got bench`.
 */
import { Agent, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { staticToken, TokenManager } from '@keyfob/core';
import { tokenHooks, withTokens } from '@keyfob/got';
import got, { type Got, Options } from 'got';

export interface OverheadFigures {
  keyfob: number;
  baseline: number;
  ratio: number;
}

const TOKEN = 'bench-access-token-0123456789abcdef';

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Requests completed and seconds spent in `ms` with `concurrency` workers (each loop ends at the deadline). */
async function measure(
  client: Got,
  concurrency: number,
  ms: number,
): Promise<{ done: number; seconds: number }> {
  const deadline = performance.now() + ms;
  let done = 0;
  const worker = async () => {
    while (performance.now() < deadline) {
      await client.get('ping');
      done++;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { done, seconds: (performance.now() - started) / 1000 };
}

/**
 * One round: both clients alternate in short slices (the order flips every slice), so a busy
 * neighbour or a GC pause hits both sides alike; returns requests/s of each.
 */
async function round(a: Got, b: Got, concurrency: number, ms: number): Promise<[number, number]> {
  const slices = Math.max(2, Math.round(ms / 250));
  const sum = [
    { done: 0, seconds: 0 },
    { done: 0, seconds: 0 },
  ];
  for (let i = 0; i < slices; i++) {
    for (const side of i % 2 === 0 ? [0, 1] : [1, 0]) {
      const r = await measure(side === 0 ? a : b, concurrency, ms / slices);
      sum[side]!.done += r.done;
      sum[side]!.seconds += r.seconds;
    }
  }
  return [sum[0]!.done / sum[0]!.seconds, sum[1]!.done / sum[1]!.seconds];
}

export async function benchGotOverhead(
  opts: { roundMs?: number; rounds?: number } = {},
): Promise<{ c1: OverheadFigures; c32: OverheadFigures }> {
  const roundMs = opts.roundMs ?? 1_500;
  const rounds = opts.rounds ?? 5;
  let wrongHeader = 0;
  const server = createServer((req, res) => {
    if (req.headers.authorization !== `Bearer ${TOKEN}`) wrongHeader++;
    res.writeHead(req.headers.authorization === `Bearer ${TOKEN}` ? 200 : 401, {
      'content-type': 'text/plain',
    });
    res.end('ok');
  });
  server.keepAliveTimeout = 10_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const prefixUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const agents = [
    new Agent({ keepAlive: true, maxSockets: 64 }),
    new Agent({ keepAlive: true, maxSockets: 64 }),
  ];
  const manager = new TokenManager({ grant: staticToken({ accessToken: TOKEN }) });
  const base = { prefixUrl, retry: { limit: 0 } } as const;
  const keyfob = withTokens(got.extend({ ...base, agent: { http: agents[0]! } }), manager);
  const baseline = got.extend({
    ...base,
    agent: { http: agents[1]! },
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  try {
    const result = {} as { c1: OverheadFigures; c32: OverheadFigures };
    for (const c of [1, 32] as const) {
      await measure(keyfob, c, 300);
      await measure(baseline, c, 300);
      const k: number[] = [];
      const b: number[] = [];
      for (let i = 0; i < rounds; i++) {
        const [kr, br] = await round(keyfob, baseline, c, roundMs);
        k.push(kr);
        b.push(br);
      }
      const fig = { keyfob: Math.round(median(k)), baseline: Math.round(median(b)), ratio: 0 };
      fig.ratio = Math.round((median(k) / median(b)) * 1000) / 1000;
      result[c === 1 ? 'c1' : 'c32'] = fig;
    }
    if (wrongHeader > 0)
      throw new Error(`benchmark invalid: ${wrongHeader} requests arrived without the expected header`);
    return result;
  } finally {
    await manager.close();
    for (const a of agents) a.destroy();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
}

/**
 * The hooks' own CPU time per request (beforeRequest + afterResponse on a real got `Options`,
 * token in memory), in microseconds: a figure a busy machine cannot blur the way it blurs req/s.
 */
export async function benchHookCost(iterations = 200_000): Promise<number> {
  const manager = new TokenManager({ grant: staticToken({ accessToken: TOKEN }) });
  try {
    const hooks = tokenHooks(manager, { origins: ['http://127.0.0.1:1'] });
    const pool = Array.from({ length: 1_000 }, () => new Options('http://127.0.0.1:1/ping'));
    const response = { statusCode: 200 } as Parameters<(typeof hooks.afterResponse)[0]>[0];
    const retry = (() => {
      throw new Error('unexpected retry');
    }) as Parameters<(typeof hooks.afterResponse)[0]>[1];
    const once = async (n: number) => {
      const started = performance.now();
      for (let i = 0; i < n; i++) {
        const options = pool[i % pool.length]!;
        delete options.headers.authorization;
        await hooks.beforeRequest[0]!(options as never, { retryCount: 0 });
        await hooks.afterResponse[0]!(response, retry);
      }
      return ((performance.now() - started) * 1000) / n;
    };
    await once(iterations / 4);
    const samples = [await once(iterations), await once(iterations), await once(iterations)];
    return Math.round(median(samples) * 100) / 100;
  } finally {
    await manager.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const r = await benchGotOverhead();
  const line = (name: string, f: OverheadFigures) =>
    `${name.padEnd(15)} keyfob ${String(f.keyfob).padStart(6)} req/s   baseline ${String(f.baseline).padStart(6)} req/s   ratio ${f.ratio.toFixed(3)}`;
  console.log('@keyfob/got overhead (median of 5 interleaved rounds)');
  console.log(line('concurrency 1', r.c1));
  console.log(line('concurrency 32', r.c32));
  console.log(
    `hook cost      ${(await benchHookCost()).toFixed(2)} µs per request (beforeRequest + afterResponse, token in memory)`,
  );
}

/**
 * What do keyfob's fetch wrapper and undici interceptor cost per request? Each is timed against the
 * same client sending a hard-coded `Authorization` header, interleaved in one process against one
 * local node:http server that checks the header:
 * - concurrency 1: request by request, alternating which side goes first, each request timed;
 * - concurrency 32: 32 workers per side running at the same time.
 * The figure is the ratio of time per request (keyfob / hard-coded), median of rounds: 1.00 = free,
 * the target is <= 1.03. Run: `pnpm --filter @keyfob/fetch bench`.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { staticToken, TokenManager } from '@keyfob/core';
import { tokenInterceptor, withTokens } from '@keyfob/fetch';
import { Agent, request } from 'undici';

const TOKEN = 'bench-access-token-0123456789abcdef';
type Call = () => Promise<unknown>;

export interface OverheadFigures {
  /** keyfob's requests per second. */
  keyfob: number;
  /** The hard-coded header's requests per second. */
  baseline: number;
  /** Time per request, keyfob / hard-coded (median of the rounds' ratios). */
  ratio: number;
  /** CPU time per request in µs, keyfob and hard-coded (concurrency 1 only; NaN otherwise). */
  cpuKeyfob: number;
  cpuBaseline: number;
  /** CPU time per request, keyfob / hard-coded (concurrency 1 only). */
  cpuRatio: number;
  /**
   * Concurrency 1 only: the median over request pairs (one keyfob, one hard-coded, back to back) of
   * their time ratio: a request the machine stalls weighs one pair, not the round's total.
   */
  pairRatio: number;
}

/**
 * The pairs measured: the two bindings against the same client with a hard-coded header, undici's
 * compose() cost (a hard-coded interceptor against a plain Agent) and keyfob's interceptor against a
 * plain Agent (the two together).
 */
type Side = 'fetch' | 'undici' | 'compose' | 'undiciVsAgent';
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
/** requests/s keyfob, requests/s hard-coded, CPU µs per request each (c1), median per-pair time ratio (c1). */
type Row = [number, number, number, number, number];

/** CPU time (user + system) of this process so far, in ms. */
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/**
 * Concurrency 1. Besides wall time, the process CPU time spent while each request was in flight
 * (client and server run in this process): unlike wall time, it does not count the time a loaded
 * machine keeps the process off the CPU.
 */
async function c1(a: Call, b: Call, ms: number): Promise<Row> {
  let ta = 0;
  let tb = 0;
  let ca = 0;
  let cb = 0;
  let n = 0;
  const pairs: number[] = [];
  const until = performance.now() + ms;
  while (performance.now() < until) {
    let pa = 0;
    let pb = 0;
    for (const side of n % 2 === 0 ? [a, b] : [b, a]) {
      const c = cpu();
      const t = performance.now();
      await side();
      const dt = performance.now() - t;
      const dc = cpu() - c;
      if (side === a) {
        ta += dt;
        ca += dc;
        pa = dt;
      } else {
        tb += dt;
        cb += dc;
        pb = dt;
      }
    }
    pairs.push(pa / pb);
    n++;
  }
  return [(n / ta) * 1000, (n / tb) * 1000, (ca / n) * 1000, (cb / n) * 1000, median(pairs)];
}

async function c32(a: Call, b: Call, ms: number): Promise<Row> {
  let na = 0;
  let nb = 0;
  const until = performance.now() + ms;
  const started = performance.now();
  const worker = async (call: Call, count: () => void) => {
    while (performance.now() < until) {
      await call();
      count();
    }
  };
  await Promise.all([
    ...Array.from({ length: 32 }, () => worker(a, () => na++)),
    ...Array.from({ length: 32 }, () => worker(b, () => nb++)),
  ]);
  const s = (performance.now() - started) / 1000;
  return [na / s, nb / s, Number.NaN, Number.NaN, Number.NaN];
}

export async function benchFetchOverhead(
  opts: { roundMs?: number; rounds?: number } = {},
): Promise<Record<Side, { c1: OverheadFigures; c32: OverheadFigures }>> {
  const roundMs = opts.roundMs ?? 1_500;
  const rounds = opts.rounds ?? 7;
  let wrong = 0;
  const server = createServer((req, res) => {
    if (req.headers.authorization !== `Bearer ${TOKEN}`) wrong++;
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const url = `${base}/ping`;
  const manager = new TokenManager({ grant: staticToken({ accessToken: TOKEN }) });
  const header = { authorization: `Bearer ${TOKEN}` };

  // The wrapper and the baseline share global fetch (and its connection pool).
  const wrapped = withTokens(fetch, manager, { origins: [base] });
  const fetchPair: [Call, Call] = [
    () => wrapped(url).then((r) => r.text()),
    () => fetch(url, { headers: header }).then((r) => r.text()),
  ];
  // The interceptor against the same client with a hard-coded header: an Agent composed with an
  // interceptor that sets the header (what a hand-written interceptor costs). Each on an Agent of its
  // own, same settings.
  const agentA = new Agent({ connections: 64 });
  const agentB = new Agent({ connections: 64 });
  const agentC = new Agent({ connections: 64 });
  const withToken = agentA.compose(tokenInterceptor(manager, { origins: [base] }));
  const hardCoded = agentB.compose(
    (dispatch) => (o, h) => dispatch({ ...o, headers: { ...(o.headers as object), ...header } }, h),
  );
  const viaKeyfob: Call = () => request(url, { dispatcher: withToken }).then((r) => r.body.text());
  const viaHardCoded: Call = () => request(url, { dispatcher: hardCoded }).then((r) => r.body.text());
  // undici's compose() has a cost of its own, whatever the interceptor does (each layer wraps the
  // caller's handler and converts headers between undici's two handler APIs): the hard-coded
  // interceptor against a plain Agent given the header with each request, and keyfob against that.
  const viaAgent: Call = () =>
    request(url, { dispatcher: agentC, headers: header }).then((r) => r.body.text());
  const undiciPair: [Call, Call] = [viaKeyfob, viaHardCoded];
  const composePair: [Call, Call] = [viaHardCoded, viaAgent];
  const plainAgentPair: [Call, Call] = [viaKeyfob, viaAgent];
  try {
    const out = {} as Record<Side, { c1: OverheadFigures; c32: OverheadFigures }>;
    for (const [name, [a, b]] of [
      ['fetch', fetchPair],
      ['undici', undiciPair],
      ['compose', composePair],
      ['undiciVsAgent', plainAgentPair],
    ] as const) {
      await c1(a, b, 300); // warm-up
      await c32(a, b, 300);
      const rows = { c1: [] as Row[], c32: [] as Row[] };
      for (let r = 0; r < rounds; r++) {
        rows.c1.push(await c1(a, b, roundMs));
        rows.c32.push(await c32(a, b, roundMs));
      }
      const fig = (xs: Row[]): OverheadFigures => ({
        keyfob: Math.round(median(xs.map((x) => x[0]))),
        baseline: Math.round(median(xs.map((x) => x[1]))),
        ratio: Math.round(median(xs.map(([k, b]) => b / k)) * 1000) / 1000,
        cpuKeyfob: Math.round(median(xs.map((x) => x[2])) * 10) / 10,
        cpuBaseline: Math.round(median(xs.map((x) => x[3])) * 10) / 10,
        cpuRatio: Math.round(median(xs.map((x) => x[2] / x[3])) * 1000) / 1000,
        pairRatio: Math.round(median(xs.map((x) => x[4])) * 1000) / 1000,
      });
      out[name] = { c1: fig(rows.c1), c32: fig(rows.c32) };
    }
    if (wrong > 0)
      throw new Error(`benchmark invalid: ${wrong} requests arrived without the expected header`);
    return out;
  } finally {
    await manager.close();
    await agentA.close();
    await agentB.close();
    await agentC.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
}

/**
 * keyfob's own work per request, in µs, measured without a network: the wrapper around a fetch
 * that answers at once, and the interceptor around a dispatch that answers at once, each minus the
 * same call without keyfob. Unlike requests per second, a busy machine barely blurs it.
 */
export async function benchOwnCost(iterations = 100_000): Promise<{ fetch: number; undici: number }> {
  const manager = new TokenManager({ grant: staticToken({ accessToken: TOKEN }) });
  const origin = 'http://127.0.0.1:1';
  const url = `${origin}/ping`;
  const response = new Response('ok');
  const instant = async (_input: unknown, _init?: RequestInit) => response;
  const wrapped = withTokens(instant, manager, { origins: [origin] });
  const header = { authorization: `Bearer ${TOKEN}` };
  // A dispatch that answers 200 at once, through undici 7's handler methods.
  const controller = { abort() {}, pause() {}, resume() {}, aborted: false, paused: false, reason: null };
  const instantDispatch = (_opts: unknown, handler: any) => {
    handler.onRequestStart?.(controller, {});
    handler.onResponseStart?.(controller, 200, {}, 'OK');
    handler.onResponseEnd?.(controller, {});
    return true;
  };
  const intercepted = tokenInterceptor(manager, { origins: [origin] })(instantDispatch);
  const dispatchVia = (dispatch: typeof instantDispatch, headers?: unknown) =>
    new Promise<void>((resolve) => {
      dispatch({ origin, path: '/ping', method: 'GET', headers }, { onResponseEnd: () => resolve() });
    });
  const time = async (call: () => Promise<unknown>, n: number) => {
    const t = performance.now();
    for (let i = 0; i < n; i++) await call();
    return ((performance.now() - t) * 1000) / n;
  };
  try {
    const samples = { fetch: [] as number[], undici: [] as number[] };
    for (let r = 0; r < 5; r++) {
      samples.fetch.push(
        (await time(() => wrapped(url), iterations)) -
          (await time(() => instant(url, { headers: header }), iterations)),
      );
      samples.undici.push(
        (await time(() => dispatchVia(intercepted), iterations)) -
          (await time(() => dispatchVia(instantDispatch, header), iterations)),
      );
    }
    return {
      fetch: Math.round(median(samples.fetch) * 100) / 100,
      undici: Math.round(median(samples.undici) * 100) / 100,
    };
  } finally {
    await manager.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rounds = Number(process.env.ROUNDS ?? 7);
  const r = await benchFetchOverhead({ rounds });
  console.log(
    `@keyfob/fetch overhead: time per request, keyfob / hard-coded header (median of ${rounds} rounds)`,
  );
  for (const [name, label] of [
    ['fetch', 'withTokens(fetch) vs fetch              '],
    ['undici', 'tokenInterceptor vs hard-coded interceptor'],
    ['compose', 'hard-coded interceptor vs plain Agent   '],
    ['undiciVsAgent', 'tokenInterceptor vs plain Agent         '],
  ] as const) {
    for (const c of ['c1', 'c32'] as const) {
      const f = r[name][c];
      console.log(
        `${label} ${c.padEnd(3)}  keyfob ${String(f.keyfob).padStart(6)} req/s  baseline ${String(f.baseline).padStart(6)} req/s  ratio ${f.ratio.toFixed(3)}${
          c === 'c1'
            ? `  pairs ${f.pairRatio.toFixed(3)}  cpu ${f.cpuKeyfob} / ${f.cpuBaseline} µs = ${f.cpuRatio.toFixed(3)}`
            : ''
        }`,
      );
    }
  }
  const own = await benchOwnCost();
  console.log(
    `keyfob's own work per request (no network): withTokens ${own.fetch} µs, tokenInterceptor ${own.undici} µs`,
  );
}

/**
 * What does @keyfob/axios cost per request? Requests/s of one axios setup with `attachTokens` versus
 * the same setup with a hard-coded `Authorization` header, against a local server that answers 200
 * at once (so the adapter's share is as large as it can get). Rounds are interleaved (A, B, B, A... in
 * short slices) so drift of the machine hits both sides alike; the figures are medians over the rounds.
 *
 * Run: `pnpm --filter @keyfob/axios bench` (or `tsx bench/overhead.ts [roundMs] [rounds]`).
 */
import { createServer, Agent as HttpAgent, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { attachTokens } from '@keyfob/axios';
import { clientCredentials, TokenManager } from '@keyfob/core';
import axios, { type AxiosInstance } from 'axios';

export interface OverheadFigures {
  /** Requests per second (median of the rounds). */
  keyfob: number;
  baseline: number;
  /** keyfob / baseline: 1 means no measurable cost. */
  ratio: number;
  /** Process CPU time per request (client and server share the process), median, in microseconds. */
  keyfobCpuUs: number;
  baselineCpuUs: number;
}

export interface OverheadResult {
  c1: OverheadFigures;
  c32: OverheadFigures;
}

const TOKEN = 'bench-access-token-0123456789abcdef';

async function startBenchServer(): Promise<{
  url: string;
  rejected: () => number;
  close: () => Promise<void>;
}> {
  let rejected = 0;
  const expected = `Bearer ${TOKEN}`;
  const server: Server = createServer((req, res) => {
    if (req.method === 'POST' && req.url === '/token') {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ access_token: TOKEN, token_type: 'Bearer', expires_in: 3600 }));
      });
      return;
    }
    if (req.headers.authorization !== expected) {
      rejected++;
      res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"' });
      res.end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"ok":true}');
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    rejected: () => rejected,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

interface Tally {
  done: number;
  ms: number;
  cpuUs: number;
}

/** `concurrency` workers send one request after another for `ms`; what they completed, in what time and CPU. */
async function slice(http: AxiosInstance, concurrency: number, ms: number, into: Tally): Promise<void> {
  let done = 0;
  const cpu = process.cpuUsage();
  const started = performance.now();
  const deadline = started + ms;
  const worker = async () => {
    while (performance.now() < deadline) {
      await http.get('/resource');
      done++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const used = process.cpuUsage(cpu);
  into.done += done;
  into.ms += performance.now() - started;
  into.cpuUs += used.user + used.system;
}

/**
 * One round: `roundMs` per side, cut into short slices sent A B B A A B ..., so both sides see the same
 * moments of a busy machine (other processes come and go on a scale of seconds).
 */
async function round(a: AxiosInstance, b: AxiosInstance, concurrency: number, roundMs: number) {
  const slices = 8;
  const ta: Tally = { done: 0, ms: 0, cpuUs: 0 };
  const tb: Tally = { done: 0, ms: 0, cpuUs: 0 };
  for (let i = 0; i < slices; i++) {
    const aFirst = i % 2 === 0;
    await slice(aFirst ? a : b, concurrency, roundMs / slices, aFirst ? ta : tb);
    await slice(aFirst ? b : a, concurrency, roundMs / slices, aFirst ? tb : ta);
  }
  const rate = (t: Tally) => ({ rps: t.done / (t.ms / 1000), cpuUs: t.cpuUs / Math.max(1, t.done) });
  return { a: rate(ta), b: rate(tb) };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/**
 * Requests/s with `attachTokens` and with a hard-coded header, at concurrency 1 and 32: medians over
 * `rounds` interleaved rounds of `roundMs` per side, after one uncounted warm-up round. `ratio` is the
 * median of the per-round ratios (each round's two sides ran in the same seconds).
 */
export async function benchAxiosOverhead(
  opts: { roundMs?: number; rounds?: number } = {},
): Promise<OverheadResult> {
  const roundMs = Math.max(16, opts.roundMs ?? 1_500);
  const rounds = Math.max(1, Math.min(opts.rounds ?? 5, 50));
  const server = await startBenchServer();
  const agent = new HttpAgent({ keepAlive: true, maxSockets: 64 });
  const tokens = new TokenManager({
    tokenUrl: `${server.url}/token`,
    grant: clientCredentials({ clientId: 'bench', clientSecret: 'bench-secret' }),
  });
  try {
    const withKeyfob = axios.create({ baseURL: server.url, httpAgent: agent });
    attachTokens(withKeyfob, tokens);
    const baseline = axios.create({
      baseURL: server.url,
      httpAgent: agent,
      headers: { Authorization: `Bearer ${TOKEN}` },
    });
    const result = {} as OverheadResult;
    for (const concurrency of [1, 32] as const) {
      // Warm-up (token fetch, sockets, JIT tiers), not counted.
      await round(withKeyfob, baseline, concurrency, roundMs);
      const measured = [];
      for (let r = 0; r < rounds; r++) measured.push(await round(withKeyfob, baseline, concurrency, roundMs));
      result[concurrency === 1 ? 'c1' : 'c32'] = {
        keyfob: median(measured.map((m) => m.a.rps)),
        baseline: median(measured.map((m) => m.b.rps)),
        ratio: median(measured.map((m) => m.a.rps / m.b.rps)),
        keyfobCpuUs: median(measured.map((m) => m.a.cpuUs)),
        baselineCpuUs: median(measured.map((m) => m.b.cpuUs)),
      };
    }
    if (server.rejected() > 0) {
      throw new Error(`bench server rejected ${server.rejected()} requests: the token was not attached`);
    }
    return result;
  } finally {
    await tokens.close();
    agent.destroy();
    await server.close();
  }
}

export function formatOverhead(result: OverheadResult): string {
  const row = (name: string, f: OverheadFigures) =>
    `| ${name.padEnd(11)} | ${f.keyfob.toFixed(0).padStart(12)} | ${f.baseline.toFixed(0).padStart(14)} | ${f.ratio.toFixed(3).padStart(5)} | ${f.keyfobCpuUs.toFixed(0).padStart(16)} | ${f.baselineCpuUs.toFixed(0).padStart(18)} |`;
  return [
    '| concurrency | keyfob req/s | baseline req/s | ratio | keyfob CPU µs/req | baseline CPU µs/req |',
    '| ----------- | ------------ | -------------- | ----- | ---------------- | ------------------ |',
    row('1', result.c1),
    row('32', result.c32),
  ].join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [roundMs, rounds] = process.argv.slice(2).map(Number);
  const result = await benchAxiosOverhead({
    ...(roundMs ? { roundMs } : {}),
    ...(rounds ? { rounds } : {}),
  });
  console.log(`@keyfob/axios overhead (node ${process.version}, axios ${axios.VERSION})`);
  console.log(formatOverhead(result));
}

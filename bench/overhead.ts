// Scenario 2: adapter overhead, interleaved at the finest grain: at concurrency 1 each loop iteration sends one
// request through keyfob and one with a hard-coded header (order alternating) and times each; at concurrency
// 32, 32 workers per side run at the same time against the same server. Both sides therefore see the same
// machine at the same moments; the ratio is keyfob's requests/s over the baseline's, median of rounds.
import { Agent, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { attachTokens } from '../packages/axios/dist/index.js';
import { customGrant, staticToken, TokenManager } from '../packages/core/dist/index.js';
import { withTokens } from '../packages/got/dist/index.js';
import { axios, got } from './deps.ts';

const TOKEN = 'bench-access-token-0123456789abcdef';

export interface OverheadRow {
  keyfob: number;
  baseline: number;
  ratio: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

type Call = () => Promise<unknown>;

async function clients(
  adapter: 'axios' | 'got',
  baseUrl: string,
  manager: TokenManager | undefined,
): Promise<[Call, Call, () => void]> {
  const agentA = new Agent({ keepAlive: true });
  const agentB = new Agent({ keepAlive: true });
  const close = () => {
    agentA.destroy();
    agentB.destroy();
  };
  if (adapter === 'axios') {
    const a = axios.create({
      baseURL: baseUrl,
      httpAgent: agentA,
      ...(manager ? {} : { headers: { authorization: `Bearer ${TOKEN}` } }),
    });
    if (manager) attachTokens(a, manager);
    const b = axios.create({
      baseURL: baseUrl,
      httpAgent: agentB,
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    return [() => a.get('/ping'), () => b.get('/ping'), close];
  }
  const plain = got.extend({
    prefixUrl: baseUrl,
    agent: { http: agentA },
    ...(manager ? {} : { headers: { authorization: `Bearer ${TOKEN}` } }),
  });
  const a = manager ? withTokens(plain, manager) : plain;
  const b = got.extend({
    prefixUrl: baseUrl,
    agent: { http: agentB },
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  return [() => a.get('ping'), () => b.get('ping'), close];
}

/**
 * `dpop: true`: keyfob's side holds a DPoP-bound token and sends `Authorization: DPoP` plus a fresh proof
 * (one ES256 signature) per request; the baseline still sends the hard-coded Bearer header, so the ratio
 * is the whole cost of DPoP on the client. `aa: true`: both sides are the hard-coded client (an A/A run), so
 * the ratio shows what this machine and harness do to two identical clients: the noise floor.
 */
export async function benchOverhead(
  adapter: 'axios' | 'got',
  opts: { roundMs?: number; rounds?: number; dpop?: boolean; aa?: boolean } = {},
): Promise<{ c1: OverheadRow; c32: OverheadRow; proofs: number; dpopRequests: number }> {
  const roundMs = opts.roundMs ?? 2_000;
  const rounds = opts.rounds ?? 7;
  let wrong = 0;
  // DPoP requests seen, and the proofs they carried (one per request attempt, none reused).
  let dpopRequests = 0;
  let proofs = 0;
  // The latest proofs (a small ring, so the check costs the server next to nothing): none may come twice.
  const recent: string[] = new Array(64).fill('');
  const server = createServer((req, res) => {
    if (req.headers.authorization === `DPoP ${TOKEN}`) {
      dpopRequests++;
      const proof = req.headers.dpop;
      if (typeof proof === 'string' && !recent.includes(proof)) {
        proofs++;
        recent[proofs & 63] = proof;
      } else wrong++;
    } else if (req.headers.authorization !== `Bearer ${TOKEN}`) wrong++;
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const manager = opts.dpop
    ? new TokenManager({
        dpop: true,
        grant: customGrant(async () => ({ access_token: TOKEN, token_type: 'DPoP', expires_in: 86_400 })),
      })
    : new TokenManager({ grant: staticToken({ accessToken: TOKEN }) });
  const [a, b, close] = await clients(adapter, baseUrl, opts.aa ? undefined : manager);
  try {
    // Concurrency 1: request-by-request interleaving, each request timed.
    const c1 = async () => {
      let ta = 0;
      let tb = 0;
      let n = 0;
      const until = performance.now() + roundMs;
      while (performance.now() < until) {
        const first = n % 2 === 0;
        for (const side of first ? [a, b] : [b, a]) {
          const t = performance.now();
          await side();
          const dt = performance.now() - t;
          if (side === a) ta += dt;
          else tb += dt;
        }
        n++;
      }
      return { keyfob: (n / ta) * 1000, baseline: (n / tb) * 1000 };
    };
    // Concurrency 32: both sides' workers share the event loop and the server at the same time.
    const c32 = async () => {
      let na = 0;
      let nb = 0;
      const until = performance.now() + roundMs;
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
      return { keyfob: na / s, baseline: nb / s };
    };
    await c1(); // warm-up
    await c32();
    const out: Record<'c1' | 'c32', { keyfob: number[]; baseline: number[]; ratio: number[] }> = {
      c1: { keyfob: [], baseline: [], ratio: [] },
      c32: { keyfob: [], baseline: [], ratio: [] },
    };
    for (let r = 0; r < rounds; r++) {
      for (const [name, run] of [
        ['c1', c1],
        ['c32', c32],
      ] as const) {
        const x = await run();
        out[name].keyfob.push(x.keyfob);
        out[name].baseline.push(x.baseline);
        out[name].ratio.push(x.keyfob / x.baseline);
      }
    }
    if (wrong > 0) throw new Error(`${wrong} requests arrived without the expected Authorization header`);
    const row = (k: 'c1' | 'c32'): OverheadRow => ({
      keyfob: median(out[k].keyfob),
      baseline: median(out[k].baseline),
      ratio: median(out[k].ratio),
    });
    if (opts.dpop && dpopRequests === 0) throw new Error('keyfob sent no DPoP request');
    return { c1: row('c1'), c32: row('c32'), proofs, dpopRequests };
  } finally {
    close();
    await manager.close();
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  // tsx bench/overhead.ts [axios|got]
  const only = process.argv[2];
  for (const adapter of ['axios', 'got'] as const) {
    if (only && only !== adapter) continue;
    const { c1, c32 } = await benchOverhead(adapter, { rounds: 5 });
    console.log(`${adapter}: ratio c1 ${c1.ratio.toFixed(3)}, c32 ${c32.ratio.toFixed(3)}`);
  }
}

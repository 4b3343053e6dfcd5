// Scenarios 3-5: cold burst, expiry crossing, mass revocation, through real axios and got against
// a node:http token endpoint and protected API on 127.0.0.1.
import { Agent as HttpAgent } from 'node:http';
import { attachTokens } from '../packages/axios/dist/index.js';
import { clientCredentials, TokenManager } from '../packages/core/dist/index.js';
import { withTokens } from '../packages/got/dist/index.js';
import { Issuer, startServer, type TestServer } from '../packages/testing/src/index.ts';
import { axios, got } from './deps.ts';

export type AdapterName = 'axios' | 'got';

interface Rig {
  issuer: Issuer;
  server: TestServer;
  tokenUrl: string;
  apiUrl: string;
  /** Token lifetime handed out, seconds. */
  lifetime: { seconds: number };
  latencyMs: { value: number };
}

async function rig(lifetimeSeconds: number, latencyMs: number): Promise<Rig> {
  const issuer = new Issuer();
  const lifetime = { seconds: lifetimeSeconds };
  const latency = { value: latencyMs };
  const server = await startServer(async (req) => {
    if (req.path === '/token') {
      issuer.tokenRequests++;
      if (latency.value) await new Promise((r) => setTimeout(r, latency.value));
      const i = issuer.issue(lifetime.seconds);
      return { body: { access_token: i.token, token_type: 'Bearer', expires_in: lifetime.seconds } };
    }
    const c = issuer.check(req.headers.authorization);
    return c.ok ? { body: { ok: true } } : c.reply;
  });
  return {
    issuer,
    server,
    tokenUrl: `${server.url}/token`,
    apiUrl: `${server.url}/api`,
    lifetime,
    latencyMs: latency,
  };
}

function manager(r: Rig) {
  return new TokenManager({
    tokenUrl: r.tokenUrl,
    grant: clientCredentials({ clientId: 'bench', clientSecret: 'bench-secret' }),
  });
}

/** A client for `adapter`: `call()` resolves the HTTP status; failures reject. */
function client(adapter: AdapterName, r: Rig, tokens: TokenManager | undefined, fixedHeader?: string) {
  const agent = new HttpAgent({ keepAlive: true, maxSockets: 256 });
  if (adapter === 'axios') {
    const instance = axios.create({
      baseURL: r.apiUrl,
      httpAgent: agent,
      validateStatus: () => true,
      ...(fixedHeader ? { headers: { authorization: fixedHeader } } : {}),
    });
    if (tokens) attachTokens(instance, tokens);
    return { call: async () => (await instance.get('/x')).status, close: () => agent.destroy() };
  }
  const base = got.extend({
    prefixUrl: r.apiUrl,
    agent: { http: agent },
    throwHttpErrors: false,
    retry: { limit: 0 },
    ...(fixedHeader ? { headers: { authorization: fixedHeader } } : {}),
  });
  const instance = tokens ? withTokens(base, tokens) : base;
  return { call: async () => (await instance.get('x')).statusCode, close: () => agent.destroy() };
}

export interface BurstResult {
  adapter: AdapterName;
  requests: number;
  failed: number;
  tokenRequests: number;
}

/** 3. Cold burst: N concurrent requests on a cold cache. Target: 1 token request. */
export async function coldBurst(adapter: AdapterName, n = 10_000): Promise<BurstResult> {
  const r = await rig(3600, 50);
  const tokens = manager(r);
  const c = client(adapter, r, tokens);
  try {
    const results = await Promise.allSettled(Array.from({ length: n }, () => c.call()));
    const failed = results.filter((x) => x.status === 'rejected' || x.value !== 200).length;
    return { adapter, requests: n, failed, tokenRequests: r.issuer.tokenRequests };
  } finally {
    c.close();
    await tokens.close();
    await r.server.close();
  }
}

export interface CrossingResult {
  adapter: AdapterName;
  requests: number;
  failed: number;
  api401: number;
  tokenRequests: number;
  lifetimes: number;
  p99KeyfobMs: number;
  p99BaselineMs: number;
  p99Ratio: number;
}

function p99(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * 0.99))] ?? Number.NaN;
}

/**
 * 4. Expiry crossing: 2 s tokens, 50 ms token endpoint latency, concurrency 32 for 10 s, keyfob and a
 * hard-coded (never-expiring) header running side by side on the same server, so both see the same noise.
 */
export async function expiryCrossing(
  adapter: AdapterName,
  opts: { seconds?: number; concurrency?: number; lifetimeSeconds?: number } = {},
): Promise<CrossingResult> {
  const seconds = opts.seconds ?? 10;
  const concurrency = opts.concurrency ?? 32;
  const lifetime = opts.lifetimeSeconds ?? 2;
  const r = await rig(lifetime, 50);
  const fixed = r.issuer.issue(3600).token;
  const tokens = manager(r);
  await tokens.getToken(); // both sides start warm; the test is the crossing, not the first fetch
  const r0 = r.issuer.tokenRequests;
  const k = client(adapter, r, tokens);
  const b = client(adapter, r, undefined, `Bearer ${fixed}`);
  const lat = { keyfob: [] as number[], baseline: [] as number[] };
  let requests = 0;
  let failed = 0;
  const until = Date.now() + seconds * 1000;
  const worker = async (side: 'keyfob' | 'baseline') => {
    const c = side === 'keyfob' ? k : b;
    while (Date.now() < until) {
      const t = performance.now();
      let status = 0;
      try {
        status = await c.call();
      } catch {
        status = 0;
      }
      lat[side].push(performance.now() - t);
      if (side === 'keyfob') {
        requests++;
        if (status !== 200) failed++;
      }
    }
  };
  const api401Before = r.issuer.api401;
  await Promise.all([
    ...Array.from({ length: concurrency }, () => worker('keyfob')),
    ...Array.from({ length: concurrency }, () => worker('baseline')),
  ]);
  k.close();
  b.close();
  await tokens.close();
  await r.server.close();
  const p99k = p99(lat.keyfob);
  const p99b = p99(lat.baseline);
  return {
    adapter,
    requests,
    failed,
    api401: r.issuer.api401 - api401Before,
    tokenRequests: r.issuer.tokenRequests - r0,
    lifetimes: seconds / lifetime,
    p99KeyfobMs: p99k,
    p99BaselineMs: p99b,
    p99Ratio: p99k / p99b,
  };
}

export interface RevocationResult {
  adapter: AdapterName;
  requests: number;
  failed: number;
  revocations: number;
  tokenRequests: number;
}

/** 5. Mass revocation mid-run: every issued token revoked twice during a 6 s run at concurrency 32. */
export async function massRevocation(
  adapter: AdapterName,
  opts: { seconds?: number; revocations?: number } = {},
): Promise<RevocationResult> {
  const seconds = opts.seconds ?? 6;
  const revocations = opts.revocations ?? 2;
  const r = await rig(3600, 20);
  const tokens = manager(r);
  await tokens.getToken();
  const r0 = r.issuer.tokenRequests;
  const c = client(adapter, r, tokens);
  let requests = 0;
  let failed = 0;
  const until = Date.now() + seconds * 1000;
  const timers = Array.from({ length: revocations }, (_, i) =>
    setTimeout(() => r.issuer.revokeAll(), ((i + 1) * seconds * 1000) / (revocations + 1)),
  );
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (Date.now() < until) {
        requests++;
        try {
          if ((await c.call()) !== 200) failed++;
        } catch {
          failed++;
        }
      }
    }),
  );
  for (const t of timers) clearTimeout(t);
  c.close();
  await tokens.close();
  await r.server.close();
  return { adapter, requests, failed, revocations, tokenRequests: r.issuer.tokenRequests - r0 };
}

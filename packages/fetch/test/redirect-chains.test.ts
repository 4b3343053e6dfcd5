import { clientCredentials, RequestPolicy, TokenManager } from '@keyfob/core';
import {
  genericClientCredentials,
  type Reply,
  startProtectedApi,
  startServer,
  type TestServer,
} from '@keyfob/testing';
import * as undici from 'undici';
import * as undici6 from 'undici6';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type TokenInterceptor, tokenInterceptor } from '../src/index.js';
import { RedirectChains } from '../src/redirect-chains.js';

/**
 * A redirect chain that leaves the allowed origins and comes back: api -> foreign -> api. The hops
 * after the foreign one must not get keyfob's token, and a 401 there must not invalidate it nor be
 * retried, whichever way the hops reach the interceptor: undici's redirect handler dispatching
 * every hop through it (composed after keyfob's, or a per-request `maxRedirections`), undici's
 * redirect handler below it (composed before keyfob's, undici 6's `maxRedirections`), or fetch,
 * which follows redirects above the dispatcher and dispatches every hop as a request of its own.
 */

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

const CLIENT = { clientId: 'svc', clientSecret: 'svc-secret-value-123' };
const BEARER = /^Bearer at_[0-9a-f]{32}$/;
const redirectTo = (location: string): Reply => ({ status: 302, headers: { location } });

/** One way of sending a GET through a dispatcher composed with keyfob's interceptor; resolves its status. */
interface Variant {
  name: string;
  client(tokens: TokenInterceptor): { get(url: string): Promise<number>; close(): Promise<void> };
}

const u7request = (dispatcher: undici.Dispatcher, extra: Record<string, unknown> = {}) => ({
  async get(url: string) {
    const res = await undici.request(url, { dispatcher, ...extra } as Parameters<typeof undici.request>[1]);
    await res.body.dump();
    return res.statusCode;
  },
  close: () => dispatcher.close(),
});
const u6request = (dispatcher: undici6.Dispatcher, extra: Record<string, unknown> = {}) => ({
  async get(url: string) {
    const res = await undici6.request(url, { dispatcher, ...extra } as Parameters<typeof undici6.request>[1]);
    await res.body.dump();
    return res.statusCode;
  },
  close: () => dispatcher.close(),
});
const viaFetch = (
  fetch: (url: string, init: { dispatcher: never }) => Promise<{ status: number; text(): Promise<string> }>,
  dispatcher: { close(): Promise<void> },
) => ({
  async get(url: string) {
    const res = await fetch(url, { dispatcher: dispatcher as never });
    await res.text();
    return res.status;
  },
  close: () => dispatcher.close(),
});

const VARIANTS: Variant[] = [
  {
    name: 'undici.request, compose(tokenInterceptor, redirect) (every hop dispatched through keyfob)',
    client: (tokens) =>
      u7request(new undici.Agent().compose(tokens, undici.interceptors.redirect({ maxRedirections: 5 }))),
  },
  {
    name: 'undici.request, compose(redirect, tokenInterceptor) (hops followed below keyfob)',
    client: (tokens) =>
      u7request(new undici.Agent().compose(undici.interceptors.redirect({ maxRedirections: 5 }), tokens)),
  },
  {
    name: 'undici.request with maxRedirections (redirect interceptor after keyfob`s, no default)',
    client: (tokens) =>
      u7request(new undici.Agent().compose(tokens, undici.interceptors.redirect()), { maxRedirections: 5 }),
  },
  {
    name: 'undici.request, compose(tokenInterceptor, retry, redirect) (a fresh handler per hop)',
    client: (tokens) =>
      u7request(
        new undici.Agent().compose(
          tokens,
          undici.interceptors.retry({ maxRetries: 1, minTimeout: 10 }),
          undici.interceptors.redirect({ maxRedirections: 5 }),
        ),
      ),
  },
  {
    name: 'undici.fetch(url, { dispatcher })',
    client: (tokens) => viaFetch(undici.fetch as never, new undici.Agent().compose(tokens)),
  },
  {
    name: 'global fetch(url, { dispatcher }) (Node`s own undici)',
    client: (tokens) => viaFetch(globalThis.fetch as never, new undici.Agent().compose(tokens)),
  },
  {
    name: 'undici 6: undici.request, compose(tokenInterceptor, redirect)',
    client: (tokens) =>
      u6request(new undici6.Agent().compose(tokens, undici6.interceptors.redirect({ maxRedirections: 5 }))),
  },
  {
    name: 'undici 6: undici.request, compose(redirect, tokenInterceptor)',
    client: (tokens) =>
      u6request(new undici6.Agent().compose(undici6.interceptors.redirect({ maxRedirections: 5 }), tokens)),
  },
  {
    name: 'undici 6: undici.request with maxRedirections (the Agent follows, below keyfob)',
    client: (tokens) => u6request(new undici6.Agent().compose(tokens), { maxRedirections: 5 }),
  },
  {
    name: 'undici 6: fetch(url, { dispatcher })',
    client: (tokens) => viaFetch(undici6.fetch as never, new undici6.Agent().compose(tokens)),
  },
];

/**
 * The token endpoint; the API (`/api/*` and `/final` need the token, `/401` always answers 401,
 * `/redir*` go to the foreign server, `/same` and `/same-abs` go to `/final`); a foreign server
 * (another port) that sends everything back to the API.
 */
async function setup() {
  const auth = await genericClientCredentials(CLIENT);
  cleanup.push(() => auth.close());
  let foreign!: TestServer;
  const api = await startProtectedApi(auth.issuer, (req): Reply => {
    if (req.path === '/redir') return redirectTo(`${foreign.url}/redir`);
    if (req.path === '/redir-401') return redirectTo(`${foreign.url}/redir-401`);
    if (req.path === '/redir-long') return redirectTo(`${foreign.url}/via-same`);
    if (req.path === '/same') return redirectTo('/final');
    if (req.path === '/same-abs') return redirectTo(`${api.url}/final`);
    if (req.path === '/401')
      return { status: 401, headers: { 'www-authenticate': 'Bearer error="invalid_token"' } };
    return { status: 404 };
  });
  cleanup.push(() => api.close());
  foreign = await startServer((req): Reply => {
    if (req.path === '/redir') return redirectTo(`${api.url}/final`);
    if (req.path === '/redir-401') return redirectTo(`${api.url}/401`);
    if (req.path === '/via-same') return redirectTo(`${api.url}/same`);
    if (req.path === '/via-same-abs') return redirectTo(`${api.url}/same-abs`);
    if (req.path === '/to-api') return redirectTo(`${api.url}/api/landing`);
    // Raw bytes in Location (Node writes a header string as latin-1): 0xFC is not UTF-8, 0xC3 0xBC is 'ü'.
    if (req.path === '/to-api-fc') return redirectTo(`${api.url}/api/\u00fc`);
    if (req.path === '/to-api-utf8') return redirectTo(`${api.url}/api/\u00c3\u00bc`);
    return { body: {} };
  });
  cleanup.push(() => foreign.close());
  const manager = new TokenManager({ tokenUrl: auth.tokenUrl, grant: clientCredentials(CLIENT), retries: 0 });
  cleanup.push(() => manager.close());
  const at = (path: string) => api.requests.filter((r) => r.path === path);
  const tokenRequests = () => auth.tokenRequests().length;
  return { api, foreign, manager, at, tokenRequests };
}

for (const variant of VARIANTS) {
  describe(`redirect chains: ${variant.name}`, () => {
    async function client() {
      const s = await setup();
      const c = variant.client(tokenInterceptor(s.manager, { origins: [s.api.url] }));
      cleanup.push(() => c.close());
      return { ...s, get: c.get };
    }

    it('api -> foreign -> api: the last hop gets no token; its 401 invalidates nothing and is not retried', async () => {
      const { api, foreign, at, get, tokenRequests } = await client();
      expect(await get(`${api.url}/redir`)).toBe(401);
      expect(BEARER.test(at('/redir')[0]!.headers.authorization ?? '')).toBe(true);
      expect(foreign.requests.map((r) => r.headers.authorization)).toEqual([undefined]);
      expect(at('/final').map((r) => r.headers.authorization)).toEqual([undefined]);
      expect(tokenRequests()).toBe(1);
      // The token is still good, and the next request of its own to that URL carries it.
      expect(await get(`${api.url}/final`)).toBe(200);
      expect(BEARER.test(at('/final')[1]!.headers.authorization ?? '')).toBe(true);
      expect(tokenRequests()).toBe(1);
    });

    it('api -> foreign -> api/401: one token issued, one request to /401', async () => {
      const { api, at, get, tokenRequests } = await client();
      expect(await get(`${api.url}/redir-401`)).toBe(401);
      expect(at('/401')).toHaveLength(1);
      expect(at('/401')[0]!.headers.authorization).toBeUndefined();
      expect(tokenRequests()).toBe(1);
    });

    it('api -> foreign -> api -> api: stripped once, the token does not come back on any later hop', async () => {
      const { api, at, get, tokenRequests } = await client();
      expect(await get(`${api.url}/redir-long`)).toBe(401);
      expect(at('/same').map((r) => r.headers.authorization)).toEqual([undefined]);
      expect(at('/final').map((r) => r.headers.authorization)).toEqual([undefined]);
      expect(tokenRequests()).toBe(1);
    });

    it('foreign -> api: a request that started on another origin gets no token on the api hop', async () => {
      const { api, foreign, at, get, tokenRequests } = await client();
      expect(await get(`${foreign.url}/to-api`)).toBe(401);
      expect(at('/api/landing').map((r) => r.headers.authorization)).toEqual([undefined]);
      expect(tokenRequests()).toBe(0);
      expect(await get(`${api.url}/api/landing`)).toBe(200);
    });

    it('foreign -> api with raw non-ASCII bytes in Location (invalid and valid UTF-8): no token on the api hop', async () => {
      const { api, foreign, get, tokenRequests } = await client();
      await get(`${foreign.url}/to-api-fc`);
      await get(`${foreign.url}/to-api-utf8`);
      // fetch reads the bytes as UTF-8 (0xFC: U+FFFD); undici 7's redirect handler as latin-1. Either way
      // the api hop is the chain's, and goes without the token.
      expect(api.requests.map((r) => [r.path.startsWith('/api/%'), r.headers.authorization])).toEqual([
        [true, undefined],
        [true, undefined],
      ]);
      expect(tokenRequests()).toBe(0);
    });

    it('api -> api (same origin): the token goes on', async () => {
      const { api, at, get, tokenRequests } = await client();
      expect(await get(`${api.url}/same`)).toBe(200);
      expect(BEARER.test(at('/final')[0]!.headers.authorization ?? '')).toBe(true);
      expect(tokenRequests()).toBe(1);
    });
  });
}

describe('redirect chains: fetch, many at once', () => {
  it('10 chains api -> foreign -> api/final and 10 requests of their own to /final, all at once', async () => {
    const { api, manager, at, tokenRequests } = await setup();
    const dispatcher = new undici.Agent().compose(tokenInterceptor(manager, { origins: [api.url] }));
    cleanup.push(() => dispatcher.close());
    const get = async (url: string) => {
      const res = await fetch(url, { dispatcher } as RequestInit);
      await res.text();
      return res.status;
    };
    expect(await get(`${api.url}/api/warm`)).toBe(200);
    const chains = Array.from({ length: 10 }, () => get(`${api.url}/redir`));
    const own = Array.from({ length: 10 }, () => get(`${api.url}/final`));
    expect(await Promise.all(chains)).toEqual(Array(10).fill(401));
    expect(await Promise.all(own)).toEqual(Array(10).fill(200));
    const finals = at('/final').map((r) => BEARER.test(r.headers.authorization ?? ''));
    expect(finals.filter((carried) => carried)).toHaveLength(10);
    expect(finals.filter((carried) => !carried)).toHaveLength(10);
    expect(tokenRequests()).toBe(1);
  });
});

describe('redirect chains: a redirect the follower below keyfob did not follow', () => {
  it('compose(redirect, tokenInterceptor) at its limit: the 3xx marks nothing, the next request gets its token', async () => {
    const { api, foreign, manager, at } = await setup();
    const dispatcher = new undici.Agent().compose(
      undici.interceptors.redirect({ maxRedirections: 1 }),
      tokenInterceptor(manager, { origins: [api.url] }),
    );
    cleanup.push(() => dispatcher.close());
    // foreign -> api/same-abs (no token: it started elsewhere) -> 302 to api/final, not followed (the limit).
    const res = await undici.request(`${foreign.url}/via-same-abs`, { dispatcher });
    await res.body.dump();
    expect(res.statusCode).toBe(302);
    const own = await undici.request(`${api.url}/final`, { dispatcher });
    await own.body.dump();
    expect(own.statusCode).toBe(200);
    expect(BEARER.test(at('/final')[0]!.headers.authorization ?? '')).toBe(true);
  });
});

describe('redirect chains: one retry per request, across its hops', () => {
  it('a 401 retried on the first hop, then a redirect to a 401 on the same origin: not retried again', async () => {
    const { api, manager, at, tokenRequests } = await setup();
    let first = true;
    const flip = await startServer((req): Reply => {
      if (req.path === '/flip' && first) {
        first = false;
        return { status: 401, headers: { 'www-authenticate': 'Bearer error="invalid_token"' } };
      }
      if (req.path === '/flip') return redirectTo('/401');
      return { status: 401, headers: { 'www-authenticate': 'Bearer error="invalid_token"' } };
    });
    cleanup.push(() => flip.close());
    const dispatcher = new undici.Agent().compose(
      tokenInterceptor(manager, { origins: [api.url, flip.url] }),
      undici.interceptors.redirect({ maxRedirections: 3 }),
    );
    cleanup.push(() => dispatcher.close());
    const res = await undici.request(`${flip.url}/flip`, { dispatcher });
    await res.body.dump();
    expect(res.statusCode).toBe(401);
    const flips = flip.requests.filter((r) => r.path === '/flip');
    expect(flips).toHaveLength(2);
    // The hop after the redirect carried the second token; its 401 ends the request.
    expect(flip.requests.filter((r) => r.path === '/401').map((r) => r.headers.authorization)).toEqual([
      flips[1]!.headers.authorization,
    ]);
    expect(at('/401')).toHaveLength(0);
    expect(tokenRequests()).toBe(2);
  });
});

describe('RedirectChains', () => {
  const API = 'https://api.example.com';
  const policy = new RequestPolicy(
    { getAuthorizationHeader: async () => 'Bearer t', invalidate: async () => true },
    { origins: [API] },
    { name: 'test' },
  );

  it('the same handler object: its next hop continues the attempt, found by identity', () => {
    const chains = new RedirectChains(policy);
    const attempt = policy.start(`${API}/a`)!;
    const handler = {};
    chains.carried(handler, attempt);
    expect(chains.of(handler, API, '/b')).toBe(attempt);
    expect(chains.of({}, API, '/b')).toBeUndefined();
  });

  it('undici`s redirect handler (a history of hops): tokenless by identity, no URL marked', () => {
    const chains = new RedirectChains(policy);
    const redirectHandler = { history: [] };
    chains.tokenless(redirectHandler, 'https://other.example/x', `${API}/final`);
    expect(chains.of(redirectHandler, API, '/final')).toBeNull();
    expect(chains.of({}, API, '/final')).toBeUndefined();
  });

  it('a fresh handler per hop (fetch): the URL is marked per redirect, for a second at most', async () => {
    const chains = new RedirectChains(policy);
    chains.tokenless({}, 'https://other.example/x', `${API}/final?q=1#frag`);
    chains.tokenless({}, 'https://other.example/y', '//api.example.com/final?q=1');
    chains.tokenless({}, 'https://other.example/z', 'https://elsewhere.example/final');
    chains.tokenless({}, 'https://other.example/z', `${API}/empty?`);
    expect(chains.of({}, API, '/final')).toBeUndefined();
    expect(chains.of({}, API, '/final?q=1')).toBeNull();
    expect(chains.of({}, API, '/final?q=1')).toBeNull();
    // Used up, but in the same instant a third dispatch cannot be told from a hop: no token for it either.
    expect(chains.of({}, API, '/final?q=1')).toBeNull();
    expect(chains.of({}, 'https://elsewhere.example', '/final')).toBeUndefined();
    // fetch keeps a trailing '?' in the path it dispatches.
    expect(chains.of({}, API, '/empty?')).toBeNull();
    await new Promise((resolve) => setImmediate(resolve));
    expect(chains.of({}, API, '/final?q=1')).toBeUndefined();
    expect(chains.of({}, API, '/empty?')).toBeUndefined();
    const now = vi.spyOn(performance, 'now');
    try {
      now.mockReturnValue(5_000);
      chains.tokenless({}, 'https://other.example/x', `${API}/in-time`);
      chains.tokenless({}, 'https://other.example/x', `${API}/late`);
      now.mockReturnValue(6_000);
      expect(chains.of({}, API, '/in-time')).toBeNull();
      now.mockReturnValue(6_001);
      expect(chains.of({}, API, '/late')).toBeUndefined();
    } finally {
      now.mockRestore();
    }
  });
});

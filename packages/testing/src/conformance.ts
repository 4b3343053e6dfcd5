/**
 * The one conformance suite of keyfob's HTTP adapters: every binding of core's `RequestPolicy`
 * (fetch wrapper, undici interceptor, axios, got, Nest HttpService, yours) runs the same tests
 * against real servers on 127.0.0.1, so they cannot drift.
 *
 * To run it for an adapter, describe how to make a client and send one request with it:
 *
 * ```ts
 * // packages/<adapter>/test/conformance.test.ts
 * import * as vitest from 'vitest';
 * import { conformance } from '@keyfob/testing';
 *
 * conformance(vitest, {
 *   name: 'axios',
 *   create(manager, { base, origins, subject, scope, retryOn401 }) {
 *     const instance = axios.create({ baseURL: base });
 *     attachTokens(instance, manager, { origins, subject, scope, retryOn401 });
 *     return {
 *       async request({ method, url, headers, body, keyfob, signal }) {
 *         try {
 *           const res = await instance.request({ method, url, headers, data: toAxiosBody(body), keyfob, signal });
 *           return { status: res.status, body: String(res.data) };
 *         } catch (error) {
 *           if (!axios.isAxiosError(error) || !error.response) throw error; // no response: rejected as is
 *           return { status: error.response.status, body: '', error };      // an HTTP error: its error too
 *         }
 *       },
 *     };
 *   },
 * });
 * ```
 *
 * The binding contract:
 * - `create(manager, options)` builds a client. `options.base` is the API's origin: a client with a
 *   base URL (axios `baseURL`, got `prefixUrl`) uses it as such; a client without one (fetch) passes
 *   `[base, ...origins]` as its `origins`. Requests are always made with absolute URLs.
 * - `request(req)` sends one request and resolves with the final response whatever its status
 *   (`{ status, body }`). When the client reports an HTTP status as an error (axios, got), resolve
 *   with `{ status, body, error }` so the suite can scan that error for tokens. When no response
 *   arrived (token endpoint failure, network error, abort), reject with the client's own error.
 * - `req.body` is `{ kind, data }`: send `data` as a string (`'string'`), bytes (`'bytes'`, a
 *   `Uint8Array`), a form (`'form'`, `URLSearchParams` or the client's equivalent) or a stream
 *   (`'stream'`, the client's stream type: a web `ReadableStream`, a Node `Readable`).
 * - `keyfobError(error)` returns the `KeyfobError` inside an error the client rejected with, when
 *   the client wraps it (fetch through a dispatcher: `TypeError('fetch failed', { cause })`).
 *   Defaults to the error itself.
 */
import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { type RunningAuthorizationServer, startAuthorizationServer } from '@keyfob/authorization-server';
import type { TokenManager } from '@keyfob/core';
import { clientCredentials, DpopKey, isKeyfobError, TokenManager as Manager } from '@keyfob/core';
import type * as Vitest from 'vitest';
import {
  genericClientCredentials,
  holdTokenEndpoint,
  type RecordedRequest,
  type Reply,
  startProtectedApi,
  startServer,
} from './index.js';
import { leakScan } from './leak-scan.js';

/** A request the suite makes through the adapter. */
export interface ConformanceRequest {
  method: string;
  /** Absolute URL. */
  url: string;
  headers?: Record<string, string>;
  body?: { kind: 'string' | 'bytes' | 'form' | 'stream'; data: string };
  keyfob?: { skip?: boolean; subject?: string; scope?: string };
  signal?: AbortSignal;
}

export interface ConformanceResponse {
  status: number;
  body: string;
  /** The error the client reported this response with, if it did (axios, got on a 4xx). */
  error?: unknown;
}

/** The adapter options the suite asks for (the options every HTTP adapter takes, plus the base). */
export interface ConformanceClientOptions {
  /** The API's origin: the client's base URL, if it has one; else include it in its `origins`. */
  base: string;
  /** Additional allowed origins. */
  origins: string[];
  subject?: string;
  scope?: string;
  retryOn401?: boolean;
}

export interface ConformanceClient {
  request(req: ConformanceRequest): Promise<ConformanceResponse>;
  close?(): Promise<void> | void;
}

export interface ConformanceBinding {
  /** Shown in the suite's title. */
  name: string;
  create(
    manager: TokenManager,
    options: ConformanceClientOptions,
  ): ConformanceClient | Promise<ConformanceClient>;
  /** The KeyfobError inside a rejection of the client, when it wraps it. Defaults to the error itself. */
  keyfobError?(error: unknown): unknown;
  /**
   * The client hands every request body to the adapter as a one-shot stream (fetch through an undici
   * dispatcher), so no body can be replayed: the suite then expects a 401 (or a DPoP nonce challenge)
   * to a request with a body to reach the caller after one attempt. Defaults to `false`.
   */
  bodiesStream?: boolean;
}

const dpopKeys = new WeakMap<TokenManager, KeyObject>();

/**
 * The DPoP private key the suite gave `manager` (its DPoP section), for a binding that builds its own
 * TokenManager (Nest's KeyfobModule) and must sign with the same key. Undefined without DPoP.
 */
export function conformanceDpopKey(manager: TokenManager): KeyObject | undefined {
  return dpopKeys.get(manager);
}

type VitestApi = Pick<typeof Vitest, 'describe' | 'it' | 'expect' | 'afterEach' | 'beforeAll' | 'afterAll'>;

const CLIENT = { clientId: 'conformance', clientSecret: 'conformance-secret-0123456789' };
const REDIRECTS = [301, 302, 303, 307, 308] as const;

/** Registers the conformance tests of `binding` with vitest (pass `import * as vitest from 'vitest'`). */
export function conformance(vitest: VitestApi, binding: ConformanceBinding): void {
  const { describe, it, expect, afterEach, beforeAll, afterAll } = vitest;
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    while (cleanup.length) await cleanup.pop()!();
  });

  /** Token endpoint, protected API (with helper routes) and a foreign server on another port. */
  async function setup(
    options: Partial<Omit<ConformanceClientOptions, 'base'>> = {},
    managerOptions: { retries?: number; timeoutMs?: number } = {},
  ) {
    const auth = await genericClientCredentials(CLIENT);
    cleanup.push(() => auth.close());
    const foreign = await startServer((req): Reply => {
      // `/bounce?to=<url>`: a foreign server sending the request back (to the allowed API, say).
      const bounce = /^\/bounce\?to=(.+)$/.exec(req.path);
      if (bounce) return { status: 302, headers: { location: decodeURIComponent(bounce[1]!) } };
      return req.path.startsWith('/401')
        ? { status: 401, body: { error: 'foreign' } }
        : { body: { foreign: true } };
    });
    cleanup.push(() => foreign.close());
    let always401 = 0;
    const api = await startProtectedApi(auth.issuer, (req): Reply => {
      const url = new URL(req.path, 'http://x');
      const m = /^\/redirect\/(\d{3})$/.exec(url.pathname);
      if (m) return { status: Number(m[1]), headers: { location: url.searchParams.get('to') ?? '/' } };
      if (url.pathname === '/always-401') {
        always401++;
        return { status: 401, headers: { 'www-authenticate': 'Bearer error="invalid_token"' } };
      }
      return { status: 404 };
    });
    cleanup.push(() => api.close());
    const manager = new Manager({
      tokenUrl: auth.tokenUrl,
      grant: clientCredentials(CLIENT),
      retries: managerOptions.retries ?? 0,
      ...(managerOptions.timeoutMs === undefined ? {} : { timeoutMs: managerOptions.timeoutMs }),
    });
    cleanup.push(() => manager.close());
    const client = await binding.create(manager, { base: api.url, origins: [], ...options });
    cleanup.push(() => client.close?.());
    const tokenRequests = () => auth.tokenRequests().length;
    const at = (path: string): RecordedRequest[] => api.requests.filter((r) => r.path.split('?')[0] === path);
    const get = (url: string, extra: Partial<ConformanceRequest> = {}) =>
      client.request({ method: 'GET', url, ...extra });
    const issuedTokens = () => [...auth.issuer.issued.keys()];
    return {
      auth,
      api,
      foreign,
      manager,
      client,
      tokenRequests,
      at,
      get,
      issuedTokens,
      always401: () => always401,
    };
  }

  const keyfobErrorOf = (error: unknown) => binding.keyfobError?.(error) ?? error;
  const bearer = (h: string | undefined) => /^Bearer at_[0-9a-f]{32}$/.test(h ?? '');

  describe(`conformance: ${binding.name}`, () => {
    it('attaches the token to requests for the allowed origin', async () => {
      const { api, get, tokenRequests } = await setup();
      const res = await get(`${api.url}/api/hello`);
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body)).toMatchObject({ ok: true, path: '/api/hello' });
      expect(bearer(api.requests[0]!.headers.authorization)).toBe(true);
      expect(tokenRequests()).toBe(1);
    });

    it('1,000 requests (50 at a time) make 1 token request', async () => {
      const { api, get, tokenRequests } = await setup();
      let ok = 0;
      for (let batch = 0; batch < 20; batch++) {
        const results = await Promise.all(
          Array.from({ length: 50 }, (_, i) => get(`${api.url}/api/n/${batch * 50 + i}`)),
        );
        ok += results.filter((r) => r.status === 200).length;
      }
      expect(ok).toBe(1000);
      expect(tokenRequests()).toBe(1);
      expect(new Set(api.requests.map((r) => r.headers.authorization)).size).toBe(1);
    }, 180_000);

    it('another origin (other port) gets no token, with an absolute URL', async () => {
      const { foreign, get, tokenRequests } = await setup();
      const res = await get(`${foreign.url}/data`);
      expect(res.status).toBe(200);
      expect(foreign.requests[0]!.headers.authorization).toBeUndefined();
      expect(tokenRequests()).toBe(0);
    });

    it('a request URL with an upper-case scheme is on the allowed origin', async () => {
      const { api, get } = await setup();
      const res = await get(`${api.url.replace('http:', 'HTTP:')}/api/upper-scheme`);
      expect(res.status).toBe(200);
      expect(bearer(api.requests.at(-1)!.headers.authorization)).toBe(true);
    });

    /** A manager against a fresh token endpoint (for clients made inside a test). */
    async function setupManager() {
      const auth = await genericClientCredentials(CLIENT);
      cleanup.push(() => auth.close());
      const manager = new Manager({ tokenUrl: auth.tokenUrl, grant: clientCredentials(CLIENT), retries: 0 });
      cleanup.push(() => manager.close());
      return { auth, manager };
    }

    it('an allowed origin written in upper case matches a lower-case request host', async () => {
      const { auth, manager } = await setupManager();
      const api = await startProtectedApi(auth.issuer);
      cleanup.push(() => api.close());
      const port = new URL(api.url).port;
      const client = await binding.create(manager, { base: `HTTP://LOCALHOST:${port}/`, origins: [] });
      cleanup.push(() => client.close?.());
      const res = await client.request({ method: 'GET', url: `http://localhost:${port}/api/case` });
      expect(res.status).toBe(200);
      expect(bearer(api.requests[0]!.headers.authorization)).toBe(true);
      // The same port on 127.0.0.1 is another origin (the host differs): no token.
      const other = await client.request({ method: 'GET', url: `http://127.0.0.1:${port}/api/case` });
      expect(other.status).toBe(401);
      expect(api.requests[1]!.headers.authorization).toBeUndefined();
    });

    it('an origin written with its default port (:80) does not open other ports of the host', async () => {
      const { auth, manager } = await setupManager();
      const api = await startProtectedApi(auth.issuer);
      cleanup.push(() => api.close());
      // ':80' on an http origin is normalised away; the API's own origin (non-default port) stays allowed.
      const client = await binding.create(manager, { base: api.url, origins: ['http://127.0.0.1:80/'] });
      cleanup.push(() => client.close?.());
      expect((await client.request({ method: 'GET', url: `${api.url}/api/x` })).status).toBe(200);
      // Port 80 is not the API's port: a request to the API on another port would be another origin,
      // and the normalised origin list must not have made every port of the host allowed.
      const foreign = await startServer(() => ({ body: {} }));
      cleanup.push(() => foreign.close());
      await client.request({ method: 'GET', url: `${foreign.url}/x` });
      expect(foreign.requests[0]!.headers.authorization).toBeUndefined();
    });

    for (const code of REDIRECTS) {
      it(`a ${code} redirect to another origin does not carry the token`, async () => {
        const { api, foreign, client } = await setup();
        const res = await client.request({
          method: code === 307 || code === 308 ? 'POST' : 'GET',
          url: `${api.url}/redirect/${code}?to=${encodeURIComponent(`${foreign.url}/landing`)}`,
          ...(code === 307 || code === 308 ? { body: { kind: 'string' as const, data: 'payload' } } : {}),
        });
        expect(res.status).toBe(200);
        expect(bearer(api.requests[0]!.headers.authorization)).toBe(true);
        expect(foreign.requests).toHaveLength(1);
        expect(foreign.requests[0]!.headers.authorization).toBeUndefined();
        if (code === 307 || code === 308) expect(foreign.requests[0]!.body).toBe('payload');
      });
    }

    it('a redirect on the same origin keeps the token', async () => {
      const { api, get } = await setup();
      const res = await get(`${api.url}/redirect/302?to=/api/after`);
      expect(res.status).toBe(200);
      expect(bearer(api.requests[1]!.headers.authorization)).toBe(true);
    });

    it('mass revocation with 50 requests in flight: all recover, with 1 new token', async () => {
      const { auth, api, get, tokenRequests } = await setup();
      expect((await get(`${api.url}/api/warm`)).status).toBe(200);
      auth.issuer.revokeAll();
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => get(`${api.url}/api/r/${i}`)));
      expect(results.every((r) => r.status === 200)).toBe(true);
      expect(tokenRequests()).toBe(2);
    });

    for (const kind of ['string', 'bytes', 'form'] as const) {
      it.skipIf(binding.bodiesStream === true)(
        `a 401 to a ${kind} body: invalidated, sent once more with the same body`,
        async () => {
          const { auth, api, client, tokenRequests } = await setup();
          await client.request({ method: 'GET', url: `${api.url}/api/warm` });
          auth.issuer.revokeAll();
          const data = kind === 'form' ? 'a=1&b=two' : 'the body';
          const res = await client.request({
            method: 'POST',
            url: `${api.url}/api/post`,
            body: { kind, data },
          });
          expect(res.status).toBe(200);
          const posts = api.requests.filter((r) => r.path === '/api/post');
          expect(posts).toHaveLength(2);
          expect(posts.map((p) => p.body)).toEqual([data, data]);
          expect(posts[0]!.headers.authorization).not.toBe(posts[1]!.headers.authorization);
          expect(tokenRequests()).toBe(2);
        },
      );
    }

    it.runIf(binding.bodiesStream === true)(
      'a client that streams every body: a 401 to a string body is invalidated, not sent again',
      async () => {
        const { auth, api, client, tokenRequests } = await setup();
        await client.request({ method: 'GET', url: `${api.url}/api/warm` });
        auth.issuer.revokeAll();
        const res = await client.request({
          method: 'POST',
          url: `${api.url}/api/post`,
          body: { kind: 'string', data: 'the body' },
        });
        expect(res.status).toBe(401);
        expect(api.requests.filter((r) => r.path === '/api/post').map((p) => p.body)).toEqual(['the body']);
        expect((await client.request({ method: 'GET', url: `${api.url}/api/after` })).status).toBe(200);
        expect(tokenRequests()).toBe(2);
      },
    );

    it('a 401 to a stream body: invalidated, not sent again, the 401 goes to the caller', async () => {
      const { auth, api, client, tokenRequests } = await setup();
      await client.request({ method: 'GET', url: `${api.url}/api/warm` });
      auth.issuer.revokeAll();
      const res = await client.request({
        method: 'POST',
        url: `${api.url}/api/post`,
        body: { kind: 'stream', data: 'streamed' },
      });
      expect(res.status).toBe(401);
      const posts = api.requests.filter((r) => r.path === '/api/post');
      expect(posts).toHaveLength(1);
      expect(posts[0]!.body).toBe('streamed');
      // The rejected token was dropped: the next request gets a new one.
      expect((await client.request({ method: 'GET', url: `${api.url}/api/after` })).status).toBe(200);
      expect(tokenRequests()).toBe(2);
    });

    it('an API that always answers 401: exactly two attempts, then the 401', async () => {
      const { api, get, always401, tokenRequests } = await setup();
      const res = await get(`${api.url}/always-401`);
      expect(res.status).toBe(401);
      expect(always401()).toBe(2);
      expect(tokenRequests()).toBe(2);
      const [first, second] = api.requests.filter((r) => r.path === '/always-401');
      expect(bearer(first!.headers.authorization) && bearer(second!.headers.authorization)).toBe(true);
      expect(first!.headers.authorization).not.toBe(second!.headers.authorization);
    });

    it('retryOn401: false: the 401 goes to the caller, nothing invalidated, no retry', async () => {
      const { api, get, always401, tokenRequests } = await setup({ retryOn401: false });
      expect((await get(`${api.url}/always-401`)).status).toBe(401);
      expect(always401()).toBe(1);
      expect((await get(`${api.url}/api/next`)).status).toBe(200);
      expect(tokenRequests()).toBe(1);
    });

    it('a 401 from a foreign redirect target invalidates nothing and is not retried', async () => {
      const { api, foreign, get, tokenRequests } = await setup();
      const res = await get(`${api.url}/redirect/302?to=${encodeURIComponent(`${foreign.url}/401`)}`);
      expect(res.status).toBe(401);
      expect(foreign.requests).toHaveLength(1);
      expect(foreign.requests[0]!.headers.authorization).toBeUndefined();
      expect(api.requests).toHaveLength(1);
      expect((await get(`${api.url}/api/next`)).status).toBe(200);
      expect(tokenRequests()).toBe(1);
    });

    it('allowed -> foreign -> allowed: once stripped, the token does not come back on a later hop', async () => {
      const { api, foreign, get, at, tokenRequests } = await setup();
      const back = encodeURIComponent(`${api.url}/api/after-bounce`);
      const res = await get(
        `${api.url}/redirect/302?to=${encodeURIComponent(`${foreign.url}/bounce?to=${back}`)}`,
      );
      expect(res.status).toBe(401); // the API refuses a request without a token
      expect(bearer(api.requests[0]!.headers.authorization)).toBe(true);
      expect(foreign.requests[0]!.headers.authorization).toBeUndefined();
      const last = at('/api/after-bounce');
      expect(last).toHaveLength(1); // not retried: the 401 answered no token of keyfob's
      expect(last[0]!.headers.authorization).toBeUndefined();
      expect(tokenRequests()).toBe(1); // nothing invalidated
      expect((await get(`${api.url}/api/next`)).status).toBe(200);
      expect(tokenRequests()).toBe(1);
    });

    it('foreign -> allowed: a request that starts elsewhere gets no token on the allowed hop', async () => {
      const { api, foreign, get, tokenRequests } = await setup();
      const res = await get(`${foreign.url}/bounce?to=${encodeURIComponent(`${api.url}/api/landing`)}`);
      expect(res.status).toBe(401);
      expect(api.requests).toHaveLength(1);
      expect(api.requests[0]!.headers.authorization).toBeUndefined();
      expect(tokenRequests()).toBe(0);
    });

    it('the token endpoint down: a KeyfobError, and no request is sent without a token', async () => {
      const { auth, api, get } = await setup();
      await auth.close();
      const error = await get(`${api.url}/api/x`).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeDefined();
      expect(isKeyfobError(keyfobErrorOf(error))).toBe(true);
      expect(api.requests).toHaveLength(0);
    });

    it('the token endpoint answering an error: a KeyfobError with its status', async () => {
      const { auth, api, get } = await setup();
      auth.override = () => ({ status: 400, body: { error: 'invalid_scope' } });
      const error = await get(`${api.url}/api/x`).then(
        () => undefined,
        (e: unknown) => e,
      );
      const kf = keyfobErrorOf(error) as { status?: number; error?: string };
      expect(isKeyfobError(kf)).toBe(true);
      expect(kf.status).toBe(400);
      expect(api.requests).toHaveLength(0);
    });

    it('an abort while waiting for the token rejects, and nothing is sent', async () => {
      const { auth, api, get } = await setup();
      const release = holdTokenEndpoint(auth);
      const ac = new AbortController();
      const pending = get(`${api.url}/api/x`, { signal: ac.signal }).then(
        () => undefined,
        (e: unknown) => e,
      );
      await new Promise((r) => setTimeout(r, 50));
      ac.abort();
      const error = await pending;
      release();
      expect(error).toBeDefined();
      expect(api.requests).toHaveLength(0);
    });

    it('keyfob.skip: no token, no token request, and a caller-set Authorization goes as is', async () => {
      const { api, get, tokenRequests } = await setup();
      const res = await get(`${api.url}/api/skip`, {
        keyfob: { skip: true },
        headers: { authorization: 'Basic dXNlcjpwYXNz' },
      });
      expect(res.status).toBe(401);
      expect(api.requests[0]!.headers.authorization).toBe('Basic dXNlcjpwYXNz');
      await get(`${api.url}/api/skip2`, { keyfob: { skip: true } });
      expect(api.requests[1]!.headers.authorization).toBeUndefined();
      expect(tokenRequests()).toBe(0);
    });

    it('a caller-set Authorization: replaced on an allowed origin, left alone elsewhere', async () => {
      const { api, foreign, get } = await setup();
      const res = await get(`${api.url}/api/mine`, {
        headers: { Authorization: 'Bearer caller-token-value' },
      });
      expect(res.status).toBe(200);
      expect(bearer(api.requests[0]!.headers.authorization)).toBe(true);
      await get(`${foreign.url}/theirs`, { headers: { Authorization: 'Bearer caller-token-value' } });
      expect(foreign.requests[0]!.headers.authorization).toBe('Bearer caller-token-value');
    });

    it('per-request scope and subject: separate tokens; options scope/subject apply by default', async () => {
      const { auth, api, get, tokenRequests } = await setup({ scope: 'read' });
      await get(`${api.url}/api/a`);
      await get(`${api.url}/api/b`, { keyfob: { scope: 'write' } });
      await get(`${api.url}/api/c`, { keyfob: { subject: 'tenant-1' } });
      await get(`${api.url}/api/d`, { keyfob: { subject: 'tenant-1' } });
      await get(`${api.url}/api/e`);
      expect(tokenRequests()).toBe(3);
      expect(auth.tokenRequests().map((r) => r.params.scope)).toEqual(['read', 'write', 'read']);
      const auths = api.requests.map((r) => r.headers.authorization);
      expect(auths[0]).toBe(auths[4]);
      expect(auths[2]).toBe(auths[3]);
      expect(new Set(auths).size).toBe(3);
    });

    it('the subject option applies to every request unless the request names another', async () => {
      const { api, get, tokenRequests } = await setup({ subject: 'tenant-a' });
      await get(`${api.url}/api/a`);
      await get(`${api.url}/api/b`, { keyfob: { subject: 'tenant-b' } });
      await get(`${api.url}/api/c`);
      expect(tokenRequests()).toBe(2);
      const auths = api.requests.map((r) => r.headers.authorization);
      expect(auths[0]).toBe(auths[2]);
      expect(auths[0]).not.toBe(auths[1]);
    });

    it('no token in any error or response error the adapter produces', async () => {
      const { auth, api, foreign, get, client, issuedTokens } = await setup();
      const errors: unknown[] = [];
      const collect = async (p: Promise<ConformanceResponse>) => {
        try {
          const res = await p;
          if (res.error !== undefined) errors.push(res.error);
        } catch (e) {
          errors.push(e);
        }
      };
      await collect(get(`${api.url}/api/warm`));
      await collect(get(`${api.url}/always-401`));
      await collect(get(`${api.url}/redirect/302?to=${encodeURIComponent(`${foreign.url}/401`)}`));
      await collect(
        client.request({ method: 'POST', url: `${api.url}/always-401`, body: { kind: 'stream', data: 'x' } }),
      );
      await collect(get(`${api.url}/missing-route-404`));
      const ac = new AbortController();
      ac.abort();
      await collect(get(`${api.url}/api/aborted`, { signal: ac.signal }));
      // Network error after the token was attached: the API is gone.
      const tokens = issuedTokens();
      await api.close();
      await collect(get(`${api.url}/api/gone`));
      await auth.close();
      await collect(get(`${api.url}/api/gone`, { keyfob: { scope: 'new-scope' } }));
      // At least: the aborted request, the network error, the token endpoint failure.
      expect(errors.length).toBeGreaterThanOrEqual(3);
      expect(tokens.length).toBeGreaterThanOrEqual(2);
      for (const error of errors) expect(leakScan(error, tokens)).toEqual([]);
    });
  });

  /**
   * DPoP (RFC 9449) through the adapter: oidc-provider issues DPoP-bound tokens, the authorization
   * server's DPoP-only API verifies every proof with jose (signature, htm/htu, iat, jti replay, ath,
   * cnf.jkt) and can ask for its own nonce. The adapter knows nothing of DPoP: the policy decides.
   */
  describe(`conformance DPoP: ${binding.name}`, () => {
    let server: RunningAuthorizationServer;
    beforeAll(async () => {
      server = await startAuthorizationServer({ dpop: {} });
    });
    afterAll(() => server.close());

    async function setupDpop() {
      const dpop = server.dpop!;
      dpop.tokenEndpointNonce = false;
      dpop.apiNonce = false;
      dpop.rotateOnSuccess = false;
      dpop.refuseNonces(0);
      dpop.replayNext(0);
      dpop.reset();
      server.resetStats();
      const privateKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
      const manager = new Manager({
        tokenUrl: server.tokenUrl,
        grant: clientCredentials({ clientId: 'service-dpop', clientSecret: 'service-dpop-secret' }),
        dpop: { privateKey },
        retries: 0,
      });
      dpopKeys.set(manager, privateKey);
      cleanup.push(() => manager.close());
      // Counts signatures (of every DpopKey: a binding may build its own manager with the same key):
      // one per token request attempt and one per API request attempt, no more.
      const sign = Object.getOwnPropertyDescriptor(DpopKey.prototype, 'proof')!;
      let signatures = 0;
      Object.defineProperty(DpopKey.prototype, 'proof', {
        ...sign,
        value(this: DpopKey, ...args: Parameters<DpopKey['proof']>) {
          signatures++;
          return (sign.value as DpopKey['proof']).apply(this, args);
        },
      });
      cleanup.push(() => Object.defineProperty(DpopKey.prototype, 'proof', sign));
      const client = await binding.create(manager, { base: server.issuer, origins: [] });
      cleanup.push(() => client.close?.());
      const api = dpop.apiUrl;
      const at = (path: string) => dpop.requests.filter((r) => r.path === path);
      return { dpop, manager, client, api, at, signatures: () => signatures };
    }

    const ath = (token: string) => createHash('sha256').update(token).digest('base64url');

    it('DPoP: Authorization: DPoP <token> and a fresh proof (htm, htu, ath) on every request, one signature each', async () => {
      const { dpop, manager, client, api, signatures } = await setupDpop();
      for (let i = 0; i < 5; i++) {
        const res = await client.request({ method: 'GET', url: `${api}/hello?i=${i}` });
        expect(res.status).toBe(200);
        expect(JSON.parse(res.body).jkt).toBe(manager.dpop!.thumbprint);
      }
      const token = (await manager.getToken()).accessToken;
      expect(dpop.requests).toHaveLength(5);
      expect(new Set(dpop.requests.map((r) => r.proof?.jti)).size).toBe(5);
      for (const r of dpop.requests) {
        expect(r.proof).toMatchObject({ htm: 'GET', htu: `${api}/hello`, ath: ath(token) });
        expect(r.jkt).toBe(manager.dpop!.thumbprint);
      }
      expect(server.stats.tokenRequests).toBe(1);
      expect(signatures()).toBe(1 + 5);
    });

    it('DPoP: a POST with a query gets a proof for its method and URL without the query', async () => {
      const { client, api, at } = await setupDpop();
      const res = await client.request({
        method: 'POST',
        url: `${api}/echo?x=1`,
        body: { kind: 'string', data: 'dpop body' },
      });
      expect(res.status).toBe(200);
      expect(res.body).toBe('dpop body');
      expect(at('/dpop-api/echo?x=1')[0]!.proof).toMatchObject({ htm: 'POST', htu: `${api}/echo` });
    });

    it("DPoP: the resource server's nonce challenge is answered with one retry, the token kept, the nonce reused", async () => {
      const { dpop, client, api, at, signatures } = await setupDpop();
      dpop.apiNonce = true;
      dpop.rotateApiNonce();
      if (binding.bodiesStream === true) {
        // No body can be replayed: the challenge is answered on the next request, with the kept nonce.
        const first = await client.request({
          method: 'POST',
          url: `${api}/echo`,
          body: { kind: 'form', data: 'a=1&b=two' },
        });
        expect(first.status).toBe(401);
        expect(at('/dpop-api/echo').map((r) => r.error)).toEqual(['use_dpop_nonce']);
        expect((await client.request({ method: 'GET', url: `${api}/hello` })).status).toBe(200);
        expect(at('/dpop-api/hello').map((r) => r.status)).toEqual([200]);
        // A GET (no body) gets the one retry.
        dpop.rotateApiNonce();
        expect((await client.request({ method: 'GET', url: `${api}/hello` })).status).toBe(200);
        expect(at('/dpop-api/hello').map((r) => r.status)).toEqual([200, 401, 200]);
        expect(server.stats.tokenRequests).toBe(1);
        return;
      }
      const res = await client.request({
        method: 'POST',
        url: `${api}/echo`,
        body: { kind: 'form', data: 'a=1&b=two' },
      });
      expect(res.status).toBe(200);
      const posts = at('/dpop-api/echo');
      expect(posts.map((r) => r.status)).toEqual([401, 200]);
      expect(posts[0]!.error).toBe('use_dpop_nonce');
      // (The first proof may carry the token endpoint's nonce: the same origin here.)
      expect(posts[1]!.proof?.nonce).toBeTypeOf('string');
      expect(posts[1]!.proof?.nonce).not.toBe(posts[0]!.proof?.nonce);
      expect(posts.map((r) => r.body)).toEqual([undefined, 'a=1&b=two']);
      expect(posts[0]!.proof?.ath).toBe(posts[1]!.proof?.ath); // the same token
      expect(server.stats.tokenRequests).toBe(1);
      // The next request carries the kept nonce at once.
      expect((await client.request({ method: 'GET', url: `${api}/hello` })).status).toBe(200);
      expect(at('/dpop-api/hello').map((r) => r.status)).toEqual([200]);
      expect(signatures()).toBe(1 + 3);
    });

    it('DPoP: a nonce that keeps failing: exactly two attempts, then the 401 goes to the caller', async () => {
      const { dpop, client, api, at } = await setupDpop();
      dpop.refuseNonces(10);
      const res = await client.request({ method: 'GET', url: `${api}/hello` });
      expect(res.status).toBe(401);
      expect(at('/dpop-api/hello').map((r) => r.error)).toEqual(['use_dpop_nonce', 'use_dpop_nonce']);
      expect(server.stats.tokenRequests).toBe(1);
    });

    it('DPoP: a proof the API takes for a replay (invalid_dpop_proof) is recovered from with one retry and a fresh proof', async () => {
      const { dpop, client, api, at, signatures } = await setupDpop();
      dpop.replayNext(1);
      const res = await client.request({ method: 'GET', url: `${api}/hello` });
      expect(res.status).toBe(200);
      const hellos = at('/dpop-api/hello');
      expect(hellos.map((r) => r.error ?? r.status)).toEqual(['invalid_dpop_proof', 200]);
      expect(hellos[0]!.proof?.jti).not.toBe(hellos[1]!.proof?.jti);
      expect(server.stats.tokenRequests).toBeLessThanOrEqual(2);
      expect(signatures()).toBe(server.stats.tokenRequests + 2);
    });

    it('DPoP: the token endpoint nonce challenge is answered once, then the API accepts the token', async () => {
      const { dpop, client, api, signatures } = await setupDpop();
      dpop.tokenEndpointNonce = true;
      expect((await client.request({ method: 'GET', url: `${api}/hello` })).status).toBe(200);
      expect(server.stats.tokenRequests).toBe(2);
      expect(signatures()).toBe(2 + 1);
    });

    it('DPoP: a nonce the API rotates on every 200 goes into the next proof: 3 requests cost 4', async () => {
      const { dpop, client, api, at } = await setupDpop();
      dpop.apiNonce = true;
      dpop.rotateOnSuccess = true;
      dpop.rotateApiNonce();
      for (let i = 0; i < 3; i++) {
        expect((await client.request({ method: 'GET', url: `${api}/hello` })).status).toBe(200);
      }
      // One challenge at first; then each proof carries the nonce of the previous 200.
      expect(at('/dpop-api/hello').map((r) => r.error ?? r.status)).toEqual([
        'use_dpop_nonce',
        200,
        200,
        200,
      ]);
      expect(server.stats.tokenRequests).toBe(1);
    });

    it('DPoP: a same-origin redirect gets a new proof for the new URL', async () => {
      const { client, api, at } = await setupDpop();
      const res = await client.request({
        method: 'GET',
        url: `${api}/redirect?to=${encodeURIComponent('/dpop-api/hello')}`,
      });
      expect(res.status).toBe(200);
      expect(at('/dpop-api/hello')[0]!.proof).toMatchObject({ htm: 'GET', htu: `${api}/hello` });
    });
  });
}

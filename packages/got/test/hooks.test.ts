import { Readable } from 'node:stream';
import { inspect } from 'node:util';
import {
  ConfigurationError,
  clientCredentials,
  ErrorCode,
  KeyfobError,
  TokenEndpointError,
  TokenManager,
  type TokenManagerOptions,
} from '@keyfob/core';
import {
  genericClientCredentials,
  type Handler,
  rejection,
  startProtectedApi,
  startServer,
} from '@keyfob/testing';
import got, { type ExtendOptions, HTTPError, type Response } from 'got';
import { afterEach, describe, expect, it } from 'vitest';
import { type KeyfobContext, keyfobErrorOf, tokenHooks, withTokens } from '../src/index.js';

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const CLIENT = { clientId: 'svc', clientSecret: 'svc-secret-value' };

/** A token endpoint + a protected API on its own origin; `extra` answers first (404 = fall through to the token check). */
async function setup(
  opts: {
    extra?: Handler;
    got?: ExtendOptions;
    manager?: Partial<TokenManagerOptions>;
    hooks?: Parameters<typeof withTokens>[2];
  } = {},
) {
  const auth = await genericClientCredentials(CLIENT);
  cleanup.push(() => auth.close());
  const api = await startProtectedApi(auth.issuer, opts.extra);
  cleanup.push(() => api.close());
  const manager = new TokenManager({
    tokenUrl: auth.tokenUrl,
    grant: clientCredentials(CLIENT),
    ...opts.manager,
  });
  cleanup.push(() => manager.close());
  const client = withTokens(got.extend({ prefixUrl: api.url, ...opts.got }), manager, opts.hooks);
  const at = (path: string) => api.requests.filter((r) => r.path === path);
  return { auth, api, manager, client, at };
}

describe('tokenHooks / withTokens with got 14', () => {
  it('attaches the token to requests for the prefixUrl origin', async () => {
    const { auth, api, client } = await setup();
    const body = await client.get('hello').json<{ ok: boolean; path: string }>();
    expect(body).toEqual({ ok: true, path: '/hello', subject: null });
    expect(api.requests[0]!.headers.authorization).toMatch(/^Bearer at_[0-9a-f]{32}$/);
    expect(auth.issuer.issued.has(api.requests[0]!.headers.authorization!.slice(7))).toBe(true);
    expect(auth.tokenRequests()).toHaveLength(1);
  });

  it('reuses one token across 1,000 requests (bounded concurrency)', async () => {
    const { auth, api, client } = await setup();
    let next = 0;
    let ok = 0;
    const worker = async () => {
      while (next < 1_000) {
        next++;
        const res = await client.get('hello');
        if (res.statusCode === 200) ok++;
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    expect(ok).toBe(1_000);
    expect(api.requests).toHaveLength(1_000);
    expect(auth.tokenRequests()).toHaveLength(1);
    expect(new Set(api.requests.map((r) => r.headers.authorization)).size).toBe(1);
  });

  describe('origin allow-list', () => {
    it('sends no token to an absolute URL on another origin', async () => {
      const other = await startServer(() => ({ body: { elsewhere: true } }));
      cleanup.push(() => other.close());
      const { api, client } = await setup();
      await client.get('hello');
      expect(api.requests[0]!.headers.authorization).toMatch(/^Bearer /);
      const res = await client.get(`${other.url}/collect`).json();
      expect(res).toEqual({ elsewhere: true });
      expect(other.requests).toHaveLength(1);
      expect(other.requests[0]!.headers.authorization).toBeUndefined();
    });

    it('sends no token across a redirect to another origin, keeps it on a same-origin redirect', async () => {
      const other = await startServer(() => ({ body: { landed: true } }));
      cleanup.push(() => other.close());
      const { api, client, at } = await setup({
        extra: (req) => {
          if (req.path === '/away') return { status: 302, headers: { location: `${other.url}/landing` } };
          if (req.path === '/here') return { status: 302, headers: { location: '/hello?after=redirect' } };
          return { status: 404 };
        },
      });
      expect(await client.get('away').json()).toEqual({ landed: true });
      expect(at('/away')[0]!.headers.authorization).toMatch(/^Bearer /);
      expect(other.requests).toHaveLength(1);
      expect(other.requests[0]!.path).toBe('/landing');
      expect(other.requests[0]!.headers.authorization).toBeUndefined();

      const same = await client.get('here');
      expect(same.statusCode).toBe(200);
      const followed = at('/hello?after=redirect');
      expect(followed).toHaveLength(1);
      expect(followed[0]!.headers.authorization).toBe(at('/here')[0]!.headers.authorization);
      expect(api.requests.every((r) => r.headers.authorization?.startsWith('Bearer at_'))).toBe(true);
    });

    it("a beforeRequest hook running after keyfob's moves the request to another origin: the token does not go with it", async () => {
      const evil = await startServer((req) =>
        req.path === '/denied' ? { status: 401, body: { error: 'nope' } } : { body: { evil: true } },
      );
      cleanup.push(() => evil.close());
      const { auth, api, client } = await setup();
      const moved = client.extend({
        hooks: {
          beforeRequest: [
            (o) => {
              o.url = new URL(`${evil.url}${(o.url as URL).pathname === '/denied' ? '/denied' : '/ok'}`);
            },
          ],
        },
      });
      expect(await moved.get('hello').json()).toEqual({ evil: true });
      expect(evil.requests).toHaveLength(1);
      expect(evil.requests[0]!.headers.authorization).toBeUndefined();
      expect(evil.requests[0]!.headers.dpop).toBeUndefined();
      // A 401 from there is no verdict on keyfob's token: not invalidated, not retried.
      const err = await rejection(moved.get('denied'));
      expect((err as HTTPError).response.statusCode).toBe(401);
      expect(evil.requests).toHaveLength(2);
      expect(evil.requests[1]!.headers.authorization).toBeUndefined();
      expect(api.requests).toHaveLength(0);
      expect(auth.tokenRequests()).toHaveLength(1);
      // A hook that keeps the request on the allowed origin (another path) keeps the token.
      const rerouted = client.extend({
        hooks: {
          beforeRequest: [
            (o) => {
              o.url = new URL(`${api.url}/hello?rerouted=1`);
            },
          ],
        },
      });
      expect((await rerouted.get('elsewhere')).statusCode).toBe(200);
      expect(api.requests[0]!.path).toBe('/hello?rerouted=1');
      expect(api.requests[0]!.headers.authorization).toMatch(/^Bearer at_/);
      expect(auth.tokenRequests()).toHaveLength(1);
    });

    it("got's retry of a request a redirect took through another origin stays without the token", async () => {
      let apiUrl = '';
      const evil = await startServer(() => ({ status: 302, headers: { location: `${apiUrl}/flaky` } }));
      cleanup.push(() => evil.close());
      let flaky = 0;
      const { auth, api, client, at } = await setup({
        got: { retry: { limit: 1, backoffLimit: 10, noise: 0 } },
        extra: (req) => {
          if (req.path === '/hop') return { status: 302, headers: { location: `${evil.url}/bounce` } };
          if (req.path === '/flaky') {
            return ++flaky === 1 ? { status: 503, body: { error: 'busy' } } : { body: { flaky } };
          }
          return { status: 404 };
        },
      });
      apiUrl = api.url;
      // allowed /hop -> foreign /bounce -> allowed /flaky (503, then got's retry: 200)
      const res = await client.get('hop');
      expect(res.statusCode).toBe(200);
      expect(res.retryCount).toBe(1);
      expect(at('/hop')[0]!.headers.authorization).toMatch(/^Bearer at_/);
      expect(evil.requests.map((r) => r.headers.authorization)).toEqual([undefined]);
      expect(at('/flaky').map((r) => r.headers.authorization)).toEqual([undefined, undefined]);
      expect(auth.tokenRequests()).toHaveLength(1);
      // The next request, and keyfob's own 401 retry of it, still get tokens (a fresh one for the retry).
      auth.issuer.revokeAll();
      const after = await client.get('hello');
      expect(after.statusCode).toBe(200);
      const [first, second] = at('/hello');
      expect(first!.headers.authorization).toBe(at('/hop')[0]!.headers.authorization);
      expect(second!.headers.authorization).toMatch(/^Bearer at_/);
      expect(second!.headers.authorization).not.toBe(first!.headers.authorization);
      expect(auth.tokenRequests()).toHaveLength(2);
    });

    it("a request that starts on another origin and is redirected to the allowed one: no token there, nor on got's retry", async () => {
      let apiUrl = '';
      const evil = await startServer(() => ({ status: 302, headers: { location: `${apiUrl}/flaky` } }));
      cleanup.push(() => evil.close());
      let flaky = 0;
      const { auth, api, client, at } = await setup({
        got: { retry: { limit: 1, backoffLimit: 10, noise: 0 } },
        extra: (req) =>
          req.path === '/flaky'
            ? ++flaky === 1
              ? { status: 503, body: { error: 'busy' } }
              : { body: { flaky } }
            : { status: 404 },
      });
      apiUrl = api.url;
      const res = await client.get(`${evil.url}/start`);
      expect(res.statusCode).toBe(200);
      expect(res.retryCount).toBe(1);
      expect(evil.requests.map((r) => r.headers.authorization)).toEqual([undefined]);
      expect(at('/flaky').map((r) => r.headers.authorization)).toEqual([undefined, undefined]);
      expect(auth.tokenRequests()).toHaveLength(0);
    });

    it("a caller-set Authorization: replaced by keyfob's on an allowed origin, sent as is with skip or to another origin", async () => {
      const other = await startServer(() => ({ body: { elsewhere: true } }));
      cleanup.push(() => other.close());
      const { auth, api, client } = await setup();
      const own = { authorization: 'Bearer callers-own' };
      expect((await client.get('hello', { headers: own })).statusCode).toBe(200);
      expect(api.requests[0]!.headers.authorization).toMatch(/^Bearer at_/);
      const err = await rejection(
        client.get('hello', { headers: own, context: { keyfob: { skip: true } satisfies KeyfobContext } }),
      );
      expect((err as HTTPError).response.statusCode).toBe(401);
      expect(api.requests[1]!.headers.authorization).toBe('Bearer callers-own');
      await client.get(`${other.url}/x`, { headers: own });
      expect(other.requests[0]!.headers.authorization).toBe('Bearer callers-own');
      expect(auth.tokenRequests()).toHaveLength(1);
    });
  });

  it('revoking every token mid-run: each in-flight request succeeds after one retry, one new token request', async () => {
    let gate: Promise<void> | undefined;
    let release = () => {};
    const { auth, client, at, api } = await setup({
      extra: async (req) => {
        if (gate && req.path.startsWith('/slow/')) await gate;
        return { status: 404 };
      },
    });
    await client.get('hello');
    expect(auth.tokenRequests()).toHaveLength(1);
    gate = new Promise<void>((r) => {
      release = r;
    });
    const inFlight = Array.from({ length: 50 }, (_, i) => client.get(`slow/${i}`));
    const slow = () => api.requests.filter((r) => r.path.startsWith('/slow/'));
    for (let i = 0; i < 1_000 && slow().length < 50; i++) await sleep(10);
    expect(slow()).toHaveLength(50);
    auth.issuer.revokeAll();
    release();
    const responses = await Promise.all(inFlight);
    expect(responses.map((r) => r.statusCode)).toEqual(Array(50).fill(200));
    expect(responses.map((r) => r.retryCount)).toEqual(Array(50).fill(1));
    expect(auth.tokenRequests()).toHaveLength(2);
    for (let i = 0; i < 50; i++) {
      const [first, second] = at(`/slow/${i}`);
      expect(at(`/slow/${i}`)).toHaveLength(2);
      expect(second!.headers.authorization).not.toBe(first!.headers.authorization);
    }
    expect(auth.issuer.api401).toBe(50);
  });

  it("an API that always answers 401: exactly two attempts, the caller gets got's HTTPError 401, nothing leaks", async () => {
    const { auth, client, at } = await setup({
      extra: (req) =>
        req.path === '/always-401'
          ? {
              status: 401,
              headers: { 'www-authenticate': 'Bearer error="invalid_token"' },
              body: { error: 'invalid_token' },
            }
          : { status: 404 },
    });
    const err = await rejection(client.get('always-401'));
    expect(err).toBeInstanceOf(HTTPError);
    expect((err as HTTPError).response.statusCode).toBe(401);
    expect(at('/always-401')).toHaveLength(2);
    expect(auth.tokenRequests()).toHaveLength(2);
    const sent = at('/always-401').map((r) => r.headers.authorization!.slice('Bearer '.length));
    expect(sent[0]).not.toBe(sent[1]);
    expect((err as HTTPError).options.headers.authorization).toBeUndefined();
    const printed = `${inspect(err, { depth: 8 })}\n${JSON.stringify(err)}\n${String(err)}`;
    for (const token of sent) expect(printed).not.toContain(token);
    expect(printed).not.toContain(CLIENT.clientSecret);
  });

  it('the per-request flag stops a second 401 retry even if got ran the hook again', async () => {
    const auth = await genericClientCredentials(CLIENT);
    cleanup.push(() => auth.close());
    const api = await startProtectedApi(auth.issuer, () => ({
      status: 401,
      body: { error: 'invalid_token' },
    }));
    cleanup.push(() => api.close());
    const manager = new TokenManager({ tokenUrl: auth.tokenUrl, grant: clientCredentials(CLIENT) });
    cleanup.push(() => manager.close());
    const hooks = tokenHooks(manager, { origins: [api.url] });
    const client = got.extend({ prefixUrl: api.url, hooks });
    const last = await client.get('x', { throwHttpErrors: false });
    expect(last.statusCode).toBe(401);
    expect(api.requests).toHaveLength(2);
    // got drops the hook after it retried; with `preserveHooks` (or a future got) it would run again.
    const retries: unknown[] = [];
    const again = await hooks.afterResponse[0]!(last, ((o: unknown) => {
      retries.push(o);
      throw new Error('must not retry');
    }) as never);
    expect(again).toBe(last);
    expect(retries).toHaveLength(0);
    expect(auth.tokenRequests()).toHaveLength(2);
  });

  it('retryOn401: false neither invalidates nor retries: the 401 goes to the caller, the token stays cached', async () => {
    const { auth, client, at } = await setup({ hooks: { retryOn401: false } });
    await client.get('hello');
    auth.issuer.revokeAll();
    const err = await rejection(client.get('hello'));
    expect((err as HTTPError).response.statusCode).toBe(401);
    expect(at('/hello')).toHaveLength(2);
    await rejection(client.get('hello'));
    expect(at('/hello')).toHaveLength(3);
    expect(new Set(at('/hello').map((r) => r.headers.authorization)).size).toBe(1);
    expect(auth.tokenRequests()).toHaveLength(1);
  });

  describe('token endpoint failures reach the caller as KeyfobError', () => {
    it('token endpoint down: the await rejects with the TokenEndpointError itself, the API sees nothing', async () => {
      const dead = await startServer(() => ({}));
      await dead.close();
      const api = await startServer(() => ({ body: { ok: true } }));
      cleanup.push(() => api.close());
      const manager = new TokenManager({
        tokenUrl: `${dead.url}/oauth2/token`,
        grant: clientCredentials(CLIENT),
        retries: 0,
      });
      cleanup.push(() => manager.close());
      const client = withTokens(got.extend({ prefixUrl: api.url }), manager);
      const err = await rejection(client.get('hello'));
      expect(err).toBeInstanceOf(TokenEndpointError);
      expect((err as TokenEndpointError).code).toBe(ErrorCode.TokenEndpointNetwork);
      expect(keyfobErrorOf(err)).toBe(err);
      expect(api.requests).toHaveLength(0);
    });

    it('rejected client credentials: TokenEndpointError with status 401, no secret in it', async () => {
      const { auth, api, client } = await setup({
        manager: { grant: clientCredentials({ ...CLIENT, clientSecret: 'wrong-secret-123' }) },
      });
      const err = await rejection(client.get('hello'));
      expect(err).toBeInstanceOf(KeyfobError);
      expect(err).toBeInstanceOf(TokenEndpointError);
      expect((err as TokenEndpointError).status).toBe(401);
      expect((err as TokenEndpointError).error).toBe('invalid_client');
      expect(`${inspect(err)}${JSON.stringify(err)}`).not.toContain('wrong-secret-123');
      expect(api.requests).toHaveLength(0);
      expect(auth.tokenRequests()).toHaveLength(1);
    });

    it('keyfobErrorOf also finds it as the cause of a got RequestError', () => {
      const inner = new TokenEndpointError('down', { code: ErrorCode.TokenEndpointNetwork });
      const wrapped = new Error('wrapped', { cause: inner });
      expect(keyfobErrorOf(wrapped)).toBe(inner);
      expect(keyfobErrorOf(new Error('plain'))).toBeUndefined();
      expect(keyfobErrorOf(undefined)).toBeUndefined();
    });
  });

  describe('request bodies', () => {
    it('a stream body is not replayed: one attempt, the 401 reaches the caller, the next request gets a new token', async () => {
      const { auth, client, at } = await setup();
      await client.get('hello');
      auth.issuer.revokeAll();
      const err = await rejection(client.post('upload', { body: Readable.from(['streamed-payload']) }));
      expect(err).toBeInstanceOf(HTTPError);
      expect((err as HTTPError).response.statusCode).toBe(401);
      expect(at('/upload')).toHaveLength(1);
      expect(at('/upload')[0]!.body).toBe('streamed-payload');
      expect(auth.tokenRequests()).toHaveLength(1);
      const ok = await client.post('upload', { body: Readable.from(['again']) });
      expect(ok.statusCode).toBe(200);
      expect(auth.tokenRequests()).toHaveLength(2);
    });

    it('a JSON body is replayed on the 401 retry', async () => {
      const { auth, client, at } = await setup();
      await client.get('hello');
      auth.issuer.revokeAll();
      const res = await client.post('items', { json: { name: 'widget' } });
      expect(res.statusCode).toBe(200);
      expect(at('/items').map((r) => r.body)).toEqual(['{"name":"widget"}', '{"name":"widget"}']);
      expect(auth.tokenRequests()).toHaveLength(2);
    });
  });

  it('context.keyfob.skip sends the request without a token and without 401 handling', async () => {
    const { auth, api, client } = await setup();
    const context = { keyfob: { skip: true } satisfies KeyfobContext };
    const err = await rejection(client.get('hello', { context }));
    expect((err as HTTPError).response.statusCode).toBe(401);
    expect(api.requests).toHaveLength(1);
    expect(api.requests[0]!.headers.authorization).toBeUndefined();
    expect(auth.tokenRequests()).toHaveLength(0);
  });

  it('subject and scope per request (context) and per instance (option)', async () => {
    const { auth, client } = await setup({
      hooks: { subject: (o) => o.headers['x-user'] as string | undefined, scope: 'read' },
    });
    await client.get('hello', { headers: { 'x-user': 'alice' } });
    await client.get('hello', { headers: { 'x-user': 'bob' } });
    await client.get('hello', { headers: { 'x-user': 'alice' } });
    expect(auth.tokenRequests()).toHaveLength(2);
    expect(auth.tokenRequests().map((r) => r.params.scope)).toEqual(['read', 'read']);
    await client.get('hello', { context: { keyfob: { scope: 'write', subject: 'alice' } } });
    expect(auth.tokenRequests()).toHaveLength(3);
    expect(auth.tokenRequests()[2]!.params.scope).toBe('write');
  });

  describe('configuration', () => {
    it('withTokens without prefixUrl or origins throws ConfigurationError', async () => {
      const manager = new TokenManager({
        tokenUrl: 'https://auth.example.com/token',
        grant: clientCredentials(CLIENT),
      });
      cleanup.push(() => manager.close());
      expect(() => withTokens(got, manager)).toThrow(ConfigurationError);
      expect(() => withTokens(got, manager, { origins: [] })).toThrow(ConfigurationError);
      expect(() => withTokens(got, manager, { origins: ['not a url'] })).toThrow(ConfigurationError);
      expect(() => withTokens(got, manager, { origins: ['https://api.example.com/v1'] })).not.toThrow();
      expect(() =>
        withTokens(got.extend({ prefixUrl: 'https://api.example.com/v1' }), manager),
      ).not.toThrow();
    });

    it('tokenHooks without origins: a request without prefixUrl is rejected with ConfigurationError; origins make it work', async () => {
      const { auth, api, manager } = await setup();
      const bare = got.extend({ hooks: tokenHooks(manager) });
      const err = await rejection(bare.get(`${api.url}/hello`));
      expect(err).toBeInstanceOf(ConfigurationError);
      expect(api.requests).toHaveLength(0);
      const perRequestPrefix = await bare.get('hello', { prefixUrl: api.url });
      expect(perRequestPrefix.statusCode).toBe(200);
      const listed = got.extend({ hooks: tokenHooks(manager, { origins: [api.url] }) });
      expect((await listed.get(`${api.url}/hello`)).statusCode).toBe(200);
      expect(auth.tokenRequests()).toHaveLength(1);
    });

    it('tokenHooks(): the hooks themselves for got.extend({ hooks }), and again as .hooks for const { hooks } = tokenHooks(manager)', async () => {
      const { auth, api, manager } = await setup();
      const made = tokenHooks(manager);
      expect(made.hooks).toBe(made);
      // Not enumerable: got rejects a `hooks` key among hook events; spread and JSON never see it.
      expect(Object.keys(made).sort()).toEqual([
        'afterResponse',
        'beforeError',
        'beforeRedirect',
        'beforeRequest',
      ]);
      expect(Object.keys({ ...made })).not.toContain('hooks');
      expect(() => JSON.stringify(made)).not.toThrow();
      const { hooks } = tokenHooks(manager);
      for (const client of [
        got.extend({ prefixUrl: api.url, hooks: made }),
        got.extend({ prefixUrl: api.url, hooks }),
        got.extend({ prefixUrl: api.url, hooks: { ...made } }),
      ]) {
        expect((await client.get('hello')).statusCode).toBe(200);
      }
      expect(api.requests).toHaveLength(3);
      for (const r of api.requests) expect(r.headers.authorization).toMatch(/^Bearer at_/);
      expect(auth.tokenRequests()).toHaveLength(1);
    });
  });

  it("got's own retry for 5xx still works alongside the 401 retry", async () => {
    let flaky = 0;
    const { auth, client, at } = await setup({
      // noise 0 and a small backoff keep the test quick; the retry decision stays got's.
      got: { retry: { limit: 2, backoffLimit: 20, noise: 0 } },
      extra: (req) => {
        if (req.path === '/flaky' && ++flaky === 1) return { status: 503, body: { error: 'busy' } };
        if (req.path === '/flaky-after-401' && ++flaky === 3) return { status: 503, body: { error: 'busy' } };
        return { status: 404 };
      },
    });
    const res: Response = await client.get('flaky');
    expect(res.statusCode).toBe(200);
    expect(at('/flaky')).toHaveLength(2);
    expect(
      at('/flaky').every((r) => r.headers.authorization === at('/flaky')[0]!.headers.authorization),
    ).toBe(true);
    expect(auth.tokenRequests()).toHaveLength(1);

    // 401 (revoked) -> keyfob retry -> 503 -> got retry -> 200.
    auth.issuer.revokeAll();
    const after = await client.get('flaky-after-401');
    expect(after.statusCode).toBe(200);
    expect(at('/flaky-after-401')).toHaveLength(3);
    expect(auth.tokenRequests()).toHaveLength(2);
  });
});

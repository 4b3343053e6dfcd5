import { ConfigurationError, clientCredentials, isKeyfobError, TokenManager } from '@keyfob/core';
import {
  genericClientCredentials,
  type Handler,
  holdTokenEndpoint,
  leakScan,
  rejection,
  startProtectedApi,
  startServer,
} from '@keyfob/testing';
import { Agent, interceptors, request, fetch as undiciFetch } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { type DispatchRequestInfo, tokenInterceptor } from '../src/index.js';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

const CLIENT = { clientId: 'svc', clientSecret: 'svc-secret-value-123' };
const BEARER = /^Bearer at_[0-9a-f]{32}$/;
const redirectTo = (status: number, location: string) => ({ status, headers: { location } });

async function setup(extra?: Handler) {
  const auth = await genericClientCredentials(CLIENT);
  cleanup.push(() => auth.close());
  const api = await startProtectedApi(auth.issuer, extra);
  cleanup.push(() => api.close());
  const second = await startProtectedApi(auth.issuer);
  cleanup.push(() => second.close());
  const foreign = await startServer((req) => (req.path.startsWith('/401') ? { status: 401 } : { body: {} }));
  cleanup.push(() => foreign.close());
  const manager = new TokenManager({ tokenUrl: auth.tokenUrl, grant: clientCredentials(CLIENT), retries: 0 });
  cleanup.push(() => manager.close());
  const agent = (...chain: Parameters<Agent['compose']>) => {
    const d = new Agent().compose(...chain);
    cleanup.push(() => d.close());
    return d;
  };
  const tokens = (extraOptions: Partial<Parameters<typeof tokenInterceptor>[1]> = {}) =>
    tokenInterceptor(manager, { origins: [api.url, second.url], ...extraOptions });
  return { auth, api, second, foreign, manager, agent, tokens };
}

describe('tokenInterceptor', () => {
  it('requires origins', async () => {
    const { manager } = await setup();
    expect(() => tokenInterceptor(manager, {} as never)).toThrow(ConfigurationError);
    expect(() => tokenInterceptor(manager, { origins: [] })).toThrow(ConfigurationError);
  });

  it('undici.request, undici.fetch and the global fetch with a dispatcher all carry the token', async () => {
    const { api, agent, tokens } = await setup();
    const dispatcher = agent(tokens());
    const r1 = await request(`${api.url}/api/request`, { dispatcher });
    expect(r1.statusCode).toBe(200);
    await r1.body.dump();
    expect((await undiciFetch(`${api.url}/api/undici-fetch`, { dispatcher })).status).toBe(200);
    // Node's own fetch (its bundled undici) with this undici's Agent.
    const r3 = await fetch(`${api.url}/api/global-fetch`, { dispatcher } as RequestInit);
    expect(r3.status).toBe(200);
    expect(api.requests.map((r) => BEARER.test(r.headers.authorization ?? ''))).toEqual([true, true, true]);
  });

  it('per-request keyfob options in undici.request; subject function of the dispatch options', async () => {
    const { api, agent, tokens, auth } = await setup();
    const seen: string[] = [];
    const dispatcher = agent(
      tokens({
        subject: (opts: DispatchRequestInfo) => {
          seen.push(`${opts.method} ${opts.path}`);
          return opts.path.includes('tenant') ? 'tenant' : undefined;
        },
      }),
    );
    const send = async (path: string, extra: Record<string, unknown> = {}) => {
      const r = await request(`${api.url}${path}`, { dispatcher, ...extra } as never);
      await (r as { body: { dump(): Promise<void> } }).body.dump();
    };
    await send('/api/a');
    await send('/api/tenant');
    await send('/api/b', { keyfob: { skip: true } });
    await send('/api/c', { keyfob: { scope: 'other' } });
    expect(seen).toEqual(['GET /api/a', 'GET /api/tenant', 'GET /api/c']);
    expect(api.requests[2]!.headers.authorization).toBeUndefined();
    expect(auth.tokenRequests().map((r) => r.params.scope)).toEqual([undefined, undefined, 'other']);
  });

  it('fetch with a dispatcher: a 401 to a GET is retried once; a body (always a stream in fetch) is not', async () => {
    const { auth, api, agent, tokens } = await setup();
    const dispatcher = agent(tokens());
    expect((await undiciFetch(`${api.url}/api/warm`, { dispatcher })).status).toBe(200);
    auth.issuer.revokeAll();
    expect((await undiciFetch(`${api.url}/api/get`, { dispatcher })).status).toBe(200);
    expect(api.requests.filter((r) => r.path === '/api/get')).toHaveLength(2);
    auth.issuer.revokeAll();
    const post = await undiciFetch(`${api.url}/api/post`, { dispatcher, method: 'POST', body: 'x' });
    expect(post.status).toBe(401);
    expect(api.requests.filter((r) => r.path === '/api/post')).toHaveLength(1);
  });

  it('a token endpoint failure: undici.request rejects with the KeyfobError; fetch with TypeError(cause)', async () => {
    const { auth, api, agent, tokens } = await setup();
    auth.override = () => ({ status: 500, body: { error: 'server_error' } });
    const dispatcher = agent(tokens());
    const e1 = await rejection(request(`${api.url}/api/x`, { dispatcher }));
    expect(isKeyfobError(e1)).toBe(true);
    const e2 = (await rejection(undiciFetch(`${api.url}/api/x`, { dispatcher }))) as TypeError;
    expect(e2).toBeInstanceOf(TypeError);
    expect(isKeyfobError(e2.cause)).toBe(true);
    expect(api.requests).toHaveLength(0);
    for (const e of [e1, e2]) expect(leakScan(e, [CLIENT.clientSecret])).toEqual([]);
  });
});

describe('tokenInterceptor: aborts', () => {
  it('an abort while waiting for the token rejects undici.request with the signal`s reason; nothing sent', async () => {
    const { auth, api, agent, tokens } = await setup();
    const release = holdTokenEndpoint(auth);
    const dispatcher = agent(tokens());
    const ac = new AbortController();
    const pending = rejection(request(`${api.url}/api/x`, { dispatcher, signal: ac.signal }));
    await new Promise((r) => setTimeout(r, 50));
    ac.abort();
    const error = (await pending) as Error;
    release();
    expect(error.name).toBe('AbortError');
    await new Promise((r) => setTimeout(r, 50));
    expect(api.requests).toHaveLength(0);
  });
});

describe('tokenInterceptor and undici`s own interceptors: the order undici applies', () => {
  // compose(a, b): b wraps a, so b sees the request first; the last interceptor is the outermost.

  it('compose(tokenInterceptor, redirect): every hop goes through keyfob, each origin decided on its own', async () => {
    const { api, second, foreign, agent, tokens } = await setup((req) => {
      if (req.path === '/to-second') return redirectTo(302, `${second.url}/api/b`);
      if (req.path === '/to-foreign') return redirectTo(307, `${foreign.url}/401`);
      return { status: 404 };
    });
    const dispatcher = agent(tokens(), interceptors.redirect({ maxRedirections: 3 }));
    const r1 = await request(`${api.url}/to-second`, { dispatcher });
    await r1.body.dump();
    expect(r1.statusCode).toBe(200);
    // undici's redirect handler drops the Authorization across origins; keyfob adds its own for the allowed one.
    expect(second.requests[0]!.headers.authorization).toMatch(BEARER);
    const r2 = await request(`${api.url}/to-foreign`, { dispatcher, method: 'POST', body: 'b' });
    await r2.body.dump();
    expect(r2.statusCode).toBe(401);
    expect(foreign.requests[0]!.headers.authorization).toBeUndefined();
    expect(foreign.requests).toHaveLength(1);
  });

  it('compose(redirect, tokenInterceptor): undici`s redirect handler strips the token across origins; a 401 there invalidates nothing', async () => {
    const { auth, api, second, foreign, agent, tokens } = await setup((req) => {
      if (req.path === '/to-second') return redirectTo(302, `${second.url}/api/b`);
      if (req.path === '/to-foreign') return redirectTo(302, `${foreign.url}/401`);
      if (req.path === '/same') return redirectTo(302, '/api/same');
      return { status: 404 };
    });
    const dispatcher = agent(interceptors.redirect({ maxRedirections: 3 }), tokens());
    const same = await request(`${api.url}/same`, { dispatcher });
    await same.body.dump();
    expect(same.statusCode).toBe(200);
    expect(api.requests[1]!.headers.authorization).toMatch(BEARER);
    const r = await request(`${api.url}/to-foreign`, { dispatcher });
    await r.body.dump();
    expect(r.statusCode).toBe(401);
    expect(foreign.requests[0]!.headers.authorization).toBeUndefined();
    expect(foreign.requests).toHaveLength(1);
    expect(auth.tokenRequests()).toHaveLength(1);
    // Even an allowed other origin gets no token in this order (undici strips it, keyfob is not asked).
    const b = await request(`${api.url}/to-second`, { dispatcher });
    await b.body.dump();
    expect(second.requests[0]!.headers.authorization).toBeUndefined();
    expect(auth.tokenRequests()).toHaveLength(1);
  });

  it('with undici`s retry interceptor in either order, every attempt carries the token', async () => {
    let n = 0;
    const { api, agent, tokens } = await setup((req) =>
      req.path === '/flaky' ? (++n % 2 === 1 ? { status: 503 } : { status: 404 }) : { status: 404 },
    );
    const retry = () => interceptors.retry({ maxRetries: 2, minTimeout: 10, statusCodes: [503] });
    for (const dispatcher of [agent(tokens(), retry()), agent(retry(), tokens())]) {
      const r = await request(`${api.url}/flaky`, { dispatcher });
      await r.body.dump();
      // The 404 of the extra handler falls through to the token check: 200 when the token is there.
      expect(r.statusCode).toBe(200);
    }
    const flaky = api.requests.filter((r) => r.path === '/flaky');
    expect(flaky).toHaveLength(4);
    expect(flaky.every((r) => BEARER.test(r.headers.authorization ?? ''))).toBe(true);
  });
});

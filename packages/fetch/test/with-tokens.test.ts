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
import { Agent, fetch as undiciFetch } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { type FetchRequestInfo, withTokens } from '../src/index.js';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

const CLIENT = { clientId: 'svc', clientSecret: 'svc-secret-value-123' };
const BEARER = /^Bearer at_[0-9a-f]{32}$/;

/** Token endpoint, protected API (`extra` answers first; 404 falls through), a foreign server. */
async function setup(extra?: Handler) {
  const auth = await genericClientCredentials(CLIENT);
  cleanup.push(() => auth.close());
  const api = await startProtectedApi(auth.issuer, extra);
  cleanup.push(() => api.close());
  const foreign = await startServer((req) =>
    req.path.startsWith('/back')
      ? { status: 302, headers: { location: `${api.url}/api/back` } }
      : { body: {} },
  );
  cleanup.push(() => foreign.close());
  const manager = new TokenManager({ tokenUrl: auth.tokenUrl, grant: clientCredentials(CLIENT), retries: 0 });
  cleanup.push(() => manager.close());
  const send = withTokens(fetch, manager, { origins: [api.url] });
  return { auth, api, foreign, manager, send };
}

const redirectTo = (status: number, location: string) => ({ status, headers: { location } });

describe('withTokens: options', () => {
  it('requires origins (fetch has no base URL) and a fetch function', async () => {
    const manager = new TokenManager({
      tokenUrl: 'https://auth.example.com/token',
      grant: clientCredentials(CLIENT),
    });
    cleanup.push(() => manager.close());
    expect(() => withTokens(fetch, manager, {} as never)).toThrow(ConfigurationError);
    expect(() => withTokens(fetch, manager, { origins: [] })).toThrow(ConfigurationError);
    expect(() => withTokens(fetch, manager, { origins: ['api.example.com'] })).toThrow(
      /absolute http\(s\) URL/,
    );
    expect(() => withTokens('fetch' as never, manager, { origins: ['https://api.example.com'] })).toThrow(
      ConfigurationError,
    );
    expect(() => withTokens(fetch, {} as never, { origins: ['https://api.example.com'] })).toThrow(
      ConfigurationError,
    );
  });
});

describe('withTokens: requests', () => {
  it('takes a Request, a URL or a string; a Request body is replayed after a 401', async () => {
    const { auth, api, send } = await setup();
    expect((await send(new URL(`${api.url}/api/url`))).status).toBe(200);
    expect((await send(new Request(`${api.url}/api/request`))).status).toBe(200);
    auth.issuer.revokeAll();
    const res = await send(
      new Request(`${api.url}/api/post`, {
        method: 'POST',
        body: 'request body',
        headers: { 'content-type': 'text/plain', authorization: 'Bearer the-callers-own' },
      }),
    );
    expect(res.status).toBe(200);
    const posts = api.requests.filter((r) => r.path === '/api/post');
    expect(posts.map((p) => p.body)).toEqual(['request body', 'request body']);
    expect(posts.every((p) => BEARER.test(p.headers.authorization ?? ''))).toBe(true);
    expect(posts[1]!.headers['content-type']).toBe('text/plain');
  });

  it('init headers win over a Request`s, as in fetch; keyfob is not passed on', async () => {
    const { api, send } = await setup();
    await send(new Request(`${api.url}/api/h`, { headers: { 'x-a': 'request' } }), {
      headers: { 'x-a': 'init' },
      keyfob: { scope: 'read' },
    });
    expect(api.requests[0]!.headers['x-a']).toBe('init');
  });

  it('a subject function gets the URL, the init and the Request', async () => {
    const { api, manager } = await setup();
    const seen: FetchRequestInfo[] = [];
    const send = withTokens(fetch, manager, {
      origins: [api.url],
      subject: (info) => {
        seen.push(info);
        return info.url.includes('/alice') ? 'alice' : undefined;
      },
    });
    await send(`${api.url}/api/alice`, { method: 'GET' });
    await send(`${api.url}/api/other`);
    expect(seen.map((s) => [s.url, s.init?.method, s.request])).toEqual([
      [`${api.url}/api/alice`, 'GET', undefined],
      [`${api.url}/api/other`, undefined, undefined],
    ]);
    expect(api.requests[0]!.headers.authorization).not.toBe(api.requests[1]!.headers.authorization);
  });

  it('wraps another fetch implementation (undici`s)', async () => {
    const { api, manager } = await setup();
    const send = withTokens(undiciFetch, manager, { origins: [api.url] });
    const dispatcher = new Agent();
    cleanup.push(() => dispatcher.close());
    // undici's own init (its dispatcher option) and keyfob's, typed together.
    const res = await send(`${api.url}/api/undici`, { dispatcher, keyfob: { scope: 'undici' } });
    expect(res.status).toBe(200);
    expect(api.requests[0]!.headers.authorization).toMatch(BEARER);
  });

  it('an abort while waiting for the token rejects like fetch (the signal`s reason); nothing is sent', async () => {
    const { auth, api, send } = await setup();
    const release = holdTokenEndpoint(auth);
    const ac = new AbortController();
    const pending = rejection(send(`${api.url}/api/x`, { signal: ac.signal }));
    await new Promise((r) => setTimeout(r, 50));
    ac.abort();
    const error = (await pending) as Error;
    release();
    expect(error.name).toBe('AbortError');
    expect(api.requests).toHaveLength(0);
  });

  it('an abort during the request rejects with fetch`s AbortError', async () => {
    const { api, send } = await setup(async (req) =>
      req.path === '/api/slow' ? { delayMs: 2_000, body: {} } : { status: 404 },
    );
    await send(`${api.url}/api/warm`);
    const ac = new AbortController();
    const pending = rejection(send(`${api.url}/api/slow`, { signal: ac.signal }));
    await new Promise((r) => setTimeout(r, 100));
    ac.abort();
    const error = (await pending) as Error;
    expect(error.name).toBe('AbortError');
  });
});

describe('withTokens: redirects (followed by keyfob, with fetch semantics)', () => {
  it('301/302 turn a POST into a GET without body; 303 any method; 307/308 keep method and body', async () => {
    const { api, send } = await setup((req) => {
      const m = /^\/go\/(\d{3})$/.exec(req.path);
      return m ? redirectTo(Number(m[1]), '/api/landed') : { status: 404 };
    });
    const cases: [number, string, string, string][] = [
      [301, 'POST', 'GET', ''],
      [302, 'POST', 'GET', ''],
      [303, 'PUT', 'GET', ''],
      [307, 'POST', 'POST', 'payload'],
      [308, 'PUT', 'PUT', 'payload'],
      [302, 'PUT', 'PUT', 'payload'],
    ];
    for (const [status, method, expected, body] of cases) {
      api.requests.length = 0;
      const res = await send(`${api.url}/go/${status}`, {
        method,
        body: 'payload',
        headers: { 'content-type': 'text/plain' },
      });
      expect(res.status).toBe(200);
      expect(res.redirected).toBe(true);
      expect(res.url).toBe(`${api.url}/api/landed`);
      const landed = api.requests[1]!;
      expect([status, landed.method, landed.body]).toEqual([status, expected, body]);
      expect(landed.headers['content-type']).toBe(body ? 'text/plain' : undefined);
      expect(landed.headers.authorization).toMatch(BEARER);
    }
  });

  it('a Location with raw non-ASCII bytes is followed where fetch goes (read as UTF-8, 0xFC as U+FFFD)', async () => {
    // Node writes header strings as latin-1: '\u00fc' is the byte 0xFC (not UTF-8), '\u00c3\u00bc' the UTF-8 'ü'.
    const { api, send } = await setup((req) =>
      req.path === '/fc'
        ? redirectTo(302, '/api/\u00fc')
        : req.path === '/utf8'
          ? redirectTo(302, '/api/\u00c3\u00bc')
          : { body: {} },
    );
    for (const path of ['/fc', '/utf8']) {
      await (await send(`${api.url}${path}`)).text();
      await (await fetch(`${api.url}${path}`)).text();
    }
    const landed = api.requests.filter((r) => r.path.startsWith('/api/'));
    // keyfob's hop (with the token) and fetch's own (without) land on the same URL.
    expect(landed.map((r) => [r.path, r.headers.authorization !== undefined])).toEqual([
      ['/api/%EF%BF%BD', true],
      ['/api/%EF%BF%BD', false],
      ['/api/%C3%BC', true],
      ['/api/%C3%BC', false],
    ]);
  });

  it('redirect: "manual" returns the redirect; "error" rejects; a loop stops after 20', async () => {
    const { api, send } = await setup((req) =>
      req.path === '/loop'
        ? redirectTo(302, '/loop')
        : req.path === '/once'
          ? redirectTo(302, '/api/x')
          : { status: 404 },
    );
    const manual = await send(`${api.url}/once`, { redirect: 'manual' });
    expect(manual.status).toBe(302);
    expect(manual.headers.get('location')).toBe('/api/x');
    expect(await rejection(send(`${api.url}/once`, { redirect: 'error' }))).toBeInstanceOf(TypeError);
    api.requests.length = 0;
    const loop = (await rejection(send(`${api.url}/loop`))) as TypeError;
    expect(loop).toBeInstanceOf(TypeError);
    expect(api.requests).toHaveLength(21);
    expect(leakScan(loop, [api.requests[0]!.headers.authorization!.slice(7)])).toEqual([]);
  });

  it('a 307 with a stream body cannot be followed (as in fetch): TypeError', async () => {
    const { api, send } = await setup((req) =>
      req.path === '/go' ? redirectTo(307, '/api/x') : { status: 404 },
    );
    const body = new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode('once'));
        c.close();
      },
    });
    const error = await rejection(
      send(`${api.url}/go`, { method: 'POST', body, duplex: 'half' } as RequestInit),
    );
    expect(error).toBeInstanceOf(TypeError);
  });

  it('to another allowed origin: the token goes on; to a foreign one and back: it does not come back', async () => {
    const { auth, api, foreign, manager } = await setup((req) => {
      if (req.path === '/to-b') return redirectTo(302, `${second.url}/api/b`);
      if (req.path === '/via-foreign') return redirectTo(302, `${foreign.url}/back`);
      return { status: 404 };
    });
    const second = await startProtectedApi(auth.issuer);
    cleanup.push(() => second.close());
    const send = withTokens(fetch, manager, { origins: [api.url, second.url] });
    expect((await send(`${api.url}/to-b`)).status).toBe(200);
    expect(second.requests[0]!.headers.authorization).toMatch(BEARER);

    const res = await send(`${api.url}/via-foreign`);
    // api -> foreign (token stripped) -> api again: still without the token, so the API says 401,
    // and that 401 is not an answer to keyfob's token: no invalidation, no retry.
    expect(res.status).toBe(401);
    expect(foreign.requests[0]!.headers.authorization).toBeUndefined();
    expect(api.requests.filter((r) => r.path === '/api/back')).toHaveLength(1);
    expect(api.requests.find((r) => r.path === '/api/back')!.headers.authorization).toBeUndefined();
    expect(auth.tokenRequests()).toHaveLength(1);
  });

  it('a caller-set Authorization, Cookie and Proxy-Authorization do not cross origins either', async () => {
    const { api, foreign, send } = await setup((req) =>
      req.path === '/out' ? redirectTo(302, `${foreign.url}/in`) : { status: 404 },
    );
    await send(`${api.url}/out`, {
      keyfob: { skip: true },
      headers: { authorization: 'Basic abc', cookie: 'c=1' },
    });
    // skip: keyfob did not follow (fetch did), which strips them too.
    expect(foreign.requests[0]!.headers.authorization).toBeUndefined();
    expect(foreign.requests[0]!.headers.cookie).toBeUndefined();
    await send(`${api.url}/out`, { headers: { cookie: 'c=1', 'proxy-authorization': 'Basic xyz' } });
    expect(foreign.requests[1]!.headers.cookie).toBeUndefined();
    expect(foreign.requests[1]!.headers['proxy-authorization']).toBeUndefined();
    expect(foreign.requests[1]!.headers.authorization).toBeUndefined();
  });
});

describe('withTokens: errors', () => {
  it('the token endpoint`s error as is (a TokenEndpointError), nothing secret in it', async () => {
    const { auth, api, send } = await setup();
    auth.override = () => ({ status: 401, body: { error: 'invalid_client' } });
    const error = await rejection(send(`${api.url}/api/x`));
    expect(isKeyfobError(error)).toBe(true);
    expect((error as { status?: number }).status).toBe(401);
    expect(leakScan(error, [CLIENT.clientSecret])).toEqual([]);
    expect(api.requests).toHaveLength(0);
  });
});

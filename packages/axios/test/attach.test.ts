import { Readable } from 'node:stream';
import { inspect } from 'node:util';
import { attachTokens } from '@keyfob/axios';
import {
  ConfigurationError,
  clientCredentials,
  customGrant,
  KeyfobError,
  TokenEndpointError,
  TokenManager,
} from '@keyfob/core';
import {
  genericClientCredentials,
  type Handler,
  type ProviderServer,
  rejection,
  startProtectedApi,
  startServer,
  type TestServer,
} from '@keyfob/testing';
import axios, { AxiosError, type AxiosInstance } from 'axios';
import axios16 from 'axios16';
import { afterEach, describe, expect, it } from 'vitest';

const cleanup: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

const CLIENT = { clientId: 'svc', clientSecret: 'svc-secret-value' };

async function provider(): Promise<ProviderServer> {
  const server = await genericClientCredentials(CLIENT);
  cleanup.push(() => server.close());
  return server;
}

function managerFor(
  server: ProviderServer,
  extra: Partial<ConstructorParameters<typeof TokenManager>[0]> = {},
) {
  const tokens = new TokenManager({
    tokenUrl: server.tokenUrl,
    grant: clientCredentials({ ...CLIENT, scope: 'read' }),
    ...extra,
  });
  cleanup.push(() => tokens.close());
  return tokens;
}

/** A protected API validating the provider's tokens, on its own origin; `extra` answers special paths. */
async function api(server: ProviderServer, extra?: Handler): Promise<TestServer> {
  const s = await startProtectedApi(server.issuer, extra);
  cleanup.push(() => s.close());
  return s;
}

async function recorder(): Promise<TestServer> {
  const s = await startServer(() => ({ body: { ok: true } }));
  cleanup.push(() => s.close());
  return s;
}

async function closedPort(): Promise<string> {
  const s = await startServer(() => ({}));
  await s.close();
  return s.url;
}

function client(baseURL?: string): AxiosInstance {
  return axios.create(baseURL === undefined ? {} : { baseURL });
}

const tokenIn = (server: ProviderServer) => [...server.issuer.issued.keys()];

describe('attachTokens: sending tokens', () => {
  it('attaches the Bearer token the token endpoint issued', async () => {
    const server = await provider();
    const resource = await api(server);
    const http = client(resource.url);
    attachTokens(http, managerFor(server));
    const res = await http.get('/hello');
    expect(res.status).toBe(200);
    expect(res.data).toMatchObject({ ok: true, path: '/hello' });
    const [token] = tokenIn(server);
    expect(resource.requests[0]!.headers.authorization).toBe(`Bearer ${token}`);
    expect(server.tokenRequests()).toHaveLength(1);
  });

  it("sends the caller's headers as axios would: other headers kept, a header set to false (do not send) stays unsent", async () => {
    const server = await provider();
    const resource = await api(server);
    const http = axios.create({ baseURL: resource.url, headers: { 'X-Trace': 'abc' } });
    attachTokens(http, managerFor(server));
    await http.get('/hello', { headers: { 'User-Agent': false, 'X-Other': '1' } });
    const [token] = tokenIn(server);
    const sent = resource.requests[0]!.headers;
    expect(sent.authorization).toBe(`Bearer ${token}`);
    expect(sent['x-trace']).toBe('abc');
    expect(sent['x-other']).toBe('1');
    expect(sent['user-agent']).toBeUndefined(); // axios' own User-Agent not added
  });

  it('reuses one cached token across 1,000 requests (batches of 50)', async () => {
    const server = await provider();
    const resource = await api(server);
    const http = client(resource.url);
    attachTokens(http, managerFor(server));
    let ok = 0;
    for (let batch = 0; batch < 20; batch++) {
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) => http.get(`/items/${batch * 50 + i}`)),
      );
      ok += results.filter((r) => r.status === 200).length;
    }
    expect(ok).toBe(1000);
    expect(resource.requests).toHaveLength(1000);
    expect(server.tokenRequests()).toHaveLength(1);
    expect(new Set(resource.requests.map((r) => r.headers.authorization)).size).toBe(1);
  });

  it('skip: true sends no token (and does not retry the 401)', async () => {
    const server = await provider();
    const resource = await api(server);
    const http = client(resource.url);
    attachTokens(http, managerFor(server));
    const err = await rejection(http.get('/hello', { keyfob: { skip: true } }));
    expect((err as AxiosError).response?.status).toBe(401);
    expect(resource.requests).toHaveLength(1);
    expect(resource.requests[0]!.headers.authorization).toBeUndefined();
    expect(server.tokenRequests()).toHaveLength(0);
  });

  it('per-request subject and scope reach the grant, and the option defaults apply otherwise', async () => {
    const seen: { subject: string | undefined; scope: string | undefined }[] = [];
    let n = 0;
    const tokens = new TokenManager({
      grant: customGrant(async (ctx) => {
        seen.push({ subject: ctx.subject, scope: ctx.scope });
        n++;
        return { access_token: `tok-${n}-${ctx.subject ?? 'service'}`, expires_in: 3600 };
      }),
    });
    cleanup.push(() => tokens.close());
    const resource = await recorder();
    const http = client(resource.url);
    attachTokens(http, tokens, {
      scope: 'default-scope',
      subject: (config) => config.headers.get('x-user') as string | undefined,
    });
    await http.get('/a', { keyfob: { subject: 'alice', scope: 'orders:read' } });
    await http.get('/b', { headers: { 'x-user': 'bob' } });
    await http.get('/c');
    expect(seen).toEqual([
      { subject: 'alice', scope: 'orders:read' },
      { subject: 'bob', scope: 'default-scope' },
      { subject: undefined, scope: 'default-scope' },
    ]);
    expect(resource.requests.map((r) => r.headers.authorization)).toEqual([
      'Bearer tok-1-alice',
      'Bearer tok-2-bob',
      'Bearer tok-3-service',
    ]);
  });

  it("the token goes on after every request interceptor: the caller's interceptors never see it", async () => {
    const server = await provider();
    const resource = await api(server);
    const http = client(resource.url);
    const seen: unknown[] = [];
    // Registered before attachTokens (runs after keyfob's) and after it (runs before).
    http.interceptors.request.use((config) => {
      seen.push(config.headers.get('Authorization'));
      return config;
    });
    attachTokens(http, managerFor(server));
    http.interceptors.request.use(async (config) => {
      seen.push(config.headers.get('Authorization'));
      return config;
    });
    const res = await http.get('/hello');
    expect(seen).toEqual([undefined, undefined]);
    const [token] = tokenIn(server);
    expect(resource.requests[0]!.headers.authorization).toBe(`Bearer ${token}`);
    // The token lives only on the transport's private copy of the config.
    expect(res.config.headers.get('Authorization')).toBeUndefined();
  });

  it('the returned function removes the interceptor: no token, no retry', async () => {
    const server = await provider();
    const resource = await api(server);
    const http = client(resource.url);
    const detach = attachTokens(http, managerFor(server));
    expect((await http.get('/one')).status).toBe(200);
    detach();
    detach();
    const live = (http.interceptors.request as unknown as { handlers: unknown[] }).handlers.filter(Boolean);
    expect(live).toHaveLength(0);
    const err = await rejection(http.get('/two'));
    expect((err as AxiosError).response?.status).toBe(401);
    expect(resource.requests.at(-1)!.headers.authorization).toBeUndefined();
    expect(resource.requests).toHaveLength(2);
  });
});

describe('attachTokens: allowed origins', () => {
  it('an absolute URL to another origin carries no token', async () => {
    const server = await provider();
    const resource = await api(server);
    const elsewhere = await recorder();
    const http = client(resource.url);
    attachTokens(http, managerFor(server));
    expect((await http.get(`${elsewhere.url}/collect`)).status).toBe(200);
    expect(elsewhere.requests).toHaveLength(1);
    expect(elsewhere.requests[0]!.headers.authorization).toBeUndefined();
    // Same host, other port: another origin.
    expect(elsewhere.url).not.toBe(resource.url);
    // allowAbsoluteUrls: false keeps requests on the baseURL, and they carry the token.
    const res = await http.get(`${elsewhere.url}/collect`, { allowAbsoluteUrls: false });
    expect(res.status).toBe(200);
    expect(elsewhere.requests).toHaveLength(1);
    expect(resource.requests.at(-1)!.path).toBe(`/${elsewhere.url}/collect`);
    expect(resource.requests.at(-1)!.headers.authorization).toMatch(/^Bearer at_/);
  });

  it('allowAbsoluteUrls: false on an axios that ignores it (before 1.8): the absolute URL is judged, no token leaves', async () => {
    const server = await provider();
    const resource = await api(server);
    const elsewhere = await recorder();
    // The real axios 1.6 (a devDependency alias), with its own http adapter: it sends an absolute URL
    // where it points, whatever allowAbsoluteUrls says, so keyfob must not judge it by the baseURL.
    const old = axios16.create({ baseURL: resource.url, adapter: axios16.getAdapter('http') });
    attachTokens(old as unknown as AxiosInstance, managerFor(server));
    expect(axios16.VERSION).toBe('1.6.0');
    const res = await old.get(`${elsewhere.url}/collect`, { allowAbsoluteUrls: false } as object);
    expect(res.status).toBe(200);
    expect(elsewhere.requests).toHaveLength(1);
    expect(elsewhere.requests[0]!.headers.authorization).toBeUndefined();
    // A relative URL still gets the token on axios 1.6.
    expect((await old.get('/ping')).status).toBe(200);
    expect(resource.requests.at(-1)!.headers.authorization).toMatch(/^Bearer at_/);
  });

  it('options.origins widens the allow-list; a no-baseURL instance works with origins only', async () => {
    const server = await provider();
    const first = await api(server);
    const second = await api(server);
    const other = await recorder();
    const http = client(first.url);
    attachTokens(http, managerFor(server), { origins: [`${second.url}/any/path`] });
    expect((await http.get('/a')).status).toBe(200);
    expect((await http.get(`${second.url}/b`)).status).toBe(200);
    await http.get(`${other.url}/c`);
    expect(other.requests[0]!.headers.authorization).toBeUndefined();

    const bare = client();
    attachTokens(bare, managerFor(server), { origins: [new URL(second.url)] });
    expect((await bare.get(`${second.url}/d`)).status).toBe(200);
    await bare.get(`${other.url}/e`);
    expect(other.requests[1]!.headers.authorization).toBeUndefined();
  });

  it("a config copied from an earlier response and pointed elsewhere does not carry that response's token", async () => {
    const server = await provider();
    const resource = await api(server);
    const elsewhere = await recorder();
    const http = client(resource.url);
    attachTokens(http, managerFor(server));
    const res = await http.get('/first');
    expect(resource.requests[0]!.headers.authorization).toMatch(/^Bearer at_/);
    expect(res.config.headers.get('Authorization')).toBeUndefined();
    await http.request({ ...res.config, baseURL: elsewhere.url, url: '/copied' });
    await http.get(`${elsewhere.url}/same-headers`, { headers: res.config.headers });
    expect(elsewhere.requests.map((r) => r.path)).toEqual(['/copied', '/same-headers']);
    expect(elsewhere.requests.map((r) => r.headers.authorization)).toEqual([undefined, undefined]);
    // A header of your own to another origin is yours to send.
    await http.get(`${elsewhere.url}/own`, { headers: { Authorization: 'Bearer my-own' } });
    expect(elsewhere.requests[2]!.headers.authorization).toBe('Bearer my-own');
  });

  it('a redirect to another origin arrives without the token; a same-origin redirect keeps it', async () => {
    const server = await provider();
    const elsewhere = await recorder();
    const resource = await api(server, (req) => {
      if (req.path === '/leave') return { status: 302, headers: { location: `${elsewhere.url}/landing` } };
      if (req.path === '/stay') return { status: 302, headers: { location: '/landed' } };
      return { status: 404 };
    });
    const http = client(resource.url);
    attachTokens(http, managerFor(server));

    expect((await http.get('/leave')).status).toBe(200);
    expect(resource.requests[0]!.headers.authorization).toMatch(/^Bearer at_/);
    expect(elsewhere.requests).toHaveLength(1);
    expect(elsewhere.requests[0]!.headers.authorization).toBeUndefined();

    const res = await http.get('/stay');
    expect(res.status).toBe(200);
    expect(res.data).toMatchObject({ ok: true, path: '/landed' });
    expect(resource.requests.at(-1)!.headers.authorization).toMatch(/^Bearer at_/);
  });

  it("keyfob's redirect hook runs after the caller's beforeRedirect, even one that copies every header over", async () => {
    const server = await provider();
    const elsewhere = await recorder();
    const resource = await api(server, (req) =>
      req.path === '/leave'
        ? { status: 307, headers: { location: `${elsewhere.url}/landing` } }
        : { status: 404 },
    );
    let calls = 0;
    // A common workaround for "custom headers get lost on redirect": put them all back.
    const http = axios.create({
      baseURL: resource.url,
      beforeRedirect: (options, _res, req) => {
        calls++;
        const { Host: _host, host: _h, ...rest } = (req?.headers ?? {}) as Record<string, string>;
        options.headers = { ...options.headers, ...rest };
      },
    });
    attachTokens(http, managerFor(server));
    await http.get('/leave', { headers: { 'x-trace': 'abc' } });
    expect(calls).toBe(1);
    expect(elsewhere.requests[0]!.headers['x-trace']).toBe('abc');
    expect(elsewhere.requests[0]!.headers.authorization).toBeUndefined();
    // Without keyfob the same hook hands the token over: this is what the hook prevents.
    const plain = axios.create({ baseURL: resource.url, beforeRedirect: http.defaults.beforeRedirect });
    await plain.get('/leave', { headers: { authorization: 'Bearer manual-token' } });
    expect(elsewhere.requests[1]!.headers.authorization).toBe('Bearer manual-token');
  });

  it('a beforeRedirect that sets the token under several cases of the name (and as an array): none reaches another origin', async () => {
    const server = await provider();
    const elsewhere = await recorder();
    const resource = await api(server, (req) =>
      req.path.startsWith('/leave')
        ? { status: 302, headers: { location: `${elsewhere.url}/landing` } }
        : { status: 404 },
    );
    const variants: Record<string, (token: string) => unknown> = {
      both: (t) => ({ authorization: t, Authorization: t }),
      upper: (t) => ({ AUTHORIZATION: t, Authorization: t }),
      array: (t) => ({ Authorization: [t] }),
      padded: (t) => ({ Authorization: `${t} ` }),
    };
    let variant = 'both';
    const http = axios.create({
      baseURL: resource.url,
      // The token as the hook could read it off the previous hop (axios < 1.8 passes no request details).
      beforeRedirect: (options) => {
        Object.assign(options.headers, variants[variant]!(`Bearer ${tokenIn(server)[0]}`));
      },
    });
    attachTokens(http, managerFor(server));
    for (variant of Object.keys(variants)) {
      await http.get(`/leave/${variant}`);
      const sent = resource.requests.at(-1)!.headers.authorization;
      expect(sent).toMatch(/^Bearer at_/);
      expect(elsewhere.requests.at(-1)!.headers.authorization, variant).toBeUndefined();
    }
    expect(elsewhere.requests).toHaveLength(4);
    // An Authorization of the hook's own (not keyfob's token) is the hook's to send.
    const own = axios.create({
      baseURL: resource.url,
      beforeRedirect: (options) => {
        options.headers.Authorization = 'Bearer for-the-landing-page';
      },
    });
    attachTokens(own, managerFor(server));
    await own.get('/leave/own');
    expect(elsewhere.requests.at(-1)!.headers.authorization).toBe('Bearer for-the-landing-page');
  });

  it('a request with its own adapter and beforeRedirect still gets the token, the redirect guard and the retry', async () => {
    const server = await provider();
    const elsewhere = await recorder();
    let denied = 0;
    const resource = await api(server, (req) => {
      if (req.path === '/leave') return { status: 307, headers: { location: `${elsewhere.url}/landing` } };
      if (req.path === '/deny-once' && denied++ === 0) return { status: 401 };
      return { status: 404 };
    });
    const http = client(resource.url);
    attachTokens(http, managerFor(server));
    let hookCalls = 0;
    await http.get('/leave', {
      adapter: 'http',
      beforeRedirect: (options, _res, req) => {
        hookCalls++;
        const { Host: _host, host: _h, ...rest } = (req?.headers ?? {}) as Record<string, string>;
        options.headers = { ...options.headers, ...rest };
      },
    });
    expect(hookCalls).toBe(1);
    expect(resource.requests[0]!.headers.authorization).toMatch(/^Bearer at_/);
    expect(elsewhere.requests[0]!.headers.authorization).toBeUndefined();

    const res = await http.get('/deny-once', { adapter: ['fetch', 'http'] });
    expect(res.status).toBe(200);
    expect(res.config.keyfob?.retried).toBe(true);
    expect(resource.requests.filter((r) => r.path === '/deny-once')).toHaveLength(2);
  });

  it('an interceptor that runs after keyfob and moves the request elsewhere does not take the token along', async () => {
    const server = await provider();
    const resource = await api(server);
    const elsewhere = await recorder();
    const http = client(resource.url);
    // Registered before attachTokens, so axios runs it after keyfob's interceptor.
    http.interceptors.request.use((config) => {
      if (config.url === '/moved') config.url = `${elsewhere.url}/moved`;
      return config;
    });
    attachTokens(http, managerFor(server));
    await http.get('/moved');
    expect(elsewhere.requests).toHaveLength(1);
    expect(elsewhere.requests[0]!.headers.authorization).toBeUndefined();
    expect((await http.get('/fine')).status).toBe(200);
  });
});

describe('attachTokens: 401 handling', () => {
  it('tokens revoked while 50 requests are in flight: each succeeds after one retry, one new token request', async () => {
    const server = await provider();
    let arrived = 0;
    let open!: () => void;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const resource = await api(server, async (req) => {
      if (!req.path.startsWith('/slow')) return { status: 404 };
      if (++arrived === 50) {
        server.issuer.revokeAll();
        open();
      }
      await gate;
      const check = server.issuer.check(req.headers.authorization);
      return check.ok ? { body: { ok: true } } : check.reply;
    });
    const tokens = managerFor(server);
    const invalidated: string[] = [];
    tokens.on('tokenInvalidated', (e) => invalidated.push(e.fingerprint));
    const http = client(resource.url);
    attachTokens(http, tokens);
    await tokens.getToken();
    expect(server.tokenRequests()).toHaveLength(1);

    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => http.get(`/slow/${i}`)));
    expect(results.every((r) => r.status === 200)).toBe(true);
    expect(results.every((r) => r.config.keyfob?.retried === true)).toBe(true);
    expect(server.tokenRequests()).toHaveLength(2);
    expect(invalidated).toHaveLength(1);
    expect(resource.requests).toHaveLength(100);
    const retriedWith = new Set(resource.requests.slice(50).map((r) => r.headers.authorization));
    expect(retriedWith.size).toBe(1);
    expect(retriedWith.has(resource.requests[0]!.headers.authorization)).toBe(false);
  });

  it('an API that always answers 401: exactly two attempts, the caller gets the 401', async () => {
    const server = await provider();
    const resource = await api(server, (req) =>
      req.path === '/deny' ? { status: 401, body: { error: 'invalid_token' } } : { status: 404 },
    );
    const http = client(resource.url);
    attachTokens(http, managerFor(server));
    const err = await rejection(http.get('/deny'));
    expect(err).toBeInstanceOf(AxiosError);
    expect((err as AxiosError).response?.status).toBe(401);
    expect((err as AxiosError).response?.data).toEqual({ error: 'invalid_token' });
    expect((err as AxiosError).config?.keyfob?.retried).toBe(true);
    expect(resource.requests).toHaveLength(2);
    expect(resource.requests[0]!.headers.authorization).not.toBe(resource.requests[1]!.headers.authorization);
    expect(server.tokenRequests()).toHaveLength(2);
    // Sending the failed config again by hand is a new request: the policy gives it its one retry too.
    await rejection(http.request((err as AxiosError).config!));
    expect(resource.requests).toHaveLength(4);
  });

  it('with validateStatus accepting 401, the 401 still triggers one retry, and a second 401 is returned', async () => {
    const server = await provider();
    const resource = await api(server, (req) =>
      req.path === '/deny' ? { status: 401, body: { error: 'invalid_token' } } : { status: 404 },
    );
    const http = client(resource.url);
    http.defaults.validateStatus = () => true;
    attachTokens(http, managerFor(server));
    const res = await http.get('/deny');
    expect(res.status).toBe(401);
    expect(res.config.keyfob?.retried).toBe(true);
    expect(resource.requests).toHaveLength(2);
    expect(server.tokenRequests()).toHaveLength(2);
    expect(resource.requests[0]!.headers.authorization).not.toBe(resource.requests[1]!.headers.authorization);
  });

  it('retryOn401: false leaves the 401 alone', async () => {
    const server = await provider();
    const resource = await api(server, (req) => (req.path === '/deny' ? { status: 401 } : { status: 404 }));
    const http = client(resource.url);
    attachTokens(http, managerFor(server), { retryOn401: false });
    expect(((await rejection(http.get('/deny'))) as AxiosError).response?.status).toBe(401);
    expect(resource.requests).toHaveLength(1);
    expect(server.tokenRequests()).toHaveLength(1);
  });

  it('a JSON body is sent again unchanged on the retry', async () => {
    const server = await provider();
    const resource = await api(server);
    const tokens = managerFor(server);
    const http = client(resource.url);
    attachTokens(http, tokens);
    await tokens.getToken();
    server.issuer.revokeAll();
    const res = await http.post('/orders', { item: 'book', qty: 2 });
    expect(res.status).toBe(200);
    expect(resource.requests).toHaveLength(2);
    expect(resource.requests.map((r) => r.body)).toEqual([
      '{"item":"book","qty":2}',
      '{"item":"book","qty":2}',
    ]);
  });

  it('a stream body is not replayed: the 401 reaches the caller after one attempt', async () => {
    const server = await provider();
    const resource = await api(server);
    const tokens = managerFor(server);
    const http = client(resource.url);
    attachTokens(http, tokens);
    await tokens.getToken();
    server.issuer.revokeAll();
    const err = await rejection(
      http.post('/upload', Readable.from([Buffer.from('chunk-1 '), Buffer.from('chunk-2')]), {
        headers: { 'content-type': 'application/octet-stream' },
      }),
    );
    expect((err as AxiosError).response?.status).toBe(401);
    expect(resource.requests).toHaveLength(1);
    expect(resource.requests[0]!.body).toBe('chunk-1 chunk-2');
    // The rejected token was dropped all the same: the next request gets a new one and succeeds.
    expect((await http.get('/next')).status).toBe(200);
    expect(server.tokenRequests()).toHaveLength(2);
  });

  it("the caller's response interceptors see the retried request once, never the 401", async () => {
    const server = await provider();
    const resource = await api(server);
    const tokens = managerFor(server);
    const http = client(resource.url);
    attachTokens(http, tokens);
    const seen: string[] = [];
    http.interceptors.response.use(
      (res) => {
        seen.push(`ok ${res.status}`);
        return res.data;
      },
      (err: AxiosError) => {
        seen.push(`error ${err.response?.status}`);
        throw err;
      },
    );
    await tokens.getToken();
    server.issuer.revokeAll();
    const data = (await http.get('/unwrapped')) as unknown;
    expect(data).toMatchObject({ ok: true, path: '/unwrapped' });
    expect(seen).toEqual(['ok 200']);
  });
});

describe('attachTokens: failures', () => {
  it('token endpoint down: a typed KeyfobError with the request config, and no unauthenticated request', async () => {
    const resource = await recorder();
    const tokens = new TokenManager({
      tokenUrl: `${await closedPort()}/oauth2/token`,
      grant: clientCredentials(CLIENT),
      retries: 0,
    });
    cleanup.push(() => tokens.close());
    const http = client(resource.url);
    attachTokens(http, tokens);
    const [a, b] = await Promise.all([
      rejection(http.get('/first')),
      rejection(http.post('/second', { x: 1 })),
    ]);
    expect(a).toBeInstanceOf(KeyfobError);
    expect(a).toBeInstanceOf(TokenEndpointError);
    expect((a as TokenEndpointError).code).toBe('KEYFOB_TOKEN_ENDPOINT_NETWORK');
    expect((a as { config: { url: string } }).config.url).toBe('/first');
    expect((b as { config: { url: string; method: string } }).config).toMatchObject({
      url: '/second',
      method: 'post',
    });
    expect(resource.requests).toHaveLength(0);
    // The request config stays out of the printed error.
    expect(JSON.stringify(a)).not.toContain('/first');
    expect(JSON.stringify(a)).not.toContain(CLIENT.clientSecret);
  });

  it('token endpoint rejects the client: TokenEndpointError with status 401, API untouched', async () => {
    const server = await provider();
    const resource = await recorder();
    const tokens = new TokenManager({
      tokenUrl: server.tokenUrl,
      grant: clientCredentials({ clientId: 'svc', clientSecret: 'wrong-secret-value' }),
    });
    cleanup.push(() => tokens.close());
    const http = client(resource.url);
    attachTokens(http, tokens);
    const err = await rejection(http.get('/x'));
    expect(err).toBeInstanceOf(TokenEndpointError);
    expect((err as TokenEndpointError).status).toBe(401);
    expect(resource.requests).toHaveLength(0);
    expect(String(err)).not.toContain('wrong-secret-value');
  });

  it('a token failure on the retry after a 401 is a typed error too, without the rejected token in it', async () => {
    const server = await provider();
    const resource = await api(server);
    const tokens = managerFor(server, { retries: 0 });
    const http = client(resource.url);
    attachTokens(http, tokens);
    await tokens.getToken();
    const [old] = tokenIn(server);
    server.issuer.revokeAll();
    server.override = () => ({ status: 400, body: { error: 'invalid_scope' } });
    const err = await rejection(http.get('/x'));
    expect(err).toBeInstanceOf(TokenEndpointError);
    expect((err as TokenEndpointError).error).toBe('invalid_scope');
    expect(resource.requests).toHaveLength(1);
    const printed = `${String(err)} ${JSON.stringify(err)} ${inspect(err, { depth: 6 })} ${inspect((err as { config: unknown }).config, { depth: 6 })}`;
    expect(printed).not.toContain(old!);
  });

  it("the request's AbortSignal stops the wait for a token: axios' CanceledError, nothing is sent", async () => {
    let release!: () => void;
    const slow = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tokens = new TokenManager({
      grant: customGrant(async () => {
        await slow;
        return { access_token: 'late-token', expires_in: 3600 };
      }),
    });
    cleanup.push(() => tokens.close());
    const resource = await recorder();
    const http = client(resource.url);
    attachTokens(http, tokens);
    const controller = new AbortController();
    const pending = rejection(http.get('/wait', { signal: controller.signal }));
    controller.abort();
    const err = await pending;
    // As for any aborted axios request (keyfob waits for the token inside the adapter).
    expect(axios.isCancel(err)).toBe(true);
    expect((err as { config: { url: string } }).config.url).toBe('/wait');
    release();
    // The shared token request finishes for the others.
    expect((await http.get('/after')).status).toBe(200);
    expect(resource.requests.map((r) => r.path)).toEqual(['/after']);
  });

  it('no token text in the error when the API is down', async () => {
    const server = await provider();
    const http = client(await closedPort());
    attachTokens(http, managerFor(server));
    const err = (await rejection(http.get('/hello'))) as AxiosError;
    expect(err).toBeInstanceOf(AxiosError);
    expect(err.code).toBe('ECONNREFUSED');
    const [token] = tokenIn(server);
    expect(token).toMatch(/^at_/);
    for (const printed of [
      String(err),
      err.message,
      JSON.stringify(err),
      inspect(err),
      inspect(err, { depth: 8 }),
      JSON.stringify(err.config),
    ]) {
      expect(printed).not.toContain(token!);
    }
    expect(err.request).toBeDefined();
  });

  it('no token text in the 401 error that reaches the caller', async () => {
    const server = await provider();
    const resource = await api(server, (req) => (req.path === '/deny' ? { status: 401 } : { status: 404 }));
    const http = client(resource.url);
    attachTokens(http, managerFor(server));
    const err = (await rejection(http.get('/deny'))) as AxiosError;
    const tokens = tokenIn(server);
    expect(tokens).toHaveLength(2);
    const printed = `${JSON.stringify(err)} ${inspect(err, { depth: 8 })} ${inspect(err.response, { depth: 8 })}`;
    for (const t of tokens) expect(printed).not.toContain(t);
  });
});

describe('attachTokens: configuration', () => {
  it('no baseURL and no origins is a ConfigurationError at attach time', async () => {
    const server = await provider();
    const tokens = managerFor(server);
    expect(() => attachTokens(client(), tokens)).toThrow(ConfigurationError);
    expect(() => attachTokens(client(), tokens, { origins: [] })).toThrow(ConfigurationError);
    expect(() => attachTokens(client('/relative/base'), tokens)).toThrow(ConfigurationError);
    expect(() => attachTokens(client(), tokens, { origins: ['not a url'] })).toThrow(ConfigurationError);
    expect(() =>
      attachTokens(client('http://127.0.0.1:1'), tokens, { subject: 42 as unknown as string }),
    ).toThrow(ConfigurationError);
    expect(() => attachTokens(client('http://127.0.0.1:1'), {} as TokenManager)).toThrow(ConfigurationError);
  });

  it('refuses the global axios default export unless allowGlobal', async () => {
    const server = await provider();
    const tokens = managerFor(server);
    expect(() => attachTokens(axios, tokens, { origins: ['http://127.0.0.1:1'] })).toThrow(/global axios/);
    const before = (axios.interceptors.request as unknown as { handlers: unknown[] }).handlers.filter(
      Boolean,
    ).length;
    const detach = attachTokens(axios, tokens, { origins: ['http://127.0.0.1:1'], allowGlobal: true });
    expect(
      (axios.interceptors.request as unknown as { handlers: unknown[] }).handlers.filter(Boolean),
    ).toHaveLength(before + 1);
    detach();
    expect(
      (axios.interceptors.request as unknown as { handlers: unknown[] }).handlers.filter(Boolean),
    ).toHaveLength(before);
  });

  it('attaching twice to one instance still retries at most once', async () => {
    const server = await provider();
    const resource = await api(server, (req) => (req.path === '/deny' ? { status: 401 } : { status: 404 }));
    const tokens = managerFor(server);
    const http = client(resource.url);
    attachTokens(http, tokens);
    attachTokens(http, tokens);
    await rejection(http.get('/deny'));
    expect(resource.requests).toHaveLength(2);
    expect((await http.get('/ok')).status).toBe(200);
  });
});

import { attachTokens } from '@keyfob/axios';
import { clientCredentials, KeyfobError, TokenManager } from '@keyfob/core';
import {
  genericClientCredentials,
  type Handler,
  leakScan,
  type Reply,
  recordingManager as recording,
  rejection,
  startServer,
  type TestServer,
} from '@keyfob/testing';
import axios, { AxiosError, type AxiosInstance } from 'axios';
import { afterEach, describe, expect, it } from 'vitest';

const cleanup: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

const recordingManager = () => recording(cleanup);

async function server(handler: Handler): Promise<TestServer> {
  const s = await startServer(handler);
  cleanup.push(() => s.close());
  return s;
}

function setup(baseURL: string, options?: Parameters<typeof attachTokens>[2]) {
  const { tokens, issued } = recordingManager();
  const http: AxiosInstance = axios.create({ baseURL });
  attachTokens(http, tokens, options);
  return { http, issued };
}

function expectNoLeak(error: unknown, secrets: string[]) {
  expect(secrets.length).toBeGreaterThan(0);
  expect(leakScan(error, secrets)).toEqual([]);
}

const routes: Handler = (req): Reply => {
  switch (req.path) {
    case '/500':
      return { status: 500, body: { error: 'boom' } };
    case '/401':
      return { status: 401, headers: { 'www-authenticate': 'Bearer error="invalid_token"' } };
    case '/not-json':
      return { status: 200, headers: { 'content-type': 'application/json' }, body: '{"broken": ' };
    case '/slow':
      return { delayMs: 2_000, body: { ok: true } };
    case '/reset':
      return { reset: true };
    case '/loop':
      return { status: 302, headers: { location: '/loop' } };
    default:
      return { body: { ok: true } };
  }
};

describe('no token in any error @keyfob/axios can produce', () => {
  it('HTTP error with a stream response body (responseType: stream)', async () => {
    const api = await server(routes);
    const { http, issued } = setup(api.url);
    const err = (await rejection(http.get('/500', { responseType: 'stream' }))) as AxiosError;
    expect(err).toBeInstanceOf(AxiosError);
    expect(err.response?.status).toBe(500);
    expect(api.requests[0]!.headers.authorization).toBe(`Bearer ${issued[0]}`);
    expectNoLeak(err, issued);
  });

  it('HTTP error with a JSON body', async () => {
    const api = await server(routes);
    const { http, issued } = setup(api.url);
    const err = (await rejection(http.get('/500'))) as AxiosError;
    expect(err.response?.status).toBe(500);
    expectNoLeak(err, issued);
  });

  it("a JSON parse failure with silentJSONParsing: false (built by axios after keyfob's adapter returned)", async () => {
    const api = await server(routes);
    const { http, issued } = setup(api.url);
    const err = (await rejection(
      http.get('/not-json', { responseType: 'json', transitional: { silentJSONParsing: false } }),
    )) as AxiosError;
    expect(err).toBeInstanceOf(AxiosError);
    expect(err.code).toBe(AxiosError.ERR_BAD_RESPONSE);
    expect(api.requests[0]!.headers.authorization).toBe(`Bearer ${issued[0]}`);
    expectNoLeak(err, issued);
  });

  it("HTTP error and 401 twice through axios' fetch adapter", async () => {
    const api = await server(routes);
    const { http, issued } = setup(api.url);
    const err = (await rejection(http.get('/500', { adapter: 'fetch' }))) as AxiosError;
    expect(err.response?.status).toBe(500);
    expect(api.requests[0]!.headers.authorization).toBe(`Bearer ${issued[0]}`);
    expectNoLeak(err, issued);
    const denied = (await rejection(http.get('/401', { adapter: 'fetch' }))) as AxiosError;
    expect(denied.response?.status).toBe(401);
    expectNoLeak(denied, issued);
  });

  it('a 401 on both attempts', async () => {
    const api = await server(routes);
    const { http, issued } = setup(api.url);
    const err = (await rejection(http.get('/401'))) as AxiosError;
    expect(err.response?.status).toBe(401);
    expect(issued).toHaveLength(2);
    expectNoLeak(err, issued);
  });

  it('a 401 with a stream body (not replayed)', async () => {
    const api = await server(routes);
    const { http, issued } = setup(api.url);
    const { Readable } = await import('node:stream');
    const err = (await rejection(http.post('/401', Readable.from(['a', 'b'])))) as AxiosError;
    expect(err.response?.status).toBe(401);
    expectNoLeak(err, issued);
  });

  it('a timeout', async () => {
    const api = await server(routes);
    const { http, issued } = setup(api.url);
    const err = (await rejection(http.get('/slow', { timeout: 100 }))) as AxiosError;
    expect(err.code).toBe(AxiosError.ECONNABORTED);
    expectNoLeak(err, issued);
  });

  it('an abort while the request is in flight', async () => {
    const api = await server(routes);
    const { http, issued } = setup(api.url);
    const controller = new AbortController();
    const pending = http.get('/slow', { signal: controller.signal });
    while (api.requests.length === 0) await new Promise((r) => setTimeout(r, 5));
    controller.abort();
    const err = (await rejection(pending)) as AxiosError;
    expect(axios.isCancel(err)).toBe(true);
    expectNoLeak(err, issued);
  });

  it('a connection reset (network error)', async () => {
    const api = await server(routes);
    const { http, issued } = setup(api.url);
    const err = (await rejection(http.get('/reset'))) as AxiosError;
    expect(err).toBeInstanceOf(AxiosError);
    expect(err.response).toBeUndefined();
    expectNoLeak(err, issued);
  });

  it('a connection refused (API down)', async () => {
    const down = await startServer(() => ({}));
    await down.close();
    const { http, issued } = setup(down.url);
    const err = (await rejection(http.get('/x'))) as AxiosError;
    expect(err.code).toBe('ECONNREFUSED');
    expectNoLeak(err, issued);
  });

  it('too many redirects', async () => {
    const api = await server(routes);
    const { http, issued } = setup(api.url);
    const err = (await rejection(http.get('/loop', { maxRedirects: 3 }))) as AxiosError;
    expect(err).toBeInstanceOf(AxiosError);
    expect(api.requests.length).toBe(4);
    expectNoLeak(err, issued);
  });

  it('a response (and its config) the caller logs carries no token', async () => {
    const api = await server(routes);
    const { http, issued } = setup(api.url);
    const res = await http.get('/ok');
    expect(api.requests[0]!.headers.authorization).toBe(`Bearer ${issued[0]}`);
    expectNoLeak({ config: res.config, request: res.request, headers: res.headers }, issued);
  });

  it('token endpoint failure: neither the client secret nor a token in the error', async () => {
    const provider = await genericClientCredentials({ clientId: 'svc', clientSecret: 'right-secret-value' });
    cleanup.push(() => provider.close());
    const tokens = new TokenManager({
      tokenUrl: provider.tokenUrl,
      grant: clientCredentials({ clientId: 'svc', clientSecret: 'wrong-secret-value' }),
    });
    cleanup.push(() => tokens.close());
    const api = await server(routes);
    const http = axios.create({ baseURL: api.url });
    attachTokens(http, tokens);
    const err = await rejection(http.get('/ok'));
    expect(err).toBeInstanceOf(KeyfobError);
    expect(api.requests).toHaveLength(0);
    expectNoLeak(err, ['wrong-secret-value', 'right-secret-value']);
  });
});

describe('copied configs', () => {
  it('a config copied from a response never carries a token to another origin, however many tokens were issued', async () => {
    const api = await server(routes);
    const elsewhere = await server(() => ({ body: { ok: true } }));
    const { http, issued } = setup(api.url);
    const first = await http.get('/first', { keyfob: { scope: 'scope-0' } });
    // 70 other tokens (one per scope) since `first`: more than any bounded memory of issued values.
    for (let i = 1; i <= 70; i++) await http.get('/n', { keyfob: { scope: `scope-${i}` } });
    expect(issued).toHaveLength(71);
    await http.request({ ...first.config, baseURL: elsewhere.url, url: '/copied' });
    await http.get(`${elsewhere.url}/same-headers`, { headers: first.config.headers });
    expect(elsewhere.requests.map((r) => r.headers.authorization)).toEqual([undefined, undefined]);
    // The copy sent back to the allowed origin gets the current token of its scope, not a stale one.
    await http.request({ ...first.config, url: '/again' });
    expect(api.requests.at(-1)!.headers.authorization).toBe(`Bearer ${issued[0]}`);
  });
});

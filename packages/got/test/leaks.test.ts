import { Readable } from 'node:stream';
import { clientCredentials, KeyfobError, TokenManager } from '@keyfob/core';
import {
  genericClientCredentials,
  type Handler,
  leakScan,
  type Reply,
  recordingManager as recording,
  rejection,
  startProtectedApi,
  startServer,
  type TestServer,
} from '@keyfob/testing';
import * as gotModule from 'got';
import got, { HTTPError, MaxRedirectsError, ParseError, RequestError, TimeoutError } from 'got';
import { afterEach, describe, expect, it } from 'vitest';
import { tokenHooks, withTokens } from '../src/index.js';

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

const routes: Handler = (req): Reply => {
  switch (req.path) {
    case '/500':
      return { status: 500, body: { error: 'boom' } };
    case '/401':
      return { status: 401 };
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

async function setup() {
  const api = await server(routes);
  const { tokens, issued } = recordingManager();
  const client = withTokens(got.extend({ prefixUrl: api.url, retry: { limit: 0 } }), tokens);
  return { api, client, issued };
}

function expectNoLeak(error: unknown, secrets: string[]) {
  expect(secrets.length).toBeGreaterThan(0);
  expect(leakScan(error, secrets)).toEqual([]);
}

describe('no token in any error @keyfob/got can produce', () => {
  it("HTTPError (got's own, and after the 401 retry)", async () => {
    const { api, client, issued } = await setup();
    const err = await rejection(client.get('500'));
    expect(err).toBeInstanceOf(HTTPError);
    expect(api.requests[0]!.headers.authorization).toBe(`Bearer ${issued[0]}`);
    expectNoLeak(err, issued);
    const denied = await rejection(client.get('401'));
    expect((denied as HTTPError).response.statusCode).toBe(401);
    expect(issued).toHaveLength(2);
    expectNoLeak(denied, issued);
  });

  it('ParseError from .json() (built outside beforeError)', async () => {
    const { api, client, issued } = await setup();
    const err = await rejection(client.get('not-json').json());
    expect(err).toBeInstanceOf(ParseError);
    expect(api.requests[0]!.headers.authorization).toBe(`Bearer ${issued[0]}`);
    expectNoLeak(err, issued);
  });

  it('ParseError with responseType: json', async () => {
    const { client, issued } = await setup();
    const err = await rejection(client.get('not-json', { responseType: 'json' }));
    expect(err).toBeInstanceOf(ParseError);
    expectNoLeak(err, issued);
  });

  // got 16 removed promise.cancel() and CancelError (an AbortSignal is the way to cancel, tested below).
  const CancelError = (gotModule as Record<string, unknown>).CancelError as (new () => Error) | undefined;
  it.runIf(CancelError !== undefined)(
    'CancelError from promise.cancel() (built outside beforeError)',
    async () => {
      const { api, client, issued } = await setup();
      const pending = client.get('slow');
      while (api.requests.length === 0) await new Promise((r) => setTimeout(r, 5));
      (pending as unknown as { cancel(): void }).cancel();
      const err = await rejection(pending);
      expect(err).toBeInstanceOf(CancelError!);
      expectNoLeak(err, issued);
    },
  );

  it('TimeoutError', async () => {
    const { client, issued } = await setup();
    const err = await rejection(client.get('slow', { timeout: { request: 100 } }));
    expect(err).toBeInstanceOf(TimeoutError);
    expectNoLeak(err, issued);
  });

  it('AbortSignal while in flight', async () => {
    const { api, client, issued } = await setup();
    const controller = new AbortController();
    const pending = client.get('slow', { signal: controller.signal });
    while (api.requests.length === 0) await new Promise((r) => setTimeout(r, 5));
    controller.abort();
    const err = await rejection(pending);
    expect(err).toBeInstanceOf(RequestError);
    expectNoLeak(err, issued);
  });

  it('network errors: connection reset and connection refused', async () => {
    const { client, issued } = await setup();
    const reset = await rejection(client.get('reset'));
    expect(reset).toBeInstanceOf(RequestError);
    expectNoLeak(reset, issued);
    const down = await startServer(() => ({}));
    await down.close();
    const { tokens, issued: more } = recordingManager();
    const refused = await rejection(withTokens(got.extend({ prefixUrl: down.url }), tokens).get('x'));
    // Node 24 may report a refused connection as the socket closing before it connected.
    expect(['ECONNREFUSED', 'ERR_SOCKET_CLOSED_BEFORE_CONNECTION']).toContain((refused as RequestError).code);
    expectNoLeak(refused, more);
  });

  it('MaxRedirectsError', async () => {
    const { client, issued } = await setup();
    const err = await rejection(client.get('loop', { maxRedirects: 2 }));
    expect(err).toBeInstanceOf(MaxRedirectsError);
    expectNoLeak(err, issued);
  });

  it('a 401 with a stream body (not replayed)', async () => {
    const { client, issued } = await setup();
    const err = await rejection(client.post('401', { body: Readable.from(['a', 'b']) }));
    expect((err as HTTPError).response.statusCode).toBe(401);
    expectNoLeak(err, issued);
  });

  it('a successful response the caller logs', async () => {
    const { client, issued } = await setup();
    const res = await client.get('ok');
    expect(res.statusCode).toBe(200);
    expectNoLeak({ options: res.request.options, headers: res.headers, body: res.body }, issued);
  });

  it('token endpoint failure: neither the client secret nor a token', async () => {
    const provider = await genericClientCredentials({ clientId: 'svc', clientSecret: 'right-secret-value' });
    cleanup.push(() => provider.close());
    const tokens = new TokenManager({
      tokenUrl: provider.tokenUrl,
      grant: clientCredentials({ clientId: 'svc', clientSecret: 'wrong-secret-value' }),
    });
    cleanup.push(() => tokens.close());
    const api = await server(routes);
    const err = await rejection(withTokens(got.extend({ prefixUrl: api.url }), tokens).get('ok'));
    expect(err).toBeInstanceOf(KeyfobError);
    expect(api.requests).toHaveLength(0);
    expectNoLeak(err, ['wrong-secret-value', 'right-secret-value']);
  });
});

describe('configured as the README says', () => {
  it('only prefixUrl and tokenHooks(manager) in one got.extend: the 401 retry recovers', async () => {
    const auth = await genericClientCredentials({ clientId: 'svc', clientSecret: 'svc-secret-value' });
    cleanup.push(() => auth.close());
    const api = await startProtectedApi(auth.issuer);
    cleanup.push(() => api.close());
    const manager = new TokenManager({
      tokenUrl: auth.tokenUrl,
      grant: clientCredentials({ clientId: 'svc', clientSecret: 'svc-secret-value' }),
    });
    cleanup.push(() => manager.close());
    const client = got.extend({ prefixUrl: api.url, hooks: tokenHooks(manager) });
    expect((await client.get('hello')).statusCode).toBe(200);
    auth.issuer.revokeAll();
    const res = await client.get('hello');
    expect(res.statusCode).toBe(200);
    expect(api.requests).toHaveLength(3);
    expect(auth.tokenRequests()).toHaveLength(2);
  });

  it('origins add to the prefixUrl origin (tokenHooks and withTokens)', async () => {
    const { tokens, issued } = recordingManager();
    const api = await server(routes);
    const files = await server(routes);
    const other = await server(routes);
    for (const client of [
      got.extend({ prefixUrl: api.url, hooks: tokenHooks(tokens, { origins: [files.url] }) }),
      withTokens(got.extend({ prefixUrl: api.url }), tokens, { origins: [files.url] }),
    ]) {
      await client.get('ok');
      await client.get(`${files.url}/ok`);
      await client.get(`${other.url}/ok`);
    }
    expect(issued).toHaveLength(1);
    const bearer = `Bearer ${issued[0]}`;
    expect(api.requests.map((r) => r.headers.authorization)).toEqual([bearer, bearer]);
    expect(files.requests.map((r) => r.headers.authorization)).toEqual([bearer, bearer]);
    expect(other.requests.map((r) => r.headers.authorization)).toEqual([undefined, undefined]);
  });

  it('a redirect to the same host on another port carries no token (keyfob decides, got does not have the header)', async () => {
    const { tokens, issued } = recordingManager();
    const other = await server(routes);
    const api = await server((req) =>
      req.path === '/away' ? { status: 307, headers: { location: `${other.url}/landing` } } : routes(req),
    );
    const client = withTokens(got.extend({ prefixUrl: api.url }), tokens);
    await client.get('away');
    expect(api.requests[0]!.headers.authorization).toBe(`Bearer ${issued[0]}`);
    expect(other.requests[0]!.path).toBe('/landing');
    expect(other.requests[0]!.headers.authorization).toBeUndefined();
  });
});

import { Agent, createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { inspect } from 'node:util';
import { staticToken, TokenManager } from '@keyfob/core';
import {
  type Handler,
  leakScan,
  type Reply,
  recordingManager as recording,
  rejection,
  startServer,
  type TestServer,
} from '@keyfob/testing';
import * as gotModule from 'got';
import got, { HTTPError, MaxRedirectsError, ParseError, RequestError, TimeoutError, UploadError } from 'got';
import { afterEach, describe, expect, it } from 'vitest';
import { withTokens } from '../src/index.js';

/**
 * The token travels on Node's `ClientRequest`, which got's responses (`response.req`) and errors
 * (`error.request._request`, `error.response.req`) reach: its rendered head (`_header`) and header map
 * (symbol `kOutHeaders`) must not hold it once they are sent, on any path, nor got's copy of the native
 * options (`request._requestOptions`).
 */

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

/** A `node:http` server on 127.0.0.1 that answers with raw `res` calls (partial bodies, resets). */
async function rawServer(handler: (req: IncomingMessage, res: ServerResponse) => void) {
  const authorizations: (string | undefined)[] = [];
  const s = createServer((req, res) => {
    authorizations.push(req.headers.authorization);
    handler(req, res);
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  cleanup.push(
    () =>
      new Promise<void>((r) => {
        s.closeAllConnections();
        s.close(() => r());
      }),
  );
  return { url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`, authorizations };
}

const routes: Handler = (req): Reply => {
  switch (req.path) {
    case '/500':
      return { status: 500, body: { error: 'boom' } };
    case '/404':
      return { status: 404, body: { error: 'missing' } };
    case '/not-json':
      return { status: 200, headers: { 'content-type': 'application/json' }, body: '{"broken": ' };
    case '/slow':
      return { delayMs: 2_000, body: { ok: true } };
    case '/loop':
      return { status: 302, headers: { location: '/loop' } };
    default:
      return { body: { ok: true } };
  }
};

/** JSON.stringify that prints a circular structure once instead of throwing. */
function stringifyCircular(value: unknown): string {
  const seen = new WeakSet<object>();
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === 'bigint') return String(v);
    if (v !== null && typeof v === 'object') {
      if (seen.has(v)) return '[Circular]';
      seen.add(v);
    }
    return v;
  });
}

/** Where the tokens (bare, and as `Bearer <token>`) can be read from `value`. */
function leaks(value: unknown, tokens: readonly string[]): string[] {
  expect(tokens.length).toBeGreaterThan(0);
  const secrets = [...tokens, ...tokens.map((t) => `Bearer ${t}`)];
  const found = leakScan(value, secrets);
  const check = (where: string, text: string) => {
    if (secrets.some((s) => text.includes(s))) found.push(where);
  };
  check('inspect(depth 10)', inspect(value, { depth: 10 }));
  check('inspect(showHidden)', inspect(value, { showHidden: true }));
  check('inspect(showHidden, depth 10)', inspect(value, { showHidden: true, depth: 10 }));
  check('JSON.stringify(circular-safe)', stringifyCircular(value));
  return found;
}

type NativeRequest = { _header?: string | null; getHeader(name: string): unknown };

/** `response.req`: Node's IncomingMessage has it, @types/node does not declare it. */
const reqOf = (response: unknown) => (response as { req?: NativeRequest } | undefined)?.req;

/** The native requests got's objects reach, read directly. */
function nativeHeads(...requests: (NativeRequest | undefined | null)[]): string[] {
  return requests.flatMap((r) =>
    r ? [String(r._header), String(r.getHeader('authorization')), inspect(r, { showHidden: true })] : [],
  );
}

function expectClean(value: unknown, tokens: readonly string[]) {
  expect(leaks(value, tokens)).toEqual([]);
}

function expectNoTokenIn(texts: string[], tokens: readonly string[]) {
  for (const text of texts) for (const t of tokens) expect(text).not.toContain(t);
}

async function setup(extra: Parameters<typeof got.extend>[0] = {}) {
  const api = await server(routes);
  const { tokens, issued } = recordingManager();
  const client = withTokens(got.extend({ prefixUrl: api.url, retry: { limit: 0 }, ...extra }), tokens);
  return { api, client, issued };
}

describe("no token on Node's ClientRequest once got or the caller can reach it", () => {
  it('HTTPError on a 500 and on a 404: response, error, native request', async () => {
    const { api, client, issued } = await setup();
    for (const path of ['500', '404']) {
      const err = (await rejection(client.get(path))) as HTTPError;
      expect(err).toBeInstanceOf(HTTPError);
      const native = err.request as unknown as { _request?: NativeRequest };
      expectClean(err, issued);
      expectClean(err.response, issued);
      expectClean(err.request, issued);
      expectNoTokenIn(
        [
          inspect(err.response),
          inspect(err.request),
          inspect(err, { showHidden: true, depth: 10 }),
          ...nativeHeads(reqOf(err.response), native._request),
        ],
        issued,
      );
      // The scrubbed head still reads as sent, and names the header.
      const sent = reqOf(err.response)!;
      expect(sent._header).toMatch(/^GET \/\d+ HTTP\/1\.1\r\n/);
      expect((sent as unknown as { headersSent: boolean }).headersSent).toBe(true);
      expect(sent._header).toContain('authorization: [REDACTED]');
      expect(sent.getHeader('authorization')).toBe('[REDACTED]');
    }
    expect(api.requests.map((r) => r.headers.authorization)).toEqual([
      `Bearer ${issued[0]}`,
      `Bearer ${issued[0]}`,
    ]);
  });

  it('a successful response', async () => {
    const { api, client, issued } = await setup();
    const res = await client.get('ok');
    expect(res.statusCode).toBe(200);
    expect(api.requests[0]!.headers.authorization).toBe(`Bearer ${issued[0]}`);
    expectClean(res, issued);
    expectNoTokenIn([inspect(res), inspect(res.request), ...nativeHeads(reqOf(res))], issued);
  });

  it('ParseError from .json()', async () => {
    const { client, issued } = await setup();
    const err = (await rejection(client.get('not-json').json())) as ParseError;
    expect(err).toBeInstanceOf(ParseError);
    expectClean(err, issued);
    expectClean(err.response, issued);
  });

  const CancelError = (gotModule as Record<string, unknown>).CancelError as (new () => Error) | undefined;
  it.runIf(CancelError !== undefined)('CancelError from promise.cancel() mid-response', async () => {
    let started!: () => void;
    const headSent = new Promise<void>((r) => {
      started = r;
    });
    const raw = await rawServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first part of the body, ');
      started();
      // The rest never comes: the client cancels.
    });
    const { tokens, issued } = recordingManager();
    const client = withTokens(got.extend({ prefixUrl: raw.url, retry: { limit: 0 } }), tokens);
    const pending = client.get('partial');
    let received = 0;
    pending.on('downloadProgress', (p) => {
      received = p.transferred;
    });
    await headSent;
    while (received === 0) await new Promise((r) => setTimeout(r, 2));
    (pending as unknown as { cancel(): void }).cancel();
    const err = (await rejection(pending)) as Error & { request?: { _request?: NativeRequest } };
    expect(err).toBeInstanceOf(CancelError!);
    expect(raw.authorizations).toEqual([`Bearer ${issued[0]}`]);
    expectClean(err, issued);
    expectClean(err.request, issued);
    expectNoTokenIn(nativeHeads(err.request?._request), issued);
  });

  it.runIf(CancelError !== undefined)(
    'CancelError and an AbortSignal after the head was sent, before any response',
    async () => {
      const { api, client, issued } = await setup();
      const cancelled = client.get('slow');
      const controller = new AbortController();
      const aborted = client.get('slow', { signal: controller.signal });
      while (api.requests.length < 2) await new Promise((r) => setTimeout(r, 5));
      (cancelled as unknown as { cancel(): void }).cancel();
      controller.abort();
      for (const err of [await rejection(cancelled), await rejection(aborted)]) {
        expect(err).toBeInstanceOf(Error);
        expectClean(err, issued);
        expectClean((err as { request?: unknown }).request, issued);
      }
      expect(api.requests.map((r) => r.headers.authorization)).toEqual(Array(2).fill(`Bearer ${issued[0]}`));
    },
  );

  it('TimeoutError (the request was sent, no answer yet)', async () => {
    const { api, client, issued } = await setup();
    const err = (await rejection(client.get('slow', { timeout: { request: 100 } }))) as TimeoutError;
    expect(err).toBeInstanceOf(TimeoutError);
    expect(api.requests[0]!.headers.authorization).toBe(`Bearer ${issued[0]}`);
    expectClean(err, issued);
    expectClean(err.request, issued);
  });

  it('RequestError: connection reset in the middle of the response', async () => {
    const raw = await rawServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1000' });
      res.write('only a part');
      setTimeout(() => res.socket?.destroy(), 20);
    });
    const { tokens, issued } = recordingManager();
    const client = withTokens(got.extend({ prefixUrl: raw.url, retry: { limit: 0 } }), tokens);
    const err = (await rejection(client.get('reset'))) as RequestError;
    expect(err).toBeInstanceOf(RequestError);
    // got 14 reports the reset; got 16 the body cut short of its content-length.
    expect(['ECONNRESET', 'ERR_HTTP_CONTENT_LENGTH_MISMATCH']).toContain(err.code);
    expect(raw.authorizations).toEqual([`Bearer ${issued[0]}`]);
    expectClean(err, issued);
    expectClean(err.response, issued);
    expectNoTokenIn(nativeHeads(reqOf(err.response)), issued);
  });

  it('RequestError: connection refused (the head was never sent)', async () => {
    const down = await startServer(() => ({}));
    await down.close();
    const { tokens, issued } = recordingManager();
    const client = withTokens(got.extend({ prefixUrl: down.url, retry: { limit: 0 } }), tokens);
    const err = (await rejection(client.get('x'))) as RequestError;
    expect(['ECONNREFUSED', 'ERR_SOCKET_CLOSED_BEFORE_CONNECTION']).toContain(err.code);
    expectClean(err, issued);
    expectClean(err.request, issued);
  });

  it('UploadError: the body stream fails before the head was written', async () => {
    const { client, issued } = await setup();
    const body = new Readable({
      read() {
        this.destroy(new Error('disk gone'));
      },
    });
    const err = (await rejection(client.post('upload', { body }))) as UploadError;
    expect(err).toBeInstanceOf(UploadError);
    expect(issued).toHaveLength(1);
    expectClean(err, issued);
    expectClean(err.request, issued);
  });

  it('MaxRedirectsError on a same-origin redirect loop: the token went on every hop', async () => {
    const { api, client, issued } = await setup();
    const err = (await rejection(client.get('loop', { maxRedirects: 3 }))) as MaxRedirectsError;
    expect(err).toBeInstanceOf(MaxRedirectsError);
    expect(api.requests.map((r) => r.headers.authorization)).toEqual(Array(4).fill(`Bearer ${issued[0]}`));
    expectClean(err, issued);
    expectClean(err.response, issued);
    expectClean(err.request, issued);
  });

  it("got's retry and keyfob's 401 retry: each attempt gets a new native request with the token, none keeps it", async () => {
    let flaky = 0;
    const api = await server((req) => {
      if (req.path === '/flaky' && ++flaky === 1) return { status: 503, body: { error: 'busy' } };
      if (req.path === '/denied-once' && req.headers.authorization === `Bearer ${issuedRef[0]}`) {
        return { status: 401 };
      }
      return { body: { ok: true } };
    });
    const { tokens, issued } = recordingManager();
    const issuedRef = issued;
    const client = withTokens(
      got.extend({ prefixUrl: api.url, retry: { limit: 1, backoffLimit: 10, noise: 0 } }),
      tokens,
    );
    const res = await client.get('flaky');
    expect(res.statusCode).toBe(200);
    expect(res.retryCount).toBe(1);
    const denied = await client.get('denied-once');
    expect(denied.statusCode).toBe(200);
    expect(issued).toHaveLength(2);
    expect(api.requests.map((r) => [r.path, r.headers.authorization])).toEqual([
      ['/flaky', `Bearer ${issued[0]}`],
      ['/flaky', `Bearer ${issued[0]}`],
      ['/denied-once', `Bearer ${issued[0]}`],
      ['/denied-once', `Bearer ${issued[1]}`],
    ]);
    expectClean(res, issued);
    expectClean(denied, issued);
  });

  it("requests that waited for a socket of a saturated agent (Node's agent keeps their options)", async () => {
    const api = await server(() => ({ delayMs: 20, body: { ok: true } }));
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    cleanup.push(() => agent.destroy());
    const { tokens, issued } = recordingManager();
    const client = withTokens(
      got.extend({ prefixUrl: api.url, retry: { limit: 0 }, agent: { http: agent } }),
      tokens,
    );
    const responses = await Promise.all([client.get('a'), client.get('b'), client.get('c')]);
    expect(api.requests.map((r) => r.headers.authorization)).toEqual(Array(3).fill(`Bearer ${issued[0]}`));
    // Deep printouts of these responses run to hundreds of megabytes (three requests shared one socket):
    // the request itself, and the options Node's agent kept with it while it waited.
    let queued = 0;
    for (const res of responses) {
      const native = reqOf(res)!;
      expectNoTokenIn(
        [inspect(res), inspect(native, { showHidden: true, depth: 4 }), ...nativeHeads(native)],
        issued,
      );
      const kept = Object.getOwnPropertySymbols(native).find((s) => s.description === 'requestOptions');
      const options = kept && (native as unknown as Record<symbol, { headers?: object } | undefined>)[kept];
      if (options === undefined) continue;
      queued++;
      // keyfob's headers went on the request itself, never into the options Node's agent keeps.
      expect(JSON.stringify(options.headers)).not.toMatch(/authorization|REDACTED/i);
    }
    expect(queued).toBeGreaterThan(0);
  });

  it('a POST body still goes out whole (the scrub touches only the head, after it was sent)', async () => {
    const { api, client, issued } = await setup();
    const res = await client.post('echo', { json: { note: 'payload' } });
    expect(res.statusCode).toBe(200);
    expect(api.requests[0]!.body).toBe('{"note":"payload"}');
    expectClean(res, issued);
  });
});

describe('how keyfob puts its headers on the native request', () => {
  /** got's own native options for the request behind `response`: never hold a keyfob header. */
  const nativeOptionsOf = (response: unknown) =>
    (response as { request: { _requestOptions?: { headers?: object } } }).request._requestOptions;

  it("on the ClientRequest got's request function made (not on got's native options)", async () => {
    const { api, client, issued } = await setup();
    const res = await client.get('ok');
    expect(api.requests[0]!.headers.authorization).toBe(`Bearer ${issued[0]}`);
    expect(JSON.stringify(nativeOptionsOf(res)!.headers)).not.toMatch(/authorization/i);
    expectClean(res, issued);
  });

  it('a request with Expect: 100-continue (Node writes its head at once): the headers go in with the others', async () => {
    const { api, client, issued } = await setup();
    const res = await client.post('echo', { body: 'payload', headers: { expect: '100-continue' } });
    expect(res.statusCode).toBe(200);
    expect(api.requests[0]!.headers.authorization).toBe(`Bearer ${issued[0]}`);
    expect(api.requests[0]!.body).toBe('payload');
    expect(JSON.stringify(nativeOptionsOf(res)!.headers)).not.toMatch(/authorization/i);
    expectClean(res, issued);
  });

  it('an agent that renders the head as soon as it is given the request: made again, once, with the headers', async () => {
    const api = await server(routes);
    class EagerAgent extends Agent {
      created = 0;
      addRequest(req: unknown, options: unknown): void {
        this.created++;
        (req as { _implicitHeader(): void })._implicitHeader();
        (Agent.prototype as unknown as { addRequest(r: unknown, o: unknown): void }).addRequest.call(
          this,
          req,
          options,
        );
      }
    }
    const agent = new EagerAgent({ keepAlive: true });
    cleanup.push(() => agent.destroy());
    const { tokens, issued } = recordingManager();
    const client = withTokens(
      got.extend({ prefixUrl: api.url, retry: { limit: 0 }, agent: { http: agent } }),
      tokens,
    );
    const res = await client.get('ok');
    expect(res.statusCode).toBe(200);
    expect(agent.created).toBe(2);
    expect(api.requests.map((r) => r.headers.authorization)).toEqual([`Bearer ${issued[0]}`]);
    // (A deep printout of this response runs to hundreds of megabytes: the agent is in it.)
    const native = reqOf(res)!;
    expectNoTokenIn(
      [inspect(res), inspect(native, { showHidden: true, depth: 4 }), ...nativeHeads(native)],
      issued,
    );
    expect(JSON.stringify(nativeOptionsOf(res)!.headers)).not.toMatch(/authorization/i);
  });

  it('a token Node refuses as a header value: got reports the error, nothing is sent, no socket stays taken', async () => {
    const api = await server(routes);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    cleanup.push(() => agent.destroy());
    const tokens = new TokenManager({ grant: staticToken({ accessToken: 'tok\u20acen' }) });
    cleanup.push(() => tokens.close());
    const client = withTokens(
      got.extend({ prefixUrl: api.url, retry: { limit: 0 }, agent: { http: agent } }),
      tokens,
    );
    for (let i = 0; i < 3; i++) {
      const err = (await rejection(client.get('ok'))) as RequestError;
      expect(err.code).toBe('ERR_INVALID_CHAR');
      expect(`${err.message} ${inspect(err)}`).not.toContain('tok\u20acen');
    }
    expect(api.requests).toHaveLength(0);
    // The one socket the agent may open is not held by a request that never went out.
    const plain = got.extend({ prefixUrl: api.url, retry: { limit: 0 }, agent: { http: agent } });
    expect((await plain.get('ok', { timeout: { request: 2_000 } })).statusCode).toBe(200);
  });

  it("the caller's own request function (returning a request, or a promise of one) is called and gets the headers", async () => {
    const api = await server(routes);
    const { request } = await import('node:http');
    let calls = 0;
    const own = (url: URL, options: object, callback?: () => void) => {
      calls++;
      return request(url, options, callback);
    };
    const ownAsync = async (url: URL, options: object, callback?: () => void) => {
      calls++;
      await new Promise((r) => setTimeout(r, 1));
      return request(url, options, callback);
    };
    const { tokens, issued } = recordingManager();
    for (const fn of [own, ownAsync]) {
      const client = withTokens(
        got.extend({ prefixUrl: api.url, retry: { limit: 0 }, request: fn as never }),
        tokens,
      );
      const res = await client.get('ok');
      expect(res.statusCode).toBe(200);
      expectClean(res, issued);
    }
    expect(calls).toBe(2);
    expect(api.requests.map((r) => r.headers.authorization)).toEqual(Array(2).fill(`Bearer ${issued[0]}`));
  });
});

import {
  leakScan,
  type RecordedRequest,
  type Reply,
  recordingManager as recording,
  startDpopApi,
  startServer,
  type TestServer,
} from '@keyfob/testing';
import got, { HTTPError } from 'got';
import { afterEach, describe, expect, it } from 'vitest';
import { withTokens } from '../src/index.js';

const cleanup: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

const dpopManager = () => recording(cleanup, { dpop: true });

async function server(handler: (req: RecordedRequest) => Reply): Promise<TestServer> {
  const s = await startServer(handler);
  cleanup.push(() => s.close());
  return s;
}

/** The DPoP-only API of `@keyfob/testing`, rotating its nonce on every answered request. */
async function dpopApi(tokens: () => readonly string[]) {
  const started = await startDpopApi(tokens, { nonces: true });
  cleanup.push(() => started.api.close());
  return started;
}

async function setup() {
  const { tokens, issued } = dpopManager();
  const { api, outcomes, proofs } = await dpopApi(() => issued);
  const client = withTokens(got.extend({ prefixUrl: api.url, retry: { limit: 0 } }), tokens);
  return { api, client, issued, outcomes, proofs };
}

describe('withTokens with DPoP: resource server nonces on every response', () => {
  it('an API that rotates its nonce on every 200: 3 sequential GETs cost 4 API requests', async () => {
    const { api, client, issued, outcomes, proofs } = await setup();
    for (let i = 0; i < 3; i++) {
      const res = await client.get(`data/${i}`);
      expect(res.statusCode).toBe(200);
    }
    // The first challenge is answered once; after that each 200's nonce is in the next proof.
    expect(outcomes).toEqual([401, 200, 200, 200]);
    expect(api.requests).toHaveLength(4);
    expect(proofs[0]!.nonce).toBeUndefined();
    expect(new Set(proofs.map((p) => p.nonce)).size).toBe(4);
    expect(issued).toHaveLength(1);
  });

  it("the nonce on an error response (got's HTTPError, and with throwHttpErrors: false) is kept too", async () => {
    const { client, outcomes } = await setup();
    expect((await client.get('data/a')).statusCode).toBe(200);
    const err = await client.get('missing').catch((e: unknown) => e);
    expect((err as HTTPError).response.statusCode).toBe(404);
    expect((await client.get('data/b')).statusCode).toBe(200);
    expect((await client.get('missing', { throwHttpErrors: false })).statusCode).toBe(404);
    expect((await client.get('data/c')).statusCode).toBe(200);
    expect(outcomes).toEqual([401, 200, 404, 200, 404, 200]);
  });

  it('the nonce on a redirect response (which got follows by itself) goes into the next hop to that origin', async () => {
    const { client, outcomes } = await setup();
    expect((await client.get('data/a')).statusCode).toBe(200);
    const res = await client.get(`redir?to=${encodeURIComponent('/redir?to=/data/b')}`).json();
    expect(res).toMatchObject({ ok: true, path: '/data/b' });
    expect((await client.get('data/c')).statusCode).toBe(200);
    expect(outcomes).toEqual([401, 200, 302, 302, 200, 200]);
  });

  it("the nonce on the response to keyfob's own retry, and on a stream's response (no afterResponse hook sees either)", async () => {
    const { client, outcomes } = await setup();
    // The challenge and the retry: got runs the retry without keyfob's afterResponse hook.
    expect((await client.get('data/a')).statusCode).toBe(200);
    let body = '';
    for await (const chunk of client.stream('data/s')) body += String(chunk);
    expect(JSON.parse(body)).toMatchObject({ ok: true, path: '/data/s' });
    expect((await client.get('data/b')).statusCode).toBe(200);
    expect(outcomes).toEqual([401, 200, 200, 200]);
  });

  it('a nonce from a server the token did not reach (a foreign redirect target) is not taken for the API', async () => {
    const { client, outcomes } = await setup();
    const foreign = await server(() => ({
      headers: { 'dpop-nonce': 'foreign-nonce' },
      body: { foreign: true },
    }));
    expect((await client.get('data/a')).statusCode).toBe(200);
    const res = await client.get(`redir?to=${encodeURIComponent(`${foreign.url}/x`)}`).json();
    expect(res).toEqual({ foreign: true });
    expect(foreign.requests[0]!.headers.authorization).toBeUndefined();
    expect(foreign.requests[0]!.headers.dpop).toBeUndefined();
    expect((await client.get('data/b')).statusCode).toBe(200);
    expect(outcomes).toEqual([401, 200, 302, 200]);
  });

  it("neither the token nor a proof stays on got's response or Node's request", async () => {
    const { api, client, issued } = await setup();
    const res = await client.get(`redir?to=${encodeURIComponent('/data/x')}`);
    expect(res.statusCode).toBe(200);
    const secrets = [issued[0]!, ...api.requests.map((r) => r.headers.dpop as string)];
    expect(secrets).toHaveLength(4);
    expect(leakScan(res, secrets)).toEqual([]);
    const native = (res as unknown as { req: { _header: string; getHeader(n: string): unknown } }).req;
    for (const s of secrets) expect(native._header).not.toContain(s);
    expect(native.getHeader('dpop')).toBe('[REDACTED]');
  });
});

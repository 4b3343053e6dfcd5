import { attachTokens } from '@keyfob/axios';
import {
  leakScan,
  type RecordedRequest,
  type Reply,
  recordingManager as recording,
  startDpopApi,
  startServer,
  type TestServer,
} from '@keyfob/testing';
import axios, { type AxiosError } from 'axios';
import { afterEach, describe, expect, it } from 'vitest';

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

/** The DPoP-only API of `@keyfob/testing` (with `nonces`, it rotates its nonce on every answered request). */
async function dpopApi(tokens: () => readonly string[], options: { nonces?: boolean } = {}) {
  const started = await startDpopApi(tokens, options);
  cleanup.push(() => started.api.close());
  return started;
}

describe('attachTokens with DPoP: resource server nonces', () => {
  it('the proof names the URL axios sends to: a baseURL with a path and no url, a leading slash, trailing slashes', async () => {
    const { tokens, issued } = dpopManager();
    const { api, outcomes, proofs } = await dpopApi(() => issued);
    for (const [baseURL, url, path] of [
      [`${api.url}/data/base`, undefined, '/data/base'],
      [`${api.url}/data//`, '/x', '/data/x'],
      [`${api.url}/data`, 'y', '/data/y'],
    ] as const) {
      const http = axios.create({ baseURL });
      attachTokens(http, tokens);
      const res = await http.get(url ?? '');
      expect(res.data.path).toBe(path);
    }
    // Each proof passed the API's check (htu = the URL the request went to): no 401.
    expect(outcomes).toEqual([200, 200, 200]);
    expect(proofs.map((p) => new URL(p.htu).pathname)).toEqual(['/data/base', '/data/x', '/data/y']);
  });

  it('an API that rotates its nonce on every 200: 3 sequential GETs cost 4 API requests', async () => {
    const { tokens, issued } = dpopManager();
    const { api, outcomes, proofs } = await dpopApi(() => issued, { nonces: true });
    const http = axios.create({ baseURL: api.url });
    attachTokens(http, tokens);
    for (let i = 0; i < 3; i++) {
      const res = await http.get(`/data/${i}`);
      expect(res.status).toBe(200);
    }
    // The first challenge is answered once; after that each 200's nonce is in the next proof.
    expect(outcomes).toEqual([401, 200, 200, 200]);
    expect(api.requests).toHaveLength(4);
    // Each proof after the challenge carries the nonce the previous answer gave.
    expect(proofs[0]!.nonce).toBeUndefined();
    expect(new Set(proofs.map((p) => p.nonce)).size).toBe(4);
    expect(issued).toHaveLength(1);
  });

  it("the nonce on an error response (axios' error, not a 401) is kept for the next request too", async () => {
    const { tokens, issued } = dpopManager();
    const { api, outcomes } = await dpopApi(() => issued, { nonces: true });
    const http = axios.create({ baseURL: api.url });
    attachTokens(http, tokens);
    expect((await http.get('/data/a')).status).toBe(200);
    const err = (await http.get('/missing').catch((e: unknown) => e)) as AxiosError;
    expect(err.response?.status).toBe(404);
    expect((await http.get('/data/b')).status).toBe(200);
    // Also with validateStatus accepting everything (the response path).
    expect((await http.get('/missing', { validateStatus: () => true })).status).toBe(404);
    expect((await http.get('/data/c')).status).toBe(200);
    expect(outcomes).toEqual([401, 200, 404, 200, 404, 200]);
  });

  it('a nonce on a redirect response (which axios never shows) is carried by the next hop to the same origin', async () => {
    const { tokens, issued } = dpopManager();
    const { api, outcomes } = await dpopApi(() => issued, { nonces: true });
    const http = axios.create({ baseURL: api.url });
    attachTokens(http, tokens);
    expect((await http.get('/data/a')).status).toBe(200);
    const res = await http.get(`/redir?to=${encodeURIComponent('/redir?to=/data/b')}`);
    expect(res.data).toMatchObject({ ok: true, path: '/data/b' });
    expect((await http.get('/data/c')).status).toBe(200);
    expect(outcomes).toEqual([401, 200, 302, 302, 200, 200]);
  });

  it('a nonce from a host the token did not reach (a foreign redirect target) is not taken for the API', async () => {
    const { tokens, issued } = dpopManager();
    const { api, outcomes } = await dpopApi(() => issued, { nonces: true });
    const foreign = await server(() => ({
      headers: { 'dpop-nonce': 'foreign-nonce' },
      body: { foreign: true },
    }));
    const http = axios.create({ baseURL: api.url });
    attachTokens(http, tokens);
    expect((await http.get('/data/a')).status).toBe(200);
    const res = await http.get(`/redir?to=${encodeURIComponent(`${foreign.url}/x`)}`);
    expect(res.data).toEqual({ foreign: true });
    expect((await http.get('/data/b')).status).toBe(200);
    expect(outcomes).toEqual([401, 200, 302, 200]);
  });
});

describe('attachTokens with DPoP: redirects', () => {
  it('a same-origin hop, then a hop to another origin: the foreign server gets neither Authorization nor DPoP', async () => {
    const { tokens, issued } = dpopManager();
    const { api, outcomes, proofs } = await dpopApi(() => issued);
    const evil = await server(() => ({ body: { evil: true } }));
    const http = axios.create({ baseURL: api.url });
    attachTokens(http, tokens);
    const to = `/redir?to=${encodeURIComponent(`${evil.url}/ok`)}`;
    const res = await http.get(`/redir?to=${encodeURIComponent(to)}`);
    expect(res.data).toEqual({ evil: true });
    // Both API hops carried the token with a valid proof of their own (htu of that hop, new jti).
    expect(outcomes).toEqual([302, 302]);
    expect(proofs.map((p) => p.htu)).toEqual([`${api.url}/redir`, `${api.url}/redir`]);
    expect(api.requests[0]!.headers.dpop).not.toBe(api.requests[1]!.headers.dpop);
    expect(evil.requests).toHaveLength(1);
    const got = evil.requests[0]!.headers;
    expect(got.authorization).toBeUndefined();
    expect(got.dpop).toBeUndefined();
    // Neither the token nor any hop's proof is left on the response.
    const secrets = [issued[0]!, ...api.requests.map((r) => r.headers.dpop as string)];
    expect(leakScan(res, secrets)).toEqual([]);
  });

  it('the same, with a beforeRedirect that copies every header over (in two cases) on every hop', async () => {
    const { tokens, issued } = dpopManager();
    const { api, outcomes } = await dpopApi(() => issued);
    const evil = await server(() => ({ body: { evil: true } }));
    const http = axios.create({
      baseURL: api.url,
      // The previous hop's headers as the API received them (axios < 1.8 passes no request details).
      beforeRedirect: (options) => {
        const { host: _h, ...rest } = api.requests.at(-1)!.headers as Record<string, string>;
        options.headers = { ...options.headers, ...rest };
        if (rest.dpop) options.headers.DPoP = rest.dpop;
        if (rest.authorization) options.headers.Authorization = rest.authorization;
      },
    });
    attachTokens(http, tokens);
    const third = `/redir?to=${encodeURIComponent(`${evil.url}/ok`)}`;
    const second = `/redir?to=${encodeURIComponent(third)}`;
    const res = await http.get(`/redir?to=${encodeURIComponent(second)}`);
    expect(res.data).toEqual({ evil: true });
    expect(outcomes).toEqual([302, 302, 302]);
    const got = evil.requests[0]!.headers;
    expect(got.authorization).toBeUndefined();
    expect(got.dpop).toBeUndefined();
  });
});

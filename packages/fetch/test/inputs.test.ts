import { clientCredentials, TokenManager } from '@keyfob/core';
import {
  genericClientCredentials,
  type Handler,
  holdTokenEndpoint,
  rejection,
  startProtectedApi,
  startServer,
} from '@keyfob/testing';
import { Agent, request, fetch as undiciFetch } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { tokenInterceptor, withTokens } from '../src/index.js';

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
  const foreign = await startServer((req) => (req.path.startsWith('/401') ? { status: 401 } : { body: {} }));
  cleanup.push(() => foreign.close());
  const manager = new TokenManager({ tokenUrl: auth.tokenUrl, grant: clientCredentials(CLIENT), retries: 0 });
  cleanup.push(() => manager.close());
  const send = withTokens(fetch, manager, { origins: [api.url] });
  const dispatcher = () => {
    const d = new Agent().compose(tokenInterceptor(manager, { origins: [api.url] }));
    cleanup.push(() => d.close());
    return d;
  };
  return { auth, api, foreign, manager, send, dispatcher };
}

describe('withTokens: every input form', () => {
  it('init headers as Headers, pairs or an object, and a Request`s: a caller-set Authorization (any case) is replaced, the rest kept', async () => {
    const { api, send } = await setup();
    await send(`${api.url}/api/1`, { headers: new Headers({ Authorization: 'Bearer mine', 'x-a': '1' }) });
    await send(`${api.url}/api/2`, {
      headers: [
        ['AUTHORIZATION', 'Bearer mine'],
        ['x-a', '2'],
      ],
    });
    await send(`${api.url}/api/3`, { headers: { AuThOrIzAtIoN: 'Bearer mine', 'x-a': '3' } });
    await send(new Request(`${api.url}/api/4`, { headers: { authorization: 'Bearer mine', 'x-a': '4' } }));
    await send(new URL(`${api.url}/api/5`), { headers: { authorization: 'Bearer mine', 'x-a': '5' } });
    expect(api.requests.map((r) => r.headers['x-a'])).toEqual(['1', '2', '3', '4', '5']);
    for (const r of api.requests) expect(r.headers.authorization).toMatch(BEARER);
  });

  it('a Request with a body and an init with headers: the body is sent (and replayed), the init`s headers used', async () => {
    const { auth, api, send } = await setup();
    await send(`${api.url}/api/warm`);
    auth.issuer.revokeAll();
    const res = await send(new Request(`${api.url}/api/post`, { method: 'POST', body: 'rb' }), {
      headers: { 'x-y': '1' },
    });
    expect(res.status).toBe(200);
    const posts = api.requests.filter((r) => r.path === '/api/post');
    expect(posts.map((r) => [r.method, r.body, r.headers['x-y']])).toEqual([
      ['POST', 'rb', '1'],
      ['POST', 'rb', '1'],
    ]);
  });

  it('Blob, FormData and ArrayBuffer bodies are replayed after a 401', async () => {
    const { auth, api, send } = await setup();
    await send(`${api.url}/api/warm`);
    const fd = new FormData();
    fd.set('field', 'value');
    const bodies: [string, BodyInit][] = [
      ['blob', new Blob(['blob'])],
      ['fd', fd],
      ['ab', new TextEncoder().encode('ab').buffer as ArrayBuffer],
    ];
    for (const [path, body] of bodies) {
      auth.issuer.revokeAll();
      expect((await send(`${api.url}/api/${path}`, { method: 'POST', body })).status).toBe(200);
      const sent = api.requests.filter((r) => r.path === `/api/${path}`);
      expect(sent).toHaveLength(2);
      // (A FormData is serialised afresh, with a new multipart boundary.)
      const content = (body: string) => body.replace(/-+formdata-undici-\d+/g, '--boundary');
      expect(content(sent[0]!.body)).toBe(content(sent[1]!.body));
      expect(sent[0]!.body).toContain(path === 'fd' ? 'value' : path);
    }
  });

  it('a method in lower case is normalised as fetch does: a post redirected by a 302 becomes a GET', async () => {
    const { api, send } = await setup((req) =>
      req.path === '/go' ? redirectTo(302, '/api/l') : { status: 404 },
    );
    const res = await send(`${api.url}/go`, { method: 'post', body: 'x' });
    expect(res.status).toBe(200);
    expect(api.requests.map((r) => [r.method, r.body])).toEqual([
      ['POST', 'x'],
      ['GET', ''],
    ]);
  });

  it('a Request`s own redirect mode is honoured (manual: the 302 comes back)', async () => {
    const { api, send } = await setup((req) =>
      req.path === '/go' ? redirectTo(302, '/api/l') : { status: 404 },
    );
    const res = await send(new Request(`${api.url}/go`, { redirect: 'manual' }));
    expect(res.status).toBe(302);
    expect(api.requests).toHaveLength(1);
    expect(await rejection(send(new Request(`${api.url}/go`, { redirect: 'error' })))).toBeInstanceOf(
      TypeError,
    );
  });

  it('an already-aborted signal: an AbortError, no token request, nothing sent (and nothing left to fail later)', async () => {
    const { auth, api, send } = await setup();
    const ac = new AbortController();
    ac.abort();
    const error = (await rejection(send(`${api.url}/api/x`, { signal: ac.signal }))) as Error;
    expect(error.name).toBe('AbortError');
    expect(auth.tokenRequests()).toHaveLength(0);
    expect(api.requests).toHaveLength(0);
  });
});

describe('tokenInterceptor with undici.request, undici.fetch and fetch(url, { dispatcher })', () => {
  it('a 401 on both attempts comes back as the response (body intact); a caller-set Authorization is replaced', async () => {
    const { auth, api, dispatcher } = await setup((req) =>
      req.path === '/always' ? { status: 401, body: 'denied' } : { status: 404 },
    );
    const d = dispatcher();
    const r1 = await request(`${api.url}/always`, {
      dispatcher: d,
      headers: ['Authorization', 'Bearer mine', 'x-a', '1'],
    });
    expect([r1.statusCode, await r1.body.text()]).toEqual([401, 'denied']);
    const r2 = await undiciFetch(`${api.url}/always`, {
      dispatcher: d,
      headers: { AUTHORIZATION: 'Bearer mine', 'x-a': '2' },
    });
    expect([r2.status, await r2.text()]).toEqual([401, 'denied']);
    const r3 = await fetch(`${api.url}/always`, {
      dispatcher: d,
      headers: new Headers({ authorization: 'Bearer mine', 'x-a': '3' }),
    } as RequestInit);
    expect([r3.status, await r3.text()]).toEqual([401, 'denied']);
    const sent = api.requests.filter((r) => r.path === '/always');
    expect(sent.map((r) => r.headers['x-a'])).toEqual(['1', '1', '2', '2', '3', '3']);
    for (const r of sent) expect(r.headers.authorization).toMatch(BEARER);
    // Each attempt invalidated the token it carried: two tokens per request.
    expect(auth.tokenRequests()).toHaveLength(6);
  });

  it('fetch(url, { dispatcher }) redirects: follow, manual and error; no token to the foreign origin, a 401 there invalidates nothing', async () => {
    const { auth, api, foreign, dispatcher } = await setup((req) =>
      req.path === '/out' ? redirectTo(302, `${foreign.url}/401`) : { status: 404 },
    );
    const d = dispatcher();
    for (const f of [undiciFetch, fetch] as ((u: string, i: object) => Promise<Response>)[]) {
      expect((await f(`${api.url}/out`, { dispatcher: d })).status).toBe(401);
      expect((await f(`${api.url}/out`, { dispatcher: d, redirect: 'manual' })).status).toBe(302);
      expect(await rejection(f(`${api.url}/out`, { dispatcher: d, redirect: 'error' }))).toBeInstanceOf(
        TypeError,
      );
    }
    expect(foreign.requests).toHaveLength(2);
    for (const r of foreign.requests) expect(r.headers.authorization).toBeUndefined();
    for (const r of api.requests) expect(r.headers.authorization).toMatch(BEARER);
    expect(auth.tokenRequests()).toHaveLength(1);
  });

  it('an abort while waiting for the token rejects undici.fetch and fetch(url, { dispatcher }); nothing is sent later', async () => {
    const { auth, api, dispatcher } = await setup();
    const release = holdTokenEndpoint(auth);
    const d = dispatcher();
    for (const f of [undiciFetch, fetch] as ((u: string, i: object) => Promise<Response>)[]) {
      const ac = new AbortController();
      const pending = rejection(f(`${api.url}/api/x`, { dispatcher: d, signal: ac.signal }));
      await new Promise((r) => setTimeout(r, 50));
      ac.abort();
      expect(((await pending) as Error).name).toBe('AbortError');
    }
    release();
    // The shared token request completes; the aborted requests are not sent with it.
    await expect.poll(() => auth.tokenRequests().length).toBe(1);
    await new Promise((r) => setTimeout(r, 100));
    expect(api.requests).toHaveLength(0);
  });
});

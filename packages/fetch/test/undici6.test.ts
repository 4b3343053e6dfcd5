import { clientCredentials, isKeyfobError, TokenManager } from '@keyfob/core';
import {
  genericClientCredentials,
  type Handler,
  rejection,
  startProtectedApi,
  startServer,
} from '@keyfob/testing';
// undici 6 (the oldest version in the peer range): handlers with onConnect / onHeaders / onData / onComplete.
import { Agent, fetch, interceptors, request } from 'undici6';
import { afterEach, describe, expect, it } from 'vitest';
import { tokenInterceptor } from '../src/index.js';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

const CLIENT = { clientId: 'svc', clientSecret: 'svc-secret-value-123' };
const BEARER = /^Bearer at_[0-9a-f]{32}$/;

async function setup(extra?: Handler) {
  const auth = await genericClientCredentials(CLIENT);
  cleanup.push(() => auth.close());
  const api = await startProtectedApi(auth.issuer, extra);
  cleanup.push(() => api.close());
  const foreign = await startServer((req) => (req.path.startsWith('/401') ? { status: 401 } : { body: {} }));
  cleanup.push(() => foreign.close());
  const manager = new TokenManager({ tokenUrl: auth.tokenUrl, grant: clientCredentials(CLIENT), retries: 0 });
  cleanup.push(() => manager.close());
  const agent = new Agent();
  cleanup.push(() => agent.close());
  return { auth, api, foreign, manager, agent };
}

describe('tokenInterceptor with undici 6', () => {
  it('attaches the token (undici.request and undici 6 fetch)', async () => {
    const { api, manager, agent } = await setup();
    const dispatcher = agent.compose(tokenInterceptor(manager, { origins: [api.url] }));
    const r = await request(`${api.url}/api/a`, { dispatcher });
    expect(r.statusCode).toBe(200);
    await r.body.dump();
    expect((await fetch(`${api.url}/api/b`, { dispatcher })).status).toBe(200);
    expect(api.requests.map((x) => BEARER.test(x.headers.authorization ?? ''))).toEqual([true, true]);
  });

  it('a 401 is invalidated and retried once with the same string body; always-401 ends after two', async () => {
    let always = 0;
    const { auth, api, manager, agent } = await setup((req) => {
      if (req.path !== '/always') return { status: 404 };
      always++;
      return { status: 401 };
    });
    const dispatcher = agent.compose(tokenInterceptor(manager, { origins: [api.url] }));
    await (await request(`${api.url}/api/warm`, { dispatcher })).body.dump();
    auth.issuer.revokeAll();
    const r = await request(`${api.url}/api/post`, { dispatcher, method: 'POST', body: 'payload' });
    expect(r.statusCode).toBe(200);
    await r.body.dump();
    const posts = api.requests.filter((x) => x.path === '/api/post');
    expect(posts.map((p) => p.body)).toEqual(['payload', 'payload']);
    const a = await request(`${api.url}/always`, { dispatcher });
    expect(a.statusCode).toBe(401);
    await a.body.dump();
    expect(always).toBe(2);
  });

  it('the token endpoint down: rejects with the KeyfobError, nothing sent', async () => {
    const { auth, api, manager, agent } = await setup();
    await auth.close();
    const dispatcher = agent.compose(tokenInterceptor(manager, { origins: [api.url] }));
    expect(isKeyfobError(await rejection(request(`${api.url}/api/x`, { dispatcher })))).toBe(true);
    expect(api.requests).toHaveLength(0);
  });

  it('redirects: hop by hop (redirect outside) and stripped by undici (redirect inside)', async () => {
    const { auth, api, foreign, manager, agent } = await setup((req) =>
      req.path === '/out' ? { status: 302, headers: { location: `${foreign.url}/401` } } : { status: 404 },
    );
    const tokens = tokenInterceptor(manager, { origins: [api.url] });
    for (const dispatcher of [
      agent.compose(tokens, interceptors.redirect({ maxRedirections: 2 })),
      agent.compose(interceptors.redirect({ maxRedirections: 2 }), tokens),
    ]) {
      const r = await request(`${api.url}/out`, { dispatcher });
      expect(r.statusCode).toBe(401);
      await r.body.dump();
    }
    expect(foreign.requests).toHaveLength(2);
    expect(foreign.requests.map((x) => x.headers.authorization)).toEqual([undefined, undefined]);
    expect(api.requests.filter((x) => x.path === '/out')).toHaveLength(2);
    // The foreign 401s were not answers to keyfob's token: nothing invalidated.
    expect(auth.tokenRequests()).toHaveLength(1);
  });
});

import { inspect } from 'node:util';
import {
  type AuthorizationServerOptions,
  browserlessLogin,
  type RunningAuthorizationServer,
  startAuthorizationServer,
} from '@keyfob/authorization-server';
import { type AuthorizationCodeGrant, authorizationCode, TokenManager } from '@keyfob/core';
import {
  type AuthorizationCodeRouter,
  type AuthorizationCodeRouterOptions,
  authorizationCodeRouter,
  getKeyfob,
  keyfobErrorHandler,
} from '@keyfob/express';
import { type RecordedRequest, startServer, type TestServer } from '@keyfob/testing';
import express, { type Request } from 'express';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Answer, Browser, type RunningApp, sleep, startApp } from './helpers.js';

const COOKIE_SECRET = 'test-cookie-secret-0123456789abcdef0123456789';
const CLIENT_SECRET = 'web-app-secret';

function uidOf(req: Request): string | undefined {
  const m = /(?:^|;\s*)uid=([^;]+)/.exec(req.headers.cookie ?? '');
  return m ? decodeURIComponent(m[1]!) : undefined;
}

interface Setup {
  app: RunningApp;
  manager: TokenManager;
  grant: AuthorizationCodeGrant;
  router: AuthorizationCodeRouter;
  /** Requests that reached the token endpoint (through a recording pass-through). */
  tokenRequests: RecordedRequest[];
}

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

/** A pass-through in front of the real token endpoint that records what keyfob sent. */
async function recordingTokenProxy(server: RunningAuthorizationServer): Promise<TestServer> {
  const proxy = await startServer(async (req) => {
    const headers: Record<string, string> = { 'content-type': String(req.headers['content-type']) };
    if (req.headers.authorization) headers.authorization = req.headers.authorization;
    const r = await fetch(server.tokenUrl, { method: 'POST', headers, body: req.body });
    return { status: r.status, headers: { 'content-type': 'application/json' }, body: await r.text() };
  });
  cleanup.push(() => proxy.close());
  return proxy;
}

async function setup(
  server: RunningAuthorizationServer,
  options: { router?: Partial<AuthorizationCodeRouterOptions>; tokenUrl?: string } = {},
): Promise<Setup> {
  const proxy = options.tokenUrl ? undefined : await recordingTokenProxy(server);
  let out: Omit<Setup, 'app' | 'tokenRequests'> | undefined;
  const app = await startApp((origin) => {
    const grant = authorizationCode({
      clientId: 'web-app',
      clientSecret: CLIENT_SECRET,
      clientAuth: 'body', // web-app is registered for client_secret_post
      redirectUri: `${origin}/callback`,
      authorizeUrl: server.authorizeUrl,
      revocationUrl: server.revocationUrl,
      scope: 'openid offline_access api:read',
    });
    const manager = new TokenManager({
      tokenUrl: options.tokenUrl ?? `${proxy!.url}/token`,
      grant,
      retries: 0,
    });
    cleanup.push(() => manager.close());
    const router = authorizationCodeRouter({
      manager,
      grant,
      subject: uidOf,
      cookieSecret: COOKIE_SECRET,
      authorizationParams: (req) =>
        typeof req.query.user === 'string' ? { login_hint: req.query.user } : undefined,
      onLogin: ({ res, subject }) => {
        res.cookie('uid', subject, { httpOnly: true, sameSite: 'lax' });
      },
      onLogout: ({ res }) => {
        res.clearCookie('uid');
      },
      ...options.router,
    });
    const a = express();
    a.use(router);
    a.get('/api/me', router.requireUserToken(), async (req, res) => {
      const call = async () => {
        const token = await getKeyfob(req).getToken();
        const r = await fetch(`${server.apiUrl}/me`, {
          headers: { authorization: `Bearer ${token.accessToken}` },
        });
        return { token, r };
      };
      let { token, r } = await call();
      if (r.status === 401) {
        // The upstream rejected the token: drop exactly that one and retry once (renews with the refresh token).
        await getKeyfob(req).invalidate(token);
        await r.body?.cancel();
        ({ token, r } = await call());
      }
      res.status(r.status).json({ upstream: await r.json(), subject: getKeyfob(req).subject });
    });
    a.get('/page', router.requireUserToken(), async (req, res) => {
      const r = await fetch(`${server.apiUrl}/me`, {
        headers: { authorization: await getKeyfob(req).getAuthorizationHeader() },
      });
      const body = (await r.json()) as { sub: string };
      res.type('html').send(`<p>hello ${body.sub}</p>`);
    });
    a.get('/inspect', router.requireUserToken(), (req, res) => {
      res.json({ printed: `${inspect(req.keyfob)} ${JSON.stringify(req.keyfob)}` });
    });
    a.get('/', (_req, res) => {
      res.type('text').send('home');
    });
    a.use(keyfobErrorHandler({ loginUrl: '/login' }));
    out = { manager, grant, router };
    return a;
  });
  cleanup.push(() => app.close());
  return { app, ...out!, tokenRequests: proxy ? proxy.requests : [] };
}

/** GET login -> the provider (non-interactive) -> the callback URL the provider redirected to. */
async function startLogin(browser: Browser, path = '/login'): Promise<{ start: Answer; callback: URL }> {
  const start = await browser.get(path, 'text/html');
  expect(start.status).toBe(302);
  const callback = await browserlessLogin(start.location!);
  return { start, callback };
}

async function login(browser: Browser, path = '/login'): Promise<Answer> {
  const { callback } = await startLogin(browser, path);
  return browser.get(callback.pathname + callback.search, 'text/html');
}

function assertNoSecrets(text: string, ...secrets: (string | undefined)[]) {
  for (const s of [CLIENT_SECRET, COOKIE_SECRET, ...secrets]) if (s) expect(text).not.toContain(s);
  expect(text).not.toMatch(/\n\s+at /);
}

describe('authorizationCodeRouter against the real authorization server', () => {
  let server: RunningAuthorizationServer;
  beforeAll(async () => {
    server = await startAuthorizationServer();
  });
  afterAll(async () => {
    await server.close();
  });

  it('AIRisk flow: the identified user id goes in the authorize URL and in the code exchange', async () => {
    const s = await setup(server, { router: { userIdParam: 'userid' } });
    const browser = new Browser(s.app.origin);
    browser.setCookie('uid', 'user_42');

    const { start, callback } = await startLogin(browser);
    const authorize = new URL(start.location!);
    expect(`${authorize.origin}${authorize.pathname}`).toBe(server.authorizeUrl);
    expect(authorize.searchParams.get('userid')).toBe('user_42');
    expect(authorize.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authorize.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const state = authorize.searchParams.get('state')!;
    expect(state.length).toBeGreaterThanOrEqual(43);
    // The state cookie: signed, httpOnly, SameSite=Lax, scoped to the callback path.
    const stateCookie = start.setCookies.find((c) => c.name.startsWith('keyfob_login_'))!;
    expect(stateCookie.attributes.httponly).toBe(true);
    expect(String(stateCookie.attributes.samesite).toLowerCase()).toBe('lax');
    expect(stateCookie.attributes.path).toBe('/callback');
    expect(stateCookie.attributes.secure).toBeUndefined(); // http redirect URI
    expect(callback.searchParams.get('state')).toBe(state);

    const done = await browser.get(callback.pathname + callback.search, 'text/html');
    expect(done.status).toBe(302);
    expect(done.location).toBe('/');
    // The state cookie is cleared.
    expect(done.setCookies.find((c) => c.name === stateCookie.name)?.attributes.expires).toBeDefined();
    expect(browser.jar.has(stateCookie.name)).toBe(false);

    const exchange = s.tokenRequests.find((r) => r.params.grant_type === 'authorization_code')!;
    expect(exchange.params.userid).toBe('user_42');
    expect(exchange.params.code).toBe(callback.searchParams.get('code'));
    expect(exchange.params.code_verifier).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(exchange.params.redirect_uri).toBe(`${s.app.origin}/callback`);

    const token = await s.manager.getToken({ subject: 'user_42' });
    expect(token.refreshToken).toBeTruthy();
    const me = await browser.get('/api/me');
    expect(me.status).toBe(200);
    expect(me.json).toEqual({ upstream: { ok: true, sub: 'user_42' }, subject: 'user_42' });
    const page = await browser.get('/page', 'text/html');
    expect(page.text).toBe('<p>hello user_42</p>');
  });

  it('two users logged in at once never see each other’s tokens', async () => {
    const s = await setup(server);
    const alice = new Browser(s.app.origin);
    const bob = new Browser(s.app.origin);
    // Interleaved: both logins are in flight before either completes.
    const a = await startLogin(alice, '/login?user=alice');
    const b = await startLogin(bob, '/login?user=bob');
    expect(new URL(a.start.location!).searchParams.get('login_hint')).toBe('alice');
    expect((await bob.get(b.callback.pathname + b.callback.search, 'text/html')).status).toBe(302);
    expect((await alice.get(a.callback.pathname + a.callback.search, 'text/html')).status).toBe(302);

    const [meA, meB] = await Promise.all([alice.get('/api/me'), bob.get('/api/me')]);
    expect(meA.json.upstream.sub).toBe('alice');
    expect(meB.json.upstream.sub).toBe('bob');
    // Each browser has its own (generated) subject, and each subject its own token set.
    const subA = alice.jar.get('uid')!.value;
    const subB = bob.jar.get('uid')!.value;
    expect(subA).not.toBe(subB);
    const [tA, tB] = await Promise.all([
      s.manager.getToken({ subject: subA }),
      s.manager.getToken({ subject: subB }),
    ]);
    expect(tA.accessToken).not.toBe(tB.accessToken);
    // A callback from Bob's login cannot be completed in Alice's browser.
    const c = await startLogin(bob, '/login?user=bob');
    const stolen = await alice.get(c.callback.pathname + c.callback.search);
    expect(stolen.status).toBe(400);
    expect(stolen.json.error).toBe('invalid_state');
    expect((await alice.get('/api/me')).json.upstream.sub).toBe('alice');
  });

  it('supports several logins in flight in one browser (two tabs), completed in any order', async () => {
    const s = await setup(server);
    const browser = new Browser(s.app.origin);
    const tab1 = await startLogin(browser, '/login?user=carol&returnTo=/page');
    const tab2 = await startLogin(browser, '/login?user=carol');
    expect([...browser.jar.keys()].filter((k) => k.startsWith('keyfob_login_'))).toHaveLength(2);
    const second = await browser.get(tab2.callback.pathname + tab2.callback.search, 'text/html');
    expect(second.status).toBe(302);
    const first = await browser.get(tab1.callback.pathname + tab1.callback.search, 'text/html');
    expect(first.status).toBe(302);
    expect(first.location).toBe('/page');
    expect([...browser.jar.keys()].filter((k) => k.startsWith('keyfob_login_'))).toHaveLength(0);
    expect((await browser.get('/page', 'text/html')).text).toBe('<p>hello carol</p>');
  });

  it('requireUserToken: browsers go to the login (and come back), API clients get 401', async () => {
    const s = await setup(server);
    const browser = new Browser(s.app.origin);
    const html = await browser.get('/page', 'text/html');
    expect(html.status).toBe(302);
    expect(html.location).toBe('/login?returnTo=%2Fpage');
    const api = await browser.get('/api/me');
    expect(api.status).toBe(401);
    expect(api.json).toMatchObject({
      error: 'login_required',
      code: 'KEYFOB_LOGIN_REQUIRED',
      loginUrl: '/login',
    });
    // A subject the manager has no token set for is the same as none.
    browser.setCookie('uid', 'nobody');
    expect((await browser.get('/api/me')).status).toBe(401);
    browser.jar.delete('uid');

    const done = await login(browser, `${html.location!}&user=dave`);
    expect(done.location).toBe('/page');
    expect((await browser.get('/page', 'text/html')).text).toBe('<p>hello dave</p>');
  });

  it('never redirects off-site after login (returnTo must be a local path)', async () => {
    const s = await setup(server);
    for (const evil of ['//evil.example/x', 'https://evil.example/', '/\\evil.example']) {
      const browser = new Browser(s.app.origin);
      const done = await login(browser, `/login?user=eve&returnTo=${encodeURIComponent(evil)}`);
      expect(done.location).toBe('/');
    }
  });

  it('works with only the options the docs require: no cookieSecret, a subject known at login only', async () => {
    // subject(req) reads ?as= (present on /login only); the callback cannot identify the user and relies on
    // the signed state cookie; the state cookie is signed with a random per-process key.
    const s = await setup(server, {
      router: {
        cookieSecret: undefined,
        subject: (req) => (typeof req.query.as === 'string' ? req.query.as : undefined),
        onLogin: undefined,
      },
    });
    const browser = new Browser(s.app.origin);
    const done = await login(browser, '/login?as=grace&user=grace');
    expect(done.status).toBe(302);
    const token = await s.manager.getToken({ subject: 'grace' });
    const me = await fetch(`${server.apiUrl}/me`, {
      headers: { authorization: `Bearer ${token.accessToken}` },
    });
    expect(((await me.json()) as { sub: string }).sub).toBe('grace');
  });

  it('logout (POST) deletes and revokes the user’s tokens', async () => {
    const s = await setup(server);
    const browser = new Browser(s.app.origin);
    await login(browser, '/login?user=frank');
    const subject = browser.jar.get('uid')!.value;
    const token = await s.manager.getToken({ subject });
    expect((await browser.get('/api/me')).status).toBe(200);

    // GET works from this site, never from another one (an <img src> elsewhere cannot log the user out).
    const crossSiteGet = await browser.request('/logout', {
      method: 'GET',
      headers: { 'sec-fetch-site': 'cross-site' },
    });
    expect(crossSiteGet.status).toBe(403);
    const crossSite = await browser.request('/logout', {
      method: 'POST',
      headers: { 'sec-fetch-site': 'cross-site' },
    });
    expect(crossSite.status).toBe(403);
    expect(crossSite.json.error).toBe('cross_site_request');
    expect((await browser.get('/api/me')).status).toBe(200);

    const revocations = server.stats.revocations;
    const out = await browser.post('/logout', 'text/html');
    expect(out.status).toBe(303);
    expect(out.location).toBe('/');
    expect(server.stats.revocations).toBeGreaterThan(revocations);
    expect(browser.jar.has('uid')).toBe(false);
    await expect(s.manager.getToken({ subject })).rejects.toMatchObject({ code: 'KEYFOB_LOGIN_REQUIRED' });
    // The old access token is dead upstream too.
    const direct = await fetch(`${server.apiUrl}/me`, {
      headers: { authorization: `Bearer ${token.accessToken}` },
    });
    expect(direct.status).toBe(401);
    // API-style logout answers 204, also without a session.
    expect((await browser.post('/logout')).status).toBe(204);
  });

  describe('refused callbacks answer 400 with a clear message', () => {
    it('missing state', async () => {
      const s = await setup(server);
      const browser = new Browser(s.app.origin);
      const r = await browser.get('/callback?code=abc');
      expect(r.status).toBe(400);
      expect(r.json).toMatchObject({ error: 'missing_state', code: 'KEYFOB_AUTHORIZATION_CALLBACK' });
      expect(r.json.message).toMatch(/no state/);
      const html = await browser.get('/callback?code=abc', 'text/html');
      expect(html.status).toBe(400);
      expect(html.headers.get('content-type')).toMatch(/text\/html/);
      expect(html.text).toContain('Sign-in failed');
    });

    it('forged state, and a tampered state cookie', async () => {
      const s = await setup(server);
      const browser = new Browser(s.app.origin);
      const { callback } = await startLogin(browser, '/login?user=gina');
      const forged = new URL(callback);
      forged.searchParams.set('state', 'forged-state-value');
      const r = await browser.get(forged.pathname + forged.search);
      expect(r.status).toBe(400);
      expect(r.json.error).toBe('invalid_state');

      // Same cookie name, payload changed (e.g. another subject): the HMAC no longer matches.
      const [name, entry] = [...browser.jar].find(([k]) => k.startsWith('keyfob_login_'))!;
      const [body, mac] = entry.value.split('.');
      const payload = JSON.parse(Buffer.from(body!, 'base64url').toString());
      payload.sub = 'someone-else';
      browser.setCookie(
        name,
        `${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${mac}`,
        '/callback',
      );
      const t = await browser.get(callback.pathname + callback.search);
      expect(t.status).toBe(400);
      expect(t.json.error).toBe('invalid_state');
      await expect(s.manager.getToken({ subject: 'someone-else' })).rejects.toMatchObject({
        code: 'KEYFOB_LOGIN_REQUIRED',
      });
    });

    it('a state cookie whose MAC has junk appended (the exact signature is required)', async () => {
      const s = await setup(server);
      const browser = new Browser(s.app.origin);
      const { callback } = await startLogin(browser, '/login?user=hugo');
      const [name, entry] = [...browser.jar].find(([k]) => k.startsWith('keyfob_login_'))!;
      const genuine = entry.value;
      browser.setCookie(name, `${genuine}!!`, '/callback');
      const junk = await browser.get(callback.pathname + callback.search);
      expect(junk.status).toBe(400);
      expect(junk.json.error).toBe('invalid_state');
      expect(s.tokenRequests).toHaveLength(0);
      // The genuine cookie still completes the same login: it was the junk that was refused.
      browser.setCookie(name, genuine, '/callback');
      const done = await browser.get(callback.pathname + callback.search, 'text/html');
      expect(done.status).toBe(302);
      expect(s.tokenRequests).toHaveLength(1);
    });

    it('a replayed callback, and a code used elsewhere first', async () => {
      const s = await setup(server);
      const browser = new Browser(s.app.origin);
      const { callback } = await startLogin(browser, '/login?user=hank');
      const cookieBefore = browser.cookieHeader(callback)!;
      expect((await browser.get(callback.pathname + callback.search)).status).toBe(302);
      // Replayed by the same browser (cookie gone) and with the original cookie re-sent.
      const again = await browser.get(callback.pathname + callback.search);
      expect(again.status).toBe(400);
      expect(again.json.error).toBe('state_already_used');
      const replay = await fetch(new URL(callback.pathname + callback.search, s.app.origin), {
        headers: { cookie: cookieBefore, accept: 'application/json' },
        redirect: 'manual',
      });
      expect(replay.status).toBe(400);
      expect(((await replay.json()) as { error: string }).error).toBe('state_already_used');

      // The code is redeemed by someone else first: the provider refuses it (invalid_grant) -> 400.
      const other = new Browser(s.app.origin);
      const second = await startLogin(other, '/login?user=hank');
      const payload = JSON.parse(
        Buffer.from(
          [...other.jar].find(([k]) => k.startsWith('keyfob_login_'))![1].value.split('.')[0]!,
          'base64url',
        ).toString(),
      ) as { cv: string };
      const stolen = await fetch(server.tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'authorization_code',
          code: second.callback.searchParams.get('code')!,
          redirect_uri: `${s.app.origin}/callback`,
          code_verifier: payload.cv,
          client_id: 'web-app',
          client_secret: CLIENT_SECRET,
        }),
      });
      expect(stolen.status).toBe(200);
      const r = await other.get(second.callback.pathname + second.callback.search);
      expect(r.status).toBe(400);
      expect(r.json.error).toBe('invalid_grant');
      assertNoSecrets(r.text, second.callback.searchParams.get('code')!, payload.cv);
      expect(other.jar.has('uid')).toBe(false);
    });

    it('error=access_denied from the provider', async () => {
      const s = await setup(server);
      const browser = new Browser(s.app.origin);
      const { callback } = await startLogin(browser, '/login?user=deny');
      expect(callback.searchParams.get('error')).toBe('access_denied');
      const r = await browser.get(callback.pathname + callback.search);
      expect(r.status).toBe(400);
      expect(r.json).toMatchObject({ error: 'access_denied', providerError: 'access_denied' });
      expect(r.json.message).toMatch(/cancelled or denied/);
      expect([...browser.jar.keys()].some((k) => k.startsWith('keyfob_login_'))).toBe(false);
      expect(s.tokenRequests).toHaveLength(0);
      // Any other provider error: 400 too, with only a sanitised error code echoed.
      const other = await browser.get('/callback?error=%3Cscript%3E&state=x');
      expect(other.status).toBe(400);
      expect(other.json).toMatchObject({ error: 'provider_error', providerError: 'invalid_error_code' });
    });

    it('a callback without a code', async () => {
      const s = await setup(server);
      const browser = new Browser(s.app.origin);
      const { callback } = await startLogin(browser, '/login?user=ivy');
      const noCode = new URL(callback);
      noCode.searchParams.delete('code');
      const r = await browser.get(noCode.pathname + noCode.search);
      expect(r.status).toBe(400);
      expect(r.json.error).toBe('missing_code');
      expect(s.tokenRequests).toHaveLength(0);
    });

    it('a login that took longer than loginTimeoutMs', async () => {
      const s = await setup(server, { router: { loginTimeoutMs: 1_500 } });
      const browser = new Browser(s.app.origin);
      const { callback } = await startLogin(browser, '/login?user=jay');
      await sleep(1_600);
      const r = await browser.get(callback.pathname + callback.search);
      expect(r.status).toBe(400);
      expect(r.json.error).toBe('expired_state');
    });

    it('the signed-in app user changed while the login was in flight', async () => {
      const s = await setup(server, { router: { userIdParam: 'userid' } });
      const browser = new Browser(s.app.origin);
      browser.setCookie('uid', 'user_1');
      const { callback } = await startLogin(browser);
      browser.setCookie('uid', 'user_2');
      const r = await browser.get(callback.pathname + callback.search);
      expect(r.status).toBe(400);
      expect(r.json.error).toBe('subject_mismatch');
      expect(s.tokenRequests).toHaveLength(0);
    });
  });

  it('token endpoint failing: 502 JSON with the code and hint, no secret', async () => {
    const failing = await startServer(() => ({
      status: 401,
      body: { error: 'invalid_client', error_description: 'Bad credentials' },
    }));
    cleanup.push(() => failing.close());
    const s = await setup(server, { tokenUrl: `${failing.url}/token` });
    const browser = new Browser(s.app.origin);
    const { callback } = await startLogin(browser, '/login?user=kim');
    const cookies = browser.cookieHeader(callback)!;
    const r = await browser.get(callback.pathname + callback.search);
    expect(r.status).toBe(502);
    expect(r.json).toMatchObject({
      error: 'bad_gateway',
      code: 'KEYFOB_TOKEN_ENDPOINT',
      upstreamStatus: 401,
      oauthError: 'invalid_client',
    });
    expect(r.json.hint).toMatch(/client/i);
    expect(failing.requests[0]!.params.client_secret).toBe(CLIENT_SECRET); // it was sent...
    const verifier = JSON.parse(
      Buffer.from(cookies.split('=')[1]!.split('.')[0]!, 'base64url').toString(),
    ).cv;
    assertNoSecrets(r.text, callback.searchParams.get('code')!, verifier); // ...and is not echoed
  });

  it("token endpoint down (connection refused): 503 JSON (unavailable, not the caller's fault)", async () => {
    const gone = await startServer(() => ({ status: 200 }));
    const deadUrl = `${gone.url}/token`;
    await gone.close();
    const s = await setup(server, { tokenUrl: deadUrl });
    const browser = new Browser(s.app.origin);
    const { callback } = await startLogin(browser, '/login?user=lee');
    const r = await browser.get(callback.pathname + callback.search);
    expect(r.status).toBe(503);
    expect(r.json).toMatchObject({ error: 'service_unavailable', code: 'KEYFOB_TOKEN_ENDPOINT_NETWORK' });
    assertNoSecrets(r.text, callback.searchParams.get('code')!);
  });

  it('req.keyfob prints no token', async () => {
    const s = await setup(server);
    const browser = new Browser(s.app.origin);
    await login(browser, '/login?user=nina');
    const subject = browser.jar.get('uid')!.value;
    const token = await s.manager.getToken({ subject });
    const r = await browser.get('/inspect');
    expect(r.json.printed).toContain(subject);
    expect(r.json.printed).not.toContain(token.accessToken);
    expect(r.json.printed).not.toContain(token.refreshToken!);
  });
});

describe('refresh and expiry', () => {
  let server: RunningAuthorizationServer;
  beforeAll(async () => {
    const opts: AuthorizationServerOptions = { accessTokenTtlSeconds: 2 };
    server = await startAuthorizationServer(opts);
  });
  afterAll(async () => {
    await server.close();
  });

  it('renews an expired access token with the refresh token; a dead refresh token means login again', async () => {
    const s = await setup(server);
    const browser = new Browser(s.app.origin);
    await login(browser, '/login?user=mia');
    const subject = browser.jar.get('uid')!.value;
    const first = await s.manager.getToken({ subject });
    expect((await browser.get('/api/me')).json.upstream.sub).toBe('mia');
    const refreshes = server.stats.tokenRequestsByGrant.refresh_token ?? 0;

    await sleep(2_500); // past the 2 s lifetime
    const me = await browser.get('/api/me');
    expect(me.status).toBe(200);
    expect(me.json.upstream.sub).toBe('mia');
    expect(server.stats.tokenRequestsByGrant.refresh_token ?? 0).toBeGreaterThan(refreshes);
    const second = await s.manager.getToken({ subject });
    expect(second.accessToken).not.toBe(first.accessToken);
    expect(s.tokenRequests.filter((r) => r.params.grant_type === 'refresh_token').length).toBeGreaterThan(0);

    // The provider revokes the refresh token (e.g. the user removed the app): its grant and tokens die.
    const revoke = await fetch(server.revocationUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        token: second.refreshToken!,
        token_type_hint: 'refresh_token',
        client_id: 'web-app',
        client_secret: CLIENT_SECRET,
      }),
    });
    expect(revoke.status).toBe(200);
    // The handler sees the upstream 401, invalidates, the refresh is refused: 401 login_required, no secret.
    const dead = await browser.get('/api/me');
    expect(dead.status).toBe(401);
    expect(dead.json).toMatchObject({ error: 'login_required', code: 'KEYFOB_LOGIN_REQUIRED' });
    assertNoSecrets(dead.text, second.refreshToken, second.accessToken);
    // From now on the guard itself sends the browser to the login.
    const page = await browser.get('/page', 'text/html');
    expect(page.status).toBe(302);
    expect(page.location).toBe('/login?returnTo=%2Fpage');
  });
});

describe('options are checked when the router is built', () => {
  it('rejects a short cookie secret, a missing subject and a wrong grant', () => {
    const grant = authorizationCode({
      clientId: 'c',
      redirectUri: 'https://app.example/cb',
      authorizeUrl: 'https://auth.example/authorize',
    });
    const manager = new TokenManager({ tokenUrl: 'https://auth.example/token', grant });
    cleanup.push(() => manager.close());
    const base = { manager, grant, subject: () => undefined, cookieSecret: COOKIE_SECRET };
    expect(() => authorizationCodeRouter({ ...base, cookieSecret: 'short' })).toThrow(/at least 32/);
    expect(() => authorizationCodeRouter({ ...base, subject: undefined as never })).toThrow(/subject/);
    expect(() => authorizationCodeRouter({ ...base, grant: {} as never })).toThrow(/authorizationCode/);
    expect(() => authorizationCodeRouter({ ...base, manager: {} as never })).toThrow(/TokenManager/);
    expect(() => authorizationCodeRouter({ ...base, cookieName: 'bad name;' })).toThrow(/cookieName/);
    const router = authorizationCodeRouter(base);
    expect(typeof router.requireUserToken).toBe('function');
  });

  it('https redirect URI: Secure state cookie', async () => {
    const grant = authorizationCode({
      clientId: 'c',
      redirectUri: 'https://app.example/auth/cb',
      authorizeUrl: 'https://auth.example/authorize',
    });
    const manager = new TokenManager({ tokenUrl: 'https://auth.example/token', grant });
    cleanup.push(() => manager.close());
    const app = await startApp(() => {
      const a = express();
      a.use(authorizationCodeRouter({ manager, grant, subject: () => 'u1', cookieSecret: COOKIE_SECRET }));
      return a;
    });
    cleanup.push(() => app.close());
    const r = await new Browser(app.origin).get('/login');
    expect(r.status).toBe(302);
    expect(r.location).toMatch(/^https:\/\/auth\.example\/authorize\?/);
    const c = r.setCookies.find((x) => x.name.startsWith('keyfob_login_'))!;
    expect(c.attributes.secure).toBe(true);
    expect(c.attributes.path).toBe('/auth/cb');
    expect(r.headers.get('cache-control')).toBe('no-store');
  });

  it('an anonymous login without onLogin still starts, under a generated subject', async () => {
    const grant = authorizationCode({
      clientId: 'c',
      redirectUri: 'http://127.0.0.1:1/cb',
      authorizeUrl: 'https://auth.example/authorize',
    });
    const manager = new TokenManager({ tokenUrl: 'https://auth.example/token', grant });
    cleanup.push(() => manager.close());
    const app = await startApp(() => {
      const a = express();
      a.use(
        authorizationCodeRouter({ manager, grant, subject: () => undefined, cookieSecret: COOKIE_SECRET }),
      );
      return a;
    });
    cleanup.push(() => app.close());
    // Nobody identified and no onLogin: the login still starts (with a warning), under a generated subject.
    const r = await new Browser(app.origin).get('/login');
    expect(r.status).toBe(302);
    expect(r.location).toMatch(/^https:\/\/auth\.example\/authorize\?/);
  });
});

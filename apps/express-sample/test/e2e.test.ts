import {
  browserlessLogin,
  type RunningAuthorizationServer,
  startAuthorizationServer,
} from '@keyfob/authorization-server';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type RunningExpressSample, type SampleEnv, startExpressSample } from '../src/app.js';
import { Browser } from './browser.js';

const COOKIE_SECRET = 'e2e-cookie-secret-0123456789abcdef0123456789';

let server: RunningAuthorizationServer;
const running: RunningExpressSample[] = [];

beforeAll(async () => {
  server = await startAuthorizationServer();
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.close()));
});
afterAll(async () => {
  await server.close();
});

function envFor(extra: SampleEnv = {}): SampleEnv {
  return {
    AUTHORIZE_URL: server.authorizeUrl,
    TOKEN_URL: server.tokenUrl,
    REVOCATION_URL: server.revocationUrl,
    CLIENT_ID: 'web-app',
    CLIENT_SECRET: 'web-app-secret',
    SERVICE_CLIENT_ID: 'service-basic',
    SERVICE_CLIENT_SECRET: 'service-basic-secret',
    API_URL: server.apiUrl,
    PORT: '0',
    COOKIE_SECRET,
    ...extra,
  };
}

async function start(extra?: SampleEnv): Promise<RunningExpressSample> {
  const sample = await startExpressSample(envFor(extra));
  running.push(sample);
  return sample;
}

/** GET /login?user=... -> provider (non-interactive) -> callback -> back in the app. */
async function login(browser: Browser, user: string): Promise<URL> {
  const start = await browser.request(`/login?user=${encodeURIComponent(user)}`, { accept: 'text/html' });
  expect(start.status).toBe(302);
  const authorize = new URL(start.location!);
  const callback = await browserlessLogin(authorize.href);
  const done = await browser.request(callback.pathname + callback.search, { accept: 'text/html' });
  expect(done.status).toBe(302);
  expect(done.location).toBe('/');
  return authorize;
}

describe('express-sample against the real authorization server', () => {
  it('logs two users in, serves each one’s profile, calls /api/hello with the service token, logs out', async () => {
    const sample = await start();
    expect(sample.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const alice = new Browser(sample.url);
    const bob = new Browser(sample.url);

    // Not logged in: browsers are sent to the login, API clients get 401.
    const guard = await alice.request('/profile', { accept: 'text/html' });
    expect(guard.status).toBe(302);
    expect(guard.location).toBe('/login?returnTo=%2Fprofile');
    expect((await alice.request('/profile')).status).toBe(401);

    const authorize = await login(alice, 'alice');
    expect(authorize.searchParams.get('login_hint')).toBe('alice');
    expect(authorize.searchParams.get('code_challenge_method')).toBe('S256');
    await login(bob, 'bob');

    const [pa, pb] = await Promise.all([alice.request('/profile'), bob.request('/profile')]);
    expect(pa.status).toBe(200);
    expect(pa.json.me).toEqual({ ok: true, sub: 'alice' });
    expect(pb.json.me).toEqual({ ok: true, sub: 'bob' });
    expect(pa.json.subject).not.toBe(pb.json.subject);
    const html = await bob.request('/profile', { accept: 'text/html' });
    expect(html.text).toContain('<b id="sub">bob</b>');
    for (const r of [pa, pb, html]) {
      expect(r.text).not.toContain('web-app-secret');
      expect(r.text).not.toMatch(/eyJ[A-Za-z0-9_-]+\.eyJ/); // no JWT
    }

    const ccBefore = server.stats.tokenRequestsByGrant.client_credentials ?? 0;
    const anonymous = new Browser(sample.url);
    const [h1, h2] = await Promise.all([anonymous.request('/api/hello'), alice.request('/api/hello')]);
    for (const h of [h1, h2]) {
      expect(h.status).toBe(200);
      expect(h.json.hello).toMatchObject({ ok: true, client_id: 'service-basic' });
    }
    expect((server.stats.tokenRequestsByGrant.client_credentials ?? 0) - ccBefore).toBe(1);

    const revocations = server.stats.revocations;
    const out = await alice.request('/logout', { method: 'POST', accept: 'text/html' });
    expect(out.status).toBe(303);
    expect(server.stats.revocations).toBeGreaterThan(revocations);
    expect((await alice.request('/profile')).status).toBe(401);
    // Bob is untouched by Alice's logout.
    expect((await bob.request('/profile')).json.me.sub).toBe('bob');
    expect((await bob.request('/logout', { method: 'POST' })).status).toBe(204);
    expect((await bob.request('/profile')).status).toBe(401);
  });

  it('AIRisk-style identified login: the user id goes in the authorize URL (USER_ID_PARAM=userid)', async () => {
    const sample = await start({ USER_ID_PARAM: 'userid' });
    const b = new Browser(sample.url);
    const authorize = await login(b, 'user_42');
    expect(authorize.searchParams.get('userid')).toBe('user_42');
    expect(authorize.searchParams.get('login_hint')).toBeNull();
    const p = await b.request('/profile');
    expect(p.json).toEqual({ subject: 'user_42', me: { ok: true, sub: 'user_42' } });
  });

  it('a refused login answers 400 and leaves the user logged out', async () => {
    const sample = await start();
    const b = new Browser(sample.url);
    const start1 = await b.request('/login?user=deny', { accept: 'text/html' });
    const callback = await browserlessLogin(start1.location!);
    const r = await b.request(callback.pathname + callback.search);
    expect(r.status).toBe(400);
    expect(r.json.error).toBe('access_denied');
    expect((await b.request('/profile')).status).toBe(401);
  });

  it('refuses to start without its required configuration', async () => {
    await expect(startExpressSample({ PORT: '0' })).rejects.toThrow(
      /AUTHORIZE_URL, TOKEN_URL, CLIENT_ID, API_URL/,
    );
    await expect(startExpressSample(envFor({ COOKIE_SECRET: 'short' }))).rejects.toThrow(/COOKIE_SECRET/);
  });
});

import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type RunningAuthorizationServer, startAuthorizationServer } from '@keyfob/authorization-server';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningExpressSample, startExpressSample } from '../src/app.js';

/**
 * The sample's login in a real browser: Debian's chromium, driven by playwright-core (no browser download),
 * against the real authorization server. It checks what a redirect-following fetch cannot: that the state
 * cookie (SameSite=Lax, Path=/callback) comes back across the provider's cross-site redirect, its lifetime,
 * and the logout form (and that another site cannot log the user out).
 *
 * The app is served as http://localhost:PORT and the provider as http://127.0.0.1:PORT: two different sites,
 * so SameSite applies as it would between app.example.com and auth.example.net.
 */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const HAS_CHROMIUM = existsSync(CHROMIUM);
const IN_CI = process.env.CI === 'true' || process.env.CI === '1';
const ARTIFACTS = fileURLToPath(new URL('../test-artifacts/', import.meta.url));
const COOKIE_SECRET = 'browser-cookie-secret-0123456789abcdef0123456789';
const LAUNCH_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // "localhost" is the loopback interface, never a lookup.
  '--host-resolver-rules=MAP localhost 127.0.0.1',
];

it('chromium is available (required in CI; the browser test is skipped elsewhere without it)', () => {
  if (IN_CI) expect(HAS_CHROMIUM, `${CHROMIUM} is missing: .ci/run installs Debian's chromium`).toBe(true);
  else if (!HAS_CHROMIUM) console.warn(`login.browser.test: ${CHROMIUM} not found, browser test skipped`);
});

/** A free loopback port (the sample's redirect URI needs it before the sample starts). */
async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

describe.skipIf(!HAS_CHROMIUM)('express-sample login in headless Chromium', () => {
  let server: RunningAuthorizationServer;
  let sample: RunningExpressSample;
  let context: BrowserContext;
  let page: Page;
  let profileDir: string;
  let evil: Server;
  let evilUrl: string;
  let step = 0;

  const shot = async (name: string) => {
    step += 1;
    await page.screenshot({
      path: join(ARTIFACTS, `${String(step).padStart(2, '0')}-${name}.png`),
      fullPage: true,
    });
  };
  /** The browser's cookies for the app (every path). */
  const cookies = async () => (await context.cookies()).filter((c) => c.domain === 'localhost');

  beforeAll(async () => {
    await mkdir(ARTIFACTS, { recursive: true });
    server = await startAuthorizationServer();
    const port = await freePort();
    sample = await startExpressSample({
      AUTHORIZE_URL: server.authorizeUrl,
      TOKEN_URL: server.tokenUrl,
      REVOCATION_URL: server.revocationUrl,
      CLIENT_ID: 'web-app',
      CLIENT_SECRET: 'web-app-secret',
      API_URL: server.apiUrl,
      HOST: '127.0.0.1',
      PORT: String(port),
      PUBLIC_URL: `http://localhost:${port}`,
      COOKIE_SECRET,
    });
    // Another site, with a form that tries to log the user out of the sample.
    evil = createServer((_req, res) => {
      res.setHeader('content-type', 'text/html');
      res.end(
        `<!DOCTYPE html><form id="f" method="post" action="${sample.url}/logout"><button>Win a prize</button></form>`,
      );
    });
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
    evilUrl = `http://127.0.0.1:${(evil.address() as AddressInfo).port}/`;
    profileDir = await mkdtemp(join(tmpdir(), 'keyfob-chromium-'));
    context = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: LAUNCH_ARGS,
      viewport: { width: 900, height: 600 },
      timeout: 60_000,
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(20_000);
  }, 120_000);

  afterAll(async () => {
    await context?.close();
    if (profileDir) await rm(profileDir, { recursive: true, force: true });
    await new Promise<void>((resolve) => (evil ? evil.close(() => resolve()) : resolve()));
    await sample?.close();
    await server?.close();
  });

  it('logs in across the provider’s redirect, shows the profile from the API, and logs out with the form', async () => {
    expect(sample.url).toMatch(/^http:\/\/localhost:\d+$/);
    expect(new URL(server.authorizeUrl).hostname).toBe('127.0.0.1'); // another site than the app

    await page.goto(`${sample.url}/`);
    await expect(page.locator('input[name="user"]').count()).resolves.toBe(1);
    await shot('home-signed-out');

    // Start the login, but hold the browser before the provider to look at the state cookie: the app's 302 is
    // handed to the browser as a page (same headers, Set-Cookie included), so it does not follow the redirect.
    await page.route(`${sample.url}/login*`, async (route) => {
      const response = await route.fetch({ maxRedirects: 0 });
      const headers = { ...response.headers() };
      delete headers.location;
      await route.fulfill({
        response,
        status: 200,
        headers,
        body: `held: ${response.status()} ${response.headers().location}`,
      });
    });
    const before = Date.now();
    await page.goto(`${sample.url}/login?user=alice`);
    await page.unrouteAll();
    const held = (await page.textContent('body')) ?? '';
    expect(held).toMatch(/^held: 302 /);
    const authorizeUrl = held.slice('held: 302 '.length);
    expect(authorizeUrl.startsWith(server.authorizeUrl)).toBe(true);
    await shot('held-before-provider');
    const state = (await cookies()).filter((c) => c.name.startsWith('keyfob_login_'));
    expect(state).toHaveLength(1);
    expect(state[0]).toMatchObject({ httpOnly: true, sameSite: 'Lax', path: '/callback', secure: false });
    // Max-Age = loginTimeoutMs (10 minutes by default): a login can take that long, not forever.
    const lifetimeS = state[0]!.expires - before / 1000;
    expect(lifetimeS).toBeGreaterThan(540);
    expect(lifetimeS).toBeLessThanOrEqual(601);

    // Now let the browser go to the provider; it redirects back (cross-site, top-level GET) to the callback,
    // and the browser must send the SameSite=Lax state cookie with it.
    const callbackCookies: string[] = [];
    page.on('request', (r) => {
      if (r.url().startsWith(`${sample.url}/callback`)) {
        void r.allHeaders().then((h) => callbackCookies.push(h.cookie ?? ''));
      }
    });
    await page.goto(authorizeUrl);
    await page.waitForURL(`${sample.url}/`);
    expect(callbackCookies).toHaveLength(1);
    expect(callbackCookies[0]).toContain(`${state[0]!.name}=`);
    expect(await page.textContent('body')).toMatch(/Signed in \(subject /);
    const after = await cookies();
    expect(after.filter((c) => c.name.startsWith('keyfob_login_'))).toEqual([]); // used once, then cleared
    expect(after.find((c) => c.name === 'sample_session')).toMatchObject({ httpOnly: true, sameSite: 'Lax' });
    await shot('home-signed-in');

    await page.click('a[href="/profile"]');
    await page.waitForURL(`${sample.url}/profile`);
    expect(await page.textContent('#sub')).toBe('alice'); // the API saw alice's token
    await shot('profile');

    // Another site's form cannot log the user out (Sec-Fetch-Site: cross-site -> 403).
    await page.goto(evilUrl);
    const [evilResponse] = await Promise.all([
      page.waitForResponse((r) => r.url() === `${sample.url}/logout`),
      page.click('button'),
    ]);
    expect(evilResponse.status()).toBe(403);
    await shot('cross-site-logout-refused');
    const still = await page.request.get(`${sample.url}/profile`, {
      headers: { accept: 'application/json' },
    });
    expect(still.status()).toBe(200);
    expect((await still.json()).me).toEqual({ ok: true, sub: 'alice' });

    // The app's own logout form (POST, same origin).
    await page.goto(`${sample.url}/`);
    await page.click('form[action="/logout"] button');
    await page.waitForURL(`${sample.url}/`);
    await expect(page.locator('input[name="user"]').count()).resolves.toBe(1);
    expect((await cookies()).find((c) => c.name === 'sample_session')).toBeUndefined();
    await shot('signed-out');
    const gone = await page.request.get(`${sample.url}/profile`, { headers: { accept: 'application/json' } });
    expect(gone.status()).toBe(401);

    // Signed out, a page that needs the user's token sends the browser through the login and back to it
    // (returnTo). The app's logout ended the app session and revoked the tokens, not the provider's own session
    // (single sign-on), so the provider signs alice in again without asking.
    await page.goto(`${sample.url}/profile`);
    await page.waitForURL(`${sample.url}/profile`);
    expect(await page.textContent('#sub')).toBe('alice');
    expect((await cookies()).find((c) => c.name === 'sample_session')).toBeDefined();
    await shot('profile-after-guard-redirect');
  }, 120_000);
});

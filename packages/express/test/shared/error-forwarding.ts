import {
  authorizationCode,
  clientCredentials,
  KeyfobError,
  LoginRequiredError,
  TokenManager,
} from '@keyfob/core';
import {
  asyncHandler,
  authorizationCodeRouter,
  getKeyfob,
  hasKeyfob,
  keyfobErrorHandler,
  requireUserToken,
  tokenMiddleware,
} from '@keyfob/express';
import { leakScan, type ProviderServer, startServer, type TestServer } from '@keyfob/testing';
import type { NextFunction, Request, Response } from 'express';
import express from 'express';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Browser, type RunningApp, startApp } from '../helpers.js';

const GOOD_SECRET = 'right-secret-value-0123456789';
const WRONG_SECRET = 'wrong-secret-value-9876543210';
const COOKIE_SECRET = 'forwarding-cookie-secret-0123456789abcdef';

/**
 * Errors of every keyfob middleware, and of route handlers wrapped in `asyncHandler`, reach `next(err)`:
 * run once with Express 5 and once with Express 4 (vitest's `express4` project resolves `express` to it).
 */
export function errorForwardingSuite(major: 4 | 5): void {
  describe(`errors reach next(err) on Express ${major}`, () => {
    let tokenEndpoint: TestServer;
    let api: ProviderServer | TestServer;
    let app: RunningApp;
    const managers: TokenManager[] = [];
    /** Every error seen by a recording error handler mounted before keyfobErrorHandler. */
    const seen: unknown[] = [];
    let tokenReply: () => { status: number; headers?: Record<string, string>; body?: unknown };

    beforeEach(async () => {
      seen.length = 0;
      tokenReply = () => ({
        status: 401,
        body: { error: 'invalid_client', error_description: 'Bad client' },
      });
      tokenEndpoint = await startServer(() => tokenReply());
      api = await startServer(() => ({ status: 200, body: { hello: 'world' } }));
      const service = new TokenManager({
        tokenUrl: `${tokenEndpoint.url}/token`,
        grant: clientCredentials({ clientId: 'svc', clientSecret: WRONG_SECRET }),
        retries: 0,
      });
      managers.push(service);
      app = await startApp((origin) => {
        const grant = authorizationCode({
          clientId: 'web',
          clientSecret: GOOD_SECRET,
          redirectUri: `${origin}/callback`,
          authorizeUrl: `${tokenEndpoint.url}/authorize`,
        });
        const users = new TokenManager({ tokenUrl: `${tokenEndpoint.url}/token`, grant, retries: 0 });
        managers.push(users);
        const failingSubject = async (): Promise<string> => {
          throw new Error('session store down');
        };
        const a = express();
        a.get('/health', (_req, res) => {
          res.json({ ok: true });
        });
        // The README's first example, with asyncHandler (Express 4 needs it; Express 5 does not mind).
        a.use('/api', tokenMiddleware(service));
        a.get(
          '/api/hello',
          asyncHandler(async (req, res) => {
            const r = await fetch(`${api.url}/hello`, {
              headers: { authorization: await getKeyfob(req).getAuthorizationHeader() },
            });
            res.status(r.status).json(await r.json());
          }),
        );
        a.get('/resolver-fails', tokenMiddleware(service, { subject: failingSubject }), (_req, res) => {
          res.json({ reached: true });
        });
        a.get(
          '/guard-resolver-fails',
          requireUserToken({ manager: users, subject: failingSubject }),
          (_req, res) => {
            res.json({ reached: true });
          },
        );
        a.get('/guard', requireUserToken({ manager: users, subject: () => 'nobody' }), (_req, res) => {
          res.json({ reached: true });
        });
        a.get('/login-required', () => {
          throw new LoginRequiredError('No token set is stored for this subject.');
        });
        a.get('/no-middleware', (req, res) => {
          res.json({ has: hasKeyfob(req), subject: getKeyfob(req).subject ?? null });
        });
        a.use(
          authorizationCodeRouter({
            manager: users,
            grant,
            subject: failingSubject,
            cookieSecret: COOKIE_SECRET,
            handleErrors: false,
          }),
        );
        a.use((err: unknown, _req: Request, _res: Response, next: NextFunction) => {
          seen.push(err);
          next(err);
        });
        a.use(keyfobErrorHandler());
        a.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
          res.status(500).json({ passedThrough: err instanceof Error ? err.message : String(err) });
        });
        return a;
      });
    });

    afterEach(async () => {
      await app.close();
      for (const m of managers.splice(0)) await m.close();
      await tokenEndpoint.close();
      await api.close();
    });

    it(`runs Express ${major}`, () => {
      // `express.query` is gone in Express 5.
      expect(typeof (express as unknown as { query?: unknown }).query).toBe(
        major === 4 ? 'function' : 'undefined',
      );
    });

    it('token endpoint rejects the client credentials: the caller gets 502 with code and hint, the process lives on', async () => {
      const b = new Browser(app.origin);
      const r = await b.get('/api/hello');
      expect(r.status).toBe(502);
      expect(r.json).toMatchObject({
        error: 'bad_gateway',
        code: 'KEYFOB_TOKEN_ENDPOINT',
        upstreamStatus: 401,
        oauthError: 'invalid_client',
      });
      expect(r.json.hint).toMatch(/client/i);
      expect(leakScan(r.text, [WRONG_SECRET])).toEqual([]);
      expect(r.text).not.toMatch(/\n\s+at /);
      expect(seen).toHaveLength(1);
      expect(seen[0]).toBeInstanceOf(KeyfobError);
      expect((await b.get('/health')).json).toEqual({ ok: true });
      // HTML for browsers, still no secret.
      const html = await b.get('/api/hello', 'text/html');
      expect(html.status).toBe(502);
      expect(html.text).toContain('KEYFOB_TOKEN_ENDPOINT');
      expect(html.text).not.toContain(WRONG_SECRET);
    });

    it('token endpoint unavailable (503, Retry-After): the caller gets 503 with Retry-After', async () => {
      tokenReply = () => ({ status: 503, headers: { 'retry-after': '7' }, body: 'down' });
      const r = await new Browser(app.origin).get('/api/hello');
      expect(r.status).toBe(503);
      expect(r.headers.get('retry-after')).toBe('7');
      expect(r.json).toMatchObject({
        error: 'service_unavailable',
        code: 'KEYFOB_TOKEN_ENDPOINT',
        upstreamStatus: 503,
      });
    });

    it('a subject resolver that rejects, in tokenMiddleware and requireUserToken, reaches next(err)', async () => {
      const b = new Browser(app.origin);
      for (const path of ['/resolver-fails', '/guard-resolver-fails']) {
        const r = await b.get(path);
        expect(r.status, path).toBe(500);
        expect(r.json, path).toEqual({ passedThrough: 'session store down' });
      }
      expect(seen).toHaveLength(2);
    });

    it('the router’s own errors reach next(err) with handleErrors: false (login, callback, logout)', async () => {
      const b = new Browser(app.origin);
      const callback = await b.get('/callback?state=forged&code=x');
      expect(callback.status).toBe(400);
      expect(callback.json).toMatchObject({ error: 'invalid_state', code: 'KEYFOB_AUTHORIZATION_CALLBACK' });
      const login = await b.get('/login');
      expect(login.json).toEqual({ passedThrough: 'session store down' });
      const logout = await b.post('/logout');
      expect(logout.json).toEqual({ passedThrough: 'session store down' });
      expect(seen).toHaveLength(3);
    });

    it('a user who must log in is the caller’s concern: 401 login_required', async () => {
      const b = new Browser(app.origin);
      const guard = await b.get('/guard');
      expect(guard.status).toBe(401);
      expect(guard.json.error).toBe('login_required');
      const thrown = await b.get('/login-required');
      expect(thrown.status).toBe(401);
      expect(thrown.json).toMatchObject({ error: 'login_required', code: 'KEYFOB_LOGIN_REQUIRED' });
    });

    it('getKeyfob(req) without a keyfob middleware: a ConfigurationError naming the middleware', async () => {
      const r = await new Browser(app.origin).get('/no-middleware');
      expect(r.status).toBe(500);
      expect(r.json).toMatchObject({ error: 'server_error', code: 'KEYFOB_CONFIGURATION' });
      expect(seen).toHaveLength(1);
      expect((seen[0] as Error).message).toMatch(/tokenMiddleware\(manager\).*requireUserToken\(\)/);
    });
  });
}

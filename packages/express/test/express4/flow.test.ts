import {
  browserlessLogin,
  type RunningAuthorizationServer,
  startAuthorizationServer,
} from '@keyfob/authorization-server';
import { authorizationCode, TokenManager } from '@keyfob/core';
import { authorizationCodeRouter, getKeyfob, keyfobErrorHandler, tokenMiddleware } from '@keyfob/express';
import express from 'express';
import express4 from 'express4';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser, type RunningApp, startApp } from '../helpers.js';

// Express 4 does not catch rejected promises: handlers here pass errors to next() themselves.
describe('Express 4 (peer range ^4.21)', () => {
  let server: RunningAuthorizationServer;
  let app: RunningApp;
  let manager: TokenManager;

  beforeAll(async () => {
    server = await startAuthorizationServer();
    app = await startApp((origin) => {
      const grant = authorizationCode({
        clientId: 'web-app',
        clientSecret: 'web-app-secret',
        clientAuth: 'body', // web-app is registered for client_secret_post
        redirectUri: `${origin}/auth/callback`,
        authorizeUrl: server.authorizeUrl,
        revocationUrl: server.revocationUrl,
        scope: 'openid offline_access api:read',
      });
      manager = new TokenManager({ tokenUrl: server.tokenUrl, grant, retries: 0 });
      const router = authorizationCodeRouter({
        manager,
        grant,
        subject: (req) => /(?:^|;\s*)uid=([^;]+)/.exec(req.headers.cookie ?? '')?.[1],
        cookieSecret: ['new-secret-0123456789abcdef0123456789', 'old-secret-0123456789abcdef0123456789'],
        callbackPath: '/callback',
        loginUrl: '/auth/login',
        userIdParam: 'login_hint',
      });
      const a = express4();
      a.use('/auth', router);
      a.get('/me', router.requireUserToken(), (req, res, next) => {
        getKeyfob(req)
          .getAuthorizationHeader()
          .then((authorization) => fetch(`${server.apiUrl}/me`, { headers: { authorization } }))
          .then(async (r) => res.status(r.status).json(await r.json()))
          .catch(next);
      });
      a.get('/svc', tokenMiddleware(manager, { subject: () => 'nobody' }), (req, res, next) => {
        getKeyfob(req)
          .getToken()
          .then(() => res.json({ ok: true }))
          .catch(next);
      });
      a.use(keyfobErrorHandler({ loginUrl: '/auth/login' }));
      return a;
    });
  });

  afterAll(async () => {
    await app.close();
    await manager.close();
    await server.close();
  });

  it('resolves express to Express 4 for the package source too', () => {
    expect(express).toBe(express4);
    expect(typeof (express4 as unknown as { query?: unknown }).query).toBe('function'); // gone in Express 5
  });

  it('runs the login, the guard, the error mapping and logout', async () => {
    const b = new Browser(app.origin);
    const guard = await b.get('/me', 'text/html');
    expect(guard.status).toBe(302);
    expect(guard.location).toBe('/auth/login?returnTo=%2Fme');

    b.setCookie('uid', 'olga');
    const start = await b.get(guard.location!, 'text/html');
    expect(start.status).toBe(302);
    expect(new URL(start.location!).searchParams.get('login_hint')).toBe('olga');
    expect(start.setCookies[0]!.attributes.path).toBe('/auth/callback');
    const callback = await browserlessLogin(start.location!);
    const done = await b.get(callback.pathname + callback.search, 'text/html');
    expect(done.status).toBe(302);
    expect(done.location).toBe('/me');
    const me = await b.get('/me');
    expect(me.json).toEqual({ ok: true, sub: 'olga' });

    const forged = await b.get('/auth/callback?state=nope&code=x');
    expect(forged.status).toBe(400);
    expect(forged.json.error).toBe('invalid_state');

    const svc = await b.get('/svc');
    expect(svc.status).toBe(401);
    expect(svc.json.error).toBe('login_required');

    expect((await b.post('/auth/logout')).status).toBe(204);
    b.jar.delete('uid');
    expect((await b.get('/me')).status).toBe(401);
  });
});

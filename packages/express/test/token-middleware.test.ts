import { inspect } from 'node:util';
import {
  clientCredentials,
  KeyfobError,
  LoginRequiredError,
  TokenEndpointError,
  TokenManager,
} from '@keyfob/core';
import {
  AuthorizationCallbackError,
  errorAnswer,
  getKeyfob,
  keyfobErrorHandler,
  tokenMiddleware,
} from '@keyfob/express';
import { genericClientCredentials, type ProviderServer } from '@keyfob/testing';
import express from 'express';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Browser, type RunningApp, startApp } from './helpers.js';

const SECRET = 'cc-secret-value-1234';

describe('tokenMiddleware with a client-credentials provider', () => {
  let provider: ProviderServer;
  let manager: TokenManager;
  let app: RunningApp;
  const logged: string[] = [];

  beforeEach(async () => {
    logged.length = 0;
    provider = await genericClientCredentials({ clientId: 'svc', clientSecret: SECRET, expiresIn: 3600 });
    manager = new TokenManager({
      tokenUrl: provider.tokenUrl,
      grant: clientCredentials({ clientId: 'svc', clientSecret: SECRET, scope: 'read' }),
      retries: 0,
    });
    app = await startApp(() => {
      const a = express();
      a.use(tokenMiddleware(manager));
      a.get('/hello', async (req, res) => {
        const r = await fetch(`${provider.apiUrl}/hello`, {
          headers: { authorization: await getKeyfob(req).getAuthorizationHeader() },
        });
        res.status(r.status).json({ upstream: await r.json(), subject: getKeyfob(req).subject ?? null });
      });
      a.get('/retry', async (req, res) => {
        // The documented 401 pattern: invalidate exactly the rejected token, retry once.
        let token = await getKeyfob(req).getToken();
        let r = await fetch(`${provider.apiUrl}/x`, {
          headers: { authorization: `Bearer ${token.accessToken}` },
        });
        if (r.status === 401) {
          await r.body?.cancel();
          await getKeyfob(req).invalidate(token);
          token = await getKeyfob(req).getToken();
          r = await fetch(`${provider.apiUrl}/x`, {
            headers: { authorization: `Bearer ${token.accessToken}` },
          });
        }
        res.status(r.status).json(await r.json());
      });
      a.get('/print', (req, res) => {
        res.json({ printed: `${inspect(req.keyfob)} ${JSON.stringify(req.keyfob)}` });
      });
      a.get('/login-needed', () => {
        throw new LoginRequiredError('No token set is stored for subject "u".', { subject: 'u' });
      });
      a.get('/other-error', () => {
        throw new Error('not ours');
      });
      const users = express.Router();
      users.use(tokenMiddleware(manager, { subject: (req) => req.get('x-user') }));
      users.get('/who', async (req, res) => {
        const token = await getKeyfob(req).getToken();
        res.json({ subject: getKeyfob(req).subject ?? null, fp: token.accessToken.slice(-6) });
      });
      a.use('/users', users);
      a.use(keyfobErrorHandler({ logger: { warn: (m) => logged.push(m), error: (m) => logged.push(m) } }));
      a.use((err: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
        res.status(418).json({ passedThrough: err instanceof Error ? err.message : String(err) });
      });
      return a;
    });
  });

  afterEach(async () => {
    await app.close();
    await manager.close();
    await provider.close();
  });

  it('gives route handlers the service token, cached across requests', async () => {
    const b = new Browser(app.origin);
    const [r1, r2, r3] = await Promise.all([b.get('/hello'), b.get('/hello'), b.get('/hello')]);
    for (const r of [r1!, r2!, r3!]) {
      expect(r.status).toBe(200);
      expect(r.json).toMatchObject({ upstream: { ok: true, scope: 'read' }, subject: null });
    }
    expect(provider.tokenRequests()).toHaveLength(1);
    expect(provider.tokenRequests()[0]!.params.grant_type).toBe('client_credentials');
  });

  it('binds the subject from subject(req); no subject means the service token', async () => {
    const b = new Browser(app.origin);
    const a = await b.request('/users/who', { headers: { 'x-user': 'alice' } });
    const c = await b.request('/users/who', { headers: { 'x-user': 'carl' } });
    const none = await b.get('/users/who');
    expect(a.json.subject).toBe('alice');
    expect(c.json.subject).toBe('carl');
    expect(none.json.subject).toBeNull();
    // Subjects are part of the cache key: three different tokens.
    expect(new Set([a.json.fp, c.json.fp, none.json.fp]).size).toBe(3);
    expect(provider.tokenRequests()).toHaveLength(3);
  });

  it('invalidate + retry once after an upstream 401 gets a new token', async () => {
    const b = new Browser(app.origin);
    expect((await b.get('/retry')).status).toBe(200);
    provider.issuer.revokeAll();
    const r = await b.get('/retry');
    expect(r.status).toBe(200);
    expect(provider.tokenRequests()).toHaveLength(2);
  });

  it('maps a failing token endpoint to 502 JSON with code and hint, and no secret', async () => {
    provider.override = () => ({
      status: 401,
      body: { error: 'invalid_client', error_description: 'Bad credentials' },
    });
    const r = await new Browser(app.origin).get('/hello');
    expect(r.status).toBe(502);
    expect(r.json).toMatchObject({
      error: 'bad_gateway',
      code: 'KEYFOB_TOKEN_ENDPOINT',
      upstreamStatus: 401,
      oauthError: 'invalid_client',
    });
    expect(typeof r.json.hint).toBe('string');
    expect(r.text).not.toContain(SECRET);
    expect(r.text).not.toContain(Buffer.from(`svc:${SECRET}`).toString('base64'));
    expect(r.text).not.toMatch(/\n\s+at /);
    expect(logged.some((l) => l.includes('KEYFOB_TOKEN_ENDPOINT'))).toBe(true);
    expect(logged.join('\n')).not.toContain(SECRET);
  });

  it("echoes the provider's OAuth error only as a well-formed RFC 6749 code (NQSCHAR, 64 characters at most)", async () => {
    const b = new Browser(app.origin);
    const answer = async (error: unknown) => {
      provider.override = () => ({ status: 400, body: { error, error_description: 'd' } });
      const r = await b.get('/hello');
      expect(r.status).toBe(502);
      expect(r.json).toMatchObject({
        error: 'bad_gateway',
        code: 'KEYFOB_TOKEN_ENDPOINT',
        upstreamStatus: 400,
      });
      return r;
    };
    const refused = [
      'invalid_"client"',
      'back\\slash',
      'line\r\nX-Injected: 1',
      'bell\u0007',
      'tab\there',
      'del\u007f',
      'caf\u00e9',
      'x'.repeat(65),
      'a'.repeat(5_000),
      '',
    ];
    for (const error of refused) {
      const r = await answer(error);
      expect(r.json.oauthError, JSON.stringify(error)).toBe('invalid_error_code');
      if (error !== '') expect(r.text).not.toContain(error.slice(0, 40));
    }
    // Codes within the character set go back as they are (spaces, punctuation, 64 characters).
    for (const error of ['invalid_client', 'slow_down', "weird but <valid> 'code' #1!", 'y'.repeat(64)]) {
      expect((await answer(error)).json.oauthError).toBe(error);
    }
    // No error code at all (or not a string): no oauthError.
    for (const error of [undefined, 42, { nested: true }]) {
      expect((await answer(error)).json).not.toHaveProperty('oauthError');
    }
  });

  it('maps a token endpoint answering HTML to 502 (unusable response)', async () => {
    provider.override = () => ({
      status: 200,
      headers: { 'content-type': 'text/html' },
      body: '<html>login</html>',
    });
    const r = await new Browser(app.origin).get('/hello');
    expect(r.status).toBe(502);
    expect(r.json.code).toBe('KEYFOB_TOKEN_RESPONSE');
  });

  it('LoginRequiredError -> 401 JSON; other errors pass through untouched', async () => {
    const b = new Browser(app.origin);
    const r = await b.get('/login-needed');
    expect(r.status).toBe(401);
    expect(r.json).toMatchObject({ error: 'login_required', code: 'KEYFOB_LOGIN_REQUIRED' });
    const o = await b.get('/other-error');
    expect(o.status).toBe(418);
    expect(o.json).toEqual({ passedThrough: 'not ours' });
  });

  it('prints no token', async () => {
    const b = new Browser(app.origin);
    await b.get('/hello');
    const token = await manager.getToken();
    const r = await b.get('/print');
    expect(r.json.printed).toContain('KeyfobRequestContext');
    expect(r.json.printed).not.toContain(token.accessToken);
  });

  it('redirects browsers to loginUrl when a LoginRequiredError reaches a handler configured with one', async () => {
    const other = await startApp(() => {
      const a = express();
      a.get('/p', () => {
        throw new LoginRequiredError('No token set.', {});
      });
      a.use(keyfobErrorHandler({ loginUrl: '/auth/login' }));
      return a;
    });
    try {
      const b = new Browser(other.origin);
      const html = await b.get('/p?x=1', 'text/html');
      expect(html.status).toBe(302);
      expect(html.location).toBe('/auth/login?returnTo=%2Fp%3Fx%3D1');
      expect((await b.get('/p')).status).toBe(401);
    } finally {
      await other.close();
    }
  });

  it('rejects a missing manager and a non-function subject', () => {
    expect(() => tokenMiddleware(undefined as never)).toThrow(KeyfobError);
    expect(() => tokenMiddleware(manager, { subject: 'alice' as never })).toThrow(
      /subject must be a function/,
    );
  });
});

describe('errorAnswer: provider text in the body', () => {
  it('holds error codes set on hand-built errors to the same rules', () => {
    const endpoint = new TokenEndpointError('refused', { status: 400, error: 'bad "code"\n' });
    expect(errorAnswer(endpoint).body.oauthError).toBe('invalid_error_code');
    expect(
      errorAnswer(new TokenEndpointError('refused', { status: 400, error: 'invalid_scope' })).body.oauthError,
    ).toBe('invalid_scope');
    const callback = new AuthorizationCallbackError('provider_error', 'refused', {
      providerError: 'Your account is locked, call 555-0100',
    });
    expect(errorAnswer(callback).body.providerError).toBe('invalid_error_code');
    const denied = new AuthorizationCallbackError('access_denied', 'denied', {
      providerError: 'access_denied',
    });
    expect(errorAnswer(denied).body.providerError).toBe('access_denied');
    expect(errorAnswer(new AuthorizationCallbackError('missing_code', 'no code')).body).not.toHaveProperty(
      'providerError',
    );
  });
});

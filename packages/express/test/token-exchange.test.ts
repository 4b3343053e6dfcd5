import { inspect } from 'node:util';
import { type RunningAuthorizationServer, startAuthorizationServer } from '@keyfob/authorization-server';
import { clientCredentials, TokenManager, tokenExchange } from '@keyfob/core';
import { bearerToken, getKeyfob, keyfobErrorHandler, tokenMiddleware } from '@keyfob/express';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser, type RunningApp, startApp } from './helpers.js';

const EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';

describe('tokenMiddleware(exchange, { subjectToken: bearerToken }): on-behalf-of calls (RFC 8693)', () => {
  let server: RunningAuthorizationServer;
  let exchange: TokenManager;
  let callers: TokenManager;
  let app: RunningApp;
  const printed: string[] = [];

  /** A fresh access token of a caller (the service-basic client), as the incoming request would carry. */
  const callerToken = async () => (await callers.getToken({ forceRefresh: true })).accessToken;
  const exchanges = () => server.stats.tokenRequestsByGrant[EXCHANGE] ?? 0;

  beforeAll(async () => {
    server = await startAuthorizationServer();
    callers = new TokenManager({
      tokenUrl: server.tokenUrl,
      grant: clientCredentials({ clientId: 'service-basic', clientSecret: 'service-basic-secret' }),
    });
    exchange = new TokenManager({
      tokenUrl: server.tokenUrl,
      grant: tokenExchange({
        clientId: 'service-exchange',
        clientSecret: 'service-exchange-secret',
        audience: server.apiUrl,
      }),
      retries: 0,
    });
    app = await startApp(() => {
      const a = express();
      a.use('/orders', tokenMiddleware(exchange, { subjectToken: bearerToken })); // the one line
      a.get('/orders/hello', async (req, res) => {
        printed.push(`${inspect(req.keyfob)} ${JSON.stringify(req.keyfob)}`);
        const r = await fetch(`${server.apiUrl}/hello`, {
          headers: { authorization: await getKeyfob(req).getAuthorizationHeader() },
        });
        res.status(r.status).json(await r.json());
      });
      a.use(keyfobErrorHandler());
      return a;
    });
  });

  afterAll(async () => {
    await app.close();
    await exchange.close();
    await callers.close();
    await server.close();
  });

  it('exchanges the caller’s bearer token once per token, and calls the API on the caller’s behalf', async () => {
    const before = exchanges();
    const alice = await callerToken();
    const b = new Browser(app.origin);
    const first = await b.request('/orders/hello', { headers: { authorization: `Bearer ${alice}` } });
    expect(first.status).toBe(200);
    expect(first.json).toMatchObject({ ok: true, sub: 'service-basic', client_id: 'service-exchange' });
    const again = await b.request('/orders/hello', { headers: { authorization: `bearer ${alice}` } });
    expect(again.status).toBe(200);
    expect(exchanges() - before).toBe(1); // cached under a hash of alice's token
    const other = await callerToken();
    expect(other).not.toBe(alice);
    expect((await b.request('/orders/hello', { headers: { authorization: `Bearer ${other}` } })).status).toBe(
      200,
    );
    expect(exchanges() - before).toBe(2);
    for (const line of printed) {
      expect(line).not.toContain(alice);
      expect(line).not.toContain(other);
    }
  });

  it('a request without a bearer token: 401 with the Bearer challenge, no exchange', async () => {
    const before = exchanges();
    const b = new Browser(app.origin);
    const variants: Record<string, string>[] = [
      {},
      { authorization: 'Basic dXNlcjpwYXNz' },
      { authorization: 'Bearer ' },
    ];
    for (const headers of variants) {
      const r = await b.request('/orders/hello', { headers });
      expect(r.status).toBe(401);
      expect(r.headers.get('www-authenticate')).toBe('Bearer');
      expect(r.json.error).toBe('unauthorized');
    }
    expect(exchanges()).toBe(before);
  });

  it('a caller token the token endpoint refuses: the caller gets 401 invalid_token, not a 502', async () => {
    const forged = 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYWxsb3J5In0.forged-signature-value';
    const r = await new Browser(app.origin).request('/orders/hello', {
      headers: { authorization: `Bearer ${forged}` },
    });
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
    expect(r.json).toMatchObject({ error: 'invalid_token', code: 'KEYFOB_TOKEN_ENDPOINT' });
    expect(r.text).not.toContain(forged);
    expect(r.text).not.toContain('service-exchange-secret');
  });

  it('a caller JWT whose exp has passed: 401 invalid_token, and nothing is sent to the token endpoint', async () => {
    const before = exchanges();
    const claims = { sub: 'alice', exp: Math.floor(Date.now() / 1000) - 60 };
    const expired = `eyJhbGciOiJub25lIn0.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.sig-value`;
    const r = await new Browser(app.origin).request('/orders/hello', {
      headers: { authorization: `Bearer ${expired}` },
    });
    expect(r.status).toBe(401);
    expect(r.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
    expect(r.json).toMatchObject({ error: 'invalid_token', code: 'KEYFOB_LOGIN_REQUIRED' });
    expect(r.text).not.toContain(expired);
    expect(exchanges()).toBe(before);
  });
});

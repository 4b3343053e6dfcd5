import { generateKeyPairSync } from 'node:crypto';
import { inspect } from 'node:util';
import {
  browserlessLogin,
  type RunningAuthorizationServer,
  startAuthorizationServer,
} from '@keyfob/authorization-server';
import { leakScan, startServer } from '@keyfob/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  authorizationCode,
  clientCredentials,
  isKeyfobError,
  MemoryTokenStore,
  RequestPolicy,
  TokenManager,
  type TokenManagerOptions,
} from '../src/index.js';

/**
 * DPoP (RFC 9449) end to end: oidc-provider's DPoP feature issues the tokens, the authorization
 * server's DPoP-only API verifies every proof with jose (signature, htm/htu, iat, jti, ath, cnf.jkt).
 */

let server: RunningAuthorizationServer;
const open: TokenManager[] = [];

beforeAll(async () => {
  server = await startAuthorizationServer({ dpop: {} });
});
afterAll(() => server.close());
afterEach(async () => {
  while (open.length) await open.pop()!.close();
  server.dpop!.tokenEndpointNonce = false;
  server.dpop!.apiNonce = false;
  server.dpop!.reset();
  server.resetStats();
});

const SERVICE = { clientId: 'service-dpop', clientSecret: 'service-dpop-secret' };

function manager(options: Partial<TokenManagerOptions> = {}): TokenManager {
  const m = new TokenManager({
    tokenUrl: server.tokenUrl,
    grant: clientCredentials(SERVICE),
    dpop: true,
    ...options,
  });
  open.push(m);
  return m;
}

function claims(jwt: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString());
}

/** One GET to the DPoP API with the policy's headers (what every adapter does). */
async function callApi(m: TokenManager, path = '/hello'): Promise<{ status: number; body: string }> {
  const policy = new RequestPolicy(m, { origins: [server.issuer] }, { name: 'test' });
  const url = `${server.dpop!.apiUrl}${path}`;
  const attempt = policy.start(url)!;
  const res = await fetch(url, { headers: { ...(await policy.headers(attempt, 'GET', url)) } });
  const body = await res.text();
  if (policy.rejected(attempt, res.status, res.headers) && (await policy.retry(attempt))) {
    const again = await fetch(url, { headers: { ...(await policy.headers(attempt, 'GET', url)) } });
    return { status: again.status, body: await again.text() };
  }
  return { status: res.status, body };
}

describe('DPoP against oidc-provider and a verifying API', () => {
  it('client credentials, no nonce: a DPoP token bound to the manager key, accepted by the API', async () => {
    const m = manager();
    const token = await m.getToken();
    expect(token.tokenType).toBe('DPoP');
    expect((claims(token.accessToken).cnf as { jkt: string }).jkt).toBe(m.dpop!.thumbprint);
    expect(await m.getAuthorizationHeader()).toBe(`DPoP ${token.accessToken}`);
    const res = await callApi(m);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body).jkt).toBe(m.dpop!.thumbprint);
    expect(server.stats.tokenRequests).toBe(1);
  });

  it('token endpoint nonce: the challenge is answered once, the nonce kept for the next request', async () => {
    server.dpop!.tokenEndpointNonce = true;
    const m = manager();
    const first = await m.getToken();
    expect(first.tokenType).toBe('DPoP');
    expect(server.stats.tokenRequests).toBe(2); // use_dpop_nonce, then the answer
    server.resetStats();
    await m.getToken({ forceRefresh: true });
    expect(server.stats.tokenRequests).toBe(1); // the kept nonce is sent at once
    expect((await callApi(m)).status).toBe(200);
  });

  it('a token endpoint whose nonce keeps failing: a TokenEndpointError after exactly two attempts', async () => {
    let calls = 0;
    const endpoint = await startServer(() => {
      calls++;
      return {
        status: 400,
        headers: { 'dpop-nonce': `n${calls}` },
        body: {
          error: 'use_dpop_nonce',
          error_description: 'Authorization server requires nonce in DPoP proof',
        },
      };
    });
    try {
      const m = manager({ tokenUrl: `${endpoint.origin}/token`, retries: 3 });
      const error = await m.getToken().catch((e: unknown) => e);
      expect(isKeyfobError(error)).toBe(true);
      expect((error as { code: string }).code).toBe('KEYFOB_TOKEN_ENDPOINT');
      expect((error as Error).message).toMatch(/nonce/i);
      expect(calls).toBe(2);
      const proofs = endpoint.requests.map((r) => claims(r.headers.dpop as string));
      expect(proofs[0]!.nonce).toBeUndefined();
      expect(proofs[1]!.nonce).toBe('n1');
      expect(proofs[0]!.jti).not.toBe(proofs[1]!.jti);
    } finally {
      await endpoint.close();
    }
  });

  it('a Bearer answer to a DPoP token request is reported, not used', async () => {
    const endpoint = await startServer(() => ({
      body: { access_token: 'plain-bearer-token-value', token_type: 'Bearer', expires_in: 3600 },
    }));
    try {
      const m = manager({ tokenUrl: `${endpoint.origin}/token` });
      const error = await m.getToken().catch((e: unknown) => e);
      expect(isKeyfobError(error)).toBe(true);
      expect((error as { code: string }).code).toBe('KEYFOB_TOKEN_RESPONSE');
      expect((error as Error).message).toMatch(/DPoP/);
      expect((error as Error).message).toMatch(/Bearer/);
      expect(leakScan(error, ['plain-bearer-token-value'])).toEqual([]);
      expect(endpoint.requests[0]!.headers.dpop).toBeTypeOf('string');
    } finally {
      await endpoint.close();
    }
  });

  it('authorization code and a DPoP-bound refresh token: the refresh carries a proof of the same key', async () => {
    server.dpop!.tokenEndpointNonce = true;
    const grant = authorizationCode({
      clientId: 'public-app-dpop',
      redirectUri: 'http://127.0.0.1:43210/callback',
      authorizeUrl: server.authorizeUrl,
      scope: 'openid offline_access api:read',
    });
    const m = manager({ grant });
    const { url, codeVerifier } = grant.authorizationUrl({ extraParams: { login_hint: 'dora' } });
    const callback = await browserlessLogin(url);
    const code = callback.searchParams.get('code')!;
    const first = await grant.exchange(code, { subject: 'dora', ...(codeVerifier ? { codeVerifier } : {}) });
    expect(first.tokenType).toBe('DPoP');
    expect(first.refreshToken).toBeTypeOf('string');
    expect((claims(first.accessToken).cnf as { jkt: string }).jkt).toBe(m.dpop!.thumbprint);
    server.resetStats();
    const renewed = await m.getToken({ subject: 'dora', forceRefresh: true });
    expect(server.stats.tokenRequestsByGrant.refresh_token).toBe(1);
    expect(renewed.accessToken).not.toBe(first.accessToken);
    expect(renewed.tokenType).toBe('DPoP');
    expect((claims(renewed.accessToken).cnf as { jkt: string }).jkt).toBe(m.dpop!.thumbprint);
    const policy = new RequestPolicy(m, { origins: [server.issuer], subject: 'dora' }, { name: 'test' });
    const api = `${server.dpop!.apiUrl}/hello`;
    const attempt = policy.start(api)!;
    const res = await fetch(api, { headers: { ...(await policy.headers(attempt, 'GET', api)) } });
    expect(res.status).toBe(200);
    expect((await res.json()).sub).toBe('dora');
  });

  it('two managers with different keys sharing a store never use each other tokens', async () => {
    const store = new MemoryTokenStore();
    const a = manager({ store });
    const b = manager({ store });
    expect(a.dpop!.thumbprint).not.toBe(b.dpop!.thumbprint);
    const ta = await a.getToken();
    const tb = await b.getToken();
    expect(tb.accessToken).not.toBe(ta.accessToken);
    expect(server.stats.tokenRequests).toBe(2);
    expect((claims(tb.accessToken).cnf as { jkt: string }).jkt).toBe(b.dpop!.thumbprint);
    expect((await callApi(a)).status).toBe(200);
    expect((await callApi(b)).status).toBe(200);
  });

  it('managers sharing the privateKey (PEM) and a store share tokens', async () => {
    const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' })
      .privateKey.export({ format: 'pem', type: 'pkcs8' })
      .toString();
    const store = new MemoryTokenStore();
    const a = manager({ store, dpop: { privateKey: pem } });
    const b = manager({ store, dpop: { privateKey: pem } });
    expect(a.dpop!.thumbprint).toBe(b.dpop!.thumbprint);
    const ta = await a.getToken();
    const tb = await b.getToken();
    expect(tb.accessToken).toBe(ta.accessToken);
    expect(server.stats.tokenRequests).toBe(1);
    expect((await callApi(b)).status).toBe(200);
  });

  it('RS256, PS256 and EdDSA keys work with the server', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const ed = generateKeyPairSync('ed25519').privateKey;
    for (const dpop of [
      { privateKey: rsa },
      { privateKey: rsa, algorithm: 'PS256' as const },
      { privateKey: ed },
    ]) {
      const m = manager({ dpop });
      expect((await m.getToken()).tokenType).toBe('DPoP');
      expect((await callApi(m)).status).toBe(200);
    }
  });

  it('the private key never appears in errors, logs, events, JSON or util.inspect', async () => {
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const pem = key.export({ format: 'pem', type: 'pkcs8' }).toString();
    const d = (key.export({ format: 'jwk' }) as { d: string }).d;
    const secrets = [pem, d, pem.split('\n')[1]!, SERVICE.clientSecret];
    const lines: unknown[] = [];
    const push = (...args: unknown[]) => lines.push(args);
    const events: unknown[] = [];
    const m = manager({
      dpop: { privateKey: pem },
      logger: { debug: push, info: push, warn: push, error: push },
    });
    m.on('tokenFetched', (e) => events.push(e));
    const token = await m.getToken();
    const bad = manager({
      tokenUrl: server.tokenUrl,
      grant: clientCredentials({ clientId: 'service-dpop', clientSecret: 'wrong-secret' }),
      dpop: { privateKey: pem },
      logger: { debug: push, info: push, warn: push, error: push },
      retries: 0,
    });
    bad.on('tokenFailed', (e) => events.push(e));
    const error = await bad.getToken().catch((e: unknown) => e);
    expect(isKeyfobError(error)).toBe(true);
    const badKey = (() => {
      try {
        new TokenManager({
          tokenUrl: server.tokenUrl,
          grant: clientCredentials(SERVICE),
          dpop: { privateKey: `${pem.split('\n').slice(0, 2).join('\n')}\n-----END PRIVATE KEY-----\n` },
        });
      } catch (e) {
        return e;
      }
    })();
    expect(isKeyfobError(badKey)).toBe(true);
    expect(events).toHaveLength(2);
    for (const value of [error, badKey, lines, events, m, m.dpop, token]) {
      expect(leakScan(value, secrets)).toEqual([]);
    }
    expect(inspect(m.dpop)).toContain(m.dpop!.thumbprint);
    expect(JSON.stringify(m)).not.toContain(d);
  });
});

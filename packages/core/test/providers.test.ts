import { airisk, genericClientCredentials, passwordPlatform, riskCloud } from '@keyfob/testing';
import { afterEach, describe, expect, it } from 'vitest';
import {
  authorizationCode,
  clientCredentials,
  passwordGrant,
  staticToken,
  TokenEndpointError,
  TokenManager,
} from '../src/index.js';

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

async function callApi(url: string, header: string) {
  const res = await fetch(url, { headers: { authorization: header } });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('seed providers, emulated as documented', () => {
  it('Risk Cloud: Basic header only, lower-case bearer, one-year token', async () => {
    // A secret with base64 characters: Risk Cloud decodes nothing, so keyfob must not form-encode it.
    const server = await riskCloud({ clientId: 'client-abc', clientSecret: 's3cr+t/with=chars' });
    cleanup.push(() => server.close());
    const tokens = new TokenManager({
      tokenUrl: server.tokenUrl,
      grant: clientCredentials({
        clientId: 'client-abc',
        clientSecret: 's3cr+t/with=chars',
        clientAuth: 'basic-only',
      }),
    });
    cleanup.push(() => tokens.close());
    const token = await tokens.getToken();
    expect(token.tokenType).toBe('Bearer');
    expect(token.scope).toBe('read write');
    expect(token.expiresAt! - Date.now()).toBeGreaterThan(360 * 24 * 3600_000);
    const req = server.tokenRequests()[0]!;
    expect(req.body).toBe('');
    expect(req.headers.authorization).toBe(
      `Basic ${Buffer.from('client-abc:s3cr+t/with=chars').toString('base64')}`,
    );
    const header = await tokens.getAuthorizationHeader();
    expect(header).toBe(`Bearer ${token.accessToken}`);
    expect((await callApi(`${server.apiUrl}/v2/applications`, header)).status).toBe(200);
    await tokens.getToken();
    expect(server.tokenRequests()).toHaveLength(1);
  });

  it("Risk Cloud: 'basic-only' sends no body, so a scope (configured or per call) is a ConfigurationError, not silently dropped", async () => {
    expect(() =>
      clientCredentials({ clientId: 'c', clientSecret: 's', clientAuth: 'basic-only', scope: 'read' }),
    ).toThrow(/'basic-only' sends no request body/);
    const server = await riskCloud({ clientId: 'c', clientSecret: 's' });
    cleanup.push(() => server.close());
    const tokens = new TokenManager({
      tokenUrl: server.tokenUrl,
      grant: clientCredentials({ clientId: 'c', clientSecret: 's', clientAuth: 'basic-only' }),
    });
    cleanup.push(() => tokens.close());
    await expect(tokens.getToken({ scope: 'read' })).rejects.toThrow(/so scope cannot be sent/);
    expect(server.tokenRequests()).toHaveLength(0);
  });

  it('Risk Cloud: a pre-generated Access Key works as a static token', async () => {
    const server = await riskCloud({ clientId: 'c', clientSecret: 's' });
    cleanup.push(() => server.close());
    const key = server.issuer.issue(3600).token;
    const tokens = new TokenManager({ grant: staticToken({ accessToken: key }) });
    expect(await tokens.getAuthorizationHeader()).toBe(`Bearer ${key}`);
    expect(
      (await callApi(`${server.apiUrl}/v2/applications`, await tokens.getAuthorizationHeader())).status,
    ).toBe(200);
  });

  it("a pre-generated access key with expiresAt: served until then on the manager's clock, then a ConfigurationError", async () => {
    let now = Date.UTC(2035, 0, 1);
    const tokens = new TokenManager({
      clock: { now: () => now },
      grant: staticToken({ accessToken: 'access-key-0123456789', expiresAt: new Date(now + 60_000) }),
    });
    cleanup.push(() => tokens.close());
    expect(await tokens.getAuthorizationHeader()).toBe('Bearer access-key-0123456789');
    now += 61_000;
    const fresh = new TokenManager({
      clock: { now: () => now },
      grant: staticToken({ accessToken: 'access-key-0123456789', expiresAt: now - 1_000 }),
    });
    cleanup.push(() => fresh.close());
    await expect(fresh.getToken()).rejects.toThrow(/access key expired at 2035-01-01T00:01:00/);
    await expect(tokens.getToken()).rejects.toMatchObject({ code: 'KEYFOB_CONFIGURATION' });
  });

  it('generic client-credentials API: form body with scope, Basic auth, reuse for its lifetime', async () => {
    const server = await genericClientCredentials({ clientId: 'my client', clientSecret: 'p@ss:word' });
    cleanup.push(() => server.close());
    const tokens = new TokenManager({
      tokenUrl: server.tokenUrl,
      grant: clientCredentials({
        clientId: 'my client',
        clientSecret: 'p@ss:word',
        scope: 'person.search risk.read',
      }),
    });
    cleanup.push(() => tokens.close());
    const token = await tokens.getToken();
    const req = server.tokenRequests()[0]!;
    expect(req.headers['content-type']).toContain('application/x-www-form-urlencoded');
    expect(req.params).toEqual({ grant_type: 'client_credentials', scope: 'person.search risk.read' });
    // RFC 6749 2.3.1: form-urlencoded before base64.
    expect(req.headers.authorization).toBe(
      `Basic ${Buffer.from('my+client:p%40ss%3Aword').toString('base64')}`,
    );
    expect(token.expiresAt! - Date.now()).toBeGreaterThan(3590_000);
    for (let i = 0; i < 20; i++) await tokens.getToken();
    expect(server.tokenRequests()).toHaveLength(1);
    expect((await callApi(`${server.apiUrl}/persons`, await tokens.getAuthorizationHeader())).status).toBe(
      200,
    );
  });

  it('generic API: client_secret_post and JSON bodies', async () => {
    const server = await genericClientCredentials({ clientId: 'id', clientSecret: 'secret-value' });
    cleanup.push(() => server.close());
    for (const clientAuth of ['body', 'json'] as const) {
      const tokens = new TokenManager({
        tokenUrl: server.tokenUrl,
        grant: clientCredentials({ clientId: 'id', clientSecret: 'secret-value', clientAuth, scope: 'a' }),
      });
      await tokens.getToken();
      const req = server.requests.at(-1)!;
      expect(req.params).toMatchObject({
        grant_type: 'client_credentials',
        client_id: 'id',
        client_secret: 'secret-value',
      });
      expect(req.headers['content-type']).toContain(
        clientAuth === 'json' ? 'application/json' : 'form-urlencoded',
      );
      expect(req.headers.authorization).toBeUndefined();
      await tokens.close();
    }
  });

  it('username/password platform: POST /authorization, token for that user', async () => {
    const server = await passwordPlatform({ username: 'ana@example.com', password: 'hunter2-long' });
    cleanup.push(() => server.close());
    const tokens = new TokenManager({
      tokenUrl: server.tokenUrl,
      grant: passwordGrant({ username: 'ana@example.com', password: 'hunter2-long' }),
    });
    cleanup.push(() => tokens.close());
    const header = await tokens.getAuthorizationHeader();
    expect(server.tokenRequests()[0]!.params).toMatchObject({
      username: 'ana@example.com',
      password: 'hunter2-long',
    });
    const res = await callApi(`${server.apiUrl}/records`, header);
    expect(res).toMatchObject({ status: 200, body: { subject: 'ana@example.com' } });
  });

  it('AIRisk: authorization code exchange with userid, JSON or form body, ISO expiration', async () => {
    const codes = new Map<string, string | undefined>([
      ['code-generic', undefined],
      ['code-42', 'user_42'],
      ['code-7', 'user_7'],
    ]);
    const redirectUri = 'https://localhost/callback';
    const server = await airisk({ clientId: 'air', clientSecret: 'air-secret', redirectUri, codes });
    cleanup.push(() => server.close());
    const grant = authorizationCode({
      clientId: 'air',
      clientSecret: 'air-secret',
      redirectUri,
      authorizeUrl: `${server.url}/api/oauth2/Authorize`,
      pkce: false,
      // AIRisk wants the credentials in the body (client_secret_post); keyfob's default is Basic.
      clientAuth: 'body',
    });
    const tokens = new TokenManager({ tokenUrl: server.tokenUrl, grant });
    cleanup.push(() => tokens.close());

    const { url, state } = grant.authorizationUrl({ extraParams: { userid: 'user_42' } });
    const u = new URL(url);
    expect(u.searchParams.get('userid')).toBe('user_42');
    expect(u.searchParams.get('state')).toBe(state);
    expect(u.searchParams.get('redirect_uri')).toBe(redirectUri);

    const generic = await grant.exchange('code-generic');
    const t42 = await grant.exchange('code-42', { subject: 'user_42', extraParams: { userid: 'user_42' } });
    expect(server.tokenRequests()[1]!.params).toMatchObject({
      client_id: 'air',
      client_secret: 'air-secret',
      redirect_uri: redirectUri,
      code: 'code-42',
      userid: 'user_42',
    });
    expect(t42.expiresAt! - Date.now()).toBeGreaterThan(3500_000);
    expect(t42.expiresAt! - Date.now()).toBeLessThan(3601_000);
    // Stored per subject: getToken({ subject }) answers from the cache.
    expect((await tokens.getToken({ subject: 'user_42' })).accessToken).toBe(t42.accessToken);
    expect((await tokens.getToken()).accessToken).toBe(generic.accessToken);
    const me = await callApi(
      `${server.apiUrl}/me`,
      await tokens.getAuthorizationHeader({ subject: 'user_42' }),
    );
    expect(me.body.subject).toBe('user_42');
    await expect(tokens.getToken({ subject: 'user_7' })).rejects.toMatchObject({
      name: 'LoginRequiredError',
    });
    // The subject can also be derived from the token once it arrives.
    codes.set('code-derived', undefined);
    const derived = await grant.exchange('code-derived', {
      subject: (t) => `user-of-${t.accessToken.slice(0, 6)}`,
    });
    const again = await tokens.getToken({ subject: `user-of-${derived.accessToken.slice(0, 6)}` });
    expect(again.accessToken).toBe(derived.accessToken);

    const jsonGrant = authorizationCode({
      clientId: 'air',
      clientSecret: 'air-secret',
      redirectUri,
      authorizeUrl: `${server.url}/api/oauth2/Authorize`,
      pkce: false,
      clientAuth: 'json',
    });
    const jsonTokens = new TokenManager({ tokenUrl: server.tokenUrl, grant: jsonGrant });
    cleanup.push(() => jsonTokens.close());
    await jsonGrant.exchange('code-7', { subject: 'user_7', extraParams: { userid: 'user_7' } });
    expect(server.tokenRequests().at(-1)!.headers['content-type']).toContain('application/json');
    expect((await jsonTokens.getToken({ subject: 'user_7' })).accessToken).toMatch(/^at_/);
  });
});

describe('Basic header encoding', () => {
  it('falls back from RFC form-encoding to raw values once, and keeps what worked', async () => {
    // Risk Cloud's endpoint compares base64('client:secret') of the raw values.
    const server = await riskCloud({ clientId: 'client-abc', clientSecret: 's3cr+t/with=chars' });
    cleanup.push(() => server.close());
    const tokens = new TokenManager({
      tokenUrl: server.tokenUrl,
      grant: clientCredentials({ clientId: 'client-abc', clientSecret: 's3cr+t/with=chars' }), // 'basic': form first
    });
    cleanup.push(() => tokens.close());
    const first = await tokens.getToken();
    expect(server.tokenRequests()).toHaveLength(2);
    await tokens.invalidate(first);
    await tokens.getToken();
    expect(server.tokenRequests()).toHaveLength(3); // raw straight away now
  });

  it('both encodings refused: the error counts both attempts and its hint no longer suggests the other encoding', async () => {
    const server = await riskCloud({ clientId: 'client-abc', clientSecret: 'the-right+secret' });
    cleanup.push(() => server.close());
    const tokens = new TokenManager({
      tokenUrl: server.tokenUrl,
      grant: clientCredentials({ clientId: 'client-abc', clientSecret: 'a+wrong secret' }),
    });
    cleanup.push(() => tokens.close());
    const error = (await tokens.getToken().catch((e: unknown) => e)) as TokenEndpointError;
    expect(server.tokenRequests()).toHaveLength(2);
    expect(error).toBeInstanceOf(TokenEndpointError);
    expect(error).toMatchObject({ status: 401, attempts: 2 });
    expect(error.hint).toMatch(/both form-urlencoded .* and unencoded/);
    expect(error.message).not.toMatch(/set basicEncoding: 'raw'/);
    expect(error.message).not.toContain('a+wrong secret');
  });

  it("a client id with ':' is never sent raw (RFC 7617: the first ':' ends the id); an explicit 'raw' is refused", async () => {
    const server = await riskCloud({ clientId: 'a:b', clientSecret: 'x+y' });
    cleanup.push(() => server.close());
    const tokens = new TokenManager({
      tokenUrl: server.tokenUrl,
      grant: clientCredentials({ clientId: 'a:b', clientSecret: 'wrong+secret' }),
    });
    cleanup.push(() => tokens.close());
    await expect(tokens.getToken()).rejects.toMatchObject({ status: 401 });
    expect(server.tokenRequests()).toHaveLength(1);
    const sent = Buffer.from(server.tokenRequests()[0]!.headers.authorization!.slice(6), 'base64').toString();
    expect(sent).toBe('a%3Ab:wrong%2Bsecret');
    expect(() => clientCredentials({ clientId: 'a:b', clientSecret: 's', basicEncoding: 'raw' })).toThrow(
      /cannot carry a client id that contains ':'/,
    );
  });

  it('an explicit basicEncoding is never second-guessed', async () => {
    const server = await riskCloud({ clientId: 'client-abc', clientSecret: 's3cr+t/with=chars' });
    cleanup.push(() => server.close());
    const tokens = new TokenManager({
      tokenUrl: server.tokenUrl,
      grant: clientCredentials({
        clientId: 'client-abc',
        clientSecret: 's3cr+t/with=chars',
        basicEncoding: 'form',
      }),
    });
    cleanup.push(() => tokens.close());
    await expect(tokens.getToken()).rejects.toMatchObject({ status: 401 });
    expect(server.tokenRequests()).toHaveLength(1);
  });

  it('wrong credentials without special characters cost one request, not two', async () => {
    const server = await riskCloud({ clientId: 'client', clientSecret: 'right' });
    cleanup.push(() => server.close());
    const tokens = new TokenManager({
      tokenUrl: server.tokenUrl,
      grant: clientCredentials({ clientId: 'client', clientSecret: 'wrong' }),
    });
    cleanup.push(() => tokens.close());
    await expect(tokens.getToken()).rejects.toMatchObject({ status: 401 });
    expect(server.tokenRequests()).toHaveLength(1);
  });
});

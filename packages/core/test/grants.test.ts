import { startServer } from '@keyfob/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { authorizationCode, ConfigurationError, passwordGrant, TokenManager } from '../src/index.js';

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

const basicOf = (h: string | string[] | undefined) =>
  typeof h === 'string' ? Buffer.from(h.replace(/^Basic /, ''), 'base64').toString() : undefined;

describe('grants: client authentication defaults to Basic everywhere', () => {
  it('authorizationCode sends the client secret in a Basic header by default, never in the body', async () => {
    const server = await startServer(() => ({
      body: { access_token: 'at_1', token_type: 'Bearer', expires_in: 3600, refresh_token: 'rt_1' },
    }));
    cleanup.push(() => server.close());
    const grant = authorizationCode({
      clientId: 'web',
      clientSecret: 'web-secret',
      redirectUri: 'http://127.0.0.1/cb',
      authorizeUrl: `${server.url}/authorize`,
      pkce: false,
    });
    const m = new TokenManager({ tokenUrl: `${server.url}/token`, grant });
    cleanup.push(() => m.close());
    await grant.exchange('code-1', { subject: 'ana' });
    const [req] = server.requests;
    expect(basicOf(req!.headers.authorization)).toBe('web:web-secret');
    expect(req!.params.client_secret).toBeUndefined();
    expect(req!.params).toMatchObject({ grant_type: 'authorization_code', code: 'code-1' });
  });

  it('passwordGrant sends client credentials in a Basic header by default', async () => {
    const server = await startServer(() => ({
      body: { access_token: 'at_1', token_type: 'Bearer', expires_in: 3600 },
    }));
    cleanup.push(() => server.close());
    const m = new TokenManager({
      tokenUrl: `${server.url}/token`,
      grant: passwordGrant({
        username: 'ana',
        password: 'pw-long',
        clientId: 'app',
        clientSecret: 'app-secret',
      }),
    });
    cleanup.push(() => m.close());
    await m.getToken();
    expect(basicOf(server.requests[0]!.headers.authorization)).toBe('app:app-secret');
    expect(server.requests[0]!.params.client_secret).toBeUndefined();
  });

  it("clientAuth: 'body' puts them in the form body (AIRisk)", async () => {
    const server = await startServer(() => ({
      body: { access_token: 'at_1', token_type: 'Bearer', expires_in: 3600 },
    }));
    cleanup.push(() => server.close());
    const grant = authorizationCode({
      clientId: 'air',
      clientSecret: 'air-secret',
      redirectUri: 'http://127.0.0.1/cb',
      authorizeUrl: `${server.url}/authorize`,
      clientAuth: 'body',
    });
    const m = new TokenManager({ tokenUrl: `${server.url}/token`, grant });
    cleanup.push(() => m.close());
    await grant.exchange('c', { codeVerifier: 'v' });
    expect(server.requests[0]!.headers.authorization).toBeUndefined();
    expect(server.requests[0]!.params).toMatchObject({ client_id: 'air', client_secret: 'air-secret' });
  });
});

describe('grants: the link to the manager is explicit', () => {
  const options = () => ({
    clientId: 'web',
    clientSecret: 'web-secret',
    redirectUri: 'http://127.0.0.1/cb',
    authorizeUrl: 'https://auth.example.com/authorize',
  });

  it('a grant bound to a second live manager is a ConfigurationError; after close() it may move', async () => {
    const grant = authorizationCode(options());
    const first = new TokenManager({ tokenUrl: 'https://auth.example.com/token', grant });
    expect(() => new TokenManager({ tokenUrl: 'https://auth.example.com/token', grant })).toThrow(
      ConfigurationError,
    );
    expect(() => new TokenManager({ tokenUrl: 'https://auth.example.com/token', grant })).toThrow(
      /already used by another TokenManager/,
    );
    await first.close();
    const second = new TokenManager({ tokenUrl: 'https://auth.example.com/token', grant });
    cleanup.push(() => second.close());
    expect(second.grantType).toBe('authorization_code');
  });

  it('no hidden properties: the grant shows only its declared members', () => {
    const grant = authorizationCode(options());
    expect(Object.getOwnPropertyNames(grant)).not.toContain('_revoke');
    expect(typeof grant.bind).toBe('function');
    expect(typeof grant.revoke).toBe('function');
  });

  it('revocationUrl must be https unless loopback or allowInsecureHttp', async () => {
    const insecure = () =>
      authorizationCode({ ...options(), revocationUrl: 'http://auth.example.com/revoke' });
    expect(() => new TokenManager({ tokenUrl: 'https://auth.example.com/token', grant: insecure() })).toThrow(
      /revocationUrl .* is not https/,
    );
    const allowed = new TokenManager({
      tokenUrl: 'https://auth.example.com/token',
      grant: insecure(),
      allowInsecureHttp: true,
    });
    cleanup.push(() => allowed.close());
    const loopback = new TokenManager({
      tokenUrl: 'https://auth.example.com/token',
      grant: authorizationCode({ ...options(), revocationUrl: 'http://127.0.0.1:9/revoke' }),
    });
    cleanup.push(() => loopback.close());
    expect(() => authorizationCode({ ...options(), revocationUrl: 'not a url' })).toThrow(ConfigurationError);
  });

  it('revocation goes through the bound manager to the revocation endpoint', async () => {
    const server = await startServer((req) =>
      req.path === '/revoke'
        ? { status: 200, body: '' }
        : { body: { access_token: 'at_1', token_type: 'Bearer', expires_in: 3600, refresh_token: 'rt_1' } },
    );
    cleanup.push(() => server.close());
    const grant = authorizationCode({ ...options(), revocationUrl: `${server.url}/revoke` });
    const m = new TokenManager({ tokenUrl: `${server.url}/token`, grant });
    cleanup.push(() => m.close());
    await grant.exchange('c', { subject: 'ana', codeVerifier: 'v' });
    await m.deleteToken({ subject: 'ana', revoke: true });
    const revokes = server.requests.filter((r) => r.path === '/revoke').map((r) => r.params);
    expect(revokes).toEqual([
      { token: 'rt_1', token_type_hint: 'refresh_token' },
      { token: 'at_1', token_type_hint: 'access_token' },
    ]);
    await expect(m.getToken({ subject: 'ana' })).rejects.toMatchObject({ name: 'LoginRequiredError' });
  });
});

import { inspect } from 'node:util';
import {
  browserlessLogin,
  type RunningAuthorizationServer,
  startAuthorizationServer,
} from '@keyfob/authorization-server';
import { authorizationCode, ConfigurationError, clientCredentials, TokenManager } from '@keyfob/core';
import { startServer } from '@keyfob/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { metadataUrls } from '../src/discovery.js';

const running: { close(): Promise<unknown> }[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.close()));
});

async function authServer(): Promise<RunningAuthorizationServer> {
  const server = await startAuthorizationServer();
  running.push(server);
  return server;
}

function manager(
  issuer: string,
  grant = clientCredentials({ clientId: 'service-basic', clientSecret: 'service-basic-secret' }),
) {
  const tokens = new TokenManager({ issuer, grant, retries: 0 });
  running.push(tokens);
  return tokens;
}

async function failure(p: Promise<unknown>): Promise<ConfigurationError> {
  const error = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ConfigurationError);
  return error as ConfigurationError;
}

describe('discovery', () => {
  it('finds the token endpoint from the issuer, lazily and once', async () => {
    const server = await authServer();
    const tokens = manager(server.issuer);
    expect(server.stats.tokenRequests).toBe(0);
    const [a, b] = await Promise.all([tokens.getToken(), tokens.getToken({ scope: 'api:read' })]);
    expect(a.scope).toBe('api:read api:write');
    expect(b.scope).toBe('api:read');
    const metadata = await tokens.discover();
    expect(metadata).toMatchObject({
      issuer: server.issuer,
      tokenEndpoint: server.tokenUrl,
      authorizationEndpoint: server.authorizeUrl,
      revocationEndpoint: server.revocationUrl,
    });
    expect(metadata!.tokenEndpointAuthMethods).toContain('client_secret_jwt');
    const hello = await fetch(`${server.apiUrl}/hello`, {
      headers: { authorization: await tokens.getAuthorizationHeader() },
    });
    expect(hello.status).toBe(200);
    expect(inspect(tokens)).toContain(server.tokenUrl);
  });

  it('reads the discovery document once for concurrent first calls (single-flight)', async () => {
    const server = await authServer();
    const proxy = await startServer(async (req) => {
      const res = await fetch(`${server.issuer}${req.path}`);
      const doc = (await res.json()) as Record<string, unknown>;
      return { status: res.status, body: { ...doc, issuer: proxy.origin } };
    });
    running.push(proxy);
    const tokens = manager(proxy.origin);
    await Promise.all(Array.from({ length: 5 }, () => tokens.discover()));
    await tokens.getToken();
    expect(proxy.requests.map((r) => r.path)).toEqual(['/.well-known/openid-configuration']);
  });

  it('picks client_secret_post from the metadata when clientAuth is not given', async () => {
    const server = await authServer();
    // service-post is registered for client_secret_post; the server lists basic first, so keyfob sends Basic...
    const basicFirst = manager(
      server.issuer,
      clientCredentials({ clientId: 'service-post', clientSecret: 'service-post-secret' }),
    );
    await expect(basicFirst.getToken()).rejects.toMatchObject({ status: 401 });
    // ...while a provider listing only client_secret_post gets the secret in the body.
    const proxy = await startServer(async (req) => {
      if (req.path.startsWith('/.well-known/')) {
        return {
          body: {
            issuer: proxy.origin,
            token_endpoint: `${proxy.origin}/token`,
            token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt'],
          },
        };
      }
      const res = await fetch(server.tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: req.body,
      });
      return { status: res.status, body: await res.json() };
    });
    running.push(proxy);
    const tokens = manager(
      proxy.origin,
      clientCredentials({ clientId: 'service-post', clientSecret: 'service-post-secret' }),
    );
    expect((await tokens.getToken()).scope).toBe('api:read');
    const sent = proxy.requests.find((r) => r.path === '/token')!;
    expect(sent.params.client_secret).toBe('service-post-secret');
    expect(sent.headers.authorization).toBeUndefined();
  });

  it('a secret, and metadata that lists no method for one: a ConfigurationError, nothing sent; clientAuth overrides', async () => {
    const server = await startServer((req) =>
      req.path.startsWith('/.well-known/')
        ? {
            body: {
              issuer: server.origin,
              token_endpoint: `${server.origin}/token`,
              token_endpoint_auth_methods_supported: ['private_key_jwt'],
            },
          }
        : { body: { access_token: 'at-1', token_type: 'Bearer', expires_in: 3600 } },
    );
    running.push(server);
    const secret = 'service-secret-value-1';
    const err = (await manager(server.origin, clientCredentials({ clientId: 'svc', clientSecret: secret }))
      .getToken()
      .catch((e: unknown) => e)) as ConfigurationError;
    expect(err).toBeInstanceOf(ConfigurationError);
    expect(err.message).toMatch(
      /token_endpoint_auth_methods_supported \(private_key_jwt\) lists no method for a client secret/,
    );
    expect(err.hint).toMatch(/privateKey|clientAuth/);
    expect(inspect(err, { depth: 5 })).not.toContain(secret);
    expect(server.requests.filter((r) => r.path === '/token')).toHaveLength(0);
    const explicit = manager(
      server.origin,
      clientCredentials({ clientId: 'svc', clientSecret: secret, clientAuth: 'basic' }),
    );
    expect((await explicit.getToken()).accessToken).toBe('at-1');
    expect(server.requests.find((r) => r.path === '/token')!.headers.authorization).toMatch(/^Basic /);
  });

  it('falls back to RFC 8414 with path insertion for an issuer with a path', async () => {
    const upstream = await authServer();
    const server = await startServer((req) => {
      if (req.path === '/.well-known/oauth-authorization-server/tenant-a') {
        return { body: { issuer: `${server.origin}/tenant-a`, token_endpoint: upstream.tokenUrl } };
      }
      return { status: 404, body: { error: 'not_found' } };
    });
    running.push(server);
    expect(metadataUrls(`${server.origin}/tenant-a`)).toEqual([
      `${server.origin}/tenant-a/.well-known/openid-configuration`,
      `${server.origin}/.well-known/oauth-authorization-server/tenant-a`,
    ]);
    const tokens = manager(`${server.origin}/tenant-a`);
    expect((await tokens.getToken()).accessToken).toMatch(/^ey/);
    expect(server.requests.map((r) => r.path)).toEqual([
      '/tenant-a/.well-known/openid-configuration',
      '/.well-known/oauth-authorization-server/tenant-a',
    ]);
  });

  it('reads the metadata again after a token endpoint 404', async () => {
    const upstream = await authServer();
    let tokenPath = '/old-token';
    const server = await startServer(async (req) => {
      if (req.path === '/.well-known/openid-configuration') {
        return { body: { issuer: server.origin, token_endpoint: `${server.origin}${tokenPath}` } };
      }
      if (req.path !== '/new-token') return { status: 404, body: { error: 'not_found' } };
      const res = await fetch(upstream.tokenUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: String(req.headers.authorization),
        },
        body: req.body,
      });
      return { status: res.status, body: await res.json() };
    });
    running.push(server);
    const tokens = manager(server.origin);
    await expect(tokens.getToken()).rejects.toMatchObject({ status: 404 });
    tokenPath = '/new-token';
    expect((await tokens.getToken()).accessToken).toMatch(/^ey/);
    expect(server.requests.filter((r) => r.path.startsWith('/.well-known')).length).toBe(2);
  });

  it('fails with a ConfigurationError naming the issuer: mismatch, not JSON, no token endpoint, unreachable', async () => {
    const server = await authServer();
    const mismatch = await failure(manager(`${server.issuer}/`).getToken());
    expect(mismatch.message).toContain(`issuer ${server.issuer}/`);
    // Both as written: the trailing slash, the only difference, shows.
    expect(mismatch.message).toContain(
      `names issuer "${server.issuer}", not the configured "${server.issuer}/"`,
    );
    expect(mismatch.hint).toMatch(/exact match/);

    const html = await startServer(() => ({
      status: 200,
      headers: { 'content-type': 'text/html' },
      body: '<!DOCTYPE html><html>login</html>',
    }));
    running.push(html);
    const notJson = await failure(manager(html.origin).getToken());
    expect(notJson.message).toMatch(/HTML page that is not a JSON object/);
    expect(notJson.message).toContain(html.origin);

    const empty = await startServer(() => ({ body: { issuer: empty.origin } }));
    running.push(empty);
    const noEndpoint = await failure(manager(empty.origin).getToken());
    expect(noEndpoint.message).toMatch(/no token_endpoint/);
    expect(noEndpoint.hint).toMatch(/tokenUrl/);

    const gone = await startServer(() => ({ status: 404 }));
    const port = new URL(gone.origin).port;
    await gone.close();
    const unreachable = await failure(manager(`http://127.0.0.1:${port}`).getToken());
    expect(unreachable.message).toMatch(/could not reach/);

    const insecure = await startServer(() => ({
      body: { issuer: insecure.origin, token_endpoint: 'http://auth.example.com/token' },
    }));
    running.push(insecure);
    const http = await failure(manager(insecure.origin).getToken());
    expect(http.message).toMatch(
      /token_endpoint http:\/\/auth\.example\.com\/token is not an acceptable https URL/,
    );

    expect(
      () =>
        new TokenManager({
          issuer: 'http://auth.example.com',
          grant: clientCredentials({ clientId: 'a', clientSecret: 'b' }),
        }),
    ).toThrow(/not https/);
  });

  it('authorizationCode takes the authorization endpoint from discovery (no authorizeUrl)', async () => {
    const server = await authServer();
    const grant = authorizationCode({
      clientId: 'web-app',
      clientSecret: 'web-app-secret',
      clientAuth: 'body',
      redirectUri: 'http://127.0.0.1:43210/callback',
      scope: 'openid offline_access api:read',
    });
    const tokens = new TokenManager({ issuer: server.issuer, grant });
    running.push(tokens);
    await tokens.discover();
    const { url, codeVerifier } = grant.authorizationUrl({ extraParams: { login_hint: 'erin' } });
    expect(url.startsWith(`${server.authorizeUrl}?`)).toBe(true);
    const callback = await browserlessLogin(url);
    const code = callback.searchParams.get('code');
    expect(code).toBeTruthy();
    await grant.exchange(code!, { subject: 'erin', ...(codeVerifier ? { codeVerifier } : {}) });
    const token = await tokens.getToken({ subject: 'erin' });
    expect(JSON.parse(Buffer.from(token.accessToken.split('.')[1]!, 'base64url').toString()).sub).toBe(
      'erin',
    );
    // deleteToken({ revoke: true }) reaches the discovered revocation endpoint.
    await tokens.deleteToken({ subject: 'erin', revoke: true });
    expect(server.stats.revocations).toBe(2); // refresh token, then access token

    const without = authorizationCode({
      clientId: 'web-app',
      redirectUri: 'http://127.0.0.1:43210/callback',
    });
    running.push(new TokenManager({ tokenUrl: server.tokenUrl, grant: without }));
    expect(() => without.authorizationUrl()).toThrow(/no authorizeUrl/);
  });
});

describe('discovery failures: retried when transient, each with the hint that fits', () => {
  function metadataServer(answers: { status: number; headers?: Record<string, string>; body?: unknown }[]) {
    let n = 0;
    let origin = '';
    return startServer((req) => {
      if (req.method === 'POST')
        return { body: { access_token: 'tok-disc-0001', token_type: 'Bearer', expires_in: 600 } };
      const a = answers[Math.min(n++, answers.length - 1)]!;
      return a.status === 200
        ? { body: { issuer: origin, token_endpoint: `${origin}/token`, ...(a.body as object) } }
        : { status: a.status, headers: a.headers ?? {}, body: a.body ?? { error: 'unavailable' } };
    }).then((s) => {
      origin = s.origin;
      running.push(s);
      return s;
    });
  }

  it('a 503, then a 429 with Retry-After: retried with the token endpoint retry settings, then the token', async () => {
    const server = await metadataServer([
      { status: 503 },
      { status: 429, headers: { 'retry-after': '0' } },
      { status: 200 },
    ]);
    const tokens = new TokenManager({
      issuer: server.origin,
      grant: clientCredentials({ clientId: 'c', clientSecret: 'discovery-secret' }),
      retryBaseDelayMs: 5,
    });
    running.push(tokens);
    expect((await tokens.getToken()).accessToken).toBe('tok-disc-0001');
    expect(server.requests.filter((r) => r.method === 'GET')).toHaveLength(3);
  });

  it('a 503 that persists: a ConfigurationError after the retries, whose hint says the endpoint fails (not the issuer value)', async () => {
    const server = await metadataServer([{ status: 503 }]);
    const tokens = new TokenManager({
      issuer: server.origin,
      grant: clientCredentials({ clientId: 'c', clientSecret: 'discovery-secret' }),
      retries: 1,
      retryBaseDelayMs: 5,
    });
    running.push(tokens);
    const error = await failure(tokens.getToken());
    expect(server.requests).toHaveLength(2);
    expect(error.message).toMatch(/answered 503/);
    expect(error.hint).toMatch(/failing or rate-limiting/);
    expect(error.hint).not.toMatch(/identifier the provider publishes/);
  });

  it('a 401 is not retried; its hint says metadata must be public', async () => {
    const server = await metadataServer([{ status: 401 }]);
    const error = await failure(manager(server.origin).getToken());
    expect(server.requests).toHaveLength(1);
    expect(error.hint).toMatch(/must be public/);
  });

  it('a relative or unparsable token_endpoint: "not an absolute URL", with a hint', async () => {
    for (const value of ['/token', 'not a url']) {
      const server = await metadataServer([{ status: 200, body: { token_endpoint: value } }]);
      const error = await failure(manager(server.origin).getToken());
      expect(error.message).toContain(`token_endpoint ${JSON.stringify(value)} is not an absolute URL`);
      expect(error.hint).toMatch(/absolute URLs/);
    }
  });
});

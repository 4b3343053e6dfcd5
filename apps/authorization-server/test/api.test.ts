import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { basic, callApi, clientCredentials, postForm, startServer, userTokens } from './helpers.js';

describe('protected API', () => {
  it('answers 401 with Bearer realm when the token is missing', async () => {
    const server = await startServer();
    const result = await callApi(server, '/hello');
    expect(result.status).toBe(401);
    expect(result.headers.get('www-authenticate')).toBe('Bearer realm="keyfob-demo"');
    expect(result.body.error).toBe('invalid_token');
    expect(server.stats).toMatchObject({ apiRequests: 1, api401: 1, api200: 0 });
  });

  it('answers 401 invalid_token to a forged or foreign token', async () => {
    const server = await startServer();
    const other = await startServer();
    const foreign = await clientCredentials(other);
    const mine = await clientCredentials(server);
    const [header, payload] = mine.split('.');
    const forged = `${header}.${payload}.${foreign.split('.')[2]}`;
    for (const token of [foreign, forged, 'not-a-jwt']) {
      const result = await callApi(server, '/hello', token);
      expect(result.status).toBe(401);
      expect(result.headers.get('www-authenticate')).toMatch(
        /^Bearer error="invalid_token", error_description="[^"]+"$/,
      );
      expect(result.body).toEqual({ error: 'invalid_token', error_description: expect.any(String) });
    }
  });

  it('answers 401 invalid_token with the RFC 6750 header once the token expired', async () => {
    // exp is whole seconds after iat (itself floored): a 1 s token issued at x.999 s is expired 1 ms later,
    // so the token lives 2 s (valid for at least 1 s after issue) and the test waits past its exp.
    const server = await startServer({ accessTokenTtlSeconds: 2 });
    const token = await clientCredentials(server);
    expect((await callApi(server, '/hello', token)).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 3100));
    const result = await callApi(server, '/hello', token);
    expect(result.status).toBe(401);
    expect(result.headers.get('www-authenticate')).toBe(
      'Bearer error="invalid_token", error_description="the access token expired"',
    );
    expect(result.body).toEqual({ error: 'invalid_token', error_description: 'the access token expired' });
  });

  it('revokeAll(): old tokens get 401, new ones work (same second included)', async () => {
    const server = await startServer();
    const oldService = await clientCredentials(server);
    const oldUser = await userTokens(server, 'frank');
    server.revokeAll();
    const fresh = await clientCredentials(server);
    for (const [path, token] of [
      ['/hello', oldService],
      ['/me', oldUser.access_token],
    ] as const) {
      const result = await callApi(server, path, token);
      expect(result.status).toBe(401);
      expect(result.headers.get('www-authenticate')).toContain('error="invalid_token"');
    }
    expect((await callApi(server, '/hello', fresh)).status).toBe(200);
    // refresh tokens survive revokeAll(): the refreshed access token works
    const refreshed = await postForm(server.tokenUrl, {
      grant_type: 'refresh_token',
      refresh_token: oldUser.refresh_token,
      client_id: 'web-app',
      client_secret: 'web-app-secret',
    });
    expect(refreshed.status).toBe(200);
    expect((await callApi(server, '/me', refreshed.body.access_token)).status).toBe(200);
  });

  it('answers 403 insufficient_scope', async () => {
    const server = await startServer({
      clients: [
        {
          clientId: 'writer',
          clientSecret: 'writer-secret',
          tokenEndpointAuthMethod: 'client_secret_post',
          grantTypes: ['client_credentials'],
          scope: 'api:write api:read',
        },
      ],
    });
    const token = await postForm(server.tokenUrl, {
      grant_type: 'client_credentials',
      client_id: 'writer',
      client_secret: 'writer-secret',
      scope: 'api:write',
    });
    const result = await callApi(server, '/hello', token.body.access_token);
    expect(result.status).toBe(403);
    expect(result.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
    expect(result.body.error).toBe('insufficient_scope');
    expect(server.stats.api403).toBe(1);
  });

  it('/me needs an end-user token', async () => {
    const server = await startServer();
    const result = await callApi(server, '/me', await clientCredentials(server));
    expect(result.status).toBe(403);
  });

  it('/echo echoes the JSON body', async () => {
    const server = await startServer();
    const token = await clientCredentials(server);
    const result = await callApi(server, '/echo', token, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ hello: 'world', n: [1, 2] }),
    });
    expect(result.status).toBe(200);
    expect(result.body).toEqual({ hello: 'world', n: [1, 2] });
    expect((await callApi(server, '/echo', undefined, { method: 'POST', body: '{}' })).status).toBe(401);
  });

  it('/redirect-elsewhere answers 302 to the given URL', async () => {
    const server = await startServer();
    const seen: (string | undefined)[] = [];
    const elsewhere = createServer((req, res) => {
      seen.push(req.headers.authorization);
      res.end('elsewhere');
    });
    await new Promise<void>((resolve) => elsewhere.listen(0, '127.0.0.1', resolve));
    try {
      const target = `http://127.0.0.1:${(elsewhere.address() as AddressInfo).port}/landing`;
      const token = await clientCredentials(server);
      const manual = await callApi(server, `/redirect-elsewhere?to=${encodeURIComponent(target)}`, token);
      expect(manual.status).toBe(302);
      expect(manual.headers.get('location')).toBe(target);
      // fetch itself drops Authorization on a cross-origin redirect
      const followed = await fetch(`${server.apiUrl}/redirect-elsewhere?to=${encodeURIComponent(target)}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(await followed.text()).toBe('elsewhere');
      expect(seen).toEqual([undefined]);
    } finally {
      elsewhere.closeAllConnections();
      await new Promise((resolve) => elsewhere.close(resolve));
    }
  });

  it('revokes JWT access tokens and refresh tokens at the revocation endpoint', async () => {
    const server = await startServer();
    const token = await clientCredentials(server);
    const other = await clientCredentials(server);
    const revoked = await postForm(
      server.revocationUrl,
      { token },
      basic('service-basic', 'service-basic-secret'),
    );
    expect(revoked.status).toBe(200);
    expect((await callApi(server, '/hello', token)).status).toBe(401);
    expect((await callApi(server, '/hello', other)).status).toBe(200);

    const badClient = await postForm(server.revocationUrl, { token: other }, basic('service-basic', 'nope'));
    expect(badClient.status).toBe(401);
    expect(badClient.body.error).toBe('invalid_client');
    const wrongMethod = await postForm(server.revocationUrl, {
      token: other,
      client_id: 'service-basic',
      client_secret: 'service-basic-secret',
    });
    expect(wrongMethod.status).toBe(401);
    expect((await callApi(server, '/hello', other)).status).toBe(200);

    const user = await userTokens(server, 'gina');
    const rt = await postForm(server.revocationUrl, {
      token: user.refresh_token,
      token_type_hint: 'refresh_token',
      client_id: 'web-app',
      client_secret: 'web-app-secret',
    });
    expect(rt.status).toBe(200);
    const refresh = await postForm(server.tokenUrl, {
      grant_type: 'refresh_token',
      refresh_token: user.refresh_token,
      client_id: 'web-app',
      client_secret: 'web-app-secret',
    });
    expect(refresh.body.error).toBe('invalid_grant');
    // the grant is gone, so are its access tokens
    expect((await callApi(server, '/me', user.access_token)).status).toBe(401);
    expect(server.stats.revocations).toBe(4);
  });
});

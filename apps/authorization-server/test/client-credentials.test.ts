import { describe, expect, it } from 'vitest';
import { basic, callApi, clientCredentials, decodeJwt, postForm, startServer } from './helpers.js';

describe('client_credentials', () => {
  it('issues a JWT access token to a client_secret_basic client, accepted by the API', async () => {
    const server = await startServer();
    const result = await postForm(
      server.tokenUrl,
      { grant_type: 'client_credentials', scope: 'api:read' },
      basic('service-basic', 'service-basic-secret'),
    );
    expect(result.status).toBe(200);
    expect(result.body).toMatchObject({ token_type: 'Bearer', expires_in: 60, scope: 'api:read' });
    const claims = decodeJwt(result.body.access_token);
    expect(claims).toMatchObject({
      iss: server.issuer,
      aud: server.apiUrl,
      sub: 'service-basic',
      client_id: 'service-basic',
      scope: 'api:read',
    });
    expect(claims.exp - claims.iat).toBe(60);

    const hello = await callApi(server, '/hello', result.body.access_token);
    expect(hello.status).toBe(200);
    expect(hello.body).toEqual({
      ok: true,
      sub: 'service-basic',
      client_id: 'service-basic',
      scope: 'api:read',
    });
  });

  it('issues a token to a client_secret_post client', async () => {
    const server = await startServer({ accessTokenTtlSeconds: 5 });
    const result = await postForm(server.tokenUrl, {
      grant_type: 'client_credentials',
      client_id: 'service-post',
      client_secret: 'service-post-secret',
    });
    expect(result.status).toBe(200);
    expect(result.body.expires_in).toBe(5);
    // No scope requested: the client gets every API scope it is registered for.
    expect(result.body.scope).toBe('api:read');
    const hello = await callApi(server, '/hello', result.body.access_token);
    expect(hello.status).toBe(200);
    expect(hello.body.client_id).toBe('service-post');
  });

  it('defaults the scope to the client registration when none is requested', async () => {
    const server = await startServer();
    const token = await clientCredentials(server, 'service-basic');
    expect(decodeJwt(token).scope).toBe('api:read api:write');
  });

  it('rejects a wrong secret with 401 invalid_client (basic and post)', async () => {
    const server = await startServer();
    const viaBasic = await postForm(
      server.tokenUrl,
      { grant_type: 'client_credentials' },
      basic('service-basic', 'wrong'),
    );
    expect(viaBasic.status).toBe(401);
    expect(viaBasic.body.error).toBe('invalid_client');

    const viaPost = await postForm(server.tokenUrl, {
      grant_type: 'client_credentials',
      client_id: 'service-post',
      client_secret: 'wrong',
    });
    expect(viaPost.status).toBe(401);
    expect(viaPost.body.error).toBe('invalid_client');
  });

  it('rejects the wrong authentication method and scopes the client is not registered for', async () => {
    const server = await startServer();
    const wrongMethod = await postForm(server.tokenUrl, {
      grant_type: 'client_credentials',
      client_id: 'service-basic',
      client_secret: 'service-basic-secret',
    });
    expect(wrongMethod.status).toBe(401);
    expect(wrongMethod.body.error).toBe('invalid_client');

    const tooMuch = await postForm(server.tokenUrl, {
      grant_type: 'client_credentials',
      client_id: 'service-post',
      client_secret: 'service-post-secret',
      scope: 'api:write',
    });
    expect(tooMuch.status).toBe(400);
    expect(tooMuch.body.error).toBe('invalid_scope');
  });

  it('counts token requests by grant type (failures too) and applies tokenLatencyMs', async () => {
    const server = await startServer({ tokenLatencyMs: 150 });
    const started = Date.now();
    await clientCredentials(server);
    expect(Date.now() - started).toBeGreaterThanOrEqual(145);
    await postForm(server.tokenUrl, { grant_type: 'client_credentials' }, basic('service-basic', 'nope'));
    await postForm(
      server.tokenUrl,
      { grant_type: 'refresh_token', refresh_token: 'x' },
      basic('service-basic', 'x'),
    );
    expect(server.stats.tokenRequests).toBe(3);
    expect(server.stats.tokenRequestsByGrant).toEqual({ client_credentials: 2, refresh_token: 1 });
    server.resetStats();
    expect(server.stats).toMatchObject({ tokenRequests: 0, tokenRequestsByGrant: {}, apiRequests: 0 });
  });

  it('serves discovery and the JWKS', async () => {
    const server = await startServer();
    const discovery = await (await fetch(`${server.issuer}/.well-known/openid-configuration`)).json();
    expect(discovery).toMatchObject({
      issuer: server.issuer,
      token_endpoint: server.tokenUrl,
      authorization_endpoint: server.authorizeUrl,
      revocation_endpoint: server.revocationUrl,
      jwks_uri: server.jwksUrl,
    });
    const jwks = await (await fetch(server.jwksUrl)).json();
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).toMatchObject({ kty: 'RSA', alg: 'RS256', use: 'sig' });
    expect(jwks.keys[0].d).toBeUndefined();
  });
});

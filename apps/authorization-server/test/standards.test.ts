import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { request } from 'node:https';
import { exportJWK, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { createTestPki, DEFAULT_CLIENTS, JWT_BEARER, TOKEN_EXCHANGE } from '../src/index.js';
import {
  basic,
  callApi,
  clientCredentials,
  decodeJwt,
  postForm,
  startServer,
  userTokens,
} from './helpers.js';

const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';

async function assertion(
  secretOrKey: CryptoKey | Uint8Array | import('node:crypto').KeyObject,
  claims: Record<string, unknown>,
  alg: string,
) {
  return new SignJWT(claims)
    .setProtectedHeader({ alg })
    .setJti(randomUUID())
    .setIssuedAt()
    .setExpirationTime('60s')
    .sign(secretOrKey);
}

describe('client assertions (RFC 7523 2.2)', () => {
  it('accepts client_secret_jwt and rejects a replayed assertion', async () => {
    const server = await startServer();
    const secret = new TextEncoder().encode('service-jwt-secret-0123456789abcdef0123456789');
    const jwt = await assertion(
      secret,
      { iss: 'service-jwt', sub: 'service-jwt', aud: server.tokenUrl },
      'HS256',
    );
    const form = {
      grant_type: 'client_credentials',
      client_id: 'service-jwt',
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: jwt,
    };
    const ok = await postForm(server.tokenUrl, form);
    expect(ok.status).toBe(200);
    expect(ok.body.scope).toBe('api:read api:write');
    expect((await callApi(server, '/hello', ok.body.access_token)).status).toBe(200);
    const replay = await postForm(server.tokenUrl, form);
    expect(replay.status).toBe(401);
    expect(replay.body.error).toBe('invalid_client');
  });

  it('accepts private_key_jwt with the registered key only', async () => {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const server = await startServer({
      clients: [
        ...DEFAULT_CLIENTS,
        {
          clientId: 'service-key',
          tokenEndpointAuthMethod: 'private_key_jwt',
          jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1' }] },
          grantTypes: ['client_credentials'],
          scope: 'api:read',
        },
      ],
    });
    const send = async (key: import('node:crypto').KeyObject) =>
      postForm(server.tokenUrl, {
        grant_type: 'client_credentials',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: await assertion(
          key,
          { iss: 'service-key', sub: 'service-key', aud: server.issuer },
          'ES256',
        ),
      });
    const ok = await send(privateKey);
    expect(ok.status).toBe(200);
    expect(decodeJwt(ok.body.access_token).client_id).toBe('service-key');
    const wrong = await send(other.privateKey);
    expect(wrong.status).toBe(401);
    expect(wrong.body.error).toBe('invalid_client');
  });
});

describe('token exchange (RFC 8693)', () => {
  it('exchanges a user token for one the API accepts, never outliving it', async () => {
    const server = await startServer({ accessTokenTtlSeconds: 120 });
    const user = await userTokens(server, 'alice');
    const result = await postForm(
      server.tokenUrl,
      {
        grant_type: TOKEN_EXCHANGE,
        subject_token: user.access_token,
        subject_token_type: ACCESS_TOKEN,
        audience: server.apiUrl,
      },
      basic('service-exchange', 'service-exchange-secret'),
    );
    expect(result.status).toBe(200);
    expect(result.body).toMatchObject({
      issued_token_type: ACCESS_TOKEN,
      token_type: 'Bearer',
      scope: 'api:read',
    });
    const claims = decodeJwt(result.body.access_token);
    expect(claims).toMatchObject({ sub: 'alice', client_id: 'service-exchange', aud: server.apiUrl });
    expect(claims.exp).toBeLessThanOrEqual(decodeJwt(user.access_token).exp);
    const hello = await callApi(server, '/hello', result.body.access_token);
    expect(hello.body).toMatchObject({ ok: true, sub: 'alice', client_id: 'service-exchange' });
    expect(server.stats.tokenRequestsByGrant[TOKEN_EXCHANGE]).toBe(1);
  });

  it('records the actor and rejects bad subject tokens, types and audiences', async () => {
    const server = await startServer();
    const subject = await userTokens(server, 'bob');
    const actor = await clientCredentials(server);
    const auth = basic('service-exchange', 'service-exchange-secret');
    const withActor = await postForm(
      server.tokenUrl,
      {
        grant_type: TOKEN_EXCHANGE,
        subject_token: subject.access_token,
        subject_token_type: ACCESS_TOKEN,
        actor_token: actor,
        actor_token_type: ACCESS_TOKEN,
      },
      auth,
    );
    expect(withActor.status).toBe(200);
    expect(decodeJwt(withActor.body.access_token).act).toEqual({ sub: 'service-basic' });

    const forged = await postForm(
      server.tokenUrl,
      {
        grant_type: TOKEN_EXCHANGE,
        subject_token: `${subject.access_token}x`,
        subject_token_type: ACCESS_TOKEN,
      },
      auth,
    );
    expect(forged.status).toBe(400);
    expect(forged.body).toMatchObject({
      error: 'invalid_grant',
      error_description: 'subject_token is invalid, expired or revoked',
    });

    server.revokeAll();
    const revoked = await postForm(
      server.tokenUrl,
      { grant_type: TOKEN_EXCHANGE, subject_token: subject.access_token, subject_token_type: ACCESS_TOKEN },
      auth,
    );
    expect(revoked.body.error).toBe('invalid_grant');

    const type = await postForm(
      server.tokenUrl,
      {
        grant_type: TOKEN_EXCHANGE,
        subject_token: 'x',
        subject_token_type: 'urn:ietf:params:oauth:token-type:saml2',
      },
      auth,
    );
    expect(type.body.error).toBe('invalid_request');

    const fresh = await clientCredentials(server);
    const audience = await postForm(
      server.tokenUrl,
      {
        grant_type: TOKEN_EXCHANGE,
        subject_token: fresh,
        subject_token_type: ACCESS_TOKEN,
        audience: 'https://elsewhere.example',
      },
      auth,
    );
    expect(audience.body.error).toBe('invalid_target');

    const notAllowed = await postForm(
      server.tokenUrl,
      { grant_type: TOKEN_EXCHANGE, subject_token: fresh, subject_token_type: ACCESS_TOKEN },
      basic('service-basic', 'service-basic-secret'),
    );
    expect(notAllowed.body).toMatchObject({
      error: 'invalid_request',
      error_description: 'requested grant type is not allowed for this client',
    });
  });
});

describe('JWT bearer grant (RFC 7523 2.1)', () => {
  it('issues a user token for an assertion from a trusted issuer only', async () => {
    const idp = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const server = await startServer({
      assertionIssuers: [{ issuer: 'https://idp.example', jwks: { keys: [await exportJWK(idp.publicKey)] } }],
    });
    const auth = basic('service-exchange', 'service-exchange-secret');
    const good = await assertion(
      idp.privateKey,
      { iss: 'https://idp.example', sub: 'carol', aud: server.issuer },
      'ES256',
    );
    const result = await postForm(server.tokenUrl, { grant_type: JWT_BEARER, assertion: good }, auth);
    expect(result.status).toBe(200);
    const hello = await callApi(server, '/hello', result.body.access_token);
    expect(hello.body).toMatchObject({ sub: 'carol', client_id: 'service-exchange' });

    const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const forged = await assertion(
      stranger.privateKey,
      { iss: 'https://idp.example', sub: 'carol', aud: server.issuer },
      'ES256',
    );
    const rejected = await postForm(server.tokenUrl, { grant_type: JWT_BEARER, assertion: forged }, auth);
    expect(rejected.status).toBe(400);
    expect(rejected.body.error).toBe('invalid_grant');
    const untrusted = await assertion(
      idp.privateKey,
      { iss: 'https://other.example', sub: 'carol', aud: server.issuer },
      'ES256',
    );
    expect(
      (await postForm(server.tokenUrl, { grant_type: JWT_BEARER, assertion: untrusted }, auth)).body.error,
    ).toBe('invalid_grant');
  });
});

describe('mutual TLS (RFC 8705)', () => {
  function httpsRequest(
    url: string,
    options: {
      method?: string;
      body?: string;
      headers?: Record<string, string>;
      key?: string;
      cert?: string;
      ca: string;
    },
  ): Promise<{ status: number; body: any }> {
    return new Promise((resolve, reject) => {
      const req = request(
        url,
        {
          method: options.method ?? 'GET',
          headers: options.headers,
          key: options.key,
          cert: options.cert,
          ca: options.ca,
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk) => (text += chunk));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined }),
          );
        },
      );
      req.on('error', reject);
      req.end(options.body);
    });
  }

  it('authenticates tls_client_auth clients and binds their tokens to the certificate', async () => {
    const pki = createTestPki();
    const server = await startServer({
      mtls: { key: pki.server.key, cert: pki.server.cert, ca: pki.ca.cert },
      clients: [
        ...DEFAULT_CLIENTS,
        {
          clientId: 'service-mtls',
          tokenEndpointAuthMethod: 'tls_client_auth',
          tlsClientAuthSanDns: 'service-mtls.test',
          certificateBound: true,
          grantTypes: ['client_credentials'],
          scope: 'api:read',
        },
      ],
    });
    const discovery = await (await fetch(`${server.issuer}/.well-known/openid-configuration`)).json();
    expect(discovery.mtls_endpoint_aliases).toEqual({ token_endpoint: server.mtls!.tokenUrl });
    expect(discovery.tls_client_certificate_bound_access_tokens).toBe(true);
    expect(discovery.token_endpoint_auth_methods_supported).toContain('tls_client_auth');

    const cert = pki.client('service-mtls.test');
    const token = await httpsRequest(server.mtls!.tokenUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials&client_id=service-mtls',
      ...cert,
      ca: pki.ca.cert,
    });
    expect(token.status).toBe(200);
    expect(decodeJwt(token.body.access_token).cnf['x5t#S256']).toMatch(/^[\w-]{43}$/);

    const api = `${server.mtls!.apiUrl}/hello`;
    const auth = { authorization: `Bearer ${token.body.access_token}` };
    expect((await httpsRequest(api, { headers: auth, ...cert, ca: pki.ca.cert })).status).toBe(200);
    const otherCert = pki.client('service-mtls.test');
    expect((await httpsRequest(api, { headers: auth, ...otherCert, ca: pki.ca.cert })).status).toBe(401);
    expect((await callApi(server, '/hello', token.body.access_token)).status).toBe(401);

    for (const wrong of [
      pki.untrustedClient('service-mtls.test'),
      pki.client('someone-else.test'),
      undefined,
    ]) {
      const denied = await httpsRequest(server.mtls!.tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'grant_type=client_credentials&client_id=service-mtls',
        ...wrong,
        ca: pki.ca.cert,
      });
      expect(denied.status).toBe(401);
      expect(denied.body.error).toBe('invalid_client');
    }
  });
});

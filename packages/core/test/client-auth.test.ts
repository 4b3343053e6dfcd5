import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { inspect } from 'node:util';
import {
  DEFAULT_CLIENTS,
  type RunningAuthorizationServer,
  startAuthorizationServer,
} from '@keyfob/authorization-server';
import { clientCredentials, passwordGrant, TokenEndpointError, TokenManager } from '@keyfob/core';
import { startServer, type TestServer } from '@keyfob/testing';
import { afterEach, describe, expect, it } from 'vitest';

const running: { close(): Promise<unknown> }[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.close()));
});

const JWT_SECRET = 'service-jwt-secret-0123456789abcdef0123456789';

function claimsOf(jwt: string): Record<string, any> {
  return JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8'));
}
function headerOf(jwt: string): Record<string, any> {
  return JSON.parse(Buffer.from(jwt.split('.')[0]!, 'base64url').toString('utf8'));
}

/** The authorization server with one private_key_jwt client per given public key. */
async function serverWithKeys(keys: Record<string, KeyObject>): Promise<RunningAuthorizationServer> {
  const server = await startAuthorizationServer({
    clients: [
      ...DEFAULT_CLIENTS,
      ...Object.entries(keys).map(([clientId, publicKey]) => ({
        clientId,
        tokenEndpointAuthMethod: 'private_key_jwt' as const,
        jwks: { keys: [{ ...publicKey.export({ format: 'jwk' }), kid: `${clientId}-key` }] },
        grantTypes: ['client_credentials' as const],
        scope: 'api:read',
      })),
    ],
  });
  running.push(server);
  return server;
}

async function callApi(server: RunningAuthorizationServer, header: string) {
  const res = await fetch(`${server.apiUrl}/hello`, { headers: { authorization: header } });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

/** A proxy in front of the token endpoint that answers 503 to the first request, then forwards. */
async function flakyProxy(target: string): Promise<TestServer> {
  let first = true;
  const proxy = await startServer(async (req) => {
    if (first) {
      first = false;
      return { status: 503, body: { error: 'temporarily_unavailable' } };
    }
    const res = await fetch(target, {
      method: 'POST',
      headers: { 'content-type': req.headers['content-type'] ?? '' },
      body: req.body,
    });
    return { status: res.status, body: await res.json() };
  });
  running.push(proxy);
  return proxy;
}

describe("clientAuth: 'client_secret_jwt'", () => {
  it('gets a token the API accepts with an HS256 assertion (iss = sub = client id, aud = token endpoint)', async () => {
    const server = await startAuthorizationServer();
    running.push(server);
    const tokens = new TokenManager({
      tokenUrl: server.tokenUrl,
      grant: clientCredentials({
        clientId: 'service-jwt',
        clientSecret: JWT_SECRET,
        clientAuth: 'client_secret_jwt',
      }),
    });
    running.push(tokens);
    const hello = await callApi(server, await tokens.getAuthorizationHeader());
    expect(hello.body).toMatchObject({ ok: true, client_id: 'service-jwt' });

    // What was sent, recorded by a plain token endpoint:
    const proxy = await startServer(() => ({
      body: { access_token: 'opaque', token_type: 'Bearer', expires_in: 60 },
    }));
    running.push(proxy);
    const recorded = new TokenManager({
      tokenUrl: proxy.url,
      grant: clientCredentials({
        clientId: 'service-jwt',
        clientSecret: JWT_SECRET,
        clientAuth: 'client_secret_jwt',
      }),
    });
    running.push(recorded);
    await recorded.getToken();
    const sent = proxy.requests[0]!;
    expect(sent.headers.authorization).toBeUndefined();
    expect(sent.params.client_secret).toBeUndefined();
    expect(sent.params.client_assertion_type).toBe('urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
    expect(headerOf(sent.params.client_assertion!)).toMatchObject({ alg: 'HS256', typ: 'JWT' });
    const claims = claimsOf(sent.params.client_assertion!);
    expect(claims).toMatchObject({ iss: 'service-jwt', sub: 'service-jwt', aud: proxy.url });
    expect(claims.exp - claims.iat).toBe(60);
    expect(claims.jti).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('makes a new assertion for every attempt: a retry after a 503 is accepted by the replay-checking server', async () => {
    const server = await startAuthorizationServer();
    running.push(server);
    const proxy = await flakyProxy(server.tokenUrl);
    const tokens = new TokenManager({
      tokenUrl: proxy.url,
      retryBaseDelayMs: 1,
      grant: clientCredentials({
        clientId: 'service-jwt',
        clientSecret: JWT_SECRET,
        clientAuth: 'client_secret_jwt',
        assertionAudience: server.issuer,
      }),
    });
    running.push(tokens);
    const token = await tokens.getToken();
    expect(claimsOf(token.accessToken).client_id).toBe('service-jwt');
    expect(proxy.requests).toHaveLength(2);
    const [a, b] = proxy.requests.map((r) => claimsOf(r.params.client_assertion!));
    expect(a!.jti).not.toBe(b!.jti);
    expect(a!.aud).toBe(server.issuer);
  });
});

describe("clientAuth: 'private_key_jwt'", () => {
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const ed = generateKeyPairSync('ed25519');

  it('signs with a KeyObject, a PEM string or a JWK; the algorithm follows the key', async () => {
    const server = await serverWithKeys({
      'svc-ec': ec.publicKey,
      'svc-rsa': rsa.publicKey,
      'svc-ed': ed.publicKey,
    });
    const cases = [
      { clientId: 'svc-ec', privateKey: ec.privateKey },
      { clientId: 'svc-rsa', privateKey: rsa.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string },
      {
        clientId: 'svc-rsa',
        privateKey: rsa.privateKey.export({ format: 'jwk' }),
        algorithm: 'PS256' as const,
      },
      { clientId: 'svc-ed', privateKey: ed.privateKey.export({ format: 'jwk' }), keyId: 'svc-ed-key' },
    ];
    for (const { clientId, ...key } of cases) {
      const tokens = new TokenManager({
        tokenUrl: server.tokenUrl,
        grant: clientCredentials({ clientId, clientAuth: 'private_key_jwt', ...key }),
      });
      running.push(tokens);
      const hello = await callApi(server, await tokens.getAuthorizationHeader());
      expect(hello.body).toMatchObject({ ok: true, client_id: clientId });
    }
  });

  it('an assertion the server rejects is a TokenEndpointError with a hint, and no key anywhere', async () => {
    const server = await serverWithKeys({ 'svc-ec': ec.publicKey });
    const wrong = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const pem = wrong.export({ format: 'pem', type: 'pkcs8' }) as string;
    const jwk = wrong.export({ format: 'jwk' });
    const grant = clientCredentials({ clientId: 'svc-ec', clientAuth: 'private_key_jwt', privateKey: pem });
    const tokens = new TokenManager({ tokenUrl: server.tokenUrl, grant });
    running.push(tokens);
    const error = await tokens.getToken().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(TokenEndpointError);
    const err = error as TokenEndpointError;
    expect(err.status).toBe(401);
    expect(err.error).toBe('invalid_client');
    expect(err.hint).toContain('private_key_jwt');
    const printed = [
      err.message,
      JSON.stringify(err),
      inspect(err, { depth: 5 }),
      inspect(grant),
      JSON.stringify(grant),
    ];
    for (const text of printed) {
      expect(text).not.toContain(jwk.d!);
      expect(text).not.toContain(pem.split('\n')[1]!);
      expect(text).not.toContain('client_assertion=');
    }
    expect(inspect(grant)).toContain('private_key_jwt');
  });

  it('rejects unusable keys when the grant is built, without quoting them', () => {
    const base = { clientId: 'x', clientAuth: 'private_key_jwt' as const };
    expect(() => clientCredentials(base)).toThrow(/needs privateKey/);
    expect(() =>
      clientCredentials({
        ...base,
        privateKey: '-----BEGIN PRIVATE KEY-----\nnot-a-key\n-----END PRIVATE KEY-----',
      }),
    ).toThrow(/not a usable private key/);
    expect(() => clientCredentials({ ...base, privateKey: ec.privateKey, algorithm: 'RS256' })).toThrow(
      /does not fit/,
    );
    expect(() => clientCredentials({ ...base, privateKey: ec.publicKey })).toThrow(
      /not a usable private key/,
    );
    expect(() => clientCredentials({ clientId: 'x', clientAuth: 'client_secret_jwt' })).toThrow(
      /clientSecret/,
    );
  });
});

describe('every grant that authenticates a client', () => {
  it('passwordGrant sends a private_key_jwt assertion and no secret', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const endpoint = await startServer(() => ({
      body: { access_token: 'user-token', token_type: 'Bearer', expires_in: 60 },
    }));
    running.push(endpoint);
    const tokens = new TokenManager({
      tokenUrl: endpoint.url,
      grant: passwordGrant({
        username: 'u',
        password: 'p',
        clientId: 'app',
        clientAuth: 'private_key_jwt',
        privateKey,
        keyId: 'k1',
      }),
    });
    running.push(tokens);
    await tokens.getToken();
    const sent = endpoint.requests[0]!;
    expect(sent.headers.authorization).toBeUndefined();
    expect(sent.params).toMatchObject({ grant_type: 'password', client_id: 'app' });
    expect(headerOf(sent.params.client_assertion!)).toMatchObject({ alg: 'ES256', kid: 'k1' });
    expect(claimsOf(sent.params.client_assertion!)).toMatchObject({
      iss: 'app',
      sub: 'app',
      aud: endpoint.url,
    });
  });
});

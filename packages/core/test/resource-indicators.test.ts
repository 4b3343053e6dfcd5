import { randomUUID } from 'node:crypto';
import {
  authorizationCode,
  clientCredentials,
  type Grant,
  jwtBearer,
  MemoryTokenStore,
  passwordGrant,
  TokenManager,
  tokenExchange,
} from '@keyfob/core';
import { startServer, type TestServer } from '@keyfob/testing';
import { afterEach, describe, expect, it } from 'vitest';

// RFC 8707: `resource` is first-class on every grant that POSTs to the token endpoint, is sent with
// every request, and tells cached tokens apart (two APIs never share a token).

const running: { close(): Promise<unknown> }[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.close()));
});

function track<T extends { close(): Promise<unknown> }>(x: T): T {
  running.push(x);
  return x;
}

/** A token endpoint that issues a new opaque token for every request that authenticated somehow. */
async function tokenEndpoint(): Promise<TestServer> {
  return track(
    await startServer((req) => {
      const authenticated = /^Basic /i.test(req.headers.authorization ?? '') || req.params.client_id;
      if (!authenticated && !req.params.assertion) return { status: 401, body: { error: 'invalid_client' } };
      return { body: { access_token: `at-${randomUUID()}`, token_type: 'Bearer', expires_in: 3600 } };
    }),
  );
}

const A = 'https://a.api.example.com/';
const B = 'https://b.api.example.com/';

const grants: Record<string, (resource: string) => Grant> = {
  clientCredentials: (resource) => clientCredentials({ clientId: 'c', clientSecret: 's', resource }),
  passwordGrant: (resource) =>
    passwordGrant({ username: 'u', password: 'p', clientId: 'c', clientSecret: 's', resource }),
  jwtBearer: (resource) => jwtBearer({ assertion: 'a.b.c', resource }),
  tokenExchange: (resource) => tokenExchange({ clientId: 'c', clientSecret: 's', resource }),
};

describe('resource indicators (RFC 8707)', () => {
  for (const [name, grantFor] of Object.entries(grants)) {
    it(`${name}: resource is sent and is part of the cache key (a shared store keeps tokens apart)`, async () => {
      const server = await tokenEndpoint();
      const tokenUrl = `${server.url}/token`;
      const store = new MemoryTokenStore();
      const call = name === 'tokenExchange' ? { subjectToken: 'subject-token' } : undefined;
      const forA = track(new TokenManager({ tokenUrl, store, grant: grantFor(A) }));
      const forB = track(new TokenManager({ tokenUrl, store, grant: grantFor(B) }));
      const alsoA = track(new TokenManager({ tokenUrl, store, grant: grantFor(A) }));

      const a = await forA.getToken(call);
      const b = await forB.getToken(call);
      const a2 = await alsoA.getToken(call);

      expect(server.requests.map((r) => r.params.resource)).toEqual([A, B]);
      expect(b.accessToken).not.toBe(a.accessToken);
      expect(a2.accessToken).toBe(a.accessToken); // same resource: the shared token
    });
  }

  it('per call, getToken({ extraParams: { resource } }) is part of the cache key too', async () => {
    const server = await tokenEndpoint();
    const tokens = track(
      new TokenManager({
        tokenUrl: `${server.url}/token`,
        grant: clientCredentials({ clientId: 'c', clientSecret: 's' }),
      }),
    );
    const a = await tokens.getToken({ extraParams: { resource: A } });
    const b = await tokens.getToken({ extraParams: { resource: B } });
    expect(await tokens.getToken({ extraParams: { resource: A } })).toBe(a);
    expect(b.accessToken).not.toBe(a.accessToken);
    expect(server.requests.map((r) => r.params.resource)).toEqual([A, B]);
  });
});

describe('authorizationCode', () => {
  it('sends resource with the authorization request (RFC 8707 2.1), and per-call extraParams win', () => {
    const grant = authorizationCode({
      clientId: 'web',
      redirectUri: 'http://127.0.0.1/callback',
      authorizeUrl: 'https://auth.example.com/authorize',
      resource: A,
    });
    expect(new URL(grant.authorizationUrl().url).searchParams.get('resource')).toBe(A);
    const other = grant.authorizationUrl({ extraParams: { resource: B } });
    expect(new URL(other.url).searchParams.get('resource')).toBe(B);
    const none = authorizationCode({
      clientId: 'web',
      redirectUri: 'http://127.0.0.1/callback',
      authorizeUrl: 'https://auth.example.com/authorize',
    });
    expect(new URL(none.authorizationUrl().url).searchParams.has('resource')).toBe(false);
  });
});

import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { inspect } from 'node:util';
import { type RunningAuthorizationServer, startAuthorizationServer } from '@keyfob/authorization-server';
import {
  bearerToken,
  ConfigurationError,
  clientCredentials,
  jwtBearer,
  LoginRequiredError,
  MemoryTokenStore,
  passwordGrant,
  TokenEndpointError,
  TokenManager,
  TokenType,
  tokenExchange,
} from '@keyfob/core';
import { startServer } from '@keyfob/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { signJwt } from '../src/jwt.js';

const running: { close(): Promise<unknown> }[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.close()));
});

const EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

function claimsOf(jwt: string): Record<string, any> {
  return JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8'));
}

function track<T extends { close(): Promise<unknown> }>(x: T): T {
  running.push(x);
  return x;
}

async function serviceToken(server: RunningAuthorizationServer): Promise<string> {
  const tokens = track(
    new TokenManager({
      tokenUrl: server.tokenUrl,
      grant: clientCredentials({ clientId: 'service-basic', clientSecret: 'service-basic-secret' }),
    }),
  );
  return (await tokens.getToken({ forceRefresh: true })).accessToken;
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
}

describe('tokenExchange (RFC 8693)', () => {
  it('exchanges the subject token, caches per subject token, single-flight', async () => {
    const server = track(await startAuthorizationServer());
    const exchange = track(
      new TokenManager({
        issuer: server.issuer,
        grant: tokenExchange({
          clientId: 'service-exchange',
          clientSecret: 'service-exchange-secret',
          audience: server.apiUrl,
        }),
      }),
    );
    const alice = await serviceToken(server);
    const results = await Promise.all(
      Array.from({ length: 5 }, () => exchange.getToken({ subjectToken: alice })),
    );
    expect(new Set(results.map((t) => t.accessToken)).size).toBe(1);
    expect(server.stats.tokenRequestsByGrant[EXCHANGE]).toBe(1);
    const claims = claimsOf(results[0]!.accessToken);
    expect(claims).toMatchObject({ sub: 'service-basic', client_id: 'service-exchange', aud: server.apiUrl });
    expect(claims.exp).toBeLessThanOrEqual(claimsOf(alice).exp);
    const hello = await fetch(`${server.apiUrl}/hello`, {
      headers: { authorization: await exchange.getAuthorizationHeader({ subjectToken: alice }) },
    });
    expect(hello.status).toBe(200);
    expect(server.stats.tokenRequestsByGrant[EXCHANGE]).toBe(1);

    const other = await serviceToken(server);
    const second = await exchange.getToken({ subjectToken: other });
    expect(second.accessToken).not.toBe(results[0]!.accessToken);
    expect(server.stats.tokenRequestsByGrant[EXCHANGE]).toBe(2);
  });

  it('sends the actor token and the RFC 8693 fields; never caches past the subject token exp', async () => {
    const endpoint = track(
      await startServer(() => ({
        body: { access_token: 'exchanged', token_type: 'Bearer', expires_in: 3600 },
      })),
    );
    const exp = Math.floor(Date.now() / 1000) + 30;
    const subject = `e30.${Buffer.from(JSON.stringify({ sub: 'alice', exp })).toString('base64url')}.sig`;
    const tokens = track(
      new TokenManager({
        tokenUrl: endpoint.url,
        grant: tokenExchange({
          clientId: 'svc',
          clientSecret: 'svc-secret',
          clientAuth: 'body',
          resource: 'https://api.example.com/',
          scope: 'orders:read',
          actorToken: async () => 'actor-token-value',
        }),
      }),
    );
    const token = await tokens.getToken({ subjectToken: subject });
    expect(token.expiresAt).toBeLessThanOrEqual(exp * 1000);
    expect(endpoint.requests[0]!.params).toMatchObject({
      grant_type: EXCHANGE,
      subject_token: subject,
      subject_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      actor_token: 'actor-token-value',
      actor_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      resource: 'https://api.example.com/',
      scope: 'orders:read',
      client_id: 'svc',
    });
  });

  it('requestedTokenType for an ID token: the N_A token_type of RFC 8693 2.2.1 is accepted, getToken() hands it out', async () => {
    const endpoint = track(
      await startServer(() => ({
        body: {
          access_token: 'issued-id-token',
          issued_token_type: TokenType.IdToken,
          token_type: 'N_A',
          expires_in: 600,
        },
      })),
    );
    const tokens = track(
      new TokenManager({
        tokenUrl: endpoint.url,
        grant: tokenExchange({
          clientId: 'svc',
          clientSecret: 'svc-secret',
          requestedTokenType: TokenType.IdToken,
        }),
      }),
    );
    const token = await tokens.getToken({ subjectToken: 'subject-token-value' });
    expect(token.accessToken).toBe('issued-id-token');
    expect(token.raw).toMatchObject({ issued_token_type: TokenType.IdToken, token_type: 'N_A' });
    expect(endpoint.requests[0]!.params.requested_token_type).toBe(TokenType.IdToken);
    // N_A without issued_token_type is no token exchange answer: still refused.
    const plain = track(
      await startServer(() => ({ body: { access_token: 'x', token_type: 'N_A', expires_in: 600 } })),
    );
    const other = track(
      new TokenManager({
        tokenUrl: plain.url,
        grant: clientCredentials({ clientId: 'svc', clientSecret: 'svc-secret' }),
        retries: 0,
      }),
    );
    await expect(other.getToken()).rejects.toMatchObject({ code: 'KEYFOB_TOKEN_RESPONSE' });
  });

  it("an injected clock: the cap is the subject token's exp on the manager's clock; once that passes, the expired subject token is not exchanged", async () => {
    let n = 0;
    const endpoint = track(
      await startServer(() => ({
        body: { access_token: `exchanged-${++n}`, token_type: 'Bearer', expires_in: 3600 },
      })),
    );
    // Far from the real time, so a cap computed on the real clock would not hold.
    let now = Date.UTC(2035, 0, 1);
    const exp = Math.floor(now / 1000) + 600;
    const subject = `e30.${Buffer.from(JSON.stringify({ sub: 'alice', exp })).toString('base64url')}.sig`;
    const tokens = track(
      new TokenManager({
        tokenUrl: endpoint.url,
        clock: { now: () => now },
        grant: tokenExchange({ clientId: 'svc', clientSecret: 'svc-secret', clientAuth: 'body' }),
      }),
    );
    const first = await tokens.getToken({ subjectToken: subject });
    expect(first.expiresAt).toBeLessThanOrEqual(exp * 1000);
    expect(first.expiresAt).toBeGreaterThan(now + 500_000);
    expect((await tokens.getToken({ subjectToken: subject })).accessToken).toBe('exchanged-1');
    now = exp * 1000 + 1_000; // the subject token has expired, and so has the exchanged one
    const expired = await rejection(tokens.getToken({ subjectToken: subject }));
    expect(expired).toBeInstanceOf(LoginRequiredError);
    expect((expired as Error).message).toMatch(/subject token expired 1 s ago/);
    expect(endpoint.requests).toHaveLength(1); // nothing sent for it
  });

  it('a subject token with under a second left: the exchanged token expires with it, not a second later', async () => {
    const endpoint = track(
      await startServer(() => ({
        body: { access_token: 'exchanged-short', token_type: 'Bearer', expires_in: 3600 },
      })),
    );
    const now = Date.UTC(2035, 0, 1);
    const expMs = now + 400;
    const subject = `e30.${Buffer.from(JSON.stringify({ sub: 'alice', exp: expMs / 1000 })).toString('base64url')}.sig`;
    const tokens = track(
      new TokenManager({
        tokenUrl: endpoint.url,
        clock: { now: () => now },
        grant: tokenExchange({ clientId: 'svc', clientSecret: 'svc-secret', clientAuth: 'body' }),
      }),
    );
    const token = await tokens.getToken({ subjectToken: subject });
    expect(token.expiresAt).toBeLessThanOrEqual(expMs);
    expect(token.expiresAt).toBeGreaterThan(now);
  });

  it('a subject token the server rejects is a TokenEndpointError that does not quote it', async () => {
    const server = track(await startAuthorizationServer());
    const grant = tokenExchange({ clientId: 'service-exchange', clientSecret: 'service-exchange-secret' });
    const tokens = track(new TokenManager({ tokenUrl: server.tokenUrl, grant }));
    const forged = `${await serviceToken(server)}x`;
    const error = await rejection(tokens.getToken({ subjectToken: forged }));
    expect(error).toBeInstanceOf(TokenEndpointError);
    const err = error as TokenEndpointError;
    expect(err).toMatchObject({ status: 400, error: 'invalid_grant' });
    expect(err.hint).toMatch(/subject \(or actor\) token was refused/);
    for (const text of [err.message, JSON.stringify(err), inspect(err, { depth: 5 }), inspect(grant)]) {
      expect(text).not.toContain(forged.slice(20, 60));
      expect(text).not.toContain('service-exchange-secret');
    }
    expect(bearerToken('Bearer abc.def-ghi')).toBe('abc.def-ghi');
    expect(bearerToken(['bearer xyz'])).toBe('xyz');
    expect(bearerToken('Basic abc')).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
    const missing = await rejection(tokens.getToken({ subjectToken: bearerToken(undefined) }));
    expect(missing).toBeInstanceOf(ConfigurationError);
    expect((missing as Error).message).toMatch(/getToken\(\{ subjectToken \}\)/);
  });
});

describe('jwtBearer (RFC 7523 2.1)', () => {
  const idp = generateKeyPairSync('ec', { namedCurve: 'P-256' });

  async function bearerServer() {
    return track(
      await startAuthorizationServer({
        assertionIssuers: [
          { issuer: 'https://idp.example', jwks: { keys: [idp.publicKey.export({ format: 'jwk' })] } },
        ],
      }),
    );
  }

  function sign(sub: string, aud: string, key = idp.privateKey): string {
    const iat = Math.floor(Date.now() / 1000);
    return signJwt(
      { typ: 'JWT' },
      { iss: 'https://idp.example', sub, aud, iat, exp: iat + 60, jti: randomUUID() },
      key,
      'ES256',
    );
  }

  it('calls the assertion function for every request, per subject, with client assertion auth', async () => {
    const server = await bearerServer();
    const calls: (string | undefined)[] = [];
    const tokens = track(
      new TokenManager({
        issuer: server.issuer,
        grant: jwtBearer({
          clientId: 'service-jwt',
          clientSecret: 'service-jwt-secret-0123456789abcdef0123456789',
          clientAuth: 'client_secret_jwt',
          assertion: ({ subject, tokenUrl }) => {
            calls.push(subject);
            return sign(subject ?? 'nobody', tokenUrl);
          },
        }),
      }),
    );
    const carol = await tokens.getToken({ subject: 'carol' });
    const dave = await tokens.getToken({ subject: 'dave' });
    await tokens.getToken({ subject: 'carol' });
    await tokens.getToken({ subject: 'carol', forceRefresh: true });
    expect(calls).toEqual(['carol', 'dave', 'carol']);
    expect(claimsOf(carol.accessToken)).toMatchObject({ sub: 'carol', client_id: 'service-jwt' });
    expect(claimsOf(dave.accessToken).sub).toBe('dave');
    expect(server.stats.tokenRequestsByGrant[BEARER]).toBe(3);
  });

  it('an assertion the server rejects is a TokenEndpointError without the assertion', async () => {
    const server = await bearerServer();
    const stranger = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const forged = sign('carol', server.issuer, stranger);
    const grant = jwtBearer({
      clientId: 'service-exchange',
      clientSecret: 'service-exchange-secret',
      assertion: forged,
    });
    const tokens = track(new TokenManager({ tokenUrl: server.tokenUrl, grant }));
    const err = (await rejection(tokens.getToken())) as TokenEndpointError;
    expect(err).toBeInstanceOf(TokenEndpointError);
    expect(err).toMatchObject({ status: 400, error: 'invalid_grant' });
    expect(err.hint).toMatch(/assertion was refused/);
    for (const text of [
      err.message,
      JSON.stringify(err),
      inspect(err, { depth: 5 }),
      inspect(grant),
      JSON.stringify(grant),
    ]) {
      expect(text).not.toContain(forged.split('.')[2]!);
    }
    expect(() => jwtBearer({ assertion: '' })).toThrow(ConfigurationError);
  });
});

describe('jwtBearer: managers sharing a store keep identities apart', () => {
  /** Issues `at-<sub of the assertion>-<n>`. */
  async function issuer() {
    let n = 0;
    return track(
      await startServer((req) => ({
        body: {
          access_token: `at-${claimsOf(String(req.params.assertion)).sub ?? 'opaque'}-${++n}`,
          token_type: 'Bearer',
          expires_in: 3600,
        },
      })),
    );
  }
  const unsigned = (sub: string) =>
    `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ iss: 'https://idp.example', sub })).toString('base64url')}.sig`;

  it('string assertions: one token per iss/sub, shared by managers holding the same identity', async () => {
    const server = await issuer();
    const store = new MemoryTokenStore();
    const manager = (assertion: string) =>
      track(new TokenManager({ tokenUrl: `${server.url}/token`, store, grant: jwtBearer({ assertion }) }));
    const billing = manager(unsigned('billing-sa'));
    const reports = manager(unsigned('reports-sa'));
    const billingAgain = manager(unsigned('billing-sa'));
    expect((await billing.getToken()).accessToken).toBe('at-billing-sa-1');
    expect((await reports.getToken()).accessToken).toBe('at-reports-sa-2');
    expect((await billingAgain.getToken()).accessToken).toBe('at-billing-sa-1');
    expect(server.requests).toHaveLength(2);
  });

  it('function assertions: kept apart unless given the same id', async () => {
    const server = await issuer();
    const store = new MemoryTokenStore();
    const manager = (sub: string, id?: string) =>
      track(
        new TokenManager({
          tokenUrl: `${server.url}/token`,
          store,
          grant: jwtBearer({ assertion: () => unsigned(sub), ...(id ? { id } : {}) }),
        }),
      );
    expect((await manager('billing-sa').getToken()).accessToken).toBe('at-billing-sa-1');
    expect((await manager('reports-sa').getToken()).accessToken).toBe('at-reports-sa-2');
    expect((await manager('a', 'shared-sa').getToken()).accessToken).toBe('at-a-3');
    expect((await manager('a', 'shared-sa').getToken()).accessToken).toBe('at-a-3');
    expect(server.requests).toHaveLength(3);
    expect(() => jwtBearer({ assertion: () => 'x', id: '' })).toThrow(ConfigurationError);
  });
});

describe('jwtBearer: a fresh assertion for every attempt', () => {
  it.each([
    ['form body', undefined],
    ['JSON body', 'json' as const],
  ])(
    'a retried request carries a new assertion from the function (%s), never the one already sent',
    async (_, clientAuth) => {
      let n = 0;
      const server = track(
        await startServer(() =>
          ++n === 1
            ? { status: 503, body: { error: 'temporarily_unavailable' } }
            : { body: { access_token: 'at-1', token_type: 'Bearer', expires_in: 3600 } },
        ),
      );
      let made = 0;
      const tokens = track(
        new TokenManager({
          tokenUrl: `${server.url}/token`,
          retryBaseDelayMs: 1,
          grant: jwtBearer({
            ...(clientAuth ? { clientId: 'svc', clientSecret: 'svc-secret', clientAuth } : {}),
            assertion: () => `a.jwt-${++made}.sig`,
          }),
        }),
      );
      expect((await tokens.getToken()).accessToken).toBe('at-1');
      expect(made).toBe(2);
      expect(server.requests.map((r) => r.params.assertion)).toEqual(['a.jwt-1.sig', 'a.jwt-2.sig']);
    },
  );

  it('a string assertion is what it is: the same on every attempt', async () => {
    let n = 0;
    const server = track(
      await startServer(() =>
        ++n === 1
          ? { status: 503 }
          : { body: { access_token: 'at-1', token_type: 'Bearer', expires_in: 3600 } },
      ),
    );
    const tokens = track(
      new TokenManager({
        tokenUrl: `${server.url}/token`,
        retryBaseDelayMs: 1,
        grant: jwtBearer({ assertion: 'a.b.c' }),
      }),
    );
    await tokens.getToken();
    expect(server.requests.map((r) => r.params.assertion)).toEqual(['a.b.c', 'a.b.c']);
  });
});

describe('client authentication chosen from the metadata', () => {
  it('client_secret_post from discovery: a 401 is one request (no Basic re-encoding retry) on every grant, never quoting the secret', async () => {
    const secret = 'se+cr/et=with special';
    let origin = '';
    const server = track(
      await startServer((req) => {
        if (req.method === 'GET') {
          return {
            body: {
              issuer: origin,
              token_endpoint: `${origin}/token`,
              token_endpoint_auth_methods_supported: ['client_secret_post'],
            },
          };
        }
        return { status: 401, body: { error: 'invalid_client' } };
      }),
    );
    origin = server.origin;
    for (const grant of [
      tokenExchange({ clientId: 'svc', clientSecret: secret }),
      jwtBearer({ clientId: 'svc', clientSecret: secret, assertion: 'a.b.c' }),
      clientCredentials({ clientId: 'svc', clientSecret: secret }),
      passwordGrant({ clientId: 'svc', clientSecret: secret, username: 'u', password: 'p' }),
    ]) {
      server.requests.length = 0;
      const tokens = track(new TokenManager({ issuer: origin, grant }));
      const err = (await rejection(tokens.getToken({ subjectToken: 'subject' }))) as TokenEndpointError;
      expect(err).toBeInstanceOf(TokenEndpointError);
      expect(err.status).toBe(401);
      const posts = server.requests.filter((r) => r.method === 'POST');
      expect(posts).toHaveLength(1);
      expect(posts[0]!.params).toMatchObject({ client_id: 'svc', client_secret: secret });
      expect(posts[0]!.headers.authorization).toBeUndefined();
      expect(`${err.message} ${JSON.stringify(err)} ${inspect(err, { depth: 5 })}`).not.toContain(secret);
    }
  });
});

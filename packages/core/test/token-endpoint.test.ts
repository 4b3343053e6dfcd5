import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:net';
import { inspect } from 'node:util';
import { type Reply, rejection, startServer } from '@keyfob/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode, KeyfobError, TokenEndpointError, TokenResponseError } from '../src/errors.js';
import { clientCredentials, jwtBearer, passwordGrant, TokenManager } from '../src/index.js';
import { postTokenRequest, type TokenEndpointOptions, type TokenRequest } from '../src/token-endpoint.js';

const SECRET = 'client-secret-Zq81';
const REFRESH = 'refresh-token-Hd72x';
const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

async function endpoint(replies: Reply[]) {
  let n = 0;
  const server = await startServer(() => replies[Math.min(n++, replies.length - 1)] as Reply);
  cleanup.push(() => server.close());
  return server;
}

const options = (extra: Partial<TokenEndpointOptions> = {}): TokenEndpointOptions => ({
  timeoutMs: 2_000,
  retries: 2,
  retryBaseDelayMs: 5,
  maxRetryAfterMs: 30_000,
  maxResponseBytes: 65_536,
  fetch: globalThis.fetch,
  userAgent: 'keyfob-test',
  ...extra,
});

const refreshRequest = (replayable: boolean): TokenRequest => ({
  body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: REFRESH, client_secret: SECRET }),
  secrets: [REFRESH, SECRET],
  grantType: 'refresh_token',
  clientAuth: 'body',
  replayable,
});

const basicRequest: TokenRequest = {
  body: new URLSearchParams({ grant_type: 'client_credentials' }),
  headers: { authorization: `Basic ${Buffer.from(`client:${SECRET}`).toString('base64')}` },
  secrets: [SECRET],
  grantType: 'client_credentials',
  clientAuth: 'basic',
};

/** Every printed form of the error, none of which may hold a secret. */
function printed(err: unknown): string {
  const e = err as Error;
  return [String(e), e.message, JSON.stringify(e), inspect(e, { depth: 5 }), e.stack ?? ''].join('\n');
}

async function fails<T extends KeyfobError>(p: Promise<unknown>, type: abstract new (...a: never[]) => T) {
  const err = await rejection(p);
  expect(err).toBeInstanceOf(type);
  const text = printed(err);
  for (const s of [SECRET, REFRESH]) expect(text).not.toContain(s);
  return err as T;
}

/** A port with nothing listening: connecting is refused before anything is sent. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as { port: number };
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe('replayable: false (single-use refresh token or code)', () => {
  it('a 503 is not resent, and the hint says why', async () => {
    const server = await endpoint([{ status: 503, body: { error: 'temporarily_unavailable' } }]);
    const err = await fails(
      postTokenRequest(server.url, refreshRequest(false), options()),
      TokenEndpointError,
    );
    expect(err.status).toBe(503);
    expect(err.attempts).toBe(1);
    expect(err.message).toMatch(/did not resend it/);
    expect(server.requests).toHaveLength(1);
  });

  it('a replayable request is resent on a 503 (3 attempts), and the hint says so', async () => {
    const server = await endpoint([{ status: 503, body: { error: 'temporarily_unavailable' } }]);
    const err = await fails(
      postTokenRequest(server.url, refreshRequest(true), options()),
      TokenEndpointError,
    );
    expect(err.attempts).toBe(3);
    expect(err.message).toMatch(/tried 3 times/);
    expect(server.requests).toHaveLength(3);
  });

  it('a timeout is not resent', async () => {
    const server = await endpoint([{ delayMs: 1_500, body: { access_token: 'late' } }]);
    const err = await fails(
      postTokenRequest(server.url, refreshRequest(false), options({ timeoutMs: 300 })),
      TokenEndpointError,
    );
    expect(err.code).toBe(ErrorCode.TokenEndpointTimeout);
    expect(server.requests).toHaveLength(1);
  });

  it('a connection reset after the request was sent is not resent', async () => {
    const server = await endpoint([{ reset: true }]);
    const err = await fails(
      postTokenRequest(server.url, refreshRequest(false), options()),
      TokenEndpointError,
    );
    expect(err.code).toBe(ErrorCode.TokenEndpointNetwork);
    expect(server.requests).toHaveLength(1);
    expect(err.attempts).toBe(1);
  });

  it('a refused connection (nothing sent) is retried', async () => {
    const port = await closedPort();
    const err = await fails(
      postTokenRequest(`http://127.0.0.1:${port}/token`, refreshRequest(false), options()),
      TokenEndpointError,
    );
    expect(err.code).toBe(ErrorCode.TokenEndpointNetwork);
    expect(err.message).toContain('ECONNREFUSED');
    expect(err.attempts).toBe(3);
  });

  it('a 429 (refused before processing) is retried after Retry-After', async () => {
    const server = await endpoint([
      { status: 429, headers: { 'retry-after': '0' }, body: { error: 'slow_down' } },
      { body: { access_token: 'fresh', token_type: 'Bearer' } },
    ]);
    const body = await postTokenRequest(server.url, refreshRequest(false), options());
    expect(body.access_token).toBe('fresh');
    expect(server.requests).toHaveLength(2);
  });
});

describe('messages', () => {
  it('with retries: 0 no message says it retried', async () => {
    const server = await endpoint([{ status: 502, body: 'Bad gateway' }]);
    const err = await fails(
      postTokenRequest(server.url, basicRequest, options({ retries: 0 })),
      TokenEndpointError,
    );
    expect(err.message).not.toMatch(/retried|tried \d|resend/i);
    const port = await closedPort();
    const net = await fails(
      postTokenRequest(`http://127.0.0.1:${port}/t`, basicRequest, options({ retries: 0 })),
      TokenEndpointError,
    );
    expect(net.message).not.toMatch(/retried|tried \d|resend/i);
    expect(net.attempts).toBe(1);
  });

  it('a 401 to Basic credentials points at the encoding and at clientAuth: body', async () => {
    const server = await endpoint([{ status: 401, body: { error: 'invalid_client' } }]);
    const err = await fails(postTokenRequest(server.url, basicRequest, options()), TokenEndpointError);
    expect(err.hint).toMatch(/client id and client secret/);
    expect(err.hint).toMatch(/encoding/);
    expect(err.hint).toContain("if the provider wants the credentials in the body, set clientAuth: 'body'");
    expect(server.requests).toHaveLength(1);
  });

  it('a 401 hint says what was sent: a password grant without client credentials points at the user, not a Basic header', async () => {
    const server = await endpoint([{ status: 401, body: { error: 'invalid_grant' } }, { status: 401 }]);
    const tokens = new TokenManager({
      tokenUrl: `${server.url}/authorization`,
      grant: passwordGrant({ username: 'alice', password: 'wrong' }),
    });
    try {
      for (let i = 0; i < 2; i++) {
        const err = await fails(tokens.getToken(), TokenEndpointError);
        expect(err.status).toBe(401);
        expect(err.hint).toMatch(/username or password is wrong/);
        expect(err.hint).not.toMatch(/Basic header|basicEncoding/);
      }
      expect(server.requests.map((r) => r.headers.authorization)).toEqual([undefined, undefined]);
    } finally {
      await tokens.close();
    }
    const client = await endpoint([{ status: 401 }]);
    // A grant assertion (made per attempt by a function) is not client authentication.
    for (const assertion of ['a.b.c', () => 'a.b.c']) {
      const noSecret = new TokenManager({ tokenUrl: `${client.url}/token`, grant: jwtBearer({ assertion }) });
      try {
        const err = await fails(noSecret.getToken(), TokenEndpointError);
        expect(err.hint).toMatch(/sent no client secret or assertion/);
      } finally {
        await noSecret.close();
      }
    }
  });

  it.each([
    ['private_key_jwt' as const, /registered for that method with the public key of privateKey/],
    ['client_secret_jwt' as const, /registered for that method with this secret/],
    ['body' as const, /check the client id and client secret, and the client authentication method/],
    ['json' as const, /check the client id and client secret, and the client authentication method/],
  ])('a 401 hint fits the method: %s says nothing of a Basic header', async (clientAuth, expected) => {
    const server = await endpoint([{ status: 401, body: { error: 'invalid_client' } }]);
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const tokens = new TokenManager({
      tokenUrl: `${server.url}/token`,
      retries: 0,
      grant: clientCredentials({
        clientId: 'svc',
        clientAuth,
        ...(clientAuth === 'private_key_jwt'
          ? { privateKey }
          : { clientSecret: 'svc-secret-0123456789abcdef0123456789abcdef' }),
      }),
    });
    try {
      const err = await fails(tokens.getToken(), TokenEndpointError);
      expect(err.hint).toMatch(expected);
      expect(err.hint).not.toMatch(/Basic header|basicEncoding|encoding/);
    } finally {
      await tokens.close();
    }
  });

  it.each([
    [400, /malformed/i],
    [403, /permission/],
    [404, /Wrong token URL/],
  ])('%i gets the troubleshooting-guide hint and is not retried', async (status, hint) => {
    const server = await endpoint([{ status, body: { error: 'x' } }]);
    const err = await fails(postTokenRequest(server.url, basicRequest, options()), TokenEndpointError);
    expect(err.hint).toMatch(hint);
    expect(server.requests).toHaveLength(1);
  });

  it('a 302 with an unparsable Location is a redirect error, sent once', async () => {
    const server = await endpoint([{ status: 302, headers: { location: 'http://[::1' } }]);
    const err = await fails(postTokenRequest(server.url, basicRequest, options()), TokenEndpointError);
    expect(err.code).toBe(ErrorCode.TokenEndpointRedirect);
    expect(err.status).toBe(302);
    expect(err.message).toContain('unparsable Location');
    expect(server.requests).toHaveLength(1);
  });
});

describe('redaction on every path', () => {
  it('a 200 with an OAuth error echoing the secret and refresh token does not quote them', async () => {
    const server = await endpoint([
      {
        body: {
          error: 'invalid_grant',
          error_description: `refresh_token ${REFRESH} unknown for client secret ${SECRET}`,
        },
      },
    ]);
    const err = await fails(
      postTokenRequest(server.url, refreshRequest(true), options()),
      TokenResponseError,
    );
    expect(err.message).toContain('invalid_grant');
    expect(err.message).toContain('[REDACTED]');
    expect(server.requests).toHaveLength(1);
  });

  it('a 4xx error echoing the secret does not quote it', async () => {
    const server = await endpoint([
      { status: 400, body: { error: 'invalid_request', message: `bad ${SECRET}` } },
    ]);
    const err = await fails(
      postTokenRequest(server.url, refreshRequest(true), options()),
      TokenEndpointError,
    );
    expect(err.errorDescription).toBe('bad [REDACTED]');
  });

  it('an invalid-JSON body starting with an access_token quotes no token prefix', async () => {
    const token = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0';
    const server = await endpoint([
      {
        headers: { 'content-type': 'application/json' },
        body: `{"access_token":"${token}","token_type":"Bearer","expires_in":36`,
      },
    ]);
    const err = await fails(postTokenRequest(server.url, basicRequest, options()), TokenResponseError);
    expect(err.message).toMatch(/not JSON/);
    expect(printed(err)).not.toContain('eyJhbGci');
    expect(server.requests).toHaveLength(1);
  });

  it('a plain-text body echoing the secret is quoted redacted', async () => {
    const server = await endpoint([{ headers: { 'content-type': 'text/plain' }, body: `no ${SECRET}` }]);
    const err = await fails(postTokenRequest(server.url, basicRequest, options()), TokenResponseError);
    expect(err.message).toContain('no [REDACTED]');
  });
});

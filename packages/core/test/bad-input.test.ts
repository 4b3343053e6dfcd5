import { inspect } from 'node:util';
import { genericClientCredentials, type Reply, startServer } from '@keyfob/testing';
import { afterEach, describe, expect, it } from 'vitest';
import {
  clientCredentials,
  ErrorCode,
  KeyfobError,
  TokenEndpointError,
  TokenManager,
  type TokenManagerOptions,
  TokenResponseError,
} from '../src/index.js';

const SECRET = 'super-secret-value-123';
const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

async function endpoint(replies: Reply[] | ((n: number) => Reply)) {
  let n = 0;
  const server = await startServer(() => {
    const r =
      typeof replies === 'function' ? replies(n) : (replies[Math.min(n, replies.length - 1)] as Reply);
    n++;
    return r;
  });
  cleanup.push(() => server.close());
  return server;
}

function manager(url: string, extra: Partial<TokenManagerOptions> = {}) {
  const m = new TokenManager({
    tokenUrl: `${url}/token`,
    grant: clientCredentials({ clientId: 'client', clientSecret: SECRET }),
    retryBaseDelayMs: 5,
    ...extra,
  });
  cleanup.push(() => m.close());
  return m;
}

/** The error is typed, actionable, and shows no secret in any printed form. */
async function expectSafeError<T extends KeyfobError>(
  p: Promise<unknown>,
  type: new (...a: any[]) => T,
): Promise<T> {
  const err = await p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(type);
  expect(err).toBeInstanceOf(KeyfobError);
  const printed = [
    String(err),
    (err as Error).message,
    JSON.stringify(err),
    inspect(err, { depth: 5 }),
    (err as Error).stack ?? '',
  ];
  const basic = Buffer.from(`client:${SECRET}`).toString('base64');
  for (const text of printed) {
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain(basic);
  }
  return err as T;
}

const ok = (body: Record<string, unknown>): Reply => ({
  body: { access_token: 'tok-abc', token_type: 'Bearer', ...body },
});

describe('bad token endpoint answers', () => {
  it('HTML 502 page: retried, then a TokenEndpointError naming the HTML page', async () => {
    const server = await endpoint([
      {
        status: 502,
        headers: { 'content-type': 'text/html' },
        body: '<html><head><title>502 Bad Gateway</title></head></html>',
      },
    ]);
    const err = await expectSafeError(manager(server.url).getToken(), TokenEndpointError);
    expect(err.status).toBe(502);
    expect(err.message).toContain('HTML page');
    expect(err.message).toContain('502 Bad Gateway');
    expect(server.requests).toHaveLength(3);
  });

  it('invalid JSON with 200: TokenResponseError, not retried', async () => {
    const server = await endpoint([
      { status: 200, headers: { 'content-type': 'application/json' }, body: '{"access_token": "abc' },
    ]);
    const err = await expectSafeError(manager(server.url).getToken(), TokenResponseError);
    expect(err.code).toBe(ErrorCode.TokenResponse);
    expect(err.message).toMatch(/not JSON/);
    expect(server.requests).toHaveLength(1);
  });

  it('valid JSON that is not a token or an OAuth error is described as what it is, not as "not JSON"', async () => {
    const cases: [Reply, RegExp][] = [
      [{ status: 400, body: {} }, /answered 400 .*an empty JSON object \(no OAuth error code\)/],
      [
        { status: 400, body: { detail: 'x' } },
        /a JSON object without an OAuth error code \(fields: detail\)/,
      ],
      [{ status: 200, headers: { 'content-type': 'application/json' }, body: 'null' }, /a JSON null/],
      [
        { status: 200, body: [{ access_token: 'tok-in-array' }] as unknown as Record<string, unknown> },
        /a JSON array \(1 items\)/,
      ],
    ];
    for (const [reply, message] of cases) {
      const server = await endpoint([reply]);
      const err = await expectSafeError(manager(server.url, { retries: 0 }).getToken(), KeyfobError);
      expect(err.message).toMatch(message);
      expect(err.message).not.toMatch(/cut or malformed/);
      expect(err.message).not.toContain('tok-in-array');
    }
  });

  it("a fetch whose network error carries the request: the keyfob error's cause keeps name, code and message, not the request", async () => {
    const fetchThatLeaks = (async (_url: string, init: RequestInit) => {
      const inner = Object.assign(new Error('connect ECONNREFUSED'), {
        code: 'ECONNREFUSED',
        request: { init },
      });
      throw Object.assign(new TypeError('fetch failed', { cause: inner }), {
        request: { body: String(init.body), headers: init.headers },
      });
    }) as unknown as typeof fetch;
    const m = manager('http://127.0.0.1:9', { fetch: fetchThatLeaks, retries: 0 });
    const err = await expectSafeError(m.getToken(), TokenEndpointError);
    expect(err.code).toBe(ErrorCode.TokenEndpointNetwork);
    const deep = inspect(err, { depth: 10, showHidden: true });
    expect(deep).not.toContain(SECRET);
    expect(deep).not.toContain(Buffer.from(`client:${SECRET}`).toString('base64'));
    const cause = err.cause as Error & { cause?: Error & { code?: string } };
    expect(cause).toMatchObject({ name: 'TypeError', message: 'fetch failed' });
    expect(cause.cause).toMatchObject({ code: 'ECONNREFUSED', message: 'connect ECONNREFUSED' });
    expect('request' in cause).toBe(false);
  });

  it('HTML login page with 200: TokenResponseError says so', async () => {
    const server = await endpoint([
      {
        status: 200,
        headers: { 'content-type': 'text/html' },
        body: '<!DOCTYPE html><title>Sign in</title>',
      },
    ]);
    const err = await expectSafeError(manager(server.url).getToken(), TokenResponseError);
    expect(err.message).toContain('HTML page ("Sign in")');
  });

  it('missing access_token lists the fields present', async () => {
    const server = await endpoint([{ body: { token_type: 'Bearer', expires_in: 3600 } }]);
    const err = await expectSafeError(manager(server.url).getToken(), TokenResponseError);
    expect(err.message).toContain('no access_token');
    expect(err.message).toContain('token_type, expires_in');
  });

  it('a 200 carrying an OAuth error says so', async () => {
    const server = await endpoint([
      { body: { error: 'invalid_client', error_description: 'Bad credentials' } },
    ]);
    const err = await expectSafeError(manager(server.url).getToken(), TokenResponseError);
    expect(err.message).toContain('invalid_client: Bad credentials');
  });

  it.each([
    ['negative', -5],
    ['zero', 0],
    ['non-numeric', 'soon'],
  ])('%s expires_in is a TokenResponseError', async (_name, expiresIn) => {
    const server = await endpoint([ok({ expires_in: expiresIn })]);
    const err = await expectSafeError(manager(server.url).getToken(), TokenResponseError);
    expect(err.message).toMatch(/expires_in/);
  });

  it('numeric-string expires_in is accepted', async () => {
    const server = await endpoint([ok({ expires_in: '3600' })]);
    const t = await manager(server.url).getToken();
    expect(t.expiresAt! - Date.now()).toBeGreaterThan(3590_000);
  });

  it('huge expires_in is capped (never cached forever) with a warning', async () => {
    const server = await endpoint([ok({ expires_in: 1e15 })]);
    const warnings: string[] = [];
    const t = await manager(server.url, {
      maxLifetimeMs: 86_400_000,
      logger: { warn: (m) => warnings.push(m), error: (m) => warnings.push(m) },
    }).getToken();
    expect(t.expiresAt! - Date.now()).toBeLessThanOrEqual(86_400_000);
    expect(warnings.join()).toContain('maxLifetimeMs');
  });

  it('a past expiration is a TokenResponseError mentioning clocks', async () => {
    const server = await endpoint([ok({ expiration: '2020-01-01T00:00:00Z' })]);
    const err = await expectSafeError(manager(server.url).getToken(), TokenResponseError);
    expect(err.message).toMatch(/clock/i);
  });

  it('no expiry at all: JWT exp is used, else the default lifetime', async () => {
    const exp = Math.floor(Date.now() / 1000) + 120;
    const jwt = `e30.${Buffer.from(JSON.stringify({ exp })).toString('base64url')}.sig`;
    const s1 = await endpoint([{ body: { access_token: jwt, token_type: 'bearer' } }]);
    expect((await manager(s1.url).getToken()).expiresAt).toBe(exp * 1000);
    const s2 = await endpoint([{ body: { access_token: 'opaque' } }]);
    const t = await manager(s2.url, { defaultLifetimeMs: 42_000 }).getToken();
    expect(t.expiresAt! - Date.now()).toBeGreaterThan(40_000);
    expect(t.expiresAt! - Date.now()).toBeLessThanOrEqual(42_000);
  });

  it('endpoint slower than the timeout: TokenEndpointError with the timeout code', async () => {
    const server = await endpoint([{ delayMs: 500, ...ok({ expires_in: 60 }) }]);
    const err = await expectSafeError(
      manager(server.url, { timeoutMs: 100, retries: 1 }).getToken(),
      TokenEndpointError,
    );
    expect(err.code).toBe(ErrorCode.TokenEndpointTimeout);
    expect(err.message).toContain('100 ms');
    expect(server.requests).toHaveLength(2);
  });

  it('connection reset: retried, and recovers when the next attempt succeeds', async () => {
    const server = await endpoint((n) => (n === 0 ? { reset: true } : ok({ expires_in: 60 })));
    expect((await manager(server.url).getToken()).accessToken).toBe('tok-abc');
    expect(server.requests).toHaveLength(2);
  });

  it('connection reset every time: a network TokenEndpointError', async () => {
    const server = await endpoint([{ reset: true }]);
    const err = await expectSafeError(manager(server.url).getToken(), TokenEndpointError);
    expect(err.code).toBe(ErrorCode.TokenEndpointNetwork);
    expect(err.status).toBeUndefined();
  });

  it('nothing listening: a network TokenEndpointError', async () => {
    const server = await endpoint([ok({})]);
    await server.close();
    const err = await expectSafeError(manager(server.url, { retries: 0 }).getToken(), TokenEndpointError);
    expect(err.code).toBe(ErrorCode.TokenEndpointNetwork);
    expect(err.message).toContain('ECONNREFUSED');
  });

  it('429 with Retry-After is honoured, then succeeds', async () => {
    const server = await endpoint((n) =>
      n === 0
        ? { status: 429, headers: { 'retry-after': '1' }, body: { error: 'slow_down' } }
        : ok({ expires_in: 60 }),
    );
    const started = Date.now();
    await manager(server.url).getToken();
    expect(server.requests).toHaveLength(2);
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
  });

  it('429 with a Retry-After longer than maxRetryAfterMs fails at once with retryAfterMs', async () => {
    const server = await endpoint([
      { status: 429, headers: { 'retry-after': '3600' }, body: { error: 'rate_limited' } },
    ]);
    const err = await expectSafeError(manager(server.url).getToken(), TokenEndpointError);
    expect(err.retryAfterMs).toBe(3_600_000);
    expect(err.message).toContain('rate-limiting');
    expect(server.requests).toHaveLength(1);
  });

  it('500 then 200: one retry', async () => {
    const server = await endpoint((n) => (n === 0 ? { status: 500, body: 'oops' } : ok({ expires_in: 60 })));
    expect((await manager(server.url).getToken()).accessToken).toBe('tok-abc');
    expect(server.requests).toHaveLength(2);
  });

  it('401 invalid_client: not retried, hint about credentials and Basic encoding', async () => {
    const server = await genericClientCredentials({ clientId: 'client', clientSecret: 'other' });
    cleanup.push(() => server.close());
    const m = new TokenManager({
      tokenUrl: server.tokenUrl,
      grant: clientCredentials({ clientId: 'client', clientSecret: SECRET }),
    });
    cleanup.push(() => m.close());
    const err = await expectSafeError(m.getToken(), TokenEndpointError);
    expect(err).toMatchObject({ status: 401, error: 'invalid_client', errorDescription: 'Bad credentials' });
    expect(err.error_description).toBe('Bad credentials'); // RFC 6749 5.2's name too
    expect(err.message).toMatch(/client id and client secret/);
    expect(err.message).toMatch(/basicEncoding: 'raw'/);
    expect(server.tokenRequests()).toHaveLength(1);
  });

  it.each([
    [400, /malformed body or a missing field/],
    [403, /lacks the permission or scope/],
    [404, /Wrong token URL/],
  ])('%i is explained like the troubleshooting guide, not retried', async (status, hint) => {
    const server = await endpoint([{ status, body: status === 404 ? 'Not Found' : { error: 'x' } }]);
    const err = await expectSafeError(manager(server.url).getToken(), TokenEndpointError);
    expect(err.status).toBe(status);
    expect(err.message).toMatch(hint);
    expect(server.requests).toHaveLength(1);
  });

  it('a redirect from the token endpoint is not followed', async () => {
    const target = await endpoint([ok({})]);
    const server = await endpoint([{ status: 307, headers: { location: `${target.url}/token` } }]);
    const err = await expectSafeError(manager(server.url).getToken(), TokenEndpointError);
    expect(err.code).toBe(ErrorCode.TokenEndpointRedirect);
    expect(err.message).toContain('redirect');
    expect(target.requests).toHaveLength(0);
  });

  it('an oversized response is refused', async () => {
    const server = await endpoint([ok({ padding: 'x'.repeat(100_000) })]);
    await expectSafeError(manager(server.url).getToken(), TokenResponseError);
  });

  it('a server echoing the secret in error_description does not leak it', async () => {
    const server = await endpoint([
      { status: 400, body: { error: 'invalid_request', error_description: `bad secret ${SECRET}` } },
    ]);
    const err = await expectSafeError(manager(server.url).getToken(), TokenEndpointError);
    expect(err.errorDescription).toContain('[REDACTED]');
    expect(err.error_description).toBe(err.errorDescription);
  });

  it('a non-Bearer token type is refused', async () => {
    const server = await endpoint([ok({ token_type: 'DPoP', expires_in: 60 })]);
    await expectSafeError(manager(server.url).getToken(), TokenResponseError);
  });

  it('a failed fetch caches nothing: the next call tries again', async () => {
    const server = await endpoint((n) =>
      n === 0 ? { status: 401, body: { error: 'invalid_client' } } : ok({ expires_in: 60 }),
    );
    const m = manager(server.url);
    await expect(m.getToken()).rejects.toBeInstanceOf(TokenEndpointError);
    expect((await m.getToken()).accessToken).toBe('tok-abc');
  });
});

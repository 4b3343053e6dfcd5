// The promises of DESIGN behaviours 2 and 4 on the failure paths: serve while the token endpoint is
// down, never replay a single-use request, every failure typed. Real token endpoints on 127.0.0.1.
import { genericClientCredentials, type ProviderServer, startServer } from '@keyfob/testing';
import { afterEach, describe, expect, it } from 'vitest';
import {
  authorizationCode,
  ConfigurationError,
  clientCredentials,
  customGrant,
  isKeyfobError,
  KeyfobError,
  LoginRequiredError,
  MemoryTokenStore,
  passwordGrant,
  TokenEndpointError,
  TokenManager,
  type TokenManagerOptions,
} from '../src/index.js';

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

async function provider(expiresIn = 100) {
  const server = await genericClientCredentials({ clientId: 'svc', clientSecret: 'svc-secret', expiresIn });
  cleanup.push(() => server.close());
  return server;
}

function manager(server: ProviderServer, extra: Partial<TokenManagerOptions> = {}) {
  const m = new TokenManager({
    tokenUrl: server.tokenUrl,
    grant: clientCredentials({ clientId: 'svc', clientSecret: 'svc-secret' }),
    retries: 0,
    ...extra,
  });
  cleanup.push(() => m.close());
  return m;
}

function fakeClock(start = Date.now()) {
  let t = start;
  return {
    now: () => t,
    advance: (ms: number) => {
      t += ms;
    },
    set: (at: number) => {
      t = at;
    },
  };
}

/** Polls until `cond` holds (bounded): background work finishes when the machine lets it. */
async function waitFor(cond: () => boolean, ms = 5_000) {
  const until = Date.now() + ms;
  while (!cond() && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
  return cond();
}

describe('serve while the token endpoint is down', () => {
  it('inside the expiry buffer a failed renewal returns the still-valid token; after expiresAt the typed error', async () => {
    const server = await provider(100); // margin 20 s (L/5), buffer 5 s
    const clock = fakeClock();
    const m = manager(server, { clock });
    const first = await m.getToken();
    const expiresAt = first.expiresAt!;
    server.override = () => ({ status: 503, body: { error: 'temporarily_unavailable' } });

    // 3 s before expiry, inside the buffer, no renewal tried yet: the caller waits for the renewal,
    // which fails, and gets the token that is still valid (not the endpoint's error).
    clock.set(expiresAt - 3_000);
    expect((await m.getToken()).accessToken).toBe(first.accessToken);
    expect(server.tokenRequests()).toHaveLength(2);
    // Renewals are failing: callers are served at once, the renewal is retried in the background
    // with backoff (no request inside the backoff window).
    expect((await m.getToken()).accessToken).toBe(first.accessToken);
    expect(await m.getAuthorizationHeader()).toBe(`Bearer ${first.accessToken}`);
    expect(server.tokenRequests()).toHaveLength(2);
    clock.advance(2_000); // past the backoff (1 s +-25%), still 1 s before expiry
    expect((await m.getToken()).accessToken).toBe(first.accessToken);
    expect(await waitFor(() => server.tokenRequests().length === 3)).toBe(true);

    // From expiresAt on: the typed error.
    clock.set(expiresAt);
    const err = await m.getToken().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TokenEndpointError);
    expect((err as TokenEndpointError).status).toBe(503);

    // The endpoint is back: a new token.
    server.override = undefined;
    const next = await m.getToken();
    expect(next.accessToken).not.toBe(first.accessToken);
  });

  it('a renewal that works is awaited inside the buffer (no token that could expire in flight)', async () => {
    const server = await provider(100);
    const clock = fakeClock();
    const m = manager(server, { clock });
    const first = await m.getToken();
    clock.set(first.expiresAt! - 3_000);
    const second = await m.getToken();
    expect(second.accessToken).not.toBe(first.accessToken);
  });

  it('a renewal waiting out a Retry-After (429 or 503) does not hold callers inside the buffer: the valid token is served at once', async () => {
    for (const status of [429, 503]) {
      const server = await provider(100); // buffer 5 s
      const clock = fakeClock();
      const m = manager(server, { clock, retries: 1 });
      const first = await m.getToken();
      let answered = 0;
      server.override = () =>
        answered++ === 0
          ? { status, headers: { 'retry-after': '1' }, body: { error: 'slow_down' } }
          : undefined;
      clock.set(first.expiresAt! - 3_000); // inside the buffer, no renewal tried yet: this caller waits...
      const waiter = m.getToken();
      // ...until the renewal's first attempt fails; then it gets the still-valid token, before the retry.
      expect((await waiter).accessToken).toBe(first.accessToken);
      expect(server.tokenRequests()).toHaveLength(2);
      // Later callers, while the renewal waits out Retry-After: served at once.
      expect(await m.getAuthorizationHeader()).toBe(`Bearer ${first.accessToken}`);
      expect(server.tokenRequests()).toHaveLength(2);
      // The retry then works, and the new token replaces the old one.
      expect(await waitFor(() => server.tokenRequests().length === 3)).toBe(true);
      expect(await waitFor(() => answered === 2)).toBe(true);
      await new Promise((r) => setTimeout(r, 20));
      expect((await m.getToken()).accessToken).not.toBe(first.accessToken);
    }
  });

  it('refreshFailed says until when the current token is served: its expiry', async () => {
    const server = await provider(100);
    const clock = fakeClock();
    const m = manager(server, { clock });
    const events: { servingUntil: number }[] = [];
    m.on('refreshFailed', (e) => events.push(e));
    const first = await m.getToken();
    server.override = () => ({ status: 500, body: 'boom' });
    clock.set(first.expiresAt! - 10_000); // refresh-ahead zone: served, renewed in the background
    expect((await m.getToken()).accessToken).toBe(first.accessToken);
    expect(await waitFor(() => events.length === 1)).toBe(true);
    expect(events[0]!.servingUntil).toBe(first.expiresAt);
  });
});

describe('never replay what the server may have consumed', () => {
  async function rotatingServer(fail: () => { status: number } | { delayMs: number } | undefined) {
    let n = 0;
    const server = await startServer(async (req) => {
      const p = req.params;
      if (p.grant_type === 'authorization_code') {
        return { body: { access_token: `at_${++n}`, expires_in: 100, refresh_token: `rt_${n}` } };
      }
      if (p.grant_type === 'refresh_token') {
        const f = fail();
        if (f && 'status' in f) return { status: f.status, body: { error: 'server_error' } };
        if (f && 'delayMs' in f)
          return { delayMs: f.delayMs, body: { access_token: 'late', expires_in: 100 } };
        return { body: { access_token: `at_${++n}`, expires_in: 100, refresh_token: `rt_${n}` } };
      }
      return { status: 400, body: { error: 'unsupported_grant_type' } };
    });
    cleanup.push(() => server.close());
    return server;
  }
  const grant = (server: { url: string }) =>
    authorizationCode({
      clientId: 'web',
      clientSecret: 'web-secret',
      redirectUri: 'http://127.0.0.1/cb',
      authorizeUrl: `${server.url}/authorize`,
      pkce: false,
    });
  const refreshes = (server: { requests: { params: Record<string, string> }[] }) =>
    server.requests.filter((r) => r.params.grant_type === 'refresh_token').map((r) => r.params.refresh_token);

  it('a refresh answered 503 is not resent, neither by the retry loop nor by later renewals', async () => {
    const server = await rotatingServer(() => ({ status: 503 }));
    const clock = fakeClock();
    const g = grant(server);
    const m = new TokenManager({
      tokenUrl: `${server.url}/token`,
      grant: g,
      clock,
      retries: 3,
      retryBaseDelayMs: 1,
    });
    cleanup.push(() => m.close());
    const set = await g.exchange('code', { subject: 'ana' });
    clock.set(set.expiresAt! + 1);
    const err = await m.getToken({ subject: 'ana' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TokenEndpointError);
    expect(refreshes(server)).toEqual(['rt_1']); // retries: 3, yet sent once
    // Later attempts do not send rt_1 again: the user must log in again.
    clock.advance(60_000);
    const again = await m.getToken({ subject: 'ana' }).catch((e: unknown) => e);
    expect(again).toBeInstanceOf(LoginRequiredError);
    expect(refreshes(server)).toEqual(['rt_1']);
  });

  it('a refresh that timed out is recovered from the store when another process stored the rotated set', async () => {
    const store = new MemoryTokenStore();
    const server = await rotatingServer(() => ({ delayMs: 1_500 }));
    const clock = fakeClock();
    const g = grant(server);
    const m = new TokenManager({
      tokenUrl: `${server.url}/token`,
      grant: g,
      clock,
      store,
      timeoutMs: 300,
      retries: 2,
      retryBaseDelayMs: 1,
    });
    cleanup.push(() => m.close());
    const set = await g.exchange('code', { subject: 'ana' });
    clock.set(set.expiresAt! + 1);
    // Another process renews meanwhile and stores the rotated set.
    const peer = {
      accessToken: 'at_peer',
      tokenType: 'Bearer',
      expiresAt: set.expiresAt! + 100_000,
      refreshToken: 'rt_peer',
    };
    const origGet = store.get.bind(store);
    let reads = 0;
    store.get = (k: string) => {
      reads++;
      // The reads before the refresh (before and after taking the store's lock) see the old set; after
      // the timed-out refresh, the peer's.
      return reads <= 2 ? origGet(k) : peer;
    };
    const token = await m.getToken({ subject: 'ana' });
    expect(token.accessToken).toBe('at_peer');
    expect(refreshes(server)).toEqual(['rt_1']); // the timed-out request was not resent
  });

  it('an authorization code exchange answered 502 is not resent', async () => {
    let calls = 0;
    const server = await startServer(() => {
      calls++;
      return { status: 502, body: 'bad gateway' };
    });
    cleanup.push(() => server.close());
    const g = grant(server);
    const m = new TokenManager({
      tokenUrl: `${server.url}/token`,
      grant: g,
      retries: 3,
      retryBaseDelayMs: 1,
    });
    cleanup.push(() => m.close());
    const err = await g.exchange('code-1', { subject: 'ana' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TokenEndpointError);
    expect(calls).toBe(1);
  });

  it('a password grant whose refresh got no answer logs in again with the password instead', async () => {
    let n = 0;
    const server = await startServer((req) => {
      if (req.params.grant_type === 'password') {
        return { body: { access_token: `at_${++n}`, expires_in: 100, refresh_token: `rt_${n}` } };
      }
      return { status: 503, body: 'down' };
    });
    cleanup.push(() => server.close());
    const clock = fakeClock();
    const m = new TokenManager({
      tokenUrl: `${server.url}/token`,
      grant: passwordGrant({ username: 'ana', password: 'pw-long-enough' }),
      clock,
      retries: 0,
    });
    cleanup.push(() => m.close());
    const first = await m.getToken();
    clock.set(first.expiresAt! + 1);
    await expect(m.getToken()).rejects.toBeInstanceOf(TokenEndpointError);
    const next = await m.getToken();
    expect(next.accessToken).toBe('at_2');
    expect(server.requests.map((r) => r.params.grant_type)).toEqual([
      'password',
      'refresh_token',
      'password',
    ]);
  });
});

describe('typed errors and option checks', () => {
  it('a customGrant that throws surfaces as a KeyfobError with the cause', async () => {
    const boom = new TypeError('vendor SDK exploded');
    const m = new TokenManager({
      grant: customGrant(async () => {
        throw boom;
      }),
    });
    cleanup.push(() => m.close());
    const err = await m.getToken().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeyfobError);
    expect(isKeyfobError(err)).toBe(true);
    expect((err as KeyfobError).code).toBe('KEYFOB_TOKEN_ENDPOINT');
    expect((err as Error).cause).toBe(boom);
    expect((err as Error).message).toMatch(/custom grant failed.*vendor SDK exploded/);
  });

  it.each([
    ['timeout', 'timeoutMs'],
    ['retry', 'retries'],
    ['refreshMargin', 'refreshMarginMs'],
    ['maxEntrys', 'maxEntries'],
    ['storeTimeout', 'storeTimeoutMs'],
  ])('unknown option %s is a ConfigurationError suggesting %s', (wrong, right) => {
    const make = () =>
      new TokenManager({ grant: customGrant(async () => ({ access_token: 'x' })), [wrong]: 1 } as never);
    expect(make).toThrow(ConfigurationError);
    expect(make).toThrow(`Did you mean "${right}"?`);
  });

  it('an unknown option with no near name lists the known ones', () => {
    const make = () =>
      new TokenManager({ grant: customGrant(async () => ({ access_token: 'x' })), zzz: 1 } as never);
    expect(make).toThrow(/unknown option "zzz"\. Known options: .*timeoutMs/);
  });

  it('timeoutMs above 2^31-1 is refused (Node would fire the timer at once)', () => {
    const grant = customGrant(async () => ({ access_token: 'x' }));
    expect(() => new TokenManager({ grant, timeoutMs: 2 ** 31 })).toThrow(ConfigurationError);
    expect(() => new TokenManager({ grant, timeoutMs: 2 ** 31 })).toThrow(
      /timeoutMs must be at most 2147483647/,
    );
    const ok = new TokenManager({ grant, timeoutMs: 2 ** 31 - 1 });
    cleanup.push(() => ok.close());
  });

  it('Infinity is refused where it would mean endless retries or an unbounded cache', () => {
    const grant = customGrant(async () => ({ access_token: 'x' }));
    for (const name of ['retries', 'maxEntries', 'maxLifetimeMs', 'timeoutMs'] as const) {
      expect(() => new TokenManager({ grant, [name]: Number.POSITIVE_INFINITY })).toThrow(ConfigurationError);
    }
  });
});

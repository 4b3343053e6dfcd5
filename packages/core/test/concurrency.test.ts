import { genericClientCredentials, type ProviderServer, startServer } from '@keyfob/testing';
import { afterEach, describe, expect, it } from 'vitest';
import {
  clientCredentials,
  customGrant,
  type KeyfobError,
  type TokenEvent,
  TokenManager,
  type TokenManagerOptions,
} from '../src/index.js';

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

async function provider(expiresIn = 3600) {
  const server = await genericClientCredentials({ clientId: 'svc', clientSecret: 'svc-secret', expiresIn });
  cleanup.push(() => server.close());
  return server;
}

function manager(server: ProviderServer, extra: Partial<TokenManagerOptions> = {}) {
  const m = new TokenManager({
    tokenUrl: server.tokenUrl,
    grant: clientCredentials({ clientId: 'svc', clientSecret: 'svc-secret', scope: 'read' }),
    ...extra,
  });
  cleanup.push(() => m.close());
  return m;
}

/** A clock the test moves by hand. */
function fakeClock(start = Date.now()) {
  let t = start;
  return {
    now: () => t,
    advance: (ms: number) => {
      t += ms;
    },
  };
}

const tick = () => new Promise((r) => setTimeout(r, 30));
/** Polls until `cond` holds (bounded): background work finishes when the machine lets it. */
async function waitFor(cond: () => boolean, ms = 5_000) {
  const until = Date.now() + ms;
  while (!cond() && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
}

describe('single-flight and caching', () => {
  it('1,000 concurrent getToken() on a cold cache make exactly one token request', async () => {
    const server = await provider();
    server.override = async () => {
      await new Promise((r) => setTimeout(r, 50));
      return undefined;
    };
    const m = manager(server);
    const tokens = await Promise.all(Array.from({ length: 1000 }, () => m.getToken()));
    expect(server.tokenRequests()).toHaveLength(1);
    expect(new Set(tokens.map((t) => t.accessToken)).size).toBe(1);
  });

  it('per-key isolation: two scopes and two subjects never share or block each other', async () => {
    let release: (() => void) | undefined;
    const calls: string[] = [];
    const m = new TokenManager({
      grant: customGrant(async ({ scope, subject }) => {
        calls.push(`${scope}|${subject}`);
        if (scope === 'slow') await new Promise<void>((r) => (release = r));
        return { access_token: `t-${scope}-${subject}`, expires_in: 60 };
      }),
    });
    cleanup.push(() => m.close());
    const slow = m.getToken({ scope: 'slow' });
    // While 'slow' hangs, other keys are served.
    const [a, b, c] = await Promise.all([
      m.getToken({ scope: 'a' }),
      m.getToken({ scope: 'a', subject: 'alice' }),
      m.getToken({ scope: 'a', subject: 'bob' }),
    ]);
    expect([a.accessToken, b.accessToken, c.accessToken]).toEqual(['t-a-undefined', 't-a-alice', 't-a-bob']);
    release!();
    expect((await slow).accessToken).toBe('t-slow-undefined');
    expect(calls).toHaveLength(4);
    // Scope order does not create a new key: "a b" and "b a" are the same token.
    const x = await m.getToken({ scope: 'x y' });
    const y = await m.getToken({ scope: 'y x' });
    expect(x.accessToken).toBe(y.accessToken);
  });

  it('extra parameters are part of the cache key', async () => {
    const server = await provider();
    const m = manager(server);
    const a = await m.getToken({ extraParams: { audience: 'https://a' } });
    const b = await m.getToken({ extraParams: { audience: 'https://b' } });
    expect(a.accessToken).not.toBe(b.accessToken);
    expect(server.tokenRequests().map((r) => r.params.audience)).toEqual(['https://a', 'https://b']);
    await m.getToken({ extraParams: { audience: 'https://a' } });
    expect(server.tokenRequests()).toHaveLength(2);
  });
});

describe('freshness under an injectable clock', () => {
  it('reuses a one-hour token, refreshes ahead in the background within the 60 s margin, never waits', async () => {
    const server = await provider(3600);
    const clock = fakeClock();
    const m = manager(server, { clock });
    let refreshed = 0;
    m.on('tokenRefreshed', () => refreshed++);
    const first = await m.getToken();
    clock.advance(3600_000 - 61_000);
    expect((await m.getToken()).accessToken).toBe(first.accessToken);
    await tick();
    expect(server.tokenRequests()).toHaveLength(1);

    clock.advance(2_000); // 59 s before expiry: inside the margin
    const during = await m.getToken();
    expect(during.accessToken).toBe(first.accessToken); // served at once, not awaited
    await waitFor(() => refreshed === 1);
    expect(server.tokenRequests()).toHaveLength(2);
    const after = await m.getToken();
    expect(after.accessToken).not.toBe(first.accessToken);
    expect(server.tokenRequests()).toHaveLength(2);
  });

  it('an expired token is never handed out: the caller waits for a new one', async () => {
    const server = await provider(3600);
    const clock = fakeClock();
    const m = manager(server, { clock });
    const first = await m.getToken();
    clock.advance(3600_000);
    const second = await m.getToken();
    expect(second.accessToken).not.toBe(first.accessToken);
    expect(server.tokenRequests()).toHaveLength(2);
  });

  it('a 2 s token is reused for most of its life', async () => {
    const server = await provider(2);
    const clock = fakeClock();
    const m = manager(server, { clock });
    const first = await m.getToken();
    for (let i = 0; i < 15; i++) {
      clock.advance(100);
      expect((await m.getToken()).accessToken).toBe(first.accessToken);
    }
    await tick();
    expect(server.tokenRequests()).toHaveLength(1); // 1.5 s in: still the first token, no request
  });

  it('a failed background refresh keeps serving the valid token and retries with backoff', async () => {
    const server = await provider(3600);
    const clock = fakeClock();
    const m = manager(server, { clock, retries: 0 });
    const failures: unknown[] = [];
    m.on('refreshFailed', (e) => failures.push(e));
    let refreshed = 0;
    m.on('tokenRefreshed', () => refreshed++);
    const first = await m.getToken();
    server.override = () => ({ status: 503, body: 'down' });
    clock.advance(3600_000 - 30_000);
    expect((await m.getToken()).accessToken).toBe(first.accessToken);
    await waitFor(() => failures.length === 1);
    expect(failures).toHaveLength(1);
    // Within the backoff window: no new attempt.
    expect((await m.getToken()).accessToken).toBe(first.accessToken);
    await tick();
    expect(server.tokenRequests()).toHaveLength(2);
    // After the backoff, it tries again, and recovers.
    server.override = undefined;
    clock.advance(3_000);
    expect((await m.getToken()).accessToken).toBe(first.accessToken);
    await waitFor(() => refreshed === 1);
    expect(server.tokenRequests()).toHaveLength(3);
    expect((await m.getToken()).accessToken).not.toBe(first.accessToken);
  });

  it('forceRefresh replaces the token', async () => {
    const server = await provider();
    const m = manager(server);
    const a = await m.getToken();
    const b = await m.getToken({ forceRefresh: true });
    expect(b.accessToken).not.toBe(a.accessToken);
    expect((await m.getToken()).accessToken).toBe(b.accessToken);
  });
});

describe('invalidate (compare-and-delete)', () => {
  it('a hundred concurrent 401s for the same token cause one new token request', async () => {
    const server = await provider();
    const m = manager(server);
    const events: TokenEvent[] = [];
    m.on('tokenRefreshed', (e) => events.push(e));
    m.on('tokenFetched', (e) => events.push(e));
    const stale = await m.getToken();
    server.issuer.revokeAll();
    const results = await Promise.all(
      Array.from({ length: 100 }, async () => {
        await m.invalidate(stale);
        return m.getToken();
      }),
    );
    expect(server.tokenRequests()).toHaveLength(2);
    expect(new Set(results.map((t) => t.accessToken)).size).toBe(1);
    expect(results[0]!.accessToken).not.toBe(stale.accessToken);
    expect(events).toHaveLength(2);
    // A late 401 for the old token does not drop the new one.
    expect(await m.invalidate(stale)).toBe(false);
    await m.getToken();
    expect(server.tokenRequests()).toHaveLength(2);
  });

  it('invalidate by token string works too', async () => {
    const server = await provider();
    const m = manager(server);
    const t = await m.getToken();
    expect(await m.invalidate(t.accessToken)).toBe(true);
    expect((await m.getToken()).accessToken).not.toBe(t.accessToken);
  });
});

describe('abort and close', () => {
  it('a caller can abort its wait; the shared request goes on for others', async () => {
    const server = await startServer(async () => {
      await new Promise((r) => setTimeout(r, 150));
      return { body: { access_token: 'late', expires_in: 60 } };
    });
    cleanup.push(() => server.close());
    const m = new TokenManager({
      tokenUrl: `${server.url}/t`,
      grant: clientCredentials({ clientId: 'a', clientSecret: 'bbbb' }),
    });
    cleanup.push(() => m.close());
    const controller = new AbortController();
    const aborted = m.getToken({ signal: controller.signal });
    const other = m.getToken();
    controller.abort();
    await expect(aborted).rejects.toMatchObject({ code: 'KEYFOB_ABORTED' });
    expect((await other).accessToken).toBe('late');
    expect(server.requests).toHaveLength(1);
  });

  it('close() rejects waiting callers and later calls', async () => {
    const server = await startServer(async () => {
      await new Promise((r) => setTimeout(r, 200));
      return { body: { access_token: 'x', expires_in: 60 } };
    });
    cleanup.push(() => server.close());
    const m = new TokenManager({
      tokenUrl: `${server.url}/t`,
      grant: clientCredentials({ clientId: 'a', clientSecret: 'bbbb' }),
    });
    const pending = m.getToken();
    await m.close();
    // The caller aborted nothing: the waiter learns that the manager was closed, and what to do.
    await expect(pending).rejects.toMatchObject({ name: 'KeyfobError', code: 'KEYFOB_CLOSED' });
    const later = (await m.getToken().catch((e: unknown) => e)) as KeyfobError;
    expect(later).toMatchObject({ code: 'KEYFOB_CLOSED' });
    expect(later.hint).toMatch(/close\(\) was called/);
  });

  it('a caller whose own signal aborts gets KEYFOB_ABORTED with a hint', async () => {
    const server = await startServer(async () => {
      await new Promise((r) => setTimeout(r, 200));
      return { body: { access_token: 'x', expires_in: 60 } };
    });
    cleanup.push(() => server.close());
    const m = new TokenManager({
      tokenUrl: `${server.url}/t`,
      grant: clientCredentials({ clientId: 'a', clientSecret: 'bbbb' }),
    });
    cleanup.push(() => m.close());
    const error = (await m
      .getToken({ signal: AbortSignal.timeout(20) })
      .catch((e: unknown) => e)) as KeyfobError;
    expect(error).toMatchObject({ code: 'KEYFOB_ABORTED' });
    expect(error.hint).toMatch(/AbortSignal fired/);
  });
});

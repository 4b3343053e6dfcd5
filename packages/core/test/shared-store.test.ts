// The shared-store protocol between processes: lock waiters follow the holder, a lost store is
// bypassed (circuit breaker) and probed in the background. Two managers sharing one lock-capable
// store stand for two processes; the token endpoint is a real server on 127.0.0.1.
import { startServer } from '@keyfob/testing';
import { afterEach, describe, expect, it } from 'vitest';
import {
  authorizationCode,
  clientCredentials,
  customGrant,
  LoginRequiredError,
  MemoryTokenStore,
  passwordGrant,
  type StoredToken,
  TokenEndpointError,
  TokenManager,
  type TokenStore,
  type TokenStoreLock,
} from '../src/index.js';
import { DEFAULTS, resolveOptions } from '../src/options.js';

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

/** MemoryTokenStore plus a lock with a lifetime, like RedisTokenStore's SET NX PX. */
class LockingStore extends MemoryTokenStore implements TokenStore {
  readonly #locks = new Map<string, { until: number; id: number }>();
  #ids = 0;
  lockCalls = 0;

  override async lock(key: string, ttlMs: number): Promise<TokenStoreLock | undefined> {
    this.lockCalls++;
    const held = this.#locks.get(key);
    if (held && held.until > Date.now()) return undefined;
    const id = ++this.#ids;
    this.#locks.set(key, { until: Date.now() + ttlMs, id });
    return { release: () => void (this.#locks.get(key)?.id === id && this.#locks.delete(key)) };
  }
}

/** Polls until `cond` holds (bounded). */
async function waitFor(cond: () => boolean, ms = 5_000) {
  const until = Date.now() + ms;
  while (!cond() && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
  return cond();
}

describe('lock waiters follow the holder', () => {
  function processes(store: TokenStore, tokenUrl: string) {
    return [1, 2].map(() => {
      const m = new TokenManager({
        tokenUrl,
        grant: clientCredentials({ clientId: 'svc', clientSecret: 'svc-secret' }),
        store,
        retries: 0,
        lockWaitMs: 60_000, // a waiter that waited out the lock would time the test out
      });
      cleanup.push(() => m.close());
      return m;
    });
  }

  it('when the holder fails, the waiter takes the lock and settles at once instead of waiting out lockWaitMs', async () => {
    let requests = 0;
    const server = await startServer(() => {
      requests++;
      return { delayMs: 300, status: 503, body: { error: 'temporarily_unavailable' } };
    });
    cleanup.push(() => server.close());
    const store = new LockingStore();
    const [a, b] = processes(store, `${server.url}/token`);
    const holder = a!.getToken().catch((e: unknown) => e);
    await waitFor(() => requests === 1); // a holds the lock and is fetching
    const waiter = b!.getToken().catch((e: unknown) => e);
    expect(await holder).toBeInstanceOf(TokenEndpointError);
    expect(await waiter).toBeInstanceOf(TokenEndpointError);
    expect(requests).toBe(2); // the waiter tried itself once the lock was free
    expect(store.lockCalls).toBeGreaterThanOrEqual(3);
  });

  it('when the holder succeeds, the waiter takes its token from the store (one token request)', async () => {
    let requests = 0;
    const server = await startServer(() => {
      requests++;
      return {
        delayMs: 200,
        body: { access_token: `at_${requests}`, token_type: 'Bearer', expires_in: 3600 },
      };
    });
    cleanup.push(() => server.close());
    const store = new LockingStore();
    const [a, b] = processes(store, `${server.url}/token`);
    const first = a!.getToken();
    await waitFor(() => requests === 1);
    const [ta, tb] = await Promise.all([first, b!.getToken()]);
    expect(tb.accessToken).toBe(ta.accessToken);
    expect(requests).toBe(1);
  });

  it('the default lock lifetime covers every attempt and a Retry-After wait before each retry', () => {
    const grant = customGrant(async () => ({ access_token: 'x' }));
    const o = resolveOptions({ grant });
    expect(o.lockWaitMs).toBeGreaterThanOrEqual(
      DEFAULTS.timeoutMs * (DEFAULTS.retries + 1) + DEFAULTS.maxRetryAfterMs * DEFAULTS.retries,
    );
    const custom = resolveOptions({ grant, timeoutMs: 1_000, retries: 3, maxRetryAfterMs: 20_000 });
    expect(custom.lockWaitMs).toBeGreaterThanOrEqual(4 * 1_000 + 3 * 20_000);
  });
});

describe('managers in one process sharing a MemoryTokenStore (its own lock)', () => {
  it('a cold start of two managers at once: one token request, one token', async () => {
    let requests = 0;
    const server = await startServer(() => {
      requests++;
      return {
        delayMs: 50,
        body: { access_token: `at_${requests}`, token_type: 'Bearer', expires_in: 3600 },
      };
    });
    cleanup.push(() => server.close());
    const store = new MemoryTokenStore();
    const managers = [1, 2, 3].map(() => {
      const m = new TokenManager({
        tokenUrl: `${server.url}/token`,
        grant: clientCredentials({ clientId: 'svc', clientSecret: 'svc-secret' }),
        store,
      });
      cleanup.push(() => m.close());
      return m;
    });
    const tokens = await Promise.all(managers.map((m) => m.getToken()));
    expect(tokens.map((t) => t.accessToken)).toEqual(['at_1', 'at_1', 'at_1']);
    expect(requests).toBe(1);
  });

  it('a rotating refresh token is sent by one manager only; the other takes the renewed set', async () => {
    const used = new Set<string>();
    let issued = 0;
    const grants: string[] = [];
    const server = await startServer((req) => {
      grants.push(String(req.params.grant_type));
      if (req.params.grant_type === 'refresh_token') {
        const rt = String(req.params.refresh_token);
        if (used.has(rt)) return { status: 400, body: { error: 'invalid_grant' } };
        used.add(rt);
      }
      issued++;
      return {
        delayMs: 50,
        body: {
          access_token: `at_${issued}`,
          refresh_token: `rt_${issued}`,
          token_type: 'Bearer',
          expires_in: 60,
        },
      };
    });
    cleanup.push(() => server.close());
    let now = Date.now();
    const clock = { now: () => now };
    const store = new MemoryTokenStore({ now: clock.now });
    const [a, b] = [1, 2].map(() => {
      const m = new TokenManager({
        tokenUrl: `${server.url}/token`,
        grant: passwordGrant({ clientId: 'app', clientSecret: 'app-secret', username: 'u', password: 'p' }),
        store,
        clock,
      });
      cleanup.push(() => m.close());
      return m;
    });
    expect((await a!.getToken()).accessToken).toBe('at_1');
    now += 120_000; // expired for both
    const [ta, tb] = await Promise.all([a!.getToken(), b!.getToken()]);
    expect([ta.accessToken, tb.accessToken]).toEqual(['at_2', 'at_2']);
    expect(grants).toEqual(['password', 'refresh_token']);
  });

  it('a waiter whose holder never releases gives up after its own lock lifetime', async () => {
    const store = new MemoryTokenStore();
    const held = await store.lock('k', 60_000);
    expect(held).toBeDefined();
    expect(await store.lock('k', 30)).toBeUndefined();
    held!.release();
    const again = await store.lock('k', 30);
    expect(again).toBeDefined();
    again!.release();
  });
});

describe('a process with an empty cache, the token endpoint down', () => {
  it("serves the store's token in its last tenth of life (not yet expired) instead of the endpoint's error", async () => {
    let down = false;
    let requests = 0;
    const server = await startServer(() => {
      requests++;
      if (down) return { status: 503, body: { error: 'temporarily_unavailable' } };
      return { body: { access_token: 'at_shared', token_type: 'Bearer', expires_in: 100 } };
    });
    cleanup.push(() => server.close());
    const store = new LockingStore();
    const grant = () => clientCredentials({ clientId: 'svc', clientSecret: 'svc-secret' });
    const a = new TokenManager({ tokenUrl: `${server.url}/token`, grant: grant(), store, retries: 0 });
    cleanup.push(() => a.close());
    expect((await a.getToken()).accessToken).toBe('at_shared');
    down = true;
    // A process started later, 97 s into the token's 100 s: past the point where callers wait for a
    // renewal, 3 s before the token actually expires.
    let offset = 97_000;
    const b = new TokenManager({
      tokenUrl: `${server.url}/token`,
      grant: grant(),
      store,
      retries: 0,
      clock: { now: () => Date.now() + offset },
    });
    cleanup.push(() => b.close());
    expect((await b.getToken()).accessToken).toBe('at_shared');
    expect(requests).toBe(2); // b tried to renew once
    expect((await b.getToken()).accessToken).toBe('at_shared'); // still served, renewal backed off
    offset = 101_000; // expired: now the endpoint's error
    await expect(b.getToken()).rejects.toBeInstanceOf(TokenEndpointError);
  });
});

describe('a refresh token with an unknown outcome is not sent by another process either', () => {
  it('the holder marks the stored set; the next process asks for a login instead of replaying it', async () => {
    const sent: string[] = [];
    const server = await startServer((req) => {
      const p = req.params;
      if (p.grant_type === 'authorization_code') {
        return {
          body: { access_token: 'at_1', token_type: 'Bearer', expires_in: 100, refresh_token: 'rt_1' },
        };
      }
      sent.push(p.refresh_token ?? '');
      return { status: 503, body: { error: 'temporarily_unavailable' } };
    });
    cleanup.push(() => server.close());
    const store = new LockingStore();
    let now = Date.now();
    const clock = { now: () => now };
    const [a, b] = [1, 2].map(() => {
      const grant = authorizationCode({
        clientId: 'web',
        clientSecret: 'web-secret',
        redirectUri: 'http://127.0.0.1/cb',
        authorizeUrl: `${server.url}/authorize`,
        pkce: false,
      });
      const m = new TokenManager({ tokenUrl: `${server.url}/token`, grant, store, clock, retries: 2 });
      cleanup.push(() => m.close());
      return { m, grant };
    });
    const set = await a!.grant.exchange('code', { subject: 'ana' });
    expect((await b!.m.getToken({ subject: 'ana' })).accessToken).toBe('at_1'); // b holds the set too
    now = set.expiresAt! + 1;
    await expect(a!.m.getToken({ subject: 'ana' })).rejects.toBeInstanceOf(TokenEndpointError);
    await expect(b!.m.getToken({ subject: 'ana' })).rejects.toBeInstanceOf(LoginRequiredError);
    expect(sent).toEqual(['rt_1']);
  });
});

describe('a lost store is bypassed, then probed in the background', () => {
  /** A store that hangs (like a Redis client queueing commands while disconnected) until healed. */
  class FlakyStore implements TokenStore {
    readonly inner = new MemoryTokenStore();
    down = true;
    calls = 0;
    #hang<T>(f: () => T): Promise<T> {
      this.calls++;
      return this.down ? new Promise<T>(() => {}) : Promise.resolve(f());
    }
    get(key: string) {
      return this.#hang(() => this.inner.get(key));
    }
    set(key: string, token: StoredToken, ttlMs: number) {
      return this.#hang(() => this.inner.set(key, token, ttlMs));
    }
    delete(key: string, ifAccessToken?: string) {
      return this.#hang(() => this.inner.delete(key, ifAccessToken));
    }
  }

  it('after one store timeout, cache misses go straight to the grant; the store is used again once a probe succeeds', async () => {
    const store = new FlakyStore();
    let fetched = 0;
    const m = new TokenManager({
      grant: customGrant(async ({ subject }) => ({
        access_token: `at-${subject}-${++fetched}`,
        expires_in: 3600,
      })),
      store,
      storeTimeoutMs: 200,
    });
    cleanup.push(() => m.close());
    for (let i = 0; i < 20; i++) {
      expect((await m.getToken({ subject: `user-${i}` })).accessToken).toMatch(new RegExp(`^at-user-${i}-`));
    }
    // The first miss paid the store timeout; the next 19 did not touch the store at all.
    expect(store.calls).toBe(1);
    store.down = false;
    expect(await waitFor(() => store.calls >= 2)).toBe(true); // the background probe
    await waitFor(() => false, 50);
    await m.getToken({ subject: 'user-after' });
    expect(store.inner.size).toBe(1); // shared through the store again
  });
});

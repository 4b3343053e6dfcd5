import { publishStore } from './diagnostics.js';
import type { Log } from './log.js';
import { redact } from './redact.js';
import type { TokenStore, TokenStoreLock } from './store.js';
import { sleep } from './token-endpoint.js';
import { fromStoredToken, toStoredToken } from './token-response.js';
import type { AccessToken } from './types.js';

export interface SharedStoreOptions {
  /** Each store call is abandoned after this long. */
  timeoutMs: number;
  /** Lock lifetime, and how long a process waits for another one's token. */
  lockWaitMs: number;
  /** Per-user token sets are kept this long when the server does not say how long the refresh token lives. */
  refreshTokenLifetimeMs: number;
  /** Entries without expiry are kept this long. */
  maxLifetimeMs: number;
  now: () => number;
  log: Log;
  /** Aborts waits on close. */
  signal: AbortSignal;
}

/** Where a token came from, for events. */
export type Source = 'store' | 'endpoint';

/**
 * The protocol a TokenManager follows with a shared store (`@keyfob/redis`):
 * - every call has a timeout, and a failing store never fails a caller: it is bypassed;
 * - after a failure the store is bypassed altogether for a backoff period (circuit breaker: 1 s,
 *   doubling to 30 s) and probed in the background, so a cache miss with the store down does not
 *   pay the store timeout on every call;
 * - cross-process single-flight with the store's optional lock: the holder fetches and stores; the
 *   others poll for its token *and re-try the lock*, so when the holder fails (and releases) a waiter
 *   takes over at once instead of waiting out the lock's lifetime;
 * - TTLs: an access token lives until it expires; a set with a refresh token as long as the refresh
 *   token does.
 */
export class SharedStore {
  readonly #store: TokenStore;
  readonly #o: SharedStoreOptions;
  readonly #locks = new Set<TokenStoreLock>();
  #failures = 0;
  /** While set, the store is bypassed; a background probe closes the circuit. */
  #open = false;
  #probe: ReturnType<typeof setTimeout> | undefined;

  constructor(store: TokenStore, options: SharedStoreOptions) {
    this.#store = store;
    this.#o = options;
  }

  /** Whether the store is being bypassed after a failure. */
  get bypassed(): boolean {
    return this.#open;
  }

  async get(key: string): Promise<AccessToken | undefined> {
    return fromStoredToken(await this.#call('get', () => this.#store.get(key), undefined));
  }

  async set(key: string, token: AccessToken): Promise<void> {
    const now = this.#o.now();
    const until = token.refreshToken
      ? Math.max(token.expiresAt ?? 0, now + refreshLifetime(token, this.#o.refreshTokenLifetimeMs))
      : (token.expiresAt ?? now + this.#o.maxLifetimeMs);
    const ttl = Math.max(1_000, until - now);
    await this.#call('set', () => this.#store.set(key, toStoredToken(token), ttl), undefined);
  }

  /** Deletes the entry; with `ifAccessToken`, only while it still holds that token (compare-and-delete). */
  async delete(key: string, ifAccessToken?: string): Promise<void> {
    await this.#call('delete', () => this.#store.delete(key, ifAccessToken), false);
  }

  /**
   * Cross-process single-flight. Returns a token another process stored when `usable` accepts it;
   * otherwise runs `fetch` (given the freshest stored set, whose refresh token it may use) holding the
   * store's lock when the store has one, stores the result and returns it.
   */
  async singleFlight(
    key: string,
    usable: (stored: AccessToken | undefined) => boolean,
    fetch: (stored: AccessToken | undefined) => Promise<AccessToken>,
  ): Promise<{ token: AccessToken; source: Source }> {
    let stored = await this.get(key);
    if (usable(stored)) return { token: stored!, source: 'store' };
    const store = this.#store;
    if (store.lock !== undefined) {
      const deadline = this.#o.now() + this.#o.lockWaitMs;
      let delay = 20;
      while (!this.#open && !this.#o.signal.aborted) {
        const lock = await this.#call('lock', () => store.lock!(key, this.#o.lockWaitMs), 'failed' as const);
        if (lock === 'failed') break;
        if (lock !== undefined) {
          this.#locks.add(lock);
          try {
            // The holder before us may have stored a token between our read and our lock.
            const again = await this.get(key);
            if (usable(again)) return { token: again!, source: 'store' };
            const token = await fetch(again?.refreshToken ? again : stored);
            await this.set(key, token);
            return { token, source: 'endpoint' };
          } finally {
            this.#locks.delete(lock);
            await this.#call('unlock', () => lock.release(), undefined);
          }
        }
        // Another process holds the lock and is fetching: look for its token, and try the lock again
        // (it is released as soon as the holder's request ends, successful or not).
        if (this.#o.now() >= deadline) {
          this.#o.log('warn', 'waited for another process to fetch the token and gave up; fetching directly');
          break;
        }
        await sleep(delay + Math.random() * delay, this.#o.signal).catch(() => {});
        delay = Math.min(delay * 1.5, 250);
        const peer = await this.get(key);
        if (usable(peer)) return { token: peer!, source: 'store' };
        if (peer?.refreshToken) stored = peer;
      }
    }
    const token = await fetch(stored);
    await this.set(key, token);
    return { token, source: 'endpoint' };
  }

  /** Releases held locks and stops the probe. */
  async close(): Promise<void> {
    clearTimeout(this.#probe);
    const locks = [...this.#locks];
    this.#locks.clear();
    await Promise.allSettled(locks.map((l) => l.release()));
  }

  /** Store calls never fail a caller: a slow or broken store is bypassed (`onFail` is returned). */
  async #call<T, F>(op: string, call: () => Promise<T> | T, onFail: F): Promise<T | F> {
    if (this.#open) return onFail;
    try {
      const result = await this.#withTimeout(op, call);
      this.#failures = 0;
      return result;
    } catch (e) {
      this.#trip(op, e);
      return onFail;
    }
  }

  async #withTimeout<T>(op: string, call: () => Promise<T> | T): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      return await Promise.race([
        Promise.resolve().then(call),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`store ${op} timed out after ${this.#o.timeoutMs} ms`)),
            this.#o.timeoutMs,
          );
          timer.unref?.();
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  #trip(op: string, e: unknown): void {
    this.#failures++;
    if (!this.#open) {
      const reason = e instanceof Error ? e.message : String(e);
      this.#o.log('warn', `token store ${op} failed (${reason}); fetching tokens directly until it is back`);
      publishStore('failure', op, redact(reason));
    }
    this.#open = true;
    this.#scheduleProbe();
  }

  #scheduleProbe(): void {
    if (this.#o.signal.aborted) return;
    clearTimeout(this.#probe);
    const base = Math.min(1_000 * 2 ** Math.max(0, this.#failures - 1), 30_000);
    this.#probe = setTimeout(() => void this.#runProbe(), Math.round(base * (0.75 + Math.random() * 0.5)));
    this.#probe.unref?.();
  }

  async #runProbe(): Promise<void> {
    try {
      await this.#withTimeout('probe', () => this.#store.get('keyfob:probe'));
    } catch {
      this.#failures++;
      this.#scheduleProbe();
      return;
    }
    this.#failures = 0;
    this.#open = false;
    this.#o.log('info', 'token store is reachable again; sharing tokens through it');
    publishStore('recovery', 'probe');
  }
}

function refreshLifetime(token: AccessToken, fallback: number): number {
  const r = token.raw.refresh_expires_in ?? token.raw.refresh_token_expires_in;
  const seconds = typeof r === 'number' ? r : typeof r === 'string' ? Number(r) : Number.NaN;
  return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : fallback;
}

import { BoundedCache } from './lru.js';
import type { StoredToken } from './types.js';

/** A lock held by one process for one cache key (cross-process single-flight). */
export interface TokenStoreLock {
  release(): Promise<void> | void;
}

/**
 * Where token sets live beyond one TokenManager: memory (default) or shared (`@keyfob/redis`).
 * Keys are opaque hashes; they never contain a secret or a token.
 */
export interface TokenStore {
  get(key: string): Promise<StoredToken | undefined> | StoredToken | undefined;
  /** Stores `token` for `ttlMs` (the entry may be dropped after that). */
  set(key: string, token: StoredToken, ttlMs: number): Promise<void> | void;
  /**
   * Deletes the entry; with `ifAccessToken`, only if it still holds that access token
   * (compare-and-delete, so a late 401 never drops a newer token). Resolves whether it deleted.
   */
  delete(key: string, ifAccessToken?: string): Promise<boolean> | boolean;
  /**
   * Optional cross-process lock: resolves a lock when acquired, `undefined` when another
   * process holds it (that process is fetching; wait for its token via `get`).
   */
  lock?(key: string, ttlMs: number): Promise<TokenStoreLock | undefined>;
  /** Releases what the store owns (not a client you passed in). */
  close?(): Promise<void> | void;
}

export interface MemoryTokenStoreOptions {
  /** Most entries kept; the least recently used go first. Defaults to `10_000`. */
  maxEntries?: number | undefined;
  /** Clock for expiry. Defaults to `Date.now`. */
  now?: () => number;
}

interface MemoryEntry {
  token: StoredToken;
  deadline: number;
}

/** A held lock of a {@link MemoryTokenStore}: until when, and how its waiters learn of its release. */
interface MemoryLock {
  until: number;
  readonly released: Promise<void>;
  readonly release: () => void;
}

/**
 * In-process store, bounded in entries (approximate LRU) so per-user tokens cannot grow memory without
 * limit. Shared by several managers in one process, it keeps their single-flight too: its `lock` makes
 * the others wait for the one fetching (one token request per key at a time, and a refresh token sent by
 * one manager only), then take its token from the store.
 */
export class MemoryTokenStore implements TokenStore {
  readonly #cache: BoundedCache<MemoryEntry>;
  readonly #now: () => number;
  readonly #locks = new Map<string, MemoryLock>();

  constructor(options: MemoryTokenStoreOptions = {}) {
    this.#cache = new BoundedCache(options.maxEntries ?? 10_000);
    this.#now = options.now ?? Date.now;
  }

  /** Entries held now (expired ones are dropped lazily). */
  get size(): number {
    return this.#cache.size;
  }

  get maxEntries(): number {
    return this.#cache.maxEntries;
  }

  get(key: string): StoredToken | undefined {
    const e = this.#cache.get(key);
    if (e === undefined) return undefined;
    if (e.deadline <= this.#now()) {
      this.#cache.delete(key);
      return undefined;
    }
    return e.token;
  }

  set(key: string, token: StoredToken, ttlMs: number): void {
    this.#cache.set(key, { token, deadline: this.#now() + Math.max(0, ttlMs) });
  }

  delete(key: string, ifAccessToken?: string): boolean {
    if (ifAccessToken !== undefined && this.#cache.peek(key)?.token.accessToken !== ifAccessToken)
      return false;
    return this.#cache.delete(key);
  }

  clear(): void {
    this.#cache.clear();
  }

  /**
   * Single-flight between the managers sharing this store: resolves the lock once no other manager
   * holds it (waiting for its release, at most until the holder's lock expires after its `ttlMs`), or
   * `undefined` when `ttlMs` passes first (the caller then fetches by itself). Lifetimes run on the
   * monotonic clock, not `now`.
   */
  async lock(key: string, ttlMs: number): Promise<TokenStoreLock | undefined> {
    const deadline = performance.now() + ttlMs;
    for (;;) {
      const held = this.#locks.get(key);
      const now = performance.now();
      if (held === undefined || held.until <= now) return this.#take(key, now + ttlMs);
      const wait = Math.min(held.until, deadline) - now;
      if (wait <= 0) return undefined;
      await released(held, wait);
    }
  }

  #take(key: string, until: number): TokenStoreLock {
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const lock: MemoryLock = { until, released, release };
    this.#locks.set(key, lock);
    return {
      release: () => {
        if (this.#locks.get(key) === lock) this.#locks.delete(key);
        lock.release();
      },
    };
  }
}

/** Resolves when `lock` is released or after `ms`, whichever comes first (the timer never holds the process). */
function released(lock: MemoryLock, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    timer.unref?.();
    void lock.released.then(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

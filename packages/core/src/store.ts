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

/** In-process store, bounded in entries (approximate LRU) so per-user tokens cannot grow memory without limit. */
export class MemoryTokenStore implements TokenStore {
  readonly #cache: BoundedCache<MemoryEntry>;
  readonly #now: () => number;

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
}

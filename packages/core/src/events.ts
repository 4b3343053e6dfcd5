import type { KeyfobError } from './errors.js';

/** Payload of token events: never the token itself, only a fingerprint. */
export interface TokenEvent {
  grantType: string;
  subject: string | undefined;
  scope: string | undefined;
  /** Epoch ms, when known. */
  expiresAt: number | undefined;
  /** Short non-reversible id of the token, to correlate log lines. */
  fingerprint: string;
  /** Where the token came from. */
  source: 'endpoint' | 'store' | 'exchange';
  durationMs: number;
}

export interface RefreshFailedEvent {
  grantType: string;
  subject: string | undefined;
  scope: string | undefined;
  error: KeyfobError;
  /** The current token stays in use until then (epoch ms). */
  servingUntil: number;
  /** Next attempt not before (epoch ms). */
  retryAt: number;
}

/** A token could not be obtained and no valid token was left to serve: the waiting callers got `error`. */
export interface TokenFailedEvent {
  grantType: string;
  subject: string | undefined;
  scope: string | undefined;
  /** Redacted, typed: `code`, and for the token endpoint `status` and the OAuth `error`. */
  error: KeyfobError;
}

export interface InvalidatedEvent {
  grantType: string;
  subject: string | undefined;
  scope: string | undefined;
  fingerprint: string;
}

export interface TokenManagerEvents {
  /** A first token for a cache key. */
  tokenFetched: TokenEvent;
  /** A token replaced an earlier one (refresh-ahead, expiry, 401, forceRefresh, refresh token). */
  tokenRefreshed: TokenEvent;
  /** A background refresh failed; the still-valid token keeps being served. */
  refreshFailed: RefreshFailedEvent;
  /**
   * Getting a token failed with nothing valid left to serve (a wrong secret, an unreachable endpoint
   * at startup, an expired token that could not be renewed). Once per failed request, however many
   * callers were waiting for it.
   */
  tokenFailed: TokenFailedEvent;
  /** `invalidate()` dropped a token. */
  tokenInvalidated: InvalidatedEvent;
}

export type Listener<T> = (event: T) => void;

export class Emitter<M> {
  readonly #listeners = new Map<keyof M, Set<Listener<any>>>();

  on<K extends keyof M>(event: K, listener: Listener<M[K]>): () => void {
    let set = this.#listeners.get(event);
    if (!set) {
      set = new Set();
      this.#listeners.set(event, set);
    }
    set.add(listener);
    return () => set.delete(listener);
  }

  emit<K extends keyof M>(event: K, payload: M[K]): void {
    const set = this.#listeners.get(event);
    if (!set) return;
    for (const l of set) {
      try {
        l(payload);
      } catch {
        // A listener's bug must not break token delivery.
      }
    }
  }

  clear(): void {
    this.#listeners.clear();
  }
}

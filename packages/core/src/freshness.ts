/**
 * The one place that decides, for a cached token, whether a caller gets it, waits for a renewal, or
 * gets an error. For a token living L ms:
 * - `refreshAt = expiresAt - min(refreshMarginMs, L/5)`: from here a call returns the cached token at
 *   once and starts a background renewal (refresh-ahead), so callers do not wait at expiry;
 * - `waitAt = expiresAt - min(expiryBufferMs, L/10)`: from here callers *wait* for the renewal, as long
 *   as renewals work (a token this close to expiry could expire in flight);
 * - `expiresAt`: while renewals fail, the token is served until here, and only after it do callers get
 *   the error (DESIGN behaviour 2: "a token that has not expired is still served").
 * The L/5 cap keeps short-lived tokens useful: a 2 s token is reused for 1.6 s, not refetched per call.
 */
export interface FreshnessPolicy {
  refreshMarginMs: number;
  expiryBufferMs: number;
}

export interface Freshness {
  /** Start a background renewal from here (epoch ms). */
  refreshAt: number;
  /** Callers wait for a working renewal from here (epoch ms). */
  waitAt: number;
  /** The token is not valid from here (epoch ms); `Infinity` for a token without expiry. */
  expiresAt: number;
}

export function freshnessOf(
  token: { expiresAt?: number | undefined; obtainedAt?: number | undefined },
  policy: FreshnessPolicy,
  now: number,
): Freshness {
  const { expiresAt } = token;
  if (expiresAt === undefined) {
    return {
      refreshAt: Number.POSITIVE_INFINITY,
      waitAt: Number.POSITIVE_INFINITY,
      expiresAt: Number.POSITIVE_INFINITY,
    };
  }
  const lifetime = Math.max(0, expiresAt - Math.min(token.obtainedAt ?? now, now));
  const margin = Math.min(policy.refreshMarginMs, lifetime / 5);
  const buffer = Math.min(policy.expiryBufferMs, lifetime / 10, margin);
  return { refreshAt: expiresAt - margin, waitAt: expiresAt - buffer, expiresAt };
}

/** What a cached entry's state says about a call now. */
export interface RenewalState extends Freshness {
  /** Renewals that failed in a row since the token was obtained. */
  failures: number;
  /** Do not start another renewal before this (backoff after failures). */
  retryAt: number;
  /**
   * The renewal running now has had an attempt fail and is waiting to try again (backoff, a 429's or a
   * 503's Retry-After): it is not "working", so callers inside the buffer are served, not made to wait.
   */
  struggling: boolean;
}

/**
 * - `'serve'`: hand out the cached token, nothing else to do;
 * - `'serve-and-renew'`: hand it out and start a background renewal (unless one runs or backoff says wait);
 * - `'wait'`: the caller waits for a renewal (and gets this token back if the renewal fails while
 *   {@link servableAfterFailure});
 * - `'expired'`: the token must not be used.
 */
export type Decision = 'serve' | 'serve-and-renew' | 'wait' | 'expired';

/**
 * The hot-path decision. Renewals that are failing (or retrying a failed attempt) do not make callers
 * wait inside the buffer.
 */
export function decide(state: RenewalState, now: number): Decision {
  if (now < state.refreshAt) return 'serve';
  if (now < state.waitAt) return 'serve-and-renew';
  if (now >= state.expiresAt) return 'expired';
  return state.failures > 0 || state.struggling ? 'serve-and-renew' : 'wait';
}

/** After a renewal failed, whether the caller may still get the cached token. */
export function servableAfterFailure(state: Freshness, now: number): boolean {
  return now < state.expiresAt;
}

/**
 * Whether a token found in a store may be used instead of fetching: not the one being replaced, not
 * invalidated, and before the point where this process would renew it (with a cached token to fall back
 * on) or wait for a renewal (without one).
 */
export function usableFromStore(f: Freshness, now: number, haveFallback: boolean): boolean {
  return now < (haveFallback ? f.refreshAt : f.waitAt);
}

/** Backoff between failed renewals: 1 s, 2 s, 4 s ... capped at 30 s, with jitter (+-25%). */
export function renewalRetryDelay(failures: number, random: () => number = Math.random): number {
  const base = Math.min(1_000 * 2 ** Math.max(0, failures - 1), 30_000);
  return Math.round(base * (0.75 + random() * 0.5));
}

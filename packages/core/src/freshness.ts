/**
 * The one place that decides when a token is renewed. For a token living L ms:
 * - `refreshAt = expiresAt - min(refreshMarginMs, L/5)`: from here a call returns the cached token
 *   at once and starts a background refresh (refresh-ahead), so callers never wait at expiry;
 * - `staleAt = expiresAt - min(expiryBufferMs, L/10)`: from here the token is not handed out any
 *   more (it could expire in flight), callers wait for the new one.
 * The L/5 cap keeps short-lived tokens useful: a 2 s token is reused for 1.6 s, not refetched per call.
 */
export interface FreshnessPolicy {
  refreshMarginMs: number;
  expiryBufferMs: number;
}

export interface Freshness {
  refreshAt: number;
  staleAt: number;
}

export function freshnessOf(
  token: { expiresAt?: number | undefined; obtainedAt?: number | undefined },
  policy: FreshnessPolicy,
  now: number,
): Freshness {
  const { expiresAt } = token;
  if (expiresAt === undefined)
    return { refreshAt: Number.POSITIVE_INFINITY, staleAt: Number.POSITIVE_INFINITY };
  const lifetime = Math.max(0, expiresAt - Math.min(token.obtainedAt ?? now, now));
  const margin = Math.min(policy.refreshMarginMs, lifetime / 5);
  const buffer = Math.min(policy.expiryBufferMs, lifetime / 10, margin);
  return { refreshAt: expiresAt - margin, staleAt: expiresAt - buffer };
}

/** Backoff between failed background refreshes: 1 s, 2 s, 4 s ... capped at 30 s, with jitter. */
export function refreshRetryDelay(failures: number): number {
  const base = Math.min(1_000 * 2 ** Math.max(0, failures - 1), 30_000);
  return Math.round(base * (0.75 + Math.random() * 0.5));
}

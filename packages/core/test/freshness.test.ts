import { describe, expect, it } from 'vitest';
import {
  decide,
  freshnessOf,
  type RenewalState,
  renewalRetryDelay,
  servableAfterFailure,
  usableFromStore,
} from '../src/freshness.js';

const policy = { refreshMarginMs: 60_000, expiryBufferMs: 5_000 };
const T0 = 1_700_000_000_000;

function state(lifetimeMs: number, failures = 0, struggling = false): RenewalState {
  return {
    ...freshnessOf({ expiresAt: T0 + lifetimeMs, obtainedAt: T0 }, policy, T0),
    failures,
    retryAt: 0,
    struggling,
  };
}

describe('freshnessOf', () => {
  it('one hour: renew 60 s before expiry, wait inside the last 5 s', () => {
    const f = freshnessOf({ expiresAt: T0 + 3_600_000, obtainedAt: T0 }, policy, T0);
    expect(f).toEqual({ refreshAt: T0 + 3_540_000, waitAt: T0 + 3_595_000, expiresAt: T0 + 3_600_000 });
  });

  it('short-lived tokens: margin capped at L/5, buffer at L/10 (a 2 s token is reused for 1.6 s)', () => {
    const f = freshnessOf({ expiresAt: T0 + 2_000, obtainedAt: T0 }, policy, T0);
    expect(f.refreshAt).toBe(T0 + 1_600);
    expect(f.waitAt).toBe(T0 + 1_800);
  });

  it('no expiry: never renewed, never expires', () => {
    const f = freshnessOf({}, policy, T0);
    expect(f.refreshAt).toBe(Number.POSITIVE_INFINITY);
    expect(f.expiresAt).toBe(Number.POSITIVE_INFINITY);
    expect(decide({ ...f, failures: 0, retryAt: 0, struggling: false }, T0 + 1e12)).toBe('serve');
  });

  it('the buffer is never larger than the margin', () => {
    const f = freshnessOf(
      { expiresAt: T0 + 3_600_000, obtainedAt: T0 },
      { refreshMarginMs: 1_000, expiryBufferMs: 5_000 },
      T0,
    );
    expect(f.waitAt).toBe(f.refreshAt);
  });
});

describe('decide', () => {
  const s = state(100_000); // refreshAt T0+80 s, waitAt T0+95 s, expiresAt T0+100 s
  it.each([
    [T0, 'serve'],
    [T0 + 79_999, 'serve'],
    [T0 + 80_000, 'serve-and-renew'],
    [T0 + 94_999, 'serve-and-renew'],
    [T0 + 95_000, 'wait'],
    [T0 + 99_999, 'wait'],
    [T0 + 100_000, 'expired'],
  ])('at %i: %s', (now, decision) => {
    expect(decide(s, now)).toBe(decision);
  });

  it('while renewals fail, the buffer does not make callers wait: they are served until expiry', () => {
    const failing = state(100_000, 1);
    expect(decide(failing, T0 + 97_000)).toBe('serve-and-renew');
    expect(decide(failing, T0 + 100_000)).toBe('expired');
  });

  it('while the running renewal retries a failed attempt (backoff, Retry-After), callers are served, not made to wait', () => {
    const retrying = state(100_000, 0, true);
    expect(decide(retrying, T0 + 97_000)).toBe('serve-and-renew');
    expect(decide(retrying, T0 + 100_000)).toBe('expired');
  });

  it('after a failed renewal, a token is servable until it expires, not after', () => {
    expect(servableAfterFailure(s, T0 + 99_999)).toBe(true);
    expect(servableAfterFailure(s, T0 + 100_000)).toBe(false);
  });
});

describe('usableFromStore', () => {
  const f = state(100_000);
  it('with a cached token to fall back on, a stored one is taken only before its refresh point', () => {
    expect(usableFromStore(f, T0 + 79_000, true)).toBe(true);
    expect(usableFromStore(f, T0 + 81_000, true)).toBe(false);
  });
  it('without one, up to the point where callers would wait', () => {
    expect(usableFromStore(f, T0 + 90_000, false)).toBe(true);
    expect(usableFromStore(f, T0 + 96_000, false)).toBe(false);
  });
});

describe('renewalRetryDelay', () => {
  it('doubles from 1 s to a 30 s cap, with +-25% jitter', () => {
    expect(renewalRetryDelay(1, () => 0.5)).toBe(1_000);
    expect(renewalRetryDelay(2, () => 0.5)).toBe(2_000);
    expect(renewalRetryDelay(10, () => 0.5)).toBe(30_000);
    expect(renewalRetryDelay(1, () => 0)).toBe(750);
    expect(renewalRetryDelay(1, () => 0.999_999)).toBe(1_250);
  });
});

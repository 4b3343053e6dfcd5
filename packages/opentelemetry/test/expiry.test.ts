import { describe, expect, it } from 'vitest';
import { ExpiryTracker } from '../src/expiry.js';

describe('ExpiryTracker (the keyfob.token.expires_in gauge)', () => {
  it('one series per attribute set, the soonest expiry; many subjects stay one series', () => {
    const t = new ExpiryTracker(1_000);
    const attrs = { 'keyfob.grant_type': 'authorization_code' };
    for (let i = 0; i < 500; i++) t.set(`key-${i}`, `fp${i}`, 10_000 + i * 1_000, { ...attrs });
    t.set('svc', 'fpsvc', 60_000, { 'keyfob.grant_type': 'client_credentials' });
    const observed = t.observe(0);
    expect(observed).toHaveLength(2);
    expect(observed).toContainEqual([attrs, 10]);
    expect(observed).toContainEqual([{ 'keyfob.grant_type': 'client_credentials' }, 60]);
  });

  it('is bounded (oldest key forgotten), drops expired tokens, forgets an invalidated one', () => {
    const t = new ExpiryTracker(3);
    for (let i = 0; i < 5; i++) t.set(`k${i}`, `fp${i}`, 100_000, { i });
    expect(t.size).toBe(3);
    expect(t.observe(0).map(([a]) => a.i)).toEqual([2, 3, 4]);
    t.forget('fp3');
    expect(t.observe(0).map(([a]) => a.i)).toEqual([2, 4]);
    t.set('k5', 'fp5', 50, { i: 5 });
    expect(t.observe(1_000).map(([a]) => a.i)).toEqual([2, 4]);
    expect(t.size).toBe(2);
    // A new token for a known key replaces the old one.
    t.set('k2', 'fp2b', 200_000, { i: 2 });
    expect(t.observe(0)).toContainEqual([{ i: 2 }, 200]);
  });
});

// invalidate(token) without a subject finds the token through an index (O(1) in the number of cached
// tokens; bench/scale.ts measures it) and still drops exactly that token.
import { afterEach, describe, expect, it } from 'vitest';
import { customGrant, TokenManager } from '../src/index.js';

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

function manager(maxEntries = 10_000) {
  let n = 0;
  const m = new TokenManager({
    grant: customGrant(async ({ subject }) => ({ access_token: `at-${subject}-${++n}`, expires_in: 3600 })),
    maxEntries,
  });
  cleanup.push(() => m.close());
  return m;
}

describe('invalidate(token) without a subject', () => {
  it('drops exactly the token given, among many subjects', async () => {
    const m = manager();
    const tokens = await Promise.all(Array.from({ length: 500 }, (_, i) => m.getToken({ subject: `u${i}` })));
    expect(await m.invalidate(tokens[321]!.accessToken)).toBe(true);
    const renewed = await m.getToken({ subject: 'u321' });
    expect(renewed.accessToken).not.toBe(tokens[321]!.accessToken);
    for (const i of [0, 320, 322, 499]) {
      expect((await m.getToken({ subject: `u${i}` })).accessToken).toBe(tokens[i]!.accessToken);
    }
  });

  it('a token already replaced, unknown or evicted is not current: nothing is dropped', async () => {
    const m = manager(3);
    const old = await m.getToken({ subject: 'a' });
    expect(await m.invalidate(old)).toBe(true);
    const current = await m.getToken({ subject: 'a' });
    expect(await m.invalidate(old)).toBe(false); // compare-and-delete: the newer token stays
    expect((await m.getToken({ subject: 'a' })).accessToken).toBe(current.accessToken);
    expect(await m.invalidate('never-issued')).toBe(false);
    const b = await m.getToken({ subject: 'b' });
    for (const s of ['c', 'd', 'e', 'f']) await m.getToken({ subject: s }); // b is evicted (bound 3)
    expect(m.size).toBe(3);
    expect(await m.invalidate(b)).toBe(false);
  });
});

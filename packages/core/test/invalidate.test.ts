// invalidate(token) without a subject finds the token through an index (O(1) in the number of cached
// tokens; bench/scale.ts measures it) and still drops exactly that token.

import { startServer } from '@keyfob/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { clientCredentials, customGrant, TokenManager } from '../src/index.js';

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

// getToken() without options reads the default key's entry from a field (no key, no Map lookup): every
// way that entry is replaced or dropped must reach that field too.
describe('the default key, served from its own field', () => {
  function counting(maxEntries = 10_000) {
    let n = 0;
    const m = new TokenManager({
      grant: customGrant(async ({ subject }) => ({
        access_token: `at-${subject ?? 'svc'}-${++n}`,
        expires_in: 3600,
      })),
      maxEntries,
    });
    cleanup.push(() => m.close());
    return m;
  }

  it('a forced refresh through an equal key (the default scope spelled out) replaces what getToken() serves', async () => {
    let n = 0;
    const server = await startServer(() => ({ body: { access_token: `at-${++n}`, expires_in: 3600 } }));
    cleanup.push(() => server.close());
    const m = new TokenManager({
      tokenUrl: `${server.url}/token`,
      grant: clientCredentials({ clientId: 'svc', clientSecret: 'svc-secret', scope: 'read' }),
    });
    cleanup.push(() => m.close());
    const first = await m.getToken();
    const forced = await m.getToken({ scope: 'read', forceRefresh: true });
    expect(forced.accessToken).not.toBe(first.accessToken);
    expect((await m.getToken()).accessToken).toBe(forced.accessToken);
    expect(await m.getAuthorizationHeader()).toBe(`Bearer ${forced.accessToken}`);
  });

  it('invalidate, deleteToken and close reach it', async () => {
    const m = counting();
    const first = await m.getToken();
    await m.invalidate(first);
    const second = await m.getToken();
    expect(second.accessToken).not.toBe(first.accessToken);
    await m.deleteToken();
    const third = await m.getToken();
    expect(third.accessToken).not.toBe(second.accessToken);
    await m.close();
    await expect(m.getToken()).rejects.toMatchObject({ code: 'KEYFOB_CLOSED' });
  });

  it('evicted from the bounded cache, it is no longer served, and invalidating it then drops nothing', async () => {
    const m = counting(2);
    const first = await m.getToken();
    for (const s of ['a', 'b', 'c', 'd']) await m.getToken({ subject: s }); // evicts the default entry
    const again = await m.getToken();
    expect(again.accessToken).not.toBe(first.accessToken);
    expect(await m.invalidate(first)).toBe(false);
    expect((await m.getToken()).accessToken).toBe(again.accessToken);
  });
});

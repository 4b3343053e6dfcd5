// getToken() without options serves the default key's token from a field, without reading the clock:
// a timer empties the field at the token's refreshAt, and re-reads the wall clock at least once a
// second so a suspended machine or a clock step is noticed. An injected or faked clock turns the
// field off, so time moved by hand is seen at once.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CHECK_EVERY, HEARTBEAT_MS, HotSlot, isNativeClock, systemNow } from '../src/hot-slot.js';
import { customGrant, TokenManager } from '../src/index.js';

const cleanup: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  vi.useRealTimers();
  while (cleanup.length) await cleanup.pop()!();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function counting(expiresIn: number, options: Partial<ConstructorParameters<typeof TokenManager>[0]> = {}) {
  let n = 0;
  const m = new TokenManager({
    grant: customGrant(async () => ({ access_token: `at-${++n}`, expires_in: expiresIn })),
    ...options,
  });
  cleanup.push(() => m.close());
  return { m, requests: () => n };
}

describe('the hot slot', () => {
  it('is used only for the engine clock', () => {
    expect(isNativeClock(systemNow)).toBe(true);
    expect(isNativeClock(Date.now)).toBe(true);
    expect(isNativeClock(() => Date.now())).toBe(false);
  });

  it('empties at refreshAt on real time: the call after it starts the renewal', async () => {
    const { m, requests } = counting(2); // refreshAt = 1.6 s (L/5 margin)
    const first = await m.getToken();
    expect((await m.getToken()).accessToken).toBe(first.accessToken);
    await sleep(1_750);
    // Past refreshAt: the old token with a background renewal (or, on a machine slow enough to be past
    // waitAt, the new one). Had the field not emptied, the old token would be served on and on.
    expect(['at-1', 'at-2']).toContain((await m.getToken()).accessToken);
    await vi.waitFor(async () => expect((await m.getToken()).accessToken).toBe('at-2'));
    expect(requests()).toBe(2);
  });

  it('re-reads the wall clock at least once a second (a suspended laptop, a clock step)', async () => {
    let wall = 1_000_000;
    const slot = new HotSlot<{ refreshAt: number }>(() => wall, true);
    cleanup.push(() => slot.clear());
    const entry = { refreshAt: wall + 3_600_000 };
    slot.set(entry);
    expect(slot.get()).toBe(entry);
    wall += 7_200_000; // two hours pass on the wall clock, none on the monotonic one
    expect(slot.get()).toBe(entry); // the hot path does not read the clock...
    await vi.waitFor(() => expect(slot.get()).toBeUndefined(), { timeout: HEARTBEAT_MS + 1_000 }); // ...the timer does
  });

  it('reads the clock itself every CHECK_EVERY calls, where timers cannot be trusted (a blocked loop, fake timers)', () => {
    let wall = 1_000_000;
    const slot = new HotSlot<{ refreshAt: number }>(() => wall, true);
    cleanup.push(() => slot.clear());
    const entry = { refreshAt: wall + 3_600_000 };
    slot.set(entry);
    wall += 7_200_000; // no timer runs in this synchronous test
    let served = 0;
    while (slot.get() === entry) served++;
    expect(served).toBe(CHECK_EVERY - 1);
    expect(slot.get()).toBeUndefined();
  });

  it('keeps an entry whose refreshAt is still ahead across heartbeats, and never takes a past one', async () => {
    const wall = 1_000_000;
    const slot = new HotSlot<{ refreshAt: number }>(() => wall, true);
    cleanup.push(() => slot.clear());
    const entry = { refreshAt: wall + 3_600_000 };
    slot.set(entry);
    await sleep(HEARTBEAT_MS + 200);
    expect(slot.get()).toBe(entry);
    slot.set({ refreshAt: wall });
    expect(slot.get()).toBeUndefined();
    const other = { refreshAt: wall + 1 };
    slot.set(other);
    slot.clear(entry); // not the one held: nothing happens
    expect(slot.get()).toBe(other);
  });

  it('stays off when disabled', () => {
    const slot = new HotSlot<{ refreshAt: number }>(() => 0, false);
    slot.set({ refreshAt: 1_000 });
    expect(slot.get()).toBeUndefined();
  });

  it('with an injected clock, moving it past refreshAt renews on the next call', async () => {
    let now = Date.now();
    const { m, requests } = counting(3600, { clock: { now: () => now } });
    const first = await m.getToken();
    now += 3_600_000 + 1;
    expect((await m.getToken()).accessToken).not.toBe(first.accessToken);
    expect(requests()).toBe(2);
  });

  it('with vitest fake timers (Date faked), setSystemTime past expiry renews on the next call', async () => {
    vi.useFakeTimers({ now: Date.now() });
    const { m, requests } = counting(3600);
    const first = await m.getToken();
    expect((await m.getToken()).accessToken).toBe(first.accessToken);
    vi.setSystemTime(Date.now() + 3_600_000 + 1);
    expect((await m.getToken()).accessToken).not.toBe(first.accessToken);
    expect(requests()).toBe(2);
  });

  it('fake timers installed after the manager was made (Date faked): setSystemTime past expiry renews on the next call', async () => {
    const { m, requests } = counting(3600);
    const first = await m.getToken();
    expect((await m.getToken()).accessToken).toBe(first.accessToken); // served from the field
    vi.useFakeTimers({ now: Date.now() });
    expect((await m.getToken()).accessToken).toBe(first.accessToken);
    vi.setSystemTime(Date.now() + 3_600_000 + 1);
    const second = await m.getToken();
    expect(second.accessToken).toBe('at-2');
    expect(second.expiresAt).toBe(Date.now() + 3_600_000); // on the faked clock
    expect(requests()).toBe(2);
    vi.useRealTimers();
    // Back on the real clock the new token is served (its expiry is an hour past the faked time).
    expect((await m.getToken()).accessToken).toBe('at-2');
  });

  it('fake timers installed after the manager was made do not keep a stale token in the field', async () => {
    const { m, requests } = counting(2);
    const first = await m.getToken();
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    await new Promise((r) => setImmediateLoop(1_750, r)); // real time passes; no fake timer runs
    expect([first.accessToken, 'at-2']).toContain((await m.getToken()).accessToken);
    vi.useRealTimers();
    await vi.waitFor(async () => expect((await m.getToken()).accessToken).toBe('at-2'));
    expect(requests()).toBe(2);
  });
});

/** Waits `ms` of real time without setTimeout (faked in the test that uses it). */
function setImmediateLoop(ms: number, done: (v: unknown) => void): void {
  const end = performance.now() + ms;
  const tick = () => (performance.now() >= end ? done(undefined) : setImmediate(tick));
  tick();
}

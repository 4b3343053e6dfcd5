/**
 * The entry `getToken()` without options hands out without reading the clock: a field read, where the
 * exact check (`now < refreshAt`) costs a `Date.now()` per call (about 40 ns on a VM, as much as the
 * whole call). A timer takes the entry out of the slot at its `refreshAt`; the next call then takes
 * the exact path, which reads the clock, starts the renewal and puts the new entry here.
 *
 * Timers run on the monotonic clock, token lifetimes on the wall clock: after a suspended laptop or a
 * wall-clock step the two disagree. So the timer never waits more than {@link HEARTBEAT_MS}: each time
 * it fires it reads the wall clock and either re-arms or empties the slot. A token is thus served from
 * here at most about a second past its `refreshAt`, which is well before it expires (`refreshAt` is
 * `min(refreshMarginMs, lifetime / 5)` before expiry). Where timers cannot run (the event loop blocked),
 * every {@link CHECK_EVERY}th call reads the clock too: no path serves a token from here for longer than
 * that.
 *
 * The slot stays empty (every call takes the exact path) with an injected clock, and steps aside while
 * `Date.now` is not the engine's (test fake timers, installed before or after the manager was made), so
 * tests that move time by hand see exactly what they moved.
 */
export const HEARTBEAT_MS = 1_000;
/** Calls served from the slot between two clock reads of its own, whatever the timers do. */
export const CHECK_EVERY = 1_024;

// Captured when keyfob is loaded: fake timers installed later (vi.useFakeTimers) must not stop the slot
// from emptying on real time.
const arm = globalThis.setTimeout;
const disarm = globalThis.clearTimeout;
const nativeNow = /\{\s*\[native code\]\s*\}/.test(Function.prototype.toString.call(Date.now))
  ? Date.now
  : undefined;

/**
 * The default clock: whatever `Date.now` is at the time of the call, so fake timers installed after a
 * manager was made (a module-level manager, `vi.useFakeTimers()` in a test) move its time too.
 */
export const systemNow = (): number => Date.now();

/** Whether `now` is the system clock, the only clock the slot may stand in for (while it is the engine's). */
export function isNativeClock(now: () => number): boolean {
  return nativeNow !== undefined && (now === systemNow || now === nativeNow);
}

export class HotSlot<E extends { readonly refreshAt: number }> {
  #entry: E | undefined;
  #calls = CHECK_EVERY;
  #timer: ReturnType<typeof setTimeout> | undefined;
  readonly #now: () => number;
  readonly #enabled: boolean;

  constructor(now: () => number, enabled: boolean) {
    this.#now = now;
    this.#enabled = enabled;
  }

  /** The hot path: the entry, or undefined when the slot is empty (then take the exact path). */
  get(): E | undefined {
    const entry = this.#entry;
    if (entry === undefined) return undefined;
    // Fake timers (or any stand-in) replaced Date.now: the exact path, on that clock.
    if (Date.now !== nativeNow) return undefined;
    if (--this.#calls === 0) {
      this.#calls = CHECK_EVERY;
      if (!(this.#now() < entry.refreshAt)) {
        this.clear();
        return undefined;
      }
    }
    return entry;
  }

  /** Serves `entry` from the slot until its `refreshAt`, or empties the slot if that has passed. */
  set(entry: E): void {
    this.clear();
    if (!this.#enabled) return;
    this.#entry = entry;
    this.#check();
  }

  /** Empties the slot (only if it holds `entry`, when given). */
  clear(entry?: E): void {
    if (entry !== undefined && entry !== this.#entry) return;
    this.#entry = undefined;
    if (this.#timer !== undefined) {
      disarm(this.#timer);
      this.#timer = undefined;
    }
  }

  #check(): void {
    this.#timer = undefined;
    const entry = this.#entry;
    if (entry === undefined) return;
    const left = entry.refreshAt - this.#now();
    if (!(left > 0)) {
      this.#entry = undefined;
      return;
    }
    if (left === Number.POSITIVE_INFINITY) return; // a token without expiry: only clear() removes it
    // The timer holds the slot weakly: a manager dropped without close() takes its slot, entry and
    // heartbeat with it when it is collected.
    const slot = new WeakRef(this);
    this.#timer = arm(
      () => {
        const alive = slot.deref();
        if (alive !== undefined) alive.#check();
      },
      Math.min(Math.ceil(left), HEARTBEAT_MS),
    );
    this.#timer.unref?.();
  }
}

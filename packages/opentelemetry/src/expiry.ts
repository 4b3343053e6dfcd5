import type { Attributes } from '@opentelemetry/api';

interface Tracked {
  fingerprint: string;
  expiresAt: number;
  attributes: Attributes;
  series: string;
}

/**
 * The current token's expiry per cache key, for the `keyfob.token.expires_in` gauge. Bounded
 * (oldest cache key forgotten first); keys whose token has expired are dropped when observed.
 * Several keys with the same attributes (e.g. many subjects, no subject attribute) report the
 * soonest expiry: one series per attribute set, whatever the number of users.
 */
export class ExpiryTracker {
  readonly #byKey = new Map<string, Tracked>();

  constructor(readonly max: number) {}

  set(cacheKey: string, fingerprint: string, expiresAt: number, attributes: Attributes): void {
    this.#byKey.delete(cacheKey);
    if (this.#byKey.size >= this.max) {
      const oldest = this.#byKey.keys().next();
      if (!oldest.done) this.#byKey.delete(oldest.value);
    }
    const series = JSON.stringify(Object.entries(attributes).sort(([a], [b]) => (a < b ? -1 : 1)));
    this.#byKey.set(cacheKey, { fingerprint, expiresAt, attributes, series });
  }

  /** The token was invalidated: stop reporting it until its replacement arrives. */
  forget(fingerprint: string): void {
    for (const [key, t] of this.#byKey) if (t.fingerprint === fingerprint) this.#byKey.delete(key);
  }

  /** `[attributes, seconds until expiry]`, the soonest per attribute set. */
  observe(now: number): [Attributes, number][] {
    const soonest = new Map<string, Tracked>();
    for (const [key, t] of this.#byKey) {
      if (t.expiresAt <= now) {
        this.#byKey.delete(key);
        continue;
      }
      const s = soonest.get(t.series);
      if (s === undefined || t.expiresAt < s.expiresAt) soonest.set(t.series, t);
    }
    return [...soonest.values()].map((t) => [t.attributes, (t.expiresAt - now) / 1000]);
  }

  get size(): number {
    return this.#byKey.size;
  }
}

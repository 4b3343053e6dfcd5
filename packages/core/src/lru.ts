interface Slot<V> {
  value: V;
  used: boolean;
}

/**
 * A bounded map with approximate-LRU eviction ("second chance"): a read only sets a flag, so
 * the hot path costs one Map lookup; eviction skips (and clears) recently read entries.
 */
export class BoundedCache<V> {
  readonly #map = new Map<string, Slot<V>>();
  readonly #max: number;
  readonly #onEvict: ((value: V) => void) | undefined;

  /** `onEvict` is told of each value eviction drops (not of `delete` or `clear`). */
  constructor(maxEntries: number, onEvict?: (value: V) => void) {
    this.#max = Math.max(1, Math.floor(maxEntries));
    this.#onEvict = onEvict;
  }

  get size(): number {
    return this.#map.size;
  }

  get maxEntries(): number {
    return this.#max;
  }

  get(key: string): V | undefined {
    const slot = this.#map.get(key);
    if (slot === undefined) return undefined;
    // Written only when it changes: a hit on a large cache then reads, and dirties no cache line.
    if (!slot.used) slot.used = true;
    return slot.value;
  }

  peek(key: string): V | undefined {
    return this.#map.get(key)?.value;
  }

  set(key: string, value: V): void {
    const slot = this.#map.get(key);
    if (slot !== undefined) {
      slot.value = value;
      slot.used = true;
      return;
    }
    if (this.#map.size >= this.#max) this.#evict();
    this.#map.set(key, { value, used: false });
  }

  delete(key: string): boolean {
    return this.#map.delete(key);
  }

  clear(): void {
    this.#map.clear();
  }

  keys(): IterableIterator<string> {
    return this.#map.keys();
  }

  *entries(): IterableIterator<[string, V]> {
    for (const [k, s] of this.#map) yield [k, s.value];
  }

  #evict(): void {
    // Bounded scan: at most `size` second chances, then the oldest goes regardless.
    let budget = this.#map.size;
    for (const [key, slot] of this.#map) {
      if (slot.used && budget-- > 0) {
        slot.used = false;
        this.#map.delete(key);
        this.#map.set(key, slot);
        continue;
      }
      this.#map.delete(key);
      this.#onEvict?.(slot.value);
      return;
    }
  }
}

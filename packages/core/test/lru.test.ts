import { describe, expect, it } from 'vitest';
import { BoundedCache } from '../src/lru.js';

describe('BoundedCache (approximate LRU, second chance)', () => {
  it('never holds more than maxEntries', () => {
    const c = new BoundedCache<number>(100);
    for (let i = 0; i < 10_000; i++) c.set(`k${i}`, i);
    expect(c.size).toBe(100);
    expect(c.peek('k9999')).toBe(9999);
    expect(c.peek('k0')).toBeUndefined();
  });

  it('a recently read entry survives eviction; an unread old one goes', () => {
    const c = new BoundedCache<number>(3);
    c.set('a', 1);
    c.set('b', 2);
    c.set('c', 3);
    expect(c.get('a')).toBe(1); // read: second chance
    c.set('d', 4);
    expect(c.peek('a')).toBe(1);
    expect(c.peek('b')).toBeUndefined();
  });

  it('peek does not count as a use', () => {
    const c = new BoundedCache<number>(2);
    c.set('a', 1);
    c.set('b', 2);
    c.peek('a');
    c.set('c', 3);
    expect(c.peek('a')).toBeUndefined();
  });

  it('set replaces in place; delete and clear', () => {
    const c = new BoundedCache<number>(2);
    c.set('a', 1);
    c.set('a', 2);
    expect(c.size).toBe(1);
    expect(c.get('a')).toBe(2);
    expect(c.delete('a')).toBe(true);
    expect(c.delete('a')).toBe(false);
    c.set('b', 1);
    c.clear();
    expect(c.size).toBe(0);
  });

  it('maxEntries below 1 still holds one entry', () => {
    const c = new BoundedCache<number>(0);
    c.set('a', 1);
    c.set('b', 2);
    expect(c.size).toBe(1);
  });
});

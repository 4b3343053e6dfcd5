// Memory: 1,000,000 per-user tokens in the memory store: bytes per entry, and the LRU bound respected.
import { MemoryTokenStore } from '../packages/core/dist/index.js';

export interface MemoryResult {
  entries: number;
  bytesPerEntry: number;
  boundedStoreSize: number;
  boundedMax: number;
}

function heap(): number {
  (globalThis as { gc?: () => void }).gc?.();
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().heapUsed;
}

export function benchMemory(n = 1_000_000, bound = 100_000): MemoryResult {
  const token = (i: number) => ({
    accessToken: `eyJhbGciOiJSUzI1NiJ9.user-${i}.${'s'.repeat(40)}`,
    tokenType: 'Bearer',
    expiresAt: Date.now() + 3_600_000,
    obtainedAt: Date.now(),
    refreshToken: `rt-${i}-${'r'.repeat(24)}`,
  });
  const before = heap();
  const store = new MemoryTokenStore({ maxEntries: n });
  for (let i = 0; i < n; i++) store.set(`authorization_code:user-${i}`, token(i), 3_600_000);
  const after = heap();
  const bytesPerEntry = (after - before) / store.size;
  const kept = store.size;
  store.clear();
  const bounded = new MemoryTokenStore({ maxEntries: bound });
  for (let i = 0; i < n; i++) bounded.set(`authorization_code:user-${i}`, token(i), 3_600_000);
  return { entries: kept, bytesPerEntry, boundedStoreSize: bounded.size, boundedMax: bound };
}

export function formatMemory(r: MemoryResult): string {
  return [
    `- ${r.entries.toLocaleString('en')} per-user token sets (JWT-sized access token + refresh token): **${Math.round(r.bytesPerEntry)} bytes/entry** of heap, key and token strings included.`,
    `- A store bounded at ${r.boundedMax.toLocaleString('en')} after 1,000,000 inserts holds **${r.boundedStoreSize.toLocaleString('en')}** entries (LRU bound respected: ${r.boundedStoreSize <= r.boundedMax ? 'yes' : 'NO'}).`,
  ].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(formatMemory(benchMemory()));

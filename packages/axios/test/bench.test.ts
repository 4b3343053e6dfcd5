import { expect, it } from 'vitest';
import { benchAxiosOverhead, formatOverhead } from '../bench/overhead.js';

it('the overhead benchmark runs end to end with the token attached (figures not asserted)', async () => {
  const result = await benchAxiosOverhead({ roundMs: 100, rounds: 1 });
  for (const f of [result.c1, result.c32]) {
    expect(f.keyfob).toBeGreaterThan(0);
    expect(f.baseline).toBeGreaterThan(0);
    expect(f.ratio).toBeGreaterThan(0);
    expect(Number.isFinite(f.ratio)).toBe(true);
  }
  expect(formatOverhead(result).split('\n')).toHaveLength(4);
});

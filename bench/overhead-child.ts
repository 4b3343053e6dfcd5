// One process's share of section 2 (adapter overhead): every pair once, printed as one JSON line.
// `pnpm bench` runs this in several fresh processes and reports the median across them: a ratio
// measured in one process carries a bias of that process (where the JIT and the allocator put each
// client) of a few percent, which rounds inside the process do not average out.
import { benchFetchOverhead } from '../packages/fetch/bench/overhead.ts';
import { benchOverhead } from './overhead.ts';

export interface Pair {
  /** requests/s, keyfob (or the left side) and the hard-coded header (the right side). */
  keyfob: number;
  baseline: number;
  /** requests/s ratio, keyfob / hard-coded (>= 0.97 means time per request <= 1.03). */
  ratio: number;
}
export type ChildResult = Record<string, { c1: Pair; c32: Pair }>;

export async function overheadOnce(opts: { roundMs: number; rounds: number }): Promise<ChildResult> {
  const out: ChildResult = {};
  for (const adapter of ['axios', 'got'] as const) {
    const { c1, c32 } = await benchOverhead(adapter, opts);
    out[adapter] = { c1, c32 };
  }
  for (const adapter of ['axios', 'got'] as const) {
    const { c1, c32 } = await benchOverhead(adapter, { ...opts, aa: true });
    out[`${adapter}AA`] = { c1, c32 };
  }
  // The fetch bindings' bench reports time ratios (keyfob / hard-coded): as throughput like the others.
  const fx = await benchFetchOverhead(opts);
  for (const [name, x] of Object.entries(fx)) {
    const tp = (f: { keyfob: number; baseline: number; ratio: number }): Pair => ({
      keyfob: f.keyfob,
      baseline: f.baseline,
      ratio: 1 / f.ratio,
    });
    out[name] = { c1: tp(x.c1), c32: tp(x.c32) };
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [roundMs, rounds] = [Number(process.argv[2] ?? 1_000), Number(process.argv[3] ?? 3)];
  console.log(JSON.stringify(await overheadOnce({ roundMs, rounds })));
}

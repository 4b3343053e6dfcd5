// Scale: per-request work is O(1) in the number of cached tokens (DESIGN behaviour 8).
// getToken({ subject }) on a cache hit and invalidate(token) without a subject, with 1, 10,000 and
// 1,000,000 subjects cached in one TokenManager; cost per call and the ratio to the 1-subject case.
import type { TokenManager as TokenManagerType } from '../packages/core/dist/index.js';

type Core = typeof import('../packages/core/dist/index.js');

export interface ScaleRow {
  subjects: number;
  fillSeconds: number;
  getTokenNs: number;
  invalidateNs: number;
  /** A plain Map.get with a freshly built string key, on a Map of the same size: what memory costs at this size. */
  mapGetNs: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Deterministic pseudo-random subject indexes (the same sample on every run). */
function sample(n: number, count: number, seed: number): number[] {
  let x = seed >>> 0 || 1;
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    // xorshift32
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out.push(x % n);
  }
  return out;
}

const gc = () => (globalThis as { gc?: () => void }).gc?.();
/** CPU time of this process, ns: on a shared machine, time spent descheduled is not the code's cost. */
const cpuNs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1_000;
};

async function fill(manager: TokenManagerType, n: number): Promise<void> {
  const batch = 1_000;
  for (let i = 0; i < n; i += batch) {
    const calls: Promise<unknown>[] = [];
    for (let j = i; j < Math.min(n, i + batch); j++) calls.push(manager.getToken({ subject: `user-${j}` }));
    await Promise.all(calls);
  }
}

export async function benchScaleAt(core: Core, n: number, opts: { ops?: number; rounds?: number } = {}) {
  const ops = opts.ops ?? 20_000;
  const rounds = opts.rounds ?? 5;
  const manager = new core.TokenManager({
    grant: core.customGrant(async ({ subject }) => ({ access_token: `at-${subject}`, expires_in: 3600 })),
    maxEntries: Math.max(10_000, n + 1),
  });
  const t0 = process.hrtime.bigint();
  await fill(manager, n);
  const fillSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (manager.size !== n) throw new Error(`expected ${n} cached tokens, found ${manager.size}`);

  // getToken: a cache hit for a random cached subject (options objects built outside the timed loop).
  const gets = sample(n, ops, 7).map((i) => ({ subject: `user-${i}` }));
  let sink = 0;
  for (const o of gets) sink += (await manager.getToken(o)).accessToken.length; // warm-up
  const getSamples: number[] = [];
  for (let r = 0; r < rounds; r++) {
    gc(); // the garbage of the fill (or the previous round) is not this round's cost
    const start = cpuNs();
    for (const o of gets) sink += (await manager.getToken(o)).accessToken.length;
    getSamples.push((cpuNs() - start) / gets.length);
  }

  // Baseline: the same sample against a plain Map of the same size (cache misses grow with size for
  // any data structure; the ratio to this shows what keyfob adds).
  const map = new Map<string, { n: number }>();
  for (let i = 0; i < n; i++) map.set(`user-${i}\u0001`, { n: i });
  const mapSamples: number[] = [];
  for (let r = 0; r < rounds; r++) {
    gc();
    const start = cpuNs();
    for (const o of gets) sink += map.get(`${o.subject}\u0001`)?.n ?? 0;
    mapSamples.push((cpuNs() - start) / gets.length);
  }
  map.clear();

  // invalidate(token) without a subject: each call drops a different, randomly placed token. Bounded
  // by count and by time (a linear scan of a million tokens takes milliseconds per call).
  const invSamples: number[] = [];
  const targets = sample(n, 2_000, 11);
  let next = 0;
  for (let r = 0; r < rounds && next < targets.length; r++) {
    gc();
    const deadline = process.hrtime.bigint() + 1_000_000_000n;
    const start = cpuNs();
    let done = 0;
    const per = Math.max(1, Math.floor(targets.length / rounds));
    while (done < per && next < targets.length && process.hrtime.bigint() < deadline) {
      if (await manager.invalidate(`at-user-${targets[next++]}`)) sink++;
      done++;
    }
    invSamples.push((cpuNs() - start) / done);
  }
  await manager.close();
  if (sink === 42) console.log('');
  return {
    subjects: n,
    fillSeconds,
    getTokenNs: median(getSamples),
    invalidateNs: median(invSamples),
    mapGetNs: median(mapSamples),
  } satisfies ScaleRow;
}

export async function benchScale(opts: { sizes?: number[]; core?: Core } = {}): Promise<ScaleRow[]> {
  const core = opts.core ?? (await import('../packages/core/dist/index.js'));
  const rows: ScaleRow[] = [];
  for (const n of opts.sizes ?? [1, 10_000, 1_000_000]) {
    rows.push(await benchScaleAt(core, n));
    (globalThis as { gc?: () => void }).gc?.();
  }
  return rows;
}

export function formatScale(rows: ScaleRow[]): string {
  const base = rows[0]!;
  const f = (x: number) => (x >= 100_000 ? `${(x / 1000).toFixed(0)} µs` : `${x.toFixed(0)} ns`);
  return [
    '| cached subjects | getToken({ subject }) per call | ratio | invalidate(token) per call | ratio | plain Map.get, same size | getToken / Map.get | fill (s) |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map(
      (r) =>
        `| ${r.subjects.toLocaleString('en')} | ${f(r.getTokenNs)} | **${(r.getTokenNs / base.getTokenNs).toFixed(2)}** | ${f(r.invalidateNs)} | **${(r.invalidateNs / base.invalidateNs).toFixed(2)}** | ${f(r.mapGetNs)} | ${(r.getTokenNs / r.mapGetNs).toFixed(1)} | ${r.fillSeconds.toFixed(1)} |`,
    ),
    '',
    'One TokenManager (memory only) holding that many per-subject tokens. getToken: cache hits for a fixed pseudo-random sample of 20,000 subjects, median of 5 rounds; invalidate: a randomly placed token per call (400 per round, at most 1 s), no subject given. A plain Map.get with a fresh string key on a Map of the same size shows what memory alone costs at that size (cache misses). CPU time of the process per call (process.cpuUsage, so time descheduled on a busy machine does not count), after a forced GC. Ratios vs the 1-subject row.',
  ].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  // biome-ignore lint/suspicious/noUndeclaredEnvVars: a bench-only switch (which build of core to measure), not a task input
  const from = process.env.KEYFOB_CORE;
  const core = from ? ((await import(from)) as Core) : undefined;
  const sizes = process.argv
    .slice(2)
    .map(Number)
    .filter((x) => x > 0);
  console.log(
    formatScale(await benchScale({ ...(core ? { core } : {}), ...(sizes.length ? { sizes } : {}) })),
  );
}

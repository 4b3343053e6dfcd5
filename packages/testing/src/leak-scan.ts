import { inspect } from 'node:util';

/**
 * Where any of `secrets` can be read from `value` the way a user or a logger would read an error:
 * `util.inspect` (default and deep), `JSON.stringify`, `String`, `message`, `stack`, and every
 * enumerable property (string and symbol keys), followed recursively. Returns one line per finding
 * (`'inspect'`, `'$.config.headers.Authorization'`, ...); an empty array means nothing leaked.
 */
export function leakScan(value: unknown, secrets: readonly string[]): string[] {
  const wanted = secrets.filter((s) => typeof s === 'string' && s.length >= 8);
  if (wanted.length === 0) throw new Error('leakScan: give at least one secret of 8+ characters');
  const found: string[] = [];
  const check = (where: string, text: unknown) => {
    if (typeof text !== 'string') return;
    for (const s of wanted) if (text.includes(s)) found.push(where);
  };
  check('inspect', inspect(value));
  check('inspect(depth 8)', inspect(value, { depth: 8 }));
  try {
    check('JSON.stringify', JSON.stringify(value));
  } catch {
    // Circular structures: the deep walk below covers what JSON.stringify could have printed.
  }
  try {
    check('String', String(value));
  } catch {
    // An object without toString.
  }
  if (value && typeof value === 'object') {
    const e = value as { message?: unknown; stack?: unknown };
    check('message', e.message);
    check('stack', e.stack);
  }
  const seen = new Set<unknown>();
  let budget = 200_000;
  const walk = (v: unknown, path: string, depth: number) => {
    if (budget-- <= 0) return;
    if (typeof v === 'string') return check(path, v);
    if (Buffer.isBuffer(v)) return check(path, v.toString('latin1'));
    if (v === null || (typeof v !== 'object' && typeof v !== 'function') || seen.has(v) || depth > 12) return;
    seen.add(v);
    if (v instanceof Map) {
      for (const [k, x] of v) {
        walk(k, `${path}<key>`, depth + 1);
        walk(x, `${path}.get(${String(k)})`, depth + 1);
      }
    }
    if (v instanceof Set) for (const x of v) walk(x, `${path}<item>`, depth + 1);
    const keys: (string | symbol)[] = Object.keys(v);
    for (const sym of Object.getOwnPropertySymbols(v)) {
      if (Object.getOwnPropertyDescriptor(v, sym)?.enumerable) keys.push(sym);
    }
    for (const k of keys) {
      let x: unknown;
      try {
        x = (v as Record<string | symbol, unknown>)[k];
      } catch {
        continue;
      }
      walk(x, `${path}.${String(k)}`, depth + 1);
    }
  };
  walk(value, '$', 0);
  return [...new Set(found)];
}

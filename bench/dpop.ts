// Scenario 9: what DPoP costs. A proof is one signature per request attempt (RFC 9449 4.2: a fresh `jti`,
// `iat` and `ath` each time), so it is measured alone, per key type, then inside each adapter against the
// same client with a hard-coded Bearer header (bench/overhead.ts with `dpop: true`).
import { generateKeyPairSync } from 'node:crypto';
import { DpopKey } from '../packages/core/dist/index.js';

export interface ProofCost {
  algorithm: string;
  /** Median µs per proof (one signature plus the JWT encoding). */
  us: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

export function benchProofs(opts: { iterations?: number; rounds?: number } = {}): ProofCost[] {
  const n = opts.iterations ?? 5_000;
  const rounds = opts.rounds ?? 5;
  const keys: [string, DpopKey][] = [
    ['ES256 (generated)', new DpopKey(true)],
    ['EdDSA (Ed25519)', new DpopKey({ privateKey: generateKeyPairSync('ed25519').privateKey })],
    [
      'RS256 (2048)',
      new DpopKey({ privateKey: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey }),
    ],
  ];
  const input = {
    method: 'GET',
    url: 'https://api.example.com/v1/items?page=2',
    accessToken: 'x'.repeat(800),
  };
  let sink = 0;
  const out: ProofCost[] = [];
  for (const [algorithm, key] of keys) {
    const count = algorithm.startsWith('RS') ? Math.max(200, n >> 4) : n;
    for (let i = 0; i < 100; i++) sink += key.proof(input).length; // warm-up
    const samples: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const start = process.hrtime.bigint();
      for (let i = 0; i < count; i++) sink += key.proof(input).length;
      samples.push(Number(process.hrtime.bigint() - start) / count / 1000);
    }
    out.push({ algorithm, us: median(samples) });
  }
  if (sink === 42) console.log('');
  return out;
}

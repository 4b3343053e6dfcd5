// What `pnpm demo` measures from keyfob's diagnostics channels (the same data @keyfob/opentelemetry exports):
// token requests, cache hit rate, token request duration percentiles, per adapter run.
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import {
  type CacheLookupMessage,
  DiagnosticsChannel,
  type TokenRequestMessage,
} from '../packages/core/src/index.ts';

export interface AdapterMetrics {
  tokenRequests: number;
  failedTokenRequests: number;
  lookups: number;
  hits: number;
  /** Token request durations, ms. */
  p50Ms: number | undefined;
  p99Ms: number | undefined;
}

const START = `tracing:${DiagnosticsChannel.TokenRequest}:start`;
const END = `tracing:${DiagnosticsChannel.TokenRequest}:asyncEnd`;
// The demo's load is bounded (seconds of requests), but keep the sample bounded too.
const MAX_SAMPLES = 100_000;

function percentile(sorted: number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

export class DemoMetrics {
  readonly runs: AdapterMetrics[] = [];
  #started = new WeakMap<object, number>();
  #durations: number[] = [];
  #requests = 0;
  #failed = 0;
  #lookups = 0;
  #hits = 0;

  readonly #onStart = (m: unknown) => this.#started.set(m as object, performance.now());
  readonly #onEnd = (m: unknown) => {
    const msg = m as TokenRequestMessage;
    this.#requests++;
    if (msg.outcome !== 'success') this.#failed++;
    const t = this.#started.get(msg);
    if (t !== undefined && this.#durations.length < MAX_SAMPLES) this.#durations.push(performance.now() - t);
  };
  readonly #onLookup = (m: unknown) => {
    this.#lookups++;
    if ((m as CacheLookupMessage).result === 'hit') this.#hits++;
  };

  constructor() {
    subscribe(START, this.#onStart);
    subscribe(END, this.#onEnd);
    subscribe(DiagnosticsChannel.CacheLookup, this.#onLookup);
  }

  begin(): void {
    this.#durations = [];
    this.#requests = this.#failed = this.#lookups = this.#hits = 0;
  }

  end(): void {
    const sorted = [...this.#durations].sort((a, b) => a - b);
    this.runs.push({
      tokenRequests: this.#requests,
      failedTokenRequests: this.#failed,
      lookups: this.#lookups,
      hits: this.#hits,
      p50Ms: percentile(sorted, 50),
      p99Ms: percentile(sorted, 99),
    });
  }

  close(): void {
    unsubscribe(START, this.#onStart);
    unsubscribe(END, this.#onEnd);
    unsubscribe(DiagnosticsChannel.CacheLookup, this.#onLookup);
  }
}

export function formatMetrics(rows: { adapter: string; metrics?: AdapterMetrics | undefined }[]): string {
  const head = ['adapter', 'token requests', 'failed', 'cache lookups', 'hit rate', 'p50 ms', 'p99 ms'];
  const ms = (v: number | undefined) => (v === undefined ? '-' : v.toFixed(1));
  const body = rows
    .filter((r) => r.metrics)
    .map(({ adapter, metrics: m }) => [
      adapter,
      String(m!.tokenRequests),
      String(m!.failedTokenRequests),
      String(m!.lookups),
      m!.lookups ? `${((100 * m!.hits) / m!.lookups).toFixed(1)}%` : '-',
      ms(m!.p50Ms),
      ms(m!.p99Ms),
    ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [
    'keyfob metrics (from the diagnostics channels)',
    line(head),
    line(widths.map((w) => '-'.repeat(w))),
    ...body.map(line),
  ].join('\n');
}

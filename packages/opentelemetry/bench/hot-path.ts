// What KeyfobInstrumentation adds to a cached getToken(): the same manager, interleaved rounds with the
// instrumentation enabled (real SDK MeterProvider, a cache-lookup counter per call) and disabled.
// Run: pnpm --filter @keyfob/opentelemetry bench
import { customGrant, TokenManager } from '@keyfob/core';
import { KeyfobInstrumentation } from '@keyfob/opentelemetry';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';

const n = Number(process.env.BENCH_ITERATIONS ?? 300_000);
const rounds = Number(process.env.BENCH_ROUNDS ?? 9);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
const meterProvider = new MeterProvider({ readers: [reader] });
const instrumentation = new KeyfobInstrumentation({ enabled: false });
instrumentation.setMeterProvider(meterProvider);

const manager = new TokenManager({
  grant: customGrant(async () => ({ access_token: 'bench-token', expires_in: 3600 })),
});
await manager.getToken();
let sink = 0;
const run = async () => {
  for (let i = 0; i < n; i++) sink += (await manager.getToken()).accessToken.length;
};
const samples = { off: [] as number[], on: [] as number[] };
await run();
for (let r = 0; r < rounds; r++) {
  for (const mode of r % 2 ? (['off', 'on'] as const) : (['on', 'off'] as const)) {
    if (mode === 'on') instrumentation.enable();
    else instrumentation.disable();
    const t = process.hrtime.bigint();
    await run();
    samples[mode].push(Number(process.hrtime.bigint() - t) / n);
  }
}
instrumentation.disable();
await manager.close();
await meterProvider.shutdown();
if (sink === 1) console.log('');
const off = median(samples.off);
const on = median(samples.on);
console.log('| cached `await manager.getToken()` | ns/op |');
console.log('| --- | ---: |');
console.log(`| instrumentation disabled (no subscriber) | ${off.toFixed(1)} |`);
console.log(
  `| \`KeyfobInstrumentation\` enabled (SDK meter) | ${on.toFixed(1)} (+${(on - off).toFixed(1)}) |`,
);

// The real OpenTelemetry SDK, wired in memory: a metric exporter read on demand, a span exporter,
// an AsyncLocalStorage context manager (so the caller's active span reaches keyfob's spans).

import { context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import {
  AggregationTemporality,
  type DataPoint,
  type Histogram,
  InMemoryMetricExporter,
  MeterProvider,
  type MetricData,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { KeyfobInstrumentation, type KeyfobInstrumentationConfig } from '../src/index.js';

export interface Otel {
  instrumentation: KeyfobInstrumentation;
  tracerProvider: BasicTracerProvider;
  spans: InMemorySpanExporter;
  /** Every metric exported so far (cumulative), by name. */
  collect(): Promise<Map<string, MetricData>>;
  /** Sum of a counter's points whose attributes include `where`. */
  sum(metrics: Map<string, MetricData>, name: string, where?: Record<string, unknown>): number;
  points(metrics: Map<string, MetricData>, name: string): DataPoint<unknown>[];
  shutdown(): Promise<void>;
}

const contextManager = new AsyncLocalStorageContextManager().enable();
context.setGlobalContextManager(contextManager);

export function matches(attrs: Record<string, unknown>, where: Record<string, unknown> = {}): boolean {
  return Object.entries(where).every(([k, v]) => attrs[k] === v);
}

export function setupOtel(config: KeyfobInstrumentationConfig = {}): Otel {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
  const meterProvider = new MeterProvider({ readers: [reader] });
  const spans = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] });
  const instrumentation = new KeyfobInstrumentation({ ...config, enabled: false });
  const unregister = registerInstrumentations({
    instrumentations: [instrumentation],
    tracerProvider,
    meterProvider,
  });
  return {
    instrumentation,
    tracerProvider,
    spans,
    async collect() {
      exporter.reset();
      await reader.forceFlush();
      const out = new Map<string, MetricData>();
      for (const rm of exporter.getMetrics())
        for (const sm of rm.scopeMetrics) for (const m of sm.metrics) out.set(m.descriptor.name, m);
      return out;
    },
    sum(metrics, name, where) {
      const m = metrics.get(name);
      if (!m) return 0;
      let total = 0;
      for (const p of m.dataPoints) {
        if (!matches(p.attributes, where)) continue;
        const v = p.value as number | Histogram;
        total += typeof v === 'number' ? v : v.count;
      }
      return total;
    },
    points(metrics, name) {
      return (metrics.get(name)?.dataPoints ?? []) as DataPoint<unknown>[];
    },
    async shutdown() {
      unregister();
      instrumentation.disable();
      await meterProvider.shutdown();
      await tracerProvider.shutdown();
    },
  };
}

// telemetry.ts: load it before your application (`node --import ./telemetry.js app.js`).
// Exports over OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT (default http://localhost:4318).
import { KeyfobInstrumentation } from '@keyfob/opentelemetry';
import { metrics } from '@opentelemetry/api';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { BatchSpanProcessor, NodeTracerProvider } from '@opentelemetry/sdk-trace-node';

const resource = resourceFromAttributes({ 'service.name': process.env.OTEL_SERVICE_NAME ?? 'my-service' });

const tracerProvider = new NodeTracerProvider({
  resource,
  spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
});
tracerProvider.register(); // global tracer provider + AsyncLocalStorage context (spans join the caller's)

const meterProvider = new MeterProvider({
  resource,
  readers: [
    new PeriodicExportingMetricReader({ exporter: new OTLPMetricExporter(), exportIntervalMillis: 15_000 }),
  ],
});
metrics.setGlobalMeterProvider(meterProvider);

registerInstrumentations({
  instrumentations: [new KeyfobInstrumentation()], // next to your other instrumentations
});

/** Flushes what is buffered; call it on shutdown. */
export async function shutdownTelemetry(): Promise<void> {
  await Promise.all([tracerProvider.shutdown(), meterProvider.shutdown()]);
}
process.once('SIGTERM', () => void shutdownTelemetry());

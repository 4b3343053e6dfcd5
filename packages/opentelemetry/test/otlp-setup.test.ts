// The README's setup, as written (examples/telemetry.ts), exporting over OTLP/HTTP to a local collector.
import { clientCredentials, TokenManager } from '@keyfob/core';
import { genericClientCredentials, leakScan, startServer } from '@keyfob/testing';
import { expect, it } from 'vitest';

it('the README setup exports keyfob metrics and spans to an OTLP endpoint, without secrets', async () => {
  const collector = await startServer(() => ({ status: 200, body: {} }));
  const secret = 'otlp-secret-5e6f7a8b9c';
  const provider = await genericClientCredentials({ clientId: 'otlp-client', clientSecret: secret });
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = collector.url;
  process.env.OTEL_SERVICE_NAME = 'keyfob-readme-test';
  const { shutdownTelemetry } = await import('../examples/telemetry.js');
  const manager = new TokenManager({
    tokenUrl: provider.tokenUrl,
    grant: clientCredentials({ clientId: 'otlp-client', clientSecret: secret }),
  });
  try {
    const token = await manager.getToken();
    await manager.getToken();
    await shutdownTelemetry();
    const paths = collector.requests.map((r) => r.path);
    expect(paths).toContain('/v1/metrics');
    expect(paths).toContain('/v1/traces');
    const metricsBody = collector.requests
      .filter((r) => r.path === '/v1/metrics')
      .map((r) => r.body)
      .join('\n');
    const tracesBody = collector.requests
      .filter((r) => r.path === '/v1/traces')
      .map((r) => r.body)
      .join('\n');
    for (const name of ['keyfob.token.requests', 'keyfob.token.request.duration', 'keyfob.cache.lookups']) {
      expect(metricsBody).toContain(name);
    }
    expect(metricsBody).toContain('keyfob-readme-test');
    expect(tracesBody).toContain('http.request.method');
    expect(tracesBody).toContain(provider.tokenUrl);
    expect(leakScan(collector.requests, [secret, token.accessToken])).toEqual([]);
  } finally {
    await manager.close();
    await provider.close();
    await collector.close();
  }
});

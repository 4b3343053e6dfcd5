import { inspect } from 'node:util';
import { clientCredentials, diagnostics, TokenManager } from '@keyfob/core';
import { genericClientCredentials, leakScan, type ProviderServer } from '@keyfob/testing';
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KeyfobInstrumentation } from '../src/index.js';
import { matches, type Otel, setupOtel } from './otel.js';

const CLIENT_ID = 'otel-client';
const SECRET = 'otel-secret-9f8e7d6c5b4a';

let server: ProviderServer;
let otel: Otel;
const managers: TokenManager[] = [];

function manager(options: Partial<ConstructorParameters<typeof TokenManager>[0]> = {}) {
  const m = new TokenManager({
    tokenUrl: `${server.tokenUrl}?tenant=acme`,
    grant: clientCredentials({ clientId: CLIENT_ID, clientSecret: SECRET, scope: 'read' }),
    retryBaseDelayMs: 1,
    ...options,
  });
  managers.push(m);
  return m;
}

/** Everything a secret could leak through: exported metrics and spans. */
async function exported() {
  const metrics = await otel.collect();
  const spans = otel.spans.getFinishedSpans().map((s) => ({
    name: s.name,
    attributes: s.attributes,
    status: s.status,
    events: s.events,
  }));
  return { metrics: [...metrics.values()], spans };
}

function issuedTokens(): string[] {
  return [...server.issuer.issued.keys()];
}

beforeEach(async () => {
  server = await genericClientCredentials({ clientId: CLIENT_ID, clientSecret: SECRET });
  otel = setupOtel();
});

afterEach(async () => {
  for (const m of managers.splice(0)) await m.close();
  await otel.shutdown();
  await server.close();
});

describe('KeyfobInstrumentation: successful token requests', () => {
  it('counts token requests, cache lookups and refreshes as the token endpoint saw them', async () => {
    const m = manager();
    const tracer = otel.tracerProvider.getTracer('test');
    await tracer.startActiveSpan('caller', async (caller) => {
      // 10 concurrent callers, one token request (single-flight).
      await Promise.all(Array.from({ length: 10 }, () => m.getToken()));
      caller.end();
    });
    for (let i = 0; i < 5; i++) await m.getToken();
    await m.getToken({ forceRefresh: true });

    const metrics = await otel.collect();
    expect(server.issuer.tokenRequests).toBe(2);
    expect(otel.sum(metrics, 'keyfob.token.requests')).toBe(server.issuer.tokenRequests);
    expect(
      otel.sum(metrics, 'keyfob.token.requests', {
        'keyfob.grant_type': 'client_credentials',
        'keyfob.outcome': 'success',
        'http.response.status_code': 200,
        'server.address': '127.0.0.1',
      }),
    ).toBe(2);
    expect(otel.sum(metrics, 'keyfob.token.request.duration')).toBe(2);
    expect(metrics.get('keyfob.token.request.duration')?.descriptor.unit).toBe('s');
    // The first 10 wait (miss), the next 5 are answered from memory; forceRefresh skips the lookup.
    expect(otel.sum(metrics, 'keyfob.cache.lookups', { 'keyfob.cache.result': 'hit' })).toBe(5);
    expect(otel.sum(metrics, 'keyfob.cache.lookups', { 'keyfob.cache.result': 'miss' })).toBe(10);
    expect(
      otel.sum(metrics, 'keyfob.token.refreshes', {
        'keyfob.trigger': 'forced',
        'keyfob.outcome': 'success',
      }),
    ).toBe(1);
    expect(otel.sum(metrics, 'keyfob.token.refreshes')).toBe(1);

    const gauge = otel.points(metrics, 'keyfob.token.expires_in');
    expect(gauge).toHaveLength(1);
    expect(gauge[0]!.attributes).toEqual({
      'keyfob.grant_type': 'client_credentials',
      'keyfob.scope': 'read',
    });
    expect(gauge[0]!.value as number).toBeGreaterThan(3000);
    expect(gauge[0]!.value as number).toBeLessThanOrEqual(3600);
  });

  it('makes one CLIENT span per token request, HTTP client conventions, child of the caller span', async () => {
    const m = manager();
    const tracer = otel.tracerProvider.getTracer('test');
    let callerSpanId = '';
    let traceId = '';
    await tracer.startActiveSpan('caller', async (caller) => {
      callerSpanId = caller.spanContext().spanId;
      traceId = caller.spanContext().traceId;
      await m.getToken();
      caller.end();
    });
    const spans = otel.spans.getFinishedSpans().filter((s) => s.name !== 'caller');
    expect(spans).toHaveLength(1);
    const s = spans[0]!;
    expect(s.name).toBe('POST');
    expect(s.kind).toBe(SpanKind.CLIENT);
    expect(s.spanContext().traceId).toBe(traceId);
    expect(s.parentSpanContext?.spanId).toBe(callerSpanId);
    const port = Number(new URL(server.tokenUrl).port);
    expect(s.attributes).toMatchObject({
      'http.request.method': 'POST',
      'server.address': '127.0.0.1',
      'server.port': port,
      'url.full': server.tokenUrl, // without ?tenant=acme
      'http.response.status_code': 200,
      'keyfob.grant_type': 'client_credentials',
    });
    expect(s.attributes['keyfob.token.fingerprint']).toMatch(/^[0-9a-f]{8}$/);
    expect(s.attributes['error.type']).toBeUndefined();
    expect(s.status.code).toBe(SpanStatusCode.UNSET);
    expect(s.attributes['keyfob.subject']).toBeUndefined();
  });

  it('invalidate() counts the dropped token and the refresh it triggers', async () => {
    const m = manager();
    const first = await m.getToken();
    expect(await m.invalidate(first)).toBe(true);
    expect(await m.invalidate(first)).toBe(false); // already dropped: not counted twice
    let metrics = await otel.collect();
    expect(otel.points(metrics, 'keyfob.token.expires_in')).toHaveLength(0);
    const second = await m.getToken();
    expect(second.accessToken).not.toBe(first.accessToken);
    metrics = await otel.collect();
    expect(otel.sum(metrics, 'keyfob.token.invalidations')).toBe(1);
    expect(otel.sum(metrics, 'keyfob.token.refreshes', { 'keyfob.trigger': 'invalidated' })).toBe(1);
    expect(otel.sum(metrics, 'keyfob.token.requests')).toBe(server.issuer.tokenRequests);
    expect(otel.points(metrics, 'keyfob.token.expires_in')).toHaveLength(1);
  });

  it('refresh ahead of expiry and at expiry carry their triggers', async () => {
    let now = Date.now();
    const m = manager({ clock: { now: () => now } });
    await m.getToken();
    now += 3_570_000; // inside the refresh margin: served, refreshed in the background
    const served = await m.getToken();
    expect(served).toBeDefined();
    const refreshed = new Promise<void>((resolve) => m.on('tokenRefreshed', () => resolve()));
    await refreshed;
    await new Promise((r) => setImmediate(r)); // the single-flight slot is released after the event
    now += 3_700_000; // past expiry: the caller waits
    await m.getToken();
    const metrics = await otel.collect();
    expect(otel.sum(metrics, 'keyfob.cache.lookups', { 'keyfob.cache.result': 'stale' })).toBe(1);
    expect(otel.sum(metrics, 'keyfob.token.refreshes', { 'keyfob.trigger': 'ahead' })).toBe(1);
    expect(otel.sum(metrics, 'keyfob.token.refreshes', { 'keyfob.trigger': 'expired' })).toBe(1);
    expect(otel.sum(metrics, 'keyfob.token.requests')).toBe(server.issuer.tokenRequests);
    expect(server.issuer.tokenRequests).toBe(3);
  });
});

describe('KeyfobInstrumentation: failures', () => {
  it('a wrong secret: failure outcome, error.type 401, span status ERROR, no retry', async () => {
    const m = manager({
      grant: clientCredentials({ clientId: CLIENT_ID, clientSecret: 'wrong-secret-1234567', scope: 'read' }),
    });
    await expect(m.getToken()).rejects.toMatchObject({ status: 401 });
    const metrics = await otel.collect();
    expect(otel.sum(metrics, 'keyfob.token.requests')).toBe(server.issuer.tokenRequests);
    expect(
      otel.sum(metrics, 'keyfob.token.requests', {
        'keyfob.outcome': 'failure',
        'error.type': '401',
        'http.response.status_code': 401,
      }),
    ).toBe(server.issuer.tokenRequests);
    const spans = otel.spans.getFinishedSpans();
    expect(spans).toHaveLength(server.issuer.tokenRequests);
    for (const s of spans) {
      expect(s.status.code).toBe(SpanStatusCode.ERROR);
      expect(s.attributes['error.type']).toBe('401');
      expect(s.attributes['keyfob.oauth.error']).toBe('invalid_client');
    }
  });

  it('503s are retried: every attempt counted, resend_count on the retries', async () => {
    let n = 0;
    server.override = () =>
      n++ < 2 ? { status: 503, body: { error: 'temporarily_unavailable' } } : undefined;
    const m = manager();
    await m.getToken();
    expect(server.issuer.tokenRequests).toBe(3);
    const metrics = await otel.collect();
    expect(otel.sum(metrics, 'keyfob.token.requests')).toBe(3);
    expect(
      otel.sum(metrics, 'keyfob.token.requests', { 'keyfob.outcome': 'failure', 'error.type': '503' }),
    ).toBe(2);
    expect(otel.sum(metrics, 'keyfob.token.requests', { 'keyfob.outcome': 'success' })).toBe(1);
    const resend = otel.spans
      .getFinishedSpans()
      .map((s) => s.attributes['http.request.resend_count'])
      .sort();
    expect(resend).toEqual([1, 2, undefined]);
  });

  it('a 200 answer that is an HTML page: error.type is the response error`s code, the status stays 200', async () => {
    server.override = () => ({
      status: 200,
      headers: { 'content-type': 'text/html' },
      body: '<html><title>Sign in</title></html>',
    });
    const m = manager({ retries: 0 });
    await expect(m.getToken()).rejects.toMatchObject({ code: 'KEYFOB_TOKEN_RESPONSE' });
    const metrics = await otel.collect();
    expect(
      otel.sum(metrics, 'keyfob.token.requests', {
        'keyfob.outcome': 'failure',
        'error.type': 'KEYFOB_TOKEN_RESPONSE',
        'http.response.status_code': 200,
      }),
    ).toBe(1);
    const [span] = otel.spans.getFinishedSpans();
    expect(span!.status.code).toBe(SpanStatusCode.ERROR);
    expect(span!.attributes['error.type']).toBe('KEYFOB_TOKEN_RESPONSE');
  });

  it('an unreachable token endpoint: error.type is the network error code', async () => {
    const url = server.tokenUrl;
    await server.close();
    const m = new TokenManager({
      tokenUrl: url,
      grant: clientCredentials({ clientId: CLIENT_ID, clientSecret: SECRET }),
      retries: 1,
      retryBaseDelayMs: 1,
    });
    managers.push(m);
    await expect(m.getToken()).rejects.toMatchObject({ code: 'KEYFOB_TOKEN_ENDPOINT_NETWORK' });
    const metrics = await otel.collect();
    expect(
      otel.sum(metrics, 'keyfob.token.requests', {
        'keyfob.outcome': 'failure',
        'error.type': 'KEYFOB_TOKEN_ENDPOINT_NETWORK',
      }),
    ).toBe(2);
    server = await genericClientCredentials({ clientId: CLIENT_ID, clientSecret: SECRET }); // for afterEach
  });
});

describe('KeyfobInstrumentation: shared store', () => {
  it('a failing store is counted once per outage, tokens still flow', async () => {
    const m = manager({
      store: {
        get: async () => {
          throw new Error('store unreachable');
        },
        set: async () => {},
        delete: async () => true,
      },
    });
    await m.getToken();
    await m.getToken({ subject: 'other' });
    const metrics = await otel.collect();
    expect(otel.sum(metrics, 'keyfob.store.failures', { 'keyfob.store.operation': 'get' })).toBe(1);
    expect(otel.sum(metrics, 'keyfob.token.requests', { 'keyfob.outcome': 'success' })).toBe(2);
  });
});

describe('KeyfobInstrumentation: no secret anywhere', () => {
  it('no exported attribute, span name, metric or channel payload carries a token or a secret', async () => {
    const payloads: unknown[] = [];
    const collect = (m: unknown) => payloads.push(m);
    const names = [
      'keyfob:cache-lookup',
      'keyfob:token-obtained',
      'keyfob:token-refresh',
      'keyfob:token-invalidate',
      'keyfob:store',
      'keyfob:unauthorized-retry',
    ];
    const { subscribe, unsubscribe } = await import('node:diagnostics_channel');
    for (const n of names) subscribe(n, collect);
    const tc = diagnostics.tokenRequest;
    const handlers = { start: collect, end: collect, asyncStart: collect, asyncEnd: collect, error: collect };
    tc.subscribe(handlers);
    try {
      const m = manager();
      const t = await m.getToken();
      await m.invalidate(t);
      await m.getToken();
      await m.getToken({ forceRefresh: true });
      server.override = () => ({
        status: 400,
        body: { error: 'invalid_request', error_description: `client_secret=${SECRET} is not allowed` },
      });
      await m.getToken({ forceRefresh: true }).catch(() => {});
      const secrets = [SECRET, ...issuedTokens()];
      expect(secrets.length).toBeGreaterThan(3);
      expect(payloads.length).toBeGreaterThan(10);
      expect(leakScan(payloads, secrets)).toEqual([]);
      expect(leakScan(await exported(), secrets)).toEqual([]);
      expect(inspect(payloads, { depth: 10 })).toContain('fingerprint');
    } finally {
      for (const n of names) unsubscribe(n, collect);
      tc.unsubscribe(handlers);
    }
  });
});

describe('KeyfobInstrumentation: lifecycle', () => {
  it('disable() unsubscribes: nothing counted, no subscriber left; enable() resumes', async () => {
    const m = manager();
    otel.instrumentation.disable();
    expect(diagnostics.tokenRequest.start.hasSubscribers).toBe(false);
    expect(diagnostics.cacheLookup.hasSubscribers).toBe(false);
    await m.getToken();
    let metrics = await otel.collect();
    expect(otel.sum(metrics, 'keyfob.token.requests')).toBe(0);
    otel.instrumentation.enable();
    otel.instrumentation.enable(); // idempotent: not subscribed twice
    await m.getToken({ forceRefresh: true });
    metrics = await otel.collect();
    expect(otel.sum(metrics, 'keyfob.token.requests')).toBe(1);
    expect(otel.instrumentation.getConfig().enabled).toBe(true);
  });

  it('follows the instrumentation convention without registerInstrumentations (global providers)', () => {
    const inst = new KeyfobInstrumentation();
    try {
      expect(inst.instrumentationName).toBe('@keyfob/opentelemetry');
      expect(inst.instrumentationVersion).toMatch(/^\d+\.\d+\.\d+/);
      expect(inst.getConfig().enabled).toBe(true);
      inst.setTracerProvider(trace.getTracerProvider());
      inst.setConfig({ spans: false });
      expect(inst.getConfig()).toMatchObject({ spans: false, enabled: true });
    } finally {
      inst.disable();
    }
    expect(inst.getConfig().enabled).toBe(false);
  });

  it('spans: false records metrics only', async () => {
    otel.instrumentation.setConfig({ spans: false });
    await manager().getToken();
    expect(otel.spans.getFinishedSpans()).toHaveLength(0);
    expect(otel.sum(await otel.collect(), 'keyfob.token.requests')).toBe(1);
  });

  it('subjectAttribute puts keyfob.subject on spans; off by default', async () => {
    await otel.shutdown();
    otel = setupOtel({ subjectAttribute: true });
    const m = manager();
    await m.getToken({ subject: 'user-42' });
    const spans = otel.spans.getFinishedSpans();
    expect(spans[0]!.attributes['keyfob.subject']).toBe('user-42');
    const metrics = await otel.collect();
    const gauge = otel.points(metrics, 'keyfob.token.expires_in');
    expect(gauge.some((p) => matches(p.attributes, { 'keyfob.subject': 'user-42' }))).toBe(true);
  });
});

import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import {
  type CacheLookupMessage,
  DiagnosticsChannel,
  type StoreMessage,
  type TokenInvalidateMessage,
  type TokenObtainedMessage,
  type TokenRefreshMessage,
  type TokenRequestMessage,
} from '@keyfob/core';
import {
  type Attributes,
  type Counter,
  context,
  type Histogram,
  type Meter,
  type MeterProvider,
  metrics,
  type ObservableCounter,
  type ObservableGauge,
  type ObservableResult,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  type TracerProvider,
  trace,
} from '@opentelemetry/api';
import { ExpiryTracker } from './expiry.js';
import { VERSION } from './version.js';

/** Options of {@link KeyfobInstrumentation}. */
export interface KeyfobInstrumentationConfig {
  /** Subscribe at construction. `registerInstrumentations` enables it anyway. Defaults to `true`. */
  enabled?: boolean;
  /** One CLIENT span per token endpoint request. Defaults to `true`. */
  spans?: boolean;
  /**
   * Put `keyfob.subject` (the per-user key, e.g. a user id) on spans and on the expiry gauge. One
   * gauge series per user: turn it on only when the number of subjects is small. Defaults to `false`.
   */
  subjectAttribute?: boolean;
  /** Largest number of cache keys the expiry gauge tracks (the oldest are forgotten). Defaults to `1_000`. */
  maxTrackedTokens?: number;
}

interface Instruments {
  requests: Counter;
  duration: Histogram;
  lookups: ObservableCounter;
  refreshes: Counter;
  invalidations: Counter;
  storeFailures: Counter;
  expiresIn: ObservableGauge;
}

interface InFlight {
  startedAt: number;
  span: Span | undefined;
}

const NAME = '@keyfob/opentelemetry';
const TOKEN_REQUEST = `tracing:${DiagnosticsChannel.TokenRequest}`;
// Token requests take tens of milliseconds to seconds; the SDK's default buckets are in ms-scale units.
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30];

function serverOf(url: string): { address: string; port: number } | undefined {
  try {
    const u = new URL(url);
    return { address: u.hostname, port: u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80 };
  } catch {
    return undefined;
  }
}

/**
 * A throwing diagnostics_channel subscriber surfaces as an uncaught exception: telemetry must never
 * take the service down, so every handler swallows its own failures.
 */
function guard(fn: (message: unknown) => void): (message: unknown) => void {
  return (message) => {
    try {
      fn(message);
    } catch {
      // Nothing to report to: the telemetry pipeline itself is what failed.
    }
  };
}

/** `error.type`: the HTTP status for an error answer (semantic conventions), else keyfob's error code. */
function errorTypeOf(m: TokenRequestMessage): string {
  return m.status !== undefined && m.status >= 400 ? String(m.status) : (m.errorType ?? '_OTHER');
}

/**
 * OpenTelemetry instrumentation for keyfob: subscribes to `@keyfob/core`'s diagnostics channels and
 * records metrics (`keyfob.token.requests`, `keyfob.token.request.duration`, `keyfob.cache.lookups`,
 * `keyfob.token.refreshes`, `keyfob.token.invalidations`, `keyfob.store.failures`,
 * `keyfob.token.expires_in`) and a CLIENT span per token endpoint request. Works with
 * `registerInstrumentations` from `@opentelemetry/instrumentation`, or alone.
 */
export class KeyfobInstrumentation {
  readonly instrumentationName = NAME;
  readonly instrumentationVersion = VERSION;
  #config: KeyfobInstrumentationConfig;
  #enabled = false;
  #tracer: Tracer;
  #meter: Meter;
  #instruments: Instruments;
  readonly #inflight = new WeakMap<TokenRequestMessage, InFlight>();
  /**
   * Cache lookups happen on every getToken(): counted here (a Map increment) and reported by an
   * observable counter at collection, instead of a synchronous counter's attribute hashing per call.
   * Bounded: grant types x 3 results.
   */
  readonly #lookupCounts = new Map<string, { attributes: Attributes; value: number }>();
  #expiry: ExpiryTracker;

  constructor(config: KeyfobInstrumentationConfig = {}) {
    this.#config = { ...config };
    this.#tracer = trace.getTracer(NAME, VERSION);
    this.#meter = metrics.getMeter(NAME, VERSION);
    this.#expiry = new ExpiryTracker(config.maxTrackedTokens ?? 1_000);
    this.#instruments = this.#createInstruments();
    if (config.enabled !== false) this.enable();
  }

  setTracerProvider(provider: TracerProvider): void {
    this.#tracer = provider.getTracer(NAME, VERSION);
  }

  setMeterProvider(provider: MeterProvider): void {
    this.#instruments.expiresIn.removeCallback(this.#observeExpiry);
    this.#instruments.lookups.removeCallback(this.#observeLookups);
    this.#meter = provider.getMeter(NAME, VERSION);
    this.#instruments = this.#createInstruments();
  }

  getConfig(): KeyfobInstrumentationConfig {
    return { ...this.#config, enabled: this.#enabled };
  }

  setConfig(config: KeyfobInstrumentationConfig): void {
    this.#config = { ...config };
  }

  /** Subscribes to the channels. Idempotent. */
  enable(): void {
    if (this.#enabled) return;
    this.#enabled = true;
    subscribe(`${TOKEN_REQUEST}:start`, this.#onRequestStart);
    subscribe(`${TOKEN_REQUEST}:asyncEnd`, this.#onRequestEnd);
    subscribe(DiagnosticsChannel.CacheLookup, this.#onLookup);
    subscribe(DiagnosticsChannel.TokenObtained, this.#onObtained);
    subscribe(DiagnosticsChannel.TokenRefresh, this.#onRefresh);
    subscribe(DiagnosticsChannel.TokenInvalidate, this.#onInvalidate);
    subscribe(DiagnosticsChannel.Store, this.#onStore);
  }

  /** Unsubscribes; with no other subscriber, keyfob builds no payload at all. Idempotent. */
  disable(): void {
    if (!this.#enabled) return;
    this.#enabled = false;
    unsubscribe(`${TOKEN_REQUEST}:start`, this.#onRequestStart);
    unsubscribe(`${TOKEN_REQUEST}:asyncEnd`, this.#onRequestEnd);
    unsubscribe(DiagnosticsChannel.CacheLookup, this.#onLookup);
    unsubscribe(DiagnosticsChannel.TokenObtained, this.#onObtained);
    unsubscribe(DiagnosticsChannel.TokenRefresh, this.#onRefresh);
    unsubscribe(DiagnosticsChannel.TokenInvalidate, this.#onInvalidate);
    unsubscribe(DiagnosticsChannel.Store, this.#onStore);
  }

  #createInstruments(): Instruments {
    const m = this.#meter;
    const expiresIn = m.createObservableGauge('keyfob.token.expires_in', {
      description: 'Seconds until the cached access token expires (the soonest, per attribute set).',
      unit: 's',
    });
    expiresIn.addCallback(this.#observeExpiry);
    const lookups = m.createObservableCounter('keyfob.cache.lookups', {
      description: 'Token lookups by result: hit, stale (served while a refresh is due) or miss.',
      unit: '{lookup}',
    });
    lookups.addCallback(this.#observeLookups);
    return {
      requests: m.createCounter('keyfob.token.requests', {
        description: 'HTTP requests to the token endpoint (each retry counts).',
        unit: '{request}',
      }),
      duration: m.createHistogram('keyfob.token.request.duration', {
        description: 'Duration of token endpoint requests.',
        unit: 's',
        advice: { explicitBucketBoundaries: DURATION_BUCKETS },
      }),
      lookups,
      refreshes: m.createCounter('keyfob.token.refreshes', {
        description: 'Replacements of a cached token, by trigger and outcome.',
        unit: '{refresh}',
      }),
      invalidations: m.createCounter('keyfob.token.invalidations', {
        description: 'Tokens dropped by invalidate() (a resource server answered 401).',
        unit: '{token}',
      }),
      storeFailures: m.createCounter('keyfob.store.failures', {
        description: 'Times the shared token store became unusable (tokens are fetched directly meanwhile).',
        unit: '{failure}',
      }),
      expiresIn,
    };
  }

  readonly #observeExpiry = (result: ObservableResult): void => {
    for (const [attributes, seconds] of this.#expiry.observe(Date.now())) result.observe(seconds, attributes);
  };

  readonly #observeLookups = (result: ObservableResult): void => {
    for (const { attributes, value } of this.#lookupCounts.values()) result.observe(value, attributes);
  };

  readonly #onRequestStart = guard((message: unknown): void => {
    const m = message as TokenRequestMessage;
    let span: Span | undefined;
    if (this.#config.spans !== false) {
      const server = serverOf(m.tokenUrl);
      const attributes: Attributes = {
        'http.request.method': m.method,
        'url.full': m.tokenUrl,
        'keyfob.grant_type': m.requestGrantType,
      };
      if (server) {
        attributes['server.address'] = server.address;
        attributes['server.port'] = server.port;
      }
      if (m.attempt > 1) attributes['http.request.resend_count'] = m.attempt - 1;
      if (m.scope) attributes['keyfob.scope'] = m.scope;
      if (this.#config.subjectAttribute && m.subject !== undefined) attributes['keyfob.subject'] = m.subject;
      // Parent: the caller's active span (the request's async context reaches the token fetch).
      span = this.#tracer.startSpan(m.method, { kind: SpanKind.CLIENT, attributes }, context.active());
    }
    this.#inflight.set(m, { startedAt: performance.now(), span });
  });

  readonly #onRequestEnd = guard((message: unknown): void => {
    const m = message as TokenRequestMessage;
    const f = this.#inflight.get(m);
    const failed = m.outcome !== 'success';
    const attributes: Attributes = {
      'keyfob.grant_type': m.requestGrantType,
      'keyfob.outcome': failed ? 'failure' : 'success',
    };
    const server = serverOf(m.tokenUrl);
    if (server) attributes['server.address'] = server.address;
    if (m.status !== undefined) attributes['http.response.status_code'] = m.status;
    if (failed) attributes['error.type'] = errorTypeOf(m);
    this.#instruments.requests.add(1, attributes);
    if (f === undefined) return;
    this.#inflight.delete(m);
    this.#instruments.duration.record((performance.now() - f.startedAt) / 1000, attributes);
    const span = f.span;
    if (span === undefined) return;
    if (m.status !== undefined) span.setAttribute('http.response.status_code', m.status);
    if (m.fingerprint) span.setAttribute('keyfob.token.fingerprint', m.fingerprint);
    if (failed) {
      span.setAttribute('error.type', errorTypeOf(m));
      if (m.oauthError) span.setAttribute('keyfob.oauth.error', m.oauthError);
      if (m.errorType) span.setAttribute('keyfob.error.code', m.errorType);
      span.setStatus({ code: SpanStatusCode.ERROR, message: m.oauthError ?? m.errorType ?? 'failed' });
    }
    span.end();
  });

  readonly #onLookup = guard((message: unknown): void => {
    const m = message as CacheLookupMessage;
    const id = `${m.grantType}\u0000${m.result}`;
    const c = this.#lookupCounts.get(id);
    if (c !== undefined) c.value++;
    else {
      const attributes = { 'keyfob.grant_type': m.grantType, 'keyfob.cache.result': m.result };
      this.#lookupCounts.set(id, { attributes, value: 1 });
    }
  });

  readonly #onObtained = guard((message: unknown): void => {
    const m = message as TokenObtainedMessage;
    if (m.expiresAt === undefined) return;
    const attributes: Attributes = { 'keyfob.grant_type': m.grantType };
    if (m.scope) attributes['keyfob.scope'] = m.scope;
    if (this.#config.subjectAttribute && m.subject !== undefined) attributes['keyfob.subject'] = m.subject;
    this.#expiry.set(m.cacheKey, m.fingerprint, m.expiresAt, attributes);
  });

  readonly #onRefresh = guard((message: unknown): void => {
    const m = message as TokenRefreshMessage;
    const attributes: Attributes = {
      'keyfob.grant_type': m.grantType,
      'keyfob.trigger': m.trigger,
      'keyfob.outcome': m.outcome,
    };
    if (m.outcome === 'failure') attributes['error.type'] = m.errorType ?? '_OTHER';
    this.#instruments.refreshes.add(1, attributes);
  });

  readonly #onInvalidate = guard((message: unknown): void => {
    const m = message as TokenInvalidateMessage;
    if (!m.dropped) return;
    this.#expiry.forget(m.fingerprint);
    this.#instruments.invalidations.add(1, { 'keyfob.grant_type': m.grantType });
  });

  readonly #onStore = guard((message: unknown): void => {
    const m = message as StoreMessage;
    if (m.event === 'failure')
      this.#instruments.storeFailures.add(1, { 'keyfob.store.operation': m.operation });
  });
}

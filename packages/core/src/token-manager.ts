import { type AcquisitionContext, acquireFromGrant } from './acquisition.js';
import { type CacheKey, CacheKeys } from './cache-key.js';
import {
  type CacheLookupResult,
  diagnostics,
  publishCacheLookup,
  publishTokenInvalidate,
  publishTokenObtained,
  publishTokenRefresh,
  type RefreshTrigger,
  StatusTracker,
  type TokenManagerStatus,
} from './diagnostics.js';
import { type AuthorizationServerMetadata, Discovery } from './discovery.js';
import type { DpopKey } from './dpop.js';
import { ConfigurationError, ErrorCode, KeyfobError, TokenEndpointError } from './errors.js';
import { Emitter, type Listener, type TokenManagerEvents } from './events.js';
import {
  decide,
  freshnessOf,
  type RenewalState,
  renewalRetryDelay,
  servableAfterFailure,
  usableFromStore,
} from './freshness.js';
import type { GrantHost } from './grants/binding.js';
import type { Grant, GrantContext } from './grants/grant.js';
import { HotSlot, isNativeClock } from './hot-slot.js';
import { createLog, type Log, type LogFields } from './log.js';
import { BoundedCache } from './lru.js';
import { type ResolvedOptions, resolveOptions, type TokenManagerOptions } from './options.js';
import { fingerprint, safeUrl } from './redact.js';
import { SharedStore } from './shared-store.js';
import {
  abortError,
  postTokenRequest,
  type TokenEndpointOptions,
  type TokenRequest,
} from './token-endpoint.js';
import { normaliseTokenResponse } from './token-response.js';
import type { AccessToken, GetTokenOptions } from './types.js';
import { VERSION } from './version.js';

export type { TokenManagerOptions } from './options.js';
export { VERSION } from './version.js';

/** A cached token and what freshness says about it. */
interface Entry extends RenewalState {
  token: AccessToken;
  /** Resolved promises made once, so a cache hit allocates nothing. */
  promise: Promise<AccessToken>;
  header: Promise<string>;
  key: CacheKey;
}

type Source = 'endpoint' | 'store' | 'exchange';

const noop = () => {};

/** Discovery metadata is read again after this long (and after a token endpoint 404). */
const DISCOVERY_MAX_AGE_MS = 24 * 3600_000;

function raceSignal<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) {
    // The shared acquisition goes on for other callers; its failure is not this caller's to report.
    promise.catch(noop);
    return Promise.reject(abortError(signal));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/**
 * A caller awaiting a token keeps the process alive (DESIGN behaviour 4): the token request's own
 * timers (timeouts, backoff) are unref'd, so without this a script doing `await getToken()` during a
 * retry wait would just exit. Held only while someone awaits; cached tokens hold nothing.
 */
function keepAliveWhile<T>(p: Promise<T>): Promise<T> {
  const handle = setInterval(noop, 2 ** 30);
  p.then(
    () => clearInterval(handle),
    () => clearInterval(handle),
  );
  return p;
}

/**
 * Obtains, caches and renews OAuth 2 access tokens for one token endpoint and grant.
 * `getToken()` answers from memory on the hot path; renewals are single-flight per cache key,
 * started ahead of expiry in the background. Where each decision lives:
 * options and defaults in `options.ts`, cache keys in `cache-key.ts`, when to renew / wait / serve in
 * `freshness.ts`, the shared-store protocol in `shared-store.ts`, how a grant is asked (refresh token,
 * login required, no replay) in `acquisition.ts`, the HTTP exchange in `token-endpoint.ts`.
 */
export class TokenManager {
  readonly #o: ResolvedOptions;
  readonly #grant: Grant;
  readonly #keys: CacheKeys;
  readonly #discovery: Discovery | undefined;
  readonly #l1: BoundedCache<Entry>;
  /**
   * The default key's entry in #l1 while it is fresh (`getToken()` without options, the usual service
   * call): its hot path skips the key, the Map lookup and the clock, and reads one field.
   */
  readonly #hot: HotSlot<Entry>;
  /** Access token -> its entry, so `invalidate(token)` finds it in O(1). */
  readonly #byToken: BoundedCache<Entry>;
  readonly #inflight = new Map<string, Promise<Entry>>();
  /** Callers waiting for a key's renewal with a still-valid token: released when an attempt of it fails. */
  readonly #waiting = new Map<string, () => void>();
  readonly #invalidated = new BoundedCache<true>(1_000);
  readonly #now: () => number;
  readonly #store: SharedStore | undefined;
  readonly #endpoint: TokenEndpointOptions;
  readonly #acquisition: AcquisitionContext;
  readonly #log: Log;
  readonly #events = new Emitter<TokenManagerEvents>();
  readonly #closing = new AbortController();
  readonly #status = new StatusTracker();
  #closed = false;

  constructor(options: TokenManagerOptions) {
    const o = resolveOptions(options);
    this.#o = o;
    this.#grant = o.grant;
    this.#now = o.now;
    this.#log = createLog(o.logger);
    // With discovery the issuer identifies the token endpoint in cache keys (stable across re-reads).
    // DPoP-bound tokens are useless with another key: the key's thumbprint tells them apart (a fleet
    // sharing a store shares tokens only when it shares the key).
    this.#keys = new CacheKeys(
      o.tokenUrl || o.issuer || '',
      o.grant,
      o.maxEntries,
      o.dpop ? [`dpop:${o.dpop.thumbprint}`] : [],
    );
    this.#discovery = o.issuer
      ? new Discovery(o.issuer, {
          fetch: o.fetch,
          timeoutMs: o.timeoutMs,
          allowInsecureHttp: o.allowInsecureHttp,
          maxAgeMs: DISCOVERY_MAX_AGE_MS,
          now: o.now,
          retries: o.retries,
          retryBaseDelayMs: o.retryBaseDelayMs,
          maxRetryAfterMs: o.maxRetryAfterMs,
        })
      : undefined;
    this.#hot = new HotSlot(o.now, isNativeClock(o.now));
    this.#l1 = new BoundedCache<Entry>(o.maxEntries, (evicted) => {
      this.#hot.clear(evicted);
    });
    this.#byToken = new BoundedCache(o.maxEntries);
    this.#endpoint = {
      timeoutMs: o.timeoutMs,
      retries: o.retries,
      retryBaseDelayMs: o.retryBaseDelayMs,
      maxRetryAfterMs: o.maxRetryAfterMs,
      maxResponseBytes: o.maxResponseBytes,
      fetch: o.fetch,
      userAgent: `keyfob/${VERSION}`,
      // Waits between attempts stay unref'd: a caller awaiting a token holds the process through
      // keepAliveWhile(), a background renewal for a token still served must not.
      keepAlive: false,
      dpop: o.dpop,
    };
    this.#store = o.store
      ? new SharedStore(o.store, {
          timeoutMs: o.storeTimeoutMs,
          lockWaitMs: o.lockWaitMs,
          refreshTokenLifetimeMs: o.refreshTokenLifetimeMs,
          maxLifetimeMs: o.maxLifetimeMs,
          now: o.now,
          log: this.#log,
          signal: this.#closing.signal,
        })
      : undefined;
    this.#acquisition = {
      grant: o.grant,
      store: this.#store,
      spentRefreshTokens: new BoundedCache(1_000),
      log: this.#log,
      grantContext: (key) => this.#grantContext(key),
      normalise: (raw, requestedAt, previous) => this.#normalise(raw, requestedAt, previous),
      now: o.now,
    };
    o.grant.bind?.(this.#host());
    // A login grant needs the authorization endpoint before any token request: read the metadata now.
    if (this.#discovery && o.grant.interactive) {
      this.#discovery.get(this.#closing.signal).catch((e: unknown) => {
        this.#log('warn', `discovery failed: ${e instanceof Error ? e.message : String(e)}`);
      });
    }
  }

  /**
   * The DPoP key (RFC 9449) when `dpop` is on: the outgoing-request policy signs each request's proof
   * with it. Prints only its algorithm and thumbprint; the private key cannot be read from it.
   */
  get dpop(): DpopKey | undefined {
    return this.#o.dpop;
  }

  /** The grant type this manager uses. */
  get grantType(): string {
    return this.#grant.type;
  }

  /**
   * The provider's metadata, read now if not yet (with `issuer`; undefined without). Rejects with a
   * ConfigurationError naming the issuer and the problem. `getToken()` does this by itself.
   */
  async discover(): Promise<AuthorizationServerMetadata | undefined> {
    return this.#discovery?.get(this.#closing.signal);
  }

  /** Tokens held in this process. */
  get size(): number {
    return this.#l1.size;
  }

  /** Last success, failing since, token endpoint reachable: what health checks read (no request made). */
  get status(): TokenManagerStatus {
    return this.#status.snapshot();
  }

  /**
   * A valid access token: from memory when fresh (no await on the hot path), else single-flight from
   * the store or the token endpoint. While renewals fail, the current token is returned until it
   * expires. Rejects with a {@link KeyfobError}.
   */
  getToken(options?: GetTokenOptions): Promise<AccessToken> {
    const hot = options === undefined ? this.#hotEntry() : undefined;
    if (hot !== undefined) return hot.promise;
    const key = options === undefined ? this.#keys.default : this.#keys.for(options);
    const e = this.#fresh(key, options);
    return e !== undefined ? e.promise : this.#slow(key, options).then((x) => x.token);
  }

  /** `"Bearer <token>"` (`"DPoP <token>"` for a DPoP-bound token), ready for an Authorization header. */
  getAuthorizationHeader(options?: GetTokenOptions): Promise<string> {
    const hot = options === undefined ? this.#hotEntry() : undefined;
    if (hot !== undefined) return hot.header;
    const key = options === undefined ? this.#keys.default : this.#keys.for(options);
    const e = this.#fresh(key, options);
    return e !== undefined ? e.header : this.#slow(key, options).then((x) => x.header);
  }

  /** The default key's entry while it is fresh and nobody observes cache lookups; else the usual path. */
  #hotEntry(): Entry | undefined {
    return diagnostics.cacheLookup.hasSubscribers ? undefined : this.#hot.get();
  }

  /** The hot path: the cached entry when it may be handed out (starting a background renewal when due). */
  #fresh(key: CacheKey, options: GetTokenOptions | undefined): Entry | undefined {
    if (options !== undefined && options.forceRefresh === true) return undefined;
    const e = this.#l1.get(key.key);
    // Diagnostics cost one property read on the hot path when nobody listens.
    const observed = diagnostics.cacheLookup.hasSubscribers;
    if (e === undefined) return observed ? this.#lookup(key, undefined, 'miss') : undefined;
    const now = this.#now();
    if (now < e.refreshAt) return observed ? this.#lookup(key, e, 'hit') : e;
    const decision = decide(e, now);
    if (decision === 'serve-and-renew') {
      this.#renewInBackground(e, now);
      return observed ? this.#lookup(key, e, 'stale') : e;
    }
    const served = decision === 'serve' ? e : undefined;
    return observed ? this.#lookup(key, served, served ? 'stale' : 'miss') : served;
  }

  #lookup(key: CacheKey, e: Entry | undefined, result: CacheLookupResult): Entry | undefined {
    publishCacheLookup(
      { grantType: this.#grant.type, subject: key.subject, scope: key.scope },
      key.key,
      result,
    );
    return e;
  }

  /**
   * Drops exactly this token (compare-and-delete): call it when a resource server answers 401 to it.
   * If a newer token is already cached, nothing happens, so a hundred concurrent 401s for one token
   * cause one token request. A per-user token set keeps its refresh token and is renewed with it.
   * O(1) whatever the number of cached tokens. Resolves whether the token was still current.
   */
  async invalidate(
    token: AccessToken | string,
    options: { subject?: string; scope?: string } = {},
  ): Promise<boolean> {
    const value = typeof token === 'string' ? token : token?.accessToken;
    if (!value) return false;
    this.#invalidated.set(value, true);
    let key: CacheKey | undefined;
    let entry: Entry | undefined;
    if (options.subject !== undefined || options.scope !== undefined) {
      key = this.#keys.for(options);
      entry = this.#l1.peek(key.key);
    } else {
      entry = this.#byToken.peek(value);
      if (entry !== undefined && this.#l1.peek(entry.key.key) !== entry) entry = undefined;
      key = entry?.key;
    }
    let dropped = false;
    if (entry && key && entry.token.accessToken === value && entry.expiresAt !== Number.NEGATIVE_INFINITY) {
      dropped = true;
      // Marked unusable rather than deleted: the next getToken() replaces it (renewed with the refresh
      // token when the set has one, instead of sending the user to login).
      entry.refreshAt = Number.NEGATIVE_INFINITY;
      entry.waitAt = Number.NEGATIVE_INFINITY;
      entry.expiresAt = Number.NEGATIVE_INFINITY;
      this.#hot.clear(entry);
      this.#events.emit('tokenInvalidated', {
        grantType: this.#grant.type,
        subject: key.subject,
        scope: key.scope,
        fingerprint: fingerprint(value),
      });
      this.#log(
        'debug',
        `token ${fingerprint(value)} invalidated${key.subject ? ` for subject ${key.subject}` : ''}`,
      );
    }
    if (diagnostics.tokenInvalidate.hasSubscribers) {
      const info = { grantType: this.#grant.type, subject: key?.subject, scope: key?.scope };
      publishTokenInvalidate(info, value, dropped);
    }
    if (this.#store && key && !entry?.token.refreshToken) await this.#store.delete(key.key, value);
    return dropped;
  }

  /**
   * Forgets the token (set) of a subject, e.g. on logout; with `revoke: true` and a grant with a
   * `revocationUrl`, also revokes its refresh token (RFC 7009), best effort.
   */
  async deleteToken(options: { subject?: string; scope?: string; revoke?: boolean } = {}): Promise<void> {
    const key = this.#keys.for(options);
    const entry = this.#l1.peek(key.key);
    let token = entry?.token;
    if (!token && this.#store) token = await this.#store.get(key.key);
    this.#l1.delete(key.key);
    if (key.key === this.#keys.default.key) this.#hot.clear();
    if (token) this.#byToken.delete(token.accessToken);
    if (this.#store) await this.#store.delete(key.key);
    const grant = this.#grant;
    if (options.revoke && token && grant.revoke) {
      try {
        if (token.refreshToken) await grant.revoke(token.refreshToken, 'refresh_token');
        await grant.revoke(token.accessToken, 'access_token');
      } catch (e) {
        this.#log('warn', `token revocation failed: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  }

  /** Subscribes to token events; returns the unsubscribe function. */
  on<K extends keyof TokenManagerEvents>(event: K, listener: Listener<TokenManagerEvents[K]>): () => void {
    return this.#events.on(event, listener);
  }

  /** Stops everything: in-flight requests are aborted, timers cleared, held locks released. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing.abort(new KeyfobError('TokenManager closed.', { code: ErrorCode.Closed }));
    this.#l1.clear();
    this.#hot.clear();
    this.#byToken.clear();
    this.#inflight.clear();
    this.#keys.clear();
    await this.#store?.close();
    this.#events.clear();
  }

  toJSON(): Record<string, unknown> {
    return {
      grantType: this.#grant.type,
      tokenUrl: safeUrl(this.#tokenUrl() || (this.#o.issuer ?? '')),
      cached: this.#l1.size,
    };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `TokenManager { grant: '${this.#grant.type}', tokenUrl: '${safeUrl(this.#tokenUrl() || (this.#o.issuer ?? ''))}', cached: ${this.#l1.size} }`;
  }

  // ---- slow path: single-flight acquisition ----------------------------------------------------

  #slow(key: CacheKey, options: GetTokenOptions | undefined): Promise<Entry> {
    if (this.#closed) {
      return Promise.reject(new KeyfobError('TokenManager is closed.', { code: ErrorCode.Closed }));
    }
    const force = options?.forceRefresh === true;
    const current = this.#l1.peek(key.key);
    const replacing = force ? current?.token : undefined;
    const trigger: RefreshTrigger = force
      ? 'forced'
      : current?.expiresAt === Number.NEGATIVE_INFINITY
        ? 'invalidated'
        : 'expired';
    const servable = (): Entry | undefined => {
      const now = this.#l1.peek(key.key);
      return !force && now !== undefined && servableAfterFailure(now, this.#now()) ? now : undefined;
    };
    let obtained = this.#obtain(key, replacing, trigger).catch((error: unknown) => {
      // The renewal failed: a token that has not expired is still served (unless the caller asked
      // for a new one).
      const fallback = servable();
      if (fallback !== undefined) return fallback;
      throw error;
    });
    if (!force && current !== undefined && current.struggling && servable()) {
      // The renewal already retries a failed attempt: it is not awaited for a token that is still valid.
      return keepAliveWhile(Promise.resolve(current));
    }
    if (!force && current !== undefined && servable()) {
      // Waiting inside the expiry buffer for a renewal that is expected to work: once one of its attempts
      // fails (it then waits out a backoff or a Retry-After), the still-valid token is served instead.
      const released = new Promise<void>((resolve) => {
        const others = this.#waiting.get(key.key);
        this.#waiting.set(
          key.key,
          others
            ? () => {
                others();
                resolve();
              }
            : resolve,
        );
      });
      const renewal = obtained;
      obtained = Promise.race([renewal, released.then(() => servable() ?? renewal)]);
    }
    return keepAliveWhile(raceSignal(obtained, options?.signal));
  }

  /** An attempt of this key's renewal failed and another will follow: stop making callers wait for it. */
  #struggling(key: CacheKey): void {
    const entry = this.#l1.peek(key.key);
    if (entry !== undefined) entry.struggling = true;
    const release = this.#waiting.get(key.key);
    if (release !== undefined) {
      this.#waiting.delete(key.key);
      release();
    }
  }

  #renewInBackground(entry: Entry, now: number): void {
    if (entry.retryAt > now || this.#inflight.has(entry.key.key) || this.#closed) return;
    this.#obtain(entry.key, entry.token, 'ahead').catch(noop);
  }

  /** Single-flight: one acquisition per key at a time; everyone else joins it. */
  #obtain(key: CacheKey, replacing: AccessToken | undefined, trigger: RefreshTrigger): Promise<Entry> {
    const running = this.#inflight.get(key.key);
    if (running !== undefined) return running;
    const previous = this.#l1.peek(key.key)?.token;
    const p = this.#acquire(key, replacing);
    this.#inflight.set(key.key, p);
    const settled = () => {
      if (this.#inflight.get(key.key) !== p) return;
      this.#inflight.delete(key.key);
      this.#waiting.delete(key.key);
    };
    p.then(
      (entry) => {
        settled();
        if (previous !== undefined) this.#refreshed(key, trigger, previous, { token: entry.token });
      },
      (error: unknown) => {
        settled();
        this.#status.failed(this.#now(), error);
        if (previous !== undefined) this.#refreshed(key, trigger, previous, { error });
        this.#renewalFailed(key, error);
      },
    );
    return p;
  }

  #refreshed(
    key: CacheKey,
    trigger: RefreshTrigger,
    previous: AccessToken,
    result: { token: AccessToken } | { error: unknown },
  ): void {
    if (!diagnostics.tokenRefresh.hasSubscribers) return;
    const info = { grantType: this.#grant.type, subject: key.subject, scope: key.scope };
    publishTokenRefresh(info, key.key, trigger, previous, result);
  }

  /** Backoff for the next renewal of a still-servable token, and the refreshFailed event. */
  #renewalFailed(key: CacheKey, error: unknown): void {
    const entry = this.#l1.peek(key.key);
    const now = this.#now();
    if (entry === undefined || !servableAfterFailure(entry, now)) {
      this.#tokenFailed(key, error);
      return;
    }
    entry.failures++;
    entry.retryAt = now + renewalRetryDelay(entry.failures);
    const err =
      error instanceof KeyfobError
        ? error
        : new KeyfobError(String(error), { code: ErrorCode.TokenEndpoint });
    this.#events.emit('refreshFailed', {
      grantType: this.#grant.type,
      subject: key.subject,
      scope: key.scope,
      error: err,
      servingUntil: entry.expiresAt,
      retryAt: entry.retryAt,
    });
    this.#log(
      'warn',
      `token renewal failed (${err.code}); still serving the current token until it expires in ${Math.max(0, Math.round((entry.expiresAt - now) / 1000))}s, next attempt in ${Math.round((entry.retryAt - now) / 1000)}s: ${err.message}`,
      { ...this.#errorFields(key, err), fingerprint: fingerprint(entry.token.accessToken) },
    );
  }

  /** Nothing valid left to serve: the callers of this acquisition get `error`. Emitted and logged once. */
  #tokenFailed(key: CacheKey, error: unknown): void {
    const err =
      error instanceof KeyfobError
        ? error
        : new KeyfobError(String(error), { code: ErrorCode.TokenEndpoint });
    if (this.#closed || err.code === ErrorCode.Closed || err.code === ErrorCode.Aborted) return;
    this.#events.emit('tokenFailed', {
      grantType: this.#grant.type,
      subject: key.subject,
      scope: key.scope,
      error: err,
    });
    const level = err.code === ErrorCode.LoginRequired ? 'info' : 'warn';
    this.#log(level, `getting a token failed (${err.code}): ${err.message}`, this.#errorFields(key, err));
  }

  #errorFields(key: CacheKey, err: KeyfobError): LogFields {
    const e = err as KeyfobError & { status?: unknown; error?: unknown };
    return {
      code: err.code,
      grantType: this.#grant.type,
      ...(typeof e.status === 'number' ? { status: e.status } : {}),
      ...(typeof e.error === 'string' ? { oauthError: e.error } : {}),
      ...(key.subject === undefined ? {} : { subject: key.subject }),
    };
  }

  async #acquire(key: CacheKey, replacing: AccessToken | undefined): Promise<Entry> {
    if (this.#discovery === undefined) return this.#acquireFrom(key, replacing);
    await this.#discovery.get(this.#closing.signal);
    try {
      return await this.#acquireFrom(key, replacing);
    } catch (e) {
      // The token endpoint may have moved: read the metadata again before the next request.
      if (e instanceof TokenEndpointError && e.status === 404) this.#discovery.stale();
      throw e;
    }
  }

  async #acquireFrom(key: CacheKey, replacing: AccessToken | undefined): Promise<Entry> {
    const started = this.#now();
    const previous = this.#l1.peek(key.key);
    const fetch = (stored: AccessToken | undefined) =>
      acquireFromGrant(this.#acquisition, key, stored?.refreshToken ? stored : previous?.token);
    if (this.#store === undefined) {
      return this.#remember(key, await fetch(undefined), 'endpoint', started, previous);
    }
    // A stored token too close to expiry to hand out without a renewal, but not expired: if the renewal
    // fails it is served like a cached one would be (a process that has none yet must not do worse).
    let fallback: AccessToken | undefined;
    const usable = (t: AccessToken | undefined): boolean => {
      if (
        t === undefined ||
        t.accessToken === replacing?.accessToken ||
        this.#invalidated.peek(t.accessToken)
      ) {
        return false;
      }
      const now = this.#now();
      const f = freshnessOf(t, this.#o, now);
      if (usableFromStore(f, now, previous !== undefined)) return true;
      if (previous === undefined && servableAfterFailure(f, now)) fallback = t;
      return false;
    };
    try {
      const { token, source } = await this.#store.singleFlight(key.key, usable, fetch);
      return this.#remember(key, token, source, started, previous);
    } catch (error) {
      if (
        fallback !== undefined &&
        servableAfterFailure(freshnessOf(fallback, this.#o, this.#now()), this.#now())
      ) {
        this.#remember(key, fallback, 'store', started, previous); // #slow serves it; #renewalFailed backs off
      }
      throw error;
    }
  }

  /** `tokenUrl`, else the discovered token endpoint (its mTLS alias with `mtls`); discovery has run by now. */
  #tokenUrl(): string {
    if (this.#o.tokenUrl) return this.#o.tokenUrl;
    const metadata = this.#discovery?.current;
    if (!metadata) return '';
    return (this.#o.mtls && metadata.mtlsEndpointAliases?.tokenEndpoint) || metadata.tokenEndpoint;
  }

  #grantContext(key: CacheKey, url = this.#tokenUrl()): GrantContext {
    const signal = this.#closing.signal;
    return {
      tokenUrl: url,
      subjectToken: key.subjectToken,
      authMethods: this.#discovery?.current?.tokenEndpointAuthMethods,
      scope: key.scope,
      subject: key.subject,
      extraParams: key.extraParams,
      signal,
      now: this.#now,
      request: (req) =>
        postTokenRequest(
          url,
          this.#withCachedToken(key, req),
          this.#endpoint,
          signal,
          { grantType: this.#grant.type, subject: key.subject, scope: key.scope },
          () => this.#struggling(key),
        ),
    };
  }

  /**
   * The request, with the key's cached access token among its secrets: a provider may quote the token
   * being replaced in its error text (a refresh, a forced renewal), and no error keyfob builds shows it.
   */
  #withCachedToken(key: CacheKey, req: TokenRequest): TokenRequest {
    const current = this.#l1.peek(key.key)?.token.accessToken;
    return current === undefined ? req : { ...req, secrets: [...req.secrets, current] };
  }

  #normalise(raw: Record<string, unknown>, requestedAt: number, previousRefreshToken?: string): AccessToken {
    return normaliseTokenResponse(raw, {
      requestedAt,
      now: this.#now(),
      defaultLifetimeMs: this.#o.defaultLifetimeMs,
      maxLifetimeMs: this.#o.maxLifetimeMs,
      tokenUrl: safeUrl(this.#tokenUrl() || (this.#o.issuer ?? '')),
      ...(previousRefreshToken === undefined ? {} : { previousRefreshToken }),
      // With DPoP every token request carried a proof: a Bearer answer is reported, not used.
      // A custom grant gets its token elsewhere: a DPoP token from it is sent with this manager's proofs.
      ...(this.#o.dpop
        ? { expectedTokenType: this.#grant.usesTokenUrl ? ('DPoP' as const) : ('any' as const) }
        : {}),
      warn: (m) => this.#log('warn', m),
    });
  }

  #remember(
    key: CacheKey,
    token: AccessToken,
    source: Source,
    started: number,
    previous: Entry | undefined,
  ): Entry {
    const now = this.#now();
    const entry: Entry = {
      token,
      promise: Promise.resolve(token),
      header: Promise.resolve(`${token.tokenType === 'DPoP' ? 'DPoP' : 'Bearer'} ${token.accessToken}`),
      ...freshnessOf(token, this.#o, now),
      retryAt: 0,
      failures: 0,
      struggling: false,
      key,
    };
    if (!this.#closed) {
      const replaced = this.#l1.peek(key.key);
      if (replaced !== undefined && replaced.token.accessToken !== token.accessToken) {
        this.#byToken.delete(replaced.token.accessToken);
      }
      this.#l1.set(key.key, entry);
      if (key.key === this.#keys.default.key) this.#hot.set(entry);
      this.#byToken.set(token.accessToken, entry);
    }
    const event = {
      grantType: this.#grant.type,
      subject: key.subject,
      scope: key.scope,
      expiresAt: token.expiresAt,
      fingerprint: fingerprint(token.accessToken),
      source,
      durationMs: now - started,
    };
    this.#events.emit(previous ? 'tokenRefreshed' : 'tokenFetched', event);
    this.#status.succeeded(now, source === 'endpoint');
    if (diagnostics.tokenObtained.hasSubscribers) {
      const info = { grantType: this.#grant.type, subject: key.subject, scope: key.scope };
      publishTokenObtained(info, key.key, token, source);
    }
    this.#log(
      'debug',
      `token ${event.fingerprint} ${previous ? 'refreshed' : 'obtained'} from ${source}${key.subject ? ` for subject ${key.subject}` : ''}` +
        `${token.expiresAt ? `, expires in ${Math.round((token.expiresAt - now) / 1000)}s` : ''}`,
      { grantType: this.#grant.type, fingerprint: event.fingerprint },
    );
    return entry;
  }

  /** What a grant may ask of this manager (authorization code exchange, revocation). */
  #host(): GrantHost {
    const manager = this;
    return {
      allowInsecureHttp: this.#o.allowInsecureHttp,
      get closed() {
        return manager.#closed;
      },
      get authorizationEndpoint() {
        return manager.#discovery?.current?.authorizationEndpoint;
      },
      get revocationEndpoint() {
        const metadata = manager.#discovery?.current;
        if (!metadata) return undefined;
        const alias = manager.#o.mtls ? metadata.mtlsEndpointAliases?.revocationEndpoint : undefined;
        return alias ?? metadata.revocationEndpoint;
      },
      exchange: async (input, send, signal) => {
        if (this.#closed) throw new KeyfobError('TokenManager is closed.', { code: ErrorCode.Closed });
        const started = this.#now();
        if (this.#discovery)
          await keepAliveWhile(raceSignal(this.#discovery.get(this.#closing.signal), signal));
        const raw = await keepAliveWhile(
          raceSignal(send(this.#grantContext(this.#keys.for({ scope: input.scope }))), signal),
        );
        const token = this.#normalise(raw, started);
        const subject = typeof input.subject === 'function' ? input.subject(token) : input.subject;
        if (typeof input.subject === 'function' && (typeof subject !== 'string' || subject === '')) {
          throw new ConfigurationError(
            'authorizationCode.exchange: the subject function returned no subject.',
          );
        }
        const key = this.#keys.for({ subject, scope: input.scope });
        if (this.#store) await this.#store.set(key.key, token);
        this.#remember(key, token, 'exchange', started, this.#l1.peek(key.key));
        return token;
      },
      post: (url, req) => keepAliveWhile(postTokenRequest(url, req, this.#endpoint, this.#closing.signal)),
    };
  }
}

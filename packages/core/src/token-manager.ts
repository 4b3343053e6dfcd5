import { createHash } from 'node:crypto';
import {
  ConfigurationError,
  ErrorCode,
  KeyfobError,
  LoginRequiredError,
  TokenEndpointError,
} from './errors.js';
import { Emitter, type Listener, type TokenManagerEvents } from './events.js';
import { type Freshness, freshnessOf, refreshRetryDelay } from './freshness.js';
import type { GrantHost } from './grants/binding.js';
import type { Grant, GrantContext } from './grants/grant.js';
import { BoundedCache } from './lru.js';
import { fingerprint, redact, safeUrl } from './redact.js';
import type { TokenStore, TokenStoreLock } from './store.js';
import { abortError, postTokenRequest, sleep, type TokenEndpointOptions } from './token-endpoint.js';
import { fromStoredToken, normaliseTokenResponse, toStoredToken } from './token-response.js';
import type { AccessToken, Clock, GetTokenOptions, KeyfobLogger } from './types.js';

export const VERSION = '0.1.0';

export interface TokenManagerOptions {
  /** The token endpoint. Required for grants that POST to one. Must be https unless loopback or `allowInsecureHttp`. */
  tokenUrl?: string;
  /** How tokens are obtained: `clientCredentials(...)`, `passwordGrant(...)`, `authorizationCode(...)`, `staticToken(...)`, `customGrant(...)`. */
  grant: Grant;
  /**
   * Shared store (e.g. `RedisTokenStore`) behind the in-process cache. Defaults to none: tokens live in
   * this process's bounded cache only.
   */
  store?: TokenStore;
  /** Start renewing this long before expiry (capped at a fifth of the lifetime). Defaults to `60_000`. */
  refreshMarginMs?: number;
  /** Never hand out a token this close to expiry (capped at a tenth of the lifetime). Defaults to `5_000`. */
  expiryBufferMs?: number;
  /** Lifetime assumed when a response has no `expires_in`, `expiration` or JWT `exp`. Defaults to `300_000`. */
  defaultLifetimeMs?: number;
  /** Longest lifetime believed (a "never expires" answer is renewed after this). Defaults to 366 days. */
  maxLifetimeMs?: number;
  /** Refresh token sets (per-user) are kept this long in a store when the server does not say. Defaults to 30 days. */
  refreshTokenLifetimeMs?: number;
  /** Token endpoint timeout per attempt. Defaults to `10_000`. */
  timeoutMs?: number;
  /** Retries on network errors, timeouts, 5xx and 429. Defaults to `2`. */
  retries?: number;
  /** First retry delay (exponential backoff, jitter). Defaults to `200`. */
  retryBaseDelayMs?: number;
  /** Longest Retry-After honoured; longer fails at once. Defaults to `30_000`. */
  maxRetryAfterMs?: number;
  /** Largest token response read. Defaults to `65_536` bytes. */
  maxResponseBytes?: number;
  /** Tokens kept in process (approximate LRU). Defaults to `10_000`. */
  maxEntries?: number;
  /** Allow a plain-http token URL on a non-loopback host. Defaults to `false`. */
  allowInsecureHttp?: boolean;
  /** Redacted log lines go here: `console`, pino, Nest's `Logger`... Defaults to none. */
  logger?: KeyfobLogger;
  /** Defaults to `{ now: Date.now }`. */
  clock?: Clock;
  /** fetch implementation (for proxies or custom agents). Defaults to the global fetch. */
  fetch?: typeof fetch;
  /** Store calls taking longer are abandoned (the token is fetched directly). Defaults to `1_000`. */
  storeTimeoutMs?: number;
  /**
   * How long a process holds (and another waits for) the store lock while fetching. Defaults to the
   * longest a fetch can take: `timeoutMs x (retries + 1)` plus backoff, plus 5 s.
   */
  lockWaitMs?: number;
}

interface KeyContext {
  key: string;
  subject: string | undefined;
  scope: string | undefined;
  extraParams: Readonly<Record<string, string>> | undefined;
}

interface Entry extends Freshness {
  token: AccessToken;
  promise: Promise<AccessToken>;
  header: Promise<string>;
  retryAt: number;
  failures: number;
  ctx: KeyContext;
}

const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\]|::1)$/i;

function positive(name: string, value: number | undefined, fallback: number, allowZero = false): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0 || (!allowZero && value === 0)) {
    throw new ConfigurationError(
      `TokenManager: ${name} must be a ${allowZero ? 'non-negative' : 'positive'} number.`,
    );
  }
  return value;
}

function sortedParams(p: Readonly<Record<string, string>> | undefined): string {
  if (!p) return '';
  const keys = Object.keys(p).sort();
  return keys.length ? JSON.stringify(keys.map((k) => [k, p[k]])) : '';
}

function normaliseScope(scope: string | undefined): string {
  return scope ? [...new Set(scope.split(/\s+/).filter(Boolean))].sort().join(' ') : '';
}

function raceSignal<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(abortError(signal));
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
 * Obtains, caches and renews OAuth 2 access tokens for one token endpoint and grant.
 * `getToken()` answers from memory on the hot path; renewals are single-flight per cache key
 * (token URL, client, grant, scope, subject, extra parameters), started ahead of expiry in the background.
 */
export class TokenManager {
  readonly #grant: Grant;
  readonly #tokenUrl: string;
  readonly #store: TokenStore | undefined;
  readonly #l1: BoundedCache<Entry>;
  readonly #inflight = new Map<string, Promise<Entry>>();
  readonly #invalidated: BoundedCache<true>;
  readonly #keyMemo = new Map<string, KeyContext>();
  readonly #defaultCtx: KeyContext;
  readonly #now: () => number;
  readonly #policy: { refreshMarginMs: number; expiryBufferMs: number };
  readonly #endpoint: TokenEndpointOptions;
  readonly #defaultLifetimeMs: number;
  readonly #maxLifetimeMs: number;
  readonly #refreshTokenLifetimeMs: number;
  readonly #storeTimeoutMs: number;
  readonly #lockWaitMs: number;
  readonly #logger: KeyfobLogger | undefined;
  readonly #events = new Emitter<TokenManagerEvents>();
  readonly #closing = new AbortController();
  readonly #locks = new Set<TokenStoreLock>();
  #closed = false;
  #storeDown = false;

  constructor(options: TokenManagerOptions) {
    if (!options || typeof options !== 'object')
      throw new ConfigurationError('TokenManager: options are required.');
    const { grant } = options;
    if (!grant || typeof grant.fetchToken !== 'function') {
      throw new ConfigurationError(
        'TokenManager: grant is required (clientCredentials(...), passwordGrant(...), authorizationCode(...), staticToken(...) or customGrant(...)).',
      );
    }
    this.#grant = grant;
    this.#tokenUrl = TokenManager.#checkTokenUrl(options, grant);
    this.#store = options.store;
    if (this.#store && (typeof this.#store.get !== 'function' || typeof this.#store.set !== 'function')) {
      throw new ConfigurationError(
        'TokenManager: store must implement get, set and delete (see TokenStore).',
      );
    }
    this.#now = options.clock ? () => options.clock!.now() : Date.now;
    this.#policy = {
      refreshMarginMs: positive('refreshMarginMs', options.refreshMarginMs, 60_000, true),
      expiryBufferMs: positive('expiryBufferMs', options.expiryBufferMs, 5_000, true),
    };
    this.#defaultLifetimeMs = positive('defaultLifetimeMs', options.defaultLifetimeMs, 300_000);
    this.#maxLifetimeMs = positive('maxLifetimeMs', options.maxLifetimeMs, 366 * 24 * 3600_000);
    this.#refreshTokenLifetimeMs = positive(
      'refreshTokenLifetimeMs',
      options.refreshTokenLifetimeMs,
      30 * 24 * 3600_000,
    );
    const fetchImpl = options.fetch ?? globalThis.fetch;
    if (typeof fetchImpl !== 'function')
      throw new ConfigurationError('TokenManager: no global fetch; pass options.fetch.');
    const timeoutMs = positive('timeoutMs', options.timeoutMs, 10_000);
    this.#endpoint = {
      timeoutMs,
      retries: Math.floor(positive('retries', options.retries, 2, true)),
      retryBaseDelayMs: positive('retryBaseDelayMs', options.retryBaseDelayMs, 200, true),
      maxRetryAfterMs: positive('maxRetryAfterMs', options.maxRetryAfterMs, 30_000, true),
      maxResponseBytes: positive('maxResponseBytes', options.maxResponseBytes, 65_536),
      fetch: fetchImpl,
      userAgent: `keyfob/${VERSION}`,
    };
    this.#storeTimeoutMs = positive('storeTimeoutMs', options.storeTimeoutMs, 1_000);
    const retries = this.#endpoint.retries;
    this.#lockWaitMs = positive(
      'lockWaitMs',
      options.lockWaitMs,
      timeoutMs * (retries + 1) + 5_000 * retries + 5_000,
    );
    const maxEntries = positive('maxEntries', options.maxEntries, 10_000);
    this.#l1 = new BoundedCache(maxEntries);
    this.#invalidated = new BoundedCache(1_000);
    this.#logger = options.logger;
    this.#defaultCtx = this.#makeCtx(undefined, undefined, undefined);
    grant.bind?.(this.#host(options.allowInsecureHttp === true));
  }

  static #checkTokenUrl(options: TokenManagerOptions, grant: Grant): string {
    const { tokenUrl } = options;
    if (tokenUrl === undefined || tokenUrl === '') {
      if (grant.usesTokenUrl) {
        throw new ConfigurationError(`TokenManager: tokenUrl is required for the ${grant.type} grant.`);
      }
      return '';
    }
    let url: URL;
    try {
      url = new URL(tokenUrl);
    } catch {
      throw new ConfigurationError(`TokenManager: tokenUrl "${safeUrl(tokenUrl)}" is not an absolute URL.`);
    }
    if (url.username || url.password) {
      throw new ConfigurationError(
        'TokenManager: tokenUrl must not contain credentials; pass them to the grant.',
      );
    }
    if (url.protocol === 'https:') return tokenUrl;
    if (url.protocol === 'http:' && (LOOPBACK.test(url.hostname) || options.allowInsecureHttp))
      return tokenUrl;
    throw new ConfigurationError(
      `TokenManager: tokenUrl ${safeUrl(tokenUrl)} is not https; client secrets and tokens would cross the network in clear text.`,
      {
        hint: 'Use the https URL, or set allowInsecureHttp: true for a trusted network (loopback is always allowed).',
      },
    );
  }

  /** The grant type this manager uses. */
  get grantType(): string {
    return this.#grant.type;
  }

  /** Tokens held in this process. */
  get size(): number {
    return this.#l1.size;
  }

  /**
   * A valid access token: from memory when fresh (no await on the hot path), else single-flight from
   * the store or the token endpoint. Rejects with a {@link KeyfobError}.
   */
  getToken(options?: GetTokenOptions): Promise<AccessToken> {
    const ctx = options === undefined ? this.#defaultCtx : this.#ctxFor(options);
    const e = this.#fresh(ctx, options);
    return e !== undefined ? e.promise : this.#slow(ctx, options).then((x) => x.token);
  }

  /** `"Bearer <token>"`, ready for an Authorization header. */
  getAuthorizationHeader(options?: GetTokenOptions): Promise<string> {
    const ctx = options === undefined ? this.#defaultCtx : this.#ctxFor(options);
    const e = this.#fresh(ctx, options);
    return e !== undefined ? e.header : this.#slow(ctx, options).then((x) => x.header);
  }

  /** The hot path: the cached entry when it may be handed out (starting a refresh-ahead when due). */
  #fresh(ctx: KeyContext, options: GetTokenOptions | undefined): Entry | undefined {
    if (options !== undefined && options.forceRefresh === true) return undefined;
    const e = this.#l1.get(ctx.key);
    if (e === undefined) return undefined;
    const now = this.#now();
    if (now < e.refreshAt) return e;
    if (now < e.staleAt) {
      this.#refreshAhead(e, now);
      return e;
    }
    return undefined;
  }

  /**
   * Drops exactly this token (compare-and-delete): call it when a resource server answers 401 to it.
   * If a newer token is already cached, nothing happens, so a hundred concurrent 401s for one token
   * cause one token request. A per-user token set keeps its refresh token and is renewed with it.
   * Resolves whether the token was still current.
   */
  async invalidate(
    token: AccessToken | string,
    options: { subject?: string; scope?: string } = {},
  ): Promise<boolean> {
    const value = typeof token === 'string' ? token : token?.accessToken;
    if (!value) return false;
    this.#invalidated.set(value, true);
    let ctx: KeyContext | undefined;
    let entry: Entry | undefined;
    if (options.subject !== undefined || options.scope !== undefined) {
      ctx = this.#ctxFor(options);
      entry = this.#l1.peek(ctx.key);
    } else {
      for (const [, e] of this.#l1.entries()) {
        if (e.token.accessToken === value) {
          entry = e;
          break;
        }
      }
      ctx = entry?.ctx;
    }
    let dropped = false;
    if (entry && entry.token.accessToken === value && entry.staleAt !== Number.NEGATIVE_INFINITY && ctx) {
      dropped = true;
      // Marked stale rather than deleted: the next getToken() replaces it (a refresh, renewed with the
      // refresh token when the set has one, instead of sending the user to login).
      entry.refreshAt = Number.NEGATIVE_INFINITY;
      entry.staleAt = Number.NEGATIVE_INFINITY;
      this.#events.emit('tokenInvalidated', {
        grantType: this.#grant.type,
        subject: ctx.subject,
        scope: ctx.scope,
        fingerprint: fingerprint(value),
      });
      this.#log(
        'debug',
        `token ${fingerprint(value)} invalidated${ctx.subject ? ` for subject ${ctx.subject}` : ''}`,
      );
    }
    if (this.#store && ctx && !entry?.token.refreshToken) {
      await this.#storeCall('delete', () => this.#store!.delete(ctx.key, value));
    }
    return dropped;
  }

  /**
   * Forgets the token (set) of a subject, e.g. on logout; with `revoke: true` and a grant with a
   * `revocationUrl`, also revokes its refresh token (RFC 7009), best effort.
   */
  async deleteToken(options: { subject?: string; scope?: string; revoke?: boolean } = {}): Promise<void> {
    const ctx = this.#ctxFor(options);
    const entry = this.#l1.peek(ctx.key);
    let token = entry?.token;
    if (!token && this.#store) {
      token = fromStoredToken(await this.#storeCall('get', () => this.#store!.get(ctx.key)));
    }
    this.#l1.delete(ctx.key);
    if (this.#store) await this.#storeCall('delete', () => this.#store!.delete(ctx.key));
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
    this.#inflight.clear();
    this.#keyMemo.clear();
    const locks = [...this.#locks];
    this.#locks.clear();
    await Promise.allSettled(locks.map((l) => l.release()));
    this.#events.clear();
  }

  toJSON(): Record<string, unknown> {
    return { grantType: this.#grant.type, tokenUrl: safeUrl(this.#tokenUrl), cached: this.#l1.size };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `TokenManager { grant: '${this.#grant.type}', tokenUrl: '${safeUrl(this.#tokenUrl)}', cached: ${this.#l1.size} }`;
  }

  // ---- internals ---------------------------------------------------------------------------

  #ctxFor(options: {
    subject?: string | undefined;
    scope?: string | undefined;
    extraParams?: Readonly<Record<string, string>> | undefined;
  }): KeyContext {
    const { subject, scope, extraParams } = options;
    if (subject === undefined && scope === undefined && extraParams === undefined) return this.#defaultCtx;
    const memoKey = `${subject ?? ''}\u0001${scope ?? ''}\u0001${extraParams ? sortedParams(extraParams) : ''}`;
    let ctx = this.#keyMemo.get(memoKey);
    if (ctx === undefined) {
      if (this.#keyMemo.size >= 10_000) this.#keyMemo.clear();
      ctx = this.#makeCtx(subject, scope, extraParams);
      this.#keyMemo.set(memoKey, ctx);
    }
    return ctx;
  }

  #makeCtx(
    subject: string | undefined,
    scope: string | undefined,
    extraParams: Readonly<Record<string, string>> | undefined,
  ): KeyContext {
    const g = this.#grant;
    const effectiveScope = scope ?? g.scope;
    // Never the secret: only what tells tokens apart. Hashed, so store key names reveal nothing.
    const material = JSON.stringify([
      'v1',
      this.#tokenUrl,
      g.type,
      g.clientId ?? '',
      g.identity ?? '',
      normaliseScope(effectiveScope),
      subject ?? '',
      sortedParams(g.extraParams),
      sortedParams(extraParams),
    ]);
    const key = `${g.type}:${createHash('sha256').update(material).digest('base64url').slice(0, 32)}`;
    return { key, subject, scope: effectiveScope, extraParams };
  }

  #slow(ctx: KeyContext, options: GetTokenOptions | undefined): Promise<Entry> {
    if (this.#closed) {
      return Promise.reject(new KeyfobError('TokenManager is closed.', { code: ErrorCode.Closed }));
    }
    const current = this.#l1.peek(ctx.key);
    const replacing = options?.forceRefresh ? current?.token : undefined;
    return raceSignal(this.#obtain(ctx, replacing), options?.signal);
  }

  #refreshAhead(entry: Entry, now: number): void {
    if (entry.retryAt > now || this.#inflight.has(entry.ctx.key) || this.#closed) return;
    this.#obtain(entry.ctx, entry.token).catch((error: unknown) => {
      entry.failures++;
      const at = this.#now();
      entry.retryAt = at + refreshRetryDelay(entry.failures);
      const err =
        error instanceof KeyfobError
          ? error
          : new KeyfobError(String(error), { code: ErrorCode.TokenEndpoint });
      this.#events.emit('refreshFailed', {
        grantType: this.#grant.type,
        subject: entry.ctx.subject,
        scope: entry.ctx.scope,
        error: err,
        servingUntil: entry.staleAt,
        retryAt: entry.retryAt,
      });
      this.#log(
        'warn',
        `background token refresh failed (${err.code}); still serving the current token for ${Math.max(0, Math.round((entry.staleAt - at) / 1000))}s: ${err.message}`,
      );
    });
  }

  /** Single-flight: one acquisition per key at a time; everyone else joins it. */
  #obtain(ctx: KeyContext, replacing: AccessToken | undefined): Promise<Entry> {
    const running = this.#inflight.get(ctx.key);
    if (running !== undefined) return running;
    const p = this.#acquire(ctx, replacing);
    this.#inflight.set(ctx.key, p);
    p.then(
      () => this.#inflight.get(ctx.key) === p && this.#inflight.delete(ctx.key),
      () => this.#inflight.get(ctx.key) === p && this.#inflight.delete(ctx.key),
    );
    return p;
  }

  #acceptable(
    token: AccessToken | undefined,
    replacing: AccessToken | undefined,
    now: number,
    hasL1: boolean,
  ) {
    if (!token) return false;
    if (replacing && token.accessToken === replacing.accessToken) return false;
    if (this.#invalidated.peek(token.accessToken)) return false;
    const f = freshnessOf(token, this.#policy, now);
    return now < (hasL1 ? f.refreshAt : f.staleAt);
  }

  async #acquire(ctx: KeyContext, replacing: AccessToken | undefined): Promise<Entry> {
    const started = this.#now();
    const previous = this.#l1.peek(ctx.key);
    let base = previous?.token;
    const store = this.#store;
    if (store) {
      const stored = fromStoredToken(await this.#storeCall('get', () => store.get(ctx.key)));
      if (this.#acceptable(stored, replacing, this.#now(), previous !== undefined)) {
        return this.#remember(ctx, stored!, 'store', started, previous);
      }
      if (stored?.refreshToken) base = stored;
      if (store.lock && !this.#storeDown) {
        const lock = await this.#storeCall(
          'lock',
          () => store.lock!(ctx.key, this.#lockWaitMs),
          'failed' as const,
        );
        if (lock === undefined) {
          const peer = await this.#waitForPeer(ctx, replacing, previous !== undefined);
          if (peer) return this.#remember(ctx, peer, 'store', started, previous);
          this.#log('warn', 'waited for another process to fetch the token and gave up; fetching directly');
        } else if (lock !== 'failed') {
          this.#locks.add(lock);
          try {
            const again = fromStoredToken(await this.#storeCall('get', () => store.get(ctx.key)));
            if (this.#acceptable(again, replacing, this.#now(), previous !== undefined)) {
              return this.#remember(ctx, again!, 'store', started, previous);
            }
            if (again?.refreshToken) base = again;
            const token = await this.#fetch(ctx, base);
            await this.#storeSet(ctx.key, token);
            return this.#remember(ctx, token, 'endpoint', started, previous);
          } finally {
            this.#locks.delete(lock);
            await this.#storeCall('unlock', () => lock.release());
          }
        }
      }
    }
    const token = await this.#fetch(ctx, base);
    if (store) await this.#storeSet(ctx.key, token);
    return this.#remember(ctx, token, 'endpoint', started, previous);
  }

  /** Another process holds the lock and is fetching: poll the store for its token. */
  async #waitForPeer(
    ctx: KeyContext,
    replacing: AccessToken | undefined,
    hasL1: boolean,
  ): Promise<AccessToken | undefined> {
    const deadline = this.#now() + this.#lockWaitMs;
    let delay = 20;
    while (this.#now() < deadline && !this.#closed) {
      await sleep(delay + Math.random() * delay, this.#closing.signal).catch(() => {});
      const t = fromStoredToken(await this.#storeCall('get', () => this.#store!.get(ctx.key)));
      if (this.#acceptable(t, replacing, this.#now(), hasL1)) return t;
      if (this.#storeDown) return undefined;
      delay = Math.min(delay * 1.5, 250);
    }
    return undefined;
  }

  #grantContext(ctx: KeyContext, signal: AbortSignal, url = this.#tokenUrl): GrantContext {
    return {
      tokenUrl: url,
      scope: ctx.scope,
      subject: ctx.subject,
      extraParams: ctx.extraParams,
      signal,
      request: (req) => postTokenRequest(url, req, this.#endpoint, signal),
    };
  }

  async #fetch(ctx: KeyContext, base: AccessToken | undefined): Promise<AccessToken> {
    const grant = this.#grant;
    const signal = this.#closing.signal;
    const gctx = this.#grantContext(ctx, signal);
    const requestedAt = this.#now();
    let raw: Record<string, unknown> | undefined;
    let previousRefreshToken: string | undefined;
    if (base?.refreshToken && grant.refresh) {
      try {
        raw = await grant.refresh(gctx, base.refreshToken);
        previousRefreshToken = base.refreshToken;
      } catch (e) {
        const rejected =
          e instanceof TokenEndpointError &&
          e.status !== undefined &&
          e.status >= 400 &&
          e.status < 500 &&
          e.status !== 429;
        if (!rejected) throw e;
        if (grant.interactive) {
          if (this.#store) {
            // Another process may have won the refresh race and rotated the refresh token: use its set.
            const winner = fromStoredToken(await this.#storeCall('get', () => this.#store!.get(ctx.key)));
            if (winner?.refreshToken && winner.refreshToken !== base.refreshToken) {
              if (this.#acceptable(winner, undefined, this.#now(), false)) return winner;
              return this.#fetch(ctx, winner);
            }
            // Compare-and-delete: never drop a set another process just stored.
            await this.#storeCall('delete', () => this.#store!.delete(ctx.key, base.accessToken));
          }
          this.#l1.delete(ctx.key);
          throw new LoginRequiredError(
            `The token set of subject "${ctx.subject ?? ''}" can no longer be refreshed (${(e as TokenEndpointError).error ?? (e as TokenEndpointError).status}).`,
            {
              ...(ctx.subject === undefined ? {} : { subject: ctx.subject }),
              hint: 'Send the user through the login again.',
              cause: e,
            },
          );
        }
        this.#log(
          'info',
          `refresh token rejected (${(e as TokenEndpointError).status}); requesting a new token with the ${grant.type} grant`,
        );
      }
    } else if (grant.interactive) {
      throw new LoginRequiredError(`No token set is stored for subject "${ctx.subject ?? ''}".`, {
        ...(ctx.subject === undefined ? {} : { subject: ctx.subject }),
        hint: 'Send the user through the login (authorizationUrl + exchange) first.',
      });
    }
    raw ??= await grant.fetchToken(gctx);
    return this.#normalise(raw, requestedAt, previousRefreshToken);
  }

  #normalise(raw: Record<string, unknown>, requestedAt: number, previousRefreshToken?: string): AccessToken {
    return normaliseTokenResponse(raw, {
      requestedAt,
      now: this.#now(),
      defaultLifetimeMs: this.#defaultLifetimeMs,
      maxLifetimeMs: this.#maxLifetimeMs,
      tokenUrl: safeUrl(this.#tokenUrl),
      ...(previousRefreshToken === undefined ? {} : { previousRefreshToken }),
      warn: (m) => this.#log('warn', m),
    });
  }

  #remember(
    ctx: KeyContext,
    token: AccessToken,
    source: 'endpoint' | 'store' | 'exchange',
    started: number,
    previous: Entry | undefined,
  ): Entry {
    const now = this.#now();
    const promise = Promise.resolve(token);
    const entry: Entry = {
      token,
      promise,
      header: Promise.resolve(`Bearer ${token.accessToken}`),
      ...freshnessOf(token, this.#policy, now),
      retryAt: 0,
      failures: 0,
      ctx,
    };
    if (!this.#closed) this.#l1.set(ctx.key, entry);
    const event = {
      grantType: this.#grant.type,
      subject: ctx.subject,
      scope: ctx.scope,
      expiresAt: token.expiresAt,
      fingerprint: fingerprint(token.accessToken),
      source,
      durationMs: now - started,
    };
    this.#events.emit(previous ? 'tokenRefreshed' : 'tokenFetched', event);
    this.#log(
      'debug',
      `token ${event.fingerprint} ${previous ? 'refreshed' : 'obtained'} from ${source}${ctx.subject ? ` for subject ${ctx.subject}` : ''}` +
        `${token.expiresAt ? `, expires in ${Math.round((token.expiresAt - now) / 1000)}s` : ''}`,
    );
    return entry;
  }

  #storeSet(key: string, token: AccessToken): Promise<unknown> {
    const now = this.#now();
    const until = token.refreshToken
      ? Math.max(token.expiresAt ?? 0, now + refreshLifetime(token, this.#refreshTokenLifetimeMs))
      : (token.expiresAt ?? now + this.#maxLifetimeMs);
    const ttl = Math.max(1_000, until - now);
    return this.#storeCall('set', () => this.#store!.set(key, toStoredToken(token), ttl));
  }

  /** Store calls never fail a caller: a slow or broken store is bypassed with a warning. */
  async #storeCall<T, F = undefined>(op: string, call: () => Promise<T> | T, onFail?: F): Promise<T | F> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const result = await Promise.race([
        Promise.resolve().then(call),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`store ${op} timed out after ${this.#storeTimeoutMs} ms`)),
            this.#storeTimeoutMs,
          );
          timer.unref?.();
        }),
      ]);
      if (this.#storeDown) {
        this.#storeDown = false;
        this.#log('info', 'token store is reachable again; sharing tokens through it');
      }
      return result;
    } catch (e) {
      if (!this.#storeDown) {
        this.#storeDown = true;
        this.#log(
          'warn',
          `token store ${op} failed (${e instanceof Error ? e.message : String(e)}); fetching tokens directly until it is back`,
        );
      }
      return onFail as F;
    } finally {
      clearTimeout(timer);
    }
  }

  #host(allowInsecureHttp: boolean): GrantHost {
    const manager = this;
    return {
      allowInsecureHttp,
      get closed() {
        return manager.#closed;
      },
      exchange: async (key, send, signal) => {
        if (this.#closed) throw new KeyfobError('TokenManager is closed.', { code: ErrorCode.Closed });
        const started = this.#now();
        const raw = await raceSignal(
          send(this.#grantContext(this.#ctxFor({ scope: key.scope }), this.#closing.signal)),
          signal,
        );
        const token = this.#normalise(raw, started);
        const subject = typeof key.subject === 'function' ? key.subject(token) : key.subject;
        if (typeof key.subject === 'function' && (typeof subject !== 'string' || subject === '')) {
          throw new ConfigurationError(
            'authorizationCode.exchange: the subject function returned no subject.',
          );
        }
        const ctx = this.#ctxFor({ subject, scope: key.scope });
        if (this.#store) await this.#storeSet(ctx.key, token);
        this.#remember(ctx, token, 'exchange', started, this.#l1.peek(ctx.key));
        return token;
      },
      post: (url, req) => postTokenRequest(url, req, this.#endpoint, this.#closing.signal),
    };
  }

  #log(level: 'debug' | 'info' | 'warn' | 'error', message: string): void {
    const logger = this.#logger;
    if (!logger) return;
    const line = redact(`keyfob: ${message.replace(/^keyfob: /, '')}`);
    try {
      if (level === 'debug') (logger.debug ?? logger.log)?.call(logger, line);
      else if (level === 'info') (logger.info ?? logger.log)?.call(logger, line);
      else logger[level](line);
    } catch {
      // A broken logger must not break token delivery.
    }
  }
}

function refreshLifetime(token: AccessToken, fallback: number): number {
  const r = token.raw.refresh_expires_in ?? token.raw.refresh_token_expires_in;
  const seconds = typeof r === 'number' ? r : typeof r === 'string' ? Number(r) : Number.NaN;
  return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : fallback;
}

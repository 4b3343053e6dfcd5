/**
 * keyfob's diagnostics on `node:diagnostics_channel`: built into Node, no dependency, and free when
 * nobody listens (every publisher checks `hasSubscribers` before it builds a payload). Channels are
 * found by name, so a subscriber sees every copy of `@keyfob/core` in the process (ESM and CJS alike).
 * Payloads carry a token's fingerprint, never a token, a refresh token or a secret.
 * `@keyfob/opentelemetry` turns them into metrics and spans; anything else can subscribe too.
 * @see https://nodejs.org/api/diagnostics_channel.html
 */
import { channel, tracingChannel } from 'node:diagnostics_channel';
import { ErrorCode, isKeyfobError, type KeyfobError } from './errors.js';
import { fingerprint as fingerprintOf } from './redact.js';

/** Channel names. Subscribe with `diagnostics_channel.subscribe(name, fn)` or `tracingChannel(name)`. */
export const DiagnosticsChannel = {
  /** Tracing channel around every HTTP request to a token endpoint (one per attempt). */
  TokenRequest: 'keyfob:token-request',
  /** Every `getToken()` / `getAuthorizationHeader()` answered from memory or not. */
  CacheLookup: 'keyfob:cache-lookup',
  /** A token was taken into the cache (from the endpoint, the store or a code exchange). */
  TokenObtained: 'keyfob:token-obtained',
  /** A cached token was replaced, or replacing it failed. */
  TokenRefresh: 'keyfob:token-refresh',
  /** `invalidate()` was called. */
  TokenInvalidate: 'keyfob:token-invalidate',
  /** The shared store failed, or came back. */
  Store: 'keyfob:store',
  /** An adapter saw a 401 to a request carrying a keyfob token. */
  UnauthorizedRetry: 'keyfob:unauthorized-retry',
} as const;

/** Who asked, for every payload. `subject` is the per-user key (undefined for a service token). */
export interface TokenScopeInfo {
  /** The manager's grant: `client_credentials`, `password`, `authorization_code`, `static`, `custom`, ... */
  grantType: string;
  subject: string | undefined;
  scope: string | undefined;
}

/**
 * Context object of the `keyfob:token-request` tracing channel. The same object goes through
 * `start`, `end`, then `error` (on failure), `asyncStart` and `asyncEnd`; the result fields are
 * filled in before `error` / `asyncStart`.
 */
export interface TokenRequestMessage extends TokenScopeInfo {
  /** What was sent as `grant_type`: e.g. `refresh_token` while renewing an `authorization_code` set. */
  requestGrantType: string;
  /** Token URL without query string or credentials. */
  tokenUrl: string;
  method: 'POST';
  /** 1 for the first try, 2 for the first retry, ... */
  attempt: number;
  outcome?: 'success' | 'failure';
  /** HTTP status, when a response arrived. */
  status?: number;
  /** OAuth `error` code of a failed response (`invalid_client`, ...). */
  oauthError?: string;
  /** The failure's `KeyfobError` code (`KEYFOB_TOKEN_ENDPOINT_TIMEOUT`, ...). */
  errorType?: string;
  /** The failure (a redacted `KeyfobError`), on the `error` event. */
  error?: KeyfobError;
  /** Fingerprint of the access token received. */
  fingerprint?: string;
  /** Lifetime the response announced, seconds (`expires_in`), when it did. */
  expiresIn?: number;
}

export type CacheLookupResult = 'hit' | 'stale' | 'miss';

/** `keyfob:cache-lookup`: published on the hot path, only when someone listens. */
export interface CacheLookupMessage extends TokenScopeInfo {
  /**
   * `hit`: a fresh token was served. `stale`: a still-valid token was served past its refresh
   * point (refresh ahead due or failing). `miss`: the caller waits for a token.
   */
  result: CacheLookupResult;
  /** Hashed cache key (no secret, not reversible). */
  cacheKey: string;
}

/** `keyfob:token-obtained`. */
export interface TokenObtainedMessage extends TokenScopeInfo {
  cacheKey: string;
  fingerprint: string;
  /** Epoch ms, when known. */
  expiresAt: number | undefined;
  source: 'endpoint' | 'store' | 'exchange';
}

export type RefreshTrigger = 'ahead' | 'expired' | 'invalidated' | 'forced';

/** `keyfob:token-refresh`: a cached token's replacement finished. */
export interface TokenRefreshMessage extends TokenScopeInfo {
  cacheKey: string;
  /** `ahead`: in the background before expiry; `expired`; `invalidated` (a 401); `forced` (`forceRefresh`). */
  trigger: RefreshTrigger;
  outcome: 'success' | 'failure';
  previousFingerprint: string | undefined;
  /** Of the new token, on success. */
  fingerprint?: string;
  /** The failure's `KeyfobError` code. */
  errorType?: string;
  error?: KeyfobError;
}

/** `keyfob:token-invalidate`. */
export interface TokenInvalidateMessage extends TokenScopeInfo {
  fingerprint: string;
  /** True when it was the current token (false: a newer one was already cached). */
  dropped: boolean;
}

/** `keyfob:store`. */
export interface StoreMessage {
  /** `failure`: first failure after a healthy period (tokens are fetched directly meanwhile); `recovery`. */
  event: 'failure' | 'recovery';
  /** The store call: `get`, `set`, `delete`, `lock`, `unlock`. */
  operation: string;
  /** Redacted reason, on failure. */
  reason?: string;
}

/** `keyfob:unauthorized-retry`: published by the outgoing-request policy (every adapter). */
export interface UnauthorizedRetryMessage {
  /** Origin of the resource server that answered 401, when the caller said. */
  origin: string | undefined;
  method: string | undefined;
  subject: string | undefined;
  scope: string | undefined;
  /** Fingerprint of the token that was refused (and invalidated). */
  fingerprint: string;
  /** True when the request is sent once more with a new token; false when the 401 goes to the caller. */
  retried: boolean;
}

const tokenRequestChannel = tracingChannel<TokenRequestMessage>(DiagnosticsChannel.TokenRequest);
const cacheLookupChannel = channel(DiagnosticsChannel.CacheLookup);
const tokenObtainedChannel = channel(DiagnosticsChannel.TokenObtained);
const tokenRefreshChannel = channel(DiagnosticsChannel.TokenRefresh);
const tokenInvalidateChannel = channel(DiagnosticsChannel.TokenInvalidate);
const storeChannel = channel(DiagnosticsChannel.Store);
const unauthorizedRetryChannel = channel(DiagnosticsChannel.UnauthorizedRetry);

/** The channel objects, for `subscribe` / `unsubscribe` without repeating the names. */
export const diagnostics = {
  tokenRequest: tokenRequestChannel,
  cacheLookup: cacheLookupChannel,
  tokenObtained: tokenObtainedChannel,
  tokenRefresh: tokenRefreshChannel,
  tokenInvalidate: tokenInvalidateChannel,
  store: storeChannel,
  unauthorizedRetry: unauthorizedRetryChannel,
} as const;

function errorCode(e: unknown): string {
  return isKeyfobError(e) ? e.code : ErrorCode.TokenEndpoint;
}

/** Handle of one traced token request; `undefined` when nobody listens. */
export interface TokenRequestTrace {
  /** A 2xx with a parsed body: takes the status, the token's fingerprint and `expires_in`. */
  succeeded(status: number, body: Readonly<Record<string, unknown>>): void;
  /** Any failure of this attempt (HTTP error status, timeout, network, unreadable body). */
  failed(error: unknown): void;
}

/**
 * Starts tracing one attempt of a token request (publishes `start` and `end`); the returned handle
 * publishes `error` / `asyncStart` / `asyncEnd` once. Returns `undefined`, having built nothing,
 * when the tracing channel has no subscriber.
 */
export function traceTokenRequest(
  info: TokenScopeInfo,
  requestGrantType: string,
  tokenUrl: string,
  attempt: number,
): TokenRequestTrace | undefined {
  const ch = tokenRequestChannel;
  if (!(ch.start.hasSubscribers || ch.asyncEnd.hasSubscribers || ch.error.hasSubscribers)) return undefined;
  const msg: TokenRequestMessage = {
    grantType: info.grantType,
    requestGrantType,
    subject: info.subject,
    scope: info.scope,
    tokenUrl,
    method: 'POST',
    attempt,
  };
  ch.start.publish(msg);
  // The request itself is asynchronous: its synchronous part ends at once.
  ch.end.publish(msg);
  let done = false;
  const finish = () => {
    ch.asyncStart.publish(msg);
    ch.asyncEnd.publish(msg);
  };
  return {
    succeeded(status, body) {
      if (done) return;
      done = true;
      msg.outcome = 'success';
      msg.status = status;
      if (typeof body.access_token === 'string') msg.fingerprint = fingerprintOf(body.access_token);
      const e = Number(body.expires_in);
      if (body.expires_in !== undefined && Number.isFinite(e)) msg.expiresIn = e;
      finish();
    },
    failed(error) {
      if (done) return;
      done = true;
      msg.outcome = 'failure';
      msg.errorType = errorCode(error);
      if (isKeyfobError(error)) {
        const e = error as KeyfobError & { status?: unknown; error?: unknown };
        msg.error = e;
        if (typeof e.status === 'number') msg.status = e.status;
        if (typeof e.error === 'string') msg.oauthError = e.error;
      }
      ch.error.publish(msg);
      finish();
    },
  };
}

/** Hot path: call only behind `diagnostics.cacheLookup.hasSubscribers`. */
export function publishCacheLookup(info: TokenScopeInfo, cacheKey: string, result: CacheLookupResult): void {
  cacheLookupChannel.publish({
    grantType: info.grantType,
    subject: info.subject,
    scope: info.scope,
    cacheKey,
    result,
  } satisfies CacheLookupMessage);
}

export function publishTokenObtained(
  info: TokenScopeInfo,
  cacheKey: string,
  token: { accessToken: string; expiresAt?: number | undefined },
  source: TokenObtainedMessage['source'],
): void {
  if (!tokenObtainedChannel.hasSubscribers) return;
  tokenObtainedChannel.publish({
    grantType: info.grantType,
    subject: info.subject,
    scope: info.scope,
    cacheKey,
    fingerprint: fingerprintOf(token.accessToken),
    expiresAt: token.expiresAt,
    source,
  } satisfies TokenObtainedMessage);
}

export function publishTokenRefresh(
  info: TokenScopeInfo,
  cacheKey: string,
  trigger: RefreshTrigger,
  previous: { accessToken: string } | undefined,
  result: { token: { accessToken: string } } | { error: unknown },
): void {
  if (!tokenRefreshChannel.hasSubscribers) return;
  const msg: TokenRefreshMessage = {
    grantType: info.grantType,
    subject: info.subject,
    scope: info.scope,
    cacheKey,
    trigger,
    outcome: 'token' in result ? 'success' : 'failure',
    previousFingerprint: previous ? fingerprintOf(previous.accessToken) : undefined,
  };
  if ('token' in result) msg.fingerprint = fingerprintOf(result.token.accessToken);
  else {
    msg.errorType = errorCode(result.error);
    if (isKeyfobError(result.error)) msg.error = result.error as KeyfobError;
  }
  tokenRefreshChannel.publish(msg);
}

export function publishTokenInvalidate(info: TokenScopeInfo, accessToken: string, dropped: boolean): void {
  if (!tokenInvalidateChannel.hasSubscribers) return;
  tokenInvalidateChannel.publish({
    grantType: info.grantType,
    subject: info.subject,
    scope: info.scope,
    fingerprint: fingerprintOf(accessToken),
    dropped,
  } satisfies TokenInvalidateMessage);
}

/** `reason` must already be redacted. */
export function publishStore(event: StoreMessage['event'], operation: string, reason?: string): void {
  if (!storeChannel.hasSubscribers) return;
  storeChannel.publish({
    event,
    operation,
    ...(reason === undefined ? {} : { reason }),
  } satisfies StoreMessage);
}

/**
 * For the outgoing-request policy (and hand-written adapters): a resource server answered 401 to a
 * request that carried `accessToken`, which was invalidated; `retried` says whether the request goes
 * out again.
 */
export function publishUnauthorizedRetry(info: {
  accessToken: string;
  retried: boolean;
  url?: string | URL | undefined;
  method?: string | undefined;
  subject?: string | undefined;
  scope?: string | undefined;
}): void {
  if (!unauthorizedRetryChannel.hasSubscribers) return;
  let origin: string | undefined;
  try {
    origin = info.url === undefined ? undefined : new URL(String(info.url)).origin;
  } catch {
    origin = undefined;
  }
  unauthorizedRetryChannel.publish({
    origin,
    method: info.method?.toUpperCase(),
    subject: info.subject,
    scope: info.scope,
    fingerprint: fingerprintOf(info.accessToken),
    retried: info.retried,
  } satisfies UnauthorizedRetryMessage);
}

/** What a manager knows about its token endpoint, without asking it: for health checks. */
export interface TokenManagerStatus {
  /** Last time a token was obtained (from the endpoint, the store or an exchange), epoch ms. */
  lastSuccessAt: number | undefined;
  /** Start of the current run of failures (undefined while healthy), epoch ms. */
  failingSince: number | undefined;
  /** Failed acquisitions since the last success. */
  consecutiveFailures: number;
  /** Code and redacted message of the last failure, while failing. */
  lastError: { code: string; message: string } | undefined;
  /**
   * Whether the last token request got an HTTP answer (even an error status): false after a
   * timeout or a network error; undefined before the first request.
   */
  endpointReachable: boolean | undefined;
}

const UNREACHABLE: ReadonlySet<string> = new Set([
  ErrorCode.TokenEndpointNetwork,
  ErrorCode.TokenEndpointTimeout,
]);

/** Kept by each TokenManager; read through `manager.status`. O(1) per acquisition. */
export class StatusTracker {
  #lastSuccessAt: number | undefined;
  #failingSince: number | undefined;
  #failures = 0;
  #lastError: { code: string; message: string } | undefined;
  #reachable: boolean | undefined;

  succeeded(now: number, fromEndpoint: boolean): void {
    this.#lastSuccessAt = now;
    this.#failingSince = undefined;
    this.#failures = 0;
    this.#lastError = undefined;
    if (fromEndpoint) this.#reachable = true;
  }

  failed(now: number, error: unknown): void {
    this.#failingSince ??= now;
    this.#failures++;
    const code = errorCode(error);
    this.#lastError = {
      code,
      message: isKeyfobError(error) ? error.message : 'token acquisition failed',
    };
    if (UNREACHABLE.has(code)) this.#reachable = false;
    else if (code === ErrorCode.TokenEndpoint || code === ErrorCode.TokenResponse) this.#reachable = true;
  }

  snapshot(): TokenManagerStatus {
    return {
      lastSuccessAt: this.#lastSuccessAt,
      failingSince: this.#failingSince,
      consecutiveFailures: this.#failures,
      lastError: this.#lastError,
      endpointReachable: this.#reachable,
    };
  }
}

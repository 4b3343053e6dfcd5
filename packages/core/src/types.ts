/** An access token as keyfob hands it out. Printing it (`JSON.stringify`, `util.inspect`) hides the secrets. */
export interface AccessToken {
  /** The token to send as `Authorization: Bearer <accessToken>`. */
  readonly accessToken: string;
  /**
   * `'Bearer'`, or `'DPoP'` for a token bound to the manager's DPoP key (RFC 9449). Providers answer
   * `bearer`, `BEARER` or nothing (RFC 6749 5.1 says case-insensitive).
   */
  readonly tokenType: 'Bearer' | 'DPoP';
  /** Expiry instant, epoch ms. Undefined only for a static token without expiry. */
  readonly expiresAt?: number;
  /** When keyfob asked for it, epoch ms; used to size the refresh margin of short-lived tokens. */
  readonly obtainedAt?: number;
  /** Granted scope, when the server says. */
  readonly scope?: string;
  /** Refresh token, kept to renew per-user token sets (authorization code, password). */
  readonly refreshToken?: string;
  /** The token endpoint's response as received (secret fields hidden when printed). */
  readonly raw: Readonly<Record<string, unknown>>;
}

/** Plain data form of an {@link AccessToken}, for stores that serialise (Redis, disk). */
export interface StoredToken {
  accessToken: string;
  tokenType: string;
  expiresAt?: number;
  obtainedAt?: number;
  scope?: string;
  refreshToken?: string;
  raw?: Record<string, unknown>;
}

/**
 * Minimal logger: `console`, pino, winston and Nest's `Logger` all fit. keyfob passes a redacted line, plus
 * structured fields where the logger takes them (pino: `(fields, line)`; winston, Nest: `(line, fields)`;
 * detected from the logger's shape, see the README's "Logs, events and diagnostics").
 */
export interface KeyfobLogger {
  debug?(message: string): void;
  info?(message: string): void;
  log?(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** Injectable clock (tests move time; production uses `Date.now`). */
export interface Clock {
  now(): number;
}

export interface GetTokenOptions {
  /** Whose token: a user id for per-user token sets (authorization code, AIRisk `userid`). Defaults to the service itself. */
  subject?: string | undefined;
  /** Scope to request instead of the grant's. Part of the cache key. */
  scope?: string | undefined;
  /** Extra token request parameters (audience, resource, ...). Part of the cache key. */
  extraParams?: Readonly<Record<string, string>> | undefined;
  /**
   * The token to exchange, for the `tokenExchange` grant (RFC 8693): typically the bearer token of the
   * incoming request. The result is cached under a hash of it, never longer than it lives.
   */
  subjectToken?: string | undefined;
  /** Skip the cache and get a new token (the cached one is replaced, single-flight still applies). */
  forceRefresh?: boolean | undefined;
  /** Abort waiting; the shared request continues for other callers. */
  signal?: AbortSignal | undefined;
}

import { redact } from './redact.js';

/** Stable error codes: match on `error.code`, never on the message. */
export const ErrorCode = {
  TokenEndpoint: 'KEYFOB_TOKEN_ENDPOINT',
  TokenEndpointNetwork: 'KEYFOB_TOKEN_ENDPOINT_NETWORK',
  TokenEndpointTimeout: 'KEYFOB_TOKEN_ENDPOINT_TIMEOUT',
  TokenEndpointRedirect: 'KEYFOB_TOKEN_ENDPOINT_REDIRECT',
  TokenResponse: 'KEYFOB_TOKEN_RESPONSE',
  Configuration: 'KEYFOB_CONFIGURATION',
  LoginRequired: 'KEYFOB_LOGIN_REQUIRED',
  Aborted: 'KEYFOB_ABORTED',
  Closed: 'KEYFOB_CLOSED',
  Store: 'KEYFOB_STORE',
  AuthorizationCallback: 'KEYFOB_AUTHORIZATION_CALLBACK',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface KeyfobErrorOptions {
  code?: ErrorCode;
  hint?: string;
  cause?: unknown;
}

/**
 * The brand every keyfob error carries: the names of its classes, from its own up to
 * `KeyfobError`. `Symbol.for` gives the same symbol to every copy of core in a process (the ESM
 * and the CJS build, two versions in node_modules), so `instanceof` and `isKeyfobError()` agree
 * across them, where plain prototype checks would not.
 */
const KINDS = Symbol.for('@keyfob/core.error-kinds');

type Brandable<T> = abstract new (...args: never[]) => T;

function kindsOf(value: unknown): readonly string[] | undefined {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return undefined;
  const kinds = (value as { [KINDS]?: unknown })[KINDS];
  return Array.isArray(kinds) ? (kinds as string[]) : undefined;
}

/** What to check for the codes whose errors are built in many places without a hint of their own. */
const DEFAULT_HINTS: Partial<Record<ErrorCode, string>> = {
  [ErrorCode.Aborted]:
    'Your AbortSignal fired (a timeout or a cancelled request) while this call waited; the shared token request goes on for other callers. Call again to retry.',
  [ErrorCode.Closed]:
    'tokens.close() was called: this manager gives out no more tokens. Create a new TokenManager, or close it only at shutdown.',
};

/**
 * Base class of every error keyfob throws. `message` says what happened, `hint` what to check.
 * Messages are redacted when built; `toJSON` and `util.inspect` print only safe fields.
 * `instanceof` works across copies of this package (ESM and CJS builds in one process).
 */
export class KeyfobError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;

  constructor(message: string, options: KeyfobErrorOptions = {}) {
    const code = options.code ?? ErrorCode.Configuration;
    const hint = options.hint ?? DEFAULT_HINTS[code];
    const msg = redact(hint ? `${message} ${hint}` : message);
    super(msg, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.hint = hint === undefined ? undefined : redact(hint);
    const kinds: string[] = [];
    for (let c: unknown = new.target; typeof c === 'function' && c !== Error; c = Object.getPrototypeOf(c)) {
      kinds.push((c as { name: string }).name);
    }
    Object.defineProperty(this, KINDS, { value: Object.freeze(kinds), enumerable: false });
  }

  /**
   * `x instanceof KeyfobError` (or a subclass): true for an error of this class from this copy of
   * core, or from any other copy, recognised by its brand and class name.
   */
  static override [Symbol.hasInstance]<T>(this: Brandable<T>, value: unknown): value is T {
    // `this` is the class on the right of `instanceof` (subclasses inherit this method).
    // biome-ignore lint/complexity/noThisInStatic: the subclass is meant, not KeyfobError
    if (Function.prototype[Symbol.hasInstance].call(this, value)) return true;
    // biome-ignore lint/complexity/noThisInStatic: as above
    return kindsOf(value)?.includes(this.name) ?? false;
  }

  toJSON(): Record<string, unknown> {
    const out: Record<string, unknown> = { name: this.name, code: this.code, message: this.message };
    for (const [k, v] of Object.entries(this)) {
      if (k === 'cause' || v === undefined) continue;
      out[k] = typeof v === 'string' ? redact(v) : v;
    }
    return out;
  }
}

export interface TokenEndpointErrorOptions extends KeyfobErrorOptions {
  status?: number;
  error?: string;
  errorDescription?: string;
  tokenUrl?: string;
  retryAfterMs?: number;
  attempts?: number;
  requestSent?: boolean;
}

/**
 * The token endpoint answered with an error status, could not be reached, timed out or redirected.
 * `status` is undefined for network errors and timeouts.
 */
export class TokenEndpointError extends KeyfobError {
  /** HTTP status, or undefined when no response arrived. */
  readonly status: number | undefined;
  /** OAuth 2 `error` code from the response body (RFC 6749 5.2), e.g. `invalid_client`. */
  readonly error: string | undefined;
  /** OAuth 2 `error_description`, redacted. */
  readonly errorDescription: string | undefined;
  /** Token endpoint URL without query string or credentials. */
  readonly tokenUrl: string | undefined;
  /** Delay the server asked for (Retry-After), in ms. */
  readonly retryAfterMs: number | undefined;
  /** How many requests were made before giving up. */
  readonly attempts: number | undefined;
  /**
   * `false` when no attempt reached the server (connection refused, DNS failure): nothing was
   * consumed, so a single-use credential (a refresh token) is still good. Undefined otherwise.
   */
  readonly requestSent: boolean | undefined;

  constructor(message: string, options: TokenEndpointErrorOptions = {}) {
    super(message, {
      code: options.code ?? ErrorCode.TokenEndpoint,
      hint: options.hint,
      cause: options.cause,
    });
    this.status = options.status;
    this.error = options.error === undefined ? undefined : redact(options.error);
    this.errorDescription =
      options.errorDescription === undefined ? undefined : redact(options.errorDescription);
    this.tokenUrl = options.tokenUrl;
    this.retryAfterMs = options.retryAfterMs;
    this.attempts = options.attempts;
    this.requestSent = options.requestSent;
  }

  /** The same as {@link errorDescription}, under the name RFC 6749 5.2 gives it. */
  get error_description(): string | undefined {
    return this.errorDescription;
  }
}

/** The token endpoint answered 2xx but the body is not a usable token response. */
export class TokenResponseError extends KeyfobError {
  readonly status: number | undefined;
  readonly tokenUrl: string | undefined;
  constructor(message: string, options: KeyfobErrorOptions & { status?: number; tokenUrl?: string } = {}) {
    super(message, { code: ErrorCode.TokenResponse, hint: options.hint, cause: options.cause });
    this.status = options.status;
    this.tokenUrl = options.tokenUrl;
  }
}

/** Options that cannot work, reported when the object is built, not at the first request. */
export class ConfigurationError extends KeyfobError {
  constructor(message: string, options: KeyfobErrorOptions = {}) {
    super(message, { ...options, code: ErrorCode.Configuration });
  }
}

/** No token set is stored for this subject (or it can no longer be refreshed): the user must log in. */
export class LoginRequiredError extends KeyfobError {
  readonly subject: string | undefined;
  constructor(message: string, options: KeyfobErrorOptions & { subject?: string } = {}) {
    super(message, { ...options, code: ErrorCode.LoginRequired });
    this.subject = options.subject;
  }
}

/** Whether `value` is an error thrown by keyfob, from this copy of core or any other (ESM, CJS). */
export function isKeyfobError(value: unknown): value is KeyfobError {
  return value instanceof Error && (kindsOf(value)?.includes('KeyfobError') ?? false);
}

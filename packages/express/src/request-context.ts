import { type AccessToken, ConfigurationError, type GetTokenOptions, type TokenManager } from '@keyfob/core';
import type { Request } from 'express';

/**
 * Token options for a request: everything `getToken` takes except `subject` and `subjectToken`, which the
 * request decides.
 */
export type RequestTokenOptions = Omit<GetTokenOptions, 'subject' | 'subjectToken'>;

/**
 * Who a request acts for: a user id (e.g. from your session) for per-user token sets, or `undefined`
 * for the service's own token. May be async.
 */
export type SubjectResolver = (
  req: Request,
) => string | undefined | null | Promise<string | undefined | null>;

/** What `tokenMiddleware` and `requireUserToken` put on `req.keyfob`. Printing it shows no token. */
export interface KeyfobRequestContext {
  /** The subject this request's tokens belong to; `undefined` means the service's own token. */
  readonly subject: string | undefined;
  /**
   * True when this request's tokens are exchanged (RFC 8693) for a token the request carried
   * (`tokenMiddleware(manager, { subjectToken })`): a subject token the token endpoint refuses is then the
   * caller's fault, answered 401 by `keyfobErrorHandler()`.
   */
  readonly exchangesSubjectToken: boolean;
  /** A valid access token for this request's subject (cached, renewed ahead of expiry). */
  getToken(options?: RequestTokenOptions): Promise<AccessToken>;
  /** `"Bearer <token>"` for this request's subject, ready for an `Authorization` header. */
  getAuthorizationHeader(options?: RequestTokenOptions): Promise<string>;
  /**
   * Drops exactly this token (call it when the upstream API answered 401 to it); the next
   * `getToken()` renews it. Resolves whether it was still the current one.
   */
  invalidate(token: AccessToken | string, options?: Pick<GetTokenOptions, 'scope'>): Promise<boolean>;
}

declare global {
  namespace Express {
    interface Request {
      /**
       * Request-scoped tokens, set by `tokenMiddleware(...)` or `requireUserToken()` from `@keyfob/express`;
       * undefined on routes that neither of them ran for. `getKeyfob(req)` returns it or throws an error
       * naming the missing middleware; `hasKeyfob(req)` is the type guard.
       */
      keyfob?: KeyfobRequestContext | undefined;
    }
  }
}

class RequestContext implements KeyfobRequestContext {
  readonly #manager: TokenManager;
  readonly #subjectToken: string | undefined;
  readonly subject: string | undefined;
  readonly exchangesSubjectToken: boolean;

  constructor(manager: TokenManager, subject: string | undefined, subjectToken: string | undefined) {
    this.#manager = manager;
    this.subject = subject;
    this.#subjectToken = subjectToken;
    this.exchangesSubjectToken = subjectToken !== undefined;
  }

  getToken(options?: RequestTokenOptions): Promise<AccessToken> {
    return this.#manager.getToken(this.#options(options));
  }

  getAuthorizationHeader(options?: RequestTokenOptions): Promise<string> {
    return this.#manager.getAuthorizationHeader(this.#options(options));
  }

  invalidate(token: AccessToken | string, options: Pick<GetTokenOptions, 'scope'> = {}): Promise<boolean> {
    // An exchanged token is found by its value (its cache key holds a hash of the subject token).
    if (this.#subjectToken !== undefined) return this.#manager.invalidate(token);
    const scope = options.scope;
    return this.#manager.invalidate(token, {
      ...(this.subject === undefined ? {} : { subject: this.subject }),
      ...(scope === undefined ? {} : { scope }),
    });
  }

  #options(options: RequestTokenOptions | undefined): GetTokenOptions | undefined {
    if (this.subject === undefined && this.#subjectToken === undefined) return options;
    return {
      ...options,
      ...(this.subject === undefined ? {} : { subject: this.subject }),
      ...(this.#subjectToken === undefined ? {} : { subjectToken: this.#subjectToken }),
    };
  }

  toJSON(): Record<string, unknown> {
    return { subject: this.subject ?? null };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `KeyfobRequestContext { subject: ${this.subject === undefined ? 'undefined' : JSON.stringify(this.subject)} }`;
  }
}

/**
 * Builds the `req.keyfob` object for a manager and subject, and the token to exchange with a `tokenExchange`
 * grant (used by the middlewares; handy in tests).
 */
export function createRequestContext(
  manager: TokenManager,
  subject?: string | undefined,
  options: { subjectToken?: string | undefined } = {},
): KeyfobRequestContext {
  return new RequestContext(manager, subject, options.subjectToken);
}

/** A request that `tokenMiddleware(...)` or `requireUserToken()` ran for. */
export type RequestWithKeyfob = Request & { keyfob: KeyfobRequestContext };

/** Type guard: `req.keyfob` was set by `tokenMiddleware(...)` or `requireUserToken()`. */
export function hasKeyfob(req: Request): req is RequestWithKeyfob {
  return req.keyfob !== undefined && req.keyfob !== null;
}

/**
 * `req.keyfob`, or a `ConfigurationError` naming the middleware to mount when no keyfob middleware ran for
 * this request (in place of a `TypeError: Cannot read properties of undefined`).
 */
export function getKeyfob(req: Request): KeyfobRequestContext {
  if (hasKeyfob(req)) return req.keyfob;
  throw new ConfigurationError(
    "req.keyfob is not set: mount tokenMiddleware(manager) (service or per-subject tokens) or requireUserToken() (a logged-in user's tokens) before this handler.",
  );
}

export function assertManager(manager: unknown, where: string): asserts manager is TokenManager {
  const m = manager as Partial<TokenManager> | undefined;
  if (!m || typeof m.getToken !== 'function' || typeof m.getAuthorizationHeader !== 'function') {
    throw new ConfigurationError(
      `${where}: a TokenManager is required (new TokenManager({ tokenUrl, grant })).`,
    );
  }
}

/** Runs the subject resolver; only a non-empty string counts as a subject. */
export async function resolveSubject(
  resolver: SubjectResolver | undefined,
  req: Request,
): Promise<string | undefined> {
  if (!resolver) return undefined;
  const value = await resolver(req);
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

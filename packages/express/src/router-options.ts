import { randomBytes, randomUUID } from 'node:crypto';
import {
  type AccessToken,
  type AuthorizationCodeGrant,
  ConfigurationError,
  type KeyfobLogger,
  type TokenManager,
} from '@keyfob/core';
import type { Request, Response } from 'express';
import { assertManager, type SubjectResolver } from './request-context.js';

/** What the router knows about a login in flight (kept in the signed state cookie). */
export interface PendingLogin {
  /** The subject the token set is stored under. */
  subject: string;
  /** True when the browser had no subject when the login started (the router generated one). */
  generatedSubject: boolean;
  /** The extra authorization request parameters sent (e.g. `{ userid }`, `{ login_hint }`). */
  authorizationParams: Readonly<Record<string, string>>;
}

export interface LoginEvent {
  req: Request;
  res: Response;
  /** The subject the new token set is stored under: pass it to `getToken({ subject })` from now on. */
  subject: string;
  /** The new token set (printing it shows no secret). */
  token: AccessToken;
  /** Where the browser goes next (the `returnTo` of the login, or `successRedirect`). */
  redirectTo: string;
}

export interface LogoutEvent {
  req: Request;
  res: Response;
  /** The subject whose token set was deleted, if the request had one. */
  subject: string | undefined;
}

type Awaitable<T> = T | Promise<T>;
/** Extra request parameters returned by a hook; `undefined` or `null` means none. */
export type ExtraParams = Record<string, string> | undefined | null;

// Every optional option also accepts an explicit `undefined` (`cookieSecret: process.env.COOKIE_SECRET`), so
// user code compiles under `exactOptionalPropertyTypes`.
export interface AuthorizationCodeRouterOptions {
  /** `new TokenManager({ tokenUrl, grant })`, built with the same `grant`. */
  manager: TokenManager;
  /** `authorizationCode({ clientId, clientSecret, redirectUri, authorizeUrl, ... })` from `@keyfob/core`. */
  grant: AuthorizationCodeGrant;
  /**
   * The app user of a request (e.g. `req.session.userId`), or `undefined` when nobody is signed in to the app.
   * Used by `requireUserToken()`, logout, and the login: a login started by an identified user stores the
   * token set under that subject; a login started anonymously gets a new random subject, handed to `onLogin`.
   */
  subject: SubjectResolver;
  /**
   * HMAC-SHA256 key(s) of the state cookie, at least 32 characters. With several, the first signs and all
   * verify (rotation). Defaults to a random key made when the router is created (with a warning): fine for one
   * process, but a login started on one instance then cannot finish on another: set it when you run several.
   */
  cookieSecret?: string | readonly string[] | undefined;
  /** GET: starts a login. Defaults to `'/login'` (relative to where the router is mounted). */
  loginPath?: string | undefined;
  /** GET: the provider redirects here. Defaults to the path of `grant.redirectUri`. */
  callbackPath?: string | undefined;
  /** POST or same-site GET: deletes (and revokes) the user's token set. Defaults to `'/logout'`. */
  logoutPath?: string | undefined;
  /** Where a completed login goes when it had no `returnTo`. Defaults to `'/'`. */
  successRedirect?: string | undefined;
  /** Where a browser goes after logout. Defaults to `'/'`. */
  logoutRedirect?: string | undefined;
  /**
   * The login URL as the browser sees it, for `requireUserToken()` redirects. Defaults to `loginPath`; set it
   * when the router is mounted under a prefix (`app.use('/auth', router)` -> `'/auth/login'`).
   */
  loginUrl?: string | undefined;
  /**
   * Sends the subject as this parameter in the authorization URL *and* in the code exchange, for logins started
   * by an identified user: `'userid'` for AIRisk user-specific tokens, `'login_hint'` for OpenID providers.
   */
  userIdParam?: string | undefined;
  /** Extra authorization request parameters per login (`prompt`, `login_hint`, `audience`...). */
  authorizationParams?: ((req: Request, subject: string | undefined) => Awaitable<ExtraParams>) | undefined;
  /** Extra token request parameters for the code exchange, from what the login sent. */
  exchangeParams?: ((login: PendingLogin, req: Request) => Awaitable<ExtraParams>) | undefined;
  /**
   * Called when the token set is stored, before the redirect: remember `subject` in your session here (required
   * for logins started without a subject). Sending a response yourself skips the redirect.
   */
  onLogin?: ((event: LoginEvent) => Awaitable<void>) | undefined;
  /** Called after the token set is deleted: clear your session here. */
  onLogout?: ((event: LogoutEvent) => Awaitable<void>) | undefined;
  /** Subject for a login started anonymously. Defaults to a random UUID. */
  newSubject?: ((req: Request) => string) | undefined;
  /** Prefix of the state cookies (one per login in flight). Defaults to `'keyfob_login'`. */
  cookieName?: string | undefined;
  /** `Secure` state cookies. Defaults to true when `grant.redirectUri` is https. */
  secureCookies?: boolean | undefined;
  /** How long a login may take, from the redirect to the callback. Defaults to 10 minutes. */
  loginTimeoutMs?: number | undefined;
  /** Revoke the token set at the provider on logout (when the grant has a `revocationUrl`). Defaults to true. */
  revokeOnLogout?: boolean | undefined;
  /**
   * Answer the router's own errors (400 for a refused callback, 502/503 for a failing token endpoint) with
   * `keyfobErrorHandler()`. Defaults to true; false passes them to your error handlers.
   */
  handleErrors?: boolean | undefined;
  /** Refused callbacks (warn) and token endpoint failures (error), redacted. Defaults to none. */
  logger?: KeyfobLogger | undefined;
}

/** The options with their defaults applied and checked: what the routes work from. */
export interface RouterSettings {
  manager: TokenManager;
  grant: AuthorizationCodeGrant;
  subject: SubjectResolver;
  secrets: readonly string[];
  loginPath: string;
  callbackPath: string;
  logoutPath: string;
  successRedirect: string;
  logoutRedirect: string;
  loginUrl: string;
  userIdParam: string | undefined;
  authorizationParams: AuthorizationCodeRouterOptions['authorizationParams'];
  exchangeParams: AuthorizationCodeRouterOptions['exchangeParams'];
  onLogin: AuthorizationCodeRouterOptions['onLogin'];
  onLogout: AuthorizationCodeRouterOptions['onLogout'];
  newSubject: (req: Request) => string;
  cookieName: string;
  /** The state cookie's `Path`: the callback path as the browser sees it (from `grant.redirectUri`). */
  cookiePath: string;
  secureCookies: boolean;
  loginTimeoutMs: number;
  revokeOnLogout: boolean;
  handleErrors: boolean;
  logger: KeyfobLogger | undefined;
}

function checkPath(name: string, value: string): string {
  if (typeof value !== 'string' || !value.startsWith('/')) {
    throw new ConfigurationError(`authorizationCodeRouter: ${name} must be a path starting with "/".`);
  }
  return value;
}

/** Checks the options and fills in the defaults documented on {@link AuthorizationCodeRouterOptions}. */
export function resolveRouterOptions(options: AuthorizationCodeRouterOptions): RouterSettings {
  if (!options || typeof options !== 'object') {
    throw new ConfigurationError('authorizationCodeRouter: options are required.');
  }
  const { manager, grant, subject, logger } = options;
  assertManager(manager, 'authorizationCodeRouter');
  if (!grant || typeof grant.authorizationUrl !== 'function' || typeof grant.exchange !== 'function') {
    throw new ConfigurationError(
      'authorizationCodeRouter: grant must be the authorizationCode(...) grant the manager was built with.',
    );
  }
  if (typeof subject !== 'function') {
    throw new ConfigurationError(
      'authorizationCodeRouter: subject must be a function (req) => string | undefined (e.g. your session user id).',
    );
  }
  const secrets =
    options.cookieSecret === undefined
      ? [randomBytes(32).toString('base64url')]
      : typeof options.cookieSecret === 'string'
        ? [options.cookieSecret]
        : [...options.cookieSecret];
  if (options.cookieSecret === undefined) {
    logger?.warn(
      'keyfob: authorizationCodeRouter has no cookieSecret; using a random per-process key (logins cannot move between instances).',
    );
  }
  if (secrets.length === 0 || secrets.some((s) => typeof s !== 'string' || s.length < 32)) {
    throw new ConfigurationError(
      'authorizationCodeRouter: cookieSecret must be at least 32 characters (e.g. crypto.randomBytes(32).toString("base64url")).',
    );
  }
  const redirect = new URL(grant.redirectUri);
  const loginPath = checkPath('loginPath', options.loginPath ?? '/login');
  const cookieName = options.cookieName ?? 'keyfob_login';
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(cookieName)) {
    throw new ConfigurationError(
      'authorizationCodeRouter: cookieName may use letters, digits, "_" and "-" only.',
    );
  }
  const loginTimeoutMs = options.loginTimeoutMs ?? 600_000;
  if (!(loginTimeoutMs > 0))
    throw new ConfigurationError('authorizationCodeRouter: loginTimeoutMs must be positive.');
  return {
    manager,
    grant,
    subject,
    secrets,
    loginPath,
    callbackPath: checkPath('callbackPath', options.callbackPath ?? redirect.pathname),
    logoutPath: checkPath('logoutPath', options.logoutPath ?? '/logout'),
    successRedirect: options.successRedirect ?? '/',
    logoutRedirect: options.logoutRedirect ?? '/',
    loginUrl: options.loginUrl ?? loginPath,
    userIdParam: options.userIdParam,
    authorizationParams: options.authorizationParams,
    exchangeParams: options.exchangeParams,
    onLogin: options.onLogin,
    onLogout: options.onLogout,
    newSubject: options.newSubject ?? (() => randomUUID()),
    cookieName,
    cookiePath: redirect.pathname || '/',
    secureCookies: options.secureCookies ?? redirect.protocol === 'https:',
    loginTimeoutMs,
    revokeOnLogout: options.revokeOnLogout ?? true,
    handleErrors: options.handleErrors ?? true,
    logger,
  };
}

/** A hook's extra parameters, checked: an object of strings (or nothing). */
export function stringParams(value: ExtraParams, where: string): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object')
    throw new ConfigurationError(`authorizationCodeRouter: ${where} must return an object.`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') {
      throw new ConfigurationError(
        `authorizationCodeRouter: ${where} must return string values ("${k}" is not).`,
      );
    }
    out[k] = v;
  }
  return out;
}

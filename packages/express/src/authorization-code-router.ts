import { randomBytes, randomUUID } from 'node:crypto';
import {
  type AccessToken,
  type AuthorizationCodeGrant,
  ConfigurationError,
  type KeyfobLogger,
  LoginRequiredError,
  TokenEndpointError,
  type TokenManager,
} from '@keyfob/core';
import express, { type Request, type RequestHandler, type Response, type Router } from 'express';
import {
  assertManager,
  asyncHandler,
  createRequestContext,
  resolveSubject,
  type SubjectResolver,
} from './context.js';
import {
  AuthorizationCallbackError,
  keyfobErrorHandler,
  loginRedirectUrl,
  prefersHtml,
  sendAnswer,
} from './errors.js';
import { parseCookies, safeEqual, signValue, tag, verifyValue } from './signed-cookie.js';

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
type Params = Record<string, string> | undefined | null;

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
  cookieSecret?: string | readonly string[];
  /** GET: starts a login. Defaults to `'/login'` (relative to where the router is mounted). */
  loginPath?: string;
  /** GET: the provider redirects here. Defaults to the path of `grant.redirectUri`. */
  callbackPath?: string;
  /** POST or same-site GET: deletes (and revokes) the user's token set. Defaults to `'/logout'`. */
  logoutPath?: string;
  /** Where a completed login goes when it had no `returnTo`. Defaults to `'/'`. */
  successRedirect?: string;
  /** Where a browser goes after logout. Defaults to `'/'`. */
  logoutRedirect?: string;
  /**
   * The login URL as the browser sees it, for `requireUserToken()` redirects. Defaults to `loginPath`; set it
   * when the router is mounted under a prefix (`app.use('/auth', router)` -> `'/auth/login'`).
   */
  loginUrl?: string;
  /**
   * Sends the subject as this parameter in the authorization URL *and* in the code exchange, for logins started
   * by an identified user: `'userid'` for AIRisk user-specific tokens, `'login_hint'` for OpenID providers.
   */
  userIdParam?: string;
  /** Extra authorization request parameters per login (`prompt`, `login_hint`, `audience`...). */
  authorizationParams?: (req: Request, subject: string | undefined) => Awaitable<Params>;
  /** Extra token request parameters for the code exchange, from what the login sent. */
  exchangeParams?: (login: PendingLogin, req: Request) => Awaitable<Params>;
  /**
   * Called when the token set is stored, before the redirect: remember `subject` in your session here (required
   * for logins started without a subject). Sending a response yourself skips the redirect.
   */
  onLogin?: (event: LoginEvent) => Awaitable<void>;
  /** Called after the token set is deleted: clear your session here. */
  onLogout?: (event: LogoutEvent) => Awaitable<void>;
  /** Subject for a login started anonymously. Defaults to a random UUID. */
  newSubject?: (req: Request) => string;
  /** Prefix of the state cookies (one per login in flight). Defaults to `'keyfob_login'`. */
  cookieName?: string;
  /** `Secure` state cookies. Defaults to true when `grant.redirectUri` is https. */
  secureCookies?: boolean;
  /** How long a login may take, from the redirect to the callback. Defaults to 10 minutes. */
  loginTimeoutMs?: number;
  /** Revoke the token set at the provider on logout (when the grant has a `revocationUrl`). Defaults to true. */
  revokeOnLogout?: boolean;
  /**
   * Answer the router's own errors (400 for a refused callback, 502 for a failing token endpoint) with
   * `keyfobErrorHandler()`. Defaults to true; false passes them to your error handlers.
   */
  handleErrors?: boolean;
  /** Refused callbacks (warn) and token endpoint failures (error), redacted. Defaults to none. */
  logger?: KeyfobLogger;
}

export interface RequireUserTokenOptions {
  /** Where browsers are sent to log in. Defaults to the router's `loginUrl`. */
  loginUrl?: string;
}

/** The Router, plus the guard for routes that need the user's token. */
export type AuthorizationCodeRouter = Router & {
  /**
   * Middleware: the request's subject must have a usable token set (one that is valid or can be refreshed);
   * then `req.keyfob` is bound to it. Otherwise browsers (`Accept: text/html`, GET) are redirected to the login
   * with `?returnTo=`, API clients get 401 `{ error: 'login_required' }`.
   */
  requireUserToken(options?: RequireUserTokenOptions): RequestHandler;
};

interface StatePayload {
  v: 1;
  st: string;
  cv: string | undefined;
  sub: string;
  gen: boolean;
  ap: Record<string, string>;
  rt: string | undefined;
  exp: number;
}

const MAX_CONSUMED = 10_000;

function isStatePayload(v: unknown): v is StatePayload {
  const p = v as StatePayload;
  return (
    typeof p === 'object' &&
    p !== null &&
    p.v === 1 &&
    typeof p.st === 'string' &&
    typeof p.sub === 'string' &&
    typeof p.exp === 'number' &&
    (p.cv === undefined || typeof p.cv === 'string') &&
    typeof p.ap === 'object' &&
    p.ap !== null
  );
}

function checkPath(name: string, value: string): string {
  if (typeof value !== 'string' || !value.startsWith('/')) {
    throw new ConfigurationError(`authorizationCodeRouter: ${name} must be a path starting with "/".`);
  }
  return value;
}

/** Only same-origin paths: no scheme, no `//host`, no backslash tricks, no control characters. */
function localPath(value: string | null): string | undefined {
  if (!value || value.length > 2048) return undefined;
  if (!value.startsWith('/') || value.startsWith('//') || value.startsWith('/\\')) return undefined;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (/[\u0000-\u001f\u007f\\]/.test(value)) return undefined;
  return value;
}

function stringParams(value: Params, where: string): Record<string, string> {
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

/** OAuth error codes are short printable ASCII; anything else is not echoed. */
function providerErrorCode(value: string): string {
  return /^[A-Za-z0-9_.-]{1,64}$/.test(value) ? value : 'invalid_error_code';
}

/**
 * An Express Router for the authorization code login (RFC 6749 4.1 with PKCE S256):
 *
 * - `GET loginPath` redirects to the provider with a fresh `state` and PKCE challenge. State, verifier and the
 *   subject travel in a signed (HMAC-SHA256), httpOnly, SameSite=Lax cookie named after the state, scoped to
 *   the callback path, so several logins can be in flight (two tabs) and nothing depends on the URL alone.
 * - `GET callbackPath` checks the state (constant-time), exchanges the code (with `exchangeParams`/`userIdParam`),
 *   stores the token set under the subject, calls `onLogin`, and redirects to `returnTo` or `successRedirect`.
 * - `POST` (or same-site `GET`) `logoutPath` deletes (and revokes) the subject's token set and calls `onLogout`;
 *   cross-site requests (`Sec-Fetch-Site: cross-site`) are refused, so another site cannot log a user out.
 */
export function authorizationCodeRouter(options: AuthorizationCodeRouterOptions): AuthorizationCodeRouter {
  if (!options || typeof options !== 'object') {
    throw new ConfigurationError('authorizationCodeRouter: options are required.');
  }
  const { manager, grant, subject, onLogin, onLogout, logger } = options;
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
  const callbackPath = checkPath('callbackPath', options.callbackPath ?? redirect.pathname);
  const logoutPath = checkPath('logoutPath', options.logoutPath ?? '/logout');
  const successRedirect = options.successRedirect ?? '/';
  const logoutRedirect = options.logoutRedirect ?? '/';
  const routerLoginUrl = options.loginUrl ?? loginPath;
  const cookiePrefix = options.cookieName ?? 'keyfob_login';
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(cookiePrefix)) {
    throw new ConfigurationError(
      'authorizationCodeRouter: cookieName may use letters, digits, "_" and "-" only.',
    );
  }
  const secure = options.secureCookies ?? redirect.protocol === 'https:';
  const loginTimeoutMs = options.loginTimeoutMs ?? 600_000;
  if (!(loginTimeoutMs > 0))
    throw new ConfigurationError('authorizationCodeRouter: loginTimeoutMs must be positive.');
  const revokeOnLogout = options.revokeOnLogout ?? true;
  const newSubject = options.newSubject ?? (() => randomUUID());
  const { userIdParam } = options;
  const cookieOptions = { httpOnly: true, sameSite: 'lax' as const, secure, path: redirect.pathname || '/' };

  /** States already used in this process (tag -> expiry), so a replayed callback is refused before the exchange. */
  const consumed = new Map<string, number>();
  const markConsumed = (stateTag: string, exp: number) => {
    if (consumed.size >= MAX_CONSUMED) {
      const now = Date.now();
      for (const [k, e] of consumed) if (e <= now) consumed.delete(k);
      while (consumed.size >= MAX_CONSUMED) consumed.delete(consumed.keys().next().value!);
    }
    consumed.set(stateTag, exp);
  };

  const cookieNameFor = (state: string) => `${cookiePrefix}_${tag(state)}`;
  const refuse = (
    reason: ConstructorParameters<typeof AuthorizationCallbackError>[0],
    message: string,
    extra = {},
  ) => new AuthorizationCallbackError(reason, message, extra);

  const router = express.Router() as AuthorizationCodeRouter;

  router.get(
    loginPath,
    asyncHandler(async (req, res) => {
      const current = await resolveSubject(subject, req);
      if (current === undefined && !onLogin) {
        logger?.warn(
          'keyfob: a login started with no subject and no onLogin: the token set is stored under a generated subject your app cannot look up; identify the user (subject) or pass onLogin.',
        );
      }
      const sub = current ?? newSubject(req);
      const ap = {
        ...(userIdParam && current !== undefined ? { [userIdParam]: current } : {}),
        ...stringParams(await options.authorizationParams?.(req, current), 'authorizationParams'),
      };
      const query = new URL(req.originalUrl, 'http://x').searchParams;
      const { url, state, codeVerifier } = grant.authorizationUrl({ extraParams: ap });
      const payload: StatePayload = {
        v: 1,
        st: state,
        cv: codeVerifier,
        sub,
        gen: current === undefined,
        ap,
        rt: localPath(query.get('returnTo')),
        exp: Date.now() + loginTimeoutMs,
      };
      res.cookie(cookieNameFor(state), signValue(payload, secrets), {
        ...cookieOptions,
        maxAge: loginTimeoutMs,
      });
      res.set('Cache-Control', 'no-store');
      res.redirect(302, url);
    }),
  );

  router.get(
    callbackPath,
    asyncHandler(async (req, res) => {
      res.set('Cache-Control', 'no-store');
      const query = new URL(req.originalUrl, 'http://x').searchParams;
      const state = query.get('state');
      const code = query.get('code');
      const error = query.get('error');
      let raw: string | undefined;
      let stateTag: string | undefined;
      if (state) {
        stateTag = tag(state);
        raw = parseCookies(req.headers.cookie).get(cookieNameFor(state));
        if (raw !== undefined) res.clearCookie(cookieNameFor(state), cookieOptions);
      }
      if (error) {
        const providerError = providerErrorCode(error);
        if (providerError === 'access_denied') {
          throw refuse('access_denied', 'The sign-in was cancelled or denied at the authorization server.', {
            providerError,
          });
        }
        throw refuse('provider_error', `The authorization server refused the sign-in (${providerError}).`, {
          providerError,
        });
      }
      if (!state || !stateTag) {
        throw refuse(
          'missing_state',
          'The sign-in response has no state parameter; start the sign-in again.',
        );
      }
      if (consumed.has(stateTag)) {
        throw refuse('state_already_used', 'This sign-in was already completed; start a new one.');
      }
      if (raw === undefined) {
        throw refuse(
          'invalid_state',
          'The sign-in response does not match a sign-in started in this browser (unknown or expired state); start the sign-in again.',
        );
      }
      const payload = verifyValue(raw, secrets);
      if (!isStatePayload(payload) || !safeEqual(payload.st, state)) {
        throw refuse(
          'invalid_state',
          'The sign-in response carries a state that does not match; start the sign-in again.',
        );
      }
      if (payload.exp <= Date.now()) {
        throw refuse('expired_state', 'The sign-in took too long; start it again.');
      }
      markConsumed(stateTag, payload.exp);
      if (!code) {
        throw refuse(
          'missing_code',
          'The sign-in response has no authorization code; start the sign-in again.',
        );
      }
      if (!payload.gen) {
        // The signed state cookie ties the login to this browser; refuse only when another user is signed in
        // now (a callback request the app cannot identify, e.g. its session lives elsewhere, is fine).
        const current = await resolveSubject(subject, req);
        if (current !== undefined && current !== payload.sub) {
          throw refuse(
            'subject_mismatch',
            'The signed-in user changed while the sign-in was in progress; start the sign-in again.',
          );
        }
      }
      const login: PendingLogin = {
        subject: payload.sub,
        generatedSubject: payload.gen,
        authorizationParams: payload.ap,
      };
      const extraParams = {
        ...(userIdParam && !payload.gen ? { [userIdParam]: payload.sub } : {}),
        ...stringParams(await options.exchangeParams?.(login, req), 'exchangeParams'),
      };
      let token: AccessToken;
      try {
        token = await grant.exchange(code, {
          subject: payload.sub,
          ...(payload.cv === undefined ? {} : { codeVerifier: payload.cv }),
          ...(Object.keys(extraParams).length ? { extraParams } : {}),
        });
      } catch (e) {
        if (e instanceof TokenEndpointError && e.status === 400 && e.error === 'invalid_grant') {
          throw refuse(
            'invalid_grant',
            'The authorization code was rejected (already used, expired, or issued for another client); start the sign-in again.',
            { cause: e },
          );
        }
        throw e;
      }
      const redirectTo = payload.rt ?? successRedirect;
      await onLogin?.({ req, res, subject: payload.sub, token, redirectTo });
      if (!res.headersSent) res.redirect(302, redirectTo);
    }),
  );

  const logout = asyncHandler(async (req, res) => {
    if (req.get('sec-fetch-site') === 'cross-site') {
      throw refuse('cross_site_request', 'Logout must be requested from this site.', { status: 403 });
    }
    const sub = await resolveSubject(subject, req);
    if (sub !== undefined) await manager.deleteToken({ subject: sub, revoke: revokeOnLogout });
    await onLogout?.({ req, res, subject: sub });
    if (res.headersSent) return;
    res.set('Cache-Control', 'no-store');
    if (prefersHtml(req)) res.redirect(303, logoutRedirect);
    else res.status(204).end();
  });
  router.post(logoutPath, logout);
  // GET too (a plain "Log out" link works), but never from another site: a cross-site request, or a
  // navigation whose Sec-Fetch-Site says it came from elsewhere, is refused (403).
  router.get(logoutPath, logout);

  if (options.handleErrors ?? true) {
    router.use(keyfobErrorHandler({ loginUrl: routerLoginUrl, ...(logger ? { logger } : {}) }));
  }

  router.requireUserToken = (guardOptions: RequireUserTokenOptions = {}) =>
    requireUserToken({ manager, subject, loginUrl: guardOptions.loginUrl ?? routerLoginUrl });

  return router;
}

export interface StandaloneRequireUserTokenOptions {
  manager: TokenManager;
  subject: SubjectResolver;
  /** Where browsers are sent to log in (with `?returnTo=`). Defaults to `'/login'`. */
  loginUrl?: string;
}

/**
 * Middleware: lets the request through only when its subject has a usable token set (valid, or renewable with
 * its refresh token), and binds `req.keyfob` to that subject. Otherwise: browsers (GET, `Accept: text/html`)
 * are redirected to `loginUrl?returnTo=<page>`, everything else gets 401 `{ error: 'login_required' }`.
 * Token endpoint failures other than "log in again" go to `next(err)` (see `keyfobErrorHandler()`).
 */
export function requireUserToken(options: StandaloneRequireUserTokenOptions): RequestHandler {
  const { manager, subject } = options;
  assertManager(manager, 'requireUserToken');
  if (typeof subject !== 'function')
    throw new ConfigurationError('requireUserToken: subject must be a function.');
  const loginUrl = options.loginUrl ?? '/login';
  const loginRequired = (req: Request, res: Response) => {
    res.set('Cache-Control', 'no-store');
    if ((req.method === 'GET' || req.method === 'HEAD') && prefersHtml(req)) {
      res.redirect(302, loginRedirectUrl(loginUrl, req));
      return;
    }
    sendAnswer(req, res, {
      status: 401,
      body: { error: 'login_required', code: 'KEYFOB_LOGIN_REQUIRED', message: 'Sign in first.', loginUrl },
    });
  };
  return asyncHandler(async (req, res, next) => {
    const sub = await resolveSubject(subject, req);
    if (sub === undefined) {
      loginRequired(req, res);
      return;
    }
    try {
      await manager.getToken({ subject: sub });
    } catch (e) {
      if (e instanceof LoginRequiredError) {
        loginRequired(req, res);
        return;
      }
      throw e;
    }
    req.keyfob = createRequestContext(manager, sub);
    next();
  });
}

import express, { type RequestHandler, type Router } from 'express';
import { keyfobErrorHandler } from './error-renderer.js';
import { LoginStateCookies } from './login-state.js';
import { requireUserToken } from './require-user-token.js';
import { type AuthorizationCodeRouterOptions, resolveRouterOptions } from './router-options.js';
import { callbackRoute, loginRoute, logoutRoute } from './routes.js';

export interface RequireUserTokenOptions {
  /** Where browsers are sent to log in. Defaults to the router's `loginUrl`. */
  loginUrl?: string | undefined;
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

/**
 * An Express Router for the authorization code login (RFC 6749 4.1 with PKCE S256): `GET loginPath` (to the
 * provider, with a signed state cookie), `GET callbackPath` (state checked, code exchanged, token set stored),
 * `POST` or same-site `GET` `logoutPath` (token set deleted and revoked). See `routes.ts` and `login-state.ts`.
 */
export function authorizationCodeRouter(options: AuthorizationCodeRouterOptions): AuthorizationCodeRouter {
  const settings = resolveRouterOptions(options);
  const states = new LoginStateCookies({
    secrets: settings.secrets,
    cookieName: settings.cookieName,
    path: settings.cookiePath,
    secure: settings.secureCookies,
    loginTimeoutMs: settings.loginTimeoutMs,
  });
  const router = express.Router() as AuthorizationCodeRouter;
  router.get(settings.loginPath, loginRoute(settings, states));
  router.get(settings.callbackPath, callbackRoute(settings, states));
  const logout = logoutRoute(settings);
  router.post(settings.logoutPath, logout);
  // GET too (a plain "Log out" link works), but never from another site (see logoutRoute).
  router.get(settings.logoutPath, logout);
  if (settings.handleErrors) {
    router.use(
      keyfobErrorHandler({
        loginUrl: settings.loginUrl,
        ...(settings.logger ? { logger: settings.logger } : {}),
      }),
    );
  }
  router.requireUserToken = (guardOptions: RequireUserTokenOptions = {}) =>
    requireUserToken({
      manager: settings.manager,
      subject: settings.subject,
      loginUrl: guardOptions.loginUrl ?? settings.loginUrl,
    });
  return router;
}

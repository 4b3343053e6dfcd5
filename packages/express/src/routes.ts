import { type AccessToken, TokenEndpointError } from '@keyfob/core';
import type { RequestHandler } from 'express';
import { asyncHandler } from './async-handler.js';
import { AuthorizationCallbackError, type AuthorizationCallbackReason } from './callback-error.js';
import { prefersHtml } from './error-renderer.js';
import { type LoginState, type LoginStateCookies, localPath } from './login-state.js';
import { callbackErrorCode } from './oauth-error-code.js';
import { resolveSubject } from './request-context.js';
import { type PendingLogin, type RouterSettings, stringParams } from './router-options.js';

const refuse = (
  reason: AuthorizationCallbackReason,
  message: string,
  extra: ConstructorParameters<typeof AuthorizationCallbackError>[2] = {},
) => new AuthorizationCallbackError(reason, message, extra);

/** `GET loginPath`: a fresh state and PKCE verifier in a state cookie, then off to the provider. */
export function loginRoute(settings: RouterSettings, states: LoginStateCookies): RequestHandler {
  const { grant, subject, onLogin, logger, userIdParam } = settings;
  return asyncHandler(async (req, res) => {
    const current = await resolveSubject(subject, req);
    if (current === undefined && !onLogin) {
      logger?.warn(
        'keyfob: a login started with no subject and no onLogin: the token set is stored under a generated subject your app cannot look up; identify the user (subject) or pass onLogin.',
      );
    }
    const sub = current ?? settings.newSubject(req);
    const ap = {
      ...(userIdParam && current !== undefined ? { [userIdParam]: current } : {}),
      ...stringParams(await settings.authorizationParams?.(req, current), 'authorizationParams'),
    };
    const query = new URL(req.originalUrl, 'http://x').searchParams;
    const { url, state, codeVerifier } = grant.authorizationUrl({ extraParams: ap });
    const login: LoginState = {
      v: 1,
      st: state,
      cv: codeVerifier,
      sub,
      gen: current === undefined,
      ap,
      rt: localPath(query.get('returnTo')),
      exp: Date.now() + settings.loginTimeoutMs,
    };
    states.write(res, login);
    res.set('Cache-Control', 'no-store');
    res.redirect(302, url);
  });
}

/** `GET callbackPath`: checks the state, exchanges the code, stores the token set, calls `onLogin`. */
export function callbackRoute(settings: RouterSettings, states: LoginStateCookies): RequestHandler {
  const { grant, subject, onLogin, userIdParam } = settings;
  return asyncHandler(async (req, res) => {
    res.set('Cache-Control', 'no-store');
    const query = new URL(req.originalUrl, 'http://x').searchParams;
    const state = query.get('state');
    const code = query.get('code');
    const error = query.get('error');
    // Read (and clear) the state cookie first: whatever the provider answered, this login is over.
    const lookup = state ? states.take(req, res, state) : undefined;
    if (error) {
      const providerError = callbackErrorCode(error);
      if (providerError === 'access_denied') {
        throw refuse('access_denied', 'The sign-in was cancelled or denied at the authorization server.', {
          providerError,
        });
      }
      throw refuse('provider_error', `The authorization server refused the sign-in (${providerError}).`, {
        providerError,
      });
    }
    if (!lookup) {
      throw refuse('missing_state', 'The sign-in response has no state parameter; start the sign-in again.');
    }
    if (!lookup.ok) {
      switch (lookup.reason) {
        case 'already_used':
          throw refuse('state_already_used', 'This sign-in was already completed; start a new one.');
        case 'no_cookie':
          throw refuse(
            'invalid_state',
            'The sign-in response does not match a sign-in started in this browser (unknown or expired state); start the sign-in again.',
          );
        case 'mismatch':
          throw refuse(
            'invalid_state',
            'The sign-in response carries a state that does not match; start the sign-in again.',
          );
        case 'expired':
          throw refuse('expired_state', 'The sign-in took too long; start it again.');
      }
    }
    const { login: payload } = lookup;
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
      ...stringParams(await settings.exchangeParams?.(login, req), 'exchangeParams'),
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
    const redirectTo = payload.rt ?? settings.successRedirect;
    await onLogin?.({ req, res, subject: payload.sub, token, redirectTo });
    if (!res.headersSent) res.redirect(302, redirectTo);
  });
}

/**
 * `POST` (or same-site `GET`) `logoutPath`: deletes (and revokes) the subject's token set, calls `onLogout`.
 * A request marked `Sec-Fetch-Site: cross-site` is refused (403), so another site cannot log a user out.
 */
export function logoutRoute(settings: RouterSettings): RequestHandler {
  const { manager, subject, onLogout } = settings;
  return asyncHandler(async (req, res) => {
    if (req.get('sec-fetch-site') === 'cross-site') {
      throw refuse('cross_site_request', 'Logout must be requested from this site.', { status: 403 });
    }
    const sub = await resolveSubject(subject, req);
    if (sub !== undefined) await manager.deleteToken({ subject: sub, revoke: settings.revokeOnLogout });
    await onLogout?.({ req, res, subject: sub });
    if (res.headersSent) return;
    res.set('Cache-Control', 'no-store');
    if (prefersHtml(req)) res.redirect(303, settings.logoutRedirect);
    else res.status(204).end();
  });
}

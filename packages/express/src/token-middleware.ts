import { ConfigurationError, type TokenManager } from '@keyfob/core';
import type { Request, RequestHandler } from 'express';
import { asyncHandler } from './async-handler.js';
import {
  assertManager,
  createRequestContext,
  resolveSubject,
  type SubjectResolver,
} from './request-context.js';

export interface TokenMiddlewareOptions {
  /**
   * Whose token a request uses: return the user id (e.g. `req.session.userId`) for per-user token sets.
   * Omitted, or returning `undefined`, means the manager's own (service) token.
   */
  subject?: SubjectResolver | undefined;
  /**
   * For a manager with the `tokenExchange` grant (RFC 8693): the token of the request to exchange, usually
   * `bearerToken` (the caller's `Authorization: Bearer` token). `req.keyfob` then gets tokens for the caller,
   * cached under a hash of the caller's token. A request without one is answered 401 with
   * `WWW-Authenticate: Bearer` and goes no further. Defaults to none (no exchange).
   */
  subjectToken?:
    | ((req: Request) => string | undefined | null | Promise<string | undefined | null>)
    | undefined;
}

/**
 * Puts `req.keyfob` on every request: `getToken()` / `getAuthorizationHeader()` bound to the request's
 * subject (and, with `subjectToken`, to the token to exchange). It never fetches a token itself; route
 * handlers call `getKeyfob(req).getAuthorizationHeader()` when they call the upstream API, and failures reach
 * `next(err)` (mount `keyfobErrorHandler()` to answer them).
 */
export function tokenMiddleware(manager: TokenManager, options: TokenMiddlewareOptions = {}): RequestHandler {
  assertManager(manager, 'tokenMiddleware');
  const { subject, subjectToken } = options;
  if (subject !== undefined && typeof subject !== 'function') {
    throw new ConfigurationError('tokenMiddleware: subject must be a function (req) => string | undefined.');
  }
  if (subjectToken !== undefined && typeof subjectToken !== 'function') {
    throw new ConfigurationError(
      'tokenMiddleware: subjectToken must be a function (req) => string | undefined, e.g. bearerToken.',
    );
  }
  if (!subject && !subjectToken) {
    const shared = createRequestContext(manager);
    return (req, _res, next) => {
      req.keyfob = shared;
      next();
    };
  }
  return asyncHandler(async (req, res, next) => {
    const sub = await resolveSubject(subject, req);
    if (!subjectToken) {
      req.keyfob = createRequestContext(manager, sub);
      next();
      return;
    }
    const token = await subjectToken(req);
    if (typeof token !== 'string' || token === '') {
      // RFC 6750 3.1: a request without a token gets the challenge, with no error code.
      res.set('WWW-Authenticate', 'Bearer').set('Cache-Control', 'no-store');
      res.status(401).json({
        error: 'unauthorized',
        message: 'This API needs a bearer token: Authorization: Bearer <token>.',
      });
      return;
    }
    req.keyfob = createRequestContext(manager, sub, { subjectToken: token });
    next();
  });
}

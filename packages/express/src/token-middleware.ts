import { ConfigurationError, type TokenManager } from '@keyfob/core';
import type { RequestHandler } from 'express';
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
  subject?: SubjectResolver;
}

/**
 * Puts `req.keyfob` on every request: `getToken()` / `getAuthorizationHeader()` bound to the request's
 * subject. It never fetches a token itself; route handlers call `req.keyfob.getAuthorizationHeader()` when
 * they call the upstream API, and failures reach `next(err)` (mount `keyfobErrorHandler()` to answer them).
 */
export function tokenMiddleware(manager: TokenManager, options: TokenMiddlewareOptions = {}): RequestHandler {
  assertManager(manager, 'tokenMiddleware');
  const { subject } = options;
  if (subject !== undefined && typeof subject !== 'function') {
    throw new ConfigurationError('tokenMiddleware: subject must be a function (req) => string | undefined.');
  }
  if (!subject) {
    const shared = createRequestContext(manager);
    return (req, _res, next) => {
      req.keyfob = shared;
      next();
    };
  }
  return asyncHandler(async (req, _res, next) => {
    req.keyfob = createRequestContext(manager, await resolveSubject(subject, req));
    next();
  });
}

import { ConfigurationError, ErrorCode, isKeyfobError, type TokenManager } from '@keyfob/core';
import type { Request, RequestHandler, Response } from 'express';
import { asyncHandler } from './async-handler.js';
import { loginRedirectUrl, prefersHtml, sendAnswer } from './error-renderer.js';
import {
  assertManager,
  createRequestContext,
  resolveSubject,
  type SubjectResolver,
} from './request-context.js';

export interface StandaloneRequireUserTokenOptions {
  manager: TokenManager;
  subject: SubjectResolver;
  /** Where browsers are sent to log in (with `?returnTo=`). Defaults to `'/login'`. */
  loginUrl?: string | undefined;
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
      if (isKeyfobError(e) && e.code === ErrorCode.LoginRequired) {
        loginRequired(req, res);
        return;
      }
      throw e;
    }
    req.keyfob = createRequestContext(manager, sub);
    next();
  });
}

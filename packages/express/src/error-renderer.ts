import {
  callerAnswer,
  ErrorCode,
  isKeyfobError,
  type KeyfobError,
  type KeyfobLogger,
  redact,
  type TokenEndpointError,
} from '@keyfob/core';
import type { ErrorRequestHandler, Request, Response } from 'express';
import type { AuthorizationCallbackError } from './callback-error.js';
import { callbackErrorCode, tokenEndpointErrorCode } from './oauth-error-code.js';

export interface ErrorAnswer {
  status: number;
  body: Record<string, unknown>;
  /** Seconds for a `Retry-After` header (a 503 whose token endpoint asked to wait). */
  retryAfter?: number | undefined;
  /** A `WWW-Authenticate` challenge (a 401 for a caller's token the exchange refused). */
  challenge?: string | undefined;
}

/**
 * The caller's own token refused by a token exchange (RFC 8693): the token endpoint answered 400
 * `invalid_grant` to a request whose `req.keyfob` exchanges the caller's token, or the token's JWT `exp`
 * had passed (core then sends nothing). That is the caller's 401
 * (RFC 6750 3.1 `invalid_token`), not a gateway failure.
 */
export function subjectTokenRejected(err: KeyfobError, req: Request): ErrorAnswer | undefined {
  const e = err as TokenEndpointError;
  if (!req.keyfob?.exchangesSubjectToken) return undefined;
  // core refuses a JWT subject token whose exp has passed before sending it (LoginRequiredError): the
  // caller's token has expired, which is the same 401 as the token endpoint refusing it.
  const expired = err.code === ErrorCode.LoginRequired;
  const refused = err.code === ErrorCode.TokenEndpoint && e.status === 400 && e.error === 'invalid_grant';
  if (!expired && !refused) return undefined;
  return {
    status: 401,
    body: {
      error: 'invalid_token',
      code: err.code,
      message: 'The bearer token of this request was refused (invalid, expired or revoked).',
    },
    challenge: 'Bearer error="invalid_token"',
  };
}

const isCallbackError = (err: KeyfobError): err is AuthorizationCallbackError =>
  err.code === ErrorCode.AuthorizationCallback;

/**
 * The safe HTTP answer for a keyfob error: status and a JSON body with the error's `code` and `hint`, no secret,
 * no token, no stack. Errors are recognised by their `code`, so an error from another copy of keyfob (CJS next to
 * ESM) is answered the same.
 *
 * The token endpoint is *this service's* upstream: whatever it answered (a 401 for bad client credentials, a 400,
 * a 403), the caller of this service did nothing wrong, so the caller gets 502 Bad Gateway; when the token
 * endpoint is unavailable (no answer, timeout, 5xx, 429) the caller gets 503 Service Unavailable, with
 * `Retry-After` when the token endpoint sent one. `LoginRequiredError` is the exception: the *user* of this
 * request must log in (again), which is the caller's to act on: 401 (or a redirect to the login for browsers).
 */
export function errorAnswer(err: KeyfobError): ErrorAnswer {
  if (isCallbackError(err)) {
    return {
      status: typeof err.status === 'number' ? err.status : 400,
      body: {
        error: err.reason,
        code: err.code,
        message: err.message,
        // The router passes only well-formed codes; an error built elsewhere is held to the same rule.
        ...(typeof err.providerError === 'string'
          ? { providerError: callbackErrorCode(err.providerError) }
          : {}),
      },
    };
  }
  const { status, message, hint, upstreamStatus, oauthError, retryAfterSeconds } = callerAnswer(err);
  const error =
    status === 401
      ? 'login_required'
      : status === 502
        ? 'bad_gateway'
        : status === 503
          ? 'service_unavailable'
          : 'server_error';
  return {
    status,
    body: {
      error,
      code: err.code,
      message,
      ...(upstreamStatus === undefined ? {} : { upstreamStatus }),
      // The provider's text: echoed only as a well-formed RFC 6749 error code.
      ...(oauthError === undefined ? {} : { oauthError: tokenEndpointErrorCode(oauthError) }),
      ...(hint === undefined ? {} : { hint }),
    },
    ...(retryAfterSeconds === undefined ? {} : { retryAfter: retryAfterSeconds }),
  };
}

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};
const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => ESCAPES[c]!);

export function prefersHtml(req: Request): boolean {
  return req.accepts(['json', 'html']) === 'html';
}

/** Sends `answer` as JSON, or as a small HTML page to a browser. */
export function sendAnswer(req: Request, res: Response, answer: ErrorAnswer, loginUrl?: string): void {
  res.set('Cache-Control', 'no-store');
  if (answer.retryAfter !== undefined) res.set('Retry-After', String(answer.retryAfter));
  if (answer.challenge !== undefined) res.set('WWW-Authenticate', answer.challenge);
  if (prefersHtml(req)) {
    const message = String(answer.body.message ?? 'Request failed.');
    const hint = typeof answer.body.hint === 'string' ? `<p>${escapeHtml(answer.body.hint)}</p>` : '';
    const retry =
      loginUrl && answer.status < 500 ? `<p><a href="${escapeHtml(loginUrl)}">Sign in again</a></p>` : '';
    res
      .status(answer.status)
      .type('html')
      .send(
        `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${answer.status}</title></head>` +
          `<body><h1>${answer.status === 400 ? 'Sign-in failed' : 'Request failed'}</h1><p>${escapeHtml(message)}</p>` +
          `<p><code>${escapeHtml(String(answer.body.error))}</code> <code>${escapeHtml(String(answer.body.code ?? ''))}</code></p>${hint}${retry}</body></html>`,
      );
    return;
  }
  res.status(answer.status).json(answer.body);
}

export interface KeyfobErrorHandlerOptions {
  /**
   * Where browsers (`Accept: text/html`, GET) are sent when a `LoginRequiredError` reaches the handler, with
   * `?returnTo=<the page>`. Without it they get a 401 like API clients.
   */
  loginUrl?: string | undefined;
  /** Failures are logged here (redacted): 5xx as errors, 4xx as warnings. Defaults to none. */
  logger?: KeyfobLogger | undefined;
}

/** A login URL with `returnTo` pointing back at this request. */
export function loginRedirectUrl(loginUrl: string, req: Request): string {
  const sep = loginUrl.includes('?') ? '&' : '?';
  return `${loginUrl}${sep}returnTo=${encodeURIComponent(req.originalUrl)}`;
}

export function logAnswer(logger: KeyfobLogger | undefined, err: KeyfobError, status: number): void {
  if (!logger) return;
  const line = redact(`keyfob/express: ${status} ${err.code}: ${err.message}`);
  try {
    if (status >= 500) logger.error(line);
    else logger.warn(line);
  } catch {
    // A broken logger must not break the answer.
  }
}

/**
 * Express error middleware mapping keyfob errors to safe answers (see {@link errorAnswer}): the token endpoint
 * refusing gives 502 and the token endpoint unavailable 503, with `{ error, code, hint?, upstreamStatus?,
 * oauthError? }`; a login that is needed 401 (or a redirect to `loginUrl` for browsers); a refused login
 * callback 400. Bodies never carry a secret, a token or a stack, and echo the provider's error code only when it
 * is a well-formed RFC 6749 code (else `'invalid_error_code'`). Other errors go on to the next error handler
 * untouched. Mount it after your routes: `app.use(keyfobErrorHandler())`.
 */
export function keyfobErrorHandler(options: KeyfobErrorHandlerOptions = {}): ErrorRequestHandler {
  const { loginUrl, logger } = options;
  return (err: unknown, req, res, next) => {
    if (!isKeyfobError(err) || res.headersSent) {
      next(err);
      return;
    }
    if (
      err.code === ErrorCode.LoginRequired &&
      loginUrl &&
      (req.method === 'GET' || req.method === 'HEAD') &&
      prefersHtml(req)
    ) {
      res.set('Cache-Control', 'no-store');
      res.redirect(302, loginRedirectUrl(loginUrl, req));
      return;
    }
    const answer = subjectTokenRejected(err, req) ?? errorAnswer(err);
    logAnswer(logger, err, answer.status);
    sendAnswer(req, res, answer, loginUrl);
  };
}

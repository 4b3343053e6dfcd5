import {
  ConfigurationError,
  ErrorCode,
  KeyfobError,
  type KeyfobLogger,
  LoginRequiredError,
  redact,
  TokenEndpointError,
  TokenResponseError,
} from '@keyfob/core';
import type { ErrorRequestHandler, Request, Response } from 'express';
import { AuthorizationCallbackError } from './callback-error.js';

export interface ErrorAnswer {
  status: number;
  body: Record<string, unknown>;
}

/** The safe HTTP answer for a keyfob error: status and a JSON body with no secret and no stack. */
export function errorAnswer(err: KeyfobError): ErrorAnswer {
  if (err instanceof AuthorizationCallbackError) {
    return {
      status: err.status,
      body: {
        error: err.reason,
        code: err.code,
        message: err.message,
        ...(err.providerError === undefined ? {} : { providerError: err.providerError }),
      },
    };
  }
  if (err instanceof LoginRequiredError) {
    return {
      status: 401,
      body: {
        error: 'login_required',
        code: err.code,
        message: 'Sign in first: no usable token set for this user.',
      },
    };
  }
  if (err instanceof TokenEndpointError) {
    return {
      status: 502,
      body: {
        error: 'bad_gateway',
        code: err.code,
        message: 'The authorization server did not issue a token.',
        ...(err.status === undefined ? {} : { upstreamStatus: err.status }),
        ...(err.error === undefined ? {} : { oauthError: err.error }),
        ...(err.hint === undefined ? {} : { hint: err.hint }),
      },
    };
  }
  if (err instanceof TokenResponseError) {
    return {
      status: 502,
      body: {
        error: 'bad_gateway',
        code: err.code,
        message: 'The authorization server answered with an unusable token response.',
        ...(err.hint === undefined ? {} : { hint: err.hint }),
      },
    };
  }
  if (err.code === ErrorCode.Closed || err.code === ErrorCode.Aborted) {
    return {
      status: 503,
      body: { error: 'service_unavailable', code: err.code, message: 'Token service unavailable.' },
    };
  }
  const message = err instanceof ConfigurationError ? 'keyfob is misconfigured.' : 'Token handling failed.';
  return { status: 500, body: { error: 'server_error', code: err.code, message } };
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
  if (prefersHtml(req)) {
    const message = String(answer.body.message ?? 'Request failed.');
    const retry =
      loginUrl && answer.status < 500 ? `<p><a href="${escapeHtml(loginUrl)}">Sign in again</a></p>` : '';
    res
      .status(answer.status)
      .type('html')
      .send(
        `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${answer.status}</title></head>` +
          `<body><h1>${answer.status === 400 ? 'Sign-in failed' : 'Request failed'}</h1><p>${escapeHtml(message)}</p>` +
          `<p><code>${escapeHtml(String(answer.body.error))}</code></p>${retry}</body></html>`,
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
  loginUrl?: string;
  /** Failures are logged here (redacted): 5xx as errors, 4xx as warnings. Defaults to none. */
  logger?: KeyfobLogger;
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
 * Express error middleware mapping keyfob errors to safe answers: a token endpoint failure gives 502 with
 * `{ error, code, oauthError?, upstreamStatus?, hint? }`, a login that is needed 401 (or a redirect to
 * `loginUrl` for browsers), a refused login callback 400. Bodies never carry a secret, a token or a stack.
 * Other errors go on to the next error handler untouched.
 */
export function keyfobErrorHandler(options: KeyfobErrorHandlerOptions = {}): ErrorRequestHandler {
  const { loginUrl, logger } = options;
  return (err: unknown, req, res, next) => {
    if (!(err instanceof KeyfobError) || res.headersSent) {
      next(err);
      return;
    }
    if (
      err instanceof LoginRequiredError &&
      loginUrl &&
      (req.method === 'GET' || req.method === 'HEAD') &&
      prefersHtml(req)
    ) {
      res.set('Cache-Control', 'no-store');
      res.redirect(302, loginRedirectUrl(loginUrl, req));
      return;
    }
    const answer = errorAnswer(err);
    logAnswer(logger, err, answer.status);
    sendAnswer(req, res, answer, loginUrl);
  };
}

import { callerAnswer, isKeyfobError, type KeyfobError } from '@keyfob/core';
import { type ArgumentsHost, Catch, Logger } from '@nestjs/common';
import { BaseExceptionFilter } from '@nestjs/core';

/** The HTTP answer {@link KeyfobExceptionFilter} sends for a keyfob error. */
export interface KeyfobErrorResponse {
  status: number;
  body: {
    statusCode: number;
    error: string;
    /** The error's stable `code` (`KEYFOB_TOKEN_ENDPOINT`, ...). */
    code: string;
    message: string;
    hint?: string;
    /** The token endpoint's HTTP status, when it answered. */
    upstreamStatus?: number;
  };
  /** Seconds, when the token endpoint asked to wait (429 / 503 with Retry-After). */
  retryAfter?: number;
}

/**
 * The safe answer for a keyfob error raised while handling a request. The token endpoint is this
 * service's upstream, so whatever it answered (even a 401 for this service's own credentials) is not
 * the caller's fault: 502 Bad Gateway; when it is unreachable, times out, answers 5xx or 429, or the
 * shared store fails: 503 Service Unavailable. The body carries the `code` and the `hint`, never a
 * secret, token, cause or stack. Configuration errors are this service's bug: 500 without the hint.
 */
export function keyfobErrorResponse(error: KeyfobError): KeyfobErrorResponse {
  const { status, message, hint, upstreamStatus, retryAfterSeconds } = callerAnswer(error);
  // A login-required user is the caller's 401; everything else is this service's upstream failing.
  const reason =
    status === 503
      ? 'Service Unavailable'
      : status === 502
        ? 'Bad Gateway'
        : status === 401
          ? 'Unauthorized'
          : 'Internal Server Error';
  return {
    status,
    body: {
      statusCode: status,
      error: reason,
      code: error.code,
      message,
      ...(upstreamStatus === undefined ? {} : { upstreamStatus }),
      ...(hint === undefined ? {} : { hint }),
    },
    ...(retryAfterSeconds === undefined ? {} : { retryAfter: retryAfterSeconds }),
  };
}

const logger = new Logger('Keyfob');

/**
 * Opt-in exception filter: a `KeyfobError` thrown while handling an HTTP request (a token that could not
 * be obtained for an upstream call) becomes a 502 / 503 with a safe JSON body (`statusCode`, `error`,
 * `code`, `message`, `hint`), instead of Nest's `500 Internal server error`. Every other exception goes
 * to Nest's default handling unchanged. Keyfob errors are recognised with `isKeyfobError`, so one from
 * another copy of `@keyfob/core` (CJS next to ESM) is caught too.
 *
 * ```ts
 * // app.module.ts: providers: [{ provide: APP_FILTER, useClass: KeyfobExceptionFilter }]
 * // or, in main.ts:
 * app.useGlobalFilters(new KeyfobExceptionFilter(app.get(HttpAdapterHost).httpAdapter));
 * ```
 */
@Catch()
export class KeyfobExceptionFilter extends BaseExceptionFilter {
  override catch(exception: unknown, host: ArgumentsHost): void {
    if (!isKeyfobError(exception) || host.getType() !== 'http') {
      super.catch(exception, host);
      return;
    }
    const adapter = this.httpAdapterHost?.httpAdapter ?? this.applicationRef;
    if (!adapter) {
      super.catch(exception, host);
      return;
    }
    const { status, body, retryAfter } = keyfobErrorResponse(exception);
    // The full (redacted) message, hint included, for the operator; the caller gets `body`.
    logger.warn(`${exception.code} -> ${status}: ${exception.message}`);
    const res = host.switchToHttp().getResponse();
    if (retryAfter !== undefined) adapter.setHeader(res, 'Retry-After', String(retryAfter));
    adapter.setHeader(res, 'Cache-Control', 'no-store');
    adapter.reply(res, body, status);
  }
}

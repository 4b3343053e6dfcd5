import { ErrorCode, isKeyfobError, type KeyfobError } from '@keyfob/core';
import { type ArgumentsHost, Catch, HttpStatus, Logger } from '@nestjs/common';
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
  const e = error as KeyfobError & { status?: unknown; retryAfterMs?: unknown };
  const upstreamStatus = typeof e.status === 'number' ? e.status : undefined;
  const hint = error.hint === undefined ? {} : { hint: error.hint };
  const answer = (status: number, message: string, extra: Partial<KeyfobErrorResponse['body']> = {}) => ({
    status,
    body: {
      statusCode: status,
      error:
        status === 503 ? 'Service Unavailable' : status === 502 ? 'Bad Gateway' : 'Internal Server Error',
      code: error.code,
      message,
      ...extra,
    },
  });
  switch (error.code) {
    case ErrorCode.TokenEndpoint:
    case ErrorCode.TokenEndpointNetwork:
    case ErrorCode.TokenEndpointTimeout: {
      const upstream = upstreamStatus === undefined ? {} : { upstreamStatus };
      if (upstreamStatus === undefined || upstreamStatus >= 500 || upstreamStatus === 429) {
        const wait =
          typeof e.retryAfterMs === 'number' && e.retryAfterMs > 0 ? Math.ceil(e.retryAfterMs / 1000) : 0;
        return {
          ...answer(
            HttpStatus.SERVICE_UNAVAILABLE,
            'The authorization server is unavailable; try again later.',
            {
              ...upstream,
              ...hint,
            },
          ),
          ...(wait > 0 ? { retryAfter: wait } : {}),
        };
      }
      return answer(HttpStatus.BAD_GATEWAY, 'The authorization server did not issue a token.', {
        ...upstream,
        ...hint,
      });
    }
    case ErrorCode.TokenEndpointRedirect:
    case ErrorCode.TokenResponse:
      return answer(
        HttpStatus.BAD_GATEWAY,
        'The authorization server answered with an unusable token response.',
        hint,
      );
    case ErrorCode.Store:
    case ErrorCode.Closed:
    case ErrorCode.Aborted:
      return answer(HttpStatus.SERVICE_UNAVAILABLE, 'The token service is unavailable; try again later.');
    case ErrorCode.Configuration:
      return answer(HttpStatus.INTERNAL_SERVER_ERROR, 'keyfob is misconfigured; see the server log.');
    default:
      return answer(HttpStatus.BAD_GATEWAY, 'No access token could be obtained for the upstream API.', hint);
  }
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

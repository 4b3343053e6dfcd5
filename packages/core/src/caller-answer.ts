import { ErrorCode, type KeyfobError } from './errors.js';

/**
 * What a service tells *its* caller when a keyfob error stops a request (used by `@keyfob/express`'s
 * `keyfobErrorHandler` and `@keyfob/nestjs`' `KeyfobExceptionFilter`; each formats the body its way).
 */
export interface CallerAnswer {
  /**
   * - 401: the user of this request must log in (again) (`LoginRequiredError`);
   * - 502 Bad Gateway: the token endpoint, this service's upstream, refused or answered unusably;
   *   even its 401 (this service's own credentials) is not the caller's fault;
   * - 503 Service Unavailable: the token endpoint is unreachable, timed out, answered 5xx or 429,
   *   or the shared store, the manager or the wait failed;
   * - 500: keyfob is misconfigured (this service's bug).
   */
  status: 401 | 500 | 502 | 503;
  /** A message safe to send to the caller (no secret, no token, no internal detail). */
  message: string;
  /** The error's `hint`, when it may be shown (not for configuration errors). */
  hint?: string;
  /** The token endpoint's HTTP status, when it answered. */
  upstreamStatus?: number;
  /** The token endpoint's OAuth `error` code, when it sent one. */
  oauthError?: string;
  /** Seconds for a `Retry-After` header, when the token endpoint asked to wait. */
  retryAfterSeconds?: number;
}

/** The one mapping from a keyfob error to the answer for this service's caller. */
export function callerAnswer(error: KeyfobError): CallerAnswer {
  const e = error as KeyfobError & { status?: unknown; error?: unknown; retryAfterMs?: unknown };
  const hint = error.hint === undefined ? {} : { hint: error.hint };
  switch (error.code) {
    case ErrorCode.LoginRequired:
      return { status: 401, message: 'Sign in first: no usable token set for this user.' };
    case ErrorCode.TokenEndpoint:
    case ErrorCode.TokenEndpointNetwork:
    case ErrorCode.TokenEndpointTimeout:
    case ErrorCode.TokenEndpointRedirect: {
      const upstreamStatus = typeof e.status === 'number' ? e.status : undefined;
      const upstream = {
        ...(upstreamStatus === undefined ? {} : { upstreamStatus }),
        ...(typeof e.error === 'string' ? { oauthError: e.error } : {}),
        ...hint,
      };
      const unavailable =
        error.code !== ErrorCode.TokenEndpointRedirect &&
        (upstreamStatus === undefined || upstreamStatus >= 500 || upstreamStatus === 429);
      if (!unavailable) {
        return { status: 502, message: 'The authorization server did not issue a token.', ...upstream };
      }
      const wait =
        typeof e.retryAfterMs === 'number' && e.retryAfterMs > 0 ? Math.ceil(e.retryAfterMs / 1000) : 0;
      return {
        status: 503,
        message: 'The authorization server is unavailable; try again later.',
        ...upstream,
        ...(wait > 0 ? { retryAfterSeconds: wait } : {}),
      };
    }
    case ErrorCode.TokenResponse:
      return {
        status: 502,
        message: 'The authorization server answered with an unusable token response.',
        ...hint,
      };
    case ErrorCode.Store:
    case ErrorCode.Closed:
    case ErrorCode.Aborted:
      return { status: 503, message: 'The token service is unavailable; try again later.' };
    case ErrorCode.Configuration:
      return { status: 500, message: 'keyfob is misconfigured; see the server log.' };
    default:
      return { status: 502, message: 'No access token could be obtained for the upstream API.', ...hint };
  }
}

import { ErrorCode, KeyfobError, redact } from '@keyfob/core';

/** Why a login callback (or logout) was refused. Stable: match on it, not on the message. */
export type AuthorizationCallbackReason =
  | 'missing_state'
  | 'invalid_state'
  | 'expired_state'
  | 'state_already_used'
  | 'missing_code'
  | 'invalid_grant'
  | 'access_denied'
  | 'provider_error'
  | 'subject_mismatch'
  | 'cross_site_request';

/** Stable `code` of {@link AuthorizationCallbackError}. */
export const AUTHORIZATION_CALLBACK_ERROR = ErrorCode.AuthorizationCallback;

/**
 * The browser came back from the provider with something keyfob refuses: no or a forged `state`, a login
 * started too long ago or already completed, no `code`, a code the provider rejected (replayed or expired),
 * or the provider's own error (`access_denied` when the user declined). Answered 400 (403 for a cross-site
 * logout) by the router and `keyfobErrorHandler()`.
 */
export class AuthorizationCallbackError extends KeyfobError {
  readonly reason: AuthorizationCallbackReason;
  /** The HTTP status the error is answered with. */
  readonly status: number;
  /** The provider's OAuth `error` code, for `provider_error` and `access_denied`. */
  readonly providerError: string | undefined;

  constructor(
    reason: AuthorizationCallbackReason,
    message: string,
    options: { hint?: string; cause?: unknown; status?: number; providerError?: string } = {},
  ) {
    super(message, {
      code: ErrorCode.AuthorizationCallback,
      ...(options.hint === undefined ? {} : { hint: options.hint }),
      ...(options.cause === undefined ? {} : { cause: options.cause }),
    });
    this.reason = reason;
    this.status = options.status ?? 400;
    this.providerError = options.providerError === undefined ? undefined : redact(options.providerError);
  }
}

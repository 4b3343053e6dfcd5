import type { CacheKey } from './cache-key.js';
import { ErrorCode, KeyfobError, LoginRequiredError, TokenEndpointError } from './errors.js';
import type { Grant, GrantContext } from './grants/grant.js';
import type { Log } from './log.js';
import type { BoundedCache } from './lru.js';
import { quote } from './redact.js';
import type { SharedStore } from './shared-store.js';
import { fromStoredToken, toStoredToken } from './token-response.js';
import type { AccessToken } from './types.js';

/**
 * Marks, in a shared store, a token set whose refresh token was sent without a usable answer, so that
 * other processes do not send it again either (they hold the same set in memory).
 */
export const REFRESH_OUTCOME_UNKNOWN = 'keyfob_refresh_outcome_unknown';

/**
 * How a new token is obtained from the grant, once the caches had none: the refresh-token,
 * login-required and no-replay policy.
 *
 * - A set with a refresh token is renewed with it. When the server *rejects* the refresh token (4xx,
 *   not 429), a grant that can start over (password) logs in again; a per-user grant (authorization
 *   code) first looks in the shared store for a set another process rotated in the meantime, else the
 *   user must log in again (LoginRequiredError).
 * - A refresh whose outcome is unknown (timeout, connection lost, 5xx: the server may have rotated the
 *   token and answered into the void) is never resent with the same refresh token: with rotation and
 *   reuse detection that revokes the whole family (OAuth 2.0 Security BCP 4.14.2). keyfob re-reads the
 *   store (another process may hold the new set) and otherwise reports the error; that refresh token
 *   is then spent for this process, and marked spent in the shared store for the others (a later
 *   renewal logs in again, or asks the user to).
 * - Whatever a grant throws reaches the caller as a KeyfobError (a custom grant's own error becomes its
 *   `cause`).
 */
export interface AcquisitionContext {
  readonly grant: Grant;
  readonly store: SharedStore | undefined;
  /** Refresh tokens whose last use had an unknown outcome (bounded). */
  readonly spentRefreshTokens: BoundedCache<true>;
  readonly log: Log;
  /** Builds the context the grant is called with. */
  grantContext(key: CacheKey): GrantContext;
  /** Normalises a token response (expiry, type, scope). */
  normalise(raw: Record<string, unknown>, requestedAt: number, previousRefreshToken?: string): AccessToken;
  now(): number;
}

/** Whether the server rejected the request itself (so a refresh token was not consumed by it). */
function rejected(e: unknown): e is TokenEndpointError {
  return (
    e instanceof TokenEndpointError &&
    e.status !== undefined &&
    e.status >= 400 &&
    e.status < 500 &&
    e.status !== 429
  );
}

/** Whether the server may have processed the request although keyfob got no answer it can use. */
function outcomeUnknown(e: unknown): boolean {
  if (!(e instanceof TokenEndpointError)) return false;
  if (e.requestSent === false) return false;
  if (e.status !== undefined) return e.status >= 500;
  return e.code === ErrorCode.TokenEndpointTimeout || e.code === ErrorCode.TokenEndpointNetwork;
}

function loginRequired(key: CacheKey, message: string, cause?: unknown): LoginRequiredError {
  return new LoginRequiredError(message, {
    ...(key.subject === undefined ? {} : { subject: key.subject }),
    hint: 'Send the user through the login (authorizationUrl + exchange) again.',
    ...(cause === undefined ? {} : { cause }),
  });
}

/** A grant's own failure as a KeyfobError, with the original as `cause` (its message is redacted). */
export function asKeyfobError(grant: Grant, e: unknown): KeyfobError {
  if (e instanceof KeyfobError) return e;
  const detail = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  return new KeyfobError(`The ${grant.type} grant failed to get a token (${quote(detail, 300)}).`, {
    code: ErrorCode.TokenEndpoint,
    hint:
      grant.type === 'custom'
        ? 'The function given to customGrant() threw or rejected; see error.cause.'
        : 'See error.cause.',
    cause: e,
  });
}

/** Obtains a new token for `key`; `base` is the set to renew (its refresh token), when there is one. */
export async function acquireFromGrant(
  a: AcquisitionContext,
  key: CacheKey,
  base: AccessToken | undefined,
): Promise<AccessToken> {
  const { grant } = a;
  const requestedAt = a.now();
  try {
    if (base?.refreshToken && grant.refresh) {
      const renewed = await renew(a, key, base, base.refreshToken);
      if (renewed !== undefined) return renewed;
    } else if (grant.interactive) {
      throw new LoginRequiredError(`No token set is stored for subject "${key.subject ?? ''}".`, {
        ...(key.subject === undefined ? {} : { subject: key.subject }),
        hint: 'Send the user through the login (authorizationUrl + exchange) first.',
      });
    }
    return a.normalise(await grant.fetchToken(a.grantContext(key)), requestedAt);
  } catch (e) {
    throw asKeyfobError(grant, e);
  }
}

/** Renews with the refresh token; `undefined` means "log in again with the grant" (password). */
async function renew(
  a: AcquisitionContext,
  key: CacheKey,
  base: AccessToken,
  refreshToken: string,
): Promise<AccessToken | undefined> {
  const { grant } = a;
  if (a.spentRefreshTokens.peek(refreshToken) || base.raw[REFRESH_OUTCOME_UNKNOWN] === true) {
    // Its last use had an unknown outcome: only a set another process stored may be used.
    const winner = await recoverFromStore(a, key, refreshToken);
    if (winner) return winner;
    if (grant.interactive) {
      throw loginRequired(
        key,
        `The token set of subject "${key.subject ?? ''}" cannot be renewed: the last refresh got no answer and its refresh token may have been rotated, so keyfob does not resend it.`,
      );
    }
    a.log('info', `the last refresh got no answer; requesting a new token with the ${grant.type} grant`);
    return undefined;
  }
  const requestedAt = a.now();
  try {
    const raw = await grant.refresh!(a.grantContext(key), refreshToken);
    return a.normalise(raw, requestedAt, refreshToken);
  } catch (e) {
    if (outcomeUnknown(e)) {
      a.spentRefreshTokens.set(refreshToken, true);
      const winner = await recoverFromStore(a, key, refreshToken);
      if (winner) return winner;
      if (a.store) {
        // Still the set we sent (we hold the lock when the store has one): mark it for the others.
        const marked = fromStoredToken({
          ...toStoredToken(base),
          raw: { ...base.raw, [REFRESH_OUTCOME_UNKNOWN]: true },
        });
        if (marked) await a.store.set(key.key, marked);
      }
      throw e;
    }
    if (!rejected(e)) throw e;
    if (grant.interactive) {
      const winner = await recoverFromStore(a, key, refreshToken);
      if (winner) return winner;
      // Compare-and-delete: never drop a set another process just stored.
      await a.store?.delete(key.key, base.accessToken);
      throw loginRequired(
        key,
        `The token set of subject "${key.subject ?? ''}" can no longer be refreshed (${e.error ?? e.status}).`,
        e,
      );
    }
    a.log(
      'info',
      `refresh token rejected (${e.status}); requesting a new token with the ${grant.type} grant`,
    );
    return undefined;
  }
}

/** Another process may have renewed (and rotated) the set: use its set, or renew with its refresh token. */
async function recoverFromStore(
  a: AcquisitionContext,
  key: CacheKey,
  spent: string,
): Promise<AccessToken | undefined> {
  if (!a.store) return undefined;
  const winner = await a.store.get(key.key);
  if (!winner?.refreshToken || winner.refreshToken === spent) return undefined;
  if (winner.expiresAt === undefined || winner.expiresAt > a.now()) return winner;
  return acquireFromGrant(a, key, winner);
}

import { TokenResponseError } from './errors.js';
import { quote, REDACTED, redact, secretsOf } from './redact.js';
import type { AccessToken, StoredToken } from './types.js';

export interface NormaliseOptions {
  /** When the request was sent, epoch ms: `expires_in` counts from there (conservative). */
  requestedAt: number;
  now: number;
  defaultLifetimeMs: number;
  maxLifetimeMs: number;
  tokenUrl?: string;
  /** Refresh token to keep when a refresh response does not rotate it (RFC 6749 6). */
  previousRefreshToken?: string;
  warn?: (message: string) => void;
  /**
   * Values the request carried (client secret, password, ...): never quoted in an error. A body returned
   * by keyfob's token endpoint client carries its request's secrets already (`attachSecrets`).
   */
  secrets?: readonly (string | undefined)[];
  /**
   * `'DPoP'` when the request carried a DPoP proof (RFC 9449 5): a Bearer answer is then an error.
   * `'any'`: either is taken as answered (a custom grant of a DPoP manager). Defaults to `'Bearer'`.
   */
  expectedTokenType?: 'Bearer' | 'DPoP' | 'any';
}

/** `'DPoP'` for a DPoP-bound token (RFC 9449 5), otherwise `'Bearer'`. */
function tokenTypeOf(value: unknown): 'Bearer' | 'DPoP' {
  return typeof value === 'string' && value.toLowerCase() === 'dpop' ? 'DPoP' : 'Bearer';
}

// C0 controls and DEL: never part of a token (RFC 6750 2.1 b64token) or a token type.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f]/;

const SECRET_FIELDS = new Set(['access_token', 'refresh_token', 'id_token', 'accessToken', 'refreshToken']);

/** Builds an AccessToken whose printed forms (`JSON.stringify`, `util.inspect`) hide the token values. */
export function createAccessToken(data: StoredToken): AccessToken {
  const token: AccessToken = {
    accessToken: data.accessToken,
    tokenType: tokenTypeOf(data.tokenType),
    ...(data.expiresAt === undefined ? {} : { expiresAt: data.expiresAt }),
    ...(data.obtainedAt === undefined ? {} : { obtainedAt: data.obtainedAt }),
    ...(data.scope === undefined ? {} : { scope: data.scope }),
    ...(data.refreshToken === undefined ? {} : { refreshToken: data.refreshToken }),
    raw: data.raw ?? {},
  };
  Object.defineProperty(token, 'toJSON', { value: () => printable(token), enumerable: false });
  Object.defineProperty(token, Symbol.for('nodejs.util.inspect.custom'), {
    value: () => printable(token),
    enumerable: false,
  });
  return Object.freeze(token);
}

function printable(token: AccessToken): Record<string, unknown> {
  const raw: Record<string, unknown> = {};
  // A server may echo what the request carried (a client secret, a password) next to the token.
  const secrets = secretsOf(token.raw);
  for (const [k, v] of Object.entries(token.raw)) {
    raw[k] = SECRET_FIELDS.has(k) ? REDACTED : typeof v === 'string' ? redact(v, secrets) : v;
  }
  return {
    accessToken: REDACTED,
    tokenType: token.tokenType,
    expiresAt: token.expiresAt === undefined ? undefined : new Date(token.expiresAt).toISOString(),
    scope: token.scope,
    refreshToken: token.refreshToken === undefined ? undefined : REDACTED,
    raw,
  };
}

/** Plain data (with the real values) for a store to serialise. */
export function toStoredToken(token: AccessToken): StoredToken {
  return {
    accessToken: token.accessToken,
    tokenType: token.tokenType,
    ...(token.expiresAt === undefined ? {} : { expiresAt: token.expiresAt }),
    ...(token.obtainedAt === undefined ? {} : { obtainedAt: token.obtainedAt }),
    ...(token.scope === undefined ? {} : { scope: token.scope }),
    ...(token.refreshToken === undefined ? {} : { refreshToken: token.refreshToken }),
    raw: { ...token.raw },
  };
}

/** Rebuilds an AccessToken from {@link toStoredToken} output (validated: a corrupt entry is ignored). */
export function fromStoredToken(data: unknown): AccessToken | undefined {
  if (!data || typeof data !== 'object') return undefined;
  const d = data as Record<string, unknown>;
  if (typeof d.accessToken !== 'string' || d.accessToken === '' || CONTROL.test(d.accessToken))
    return undefined;
  return createAccessToken({
    accessToken: d.accessToken,
    tokenType: tokenTypeOf(d.tokenType),
    ...(typeof d.expiresAt === 'number' ? { expiresAt: d.expiresAt } : {}),
    ...(typeof d.obtainedAt === 'number' ? { obtainedAt: d.obtainedAt } : {}),
    ...(typeof d.scope === 'string' ? { scope: d.scope } : {}),
    ...(typeof d.refreshToken === 'string' ? { refreshToken: d.refreshToken } : {}),
    raw: d.raw && typeof d.raw === 'object' ? (d.raw as Record<string, unknown>) : {},
  });
}

/** Reads the `exp` claim of a JWT without verifying it (we only use it to schedule a refresh). */
export function jwtExpiry(token: string): number | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts[1]) return undefined;
  try {
    const payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof payload.exp === 'number' && Number.isFinite(payload.exp) ? payload.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Everything quoted from the response (field names, token_type, expiry values, an error) is
 * redacted with the request's secrets, not only with the token-looking patterns the error
 * constructor catches.
 */
function failWith(
  secrets: readonly (string | undefined)[] | undefined,
  message: string,
  hint: string,
  tokenUrl: string | undefined,
): never {
  throw new TokenResponseError(redact(message, secrets), { hint, ...(tokenUrl ? { tokenUrl } : {}) });
}

/**
 * Turns any provider's token response into an {@link AccessToken}:
 * - `expires_in` as a number or numeric string (RFC 6749 5.1), counted from when the request was sent;
 * - absolute `expiration` / `expires_at` / `expires_on` (AIRisk answers an ISO datetime and no `expires_in`);
 * - else the JWT `exp` claim; else `defaultLifetimeMs` (never "refetch on every call", never "forever").
 */
export function normaliseTokenResponse(body: unknown, opts: NormaliseOptions): AccessToken {
  const where = opts.tokenUrl;
  // Annotated, so that TypeScript knows a call never returns (control-flow narrowing).
  const secrets =
    body && typeof body === 'object' ? [...(opts.secrets ?? []), ...secretsOf(body)] : opts.secrets;
  const fail: (message: string, hint: string, tokenUrl: string | undefined) => never = (m, h, u) =>
    failWith(secrets, m, h, u);
  if (!body || typeof body !== 'object' || Array.isArray(body)) {
    fail(
      'The token endpoint answered, but not with a JSON object.',
      'Check that tokenUrl points at the token endpoint itself.',
      where,
    );
  }
  const raw = body as Record<string, unknown>;
  const accessToken = raw.access_token;
  if ((accessToken === undefined || accessToken === null) && typeof raw.error === 'string') {
    const description =
      typeof raw.error_description === 'string' ? `: ${quote(raw.error_description, 200, secrets)}` : '';
    fail(
      `The token endpoint answered 2xx with an OAuth error instead of a token (${quote(raw.error, 60, secrets)}${description}).`,
      'Read the error: the provider rejected the request but did not say so in the HTTP status.',
      where,
    );
  }
  if (
    accessToken !== undefined &&
    accessToken !== null &&
    (typeof accessToken !== 'string' || accessToken.trim() === '')
  ) {
    fail(
      typeof accessToken === 'string'
        ? 'The token response has an empty access_token.'
        : `The token response's access_token is a ${Array.isArray(accessToken) ? 'array' : typeof accessToken}, not a string.`,
      'The provider answered a malformed token response (RFC 6749 5.1: access_token is a string).',
      where,
    );
  }
  if (typeof accessToken !== 'string') {
    const fields =
      Object.keys(raw)
        .slice(0, 10)
        .map((k) => quote(k, 40, secrets))
        .join(', ') || 'none';
    fail(
      `The token response has no access_token (fields present: ${fields}).`,
      'Check the token URL and grant type; some providers answer 200 with an error object.',
      where,
    );
  }
  // A control character would let the value split a header (CR/LF) or be cut short (NUL) when it
  // is sent as `Authorization: Bearer <token>`: refuse it here, before anything is cached.
  if (CONTROL.test(accessToken)) {
    fail(
      'The access_token contains a control character (CR, LF, NUL, ...).',
      'A token must be printable (RFC 6750 2.1 b64token); the response is malformed or was tampered with.',
      where,
    );
  }
  const rawType = raw.token_type;
  if (typeof rawType === 'string' && CONTROL.test(rawType)) {
    fail(
      'The token_type contains a control character (CR, LF, NUL, ...).',
      'The response is malformed or was tampered with.',
      where,
    );
  }
  const expected = opts.expectedTokenType ?? 'Bearer';
  let tokenType: 'Bearer' | 'DPoP' = 'Bearer';
  if (rawType !== undefined && rawType !== null && typeof rawType === 'string' && rawType !== '') {
    const t = rawType.toLowerCase();
    if (t === 'dpop' && expected !== 'Bearer') tokenType = 'DPoP';
    else if (t === 'dpop') {
      fail(
        'The token endpoint issued a DPoP-bound token, but this manager sends no DPoP proofs.',
        'Set dpop: true on the TokenManager (RFC 9449), or have the provider issue Bearer tokens to this client.',
        where,
      );
    } else if (t === 'n_a' && typeof raw.issued_token_type === 'string') {
      // RFC 8693 2.2.1: a token exchange that issued something other than an access token (an ID
      // token, a SAML assertion: `requestedTokenType`) says N_A. Handed out as it is, by getToken().
    } else if (t !== 'bearer') {
      fail(
        `The token endpoint issued a "${quote(rawType, 20, secrets)}" token; keyfob sends Bearer and DPoP tokens only.`,
        'Proof-of-possession tokens other than DPoP (MAC, ...) are not supported.',
        where,
      );
    }
  }
  if (expected === 'DPoP' && tokenType !== 'DPoP') {
    // RFC 9449 7.1: a server that does not support DPoP ignores the proof and issues a Bearer token.
    // Sending it as a DPoP token would fail at every API, and as Bearer would silently drop the binding.
    fail(
      typeof rawType === 'string' && rawType !== ''
        ? 'The token endpoint answered a DPoP request with a Bearer token: it did not bind the token to the DPoP key.'
        : 'The token endpoint answered a DPoP request with a token without token_type (RFC 9449 5 requires token_type DPoP for a bound token): it did not bind the token to the DPoP key.',
      'Enable DPoP for this client at the provider (check dpop_signing_alg_values_supported in its metadata), or turn dpop off.',
      where,
    );
  }

  let expiresAt: number | undefined;
  const expiresIn = raw.expires_in;
  if (expiresIn !== undefined && expiresIn !== null && expiresIn !== '') {
    const seconds = typeof expiresIn === 'number' ? expiresIn : Number(String(expiresIn).trim());
    if (typeof expiresIn !== 'number' && typeof expiresIn !== 'string') {
      fail(`expires_in has type ${typeof expiresIn}; expected seconds.`, 'The response is malformed.', where);
    }
    if (!Number.isFinite(seconds) && seconds !== Number.POSITIVE_INFINITY) {
      fail(
        `expires_in is not a number (${JSON.stringify(quote(String(expiresIn), 30, secrets))}).`,
        'The response is malformed.',
        where,
      );
    }
    if (seconds <= 0) {
      fail(
        `expires_in is ${seconds}: the token is already expired.`,
        'A token endpoint must answer a positive lifetime in seconds (RFC 6749 5.1).',
        where,
      );
    }
    expiresAt = opts.requestedAt + Math.min(seconds * 1000, opts.maxLifetimeMs);
    if (seconds * 1000 > opts.maxLifetimeMs) {
      opts.warn?.(
        `keyfob: expires_in ${seconds}s exceeds maxLifetimeMs; the token will be renewed after ${Math.round(opts.maxLifetimeMs / 1000)}s.`,
      );
    }
  } else {
    const absolute = raw.expiration ?? raw.expires_at ?? raw.expires_on ?? raw.expiresAt;
    if (absolute !== undefined && absolute !== null && absolute !== '') {
      const at = parseInstant(absolute);
      if (at === undefined) {
        fail(
          `The token expiry ${JSON.stringify(quote(String(absolute), 40, secrets))} is not a date.`,
          'The response is malformed.',
          where,
        );
      }
      if (at <= opts.now) {
        fail(
          `The token endpoint issued a token that expired at ${new Date(at).toISOString()}, before it arrived.`,
          "Check the clocks: the server's and this machine's must agree (NTP).",
          where,
        );
      }
      expiresAt = Math.min(at, opts.now + opts.maxLifetimeMs);
    } else {
      const exp = jwtExpiry(accessToken);
      if (exp !== undefined && exp > opts.now) {
        expiresAt = Math.min(exp, opts.now + opts.maxLifetimeMs);
      } else {
        expiresAt = opts.requestedAt + opts.defaultLifetimeMs;
        opts.warn?.(
          `keyfob: the token response has no expires_in or expiration; assuming ${Math.round(opts.defaultLifetimeMs / 1000)}s (defaultLifetimeMs).`,
        );
      }
    }
  }

  const scope =
    typeof raw.scope === 'string' ? raw.scope : Array.isArray(raw.scope) ? raw.scope.join(' ') : undefined;
  const refreshToken =
    typeof raw.refresh_token === 'string' && raw.refresh_token !== ''
      ? raw.refresh_token
      : opts.previousRefreshToken;
  return createAccessToken({
    accessToken,
    tokenType,
    expiresAt,
    obtainedAt: opts.requestedAt,
    ...(scope === undefined ? {} : { scope }),
    ...(refreshToken === undefined ? {} : { refreshToken }),
    raw,
  });
}

/** ISO datetime, RFC 1123 date, or epoch seconds / ms. */
function parseInstant(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) return value < 1e12 ? value * 1000 : value;
  if (typeof value !== 'string') return undefined;
  const s = value.trim();
  if (/^\d+(\.\d+)?$/.test(s)) return parseInstant(Number(s));
  // An ISO datetime without a zone is UTC for AIRisk ("The UTC-formatted datetime").
  const iso = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(s) ? `${s}Z` : s;
  // Only an ISO 8601 date(-time) or an HTTP date (RFC 9110 5.6.7): Date.parse alone takes nearly
  // anything with a number in it ("abc-5521" is the year 5521), which would keep a token forever.
  if (!/^\d{4}-\d{2}-\d{2}([T ]|$)/.test(s) && !/^(Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*, /.test(s)) {
    return undefined;
  }
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? undefined : ms;
}

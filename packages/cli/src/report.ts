import { type AccessToken, fingerprint } from '@keyfob/core';

/** JWT claims worth showing; others are listed by name only. */
const SHOWN_CLAIMS = ['iss', 'sub', 'aud', 'azp', 'client_id', 'scope', 'scp', 'roles', 'iat', 'nbf', 'exp'];

export interface TokenReport {
  tokenType: string;
  /** Seconds from now until expiry, when known. */
  lifetimeSeconds: number | undefined;
  expiresAt: string | undefined;
  scope: string | undefined;
  /** Requested scopes the server did not grant (when it said what it granted). */
  missingScopes: string[];
  /** Non-reversible fingerprint, to tell tokens apart. */
  fingerprint: string;
  /** Claims of a JWT access token (unverified, for reading only); undefined when the token is opaque. */
  jwt: { claims: Record<string, unknown>; otherClaims: string[] } | undefined;
  /** Names of the fields of the token response (never their values). */
  responseFields: string[];
}

function decodeJwtPayload(token: string): Record<string, unknown> | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const payload: unknown = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
    return payload && typeof payload === 'object' && !Array.isArray(payload)
      ? (payload as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

export function tokenReport(
  token: AccessToken,
  requestedScope: string | undefined,
  now: number,
): TokenReport {
  const payload = decodeJwtPayload(token.accessToken);
  const claims: Record<string, unknown> = {};
  for (const name of SHOWN_CLAIMS) if (payload?.[name] !== undefined) claims[name] = payload[name];
  const granted = token.scope?.split(' ').filter(Boolean);
  return {
    tokenType: token.tokenType,
    lifetimeSeconds: token.expiresAt === undefined ? undefined : Math.round((token.expiresAt - now) / 1000),
    expiresAt: token.expiresAt === undefined ? undefined : new Date(token.expiresAt).toISOString(),
    scope: token.scope,
    missingScopes:
      granted === undefined
        ? []
        : (requestedScope?.split(' ').filter((s) => s && !granted.includes(s)) ?? []),
    fingerprint: fingerprint(token.accessToken),
    jwt: payload
      ? { claims, otherClaims: Object.keys(payload).filter((k) => !SHOWN_CLAIMS.includes(k)) }
      : undefined,
    responseFields: Object.keys(token.raw),
  };
}

export function formatDuration(seconds: number): string {
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172_800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86_400)} days`;
}

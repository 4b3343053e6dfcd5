import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { TokenResponseError } from '../src/errors.js';
import { REDACTED } from '../src/redact.js';
import {
  fromStoredToken,
  jwtExpiry,
  type NormaliseOptions,
  normaliseTokenResponse,
  toStoredToken,
} from '../src/token-response.js';

const T0 = Date.parse('2025-01-01T00:00:00Z');
const base: NormaliseOptions = {
  requestedAt: T0,
  now: T0 + 200,
  defaultLifetimeMs: 300_000,
  maxLifetimeMs: 366 * 24 * 3600_000,
};
const norm = (body: unknown, extra: Partial<NormaliseOptions> = {}) =>
  normaliseTokenResponse(body, { ...base, ...extra });
const jwt = (claims: Record<string, unknown>) =>
  `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.sig`;

function refused(body: unknown, extra: Partial<NormaliseOptions> = {}): TokenResponseError {
  try {
    norm(body, extra);
  } catch (e) {
    expect(e).toBeInstanceOf(TokenResponseError);
    return e as TokenResponseError;
  }
  throw new Error('expected a TokenResponseError');
}

describe('normaliseTokenResponse: expiry', () => {
  it('expires_in as a number or a numeric string, counted from when the request was sent', () => {
    expect(norm({ access_token: 'a', expires_in: 3600 }).expiresAt).toBe(T0 + 3_600_000);
    expect(norm({ access_token: 'a', expires_in: ' 3600 ' }).expiresAt).toBe(T0 + 3_600_000);
  });

  it('absolute expiration / expires_at: ISO (UTC without a zone), epoch seconds or ms, HTTP date', () => {
    expect(norm({ access_token: 'a', expiration: '2025-01-01T01:00:00' }).expiresAt).toBe(T0 + 3_600_000);
    expect(norm({ access_token: 'a', expires_at: (T0 + 60_000) / 1000 }).expiresAt).toBe(T0 + 60_000);
    expect(norm({ access_token: 'a', expires_at: T0 + 60_000 }).expiresAt).toBe(T0 + 60_000);
    expect(norm({ access_token: 'a', expiration: 'Wed, 01 Jan 2025 00:10:00 GMT' }).expiresAt).toBe(
      T0 + 600_000,
    );
  });

  it('the JWT exp claim when the response says nothing, else defaultLifetimeMs (with a warning)', () => {
    const exp = (T0 + 120_000) / 1000;
    expect(norm({ access_token: jwt({ exp }) }).expiresAt).toBe(T0 + 120_000);
    const warnings: string[] = [];
    expect(norm({ access_token: 'opaque' }, { warn: (m) => warnings.push(m) }).expiresAt).toBe(T0 + 300_000);
    expect(warnings.join()).toMatch(/defaultLifetimeMs/);
  });

  it('a lifetime beyond maxLifetimeMs is capped, never "forever"', () => {
    const t = norm({ access_token: 'a', expires_in: 1e12 }, { maxLifetimeMs: 86_400_000, warn: () => {} });
    expect(t.expiresAt).toBe(T0 + 86_400_000);
  });

  it('zero, negative, past, non-numeric and non-date expiries are refused', () => {
    expect(refused({ access_token: 'a', expires_in: 0 }).message).toMatch(/already expired/);
    expect(refused({ access_token: 'a', expires_in: -5 }).message).toMatch(/already expired/);
    expect(refused({ access_token: 'a', expires_in: 'soon' }).message).toMatch(/not a number/);
    expect(refused({ access_token: 'a', expires_in: { s: 1 } }).message).toMatch(/type object/);
    expect(refused({ access_token: 'a', expiration: '2024-12-31T00:00:00Z' }).message).toMatch(/clocks/);
    expect(refused({ access_token: 'a', expiration: 'abc-5521' }).message).toMatch(/not a date/);
  });
});

describe('normaliseTokenResponse: token and type', () => {
  it('token_type is case-insensitive; Bearer when absent', () => {
    expect(norm({ access_token: 'a', token_type: 'bearer', expires_in: 60 }).tokenType).toBe('Bearer');
    expect(norm({ access_token: 'a', token_type: 'BEARER', expires_in: 60 }).tokenType).toBe('Bearer');
    expect(norm({ access_token: 'a', expires_in: 60 }).tokenType).toBe('Bearer');
    expect(
      norm({ access_token: 'a', token_type: 'dpop', expires_in: 60 }, { expectedTokenType: 'DPoP' })
        .tokenType,
    ).toBe('DPoP');
  });

  it('a DPoP token without DPoP, a Bearer token to a DPoP request, or a MAC token is refused', () => {
    refused({ access_token: 'a', token_type: 'DPoP', expires_in: 60 });
    refused({ access_token: 'a', token_type: 'Bearer', expires_in: 60 }, { expectedTokenType: 'DPoP' });
    refused({ access_token: 'a', token_type: 'mac', expires_in: 60 });
    // No token_type is a Bearer token (RFC 6749 5.1), and the message says which it was.
    expect(refused({ access_token: 'a', expires_in: 60 }, { expectedTokenType: 'DPoP' }).message).toMatch(
      /a token without token_type/,
    );
    expect(
      refused({ access_token: 'a', token_type: 'Bearer', expires_in: 60 }, { expectedTokenType: 'DPoP' })
        .message,
    ).toMatch(/with a Bearer token/);
  });

  it('no object, no access_token, an empty one, or a 2xx OAuth error is refused', () => {
    refused('text');
    refused([{ access_token: 'a' }]);
    expect(refused({ token_type: 'Bearer', expires_in: 60 }).message).toMatch(/fields present: token_type/);
    expect(refused({ access_token: '  ', expires_in: 60 }).message).toMatch(/an empty access_token/);
    expect(refused({ access_token: 12345, expires_in: 60 }).message).toMatch(
      /access_token is a number, not a string/,
    );
    expect(refused({ error: 'invalid_client' }).message).toMatch(/invalid_client/);
  });

  it.each([
    ['CR LF in access_token', { access_token: 'a\r\nX-Injected: 1', expires_in: 60 }],
    ['NUL in access_token', { access_token: 'a\u0000b', expires_in: 60 }],
    ['LF in token_type', { access_token: 'a', token_type: 'Bearer\nX: y', expires_in: 60 }],
  ])('%s is refused', (_what, body) => {
    expect(refused(body).message).toMatch(/control character/);
  });

  it('scope as a string or an array; a refresh token kept when the answer does not rotate it', () => {
    expect(norm({ access_token: 'a', expires_in: 60, scope: ['read', 'write'] }).scope).toBe('read write');
    expect(norm({ access_token: 'a', expires_in: 60 }, { previousRefreshToken: 'rt-1' }).refreshToken).toBe(
      'rt-1',
    );
    expect(
      norm({ access_token: 'a', expires_in: 60, refresh_token: 'rt-2' }, { previousRefreshToken: 'rt-1' })
        .refreshToken,
    ).toBe('rt-2');
  });

  it('printed forms hide the access and refresh tokens', () => {
    const t = norm({ access_token: 'at-visible-1234', refresh_token: 'rt-visible-5678', expires_in: 60 });
    for (const text of [JSON.stringify(t), inspect(t, { depth: 5 })]) {
      expect(text).not.toContain('at-visible-1234');
      expect(text).not.toContain('rt-visible-5678');
      expect(text).toContain(REDACTED);
    }
  });
});

describe('stored tokens', () => {
  it('round-trip through toStoredToken / fromStoredToken; corrupt entries are ignored', () => {
    const t = norm({ access_token: 'a-1', refresh_token: 'r-1', expires_in: 60, scope: 's' });
    const back = fromStoredToken(JSON.parse(JSON.stringify(toStoredToken(t))));
    expect(back).toMatchObject({
      accessToken: 'a-1',
      refreshToken: 'r-1',
      expiresAt: T0 + 60_000,
      scope: 's',
    });
    for (const bad of [null, 'x', {}, { accessToken: '' }, { accessToken: 'a\r\nb' }, { accessToken: 5 }]) {
      expect(fromStoredToken(bad)).toBeUndefined();
    }
  });

  it('jwtExpiry reads exp without verifying; anything else is undefined', () => {
    expect(jwtExpiry(jwt({ exp: 1_700_000_000 }))).toBe(1_700_000_000_000);
    expect(jwtExpiry(jwt({ exp: 'soon' }))).toBeUndefined();
    expect(jwtExpiry('opaque')).toBeUndefined();
    expect(jwtExpiry('a.!!!.c')).toBeUndefined();
  });
});

import { describe, expect, it } from 'vitest';
import {
  ConfigurationError,
  callerAnswer,
  ErrorCode,
  KeyfobError,
  LoginRequiredError,
  TokenEndpointError,
  TokenResponseError,
} from '../src/index.js';

describe("callerAnswer: the one mapping from a keyfob error to the answer for this service's caller", () => {
  it("a token endpoint that refused (even 401 for our own credentials) is a 502, not the caller's 401", () => {
    const a = callerAnswer(
      new TokenEndpointError('x', { status: 401, error: 'invalid_client', hint: 'Check the client secret.' }),
    );
    expect(a).toMatchObject({ status: 502, upstreamStatus: 401, oauthError: 'invalid_client' });
    expect(a.hint).toContain('client secret');
  });
  it('unreachable, timed out, 5xx and 429 are 503, with Retry-After in seconds', () => {
    expect(callerAnswer(new TokenEndpointError('x', { code: ErrorCode.TokenEndpointNetwork })).status).toBe(
      503,
    );
    expect(callerAnswer(new TokenEndpointError('x', { code: ErrorCode.TokenEndpointTimeout })).status).toBe(
      503,
    );
    expect(callerAnswer(new TokenEndpointError('x', { status: 503 })).status).toBe(503);
    expect(callerAnswer(new TokenEndpointError('x', { status: 429, retryAfterMs: 1_500 }))).toMatchObject({
      status: 503,
      retryAfterSeconds: 2,
    });
  });
  it('a redirect or an unusable response is a 502; store, closed and aborted are 503', () => {
    expect(
      callerAnswer(new TokenEndpointError('x', { code: ErrorCode.TokenEndpointRedirect, status: 302 }))
        .status,
    ).toBe(502);
    expect(callerAnswer(new TokenResponseError('x')).status).toBe(502);
    for (const code of [ErrorCode.Store, ErrorCode.Closed, ErrorCode.Aborted]) {
      expect(callerAnswer(new KeyfobError('x', { code })).status).toBe(503);
    }
  });
  it("login required is the caller's 401; a configuration error is a 500 without its hint", () => {
    expect(callerAnswer(new LoginRequiredError('x', { subject: 'ana' })).status).toBe(401);
    const c = callerAnswer(new ConfigurationError('x', { hint: 'internal detail' }));
    expect(c.status).toBe(500);
    expect(c.hint).toBeUndefined();
  });
});

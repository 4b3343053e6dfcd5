import { describe, expect, it } from 'vitest';
import { parseRetryAfter } from '../src/token-endpoint.js';

const NOW = Date.parse('2025-01-01T00:00:00Z');

describe('parseRetryAfter (RFC 9110 10.2.3)', () => {
  it('delta-seconds, in ms', () => {
    expect(parseRetryAfter('0', NOW)).toBe(0);
    expect(parseRetryAfter('1', NOW)).toBe(1_000);
    expect(parseRetryAfter(' 120 ', NOW)).toBe(120_000);
  });

  it('an HTTP-date in any of its three formats, counted from now', () => {
    expect(parseRetryAfter('Wed, 01 Jan 2025 00:00:30 GMT', NOW)).toBe(30_000);
    expect(parseRetryAfter('Wednesday, 01-Jan-25 00:00:30 GMT', NOW)).toBe(30_000);
    // asctime has no zone (local time): compared with what Date.parse makes of it.
    expect(parseRetryAfter('Wed Jan  1 00:00:30 2025', NOW)).toBe(
      Math.max(0, Date.parse('Wed Jan  1 00:00:30 2025') - NOW),
    );
  });

  it('a date in the past is no wait', () => {
    expect(parseRetryAfter('Tue, 31 Dec 2024 23:59:00 GMT', NOW)).toBe(0);
  });

  it('absent, empty or junk: undefined (the usual backoff applies)', () => {
    for (const v of [null, '', '   ', 'soon', '-1', '1.5', 'abc 5521', '2025-01-01T00:00:30Z', '10s']) {
      expect(parseRetryAfter(v, NOW), JSON.stringify(v)).toBeUndefined();
    }
  });
});

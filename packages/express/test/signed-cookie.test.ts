import { describe, expect, it } from 'vitest';
import { signValue, verifyValue } from '../src/signed-cookie.js';

const SECRETS = ['unit-test-secret-0123456789abcdef0123456789'];
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

describe('signed cookie values', () => {
  const signed = signValue({ v: 1, sub: 'alice' }, SECRETS);
  const dot = signed.lastIndexOf('.');
  const body = signed.slice(0, dot);
  const mac = signed.slice(dot + 1);

  it('verifies its own signature, with any of the rotation secrets', () => {
    expect(verifyValue(signed, SECRETS)).toEqual({ v: 1, sub: 'alice' });
    expect(verifyValue(signed, ['other-secret-0123456789abcdef0123456789', ...SECRETS])).toEqual({
      v: 1,
      sub: 'alice',
    });
    expect(verifyValue(signed, ['other-secret-0123456789abcdef0123456789'])).toBeUndefined();
  });

  it('refuses junk appended to the MAC (a lenient base64 decoder drops it)', () => {
    for (const junk of ['!', '!!', '==', '=', '%', ' ', '*x*', '\u00e9']) {
      expect(verifyValue(`${signed}${junk}`, SECRETS), JSON.stringify(junk)).toBeUndefined();
    }
    expect(verifyValue(`${signed}A`, SECRETS)).toBeUndefined();
  });

  it('refuses a non-canonical encoding of the right MAC (other unused bits in the last character)', () => {
    // 32 bytes = 43 base64url characters; the last one carries 4 data bits and 2 unused ones.
    const last = ALPHABET.indexOf(mac.at(-1)!);
    const variants = [1, 2, 3].map((bits) => `${mac.slice(0, -1)}${ALPHABET[last ^ bits]}`);
    for (const variant of variants) {
      expect(Buffer.from(variant, 'base64url').equals(Buffer.from(mac, 'base64url'))).toBe(true);
      expect(verifyValue(`${body}.${variant}`, SECRETS)).toBeUndefined();
    }
  });

  it('refuses a padded, standard-alphabet or truncated MAC', () => {
    const standard = Buffer.from(mac, 'base64url').toString('base64');
    expect(verifyValue(`${body}.${standard}`, SECRETS)).toBeUndefined();
    expect(verifyValue(`${body}.${mac}=`, SECRETS)).toBeUndefined();
    expect(verifyValue(`${body}.${mac.slice(0, -1)}`, SECRETS)).toBeUndefined();
    expect(verifyValue(`${body}.`, SECRETS)).toBeUndefined();
  });

  it('refuses a body with junk in it (the MAC covers the exact text)', () => {
    expect(verifyValue(`${body}!.${mac}`, SECRETS)).toBeUndefined();
  });
});

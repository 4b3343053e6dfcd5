import { constants, createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { DpopKey, dpopHtu, isUseDpopNonce } from '../src/dpop.js';
import { accessTokenHash, jwkThumbprint } from '../src/jwt.js';

function parts(jws: string) {
  const [h, p, s] = jws.split('.');
  return {
    header: JSON.parse(Buffer.from(h!, 'base64url').toString()),
    payload: JSON.parse(Buffer.from(p!, 'base64url').toString()),
    input: Buffer.from(`${h}.${p}`),
    sig: Buffer.from(s!, 'base64url'),
  };
}

function verifies(jws: string): boolean {
  const { header, input, sig } = parts(jws);
  const key = createPublicKey({ key: header.jwk, format: 'jwk' });
  if (header.alg === 'EdDSA') return verify(null, input, key, sig);
  if (header.alg === 'PS256')
    return verify('sha256', input, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, sig);
  if (header.alg.startsWith('ES'))
    return verify(
      header.alg === 'ES256' ? 'sha256' : 'sha384',
      input,
      { key, dsaEncoding: 'ieee-p1363' },
      sig,
    );
  return verify('sha256', input, key, sig);
}

describe('DPoP proofs (RFC 9449 4.2)', () => {
  it('generates an ES256 key and signs a proof with typ, jwk, jti, htm, htu, iat', () => {
    const key = new DpopKey(true);
    const jws = key.proof({ method: 'post', url: 'https://as.example.com/token?x=1#f' }, 1_700_000_000_000);
    const { header, payload } = parts(jws);
    expect(header).toMatchObject({ typ: 'dpop+jwt', alg: 'ES256', jwk: { kty: 'EC', crv: 'P-256' } });
    expect(header.jwk.d).toBeUndefined();
    expect(payload).toMatchObject({ htm: 'POST', htu: 'https://as.example.com/token', iat: 1_700_000_000 });
    expect(payload.jti).toMatch(/^[0-9a-f-]{36}$/);
    expect(payload.ath).toBeUndefined();
    expect(verifies(jws)).toBe(true);
    expect(jwkThumbprint(header.jwk)).toBe(key.thumbprint);
  });

  it('every proof has a new jti', () => {
    const key = new DpopKey(true);
    const a = parts(key.proof({ method: 'GET', url: 'https://api.example.com/x' })).payload.jti;
    const b = parts(key.proof({ method: 'GET', url: 'https://api.example.com/x' })).payload.jti;
    expect(a).not.toBe(b);
  });

  it('adds ath for an access token and the nonce kept for the origin', () => {
    const key = new DpopKey(true);
    key.rememberNonce('https://api.example.com/a', 'n-1');
    key.rememberNonce('https://api.example.com/b', 'n-2');
    const { payload } = parts(
      key.proof({ method: 'GET', url: 'https://api.example.com/c', accessToken: 'tok' }),
    );
    expect(payload.nonce).toBe('n-2');
    expect(payload.ath).toBe(accessTokenHash('tok'));
    expect(
      parts(key.proof({ method: 'GET', url: 'https://other.example.com/' })).payload.nonce,
    ).toBeUndefined();
  });

  it('keeps a bounded number of nonces and ignores malformed ones', () => {
    const key = new DpopKey(true);
    for (let i = 0; i < 1_000; i++) key.rememberNonce(`https://h${i}.example.com/`, `n${i}`);
    expect(key.nonceFor('https://h0.example.com/')).toBeUndefined();
    expect(key.nonceFor('https://h999.example.com/')).toBe('n999');
    key.rememberNonce('https://h999.example.com/', 'bad\r\nnonce');
    expect(key.nonceFor('https://h999.example.com/')).toBe('n999');
  });

  it.each([
    ['RS256', () => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey, undefined],
    ['PS256', () => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey, 'PS256' as const],
    ['EdDSA', () => generateKeyPairSync('ed25519').privateKey, undefined],
    ['ES384', () => generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey, undefined],
  ])('signs with %s keys given as KeyObject, PEM and JWK', (alg, make, algorithm) => {
    const k = make();
    for (const privateKey of [
      k,
      k.export({ format: 'pem', type: 'pkcs8' }) as string,
      k.export({ format: 'jwk' }),
    ]) {
      const key = new DpopKey({ privateKey, ...(algorithm ? { algorithm } : {}) });
      expect(key.algorithm).toBe(alg);
      expect(verifies(key.proof({ method: 'GET', url: 'https://api.example.com/' }))).toBe(true);
    }
  });

  it('refuses a key that does not fit, without quoting it', () => {
    const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
      format: 'pem',
      type: 'pkcs8',
    }) as string;
    expect(() => new DpopKey({ privateKey: pem, algorithm: 'RS256' })).toThrow(/RS256 does not fit/);
    const broken = `${pem.slice(0, 60)}garbage`;
    try {
      new DpopKey({ privateKey: broken });
      expect.unreachable();
    } catch (e) {
      expect(String((e as Error).message)).not.toContain('garbage');
      expect((e as { code?: string }).code).toBe('KEYFOB_CONFIGURATION');
    }
  });

  it('never prints the private key', () => {
    const k = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const d = (k.export({ format: 'jwk' }) as { d: string }).d;
    const key = new DpopKey({ privateKey: k });
    expect(inspect(key, { depth: 10, showHidden: true })).not.toContain(d);
    expect(JSON.stringify(key)).not.toContain(d);
    expect(JSON.stringify(key.publicJwk)).not.toContain(d);
  });

  it('recognises nonce challenges and strips query and fragment from htu', () => {
    expect(
      isUseDpopNonce('DPoP error="use_dpop_nonce", error_description="Resource server requires nonce"'),
    ).toBe(true);
    expect(isUseDpopNonce('DPoP algs="ES256", error="use_dpop_nonce"')).toBe(true);
    expect(isUseDpopNonce('Bearer error="invalid_token"')).toBe(false);
    expect(isUseDpopNonce(undefined)).toBe(false);
    expect(dpopHtu('https://API.example.com:443/a/b?c=d#e')).toBe('https://api.example.com/a/b');
  });
});

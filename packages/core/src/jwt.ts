import {
  constants,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  sign as cryptoSign,
  type JsonWebKey,
  type KeyObject,
  randomUUID,
} from 'node:crypto';
import { ConfigurationError } from './errors.js';

/**
 * JWS compact signing with node:crypto (RFC 7515), for what keyfob signs itself: client assertions
 * (RFC 7523) and DPoP proofs (RFC 9449). Zero dependencies; only the algorithms those need.
 */

/** Signature algorithms keyfob signs with. */
export type SigningAlgorithm = 'RS256' | 'PS256' | 'ES256' | 'ES384' | 'EdDSA' | 'HS256';

/** A private key as users hold it: a `KeyObject`, a PEM string or a private JWK. */
export type PrivateKeyInput = KeyObject | string | JsonWebKey;

const b64url = (data: Buffer | string) => Buffer.from(data).toString('base64url');

/** Turns a PEM string, a JWK or a KeyObject into a private KeyObject; the message never quotes the key. */
export function toPrivateKey(input: PrivateKeyInput, what: string): KeyObject {
  try {
    if (typeof input === 'string') return createPrivateKey(input);
    if (isKeyObject(input)) {
      if (input.type !== 'private') throw new Error('not a private key');
      return input;
    }
    if (input && typeof input === 'object') return createPrivateKey({ key: input, format: 'jwk' });
  } catch {
    // fall through: the cause could quote key material
  }
  throw new ConfigurationError(
    `${what} is not a usable private key: pass a KeyObject, a PEM string ("-----BEGIN PRIVATE KEY-----...") or a private JWK.`,
  );
}

function isKeyObject(v: unknown): v is KeyObject {
  return typeof v === 'object' && v !== null && typeof (v as KeyObject).asymmetricKeyType !== 'undefined';
}

/** The algorithm a key implies, or the one asked for when the key can sign with it. */
export function algorithmFor(key: KeyObject, requested: string | undefined, what: string): SigningAlgorithm {
  const type = key.asymmetricKeyType;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  const allowed: SigningAlgorithm[] =
    type === 'rsa'
      ? ['RS256', 'PS256']
      : type === 'rsa-pss'
        ? ['PS256']
        : type === 'ec' && curve === 'prime256v1'
          ? ['ES256']
          : type === 'ec' && curve === 'secp384r1'
            ? ['ES384']
            : type === 'ed25519'
              ? ['EdDSA']
              : [];
  if (allowed.length === 0) {
    throw new ConfigurationError(
      `${what}: unsupported key type (${type}${curve ? ` ${curve}` : ''}); use RSA, EC P-256/P-384 or Ed25519.`,
    );
  }
  if (requested === undefined) return allowed[0]!;
  if (!allowed.includes(requested as SigningAlgorithm)) {
    throw new ConfigurationError(
      `${what}: algorithm ${requested} does not fit this ${type} key; use ${allowed.join(' or ')}.`,
    );
  }
  return requested as SigningAlgorithm;
}

/** The public JWK of a private key, with only the members RFC 7638 hashes (no private parts). */
export function publicJwk(key: KeyObject): Record<string, string> {
  const jwk = createPublicKey(key).export({ format: 'jwk' }) as Record<string, string>;
  if (jwk.kty === 'RSA') return { e: jwk.e!, kty: 'RSA', n: jwk.n! };
  if (jwk.kty === 'EC') return { crv: jwk.crv!, kty: 'EC', x: jwk.x!, y: jwk.y! };
  return { crv: jwk.crv!, kty: jwk.kty!, x: jwk.x! };
}

/** RFC 7638 JWK thumbprint (SHA-256, base64url) of a public JWK. */
export function jwkThumbprint(jwk: Record<string, string>): string {
  const members =
    jwk.kty === 'RSA'
      ? { e: jwk.e, kty: jwk.kty, n: jwk.n }
      : jwk.kty === 'EC'
        ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y }
        : { crv: jwk.crv, kty: jwk.kty, x: jwk.x };
  return createHash('sha256').update(JSON.stringify(members)).digest('base64url');
}

/** Signs `header.payload` and returns the compact JWS. `key` is a KeyObject, or the secret for HS256. */
export function signJwt(
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
  key: KeyObject | string,
  alg: SigningAlgorithm,
): string {
  const input = `${b64url(JSON.stringify({ ...header, alg }))}.${b64url(JSON.stringify(payload))}`;
  let sig: Buffer;
  if (alg === 'HS256') {
    if (typeof key !== 'string') throw new ConfigurationError('HS256 needs the client secret.');
    sig = createHmac('sha256', key).update(input).digest();
  } else {
    const k = key as KeyObject;
    if (alg === 'EdDSA') sig = cryptoSign(null, Buffer.from(input), k);
    else if (alg === 'PS256')
      sig = cryptoSign('sha256', Buffer.from(input), {
        key: k,
        padding: constants.RSA_PKCS1_PSS_PADDING,
        saltLength: 32,
      });
    else if (alg === 'ES256' || alg === 'ES384')
      sig = cryptoSign(alg === 'ES256' ? 'sha256' : 'sha384', Buffer.from(input), {
        key: k,
        dsaEncoding: 'ieee-p1363',
      });
    else sig = cryptoSign('sha256', Buffer.from(input), k);
  }
  return `${input}.${sig.toString('base64url')}`;
}

/** A unique JWT id (`jti`). */
export function jwtId(): string {
  return randomUUID();
}

/** base64url SHA-256 of an access token: the DPoP `ath` claim (RFC 9449 4.2). */
export function accessTokenHash(accessToken: string): string {
  return createHash('sha256').update(accessToken).digest('base64url');
}

/** The claims of a JWT, without verifying it (used to read a token's `exp`), or undefined. */
export function decodeJwtClaims(token: string): Record<string, unknown> | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
    return claims && typeof claims === 'object' && !Array.isArray(claims) ? claims : undefined;
  } catch {
    return undefined;
  }
}

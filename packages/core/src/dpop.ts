import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { ConfigurationError } from './errors.js';
import {
  accessTokenHash,
  algorithmFor,
  jwkThumbprint,
  jwtId,
  type PrivateKeyInput,
  publicJwk,
  type SigningAlgorithm,
  signJwt,
  toPrivateKey,
} from './jwt.js';

/**
 * DPoP (RFC 9449): a key pair per TokenManager, a proof JWT with every token request and every
 * request that carries a DPoP-bound token, and the server nonces (RFC 9449 section 8 and 9).
 * A stolen DPoP-bound token is useless without the private key, which never leaves this object.
 */

/** `dpop` option of the TokenManager. */
export interface DpopOptions {
  /**
   * The key proofs are signed with: a `KeyObject`, a PEM string or a private JWK (RSA, EC P-256 /
   * P-384, Ed25519). A fleet sharing a store must share this key: tokens are bound to it. Defaults
   * to an ES256 (P-256) key generated for this manager.
   */
  privateKey?: PrivateKeyInput;
  /** Signature algorithm; must fit the key. Defaults to the key's (`ES256` for a generated key, `RS256` for RSA). */
  algorithm?: 'ES256' | 'ES384' | 'RS256' | 'PS256' | 'EdDSA';
}

/** What a proof is for (RFC 9449 4.2). */
export interface DpopProofInput {
  /** HTTP method of the request (`htm`). */
  method: string;
  /** URL of the request; query and fragment are dropped (`htu`). */
  url: string | URL;
  /** The access token the request carries: adds `ath`. */
  accessToken?: string | undefined;
  /** A server nonce; defaults to the latest one kept for the URL's origin. */
  nonce?: string | undefined;
}

const MAX_NONCES = 256;

/** `htu`: the request URL without query and fragment (RFC 9449 4.2). */
export function dpopHtu(url: string | URL): string {
  const u = typeof url === 'string' ? new URL(url) : url;
  return `${u.protocol}//${u.host}${u.pathname}`;
}

/**
 * Whether a response is a DPoP nonce challenge: a token endpoint's 400 `use_dpop_nonce` body
 * (RFC 9449 8) or a resource server's 401 with `WWW-Authenticate: DPoP error="use_dpop_nonce"` (9).
 */
export function isUseDpopNonce(wwwAuthenticate: string | null | undefined): boolean {
  return (
    typeof wwwAuthenticate === 'string' &&
    /\bDPoP\b[\s\S]*\berror\s*=\s*"?use_dpop_nonce"?/i.test(wwwAuthenticate)
  );
}

/** The key pair of one TokenManager and the nonces servers gave it. */
export class DpopKey {
  readonly algorithm: SigningAlgorithm;
  /** RFC 7638 thumbprint of the public key (`jkt`): part of the cache key, so tokens bound to another key are never used. */
  readonly thumbprint: string;
  readonly #key: KeyObject;
  readonly #jwk: Record<string, string>;
  /** origin -> latest nonce, bounded (insertion order, the oldest dropped). */
  readonly #nonces = new Map<string, string>();

  constructor(options: DpopOptions | true | undefined) {
    const opts = options === true || options === undefined ? {} : options;
    if (typeof opts !== 'object' || opts === null) {
      throw new ConfigurationError('TokenManager: dpop must be true or { privateKey?, algorithm? }.');
    }
    this.#key =
      opts.privateKey === undefined
        ? generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
        : toPrivateKey(opts.privateKey, 'TokenManager: dpop.privateKey');
    this.algorithm = algorithmFor(this.#key, opts.algorithm, 'TokenManager: dpop');
    if (this.algorithm === 'HS256')
      throw new ConfigurationError('TokenManager: DPoP needs an asymmetric key.');
    this.#jwk = publicJwk(this.#key);
    this.thumbprint = jwkThumbprint(this.#jwk);
  }

  /** The public JWK sent in every proof's header. */
  get publicJwk(): Readonly<Record<string, string>> {
    return this.#jwk;
  }

  /** A fresh proof (new `jti`, current `iat`): one signature. */
  proof(input: DpopProofInput, now = Date.now()): string {
    const htu = dpopHtu(input.url);
    const nonce = input.nonce ?? this.nonceFor(input.url);
    const payload: Record<string, unknown> = {
      jti: jwtId(),
      htm: input.method.toUpperCase(),
      htu,
      iat: Math.floor(now / 1000),
    };
    if (nonce !== undefined) payload.nonce = nonce;
    if (input.accessToken !== undefined) payload.ath = accessTokenHash(input.accessToken);
    return signJwt({ typ: 'dpop+jwt', jwk: this.#jwk }, payload, this.#key, this.algorithm);
  }

  /** The latest nonce a server at this URL's origin gave, if any. */
  nonceFor(url: string | URL): string | undefined {
    if (this.#nonces.size === 0) return undefined;
    return this.#nonces.get(originKey(url));
  }

  /** Keeps the `DPoP-Nonce` a server sent (RFC 9449 8.2: the latest one wins). */
  rememberNonce(url: string | URL, nonce: string | null | undefined): void {
    if (typeof nonce !== 'string' || nonce === '' || !/^[\x21\x23-\x5B\x5D-\x7E]+$/.test(nonce)) return;
    const origin = originKey(url);
    this.#nonces.delete(origin);
    if (this.#nonces.size >= MAX_NONCES) this.#nonces.delete(this.#nonces.keys().next().value!);
    this.#nonces.set(origin, nonce);
  }

  toJSON(): Record<string, unknown> {
    return { algorithm: this.algorithm, thumbprint: this.thumbprint };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `DpopKey { algorithm: '${this.algorithm}', thumbprint: '${this.thumbprint}' }`;
  }
}

function originKey(url: string | URL): string {
  return (typeof url === 'string' ? new URL(url) : url).origin;
}

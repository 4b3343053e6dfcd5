import type { KeyObject } from 'node:crypto';
import { ConfigurationError } from './errors.js';
import {
  algorithmFor,
  jwtId,
  type PrivateKeyInput,
  type SigningAlgorithm,
  signJwt,
  toPrivateKey,
} from './jwt.js';

/**
 * How a client proves who it is at the token endpoint.
 * - `'basic'`: HTTP Basic header, id and secret form-urlencoded first (RFC 6749 2.3.1, client_secret_basic).
 * - `'body'`: `client_id` and `client_secret` in the form body (client_secret_post).
 * - `'json'`: the credentials in a JSON body.
 * - `'basic-only'`: a Basic header and no grant body.
 * - `'client_secret_jwt'`: an HS256 assertion signed with `clientSecret` (RFC 7523 2.2, OIDC Core 9).
 * - `'private_key_jwt'`: an assertion signed with `privateKey` (RFC 7523 2.2, OIDC Core 9).
 * - `'tls_client_auth'`: the client certificate of the TLS connection (RFC 8705 2); only `client_id` is sent.
 */
export type ClientAuthMethod =
  | 'basic'
  | 'body'
  | 'json'
  | 'basic-only'
  | 'client_secret_jwt'
  | 'private_key_jwt'
  | 'tls_client_auth';

export const CLIENT_AUTH_METHODS: readonly ClientAuthMethod[] = [
  'basic',
  'body',
  'json',
  'basic-only',
  'client_secret_jwt',
  'private_key_jwt',
  'tls_client_auth',
];

/** Options of the assertion-based methods, accepted by every grant that authenticates a client. */
export interface ClientAssertionOptions {
  /**
   * The key `private_key_jwt` assertions are signed with: a private JWK, a PEM string or a `KeyObject`
   * (RSA, EC P-256 / P-384, Ed25519). Register its public half with the provider. Required for
   * `clientAuth: 'private_key_jwt'`.
   */
  privateKey?: PrivateKeyInput | undefined;
  /** `kid` header of `private_key_jwt` assertions, for providers that hold several keys per client. Defaults to none. */
  keyId?: string | undefined;
  /**
   * Signature algorithm of `private_key_jwt` assertions; must fit the key. Defaults to the key's:
   * `RS256` for RSA, `ES256` for P-256, `ES384` for P-384, `EdDSA` for Ed25519.
   */
  algorithm?: 'RS256' | 'PS256' | 'ES256' | 'ES384' | 'EdDSA' | undefined;
  /**
   * `aud` of client assertions. Defaults to the token endpoint URL (RFC 7523 3); some providers want their
   * issuer identifier instead.
   */
  assertionAudience?: string | undefined;
}

/** `client_assertion_type` of RFC 7523 2.2. */
export const JWT_BEARER_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** Short: an assertion is made for one attempt and sent at once. */
const ASSERTION_LIFETIME_SECONDS = 60;

/**
 * Signs client assertions (RFC 7523 2.2, OIDC Core 9): `iss` = `sub` = client id, `aud` = the token
 * endpoint, a unique `jti`, `iat`, `exp` one minute later. The key is validated when the grant is built
 * and held in a private field: printing this object (or the grant) shows the method and algorithm only.
 */
export class ClientAssertion {
  readonly method: 'client_secret_jwt' | 'private_key_jwt';
  readonly algorithm: SigningAlgorithm;
  readonly #clientId: string;
  readonly #key: KeyObject | string;
  readonly #keyId: string | undefined;
  readonly #audience: string | undefined;

  constructor(
    owner: string,
    method: 'client_secret_jwt' | 'private_key_jwt',
    clientId: string,
    clientSecret: string | undefined,
    options: ClientAssertionOptions,
  ) {
    this.method = method;
    this.#clientId = clientId;
    this.#keyId = options.keyId;
    this.#audience = options.assertionAudience;
    if (method === 'client_secret_jwt') {
      if (!clientSecret) {
        throw new ConfigurationError(
          `${owner}: clientAuth 'client_secret_jwt' needs clientSecret (the HS256 key).`,
        );
      }
      this.#key = clientSecret;
      this.algorithm = 'HS256';
    } else {
      if (options.privateKey === undefined) {
        throw new ConfigurationError(
          `${owner}: clientAuth 'private_key_jwt' needs privateKey (a private JWK, a PEM string or a KeyObject).`,
        );
      }
      const key = toPrivateKey(options.privateKey, `${owner}: privateKey`);
      this.#key = key;
      this.algorithm = algorithmFor(key, options.algorithm, `${owner}: privateKey`);
    }
  }

  /** A new assertion for one attempt at `tokenUrl` (its `jti` is single-use: never reuse it). */
  create(tokenUrl: string, now = Date.now()): string {
    const iat = Math.floor(now / 1000);
    return signJwt(
      { typ: 'JWT', ...(this.#keyId === undefined ? {} : { kid: this.#keyId }) },
      {
        iss: this.#clientId,
        sub: this.#clientId,
        aud: this.#audience ?? tokenUrl,
        jti: jwtId(),
        iat,
        exp: iat + ASSERTION_LIFETIME_SECONDS,
      },
      this.#key,
      this.algorithm,
    );
  }

  /** The form fields of one attempt (RFC 7523 2.2). */
  fields(tokenUrl: string): Record<string, string> {
    return { client_assertion_type: JWT_BEARER_ASSERTION_TYPE, client_assertion: this.create(tokenUrl) };
  }

  toJSON(): Record<string, unknown> {
    return { method: this.method, algorithm: this.algorithm, keyId: this.#keyId };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `ClientAssertion { method: '${this.method}', algorithm: '${this.algorithm}' }`;
  }
}

/**
 * With an issuer and no explicit `clientAuth`, picks the method from the provider's
 * `token_endpoint_auth_methods_supported` (RFC 8414 2): a private key means `private_key_jwt`; a
 * secret means client_secret_basic if listed, else client_secret_post, else client_secret_jwt. No
 * list: the grant's default. A secret and a list with none of those (nor an mTLS method): a
 * `ConfigurationError` (the request is not sent).
 */
export function chooseClientAuth(
  supported: readonly string[] | undefined,
  has: { secret: boolean; privateKey: boolean },
  fallback: ClientAuthMethod,
  owner = 'keyfob',
): ClientAuthMethod {
  if (!supported || supported.length === 0) return fallback;
  if (has.privateKey && supported.includes('private_key_jwt')) return 'private_key_jwt';
  if (has.secret) {
    if (supported.includes('client_secret_basic')) return 'basic';
    if (supported.includes('client_secret_post')) return 'body';
    if (supported.includes('client_secret_jwt')) return 'client_secret_jwt';
  }
  if (supported.includes('tls_client_auth') && !has.secret && !has.privateKey) return 'tls_client_auth';
  // A secret, and the provider accepts no way to present one: say so rather than send it in a way the
  // server has said it refuses (a bare 401). mTLS methods may be what the transport does: left alone.
  if (has.secret && !supported.some((m) => m === 'tls_client_auth' || m === 'self_signed_tls_client_auth')) {
    throw new ConfigurationError(
      `${owner}: the provider's token_endpoint_auth_methods_supported (${supported.join(', ')}) lists no method for a client secret (client_secret_basic, client_secret_post or client_secret_jwt).`,
      {
        hint: 'Pass privateKey to use private_key_jwt, or set clientAuth to the method the provider accepts for this client (it wins over the metadata).',
      },
    );
  }
  return fallback;
}

/**
 * A grant's client authentication: the configured method, or with an issuer and no explicit
 * `clientAuth`, the one {@link chooseClientAuth} picks from the provider's metadata. Holds the
 * assertion signers (built once, the key checked when the grant is built).
 */
export class ClientAuth {
  readonly method: ClientAuthMethod;
  readonly explicit: boolean;
  readonly #owner: string;
  readonly #clientId: string | undefined;
  readonly #clientSecret: string | undefined;
  readonly #options: ClientAssertionOptions;
  readonly #assertions = new Map<ClientAuthMethod, ClientAssertion>();

  constructor(
    owner: string,
    clientId: string | undefined,
    clientSecret: string | undefined,
    clientAuth: ClientAuthMethod | undefined,
    options: ClientAssertionOptions = {},
    fallback: ClientAuthMethod = 'basic',
  ) {
    this.#owner = owner;
    this.#clientId = clientId;
    this.#clientSecret = clientSecret;
    this.#options = options;
    this.method = clientAuth ?? (options.privateKey === undefined ? fallback : 'private_key_jwt');
    this.explicit = clientAuth !== undefined || options.privateKey !== undefined;
    if (!CLIENT_AUTH_METHODS.includes(this.method)) {
      throw new ConfigurationError(
        `${owner}: clientAuth '${String(this.method)}' is not one of ${CLIENT_AUTH_METHODS.join(', ')}.`,
      );
    }
    if (this.method === 'client_secret_jwt' || this.method === 'private_key_jwt')
      this.#assertion(this.method);
    if (this.method === 'json' || this.method === 'basic-only') {
      if (options.privateKey !== undefined) {
        throw new ConfigurationError(`${owner}: privateKey needs clientAuth 'private_key_jwt'.`);
      }
    }
  }

  /** The method for a request, given the provider's `token_endpoint_auth_methods_supported` when known. */
  resolve(supported: readonly string[] | undefined): {
    method: ClientAuthMethod;
    assertion: ClientAssertion | undefined;
  } {
    const method = this.explicit
      ? this.method
      : chooseClientAuth(
          supported,
          { secret: this.#clientSecret !== undefined, privateKey: this.#options.privateKey !== undefined },
          this.method,
          this.#owner,
        );
    const jwt = method === 'client_secret_jwt' || method === 'private_key_jwt';
    return { method, assertion: jwt ? this.#assertion(method) : undefined };
  }

  #assertion(method: 'client_secret_jwt' | 'private_key_jwt'): ClientAssertion {
    let assertion = this.#assertions.get(method);
    if (!assertion) {
      if (!this.#clientId) {
        throw new ConfigurationError(`${this.#owner}: clientId is required for clientAuth '${method}'.`);
      }
      assertion = new ClientAssertion(this.#owner, method, this.#clientId, this.#clientSecret, this.#options);
      this.#assertions.set(method, assertion);
    }
    return assertion;
  }

  toJSON(): Record<string, unknown> {
    return { method: this.method };
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `ClientAuth { method: '${this.method}' }`;
  }
}

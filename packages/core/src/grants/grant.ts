import type { ClientAssertion, ClientAuthMethod } from '../client-auth.js';
import { ConfigurationError, TokenEndpointError } from '../errors.js';
import type { TokenRequest } from '../token-endpoint.js';
import type { GrantHost } from './binding.js';

export type { ClientAuthMethod } from '../client-auth.js';

/** The client authentication of every grant unless told otherwise: client_secret_basic (RFC 6749 2.3.1). */
export const DEFAULT_CLIENT_AUTH = 'basic' satisfies ClientAuthMethod;

/**
 * A token request as grants build it. `replayable: false` marks a request the server may have
 * consumed even when keyfob saw no answer (a refresh token that rotates, a single-use authorization
 * code): the endpoint client never resends it, the manager recovers instead (OAuth Security BCP 4.14).
 */
export type GrantTokenRequest = TokenRequest & { replayable?: boolean };

/** What a grant gets when asked for a token. */
export interface GrantContext {
  readonly tokenUrl: string;
  readonly scope: string | undefined;
  readonly subject: string | undefined;
  readonly extraParams: Readonly<Record<string, string>> | undefined;
  /** The provider's `token_endpoint_auth_methods_supported`, when discovery read it (RFC 8414 2). */
  readonly authMethods?: readonly string[] | undefined;
  /** The token to exchange (RFC 8693), from `getToken({ subjectToken })`. */
  readonly subjectToken?: string | undefined;
  readonly signal: AbortSignal;
  /** The manager's clock (epoch ms): an injected `clock`, else `Date.now`. Compare token lifetimes with it. */
  now(): number;
  /** Sends a request through keyfob's one token endpoint client (timeout, retries, redaction). */
  request(req: TokenRequest): Promise<Record<string, unknown>>;
}

/**
 * A way to obtain tokens. Build one with `clientCredentials`, `passwordGrant`, `authorizationCode`,
 * `staticToken` or `customGrant`; the TokenManager calls it.
 */
export interface Grant {
  /** OAuth grant type (`client_credentials`, ...) or `static` / `custom`. Part of the cache key. */
  readonly type: string;
  readonly clientId?: string | undefined;
  /** Default scope, when the caller asks for none. */
  readonly scope?: string | undefined;
  /** Non-secret values that tell tokens apart (a username, a custom id). Part of the cache key. */
  readonly identity?: string | undefined;
  /** Extra parameters sent with every request. Part of the cache key. */
  readonly extraParams?: Readonly<Record<string, string>> | undefined;
  /** How the client authenticates, for grants that authenticate one (the manager uses mTLS aliases for `'tls_client_auth'`). */
  readonly clientAuth?: ClientAuthMethod | undefined;
  /** Whether the grant POSTs to `tokenUrl` (then the manager requires one). */
  readonly usesTokenUrl: boolean;
  /** Tokens exist only once a user logged in (authorization code): no token set means LoginRequiredError. */
  readonly interactive?: boolean;
  /** Gets a new token response. */
  fetchToken(ctx: GrantContext): Promise<Record<string, unknown>>;
  /** Renews with a refresh token (RFC 6749 6), when the grant supports it. */
  refresh?(ctx: GrantContext, refreshToken: string): Promise<Record<string, unknown>>;
  /**
   * Called once by the TokenManager the grant is given to, with what the grant may ask of it
   * (store an exchanged token set, reach the revocation endpoint). Grants that keep per-manager
   * state throw a ConfigurationError when bound to a second live manager.
   */
  bind?(host: GrantHost): void;
  /** Revokes a token at the provider (RFC 7009), when the grant has a revocation endpoint. */
  revoke?(token: string, tokenTypeHint: 'refresh_token' | 'access_token'): Promise<void>;
}

/** A grant's extra parameters with its RFC 8707 `resource`, which thereby is sent and part of the cache key. */
export function withResource(
  extraParams: Record<string, string> | undefined,
  resource: string | undefined,
): Record<string, string> | undefined {
  return resource === undefined ? extraParams : { ...extraParams, resource };
}

/** Secret fields are held in closures, never as properties: printing a grant shows no secret. */
export function grantInspect(grant: Grant, fields: Record<string, unknown>) {
  const view = { type: grant.type, ...fields };
  Object.defineProperty(grant, 'toJSON', { value: () => view, enumerable: false });
  Object.defineProperty(grant, Symbol.for('nodejs.util.inspect.custom'), {
    value: () => view,
    enumerable: false,
  });
}

/**
 * RFC 6749 2.3.1: client id and secret are form-urlencoded (application/x-www-form-urlencoded,
 * so a space becomes '+') before they are joined with ':' and base64-encoded. Many servers,
 * Risk Cloud's docs among them, use the raw values instead: `basicEncoding: 'raw'`.
 */
export function basicAuthorization(clientId: string, clientSecret: string, encoding: 'form' | 'raw'): string {
  const enc = (v: string) => (encoding === 'raw' ? v : new URLSearchParams({ v }).toString().slice(2));
  return `Basic ${Buffer.from(`${enc(clientId)}:${enc(clientSecret)}`, 'utf8').toString('base64')}`;
}

/** Builds a token request: grant fields + client authentication in the requested style. */
export function buildRequest(input: {
  grantType: string;
  fields: Record<string, string | undefined>;
  clientId: string | undefined;
  clientSecret: string | undefined;
  clientAuth: ClientAuthMethod;
  basicEncoding: 'form' | 'raw';
  extraParams: Readonly<Record<string, string>> | undefined;
  secrets: (string | undefined)[];
  /** `false` for requests that must never be sent twice (refresh_token, authorization_code). Defaults to `true`. */
  replayable?: boolean;
  /** Signs the client assertion of `client_secret_jwt` / `private_key_jwt`, afresh for every attempt. */
  assertion?: ClientAssertion | undefined;
  /** Where the request goes: the default `aud` of client assertions. */
  tokenUrl?: string;
}): GrantTokenRequest {
  const fields: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...input.extraParams, ...input.fields })) {
    if (v !== undefined && v !== '') fields[k] = v;
  }
  const headers: Record<string, string> = {};
  const { clientId, clientSecret, clientAuth } = input;
  if (clientAuth === 'basic' || clientAuth === 'basic-only') {
    if (clientId !== undefined && clientSecret !== undefined) {
      headers.authorization = basicAuthorization(clientId, clientSecret, input.basicEncoding);
    } else if (clientId !== undefined) {
      fields.client_id = clientId;
    }
  } else if (clientAuth === 'body' || clientAuth === 'json') {
    if (clientId !== undefined) fields.client_id = clientId;
    if (clientSecret !== undefined) fields.client_secret = clientSecret;
  } else if (clientId !== undefined) {
    // RFC 7523 2.2 and RFC 8705 2: the client id in the body, the secret never (it signs, or TLS proves).
    fields.client_id = clientId;
  }
  const { assertion, tokenUrl } = input;
  const jwt = clientAuth === 'client_secret_jwt' || clientAuth === 'private_key_jwt';
  if (jwt && (!assertion || tokenUrl === undefined)) {
    throw new ConfigurationError(`${input.grantType}: clientAuth '${clientAuth}' has no assertion key.`);
  }
  const secrets = [...input.secrets, clientSecret, headers.authorization];
  const base: GrantTokenRequest = {
    headers,
    secrets,
    grantType: input.grantType,
    clientAuth,
    ...(input.replayable === false ? { replayable: false } : {}),
    // A new assertion for every attempt: its jti is single-use, so a retry must not resend it.
    ...(jwt ? { attemptFields: () => assertion!.fields(tokenUrl!) } : {}),
  };
  if (clientAuth === 'basic-only') {
    // No body at all: anything but grant_type would be dropped without a word.
    const lost = Object.keys(fields).filter((k) => k !== 'grant_type');
    if (lost.length > 0) {
      throw new ConfigurationError(
        `${input.grantType}: clientAuth 'basic-only' sends no request body, so ${lost.join(', ')} cannot be sent.`,
        {
          hint: "Use clientAuth: 'basic' (the same Basic header, plus a form body), or drop these parameters.",
        },
      );
    }
    return base;
  }
  if (clientAuth === 'json') return { ...base, body: fields };
  return { ...base, body: new URLSearchParams(fields) };
}

/**
 * Chooses the Basic header encoding. RFC 6749 2.3.1 says form-encode id and secret before base64;
 * many servers (anything tested with `curl -u`, Risk Cloud's docs) compare the raw values instead.
 * When the encoding was not set explicitly and the two differ for these credentials (a secret with
 * `+ / = : @ %` or spaces), a 401 / `invalid_client` to one is retried once with the other, and the
 * one that worked is kept for later requests (like golang.org/x/oauth2's auth style auto-detection).
 */
export class BasicEncoding {
  #current: 'form' | 'raw';
  readonly #auto: boolean;

  constructor(
    explicit: 'form' | 'raw' | undefined,
    fallback: 'form' | 'raw',
    clientId: string | undefined,
    clientSecret: string | undefined,
    clientAuth: ClientAuthMethod,
  ) {
    // RFC 7617 2: the first ':' ends the user-id, so a raw id with ':' would be read as another id.
    const rawAmbiguous = clientId?.includes(':') === true;
    if (explicit === 'raw' && rawAmbiguous && (clientAuth === 'basic' || clientAuth === 'basic-only')) {
      throw new ConfigurationError(
        "basicEncoding 'raw' cannot carry a client id that contains ':' (RFC 7617 2: the first ':' ends the id).",
        { hint: "Use basicEncoding: 'form' (RFC 6749 2.3.1 encodes ':' as %3A), or clientAuth: 'body'." },
      );
    }
    this.#current = explicit ?? (rawAmbiguous ? 'form' : fallback);
    this.#auto =
      explicit === undefined &&
      !rawAmbiguous &&
      (clientAuth === 'basic' || clientAuth === 'basic-only') &&
      clientId !== undefined &&
      clientSecret !== undefined &&
      basicAuthorization(clientId, clientSecret, 'form') !==
        basicAuthorization(clientId, clientSecret, 'raw');
  }

  get current(): 'form' | 'raw' {
    return this.#current;
  }

  async send(
    request: (req: TokenRequest) => Promise<Record<string, unknown>>,
    build: (encoding: 'form' | 'raw') => GrantTokenRequest,
  ): Promise<Record<string, unknown>> {
    const first = this.#current;
    const req = build(first);
    try {
      return await request(req);
    } catch (e) {
      const rejectedClient =
        e instanceof TokenEndpointError && (e.status === 401 || e.error === 'invalid_client');
      // Only a request that carried a Basic header has another encoding to try: the method actually
      // used may differ from the configured one (discovery can pick client_secret_post or a JWT).
      const sentBasic = req.clientAuth === 'basic' || req.clientAuth === 'basic-only';
      if (!this.#auto || !rejectedClient || !sentBasic) throw e;
      const other = first === 'form' ? 'raw' : 'form';
      try {
        const answer = await request(build(other));
        this.#current = other;
        return answer;
      } catch (second) {
        const refusedToo =
          second instanceof TokenEndpointError &&
          (second.status === 401 || second.error === 'invalid_client');
        if (!refusedToo) throw e; // the first answer, whose hint explains the encodings
        // Both encodings refused: the first answer, but its hint can no longer suggest the other one.
        const hint = e.hint;
        const base =
          hint && e.message.endsWith(` ${hint}`) ? e.message.slice(0, -hint.length - 1) : e.message;
        throw new TokenEndpointError(base, {
          ...(e.status === undefined ? {} : { status: e.status }),
          ...(e.error === undefined ? {} : { error: e.error }),
          ...(e.errorDescription === undefined ? {} : { errorDescription: e.errorDescription }),
          ...(e.tokenUrl === undefined ? {} : { tokenUrl: e.tokenUrl }),
          attempts: (e.attempts ?? 1) + ((second as TokenEndpointError).attempts ?? 1),
          hint: "keyfob sent the client credentials in an HTTP Basic header both form-urlencoded (RFC 6749 2.3.1) and unencoded, and the server refused both: check the client id and secret themselves, and whether the provider wants them in the body (clientAuth: 'body').",
          cause: second,
        });
      }
    }
  }
}

import { type ClientAssertionOptions, ClientAuth } from '../client-auth.js';
import { ConfigurationError, LoginRequiredError } from '../errors.js';
import { decodeJwtClaims } from '../jwt.js';
import { REDACTED } from '../redact.js';
import {
  BasicEncoding,
  buildRequest,
  type ClientAuthMethod,
  DEFAULT_CLIENT_AUTH,
  type Grant,
  grantInspect,
  withResource,
} from './grant.js';

/** RFC 8693 3: token type identifiers. */
export const TokenType = {
  AccessToken: 'urn:ietf:params:oauth:token-type:access_token',
  RefreshToken: 'urn:ietf:params:oauth:token-type:refresh_token',
  IdToken: 'urn:ietf:params:oauth:token-type:id_token',
  Jwt: 'urn:ietf:params:oauth:token-type:jwt',
  Saml2: 'urn:ietf:params:oauth:token-type:saml2',
} as const;

const GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:token-exchange';

export interface TokenExchangeOptions extends ClientAssertionOptions {
  clientId: string;
  /** Required unless `clientAuth` is `'private_key_jwt'` or `'tls_client_auth'`. */
  clientSecret?: string | undefined;
  /** How the client authenticates (see `clientCredentials`). Defaults to `'basic'`, or the provider's metadata with an `issuer`. */
  clientAuth?: ClientAuthMethod | undefined;
  /** How id and secret are encoded in the Basic header (see `clientCredentials`). Defaults to `'form'`. */
  basicEncoding?: 'form' | 'raw' | undefined;
  /** `subject_token_type` of the tokens given to `getToken({ subjectToken })`. Defaults to an access token (`TokenType.AccessToken`). */
  subjectTokenType?: string | undefined;
  /** `audience`: the logical name of the service the new token is for. Part of the cache key. Defaults to none. */
  audience?: string | undefined;
  /** `resource` (RFC 8707): the URI of the API the new token is for. Part of the cache key. Defaults to none. */
  resource?: string | undefined;
  /** Space-delimited scopes of the new token. Defaults to none (the server decides). */
  scope?: string | undefined;
  /** `requested_token_type`. Defaults to none (the server issues an access token). */
  requestedTokenType?: string | undefined;
  /**
   * `actor_token` (RFC 8693 1.1, delegation): the token of the party acting for the subject, a string or a
   * function called for every request (e.g. this service's own token from another TokenManager). Defaults to none.
   */
  actorToken?: string | (() => string | Promise<string>) | undefined;
  /** `actor_token_type`. Defaults to an access token. */
  actorTokenType?: string | undefined;
  /** Extra parameters sent with every request; part of the cache key. */
  extraParams?: Record<string, string> | undefined;
}

/**
 * The token of an incoming `Authorization: Bearer <token>` header (RFC 6750 2.1), for
 * `getToken({ subjectToken })`: `bearerToken(req.headers.authorization)` in Express, NestJS or node:http.
 * Undefined when the header is missing or not a Bearer one.
 */
export function bearerToken(
  authorization: string | readonly string[] | null | undefined,
): string | undefined {
  const value = Array.isArray(authorization) ? authorization[0] : authorization;
  if (typeof value !== 'string') return undefined;
  const match = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(value);
  return match?.[1];
}

/** Seconds until the token's JWT `exp`, when it is a JWT with one. */
function secondsLeft(token: string, now: number): number | undefined {
  const exp = decodeJwtClaims(token)?.exp;
  return typeof exp === 'number' && Number.isFinite(exp) ? exp - now / 1000 : undefined;
}

/**
 * OAuth 2.0 Token Exchange (RFC 8693): `getToken({ subjectToken })` exchanges the given token (typically the
 * bearer token of an incoming request) for one to call a downstream API on the subject's behalf. The result
 * is cached under a hash of the subject token, never longer than the subject token lives (its JWT `exp`),
 * and concurrent calls with the same subject token share one request.
 *
 * @see https://www.rfc-editor.org/rfc/rfc8693#section-2.1
 */
export function tokenExchange(options: TokenExchangeOptions): Grant {
  const { clientId, clientSecret, scope, audience } = options;
  if (!clientId) throw new ConfigurationError('tokenExchange: clientId is required.');
  const auth = new ClientAuth(
    'tokenExchange',
    clientId,
    clientSecret,
    options.clientAuth,
    options,
    DEFAULT_CLIENT_AUTH,
  );
  const clientAuth = auth.method;
  if (!clientSecret && clientAuth !== 'private_key_jwt' && clientAuth !== 'tls_client_auth') {
    throw new ConfigurationError('tokenExchange: clientSecret is required.');
  }
  const subjectTokenType = options.subjectTokenType ?? TokenType.AccessToken;
  const extraParams = withResource(
    audience === undefined ? options.extraParams : { ...options.extraParams, audience },
    options.resource,
  );
  const encoding = new BasicEncoding(options.basicEncoding, 'form', clientId, clientSecret, clientAuth);
  const grant: Grant = {
    type: 'token_exchange',
    clientId,
    scope,
    extraParams,
    identity: `${clientAuth} ${subjectTokenType} ${options.requestedTokenType ?? ''}`,
    clientAuth,
    usesTokenUrl: true,
    async fetchToken(ctx) {
      const subjectToken = ctx.subjectToken;
      if (!subjectToken) {
        throw new ConfigurationError(
          'tokenExchange: pass the token to exchange: getToken({ subjectToken }).',
        );
      }
      const actor = options.actorToken;
      const actorToken = typeof actor === 'function' ? await actor() : actor;
      const { method, assertion } = auth.resolve(ctx.authMethods);
      // The manager's clock: the cap below is turned into an expiry with it.
      const requestedAt = ctx.now();
      const left = secondsLeft(subjectToken, requestedAt);
      if (left !== undefined && left <= 0) {
        // Whatever the server answered, the result could not be used: it must not outlive this token.
        throw new LoginRequiredError(
          `tokenExchange: the subject token expired ${Math.ceil(-left)} s ago (its JWT exp); it was not exchanged.`,
          { hint: 'The caller must present a fresh token: its own has expired.' },
        );
      }
      const raw = await encoding.send(ctx.request, (basicEncoding) =>
        buildRequest({
          grantType: 'token_exchange',
          fields: {
            grant_type: GRANT_TYPE,
            subject_token: subjectToken,
            subject_token_type: subjectTokenType,
            actor_token: actorToken,
            actor_token_type: actorToken ? (options.actorTokenType ?? TokenType.AccessToken) : undefined,
            requested_token_type: options.requestedTokenType,
            scope: ctx.scope,
            ...ctx.extraParams,
          },
          clientId,
          clientSecret,
          clientAuth: method,
          assertion,
          tokenUrl: ctx.tokenUrl,
          basicEncoding,
          extraParams,
          secrets: [subjectToken, actorToken],
        }),
      );
      // Never cached longer than the subject token lives: a token obtained on a user's behalf must not
      // outlast the user's own.
      if (left !== undefined) {
        const given = Number(raw.expires_in);
        const cap = Number.isFinite(given) && given > 0 ? Math.min(given, left) : left;
        // Whole seconds, rounded down; under one second left, the fraction itself (never rounded up).
        return { ...raw, expires_in: cap >= 1 ? Math.floor(cap) : cap };
      }
      return raw;
    },
  };
  grantInspect(grant, {
    clientId,
    clientAuth,
    scope,
    audience,
    subjectTokenType,
    clientSecret: REDACTED,
  });
  return grant;
}

import { createHash, randomBytes } from 'node:crypto';
import { type ClientAssertionOptions, ClientAuth } from '../client-auth.js';
import { ConfigurationError, LoginRequiredError } from '../errors.js';
import { REDACTED } from '../redact.js';
import { assertSecureUrl } from '../secure-url.js';
import type { AccessToken } from '../types.js';
import { GrantBinding, type GrantHost } from './binding.js';
import {
  BasicEncoding,
  buildRequest,
  type ClientAuthMethod,
  DEFAULT_CLIENT_AUTH,
  type Grant,
  type GrantContext,
  grantInspect,
  withResource,
} from './grant.js';

export interface AuthorizationCodeOptions extends ClientAssertionOptions {
  clientId: string;
  /** Omit for a public client (PKCE only). */
  clientSecret?: string | undefined;
  /** Must match the one registered with the provider and the one used in the authorization request. */
  redirectUri: string;
  /**
   * The provider's authorization endpoint. Defaults to the discovered `authorization_endpoint` when the
   * TokenManager has an `issuer` (read when the manager is built; `await tokens.discover()` to be sure).
   */
  authorizeUrl?: string | undefined;
  /** Default scope of the authorization request. */
  scope?: string | undefined;
  /** PKCE S256 (RFC 7636). Defaults to `true`; turn off only for providers that reject `code_challenge`. */
  pkce?: boolean | undefined;
  /**
   * How client credentials are sent to the token endpoint: `'basic'` (client_secret_basic), `'body'`
   * (client_secret_post), `'json'` (a JSON body), or `'client_secret_jwt'`, `'private_key_jwt'`,
   * `'tls_client_auth'` (see `clientCredentials`). Defaults to `'basic'`.
   */
  clientAuth?: ClientAuthMethod | undefined;
  /** Defaults to `'form'` (RFC 6749 2.3.1). */
  basicEncoding?: 'form' | 'raw' | undefined;
  /**
   * Token revocation endpoint (RFC 7009); when set, `deleteToken({ subject, revoke: true })` revokes.
   * It receives the client secret and tokens, so it must be https unless loopback or the manager's
   * `allowInsecureHttp`. Defaults to the discovered `revocation_endpoint` when the TokenManager has an
   * `issuer`, else none.
   */
  revocationUrl?: string | undefined;
  /** Extra parameters sent to the token endpoint with every exchange and refresh. */
  extraParams?: Record<string, string> | undefined;
  /** Resource indicator (RFC 8707) sent with every exchange and refresh. Part of the cache key. Defaults to none. */
  resource?: string | undefined;
}

export interface AuthorizationUrlOptions {
  /** Defaults to 32 random bytes, base64url. */
  state?: string | undefined;
  scope?: string | undefined;
  /** Extra authorization request parameters: `userid` (AIRisk), `login_hint`, `prompt`, `audience`... */
  extraParams?: Record<string, string> | undefined;
}

export interface AuthorizationRequest {
  /** Where to send the user's browser. */
  url: string;
  /** Keep server-side (or in a signed cookie) and compare on callback. */
  state: string;
  /** PKCE verifier; keep server-side and pass to `exchange`. Undefined when PKCE is off. */
  codeVerifier: string | undefined;
}

export interface ExchangeOptions {
  /**
   * Whose token set this is: the user id you will pass to `getToken({ subject })`. A function derives
   * it from the new token (e.g. the `sub` of an ID token or JWT access token) when nobody is signed in yet.
   */
  subject?: string | ((token: AccessToken) => string) | undefined;
  /** The PKCE verifier `authorizationUrl()` returned for this login. Required when PKCE was used. */
  codeVerifier?: string | undefined;
  /** Extra token request parameters, e.g. `{ userid: 'user_42' }` for AIRisk user-specific tokens. */
  extraParams?: Record<string, string> | undefined;
  /** Scope the set is cached under (pass the same to `getToken`). */
  scope?: string | undefined;
  signal?: AbortSignal | undefined;
}

export interface AuthorizationCodeGrant extends Grant {
  bind(host: GrantHost): void;
  revoke(token: string, tokenTypeHint: 'refresh_token' | 'access_token'): Promise<void>;
  /** Builds the authorization URL with a fresh `state` and PKCE S256 challenge. */
  authorizationUrl(options?: AuthorizationUrlOptions): AuthorizationRequest;
  /** Exchanges a code for a token set and stores it under `subject`. */
  exchange(code: string, options?: ExchangeOptions): Promise<AccessToken>;
  readonly redirectUri: string;
  readonly revocationUrl: string | undefined;
}

const b64url = (buf: Buffer) => buf.toString('base64url');

/**
 * Authorization code grant (RFC 6749 4.1) with PKCE (RFC 7636): per-user token sets, stored per
 * `subject`, renewed with their refresh token. Give it to a TokenManager, then use
 * `authorizationUrl()` for the login redirect and `exchange()` on the callback.
 */
export function authorizationCode(options: AuthorizationCodeOptions): AuthorizationCodeGrant {
  const { clientId, clientSecret, redirectUri, authorizeUrl, scope, revocationUrl } = options;
  const extraParams = withResource(options.extraParams, options.resource);
  for (const [name, value] of Object.entries({ clientId, redirectUri })) {
    if (!value) throw new ConfigurationError(`authorizationCode: ${name} is required.`);
  }
  for (const [name, value] of Object.entries({ redirectUri, authorizeUrl })) {
    if (value === undefined) continue;
    try {
      new URL(value);
    } catch {
      throw new ConfigurationError(`authorizationCode: ${name} is not an absolute URL.`);
    }
  }
  const pkce = options.pkce ?? true;
  if (revocationUrl !== undefined) {
    try {
      new URL(revocationUrl);
    } catch {
      throw new ConfigurationError('authorizationCode: revocationUrl is not an absolute URL.');
    }
  }
  const auth = new ClientAuth(
    'authorizationCode',
    clientId,
    clientSecret,
    options.clientAuth,
    options,
    DEFAULT_CLIENT_AUTH,
  );
  const clientAuth = auth.method;
  const binding = new GrantBinding('authorizationCode');
  const encoding = new BasicEncoding(options.basicEncoding, 'form', clientId, clientSecret, clientAuth);
  const common = { clientId, clientSecret, extraParams } as const;
  const authFor = (ctx: Pick<GrantContext, 'authMethods' | 'tokenUrl'>) => {
    const { method, assertion } = auth.resolve(ctx.authMethods);
    return { clientAuth: method, assertion, tokenUrl: ctx.tokenUrl };
  };

  const grant: AuthorizationCodeGrant = {
    type: 'authorization_code',
    clientId,
    scope,
    extraParams,
    clientAuth,
    usesTokenUrl: true,
    interactive: true,
    redirectUri,
    revocationUrl,
    async fetchToken(ctx) {
      throw new LoginRequiredError(`No token set is stored for subject "${ctx.subject ?? ''}".`, {
        ...(ctx.subject === undefined ? {} : { subject: ctx.subject }),
        hint: 'Send the user through the login (authorizationUrl + exchange) first.',
      });
    },
    refresh(ctx, refreshToken) {
      return encoding.send(ctx.request, (basicEncoding) =>
        buildRequest({
          ...common,
          ...authFor(ctx),
          basicEncoding,
          grantType: 'refresh_token',
          fields: { grant_type: 'refresh_token', refresh_token: refreshToken },
          secrets: [refreshToken],
          replayable: false,
        }),
      );
    },
    authorizationUrl(opts = {}) {
      const state = opts.state ?? b64url(randomBytes(32));
      const endpoint = authorizeUrl ?? binding.host('authorizationUrl()').authorizationEndpoint;
      if (endpoint === undefined) {
        throw new ConfigurationError(
          'authorizationCode: no authorizeUrl, and discovery has not found one (yet).',
          {
            hint: 'Set authorizeUrl, or give the TokenManager an issuer and await tokens.discover() before the first login.',
          },
        );
      }
      const url = new URL(endpoint);
      const params: Record<string, string | undefined> = {
        response_type: 'code',
        client_id: clientId,
        redirect_uri: redirectUri,
        scope: opts.scope ?? scope,
        state,
        // RFC 8707 2.1: the resource goes with the authorization request too, so the grant covers it.
        resource: options.resource,
        ...opts.extraParams,
      };
      let codeVerifier: string | undefined;
      if (pkce) {
        codeVerifier = b64url(randomBytes(32));
        params.code_challenge = b64url(createHash('sha256').update(codeVerifier).digest());
        params.code_challenge_method = 'S256';
      }
      for (const [k, v] of Object.entries(params))
        if (v !== undefined && v !== '') url.searchParams.set(k, v);
      return { url: url.toString(), state, codeVerifier };
    },
    bind(host) {
      if (revocationUrl !== undefined) {
        assertSecureUrl('authorizationCode', 'revocationUrl', revocationUrl, host.allowInsecureHttp);
      }
      binding.bind(host);
    },
    async revoke(token, tokenTypeHint) {
      const host = binding.host('revoke()');
      const url = revocationUrl ?? host.revocationEndpoint;
      if (url === undefined) return;
      await host.post(url, {
        ...buildRequest({
          ...common,
          ...authFor({ authMethods: undefined, tokenUrl: url }),
          basicEncoding: encoding.current,
          extraParams: undefined,
          grantType: 'revocation',
          fields: { token, token_type_hint: tokenTypeHint },
          secrets: [token],
        }),
        acceptEmpty: true,
      });
    },
    async exchange(code, opts = {}) {
      if (!code) throw new ConfigurationError('authorizationCode.exchange: code is required.');
      // Without a verifier the request goes out without code_verifier: a provider that saw a
      // code_challenge rejects it (invalid_grant, with a hint), one that did not (AIRisk's docs) accepts it.
      return binding.host('exchange()').exchange(
        { subject: opts.subject, scope: opts.scope },
        (ctx) =>
          encoding.send(ctx.request, (basicEncoding) =>
            buildRequest({
              ...common,
              ...authFor(ctx),
              basicEncoding,
              grantType: 'authorization_code',
              fields: {
                grant_type: 'authorization_code',
                code,
                redirect_uri: redirectUri,
                code_verifier: opts.codeVerifier,
                ...opts.extraParams,
              },
              secrets: [code, opts.codeVerifier],
              replayable: false,
            }),
          ),
        opts.signal,
      );
    },
  };
  grantInspect(grant, {
    clientId,
    redirectUri,
    authorizeUrl,
    pkce,
    clientSecret: clientSecret ? REDACTED : undefined,
  });
  return grant;
}

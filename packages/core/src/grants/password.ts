import { type ClientAssertionOptions, ClientAuth } from '../client-auth.js';
import { ConfigurationError } from '../errors.js';
import { REDACTED } from '../redact.js';
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

export interface PasswordGrantOptions extends ClientAssertionOptions {
  username: string;
  password: string;
  clientId?: string | undefined;
  clientSecret?: string | undefined;
  scope?: string | undefined;
  /**
   * How client credentials are sent, when there are any: `'basic'` (client_secret_basic; a client id
   * without a secret goes in the body), `'body'` (client_secret_post), `'json'`, or `'client_secret_jwt'`,
   * `'private_key_jwt'`, `'tls_client_auth'` (see `clientCredentials`). Defaults to `'basic'`.
   */
  clientAuth?: ClientAuthMethod | undefined;
  /** Defaults to `'form'` (RFC 6749 2.3.1). */
  basicEncoding?: 'form' | 'raw' | undefined;
  extraParams?: Record<string, string> | undefined;
  /** Resource indicator (RFC 8707): the API the token is for. Part of the cache key. Defaults to none. */
  resource?: string | undefined;
}

/**
 * Resource owner password credentials (RFC 6749 4.3): for platforms whose API token is obtained
 * with a user's login (the token inherits the user's permissions). A refresh token, when issued,
 * is used to renew; if it fails, keyfob logs in again with the password.
 */
export function passwordGrant(options: PasswordGrantOptions): Grant {
  const { username, password, clientId, clientSecret, scope } = options;
  const extraParams = withResource(options.extraParams, options.resource);
  if (!username) throw new ConfigurationError('passwordGrant: username is required.');
  if (!password) throw new ConfigurationError('passwordGrant: password is required.');
  const auth = new ClientAuth(
    'passwordGrant',
    clientId,
    clientSecret,
    options.clientAuth,
    options,
    DEFAULT_CLIENT_AUTH,
  );
  const clientAuth = auth.method;
  const encoding = new BasicEncoding(options.basicEncoding, 'form', clientId, clientSecret, clientAuth);
  const common = { clientId, clientSecret, extraParams } as const;
  const authFor = (ctx: GrantContext) => {
    const { method, assertion } = auth.resolve(ctx.authMethods);
    return { clientAuth: method, assertion, tokenUrl: ctx.tokenUrl };
  };
  const grant: Grant = {
    type: 'password',
    clientId,
    scope,
    extraParams,
    identity: username,
    clientAuth,
    usesTokenUrl: true,
    fetchToken(ctx) {
      return encoding.send(ctx.request, (basicEncoding) =>
        buildRequest({
          ...common,
          ...authFor(ctx),
          basicEncoding,
          grantType: 'password',
          fields: { grant_type: 'password', username, password, scope: ctx.scope, ...ctx.extraParams },
          secrets: [password],
        }),
      );
    },
    refresh(ctx, refreshToken) {
      return encoding.send(ctx.request, (basicEncoding) =>
        buildRequest({
          ...common,
          ...authFor(ctx),
          basicEncoding,
          grantType: 'refresh_token',
          fields: { grant_type: 'refresh_token', refresh_token: refreshToken, scope: ctx.scope },
          secrets: [password, refreshToken],
          replayable: false,
        }),
      );
    },
  };
  grantInspect(grant, { username, clientId, scope, password: REDACTED });
  return grant;
}

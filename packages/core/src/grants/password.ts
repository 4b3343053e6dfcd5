import { ConfigurationError } from '../errors.js';
import { BasicEncoding, buildRequest, DEFAULT_CLIENT_AUTH, type Grant, grantInspect } from './grant.js';

export interface PasswordGrantOptions {
  username: string;
  password: string;
  clientId?: string;
  clientSecret?: string;
  scope?: string;
  /**
   * How client credentials are sent, when there are any: `'basic'` (client_secret_basic; a client id
   * without a secret goes in the body), `'body'` (client_secret_post) or `'json'`. Defaults to `'basic'`.
   */
  clientAuth?: 'basic' | 'body' | 'json';
  /** Defaults to `'form'` (RFC 6749 2.3.1). */
  basicEncoding?: 'form' | 'raw';
  extraParams?: Record<string, string>;
}

/**
 * Resource owner password credentials (RFC 6749 4.3): for platforms whose API token is obtained
 * with a user's login (the token inherits the user's permissions). A refresh token, when issued,
 * is used to renew; if it fails, keyfob logs in again with the password.
 */
export function passwordGrant(options: PasswordGrantOptions): Grant {
  const { username, password, clientId, clientSecret, scope, extraParams } = options;
  if (!username) throw new ConfigurationError('passwordGrant: username is required.');
  if (!password) throw new ConfigurationError('passwordGrant: password is required.');
  const clientAuth = options.clientAuth ?? DEFAULT_CLIENT_AUTH;
  if (!['basic', 'body', 'json'].includes(clientAuth)) {
    throw new ConfigurationError(
      `passwordGrant: clientAuth '${clientAuth}' is not one of basic, body, json.`,
    );
  }
  const encoding = new BasicEncoding(options.basicEncoding, 'form', clientId, clientSecret, clientAuth);
  const common = { clientId, clientSecret, clientAuth, extraParams } as const;
  const grant: Grant = {
    type: 'password',
    clientId,
    scope,
    extraParams,
    identity: username,
    usesTokenUrl: true,
    fetchToken(ctx) {
      return encoding.send(ctx.request, (basicEncoding) =>
        buildRequest({
          ...common,
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
          basicEncoding,
          grantType: 'refresh_token',
          fields: { grant_type: 'refresh_token', refresh_token: refreshToken, scope: ctx.scope },
          secrets: [password, refreshToken],
          replayable: false,
        }),
      );
    },
  };
  grantInspect(grant, { username, clientId, scope, password: '[REDACTED]' });
  return grant;
}

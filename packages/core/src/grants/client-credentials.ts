import { ConfigurationError } from '../errors.js';
import {
  BasicEncoding,
  buildRequest,
  type ClientAuthMethod,
  DEFAULT_CLIENT_AUTH,
  type Grant,
  grantInspect,
} from './grant.js';

export interface ClientCredentialsOptions {
  clientId: string;
  clientSecret: string;
  /** Space-delimited scopes (RFC 6749 3.3). Defaults to none (the server's default scope). */
  scope?: string;
  /**
   * How the credentials are sent. Defaults to `'basic'`.
   * - `'basic'`: HTTP Basic header (client_secret_basic) + `grant_type=client_credentials` form body.
   * - `'body'`: `client_id` and `client_secret` in the form body (client_secret_post).
   * - `'json'`: everything in a JSON body (AIRisk accepts this).
   * - `'basic-only'`: a Basic header and no body at all (Risk Cloud's `/api/v1/account/token`).
   */
  clientAuth?: ClientAuthMethod;
  /**
   * How id and secret are encoded inside the Basic header. `'form'` follows RFC 6749 2.3.1
   * (form-urlencode, then base64); `'raw'` base64-encodes `id:secret` as-is, for servers that do
   * not decode. Defaults to `'form'`, except `'raw'` for `clientAuth: 'basic-only'` (Risk Cloud's docs).
   */
  basicEncoding?: 'form' | 'raw';
  /** Extra parameters (audience, resource, ...) sent with every request; part of the cache key. */
  extraParams?: Record<string, string>;
}

/** OAuth 2 client credentials grant (RFC 6749 4.4): a service's own token. */
export function clientCredentials(options: ClientCredentialsOptions): Grant {
  const { clientId, clientSecret, scope, extraParams } = options;
  if (!clientId) throw new ConfigurationError('clientCredentials: clientId is required.');
  if (!clientSecret) throw new ConfigurationError('clientCredentials: clientSecret is required.');
  const clientAuth = options.clientAuth ?? DEFAULT_CLIENT_AUTH;
  if (!['basic', 'body', 'json', 'basic-only'].includes(clientAuth)) {
    throw new ConfigurationError(
      `clientCredentials: clientAuth '${clientAuth}' is not one of basic, body, json, basic-only.`,
    );
  }
  const encoding = new BasicEncoding(
    options.basicEncoding,
    clientAuth === 'basic-only' ? 'raw' : 'form',
    clientId,
    clientSecret,
    clientAuth,
  );
  const grant: Grant = {
    type: 'client_credentials',
    clientId,
    scope,
    extraParams,
    identity: clientAuth,
    usesTokenUrl: true,
    fetchToken(ctx) {
      return encoding.send(ctx.request, (basicEncoding) =>
        buildRequest({
          grantType: 'client_credentials',
          fields: { grant_type: 'client_credentials', scope: ctx.scope, ...ctx.extraParams },
          clientId,
          clientSecret,
          clientAuth,
          basicEncoding,
          extraParams,
          secrets: [],
        }),
      );
    },
  };
  grantInspect(grant, { clientId, clientAuth, scope, clientSecret: '[REDACTED]' });
  return grant;
}

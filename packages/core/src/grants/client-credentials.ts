import { type ClientAssertionOptions, ClientAuth } from '../client-auth.js';
import { ConfigurationError } from '../errors.js';
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

export interface ClientCredentialsOptions extends ClientAssertionOptions {
  clientId: string;
  /** Required unless `clientAuth` is `'private_key_jwt'` or `'tls_client_auth'`. */
  clientSecret?: string | undefined;
  /** Space-delimited scopes (RFC 6749 3.3). Defaults to none (the server's default scope). */
  scope?: string | undefined;
  /**
   * How the credentials are sent. Defaults to `'basic'`.
   * - `'basic'`: HTTP Basic header (client_secret_basic) + `grant_type=client_credentials` form body.
   * - `'body'`: `client_id` and `client_secret` in the form body (client_secret_post).
   * - `'json'`: everything in a JSON body (AIRisk accepts this).
   * - `'basic-only'`: a Basic header and no body at all (Risk Cloud's `/api/v1/account/token`).
   * - `'client_secret_jwt'` / `'private_key_jwt'`: a client assertion (RFC 7523 2.2), new for every attempt.
   * - `'tls_client_auth'`: the TLS client certificate (RFC 8705); give the TokenManager a `fetch` that presents it.
   * With an `issuer` and no `clientAuth`, the method comes from the provider's metadata.
   */
  clientAuth?: ClientAuthMethod | undefined;
  /**
   * How id and secret are encoded inside the Basic header. `'form'` follows RFC 6749 2.3.1
   * (form-urlencode, then base64); `'raw'` base64-encodes `id:secret` as-is, for servers that do
   * not decode. Defaults to `'form'`, except `'raw'` for `clientAuth: 'basic-only'` (Risk Cloud's docs).
   */
  basicEncoding?: 'form' | 'raw' | undefined;
  /** Extra parameters (audience, ...) sent with every request; part of the cache key. */
  extraParams?: Record<string, string> | undefined;
  /** Resource indicator (RFC 8707): the API the token is for. Part of the cache key. Defaults to none. */
  resource?: string | undefined;
}

/** OAuth 2 client credentials grant (RFC 6749 4.4): a service's own token. */
export function clientCredentials(options: ClientCredentialsOptions): Grant {
  const { clientId, clientSecret, scope } = options;
  const extraParams = withResource(options.extraParams, options.resource);
  if (!clientId) throw new ConfigurationError('clientCredentials: clientId is required.');
  const auth = new ClientAuth(
    'clientCredentials',
    clientId,
    clientSecret,
    options.clientAuth,
    options,
    DEFAULT_CLIENT_AUTH,
  );
  const clientAuth = auth.method;
  if (!clientSecret && clientAuth !== 'private_key_jwt' && clientAuth !== 'tls_client_auth') {
    throw new ConfigurationError('clientCredentials: clientSecret is required.');
  }
  if (clientAuth === 'basic-only' && (scope || (extraParams && Object.keys(extraParams).length > 0))) {
    throw new ConfigurationError(
      "clientCredentials: clientAuth 'basic-only' sends no request body, so scope and extra parameters cannot be sent.",
      { hint: "Use clientAuth: 'basic' (the same Basic header, plus a form body), or drop them." },
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
    clientAuth,
    usesTokenUrl: true,
    fetchToken(ctx) {
      const { method, assertion } = auth.resolve(ctx.authMethods);
      return encoding.send(ctx.request, (basicEncoding) =>
        buildRequest({
          grantType: 'client_credentials',
          fields: { grant_type: 'client_credentials', scope: ctx.scope, ...ctx.extraParams },
          clientId,
          clientSecret,
          clientAuth: method,
          assertion,
          tokenUrl: ctx.tokenUrl,
          basicEncoding,
          extraParams,
          secrets: [],
        }),
      );
    },
  };
  grantInspect(grant, { clientId, clientAuth, scope, clientSecret: REDACTED });
  return grant;
}

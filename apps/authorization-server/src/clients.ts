/** RFC 8693 token exchange. */
export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
/** RFC 7523 section 2.1: a JWT as an authorization grant. */
export const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

/** A client registered with the authorization server. */
export interface ClientConfig {
  clientId: string;
  /** Required for `client_secret_basic`, `client_secret_post` and `client_secret_jwt` (at least 32 bytes for HS256). */
  clientSecret?: string;
  tokenEndpointAuthMethod:
    | 'client_secret_basic'
    | 'client_secret_post'
    | 'client_secret_jwt'
    | 'private_key_jwt'
    | 'tls_client_auth'
    | 'none';
  grantTypes: (
    | 'client_credentials'
    | 'authorization_code'
    | 'refresh_token'
    | typeof TOKEN_EXCHANGE
    | typeof JWT_BEARER
  )[];
  /** The client's public keys (JWK Set), required for `private_key_jwt`. */
  jwks?: { keys: Record<string, unknown>[] };
  /**
   * `tls_client_auth` (RFC 8705 2.1.2): the DNS name the client certificate must carry as a subjectAltName.
   * Requires the server's `mtls` option.
   */
  tlsClientAuthSanDns?: string;
  /** RFC 8705 3: access tokens are bound to the TLS client certificate (`cnf.x5t#S256`). Requires `mtls`. */
  certificateBound?: boolean;
  /**
   * Exact redirect URIs for an `authorization_code` client. When omitted (or empty) the client accepts ANY
   * loopback redirect URI: `http://127.0.0.1:<any port>/<any path>` or `http://localhost:<any port>/<any path>`
   * (no fragment). That is how the samples, which listen on random ports, are served.
   */
  redirectUris?: string[];
  /**
   * RFC 9449 5.2: the client's access tokens are always DPoP-bound (`dpop_bound_access_tokens`): its token
   * requests need a DPoP proof. Requires the server's `dpop` option.
   */
  dpopBound?: boolean;
  /** Space-separated scopes the client may ask for. */
  scope: string;
}

/** Scopes that belong to OpenID Connect itself, not to the protected API. */
export const OIDC_SCOPES: ReadonlySet<string> = new Set(['openid', 'offline_access']);

export const DEFAULT_CLIENTS: ClientConfig[] = [
  {
    clientId: 'service-basic',
    clientSecret: 'service-basic-secret',
    tokenEndpointAuthMethod: 'client_secret_basic',
    grantTypes: ['client_credentials'],
    scope: 'api:read api:write',
  },
  {
    clientId: 'service-post',
    clientSecret: 'service-post-secret',
    tokenEndpointAuthMethod: 'client_secret_post',
    grantTypes: ['client_credentials'],
    scope: 'api:read',
  },
  {
    clientId: 'service-jwt',
    // HS256 needs a key of at least 32 bytes.
    clientSecret: 'service-jwt-secret-0123456789abcdef0123456789',
    tokenEndpointAuthMethod: 'client_secret_jwt',
    grantTypes: ['client_credentials', TOKEN_EXCHANGE, JWT_BEARER],
    scope: 'api:read api:write',
  },
  {
    clientId: 'service-exchange',
    clientSecret: 'service-exchange-secret',
    tokenEndpointAuthMethod: 'client_secret_basic',
    grantTypes: [TOKEN_EXCHANGE, JWT_BEARER],
    scope: 'api:read',
  },
  {
    clientId: 'web-app',
    clientSecret: 'web-app-secret',
    tokenEndpointAuthMethod: 'client_secret_post',
    grantTypes: ['authorization_code', 'refresh_token'],
    // No redirectUris: any http://127.0.0.1:<port>/... or http://localhost:<port>/... is accepted.
    scope: 'openid offline_access api:read',
  },
  {
    clientId: 'public-app',
    tokenEndpointAuthMethod: 'none',
    grantTypes: ['authorization_code', 'refresh_token'],
    // Public client: PKCE (S256) is required. Any loopback redirect URI is accepted.
    scope: 'openid offline_access api:read',
  },
];

/**
 * Clients added with the server's `dpop` option (when `clients` is not given): DPoP-bound tokens for a
 * client-credentials service and for a public authorization-code app (whose refresh tokens are DPoP-bound too,
 * RFC 9449 5).
 */
export const DPOP_CLIENTS: ClientConfig[] = [
  {
    clientId: 'service-dpop',
    clientSecret: 'service-dpop-secret',
    tokenEndpointAuthMethod: 'client_secret_basic',
    grantTypes: ['client_credentials'],
    dpopBound: true,
    scope: 'api:read api:write',
  },
  {
    clientId: 'public-app-dpop',
    tokenEndpointAuthMethod: 'none',
    grantTypes: ['authorization_code', 'refresh_token'],
    dpopBound: true,
    scope: 'openid offline_access api:read',
  },
];

/** True when the client accepts any loopback redirect URI (see {@link ClientConfig.redirectUris}). */
export function acceptsAnyLoopbackRedirect(client: ClientConfig): boolean {
  return client.grantTypes.includes('authorization_code') && !client.redirectUris?.length;
}

/** `http://127.0.0.1:<port>/...` or `http://localhost:<port>/...`, without fragment or credentials. */
export function isLoopbackRedirectUri(value: unknown): boolean {
  if (typeof value !== 'string') return false;
  const url = URL.parse(value);
  if (url?.protocol !== 'http:') return false;
  if (url.hostname !== '127.0.0.1' && url.hostname !== 'localhost') return false;
  if (url.username || url.password || value.includes('#')) return false;
  return true;
}

/** The API scopes of a client: its scope minus the OpenID Connect ones. */
export function apiScopesOf(client: ClientConfig): string[] {
  return client.scope.split(' ').filter((scope) => scope && !OIDC_SCOPES.has(scope));
}

import { createHash, randomBytes, randomUUID, timingSafeEqual, X509Certificate } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { TLSSocket } from 'node:tls';
import {
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  type JWK,
  jwtVerify,
  SignJWT,
} from 'jose';
import type {
  ClientMetadata,
  Configuration,
  InteractionResults,
  default as ProviderType,
} from 'oidc-provider';
import { createApiHandler, type KeyfobTokenClaims } from './api.js';
import {
  acceptsAnyLoopbackRedirect,
  apiScopesOf,
  type ClientConfig,
  DEFAULT_CLIENTS,
  DPOP_CLIENTS,
  isLoopbackRedirectUri,
  JWT_BEARER,
  OIDC_SCOPES,
  TOKEN_EXCHANGE,
} from './clients.js';
import { createDpopApi, type DpopApiControl } from './dpop-api.js';
import { BodyTooLargeError, presentedClientAuth, readBody, sendJson } from './http-util.js';
import { createMemoryAdapterFactory } from './memory-adapter.js';
import { silenceOidcProviderNotices } from './quiet.js';

export interface AuthorizationServerOptions {
  /** Port on 127.0.0.1; default 0 (a random free port). */
  port?: number;
  /**
   * Lifetime of access tokens, client_credentials and authorization_code/refresh_token alike, in whole seconds
   * (at least 1). Default 60.
   */
  accessTokenTtlSeconds?: number;
  /** Lifetime of each refresh token, in whole seconds. Default 3600. */
  refreshTokenTtlSeconds?: number;
  /** Registered clients; default {@link DEFAULT_CLIENTS}. */
  clients?: ClientConfig[];
  /** Artificial latency added to every token endpoint request before it is handled, in ms. Default 0. */
  tokenLatencyMs?: number;
  /**
   * Issuers whose JWTs are accepted as authorization grants (RFC 7523 2.1, grant type
   * `urn:ietf:params:oauth:grant-type:jwt-bearer`): the assertion's `iss` picks the entry, its `jwks` verifies the
   * signature, `aud` must be this server's issuer or token endpoint, `sub` becomes the token's subject.
   * Default none.
   */
  assertionIssuers?: { issuer: string; jwks: { keys: Record<string, unknown>[] } }[];
  /**
   * Mutual TLS (RFC 8705): a second, https listener on 127.0.0.1 that asks for a client certificate and serves
   * the same token endpoint and API. Discovery lists its token endpoint as `mtls_endpoint_aliases.token_endpoint`.
   * `key` / `cert` are the server's (PEM), `ca` the CA (PEM) that signs client certificates. Default off.
   */
  mtls?: { key: string; cert: string; ca: string };
  /**
   * DPoP (RFC 9449): oidc-provider's DPoP feature (nonces available), the {@link DPOP_CLIENTS} (unless `clients`
   * is given) and a DPoP-only protected API at `${issuer}/dpop-api` (see `RunningAuthorizationServer.dpop`).
   * `tokenEndpointNonce`: the token endpoint requires a DPoP nonce (default false); `apiNonce`: the API requires
   * its own (default false). Both can be switched later on `dpop`. Default off.
   */
  dpop?: { tokenEndpointNonce?: boolean; apiNonce?: boolean };
}

export interface AuthorizationServerStats {
  /** Every POST to the token endpoint, counted before it is handled (failures included). */
  tokenRequests: number;
  /** The same, by `grant_type` (`'(none)'` when the request had none). */
  tokenRequestsByGrant: Record<string, number>;
  /** Every request under apiUrl. */
  apiRequests: number;
  /** API answers 401 (missing, invalid, expired or revoked token). */
  api401: number;
  /** API answers 200. */
  api200: number;
  /** API answers 403 (insufficient_scope). Not in the original spec; added. */
  api403: number;
  /** Every POST to the revocation endpoint. */
  revocations: number;
}

export interface RunningAuthorizationServer {
  /** `http://127.0.0.1:PORT` (no trailing slash). */
  issuer: string;
  tokenUrl: string;
  authorizeUrl: string;
  revocationUrl: string;
  jwksUrl: string;
  /**
   * Base URL of the protected API, served by the SAME HTTP server: `${issuer}/api`. It is also the resource
   * indicator and the `aud` of every access token.
   */
  apiUrl: string;
  /**
   * With the `mtls` option: the https listener that asks for a client certificate. `tokenUrl` is the
   * `mtls_endpoint_aliases.token_endpoint` of discovery; `apiUrl` serves the same API (certificate-bound tokens
   * work only there, with the same certificate).
   */
  mtls?: { origin: string; tokenUrl: string; apiUrl: string };
  /** With the `dpop` option: the DPoP-only API and its switches (nonces on and off, replays, requests seen). */
  dpop?: DpopApiControl;
  /** Live counters (the same object all along; resetStats() zeroes it in place). */
  stats: AuthorizationServerStats;
  resetStats(): void;
  /** Every access token issued so far is rejected by the API from now on (401 invalid_token); new ones work. */
  revokeAll(): void;
  /** Stops listening, destroys every socket and forgets all state. */
  close(): Promise<void>;
}

const INTERACTION_PATH = /^\/interaction\/([A-Za-z0-9_-]+)$/;
const FORM_BODY_LIMIT = 56 * 1024;

function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`${name} must be a positive whole number of seconds, got ${value}`);
  }
  return value;
}

function secretsEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

/** The TLS client certificate of a request to the mTLS listener, if one was presented. */
function peerCertificate(req: IncomingMessage): X509Certificate | undefined {
  const socket = req.socket;
  if (!(socket instanceof TLSSocket)) return undefined;
  return socket.getPeerX509Certificate();
}

/** RFC 8705 3.1: `x5t#S256`, the base64url SHA-256 of the DER certificate. */
function certificateThumbprint(cert: X509Certificate): string {
  return createHash('sha256').update(cert.raw).digest('base64url');
}

const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

const SECRET_METHODS = new Set(['client_secret_basic', 'client_secret_post', 'client_secret_jwt']);

function toClientMetadata(client: ClientConfig, mtls: boolean, dpop: boolean): ClientMetadata {
  const code = client.grantTypes.includes('authorization_code');
  const method = client.tokenEndpointAuthMethod;
  if (SECRET_METHODS.has(method) && !client.clientSecret) {
    throw new TypeError(`client ${client.clientId} uses ${method} but has no clientSecret`);
  }
  if (method === 'private_key_jwt' && !client.jwks?.keys.length) {
    throw new TypeError(`client ${client.clientId} uses private_key_jwt but has no jwks`);
  }
  if (method === 'tls_client_auth' && !client.tlsClientAuthSanDns) {
    throw new TypeError(`client ${client.clientId} uses tls_client_auth but has no tlsClientAuthSanDns`);
  }
  if ((method === 'tls_client_auth' || client.certificateBound) && !mtls) {
    throw new TypeError(`client ${client.clientId} needs the server's mtls option`);
  }
  if (client.dpopBound && !dpop)
    throw new TypeError(`client ${client.clientId} needs the server's dpop option`);
  return {
    client_id: client.clientId,
    ...(SECRET_METHODS.has(method) ? { client_secret: client.clientSecret } : {}),
    ...(client.jwks ? { jwks: client.jwks as never } : {}),
    ...(client.tlsClientAuthSanDns ? { tls_client_auth_san_dns: client.tlsClientAuthSanDns } : {}),
    ...(client.certificateBound ? { tls_client_certificate_bound_access_tokens: true } : {}),
    ...(client.dpopBound ? { dpop_bound_access_tokens: true } : {}),
    token_endpoint_auth_method: method,
    grant_types: [...client.grantTypes],
    response_types: code ? ['code'] : [],
    // Clients that accept any loopback redirect get nominal URIs here; redirectUriAllowed() is overridden below.
    redirect_uris: code
      ? client.redirectUris?.length
        ? [...client.redirectUris]
        : ['http://127.0.0.1/callback', 'http://localhost/callback']
      : [],
    scope: client.scope,
  };
}

/** Starts a real OAuth 2 authorization server (oidc-provider) and a protected API on 127.0.0.1. */
export async function startAuthorizationServer(
  options: AuthorizationServerOptions = {},
): Promise<RunningAuthorizationServer> {
  const accessTtl = positiveInteger('accessTokenTtlSeconds', options.accessTokenTtlSeconds ?? 60);
  const refreshTtl = positiveInteger('refreshTokenTtlSeconds', options.refreshTokenTtlSeconds ?? 3600);
  const tokenLatencyMs = Math.max(0, options.tokenLatencyMs ?? 0);
  const clients = options.clients ?? (options.dpop ? [...DEFAULT_CLIENTS, ...DPOP_CLIENTS] : DEFAULT_CLIENTS);
  /** The token endpoint's nonce switch, read by oidc-provider for every proof. */
  const dpopSwitch = { tokenEndpointNonce: options.dpop?.tokenEndpointNonce === true };
  const port = options.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`invalid port ${port}`);
  const seen = new Set<string>();
  for (const client of clients) {
    if (seen.has(client.clientId)) throw new TypeError(`duplicate clientId ${client.clientId}`);
    seen.add(client.clientId);
  }
  const clientsById = new Map(clients.map((client) => [client.clientId, client]));

  silenceOidcProviderNotices();
  // Imported lazily so that its import-time notice ("Unsupported runtime" on Node 20) goes through the filter.
  const { default: Provider, errors } = await import('oidc-provider');

  const stats: AuthorizationServerStats = {
    tokenRequests: 0,
    tokenRequestsByGrant: {},
    apiRequests: 0,
    api401: 0,
    api200: 0,
    api403: 0,
    revocations: 0,
  };

  // --- revocation state -------------------------------------------------------------------------------------
  /** Bumped by revokeAll(); every token carries the epoch it was issued in (claim kf_epoch). */
  let epoch = 0;
  /** jti -> exp of JWT access tokens revoked at the revocation endpoint. */
  const revokedJtis = new Map<string, number>();
  /** Grants revoked by oidc-provider (refresh token revoked, refresh token replayed): their access tokens die too. */
  const revokedGrants = new Set<string>();

  const rejectReason = (claims: KeyfobTokenClaims): string | undefined => {
    if (typeof claims.kf_epoch !== 'number' || claims.kf_epoch < epoch) return 'the access token was revoked';
    if (claims.jti && revokedJtis.has(claims.jti)) return 'the access token was revoked';
    if (claims.kf_grant && revokedGrants.has(claims.kf_grant)) return 'the access token grant was revoked';
    return undefined;
  };

  // --- keys ---------------------------------------------------------------------------------------------------
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const kid = randomUUID();
  const privateJwk: JWK = { ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' };
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  const jwks = createLocalJWKSet({ keys: [publicJwk] });

  // --- HTTP server (listen first: the issuer needs the port) ------------------------------------------------
  let handler: (req: IncomingMessage, res: ServerResponse) => Promise<void> = async (_req, res) => {
    sendJson(res, 503, { error: 'temporarily_unavailable', error_description: 'starting' });
  };
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    handler(req, res).catch((err: unknown) => {
      if (!res.headersSent) {
        sendJson(res, 500, {
          error: 'server_error',
          error_description: String((err as Error)?.message ?? err),
        });
      } else {
        res.destroy();
      }
    });
  };
  const listen = (target: Server, at: number) =>
    new Promise<number>((resolve, reject) => {
      target.once('error', reject);
      target.listen(at, '127.0.0.1', () => {
        target.off('error', reject);
        resolve((target.address() as AddressInfo).port);
      });
    });
  const server = createServer(handle);
  const actualPort = await listen(server, port);
  const issuer = `http://127.0.0.1:${actualPort}`;
  const apiBasePath = '/api';
  const apiUrl = `${issuer}${apiBasePath}`;
  // RFC 8705: the mTLS aliases live on their own https listener, which asks every client for a certificate but
  // lets the handshake finish without one (the token endpoint, not TLS, then answers invalid_client).
  const tlsServer = options.mtls
    ? createHttpsServer(
        {
          key: options.mtls.key,
          cert: options.mtls.cert,
          ca: options.mtls.ca,
          requestCert: true,
          rejectUnauthorized: false,
        },
        handle,
      )
    : undefined;
  const mtlsOrigin = tlsServer ? `https://127.0.0.1:${await listen(tlsServer, 0)}` : undefined;

  // --- oidc-provider ------------------------------------------------------------------------------------------
  const apiScopes = [...new Set(clients.flatMap(apiScopesOf))];
  const allScopes = [
    ...new Set([...OIDC_SCOPES, ...clients.flatMap((client) => client.scope.split(' '))]),
  ].filter(Boolean);
  const adapter = createMemoryAdapterFactory();
  let dpopControl: DpopApiControl | undefined;

  const configuration: Configuration = {
    adapter: adapter.factory,
    jwks: { keys: [privateJwk as never] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    clients: clients.map((client) =>
      toClientMetadata(client, tlsServer !== undefined, options.dpop !== undefined),
    ),
    scopes: allScopes,
    claims: { openid: ['sub'] },
    responseTypes: ['code'],
    allowOmittingSingleRegisteredRedirectUri: false,
    extraParams: ['userid', 'deny'],
    async findAccount(_ctx, sub) {
      return { accountId: sub, claims: () => ({ sub }) };
    },
    interactions: {
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: false },
      // Without the dpop option a stray DPoP header is ignored instead of binding the token.
      dPoP: options.dpop
        ? {
            enabled: true,
            nonceSecret: randomBytes(32),
            requireNonce: () => dpopControl?.tokenEndpointNonce ?? dpopSwitch.tokenEndpointNonce,
          }
        : { enabled: false },
      mTLS: {
        enabled: tlsServer !== undefined,
        tlsClientAuth: true,
        certificateBoundAccessTokens: true,
        getCertificate: (ctx) => peerCertificate(ctx.req)?.toString(),
        certificateAuthorized: (ctx) => ctx.req.socket instanceof TLSSocket && ctx.req.socket.authorized,
        certificateSubjectMatches: (ctx, property, expected) =>
          property === 'tls_client_auth_san_dns' &&
          (peerCertificate(ctx.req)?.subjectAltName ?? '').split(', ').includes(`DNS:${expected}`),
      },
      revocation: {
        enabled: true,
        allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
      },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx, form) => {
          ctx.type = 'html';
          ctx.body = `<!DOCTYPE html><html><body>${form}<button autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Sign out</button></body></html>`;
        },
        postLogoutSuccessSource: async (ctx) => {
          ctx.type = 'html';
          ctx.body = '<!DOCTYPE html><html><body>Signed out.</body></html>';
        },
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => apiUrl,
        // Refreshes and code exchanges without `resource` keep getting JWTs for the API, even with `openid`.
        useGrantedResource: async () => true,
        getResourceServerInfo: async (_ctx, resourceIndicator) => {
          if (resourceIndicator !== apiUrl) {
            throw new errors.InvalidTarget(
              `unknown resource indicator, the only resource server is ${apiUrl}`,
            );
          }
          return {
            scope: apiScopes.join(' '),
            audience: apiUrl,
            accessTokenTTL: accessTtl,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    pkce: {
      // S256 is required for public clients, optional (but verified when sent) for confidential ones.
      required: (_ctx, client) => client.clientAuthMethod === 'none',
    },
    rotateRefreshToken: true,
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    expiresWithSession: async () => false,
    extraTokenClaims: async (_ctx, token) => {
      const user = token.kind === 'AccessToken' && Boolean(token.accountId);
      return {
        kf_epoch: epoch,
        kf_user: user,
        ...(token.kind === 'AccessToken' && token.grantId ? { kf_grant: token.grantId } : {}),
      };
    },
    ttl: {
      AccessToken: () => accessTtl,
      ClientCredentials: () => accessTtl,
      RefreshToken: () => refreshTtl,
      AuthorizationCode: 60,
      IdToken: 3600,
      Interaction: 600,
      Session: 24 * 3600,
      Grant: Math.max(refreshTtl * 10, 14 * 24 * 3600),
    },
    clientAuthMethods: [
      'client_secret_basic',
      'client_secret_jwt',
      'client_secret_post',
      'private_key_jwt',
      'none',
      ...(tlsServer ? (['tls_client_auth'] as const) : []),
    ],
    clientBasedCORS: () => true,
    // keyfob signs proofs with ES256 by default, and with the algorithm of the key a user gives.
    enabledJWA: { dPoPSigningAlgValues: ['ES256', 'ES384', 'RS256', 'PS256', 'EdDSA', 'Ed25519'] },
    ...(mtlsOrigin
      ? { discovery: { mtls_endpoint_aliases: { token_endpoint: `${mtlsOrigin}/token` } } }
      : {}),
    renderError: async (ctx, out) => {
      ctx.type = 'json';
      ctx.body = out;
    },
  };

  let provider: ProviderType;
  try {
    provider = new Provider(issuer, configuration);
  } catch (err) {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    throw err;
  }

  // Clients without registered redirect URIs accept any loopback redirect (the samples listen on random ports).
  const anyLoopback = new Set(clients.filter(acceptsAnyLoopbackRedirect).map((client) => client.clientId));
  const clientProto = provider.Client.prototype;
  const redirectUriAllowed = clientProto.redirectUriAllowed;
  clientProto.redirectUriAllowed = function (this: InstanceType<typeof provider.Client>, value: string) {
    if (anyLoopback.has(this.clientId) && isLoopbackRedirectUri(value)) return true;
    return redirectUriAllowed.call(this, value);
  };
  const postLogoutRedirectUriAllowed = clientProto.postLogoutRedirectUriAllowed;
  clientProto.postLogoutRedirectUriAllowed = function (
    this: InstanceType<typeof provider.Client>,
    value: string,
  ) {
    if (anyLoopback.has(this.clientId) && isLoopbackRedirectUri(value)) return true;
    return postLogoutRedirectUriAllowed.call(this, value);
  };

  // --- RFC 8693 token exchange and RFC 7523 JWT bearer: tokens minted here, in the format the API checks ------
  type TokenContext = Parameters<Parameters<typeof provider.registerGrantType>[1]>[0];
  const { InvalidRequest, InvalidScope, InvalidTarget } = errors;
  // oidc-provider's InvalidGrant hides its detail behind "grant request is invalid"; these say what was wrong.
  const invalidGrant = (description: string) =>
    new errors.CustomOIDCProviderError('invalid_grant', description);

  /** The scope granted: the requested one (each must be the client's), else `fallback` within the client's. */
  function grantedScope(client: ClientConfig, requested: string | undefined, fallback: string[]): string {
    const allowed = new Set(apiScopesOf(client));
    if (requested) {
      const scopes = requested.split(' ').filter(Boolean);
      const unknown = scopes.filter((scope) => !allowed.has(scope));
      if (unknown.length) throw new InvalidScope('requested scope is not allowed', unknown.join(' '));
      return scopes.join(' ');
    }
    return fallback.filter((scope) => allowed.has(scope)).join(' ');
  }

  async function mintAccessToken(
    ctx: TokenContext,
    claims: { sub: string; scope: string; user: boolean; exp?: number; act?: { sub: string } },
  ): Promise<void> {
    const clientId = ctx.oidc.client!.clientId;
    const client = clientsById.get(clientId)!;
    const audience = str(ctx.oidc.params!.audience) ?? str(ctx.oidc.params!.resource);
    if (audience !== undefined && audience !== apiUrl) {
      throw new InvalidTarget(`unknown audience, the only resource server is ${apiUrl}`);
    }
    const now = Math.floor(Date.now() / 1000);
    const exp = Math.min(now + accessTtl, claims.exp ?? Number.POSITIVE_INFINITY);
    const cert = client.certificateBound ? peerCertificate(ctx.req) : undefined;
    if (client.certificateBound && !cert) throw invalidGrant('mutual TLS client certificate not provided');
    const token = await new SignJWT({
      client_id: clientId,
      scope: claims.scope,
      kf_epoch: epoch,
      kf_user: claims.user,
      ...(claims.act ? { act: claims.act } : {}),
      ...(cert ? { cnf: { 'x5t#S256': certificateThumbprint(cert) } } : {}),
    })
      .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid })
      .setIssuer(issuer)
      .setAudience(apiUrl)
      .setSubject(claims.sub)
      .setJti(randomUUID())
      .setIssuedAt(now)
      .setExpirationTime(exp)
      .sign(privateKey);
    ctx.body = {
      access_token: token,
      issued_token_type: ACCESS_TOKEN_TYPE,
      token_type: 'Bearer',
      expires_in: exp - now,
      ...(claims.scope ? { scope: claims.scope } : {}),
    };
  }

  /** A token this server issued, still good at the API (signature, expiry, not revoked). */
  async function verifyOwnToken(token: string, what: string): Promise<KeyfobTokenClaims> {
    try {
      const { payload } = await jwtVerify<KeyfobTokenClaims>(token, jwks, { issuer, algorithms: ['RS256'] });
      const reason = rejectReason(payload);
      if (reason) throw new Error(reason);
      if (!payload.sub) throw new Error('no sub');
      return payload;
    } catch {
      throw invalidGrant(`${what} is invalid, expired or revoked`);
    }
  }

  provider.registerGrantType(
    TOKEN_EXCHANGE,
    async (ctx) => {
      const params = ctx.oidc.params as Record<string, unknown>;
      const subjectToken = str(params.subject_token);
      const subjectType = str(params.subject_token_type);
      if (!subjectToken || !subjectType) {
        throw new InvalidRequest('subject_token and subject_token_type are required');
      }
      if (subjectType !== ACCESS_TOKEN_TYPE && subjectType !== JWT_TOKEN_TYPE) {
        throw new InvalidRequest(`unsupported subject_token_type ${subjectType}`);
      }
      const requested = str(params.requested_token_type);
      if (requested && requested !== ACCESS_TOKEN_TYPE) {
        throw new InvalidRequest(`unsupported requested_token_type ${requested}`);
      }
      const subject = await verifyOwnToken(subjectToken, 'subject_token');
      let act: { sub: string } | undefined;
      const actorToken = str(params.actor_token);
      if (actorToken) {
        if (!str(params.actor_token_type)) throw new InvalidRequest('actor_token_type is required');
        act = { sub: (await verifyOwnToken(actorToken, 'actor_token')).sub! };
      }
      const client = clientsById.get(ctx.oidc.client!.clientId)!;
      await mintAccessToken(ctx, {
        sub: subject.sub!,
        scope: grantedScope(client, str(params.scope), (subject.scope ?? '').split(' ')),
        user: subject.kf_user === true,
        // Never outlives the token it was exchanged for.
        ...(typeof subject.exp === 'number' ? { exp: subject.exp } : {}),
        ...(act ? { act } : {}),
      });
    },
    [
      'subject_token',
      'subject_token_type',
      'actor_token',
      'actor_token_type',
      'requested_token_type',
      'audience',
      'resource',
      'scope',
    ],
  );

  const trustedIssuers = new Map(
    (options.assertionIssuers ?? []).map((entry) => [
      entry.issuer,
      createLocalJWKSet(entry.jwks as { keys: JWK[] }),
    ]),
  );
  provider.registerGrantType(
    JWT_BEARER,
    async (ctx) => {
      const params = ctx.oidc.params as Record<string, unknown>;
      const assertion = str(params.assertion);
      if (!assertion) throw new InvalidRequest('assertion is required');
      let iss: string | undefined;
      try {
        iss = decodeJwt(assertion).iss;
      } catch {
        throw invalidGrant('assertion is not a JWT');
      }
      const keys = iss ? trustedIssuers.get(iss) : undefined;
      if (!keys) throw invalidGrant('assertion issuer is not trusted');
      let sub: string;
      try {
        const { payload } = await jwtVerify(assertion, keys, {
          issuer: iss,
          audience: [issuer, provider.urlFor('token')],
          requiredClaims: ['sub', 'exp'],
        });
        sub = payload.sub!;
      } catch {
        throw invalidGrant('assertion is invalid or expired');
      }
      const client = clientsById.get(ctx.oidc.client!.clientId)!;
      await mintAccessToken(ctx, {
        sub,
        scope: grantedScope(client, str(params.scope), apiScopesOf(client)),
        user: true,
      });
    },
    ['assertion', 'scope', 'audience', 'resource'],
  );

  provider.on('grant.revoked', (_ctx, grantId: string) => {
    revokedGrants.add(grantId);
  });

  const tokenPath = new URL(provider.urlFor('token')).pathname;
  const revocationPath = new URL(provider.urlFor('revocation')).pathname;
  const providerCallback = provider.callback();
  const shutdown = new AbortController();

  // --- non-interactive login + consent ----------------------------------------------------------------------
  async function handleInteraction(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let details: Awaited<ReturnType<typeof provider.interactionDetails>>;
    try {
      details = await provider.interactionDetails(req, res);
    } catch (err) {
      sendJson(res, 400, { error: 'invalid_request', error_description: (err as Error).message });
      return;
    }
    const { prompt, params, session } = details;
    const hint = str(params.login_hint) ?? str(params.userid) ?? 'demo-user';
    const deny = str(params.deny);
    if (hint === 'deny' || (deny !== undefined && deny !== '0' && deny !== 'false')) {
      const result: InteractionResults = {
        error: 'access_denied',
        error_description: 'the end-user denied the authorization request',
      };
      await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
      return;
    }
    if (prompt.name === 'login') {
      await provider.interactionFinished(
        req,
        res,
        { login: { accountId: hint } },
        { mergeWithLastSubmission: false },
      );
      return;
    }
    if (prompt.name === 'consent') {
      const accountId = session?.accountId ?? hint;
      const clientId = String(params.client_id);
      const existing = details.grantId ? await provider.Grant.find(details.grantId) : undefined;
      const grant = existing ?? new provider.Grant({ accountId, clientId });
      const missing = prompt.details as {
        missingOIDCScope?: string[];
        missingOIDCClaims?: string[];
        missingResourceScopes?: Record<string, string[]>;
      };
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      const grantId = await grant.save();
      await provider.interactionFinished(
        req,
        res,
        { consent: { grantId } },
        { mergeWithLastSubmission: true },
      );
      return;
    }
    sendJson(res, 500, { error: 'server_error', error_description: `unsupported prompt ${prompt.name}` });
  }

  // oidc-provider accepts client_secret_basic and client_secret_post interchangeably; this server holds each
  // client to its registered method (token and revocation endpoints), so a client sending the wrong one is caught.
  function rejectedAuthMethod(req: IncomingMessage, res: ServerResponse, params: URLSearchParams): boolean {
    const presented = presentedClientAuth(req.headers.authorization, params);
    const registered = presented ? clientsById.get(presented.clientId)?.tokenEndpointAuthMethod : undefined;
    if (!presented || !registered || registered === 'none' || presented.method === 'none') return false;
    if (presented.method === registered) return false;
    if (presented.method === 'client_secret_basic') res.setHeader('WWW-Authenticate', 'Basic realm="token"');
    sendJson(res, 401, {
      error: 'invalid_client',
      error_description: `client authentication failed: ${presented.clientId} is registered for ${registered}, not ${presented.method}`,
    });
    return true;
  }

  /** The client a token request claims to come from (credentials, body client_id or client assertion issuer). */
  function requestingClientId(req: IncomingMessage, params: URLSearchParams): string | undefined {
    const presented = presentedClientAuth(req.headers.authorization, params);
    if (presented) return presented.clientId;
    const assertion = params.get('client_assertion');
    try {
      return assertion ? decodeJwt(assertion).iss : undefined;
    } catch {
      return undefined;
    }
  }

  // --- token endpoint: count, add latency, default client_credentials scope -----------------------------------
  async function handleToken(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let raw: string;
    try {
      raw = (await readBody(req, FORM_BODY_LIMIT)).toString('utf8');
    } catch (err) {
      if (err instanceof BodyTooLargeError) {
        stats.tokenRequests += 1;
        sendJson(res, 413, { error: 'invalid_request', error_description: err.message });
        return;
      }
      throw err;
    }
    const params = new URLSearchParams(raw);
    const grantType = params.get('grant_type') ?? '(none)';
    stats.tokenRequests += 1;
    stats.tokenRequestsByGrant[grantType] = (stats.tokenRequestsByGrant[grantType] ?? 0) + 1;

    if (grantType === 'client_credentials' && !params.get('scope')) {
      // Policy: a client_credentials request without `scope` gets every API scope the client is registered for.
      const client = clientsById.get(requestingClientId(req, params) ?? '');
      const scopes = client ? apiScopesOf(client) : [];
      if (scopes.length > 0) {
        params.set('scope', scopes.join(' '));
        raw = params.toString();
      }
    }

    if (tokenLatencyMs > 0) {
      try {
        await sleep(tokenLatencyMs, undefined, { signal: shutdown.signal });
      } catch {
        res.destroy();
        return;
      }
    }
    if (rejectedAuthMethod(req, res, params)) return;

    // oidc-provider reads an already-consumed body from req.body.
    (req as IncomingMessage & { body?: string }).body = raw;
    await providerCallback(req, res);
  }

  // --- revocation endpoint: JWT access tokens are revoked here, the rest goes to oidc-provider -----------------
  async function handleRevocation(req: IncomingMessage, res: ServerResponse): Promise<void> {
    stats.revocations += 1;
    let raw: string;
    try {
      raw = (await readBody(req, FORM_BODY_LIMIT)).toString('utf8');
    } catch (err) {
      if (err instanceof BodyTooLargeError) {
        sendJson(res, 413, { error: 'invalid_request', error_description: err.message });
        return;
      }
      throw err;
    }
    const params = new URLSearchParams(raw);
    const token = params.get('token') ?? '';
    let isJwt = false;
    try {
      isJwt = Boolean(decodeProtectedHeader(token));
    } catch {}
    if (!isJwt || !/^application\/x-www-form-urlencoded\b/i.test(req.headers['content-type'] ?? '')) {
      if (rejectedAuthMethod(req, res, params)) return;
      (req as IncomingMessage & { body?: string }).body = raw;
      await providerCallback(req, res);
      return;
    }
    // oidc-provider refuses to revoke structured (JWT) tokens, so this server does it: client authentication as
    // registered, then the token's jti is denied at the API until it expires (RFC 7009: 200 whatever the token).
    const presented = presentedClientAuth(req.headers.authorization, params);
    const client = presented ? clientsById.get(presented.clientId) : undefined;
    const authenticated =
      presented !== undefined &&
      client !== undefined &&
      client.tokenEndpointAuthMethod === presented.method &&
      (client.tokenEndpointAuthMethod === 'none' ||
        secretsEqual(presented.clientSecret ?? '', client.clientSecret ?? ''));
    if (!authenticated) {
      if (presented?.method === 'client_secret_basic')
        res.setHeader('WWW-Authenticate', 'Basic realm="token"');
      sendJson(res, 401, { error: 'invalid_client', error_description: 'client authentication failed' });
      return;
    }
    try {
      const { payload } = await jwtVerify<KeyfobTokenClaims>(token, jwks, { issuer, algorithms: ['RS256'] });
      if (payload.client_id === client.clientId && payload.jti && typeof payload.exp === 'number') {
        revokedJtis.set(payload.jti, payload.exp);
      }
    } catch {
      // invalid or expired: nothing to revoke
    }
    const now = Date.now() / 1000;
    for (const [jti, exp] of revokedJtis) if (exp < now) revokedJtis.delete(jti);
    res.statusCode = 200;
    res.setHeader('Cache-Control', 'no-store');
    res.end();
  }

  const handleApi = createApiHandler({
    issuer,
    audience: apiUrl,
    basePath: apiBasePath,
    jwks,
    stats,
    rejectReason,
    certificateThumbprint: (req) => {
      const cert = peerCertificate(req);
      return cert ? certificateThumbprint(cert) : undefined;
    },
  });

  const dpopApiBasePath = '/dpop-api';
  const dpopApi = options.dpop
    ? createDpopApi({
        issuer,
        audience: apiUrl,
        basePath: dpopApiBasePath,
        jwks,
        rejectReason,
        tokenEndpointNonce: dpopSwitch.tokenEndpointNonce,
        apiNonce: options.dpop.apiNonce === true,
      })
    : undefined;
  dpopControl = dpopApi?.control;

  handler = async (req, res) => {
    const url = new URL(req.url ?? '/', issuer);
    const { pathname } = url;
    if (dpopApi && (pathname === dpopApiBasePath || pathname.startsWith(`${dpopApiBasePath}/`))) {
      return dpopApi.handle(req, res, url);
    }
    if (pathname === apiBasePath || pathname.startsWith(`${apiBasePath}/`)) return handleApi(req, res, url);
    if (req.method === 'GET' && INTERACTION_PATH.test(pathname)) return handleInteraction(req, res);
    if (req.method === 'POST' && pathname === tokenPath) return handleToken(req, res);
    if (req.method === 'POST' && pathname === revocationPath) return handleRevocation(req, res);
    return providerCallback(req, res);
  };

  let closing: Promise<void> | undefined;

  return {
    issuer,
    tokenUrl: provider.urlFor('token'),
    authorizeUrl: provider.urlFor('authorization'),
    revocationUrl: provider.urlFor('revocation'),
    jwksUrl: provider.urlFor('jwks'),
    apiUrl,
    ...(mtlsOrigin
      ? {
          mtls: {
            origin: mtlsOrigin,
            tokenUrl: `${mtlsOrigin}${tokenPath}`,
            apiUrl: `${mtlsOrigin}${apiBasePath}`,
          },
        }
      : {}),
    ...(dpopControl ? { dpop: dpopControl } : {}),
    stats,
    resetStats() {
      stats.tokenRequests = 0;
      for (const key of Object.keys(stats.tokenRequestsByGrant)) delete stats.tokenRequestsByGrant[key];
      stats.apiRequests = 0;
      stats.api401 = 0;
      stats.api200 = 0;
      stats.api403 = 0;
      stats.revocations = 0;
    },
    revokeAll() {
      epoch += 1;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        shutdown.abort();
        let open = tlsServer ? 2 : 1;
        const done = () => {
          open -= 1;
          if (open > 0) return;
          adapter.clear();
          resolve();
        };
        server.close(done);
        server.closeAllConnections();
        tlsServer?.close(done);
        tlsServer?.closeAllConnections();
      });
      return closing;
    },
  };
}

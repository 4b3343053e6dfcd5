import type { IncomingMessage, ServerResponse } from 'node:http';
import { type JWTPayload, type JWTVerifyGetKey, errors as joseErrors, jwtVerify } from 'jose';
import { readBody, sendJson } from './http-util.js';

/** Extra claims this server puts in every access token (see `extraTokenClaims`). */
export interface KeyfobTokenClaims extends JWTPayload {
  client_id?: string;
  scope?: string;
  /** The revokeAll() epoch the token was issued in. */
  kf_epoch?: number;
  /** True for tokens issued to an end-user (authorization_code / refresh_token), false for client_credentials. */
  kf_user?: boolean;
  /** The oidc-provider grant the token belongs to (user tokens only). */
  kf_grant?: string;
  /** RFC 8705 3.1: the token is bound to this client certificate thumbprint. */
  cnf?: { 'x5t#S256'?: string };
  /** RFC 8693 4.1: the party acting on behalf of `sub` (token exchange with an actor token). */
  act?: { sub: string };
}

export interface ApiStats {
  apiRequests: number;
  api401: number;
  api200: number;
  api403: number;
}

export interface ApiContext {
  issuer: string;
  /** The resource indicator and `aud` of access tokens for this API. */
  audience: string;
  /** Path prefix of the API on this server, e.g. `/api`. */
  basePath: string;
  jwks: JWTVerifyGetKey;
  stats: ApiStats;
  /** Rejects a verified token (revokeAll epoch, revoked jti, revoked grant); returns a reason or undefined. */
  rejectReason(claims: KeyfobTokenClaims): string | undefined;
  /** `x5t#S256` of the TLS client certificate of the request, if any (RFC 8705 3). */
  certificateThumbprint?(req: IncomingMessage): string | undefined;
}

const REALM = 'keyfob-demo';

class ApiError extends Error {
  constructor(
    readonly status: 401 | 403 | 400 | 404 | 405,
    readonly code: string,
    readonly description: string,
    readonly wwwAuthenticate?: string,
  ) {
    super(description);
  }
}

function quote(value: string): string {
  return value.replace(/[\\"]/g, '\\$&');
}

function invalidToken(description: string): ApiError {
  return new ApiError(
    401,
    'invalid_token',
    description,
    `Bearer error="invalid_token", error_description="${quote(description)}"`,
  );
}

function describeJoseError(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'the access token expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed)
    return `the access token ${err.claim} claim is invalid`;
  if (err instanceof joseErrors.JWSSignatureVerificationFailed)
    return 'the access token signature is invalid';
  if (err instanceof joseErrors.JWKSNoMatchingKey) return 'the access token was not signed by this server';
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'the access token algorithm is not allowed';
  return 'the access token is malformed';
}

/** Serves `${basePath}/hello`, `/me`, `/echo` and `/redirect-elsewhere`. */
export function createApiHandler(api: ApiContext) {
  const { stats } = api;

  async function authenticate(req: IncomingMessage, requiredScope?: string): Promise<KeyfobTokenClaims> {
    const header = req.headers.authorization;
    if (!header) {
      throw new ApiError(
        401,
        'invalid_token',
        'a bearer access token is required',
        `Bearer realm="${REALM}"`,
      );
    }
    const match = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i.exec(header);
    if (!match) {
      if (!/^Bearer\b/i.test(header)) {
        throw new ApiError(
          401,
          'invalid_token',
          'only Bearer access tokens are accepted',
          `Bearer realm="${REALM}"`,
        );
      }
      throw invalidToken('the Authorization header is malformed');
    }
    let claims: KeyfobTokenClaims;
    try {
      ({ payload: claims } = await jwtVerify<KeyfobTokenClaims>(match[1]!, api.jwks, {
        issuer: api.issuer,
        audience: api.audience,
        algorithms: ['RS256'],
        typ: 'at+jwt',
        requiredClaims: ['exp', 'iat', 'jti', 'client_id'],
      }));
    } catch (err) {
      throw invalidToken(describeJoseError(err));
    }
    const reason = api.rejectReason(claims);
    if (reason) throw invalidToken(reason);
    const bound = claims.cnf?.['x5t#S256'];
    if (bound !== undefined && api.certificateThumbprint?.(req) !== bound) {
      throw invalidToken('the access token is bound to a client certificate this request did not present');
    }
    if (requiredScope) {
      const scopes = new Set((claims.scope ?? '').split(' '));
      if (!scopes.has(requiredScope)) {
        const description = `the access token lacks the ${requiredScope} scope`;
        throw new ApiError(
          403,
          'insufficient_scope',
          description,
          `Bearer error="insufficient_scope", error_description="${quote(description)}", scope="${requiredScope}"`,
        );
      }
    }
    return claims;
  }

  function ok(res: ServerResponse, body: unknown): void {
    stats.api200 += 1;
    sendJson(res, 200, body);
  }

  async function route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const path = url.pathname.slice(api.basePath.length) || '/';
    const method = req.method ?? 'GET';
    switch (path) {
      case '/hello': {
        if (method !== 'GET' && method !== 'HEAD') break;
        const claims = await authenticate(req, 'api:read');
        return ok(res, {
          ok: true,
          sub: claims.sub,
          client_id: claims.client_id,
          scope: claims.scope ?? '',
          ...(claims.act ? { act: claims.act } : {}),
        });
      }
      case '/me': {
        if (method !== 'GET' && method !== 'HEAD') break;
        const claims = await authenticate(req);
        if (claims.kf_user !== true) {
          const description = 'this endpoint needs an end-user access token, not a client_credentials one';
          throw new ApiError(
            403,
            'insufficient_scope',
            description,
            `Bearer error="insufficient_scope", error_description="${quote(description)}"`,
          );
        }
        return ok(res, { ok: true, sub: claims.sub });
      }
      case '/echo': {
        if (method !== 'POST') break;
        await authenticate(req, 'api:read');
        const raw = (await readBody(req, 1024 * 1024)).toString('utf8');
        let body: unknown = null;
        if (raw.length > 0) {
          try {
            body = JSON.parse(raw);
          } catch {
            throw new ApiError(400, 'invalid_request', 'the request body is not JSON');
          }
        }
        return ok(res, body);
      }
      case '/redirect-elsewhere': {
        const to = url.searchParams.get('to');
        const target = to ? URL.parse(to) : null;
        if (!target || (target.protocol !== 'http:' && target.protocol !== 'https:')) {
          throw new ApiError(
            400,
            'invalid_request',
            'the "to" query parameter must be an absolute http(s) URL',
          );
        }
        res.statusCode = 302;
        res.setHeader('Location', target.href);
        res.setHeader('Cache-Control', 'no-store');
        res.end();
        return;
      }
      default:
        throw new ApiError(404, 'not_found', `no API endpoint at ${url.pathname}`);
    }
    throw new ApiError(405, 'method_not_allowed', `${method} is not allowed on ${url.pathname}`);
  }

  return async function handleApi(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    stats.apiRequests += 1;
    try {
      await route(req, res, url);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      if (err.status === 401) stats.api401 += 1;
      if (err.status === 403) stats.api403 += 1;
      if (err.wwwAuthenticate) res.setHeader('WWW-Authenticate', err.wwwAuthenticate);
      sendJson(res, err.status, { error: err.code, error_description: err.description });
    }
  };
}

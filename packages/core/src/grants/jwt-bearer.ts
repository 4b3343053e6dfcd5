import { createHash, randomUUID } from 'node:crypto';
import { type ClientAssertionOptions, ClientAuth } from '../client-auth.js';
import { ConfigurationError } from '../errors.js';
import { decodeJwtClaims } from '../jwt.js';
import { REDACTED } from '../redact.js';
import {
  BasicEncoding,
  buildRequest,
  type ClientAuthMethod,
  type Grant,
  grantInspect,
  withResource,
} from './grant.js';

const GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

/** What an assertion function is told about the token being requested. */
export interface JwtBearerAssertionContext {
  /** `getToken({ subject })`: whose token, for managers that hold one per user. */
  readonly subject: string | undefined;
  readonly scope: string | undefined;
  /** The token endpoint: the usual `aud` of the assertion. */
  readonly tokenUrl: string;
}

export interface JwtBearerOptions extends ClientAssertionOptions {
  /**
   * The JWT to present (RFC 7523 2.1): a string, or a function called for every attempt of every token request (retries included), which
   * may sign a fresh one (e.g. with a workload identity key or another identity provider's token).
   */
  assertion: string | ((context: JwtBearerAssertionContext) => string | Promise<string>);
  /** Client id, for servers that require client authentication with this grant (RFC 7523 3.1). Defaults to none. */
  clientId?: string | undefined;
  clientSecret?: string | undefined;
  /** How the client authenticates, when `clientId` is set (see `clientCredentials`). Defaults to `'basic'` with a secret. */
  clientAuth?: ClientAuthMethod | undefined;
  /** Space-delimited scopes. Defaults to none. */
  scope?: string | undefined;
  /** `resource` (RFC 8707): the API the token is for. Part of the cache key. Defaults to none. */
  resource?: string | undefined;
  /** Extra parameters sent with every request; part of the cache key. */
  extraParams?: Record<string, string> | undefined;
  /**
   * A stable, non-secret name for the identity the assertion stands for (a service account, say): part
   * of the cache key, so managers that share a store never hand one identity's token to another. With a
   * string assertion it defaults to the JWT's `iss` and `sub` (a hash of the assertion if it has
   * neither). With a function, give it to share tokens through a store between managers or processes:
   * without it, each grant keeps its tokens to itself.
   */
  id?: string | undefined;
}

/**
 * JWT bearer authorization grant (RFC 7523 2.1): a signed JWT stands for the subject. With a function
 * as `assertion` and `getToken({ subject })`, one manager holds a token per subject.
 *
 * @see https://www.rfc-editor.org/rfc/rfc7523#section-2.1
 */
export function jwtBearer(options: JwtBearerOptions): Grant {
  const { clientId, clientSecret, scope } = options;
  const source = options.assertion;
  if (typeof source !== 'function' && (typeof source !== 'string' || source === '')) {
    throw new ConfigurationError(
      'jwtBearer: assertion is required (a JWT string or a function returning one).',
    );
  }
  if (options.id !== undefined && (typeof options.id !== 'string' || options.id === '')) {
    throw new ConfigurationError(
      'jwtBearer: id must be a non-empty string (a name for the identity, not a secret).',
    );
  }
  const authenticates =
    clientId !== undefined &&
    (clientSecret !== undefined || options.privateKey !== undefined || options.clientAuth !== undefined);
  const auth = authenticates
    ? new ClientAuth('jwtBearer', clientId, clientSecret, options.clientAuth, options)
    : undefined;
  if (auth && !clientSecret && auth.method !== 'private_key_jwt' && auth.method !== 'tls_client_auth') {
    throw new ConfigurationError(`jwtBearer: clientAuth '${auth.method}' needs clientSecret.`);
  }
  const extraParams = withResource(options.extraParams, options.resource);
  const encoding = new BasicEncoding(undefined, 'form', clientId, clientSecret, auth?.method ?? 'body');
  const grant: Grant = {
    type: 'jwt_bearer',
    clientId,
    scope,
    extraParams,
    identity: `${auth?.method ?? ''} ${assertionIdentity(options.id, source)}`,
    clientAuth: auth?.method,
    usesTokenUrl: true,
    async fetchToken(ctx) {
      const next = async (): Promise<string> => {
        const made =
          typeof source === 'function'
            ? await source({ subject: ctx.subject, scope: ctx.scope, tokenUrl: ctx.tokenUrl })
            : source;
        if (typeof made !== 'string' || made === '') {
          throw new ConfigurationError('jwtBearer: the assertion function returned no JWT.');
        }
        return made;
      };
      const assertion = await next();
      // A function makes a new assertion for every later attempt too (retries, the other Basic
      // encoding): a server may accept an assertion's jti once (RFC 7523 3).
      let unused: string | undefined = assertion;
      const perAttempt = (client: (() => Record<string, string>) | undefined) => async () => {
        const fresh = unused ?? (await next());
        unused = undefined;
        return { ...client?.(), assertion: fresh };
      };
      const resolved = auth?.resolve(ctx.authMethods);
      return encoding.send(ctx.request, (basicEncoding) => {
        const req = buildRequest({
          grantType: 'jwt_bearer',
          fields: { grant_type: GRANT_TYPE, assertion, scope: ctx.scope, ...ctx.extraParams },
          clientId,
          clientSecret: auth ? clientSecret : undefined,
          // Without client authentication, client_id (if any) goes in the body.
          clientAuth: resolved?.method ?? 'body',
          assertion: resolved?.assertion,
          tokenUrl: ctx.tokenUrl,
          basicEncoding,
          extraParams,
          secrets: [assertion],
        });
        if (typeof source !== 'function') return req;
        const client = req.attemptFields as (() => Record<string, string>) | undefined;
        return { ...req, attemptFields: perAttempt(client) };
      });
    },
  };
  grantInspect(grant, { clientId, clientAuth: auth?.method, scope, assertion: REDACTED });
  return grant;
}

/**
 * Which identity the grant's tokens belong to, for the cache key: never the assertion itself. Two
 * managers sharing a store with different assertions must not share tokens (the usual setup: one
 * service account per manager, one token URL, no client id).
 */
function assertionIdentity(id: string | undefined, source: JwtBearerOptions['assertion']): string {
  if (id !== undefined) return `id:${id}`;
  // A function signs for an identity keyfob cannot see before it is called.
  if (typeof source === 'function') return `grant:${randomUUID()}`;
  const claims = decodeJwtClaims(source);
  const iss = typeof claims?.iss === 'string' ? claims.iss : undefined;
  const sub = typeof claims?.sub === 'string' ? claims.sub : undefined;
  if (iss !== undefined || sub !== undefined) return `jwt:${JSON.stringify([iss ?? '', sub ?? ''])}`;
  return `hash:${createHash('sha256').update(source).digest('base64url')}`;
}

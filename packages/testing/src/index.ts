import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { customGrant, TokenManager } from '@keyfob/core';

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
  /** Form or JSON body, parsed. */
  params: Record<string, string>;
}

export interface Reply {
  status?: number;
  headers?: Record<string, string>;
  /** Object -> JSON; string -> as is. */
  body?: unknown;
  /** Wait before answering. */
  delayMs?: number;
  /** Destroy the socket without answering (connection reset). */
  reset?: boolean;
}

export type Handler = (req: RecordedRequest) => Reply | Promise<Reply>;

export interface TestServer {
  url: string;
  origin: string;
  requests: RecordedRequest[];
  close(): Promise<void>;
}

function parseParams(body: string, contentType: string | undefined): Record<string, string> {
  if (!body) return {};
  if (contentType?.includes('json')) {
    try {
      const o = JSON.parse(body) as Record<string, unknown>;
      return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, String(v)]));
    } catch {
      return {};
    }
  }
  return Object.fromEntries(new URLSearchParams(body));
}

/** An HTTP server on 127.0.0.1, random port, that records requests and answers with `handler`. */
export async function startServer(handler: Handler): Promise<TestServer> {
  const requests: RecordedRequest[] = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const rec: RecordedRequest = {
        method: req.method ?? 'GET',
        path: url.pathname + url.search,
        headers: req.headers,
        body,
        params: parseParams(body, req.headers['content-type']),
      };
      requests.push(rec);
      let reply: Reply;
      try {
        reply = await handler(rec);
      } catch (e) {
        reply = { status: 500, body: { error: 'server_error', error_description: String(e) } };
      }
      if (reply.delayMs) await new Promise((r) => setTimeout(r, reply.delayMs));
      if (reply.reset) {
        req.socket.destroy();
        return;
      }
      const isString = typeof reply.body === 'string';
      const payload =
        reply.body === undefined ? '' : isString ? (reply.body as string) : JSON.stringify(reply.body);
      res.writeHead(reply.status ?? 200, {
        ...(reply.body !== undefined && !isString ? { 'content-type': 'application/json' } : {}),
        ...reply.headers,
      });
      res.end(payload);
    });
  });
  server.keepAliveTimeout = 1_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${port}`;
  return {
    url: origin,
    origin,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface Issued {
  token: string;
  expiresAt: number;
  subject: string | undefined;
  scope: string | undefined;
}

/**
 * A token issuer shared by the emulated providers and the protected API: it remembers what it
 * issued, can revoke everything, and validates bearer tokens like a resource server (RFC 6750).
 */
export class Issuer {
  readonly issued = new Map<string, Issued>();
  tokenRequests = 0;
  apiRequests = 0;
  api401 = 0;
  /** Every token issued so far is rejected from now on. */
  revokeAll(): void {
    this.issued.clear();
  }
  issue(lifetimeSeconds: number, subject?: string, scope?: string): Issued {
    const i: Issued = {
      token: `at_${randomBytes(16).toString('hex')}`,
      expiresAt: Date.now() + lifetimeSeconds * 1000,
      subject,
      scope,
    };
    this.issued.set(i.token, i);
    return i;
  }
  /** RFC 6750 3.1 answer for a request's Authorization header. */
  check(authorization: string | undefined): { ok: true; issued: Issued } | { ok: false; reply: Reply } {
    this.apiRequests++;
    const m = /^Bearer (.+)$/i.exec(authorization ?? '');
    const found = m ? this.issued.get(m[1]!) : undefined;
    if (found && found.expiresAt > Date.now()) return { ok: true, issued: found };
    this.api401++;
    return {
      ok: false,
      reply: {
        status: 401,
        headers: m
          ? {
              'www-authenticate':
                'Bearer error="invalid_token", error_description="Invalid Token: token not found, expired or invalid"',
            }
          : { 'www-authenticate': 'Bearer realm="api"' },
        body: m
          ? {
              error: 'invalid_token',
              error_description: 'Invalid Token: token not found, expired or invalid',
            }
          : { error: 'unauthorized' },
      },
    };
  }
}

export interface ProviderServer extends TestServer {
  tokenUrl: string;
  apiUrl: string;
  issuer: Issuer;
  /** Replace the next token endpoint answers (failure injection); return undefined to answer normally. */
  override: ((req: RecordedRequest) => Reply | undefined | Promise<Reply | undefined>) | undefined;
  tokenRequests(): RecordedRequest[];
}

const basicOf = (h: string | undefined) => {
  const m = /^Basic (.+)$/i.exec(h ?? '');
  if (!m) return undefined;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  return i < 0 ? undefined : { id: decoded.slice(0, i), secret: decoded.slice(i + 1) };
};

async function provider(
  tokenPath: string,
  token: (req: RecordedRequest, issuer: Issuer) => Reply,
  apiPrefix = '/api/',
): Promise<ProviderServer> {
  const issuer = new Issuer();
  let self: ProviderServer | undefined;
  const server = await startServer(async (req) => {
    const path = req.path.split('?')[0]!;
    if (path === tokenPath && req.method === 'POST') {
      issuer.tokenRequests++;
      const o = await self?.override?.(req);
      return o ?? token(req, issuer);
    }
    if (path.startsWith(apiPrefix)) {
      const c = issuer.check(req.headers.authorization);
      if (!c.ok) return c.reply;
      return { body: { ok: true, subject: c.issued.subject ?? null, scope: c.issued.scope ?? null, path } };
    }
    return {
      status: 404,
      body: '<html><head><title>404 Not Found</title></head><body>Not Found</body></html>',
      headers: { 'content-type': 'text/html' },
    };
  });
  self = Object.assign(server, {
    tokenUrl: `${server.url}${tokenPath}`,
    apiUrl: `${server.url}${apiPrefix.replace(/\/$/, '')}`,
    issuer,
    override: undefined,
    tokenRequests: () => server.requests.filter((r) => r.path.split('?')[0] === tokenPath),
  });
  return self;
}

const invalidClient: Reply = {
  status: 401,
  body: { error: 'invalid_client', error_description: 'Bad credentials' },
};

/**
 * Risk Cloud (seed 000/001): POST /api/v1/account/token with only `Authorization: Basic
 * base64(client:secret)` (raw, not form-encoded); answers `token_type: "bearer"`, a one-year
 * `expires_in` and `scope: "read write"`. 401 on bad credentials.
 */
export function riskCloud(opts: { clientId: string; clientSecret: string; expiresIn?: number }) {
  return provider('/api/v1/account/token', (req, issuer) => {
    const b = basicOf(req.headers.authorization);
    if (!b || b.id !== opts.clientId || b.secret !== opts.clientSecret) {
      return { status: 401, body: { message: 'Unauthorized' } };
    }
    const expiresIn = opts.expiresIn ?? 31532918;
    const i = issuer.issue(expiresIn, undefined, 'read write');
    return {
      body: { access_token: i.token, token_type: 'bearer', expires_in: expiresIn, scope: 'read write' },
    };
  });
}

/**
 * The generic client-credentials API (seed 002): form body `grant_type=client_credentials&scope=`,
 * Basic client auth (curl -u: raw values); `expires_in: 3600`; 401 `invalid_client` "Bad credentials".
 */
export function genericClientCredentials(opts: {
  clientId: string;
  clientSecret: string;
  expiresIn?: number | string;
}) {
  return provider('/oauth2/token', (req, issuer) => {
    const b = basicOf(req.headers.authorization);
    const id = b ? decodeURIComponentSafe(b.id) : req.params.client_id;
    const secret = b ? decodeURIComponentSafe(b.secret) : req.params.client_secret;
    if (id !== opts.clientId || secret !== opts.clientSecret) return invalidClient;
    if (req.params.grant_type !== 'client_credentials') {
      return {
        status: 400,
        body: { error: 'unsupported_grant_type', error_description: 'grant_type must be client_credentials' },
      };
    }
    const expiresIn = opts.expiresIn ?? 3600;
    const i = issuer.issue(Number(expiresIn), undefined, req.params.scope);
    return {
      body: {
        access_token: i.token,
        scope: req.params.scope ?? '',
        token_type: 'Bearer',
        expires_in: expiresIn,
      },
    };
  });
}

function decodeURIComponentSafe(v: string): string {
  try {
    return decodeURIComponent(v.replace(/\+/g, ' '));
  } catch {
    return v;
  }
}

/** The platform with user login (seed 003): POST /authorization with `username` and `password`. */
export function passwordPlatform(opts: { username: string; password: string; expiresIn?: number }) {
  return provider('/authorization', (req, issuer) => {
    if (req.params.username !== opts.username || req.params.password !== opts.password) {
      return {
        status: 401,
        body: { error: 'invalid_grant', error_description: 'Invalid username or password' },
      };
    }
    const i = issuer.issue(opts.expiresIn ?? 3600, opts.username);
    return { body: { token_type: 'Bearer', access_token: i.token, expires_in: opts.expiresIn ?? 3600 } };
  });
}

/**
 * AIRisk (seed 004): POST /api/oauth2/Token, form or JSON body with client_id, client_secret,
 * redirect_uri, code and optional userid; answers `access_token` and `expiration` (ISO UTC), no `expires_in`.
 * `codes` maps valid codes to the userid they were issued for (undefined = generic token).
 */
export function airisk(opts: {
  clientId: string;
  clientSecret: string;
  redirectUri: string;
  codes: Map<string, string | undefined>;
  lifetimeSeconds?: number;
}) {
  return provider('/api/oauth2/Token', (req, issuer) => {
    const p = req.params;
    if (p.client_id !== opts.clientId || p.client_secret !== opts.clientSecret) {
      return {
        status: 401,
        body: { error: 'invalid_client', error_description: 'Unknown client or wrong secret' },
      };
    }
    if (p.redirect_uri !== opts.redirectUri)
      return { status: 400, body: { error: 'invalid_grant', error_description: 'redirect_uri mismatch' } };
    if (!p.code || !opts.codes.has(p.code))
      return { status: 400, body: { error: 'invalid_grant', error_description: 'Invalid code' } };
    const userid = opts.codes.get(p.code);
    if ((p.userid ?? undefined) !== userid)
      return { status: 400, body: { error: 'invalid_grant', error_description: 'userid mismatch' } };
    opts.codes.delete(p.code);
    const i = issuer.issue(opts.lifetimeSeconds ?? 3600, userid);
    return {
      body: {
        access_token: i.token,
        expiration: new Date(i.expiresAt).toISOString().replace(/\.\d{3}Z$/, 'Z'),
      },
    };
  });
}

/** A protected API on its own server validating tokens from `issuer` (RFC 6750 401s). */
export async function startProtectedApi(issuer: Issuer, extra?: Handler): Promise<TestServer> {
  return startServer(async (req) => {
    if (extra) {
      const r = await extra(req);
      if (r.status !== 404) return r;
    }
    const c = issuer.check(req.headers.authorization);
    if (!c.ok) return c.reply;
    return { body: { ok: true, path: req.path, subject: c.issued.subject ?? null } };
  });
}

/** Makes a provider's token endpoint answer only once the returned `release()` is called. */
export function holdTokenEndpoint(provider: Pick<ProviderServer, 'override'>): () => void {
  let release!: () => void;
  const held = new Promise<void>((r) => {
    release = r;
  });
  provider.override = async () => {
    await held;
    return undefined;
  };
  return release;
}

/** The error `p` rejects with; fails the test when `p` resolves. */
export async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected the request to fail');
}

export {
  type ConformanceBinding,
  type ConformanceClient,
  type ConformanceClientOptions,
  type ConformanceRequest,
  type ConformanceResponse,
  conformance,
  conformanceDpopKey,
} from './conformance.js';
export { checkDpopProof, type DpopProofClaims, startDpopApi } from './dpop-proof.js';
export { leakScan } from './leak-scan.js';

/**
 * A real TokenManager whose grant hands out a new random token per request and records each, so a
 * test can look for every one of them in an error or on the wire. With `dpop`, DPoP-bound tokens
 * (`token_type: DPoP`) and a manager that signs proofs. Its `close` goes into `cleanup`.
 */
export function recordingManager(
  cleanup: (() => unknown)[],
  options: { dpop?: boolean } = {},
): { tokens: TokenManager; issued: string[] } {
  const issued: string[] = [];
  const tokens = new TokenManager({
    grant: customGrant(async () => {
      const t = `${options.dpop ? 'dpop' : 'tok'}_${randomBytes(12).toString('hex')}`;
      issued.push(t);
      return { access_token: t, expires_in: 3600, ...(options.dpop ? { token_type: 'DPoP' } : {}) };
    }),
    ...(options.dpop ? { dpop: true } : {}),
  });
  cleanup.push(() => tokens.close());
  return { tokens, issued };
}

import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { calculateJwkThumbprint, EmbeddedJWK, type JWTVerifyGetKey, jwtVerify } from 'jose';
import type { KeyfobTokenClaims } from './api.js';
import { readBody, sendJson } from './http-util.js';

/**
 * A protected API that takes only DPoP-bound access tokens (RFC 9449 7): `Authorization: DPoP <token>`
 * plus a `DPoP` proof, verified with jose the way a resource server must: the proof's signature
 * against its embedded `jwk`, `typ: dpop+jwt`, `htm` / `htu` (without query and fragment), an `iat`
 * window, `jti` replay, `ath` = SHA-256 of the token, and the token's `cnf.jkt` = the proof key's
 * thumbprint. With `nonce` on it also wants its own nonce (RFC 9449 9).
 */

/** `cnf.jkt` on top of the access token claims this server issues. */
interface DpopTokenClaims extends KeyfobTokenClaims {
  cnf?: { jkt?: string; 'x5t#S256'?: string };
}

/** One request the DPoP API answered, for tests. */
export interface DpopApiRequest {
  method: string;
  /** Path with query. */
  path: string;
  status: number;
  /** OAuth error of a 401 (`invalid_dpop_proof`, `use_dpop_nonce`, `invalid_token`). */
  error?: string;
  /** The proof's claims (public: no token, no key). */
  proof?: { jti?: string; htm?: string; htu?: string; ath?: string; nonce?: string; iat?: number };
  /** The proof key's thumbprint. */
  jkt?: string;
  /** The body the request carried (POST /echo). */
  body?: string;
}

/** Control of the DPoP API, on `RunningAuthorizationServer.dpop`. */
export interface DpopApiControl {
  /** `${issuer}/dpop-api`: `GET /hello`, `POST /echo`, `GET /redirect?to=<path>` (307 on the same origin). */
  apiUrl: string;
  /** Whether the token endpoint wants a DPoP nonce (oidc-provider `requireNonce`). */
  tokenEndpointNonce: boolean;
  /** Whether this API wants its own nonce (401 `use_dpop_nonce` + `DPoP-Nonce`). */
  apiNonce: boolean;
  /** Issues a new API nonce: proofs with the old one get a `use_dpop_nonce` challenge. */
  rotateApiNonce(): void;
  /**
   * With `apiNonce`: every successful answer issues a new nonce and sends it in `DPoP-Nonce` (RFC 9449 9
   * lets a server rotate its nonce on any response), so a client must take it from the 200 too.
   */
  rotateOnSuccess: boolean;
  /** The API answers `use_dpop_nonce` to the next `n` requests whatever nonce they carry (a nonce that keeps failing). */
  refuseNonces(n: number): void;
  /**
   * The next `n` proofs are treated as replays (as if their `jti` had been seen before): 401
   * `DPoP error="invalid_dpop_proof"`.
   */
  replayNext(n: number): void;
  /** Every request so far (newest last; the latest 10,000). */
  readonly requests: DpopApiRequest[];
  /** Forgets the recorded requests. */
  reset(): void;
}

export interface DpopApiContext {
  issuer: string;
  /** `aud` of the access tokens. */
  audience: string;
  basePath: string;
  jwks: JWTVerifyGetKey;
  rejectReason(claims: KeyfobTokenClaims): string | undefined;
  tokenEndpointNonce: boolean;
  apiNonce: boolean;
}

const ALGORITHMS = ['ES256', 'ES384', 'RS256', 'PS256', 'EdDSA', 'Ed25519'];
/** Seconds a proof's `iat` may be off (RFC 9449 11.1: "a reasonable window"). */
const IAT_WINDOW = 60;
const MAX_RECORDED = 10_000;

class DpopApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly description: string,
    readonly nonce?: string,
  ) {
    super(description);
  }
}

const quote = (value: string) => value.replace(/[\\"]/g, '\\$&');

export function createDpopApi(ctx: DpopApiContext): {
  control: DpopApiControl;
  handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void>;
} {
  let nonce = randomBytes(16).toString('base64url');
  let refuse = 0;
  let replays = 0;
  /** jti -> expiry (epoch s) of the proofs seen: a proof is good once (RFC 9449 11.1). */
  const seen = new Map<string, number>();
  const requests: DpopApiRequest[] = [];

  const control: DpopApiControl = {
    apiUrl: `${ctx.issuer}${ctx.basePath}`,
    tokenEndpointNonce: ctx.tokenEndpointNonce,
    apiNonce: ctx.apiNonce,
    rotateApiNonce() {
      nonce = randomBytes(16).toString('base64url');
    },
    rotateOnSuccess: false,
    refuseNonces(n) {
      refuse = n;
    },
    replayNext(n) {
      replays = n;
    },
    requests,
    reset() {
      requests.length = 0;
    },
  };

  async function verify(req: IncomingMessage, url: URL, record: DpopApiRequest): Promise<DpopTokenClaims> {
    const header = req.headers.authorization;
    const m = header ? /^DPoP +([A-Za-z0-9\-._~+/]+=*) *$/.exec(header) : null;
    if (!m)
      throw new DpopApiError(
        401,
        'invalid_token',
        'a DPoP-bound access token (Authorization: DPoP) is required',
      );
    const token = m[1]!;
    const proofHeader = req.headers.dpop;
    if (typeof proofHeader !== 'string' || proofHeader.includes(',')) {
      throw new DpopApiError(401, 'invalid_dpop_proof', 'exactly one DPoP proof header is required');
    }
    let proof: Record<string, unknown>;
    let jwk: Parameters<typeof calculateJwkThumbprint>[0];
    try {
      const verified = await jwtVerify(proofHeader, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: ALGORITHMS });
      proof = verified.payload;
      jwk = verified.protectedHeader.jwk!;
    } catch {
      throw new DpopApiError(
        401,
        'invalid_dpop_proof',
        'the DPoP proof signature, typ or algorithm is invalid',
      );
    }
    const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
    record.proof = {
      ...(str(proof.jti) ? { jti: str(proof.jti) } : {}),
      ...(str(proof.htm) ? { htm: str(proof.htm) } : {}),
      ...(str(proof.htu) ? { htu: str(proof.htu) } : {}),
      ...(str(proof.ath) ? { ath: str(proof.ath) } : {}),
      ...(str(proof.nonce) ? { nonce: str(proof.nonce) } : {}),
      ...(typeof proof.iat === 'number' ? { iat: proof.iat } : {}),
    };
    const jkt = await calculateJwkThumbprint(jwk);
    record.jkt = jkt;
    if (proof.htm !== req.method)
      throw new DpopApiError(401, 'invalid_dpop_proof', 'the DPoP proof htm does not match');
    const htu = typeof proof.htu === 'string' ? URL.parse(proof.htu) : null;
    if (htu === null || htu.search !== '' || htu.hash !== '' || htu.href !== `${ctx.issuer}${url.pathname}`) {
      throw new DpopApiError(401, 'invalid_dpop_proof', 'the DPoP proof htu does not match');
    }
    const now = Math.floor(Date.now() / 1000);
    if (typeof proof.iat !== 'number' || Math.abs(now - proof.iat) > IAT_WINDOW) {
      throw new DpopApiError(401, 'invalid_dpop_proof', 'the DPoP proof iat is outside the window');
    }
    const jti = proof.jti;
    if (typeof jti !== 'string' || jti === '')
      throw new DpopApiError(401, 'invalid_dpop_proof', 'the DPoP proof has no jti');
    for (const [id, exp] of seen) {
      if (exp >= now) break;
      seen.delete(id);
    }
    if (seen.has(jti) || replays > 0) {
      if (replays > 0) replays--;
      throw new DpopApiError(401, 'invalid_dpop_proof', 'the DPoP proof jti was already used');
    }
    seen.set(jti, now + 2 * IAT_WINDOW);
    if (proof.ath !== createHash('sha256').update(token).digest('base64url')) {
      throw new DpopApiError(401, 'invalid_dpop_proof', 'the DPoP proof ath does not match the access token');
    }
    let claims: DpopTokenClaims;
    try {
      ({ payload: claims } = await jwtVerify<DpopTokenClaims>(token, ctx.jwks, {
        issuer: ctx.issuer,
        audience: ctx.audience,
        algorithms: ['RS256'],
        typ: 'at+jwt',
      }));
    } catch {
      throw new DpopApiError(401, 'invalid_token', 'the access token is invalid or expired');
    }
    const reason = ctx.rejectReason(claims);
    if (reason) throw new DpopApiError(401, 'invalid_token', reason);
    if (claims.cnf?.jkt === undefined)
      throw new DpopApiError(401, 'invalid_token', 'the access token is not DPoP-bound');
    if (claims.cnf.jkt !== jkt) {
      throw new DpopApiError(401, 'invalid_token', 'the access token is bound to another key than the proof');
    }
    if (refuse > 0) {
      refuse--;
      throw new DpopApiError(401, 'use_dpop_nonce', 'the API wants a fresh DPoP nonce', nonce);
    }
    if (control.apiNonce && proof.nonce !== nonce) {
      throw new DpopApiError(401, 'use_dpop_nonce', 'the API wants its DPoP nonce in the proof', nonce);
    }
    return claims;
  }

  async function handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const path = url.pathname.slice(ctx.basePath.length) || '/';
    const record: DpopApiRequest = {
      method: req.method ?? 'GET',
      path: `${url.pathname}${url.search}`,
      status: 0,
    };
    if (requests.length >= MAX_RECORDED) requests.shift();
    requests.push(record);
    try {
      if (path === '/redirect') {
        const to = url.searchParams.get('to') ?? `${ctx.basePath}/hello`;
        record.status = 307;
        res.statusCode = 307;
        res.setHeader('Location', new URL(to, ctx.issuer).href);
        res.end();
        return;
      }
      const claims = await verify(req, url, record);
      if (control.apiNonce && control.rotateOnSuccess) {
        control.rotateApiNonce();
        res.setHeader('DPoP-Nonce', nonce);
      }
      if (path === '/hello' && (req.method === 'GET' || req.method === 'HEAD')) {
        record.status = 200;
        sendJson(res, 200, { ok: true, sub: claims.sub, client_id: claims.client_id, jkt: claims.cnf?.jkt });
        return;
      }
      if (path === '/echo' && req.method === 'POST') {
        const body = (await readBody(req, 1024 * 1024)).toString('utf8');
        record.body = body;
        record.status = 200;
        res.statusCode = 200;
        res.setHeader('Content-Type', 'text/plain; charset=utf-8');
        res.end(body);
        return;
      }
      throw new DpopApiError(404, 'not_found', `no DPoP API endpoint at ${url.pathname}`);
    } catch (err) {
      if (!(err instanceof DpopApiError)) throw err;
      record.status = err.status;
      record.error = err.code;
      // A request refused before its body was read: drain it so the connection stays usable.
      req.resume();
      if (err.status === 401) {
        res.setHeader(
          'WWW-Authenticate',
          `DPoP algs="${ALGORITHMS.join(' ')}", error="${err.code}", error_description="${quote(err.description)}"`,
        );
      }
      if (err.nonce !== undefined) res.setHeader('DPoP-Nonce', err.nonce);
      sendJson(res, err.status, { error: err.code, error_description: err.description });
    }
  }

  return { control, handle };
}

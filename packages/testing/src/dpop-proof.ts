import { createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
import { type RecordedRequest, type Reply, startServer, type TestServer } from './index.js';

/** The claims of a DPoP proof (RFC 9449 4.2) the adapter tests look at. */
export interface DpopProofClaims {
  jti: string;
  htm: string;
  htu: string;
  ath?: string;
  nonce?: string;
}

/**
 * RFC 9449 4.3 checks of one request's proof, as a resource server makes them: the ES256 signature with
 * the header's key, `typ`, `htm`, `htu` (the URL without query), `ath` (the token's hash). Returns the
 * proof's claims, or why it is refused.
 */
export function checkDpopProof(
  req: RecordedRequest,
  origin: string,
  token: string,
): DpopProofClaims | string {
  const proof = req.headers.dpop;
  if (typeof proof !== 'string') return 'no proof';
  const [h, p, s] = proof.split('.');
  if (!h || !p || !s) return 'not a JWS';
  const header = JSON.parse(Buffer.from(h, 'base64url').toString()) as { typ?: string; jwk?: object };
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString()) as DpopProofClaims;
  if (header.typ !== 'dpop+jwt' || !header.jwk) return 'bad header';
  const key = createPublicKey({ key: header.jwk as never, format: 'jwk' });
  const ok = verify(
    'sha256',
    Buffer.from(`${h}.${p}`),
    { key, dsaEncoding: 'ieee-p1363' },
    Buffer.from(s, 'base64url'),
  );
  if (!ok) return 'bad signature';
  if (claims.htm !== req.method) return 'htm';
  if (claims.htu !== `${origin}${req.path.split('?')[0]}`) return 'htu';
  if (claims.ath !== createHash('sha256').update(token).digest('base64url')) return 'ath';
  return claims;
}

/**
 * A DPoP-only API on 127.0.0.1 (RFC 9449 7, 9): every request needs `Authorization: DPoP <token>` (one
 * of `tokens()`) and a valid proof with a fresh `jti`, else 401 `invalid_token`. With `nonces`, the
 * proof must also carry the current nonce (otherwise 401 `use_dpop_nonce` with the nonce), and every
 * answered request rotates it (`DPoP-Nonce` on the 200, the 404 and the 302). `/redir?to=` answers 302
 * to `to`; `/missing` is a 404. `outcomes` lists what each request got; `proofs` the accepted proofs.
 * Close `api` when done.
 */
export async function startDpopApi(
  tokens: () => readonly string[],
  options: { nonces?: boolean } = {},
): Promise<{ api: TestServer; outcomes: (number | string)[]; proofs: DpopProofClaims[] }> {
  let nonce = `n-${randomBytes(6).toString('hex')}`;
  const jtis = new Set<string>();
  const outcomes: (number | string)[] = [];
  const proofs: DpopProofClaims[] = [];
  const api: TestServer = await startServer((req): Reply => {
    const m = /^DPoP (.+)$/.exec(req.headers.authorization ?? '');
    const token = m?.[1];
    const claims = token && tokens().includes(token) ? checkDpopProof(req, api.url, token) : 'token';
    if (typeof claims === 'string' || jtis.has(claims.jti)) {
      outcomes.push(typeof claims === 'string' ? claims : 'replay');
      return { status: 401, headers: { 'www-authenticate': 'DPoP error="invalid_token"' } };
    }
    jtis.add(claims.jti);
    proofs.push(claims);
    if (options.nonces && claims.nonce !== nonce) {
      outcomes.push(401);
      return {
        status: 401,
        headers: {
          'www-authenticate':
            'DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"',
          'dpop-nonce': nonce,
        },
      };
    }
    if (options.nonces) nonce = `n-${randomBytes(6).toString('hex')}`;
    const fresh: Record<string, string> = options.nonces ? { 'dpop-nonce': nonce } : {};
    const url = new URL(req.path, api.url);
    if (url.pathname === '/redir') {
      outcomes.push(302);
      return { status: 302, headers: { ...fresh, location: url.searchParams.get('to') ?? '/' } };
    }
    if (url.pathname === '/missing') {
      outcomes.push(404);
      return { status: 404, headers: { ...fresh }, body: { error: 'not_found' } };
    }
    outcomes.push(200);
    return { headers: { ...fresh }, body: { ok: true, path: req.path } };
  });
  return { api, outcomes, proofs };
}

import { createHash, createPublicKey, verify } from 'node:crypto';
import type { RecordedRequest } from './index.js';

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

import type { Request } from 'express';

/** RFC 6750 2.1: `Bearer` (any case), one space or more, then a b64token. */
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

/**
 * The bearer token of the incoming request (`Authorization: Bearer <token>`), or `undefined`. For
 * `tokenMiddleware(exchange, { subjectToken: bearerToken })`: exchange the caller's token (RFC 8693).
 *
 * @see https://www.rfc-editor.org/rfc/rfc6750#section-2.1
 */
export function bearerToken(req: Request): string | undefined {
  const header = req.headers.authorization;
  if (typeof header !== 'string' || header.length > 16_384) return undefined;
  return BEARER.exec(header)?.[1];
}

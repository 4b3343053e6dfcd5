import type { IncomingMessage, ServerResponse } from 'node:http';

export class BodyTooLargeError extends Error {
  constructor(limit: number) {
    super(`request body larger than ${limit} bytes`);
  }
}

/** Reads the whole request body, failing past `limit` bytes. */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let received = 0;
  for await (const chunk of req) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    received += buf.length;
    if (received > limit) throw new BodyTooLargeError(limit);
    chunks.push(buf);
  }
  return Buffer.concat(chunks, received);
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.end(text);
}

/** The client credentials of a token/revocation request (RFC 6749 section 2.3.1), as sent. */
export interface PresentedClientAuth {
  method: 'client_secret_basic' | 'client_secret_post' | 'none';
  clientId: string;
  clientSecret?: string;
}

function formDecode(value: string): string {
  return decodeURIComponent(value.replace(/\+/g, ' '));
}

/** Reads HTTP Basic or body client credentials; undefined when none or malformed. */
export function presentedClientAuth(
  authorization: string | undefined,
  params: URLSearchParams,
): PresentedClientAuth | undefined {
  if (authorization && /^Basic /i.test(authorization)) {
    const decoded = Buffer.from(authorization.slice(6).trim(), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) return undefined;
    try {
      return {
        method: 'client_secret_basic',
        clientId: formDecode(decoded.slice(0, colon)),
        clientSecret: formDecode(decoded.slice(colon + 1)),
      };
    } catch {
      return undefined;
    }
  }
  const clientId = params.get('client_id');
  if (!clientId) return undefined;
  const clientSecret = params.get('client_secret');
  if (clientSecret !== null) return { method: 'client_secret_post', clientId, clientSecret };
  return { method: 'none', clientId };
}

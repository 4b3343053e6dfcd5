import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** Cookie header -> name/value pairs; the first occurrence of a name wins (the most specific path). */
export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!header) return out;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    let value = part.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1);
    if (name && !out.has(name)) out.set(name, value);
  }
  return out;
}

function mac(secret: string, body: string): Buffer {
  return createHmac('sha256', secret).update(body).digest();
}

/** `base64url(JSON).base64url(HMAC-SHA256)`, signed with the first secret. */
export function signValue(payload: unknown, secrets: readonly string[]): string {
  const body = Buffer.from(JSON.stringify(payload), 'utf8').toString('base64url');
  return `${body}.${mac(secrets[0]!, body).toString('base64url')}`;
}

/** An HMAC-SHA256 in canonical unpadded base64url: exactly 43 characters, the last one with no stray bits. */
const MAC_SHAPE = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;

/**
 * The payload when the signature matches one of `secrets`, else undefined. The MAC is compared as its exact
 * canonical text (constant-time): Node's base64 decoder skips characters outside the alphabet and ignores
 * unused bits, so decoding first would let junk appended to a valid MAC verify.
 */
export function verifyValue(value: string, secrets: readonly string[]): unknown {
  const dot = value.lastIndexOf('.');
  if (dot <= 0 || value.length > 8192) return undefined;
  const body = value.slice(0, dot);
  const givenText = value.slice(dot + 1);
  if (!MAC_SHAPE.test(givenText)) return undefined;
  const given = Buffer.from(givenText, 'latin1');
  let ok = false;
  for (const secret of secrets) {
    const expected = Buffer.from(mac(secret, body).toString('base64url'), 'latin1');
    // Every secret is tried, so timing does not tell which one matched.
    if (timingSafeEqual(given, expected)) ok = true;
  }
  if (!ok) return undefined;
  try {
    return JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
}

/** Constant-time string equality (lengths may differ). */
export function safeEqual(a: string, b: string): boolean {
  const left = createHash('sha256').update(a, 'utf8').digest();
  const right = createHash('sha256').update(b, 'utf8').digest();
  return timingSafeEqual(left, right) && a.length === b.length;
}

/** A short, stable, non-reversible tag of a value (for cookie names). */
export function tag(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('base64url').slice(0, 16);
}

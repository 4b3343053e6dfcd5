/**
 * The one redaction helper. Every error message, log line and event payload built by keyfob
 * goes through it, so a secret, a token or a Basic header can never reach a log.
 */

/** What keyfob prints in place of a secret or a token. Use it instead of retyping the string. */
export const REDACTED = '[REDACTED]';

const FIELDS =
  'access_token|refresh_token|id_token|subject_token|actor_token|client_secret|password|code|code_verifier|assertion|client_assertion|accessToken|refreshToken|clientSecret';

// 8+ characters: a credential, not prose such as "Basic header".
const AUTH_HEADER = /\b(Bearer|Basic|Digest|DPoP)\s+[A-Za-z0-9\-._~+/]{8,}=*/gi;
// A JSON field; the value may be cut short (a body quoted up to a length limit): `$` ends it too.
const JSON_FIELD = new RegExp(`("(?:${FIELDS})"\\s*:\\s*")((?:[^"\\\\]|\\\\.)*)("|$)`, 'g');
// The same inside a JSON string (a body quoted with JSON.stringify): \"access_token\":\"...
const ESCAPED_JSON_FIELD = new RegExp(`(\\\\"(?:${FIELDS})\\\\"\\s*:\\s*\\\\")([^"\\\\]*)`, 'g');
const FORM_FIELD = new RegExp(`\\b((?:${FIELDS.replace('|code|', '|')})=)([^&\\s"']+)`, 'g');
// `code=` only as a parameter (not "status code=200" in prose).
const CODE_PARAM = /(^|[?&])(code=)([^&\s"']+)/g;
const URL_USERINFO = /(https?:\/\/)[^/\s:@]+:[^/\s@]+@/gi;

const secretsIn = new WeakMap<object, readonly string[]>();

/**
 * Replaces every known secret (`secrets`: the values a request carried) and every token-looking
 * field (Authorization schemes, OAuth fields in JSON or form bodies, URL userinfo) in `text` by
 * {@link REDACTED}. Every message, log line and event that quotes something a server said or a
 * request carried goes through it.
 */
export function redact(text: string, secrets: readonly (string | undefined)[] = []): string {
  let out = redactSecrets(text, secrets);
  out = out.replace(AUTH_HEADER, (_m, scheme: string) => `${scheme} ${REDACTED}`);
  out = out.replace(JSON_FIELD, (_m, a: string, _v: string, c: string) => `${a}${REDACTED}${c}`);
  out = out.replace(ESCAPED_JSON_FIELD, (_m, a: string) => `${a}${REDACTED}`);
  out = out.replace(FORM_FIELD, (_m, a: string) => `${a}${REDACTED}`);
  out = out.replace(CODE_PARAM, (_m, a: string, b: string) => `${a}${b}${REDACTED}`);
  out = out.replace(URL_USERINFO, (_m, scheme: string) => `${scheme}${REDACTED}@`);
  return out;
}

/**
 * Text from outside (a server's error description, a body, a field value) to quote in a message:
 * {@link redact}ed first, then cut to `max` characters. In that order, always: a cut made first can
 * split a secret, and the part left before the cut no longer matches anything.
 */
export function quote(text: string, max: number, secrets: readonly (string | undefined)[] = []): string {
  const out = redact(text, secrets);
  return out.length > max ? `${out.slice(0, max)}…` : out;
}

/**
 * Replaces only the given `secrets`, in every form they travel in (see {@link redact}), by
 * {@link REDACTED}: for text whose other fields must stay readable (a report that names an error
 * `code`, which the field patterns of `redact` would hide).
 */
export function redactSecrets(text: string, secrets: readonly (string | undefined)[]): string {
  let out = text;
  if (secrets.length > 0) {
    for (const form of wireForms(secrets)) out = out.split(form).join(REDACTED);
  }
  return out;
}

// An Authorization value: its credentials without the scheme (what a server quotes back, or the
// base64 of `id:secret` in a Basic header).
const SCHEME_VALUE = /^(?:Basic|Bearer|Digest|DPoP)\s+(\S+)$/i;

/**
 * Every form in which `secrets` travelled, longest first: as given, without an Authorization scheme,
 * form-urlencoded (a form body; RFC 6749 2.3.1 Basic credentials), percent-encoded (either hex case) and
 * JSON-escaped.
 * A token endpoint may echo any of them in an error message. Values under 4 characters are left out:
 * they would shred the message (the field patterns still catch them).
 */
function wireForms(secrets: readonly (string | undefined)[]): string[] {
  const forms = new Set<string>();
  const add = (v: string | undefined) => {
    if (v !== undefined && v.length >= 4) forms.add(v);
  };
  for (const secret of secrets) {
    if (!secret || secret.length < 4) continue;
    add(secret);
    add(SCHEME_VALUE.exec(secret)?.[1]);
    for (const encoded of [
      new URLSearchParams({ v: secret }).toString().slice(2),
      encodeURIComponent(secret),
      encodeURI(secret),
    ]) {
      add(encoded);
      // Percent-encoding is case-insensitive (RFC 3986 2.1): a server may echo `%2f` for `%2F`.
      add(encoded.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()));
    }
    add(JSON.stringify(secret).slice(1, -1));
  }
  return [...forms].sort((a, b) => b.length - a.length);
}

/** A URL safe to print: no userinfo, no query string (providers put keys there), no fragment. */
export function safeUrl(url: string | URL | undefined): string {
  if (url === undefined) return '';
  try {
    const u = new URL(String(url));
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return redact(String(url));
  }
}

/** Remembers which secrets belong to an object (used by errors created deep in the stack). */
export function attachSecrets(target: object, secrets: readonly (string | undefined)[]): void {
  secretsIn.set(
    target,
    secrets.filter((s): s is string => typeof s === 'string' && s.length > 0),
  );
}

export function secretsOf(target: object): readonly string[] {
  return secretsIn.get(target) ?? [];
}

/** A short, non-reversible fingerprint of a token, for logs and events ("which token?"). */
export function fingerprint(token: string): string {
  // FNV-1a: enough to tell tokens apart in logs, cheap, and reveals nothing useful.
  let h = 0x811c9dc5;
  for (let i = 0; i < token.length; i++) {
    h ^= token.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

import { type TokenScopeInfo, traceTokenRequest } from './diagnostics.js';
import { ErrorCode, isKeyfobError, KeyfobError, TokenEndpointError, TokenResponseError } from './errors.js';
import { attachSecrets, quote, redact, safeUrl } from './redact.js';

/** A request to a token endpoint, built by a grant. */
export interface TokenRequest {
  /** Form fields (sent as application/x-www-form-urlencoded) or a JSON object (sent as application/json). */
  body?: URLSearchParams | Record<string, string>;
  headers?: Record<string, string>;
  /** Values that must never appear in an error or log (client secret, password, refresh token, code). */
  secrets: (string | undefined)[];
  /** What is being asked for, for messages: e.g. "client_credentials". */
  grantType: string;
  /** How the client authenticated, for the 401 hint. */
  clientAuth?: string;
  /** A 2xx with an empty body is success (token revocation, RFC 7009 2.2). */
  acceptEmpty?: boolean;
  /**
   * Whether the request may be sent again once it may have reached the server. Set `false` for
   * requests that carry a single-use credential: a refresh token the server may rotate (a replay
   * then looks like theft and revokes the whole token family, OAuth 2.0 Security BCP 4.14.2) or an
   * authorization code (RFC 6749 4.1.2: single use). Such a request is resent only when the server
   * cannot have consumed it: the connection was never made (refused, DNS, unreachable, connect
   * timeout), or the server answered 429 (a rate limiter refuses before the grant is processed,
   * RFC 6585 4). A timeout, a reset after sending, or a 5xx is reported instead (the caller can
   * re-read a shared store, where another process may have stored the rotated set).
   * Defaults to `true`.
   */
  replayable?: boolean;
  /**
   * Fields made afresh for every attempt, retries included, and added to the body (form or JSON): a
   * client assertion (RFC 7523 2.2) or a JWT bearer grant's assertion (2.1), whose `jti` a server
   * accepts once. Their values are redacted like `secrets`.
   */
  attemptFields?: () => Record<string, string> | Promise<Record<string, string>>;
}

export interface TokenEndpointOptions {
  /** Per-attempt timeout, ms. Defaults to `10_000`. */
  timeoutMs: number;
  /** Retries after the first attempt on network errors, timeouts, 5xx and 429. Defaults to `2`. */
  retries: number;
  /** First backoff delay, ms (exponential, full jitter). Defaults to `200`. */
  retryBaseDelayMs: number;
  /** Longest Retry-After keyfob waits for; a longer one fails at once with `retryAfterMs`. Defaults to `30_000`. */
  maxRetryAfterMs: number;
  /** Largest response body read, bytes. Defaults to `65_536`. */
  maxResponseBytes: number;
  fetch: typeof fetch;
  userAgent: string;
  /**
   * Keep the process alive while waiting between attempts (backoff, Retry-After). A caller awaiting
   * a token must not see its script exit in the middle of a retry wait; a background refresh-ahead
   * for a token still being served passes `false`, so it never holds a process open.
   * Defaults to `true`.
   */
  keepAlive?: boolean;
  /**
   * DPoP (RFC 9449): a proof is made for every attempt (a fresh `jti`, the latest nonce for the
   * token endpoint's origin), the server's `DPoP-Nonce` is kept, and a `use_dpop_nonce` challenge is
   * answered with exactly one more attempt. Defaults to none.
   */
  dpop?: DpopSigner | undefined;
}

/** What the token endpoint client needs of a DPoP key ({@link DpopKey}). */
export interface DpopSigner {
  proof(input: { method: string; url: string | URL }): string;
  rememberNonce(url: string | URL, nonce: string | null | undefined): void;
}

const RETRYABLE_STATUS = new Set([429, 500, 502, 503, 504]);

/**
 * Sleeps `ms`; rejects when `signal` aborts. The timer is unref'd (it does not keep the process
 * alive) unless `keepAlive` is set: use that for a wait a caller is awaiting.
 */
export function sleep(ms: number, signal?: AbortSignal, keepAlive = false): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    if (!keepAlive) timer.unref?.();
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * A network error as a cause to keep: its name, code, redacted message and stack, and its own causes
 * (three deep), and nothing else. A `fetch` of the user's may attach the request (with its body and
 * headers, so the client secret) to the errors it throws; `util.inspect` of the keyfob error would print it.
 */
function safeCause(e: unknown, secrets: readonly (string | undefined)[], depth = 0): unknown {
  if (!(e instanceof Error) || depth > 3) return e instanceof Error ? undefined : redact(String(e), secrets);
  const inner = (e as { cause?: unknown }).cause;
  const copy = new Error(
    redact(e.message, secrets),
    inner === undefined ? undefined : { cause: safeCause(inner, secrets, depth + 1) },
  );
  copy.name = e.name;
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string' || typeof code === 'number') Object.assign(copy, { code });
  copy.stack = e.stack === undefined ? undefined : redact(e.stack, secrets);
  return copy;
}

/** Exponential backoff with full jitter, capped at 5 s: the wait before retry number `attempt + 1`. */
export function backoff(attempt: number, base: number): number {
  const cap = Math.min(base * 2 ** attempt, 5_000);
  return Math.round(cap / 2 + Math.random() * (cap / 2));
}

/**
 * Parses Retry-After (RFC 9110 10.2.3): delta-seconds, or an HTTP-date (RFC 9110 5.6.7, its three
 * formats all start with the day name); a date in the past is 0. Anything else is `undefined` (the
 * usual backoff applies): Date.parse alone reads nearly any text with a number in it as a date
 * ("abc 5521" is the year 5521), which would turn a junk header into a long wait or a refusal.
 */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const s = value.trim();
  if (/^\d+$/.test(s)) return Number(s) * 1000;
  if (!/^(Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*,? /.test(s)) return undefined;
  const at = Date.parse(s);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** What each status means, worded like the providers' troubleshooting guides (seeds 001). */
const STATUS_HINTS: Record<number, string> = {
  400: 'Malformed request: check for a malformed body or a missing field (grant_type, scope, redirect_uri, code), and that the provider supports this grant.',
  401: 'The client credentials were not accepted: check the client id and client secret, their encoding in the Basic header, and the client authentication method.',
  403: 'The credentials were accepted but this client lacks the permission or scope it asked for: check its roles and allowed scopes with the provider.',
  404: 'Wrong token URL: check the host, the path (e.g. /oauth2/token, /api/v1/account/token) and the environment.',
  405: 'The token URL does not accept POST: it is probably not the token endpoint.',
  429: 'The token endpoint is rate-limiting this client; keyfob caches tokens, so many processes or a missing cache are the usual cause (a shared store such as @keyfob/redis helps).',
};

/** Whether the request carried a client credential: a Basic header, a secret or an assertion, or a TLS certificate. */
function sentClientCredentials(req: TokenRequest): boolean {
  const method = req.clientAuth;
  if (method === 'tls_client_auth' || method === 'private_key_jwt' || method === 'client_secret_jwt')
    return true;
  if (/^Basic /i.test(req.headers?.authorization ?? '')) return true;
  const body = req.body;
  return body instanceof URLSearchParams ? body.has('client_secret') : body?.client_secret !== undefined;
}

function hintFor(status: number, req: TokenRequest, oauthError: string | undefined): string {
  if (oauthError === 'use_dpop_nonce')
    return "The token endpoint asked for a DPoP nonce again after keyfob answered its challenge with the nonce it gave (RFC 9449 8); check the server's nonce lifetime and this machine's clock.";
  if (oauthError === 'invalid_dpop_proof')
    return "The token endpoint refused keyfob's DPoP proof; check that it accepts the key's algorithm (dpop_signing_alg_values_supported) and that this machine's clock is right (iat).";
  if (oauthError === 'invalid_grant' && req.grantType === 'refresh_token')
    return 'The refresh token is expired, revoked or was already used (rotation): the user must log in again.';
  if (oauthError === 'invalid_grant' && req.grantType === 'authorization_code')
    return 'The authorization code is invalid, expired, already used, or redirect_uri / code_verifier do not match the authorization request.';
  if (oauthError === 'invalid_grant' && req.grantType === 'password')
    return 'The username or password is wrong, or the account is locked.';
  if (oauthError === 'invalid_grant' && req.grantType === 'token_exchange')
    return 'The subject (or actor) token was refused: it is expired, revoked, of another subject_token_type, or from an issuer this server does not trust for token exchange.';
  if (oauthError === 'invalid_grant' && req.grantType === 'jwt_bearer')
    return "The assertion was refused: check that the provider trusts its issuer and signing key, that aud is the provider's issuer or token endpoint, and that it has not expired.";
  if (status === 401 || oauthError === 'invalid_client') {
    // Say what was actually sent: a password grant without a client secret sends no client credentials.
    if (!sentClientCredentials(req)) {
      return req.grantType === 'password'
        ? 'The username or password is wrong, or the account is locked. keyfob sent no client credentials (no clientSecret); if the provider also wants the client authenticated, set clientId and clientSecret.'
        : `The client was not authenticated: keyfob sent no client secret or assertion (clientId only, or none); if the provider wants the client authenticated, set clientSecret (or clientAuth: 'private_key_jwt' with privateKey).`;
    }
    // What to check first depends on how the client authenticated: only Basic has an encoding to get wrong.
    const lead =
      req.clientAuth === 'basic' || req.clientAuth === 'basic-only' || req.clientAuth === undefined
        ? STATUS_HINTS[401]
        : req.clientAuth === 'body' || req.clientAuth === 'json'
          ? 'The client credentials were not accepted: check the client id and client secret, and the client authentication method.'
          : 'The client was not authenticated.';
    const inBody = "if the provider wants the credentials in the body, set clientAuth: 'body'.";
    const how =
      req.clientAuth === 'basic'
        ? `keyfob sent them in an HTTP Basic header, form-urlencoded before base64 as RFC 6749 2.3.1 says; if the provider expects them unencoded, set basicEncoding: 'raw'; ${inBody}`
        : req.clientAuth === 'basic-only'
          ? `keyfob sent only an HTTP Basic header (base64 of 'client:secret'), no grant body; check the values, or set clientAuth: 'basic' if the provider expects a grant body; ${inBody}`
          : req.clientAuth === 'private_key_jwt' || req.clientAuth === 'client_secret_jwt'
            ? `keyfob sent a client assertion (clientAuth: '${req.clientAuth}'); check that the provider has this client registered for that method with ${req.clientAuth === 'private_key_jwt' ? 'the public key of privateKey (and its keyId)' : 'this secret'}, the algorithm, and the audience it expects (assertionAudience: its issuer or token endpoint).`
            : req.clientAuth === 'tls_client_auth'
              ? "keyfob sent only client_id (clientAuth: 'tls_client_auth'); check that the dispatcher (or fetch) given to the TokenManager presents the client certificate the provider has registered, and that tokenUrl is its mTLS endpoint (mtls_endpoint_aliases)."
              : req.clientAuth
                ? `keyfob sent them as clientAuth: '${req.clientAuth}'; check the provider expects that method.`
                : '';
    return `${lead} ${how}`.trim();
  }
  if (oauthError === 'invalid_scope') return 'The requested scope is unknown or not allowed for this client.';
  if (oauthError === 'unsupported_grant_type')
    return `The server does not allow the ${req.grantType} grant for this client.`;
  if (STATUS_HINTS[status]) return STATUS_HINTS[status]!;
  if (status >= 500)
    return 'The token endpoint failed on its side: try again later or check the provider status.';
  return 'Read the error and error_description the server returned.';
}

/** What the attempts were, for a hint: never "retried" when there was one attempt. */
function attemptsNote(attempts: number, notResent: boolean): string {
  if (notResent) {
    return ' keyfob did not resend it: the server may already have used its single-use refresh token or authorization code.';
  }
  return attempts > 1 ? ` keyfob tried ${attempts} times with backoff.` : '';
}

function describeNetworkError(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
  const code = cause?.code ?? (err as { code?: string })?.code;
  return code ? String(code) : err instanceof Error ? err.message : String(err);
}

/** Error codes raised before a connection exists: the request cannot have reached the server. */
const NOT_SENT = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** Whether a fetch failure certainly happened before the request was sent (fetch's error or its cause, or every error of an AggregateError from happy eyeballs). */
function neverSent(err: unknown): boolean {
  const codes: unknown[] = [];
  const visit = (e: unknown, depth: number) => {
    if (!e || typeof e !== 'object' || depth > 3) return;
    const { code, cause, errors } = e as { code?: unknown; cause?: unknown; errors?: unknown };
    if (Array.isArray(errors) && errors.length > 0) {
      for (const x of errors) visit(x, depth + 1);
      return;
    }
    if (cause !== undefined) return visit(cause, depth + 1);
    codes.push(code);
  };
  visit(err, 0);
  return codes.length > 0 && codes.every((c) => typeof c === 'string' && NOT_SENT.has(c));
}

async function readCapped(res: Response, max: number): Promise<string> {
  const declared = Number(res.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > max) {
    await res.body?.cancel().catch(() => {});
    throw new TokenResponseError(
      `The token endpoint's response is ${declared} bytes, over maxResponseBytes (${max}).`,
      {
        status: res.status,
        hint: 'A token response is a small JSON object; check the token URL.',
      },
    );
  }
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => {});
      throw new TokenResponseError(`The token endpoint's response is over maxResponseBytes (${max}).`, {
        status: res.status,
        hint: 'A token response is a small JSON object; check the token URL.',
      });
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function parseBody(text: string, contentType: string): unknown {
  const trimmed = text.trim();
  if (trimmed === '') return undefined;
  if (contentType.includes('application/x-www-form-urlencoded') && !trimmed.startsWith('{')) {
    return Object.fromEntries(new URLSearchParams(trimmed));
  }
  try {
    return JSON.parse(trimmed);
  } catch {
    return undefined;
  }
}

function describeBody(text: string, contentType: string, secrets: readonly (string | undefined)[]): string {
  const t = text.trim();
  if (t === '') return 'an empty body';
  if (/^<(!doctype|html|head|body|\?xml)/i.test(t) || contentType.includes('html')) {
    const title = /<title[^>]*>([^<]*)/i.exec(t)?.[1]?.trim();
    return `an HTML page${title ? ` ("${quote(title, 80, secrets)}")` : ''} instead of JSON`;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(t);
  } catch {
    parsed = undefined;
  }
  if (parsed === null) return 'a JSON null';
  if (Array.isArray(parsed)) return `a JSON array (${parsed.length} items), not an object`;
  if (parsed !== undefined && typeof parsed === 'object') {
    const fields = Object.keys(parsed).slice(0, 10);
    // Field names only: their values may hold a token or an echoed secret.
    return fields.length === 0
      ? 'an empty JSON object (no OAuth error code)'
      : `a JSON object without an OAuth error code (fields: ${fields.map((f) => quote(f, 40, secrets)).join(', ')})`;
  }
  if (parsed !== undefined) return `a JSON ${typeof parsed}, not an object`;
  // A broken or truncated JSON object is most likely a token response: quoting its start would
  // print a token prefix (`{"access_token":"eyJ...`), so only its shape is described.
  if (t.startsWith('{') || t.startsWith('[')) {
    return `a body that is not JSON (${t.length} characters starting with "${t[0]}", cut or malformed)`;
  }
  return `a body that is not JSON (starts with ${JSON.stringify(quote(t, 40, secrets))})`;
}

/** A `Location` header, printable: absolute URL without credentials or query, or a note that it does not parse. */
function describeLocation(location: string | null, base: string): string {
  if (!location) return '';
  try {
    return ` to ${safeUrl(new URL(location, base))}`;
  } catch {
    return ' to an unparsable Location';
  }
}

/** The body of one attempt: the body plus the request's per-attempt fields (TokenRequest.attemptFields). */
async function attemptPayload(
  req: TokenRequest,
  payload: string | undefined,
  secrets: (string | undefined)[],
): Promise<string | undefined> {
  if (!req.attemptFields || req.body === undefined) return payload;
  const fields = await req.attemptFields();
  secrets.push(...Object.values(fields));
  if (!(req.body instanceof URLSearchParams)) return JSON.stringify({ ...req.body, ...fields });
  const form = new URLSearchParams(req.body);
  for (const [name, value] of Object.entries(fields)) form.set(name, value);
  return form.toString();
}

/**
 * The one token endpoint client. POSTs `req` to `tokenUrl` with a timeout and a size-capped read,
 * and retries with backoff and full jitter on network errors, timeouts, 5xx and 429 (honouring
 * Retry-After), never on other 4xx; a request with `replayable: false` only where the server cannot
 * have consumed it. Every message built from the response is redacted with the request's secrets.
 * Returns the parsed JSON object of a 2xx response.
 */
export async function postTokenRequest(
  tokenUrl: string,
  req: TokenRequest,
  opts: TokenEndpointOptions,
  signal?: AbortSignal,
  /** Who asks, for the `keyfob:token-request` diagnostics channel (each attempt is traced). */
  diag?: TokenScopeInfo,
  /** Called when an attempt failed and another will follow (before the backoff or Retry-After wait). */
  onRetry?: () => void,
): Promise<Record<string, unknown>> {
  const where = safeUrl(tokenUrl);
  const headers: Record<string, string> = {
    accept: 'application/json',
    'user-agent': opts.userAgent,
    ...req.headers,
  };
  let payload: string | undefined;
  if (req.body instanceof URLSearchParams) {
    payload = req.body.toString();
    headers['content-type'] = 'application/x-www-form-urlencoded;charset=UTF-8';
  } else if (req.body) {
    payload = JSON.stringify(req.body);
    headers['content-type'] = 'application/json';
  }
  const secrets = [...req.secrets];
  const safe = (s: string) => redact(s, secrets);
  const replayable = req.replayable !== false;
  const keepAlive = opts.keepAlive !== false;
  let timedOut = false;
  const transportError = (e: unknown, attempts: number, notResent: boolean, sent: boolean): KeyfobError => {
    if (signal?.aborted) return abortError(signal);
    if (timedOut) {
      return new TokenEndpointError(
        `The token endpoint ${where} did not answer within ${opts.timeoutMs} ms.`,
        {
          code: ErrorCode.TokenEndpointTimeout,
          tokenUrl: where,
          attempts,
          hint: `Check the network path to the provider (proxy, firewall, DNS), or raise timeoutMs.${attemptsNote(attempts, notResent)}`,
        },
      );
    }
    return new TokenEndpointError(
      `Could not reach the token endpoint ${where} (${safe(describeNetworkError(e))}).`,
      {
        code: ErrorCode.TokenEndpointNetwork,
        tokenUrl: where,
        attempts,
        // Attempts go on after one that never reached the server only if it was safe to resend:
        // the last one never sent means no attempt consumed anything.
        ...(sent ? {} : { requestSent: false }),
        hint: `Check the host and port in tokenUrl, DNS, proxies and TLS.${attemptsNote(attempts, notResent)}`,
        cause: safeCause(e, secrets),
      },
    );
  };

  let lastError: KeyfobError | undefined;
  let nonceAnswered = false;
  for (let attempt = 0; attempt <= opts.retries; attempt++) {
    // Per-attempt fields are made before the attempt's clock starts (an assertion function may take
    // its time); the abort check follows them, since a listener added after an abort never fires.
    const requestBody = req.attemptFields ? await attemptPayload(req, payload, secrets) : payload;
    if (signal?.aborted) throw abortError(signal);
    const attempts = attempt + 1;
    const last = attempt === opts.retries;
    const trace = diag && traceTokenRequest(diag, req.grantType, where, attempts);
    const controller = new AbortController();
    const onAbort = () => controller.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, opts.timeoutMs);
    // The open request keeps the process alive; the timer that ends it need not.
    timer.unref?.();
    let retryDelay: number | undefined;
    let retry = false;
    let nonceChallenge = false;
    try {
      let res: Response;
      try {
        // A fresh proof for every attempt: a server accepts a proof's jti once (RFC 9449 11.1).
        if (opts.dpop) headers.dpop = opts.dpop.proof({ method: 'POST', url: tokenUrl });
        res = await opts.fetch(tokenUrl, {
          method: 'POST',
          headers,
          ...(requestBody === undefined ? {} : { body: requestBody }),
          // A token endpoint that redirects is misconfigured; following it could send the
          // credentials to another host, so keyfob never follows.
          redirect: 'manual',
          signal: controller.signal,
        });
      } catch (e) {
        const sent = !neverSent(e);
        retry = !last && (replayable || !sent);
        throw transportError(e, attempts, !replayable && sent && !last, sent);
      }
      opts.dpop?.rememberNonce(tokenUrl, res.headers.get('dpop-nonce'));
      const contentType = (res.headers.get('content-type') ?? '').toLowerCase();
      if (res.status >= 300 && res.status < 400) {
        await res.body?.cancel().catch(() => {});
        throw new TokenEndpointError(
          `The token endpoint ${where} answered ${res.status}, a redirect${safe(describeLocation(res.headers.get('location'), tokenUrl))}.`,
          {
            code: ErrorCode.TokenEndpointRedirect,
            status: res.status,
            tokenUrl: where,
            attempts,
            hint: 'keyfob does not follow redirects from a token endpoint (the credentials could go to another host); set tokenUrl to the final URL (often http -> https or a missing/extra trailing slash).',
          },
        );
      }
      let text: string;
      try {
        text = await readCapped(res, opts.maxResponseBytes);
      } catch (e) {
        if (e instanceof KeyfobError) throw e;
        // The connection broke while the answer was arriving: the server has processed the request.
        retry = !last && replayable;
        throw transportError(e, attempts, !replayable && !last, true);
      }
      const body = parseBody(text, contentType);
      const obj =
        body && typeof body === 'object' && !Array.isArray(body)
          ? (body as Record<string, unknown>)
          : undefined;
      const oauthError = typeof obj?.error === 'string' ? quote(obj.error, 100, secrets) : undefined;
      const description =
        typeof obj?.error_description === 'string'
          ? quote(obj.error_description, 300, secrets)
          : typeof obj?.message === 'string'
            ? quote(obj.message, 300, secrets)
            : undefined;
      if (res.ok) {
        if (req.acceptEmpty && text.trim() === '') {
          trace?.succeeded(res.status, {});
          return {};
        }
        if (
          obj &&
          oauthError !== undefined &&
          (obj.access_token === undefined || obj.access_token === null)
        ) {
          // Some providers answer 200 with an error object (and may echo the request in it).
          throw new TokenResponseError(
            `The token endpoint ${where} answered ${res.status} with an OAuth error instead of a token (${oauthError}${description ? `: ${description}` : ''}).`,
            {
              status: res.status,
              tokenUrl: where,
              hint:
                oauthError === 'invalid_client'
                  ? hintFor(401, req, oauthError)
                  : 'Read the error: the provider rejected the request but did not say so in the HTTP status.',
            },
          );
        }
        if (obj) {
          trace?.succeeded(res.status, obj);
          // The normaliser quotes parts of the answer in its errors (a malformed expires_in, an unknown
          // token_type): it redacts them with what this request carried (normaliseTokenResponse).
          attachSecrets(obj, secrets);
          return obj;
        }
        throw new TokenResponseError(
          `The token endpoint ${where} answered ${res.status} with ${describeBody(text, contentType, secrets)}.`,
          {
            status: res.status,
            tokenUrl: where,
            hint: 'Check that tokenUrl is the token endpoint itself, not a login page or an API gateway error page.',
          },
        );
      }
      const what = oauthError
        ? `${oauthError}${description ? `: ${description}` : ''}`
        : (description ?? describeBody(text, contentType, secrets));
      const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'));
      // RFC 9449 8: the server refused the proof for want of its nonce, before processing the grant
      // (so even a single-use request may be resent): exactly one more attempt, carrying the nonce.
      nonceChallenge =
        opts.dpop !== undefined &&
        !nonceAnswered &&
        res.status === 400 &&
        oauthError === 'use_dpop_nonce' &&
        res.headers.has('dpop-nonce');
      // 429: a rate limiter refuses before the grant is processed, so even a single-use request may be resent.
      const retryable =
        RETRYABLE_STATUS.has(res.status) &&
        (replayable || res.status === 429) &&
        !(retryAfterMs !== undefined && retryAfterMs > opts.maxRetryAfterMs);
      retry = nonceChallenge || (retryable && !last);
      const notResent = !replayable && RETRYABLE_STATUS.has(res.status) && res.status !== 429 && !last;
      retryDelay = retryAfterMs;
      throw new TokenEndpointError(
        `The token endpoint ${where} answered ${res.status} to ${/^[aeiou]/i.test(req.grantType) ? 'an' : 'a'} ${req.grantType} request (${what}).`,
        {
          status: res.status,
          ...(oauthError === undefined ? {} : { error: oauthError }),
          ...(description === undefined ? {} : { errorDescription: description }),
          tokenUrl: where,
          attempts,
          ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
          hint: `${hintFor(res.status, req, oauthError)}${attemptsNote(attempts, notResent)}`,
        },
      );
    } catch (e) {
      trace?.failed(e);
      if (!retry) throw e;
      lastError = e as KeyfobError;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
    if (nonceChallenge) {
      // Not a failure of the endpoint: answered at once, and not counted against `retries`.
      nonceAnswered = true;
      attempt--;
      continue;
    }
    onRetry?.();
    try {
      await sleep(retryDelay ?? backoff(attempt, opts.retryBaseDelayMs), signal, keepAlive);
    } catch {
      throw abortError(signal);
    }
  }
  throw lastError!;
}

/**
 * The error for a wait that `signal` ended: `KEYFOB_CLOSED` when the manager's close() did it (its
 * reason is then a closed error), `KEYFOB_ABORTED` for the caller's own signal.
 */
export function abortError(signal: AbortSignal | undefined): KeyfobError {
  const reason: unknown = signal?.reason;
  if (isKeyfobError(reason) && reason.code === ErrorCode.Closed) {
    return new KeyfobError('The token request was stopped: the TokenManager was closed.', {
      code: ErrorCode.Closed,
    });
  }
  return new KeyfobError('The token request was aborted.', { code: ErrorCode.Aborted, cause: reason });
}

import { ErrorCode, KeyfobError, TokenEndpointError, TokenResponseError } from './errors.js';
import { redact, safeUrl } from './redact.js';

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
}

const RETRYABLE_STATUS = new Set([429, 500, 502, 503, 504]);

/** Sleeps `ms` on an unref'd timer; rejects when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    timer.unref?.();
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function backoff(attempt: number, base: number): number {
  const cap = Math.min(base * 2 ** attempt, 5_000);
  return Math.round(cap / 2 + Math.random() * (cap / 2));
}

/** Parses Retry-After (delta-seconds or HTTP-date, RFC 9110 10.2.3). */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const s = value.trim();
  if (/^\d+$/.test(s)) return Number(s) * 1000;
  const at = Date.parse(s);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

const STATUS_HINTS: Record<number, string> = {
  400: 'Check the request: a malformed body or a missing field (grant_type, scope, redirect_uri, code), or an unsupported grant.',
  401: 'Check the client id and client secret and how they are sent.',
  403: 'The credentials were accepted but this client lacks the permission or scope it asked for; check its roles and allowed scopes with the provider.',
  404: 'Wrong token URL: check the host, the path (e.g. /oauth2/token, /api/v1/account/token) and the environment.',
  405: 'The token URL does not accept POST: it is probably not the token endpoint.',
  429: 'The token endpoint is rate-limiting this client; keyfob caches tokens, so many processes or a missing cache are the usual cause (a shared store such as @keyfob/redis helps).',
};

function hintFor(status: number, req: TokenRequest, oauthError: string | undefined): string {
  if (status === 401 || oauthError === 'invalid_client') {
    const how =
      req.clientAuth === 'basic'
        ? "keyfob sent them in an HTTP Basic header, form-urlencoded before base64 as RFC 6749 2.3.1 says; if the provider expects them unencoded, set basicEncoding: 'raw', or try clientAuth: 'body'."
        : req.clientAuth === 'basic-only'
          ? "keyfob sent only an HTTP Basic header (base64 of 'client:secret'); check the values, or that the provider does not expect a grant body (clientAuth: 'basic')."
          : req.clientAuth
            ? `keyfob sent them as clientAuth: '${req.clientAuth}'; check the provider expects that method.`
            : '';
    return `${STATUS_HINTS[401]} ${how}`.trim();
  }
  if (oauthError === 'invalid_grant' && req.grantType === 'refresh_token')
    return 'The refresh token is expired, revoked or was already used (rotation): the user must log in again.';
  if (oauthError === 'invalid_grant' && req.grantType === 'authorization_code')
    return 'The authorization code is invalid, expired, already used, or redirect_uri / code_verifier do not match the authorization request.';
  if (oauthError === 'invalid_grant' && req.grantType === 'password')
    return 'The username or password is wrong, or the account is locked.';
  if (oauthError === 'invalid_scope') return 'The requested scope is unknown or not allowed for this client.';
  if (oauthError === 'unsupported_grant_type')
    return `The server does not allow the ${req.grantType} grant for this client.`;
  if (STATUS_HINTS[status]) return STATUS_HINTS[status]!;
  if (status >= 500)
    return 'The token endpoint failed on its side; keyfob retried with backoff. Try again later or check the provider status.';
  return 'Read the error and error_description the server returned.';
}

function describeNetworkError(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
  const code = cause?.code ?? (err as { code?: string })?.code;
  return code ? String(code) : err instanceof Error ? err.message : String(err);
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

function describeBody(text: string, contentType: string): string {
  const t = text.trim();
  if (t === '') return 'an empty body';
  if (/^<(!doctype|html|head|body|\?xml)/i.test(t) || contentType.includes('html')) {
    const title = /<title[^>]*>([^<]{0,80})/i.exec(t)?.[1]?.trim();
    return `an HTML page${title ? ` ("${title}")` : ''} instead of JSON`;
  }
  return `a body that is not JSON (starts with ${JSON.stringify(t.slice(0, 40))})`;
}

/**
 * The one token endpoint client. POSTs `req` to `tokenUrl` with a timeout, a size-capped read,
 * and retries (network errors, timeouts, 5xx, 429 honouring Retry-After; never 400/401/403).
 * Returns the parsed JSON object of a 2xx response.
 */
export async function postTokenRequest(
  tokenUrl: string,
  req: TokenRequest,
  opts: TokenEndpointOptions,
  signal?: AbortSignal,
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
  const secrets = req.secrets;
  const safe = (s: string) => redact(s, secrets);

  let lastError: KeyfobError | undefined;
  for (let attempt = 0; attempt <= opts.retries; attempt++) {
    if (signal?.aborted) throw abortError(signal);
    const controller = new AbortController();
    const onAbort = () => controller.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, opts.timeoutMs);
    timer.unref?.();
    let retryDelay: number | undefined;
    try {
      const res = await opts.fetch(tokenUrl, {
        method: 'POST',
        headers,
        ...(payload === undefined ? {} : { body: payload }),
        // A token endpoint that redirects is misconfigured; following it could send the
        // credentials to another host, so keyfob never follows.
        redirect: 'manual',
        signal: controller.signal,
      });
      const contentType = (res.headers.get('content-type') ?? '').toLowerCase();
      if (res.status >= 300 && res.status < 400) {
        await res.body?.cancel().catch(() => {});
        const location = res.headers.get('location');
        throw new TokenEndpointError(
          `The token endpoint ${where} answered ${res.status}, a redirect${location ? ` to ${safeUrl(new URL(location, tokenUrl))}` : ''}.`,
          {
            code: ErrorCode.TokenEndpointRedirect,
            status: res.status,
            tokenUrl: where,
            attempts: attempt + 1,
            hint: 'keyfob does not follow redirects from a token endpoint (the credentials could go to another host); set tokenUrl to the final URL (often http -> https or a missing/extra trailing slash).',
          },
        );
      }
      const text = await readCapped(res, opts.maxResponseBytes);
      const body = parseBody(text, contentType);
      if (res.ok) {
        if (req.acceptEmpty && text.trim() === '') return {};
        if (body && typeof body === 'object' && !Array.isArray(body)) return body as Record<string, unknown>;
        throw new TokenResponseError(
          `The token endpoint ${where} answered ${res.status} with ${safe(describeBody(text, contentType))}.`,
          {
            status: res.status,
            tokenUrl: where,
            hint: 'Check that tokenUrl is the token endpoint itself, not a login page or an API gateway error page.',
          },
        );
      }
      const obj = body && typeof body === 'object' ? (body as Record<string, unknown>) : {};
      const oauthError = typeof obj.error === 'string' ? safe(obj.error.slice(0, 100)) : undefined;
      const description =
        typeof obj.error_description === 'string'
          ? safe(obj.error_description.slice(0, 300))
          : typeof obj.message === 'string'
            ? safe(obj.message.slice(0, 300))
            : undefined;
      const what = oauthError
        ? `${oauthError}${description ? `: ${description}` : ''}`
        : (description ?? safe(describeBody(text, contentType)));
      const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'));
      const err = new TokenEndpointError(
        `The token endpoint ${where} answered ${res.status} to a ${req.grantType} request (${what}).`,
        {
          status: res.status,
          ...(oauthError === undefined ? {} : { error: oauthError }),
          ...(description === undefined ? {} : { errorDescription: description }),
          tokenUrl: where,
          attempts: attempt + 1,
          ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
          hint: hintFor(res.status, req, oauthError),
        },
      );
      if (!RETRYABLE_STATUS.has(res.status)) throw err;
      if (retryAfterMs !== undefined && retryAfterMs > opts.maxRetryAfterMs) throw err;
      lastError = err;
      retryDelay = retryAfterMs;
    } catch (e) {
      if (e instanceof KeyfobError) {
        if (e !== lastError) throw e;
      } else if (signal?.aborted) {
        throw abortError(signal);
      } else if (timedOut) {
        lastError = new TokenEndpointError(
          `The token endpoint ${where} did not answer within ${opts.timeoutMs} ms.`,
          {
            code: ErrorCode.TokenEndpointTimeout,
            tokenUrl: where,
            attempts: attempt + 1,
            hint: 'Check the network path to the provider (proxy, firewall, DNS), or raise timeoutMs.',
          },
        );
      } else {
        const detail = describeNetworkError(e);
        lastError = new TokenEndpointError(`Could not reach the token endpoint ${where} (${safe(detail)}).`, {
          code: ErrorCode.TokenEndpointNetwork,
          tokenUrl: where,
          attempts: attempt + 1,
          hint: 'Check the host and port in tokenUrl, DNS, proxies and TLS; keyfob retried with backoff.',
          cause: e,
        });
      }
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
    if (attempt < opts.retries) {
      try {
        await sleep(retryDelay ?? backoff(attempt, opts.retryBaseDelayMs), signal);
      } catch {
        throw abortError(signal);
      }
    }
  }
  throw lastError!;
}

export function abortError(signal: AbortSignal | undefined): KeyfobError {
  return new KeyfobError('The token request was aborted.', {
    code: ErrorCode.Aborted,
    cause: signal?.reason,
  });
}

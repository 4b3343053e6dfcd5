import { publishUnauthorizedRetry } from './diagnostics.js';
import { type DpopKey, isUseDpopNonce } from './dpop.js';
import { ConfigurationError, ErrorCode, isKeyfobError, KeyfobError } from './errors.js';
import { safeUrl } from './redact.js';
import { abortError } from './token-endpoint.js';
import type { GetTokenOptions } from './types.js';

/**
 * The outgoing-request policy: the one place that decides, for every HTTP client, whether a request
 * gets a token, which headers carry it, whether a 401 is retried, whether a body can be replayed and
 * what a redirect may carry. `@keyfob/axios`, `@keyfob/got`, `@keyfob/fetch` and `@keyfob/nestjs`
 * are glue between their client's hooks and this class; so is any adapter you write (see the
 * README, "Writing an adapter").
 */

/** Per-request control, set as `keyfob` in a request's options by every HTTP adapter. */
export interface KeyfobRequestOptions {
  /**
   * Send this request without a keyfob token and without 401 handling. An `Authorization` header
   * you set yourself is then sent as is. Defaults to `false`.
   */
  skip?: boolean;
  /** Whose token to send (a user id for per-user token sets). Defaults to the adapter's `subject` option. */
  subject?: string;
  /** Scope of the token to send (part of the cache key). Defaults to the adapter's `scope` option. */
  scope?: string;
}

/**
 * Options every HTTP adapter takes, with the same meaning everywhere. `R` is the adapter's request
 * type (axios config, got options, fetch `Request`), handed to a `subject` function.
 */
export interface RequestPolicyOptions<R = unknown> {
  /**
   * Origins that may receive tokens, in addition to the client's base origin (`baseUrl`):
   * `'https://api.example.com'` or any URL on it. Scheme, host and port count; the host is
   * case-insensitive and default ports are normalised (`https://API.example.com:443` is
   * `https://api.example.com`). Required when the client has no base URL. Defaults to `[]`.
   */
  origins?: readonly (string | URL)[] | undefined;
  /**
   * Whose token to send: a fixed subject, or a function of the request (return `undefined` for the
   * service's own token). A request's `keyfob.subject` wins. Defaults to `undefined` (the service's own token).
   */
  subject?: string | ((request: R) => string | undefined) | undefined;
  /** Scope of the tokens to send; a request's `keyfob.scope` wins. Defaults to `undefined` (the grant's scope). */
  scope?: string | undefined;
  /**
   * On a 401 to a request that carried a keyfob token: drop exactly that token and send the request
   * once more with a fresh one, if its body can be sent again. `false`: keyfob neither invalidates
   * nor retries; the 401 goes to the caller. Defaults to `true`.
   */
  retryOn401?: boolean | undefined;
}

/** What the adapter knows about its client, passed next to the user's options. */
export interface RequestPolicyBinding {
  /** Used in error messages, e.g. `'@keyfob/axios'`. */
  name: string;
  /**
   * The client's base URL (axios `baseURL`, got `prefixUrl`), whose origin may receive tokens.
   * Defaults to none (fetch has no base URL, so `origins` is then required).
   */
  baseUrl?: string | URL;
}

/** The part of `TokenManager` the policy uses. */
export interface TokenSource {
  getAuthorizationHeader(options?: GetTokenOptions): Promise<string>;
  invalidate(token: string, options?: { subject?: string; scope?: string }): Promise<boolean>;
  /** The manager's DPoP key when `dpop` is on: the policy then adds a fresh `DPoP` proof to every attempt. */
  readonly dpop?: DpopKey | undefined;
}

/** Headers keyfob adds to one request attempt, names in lower case. */
export type TokenHeaders = Readonly<Record<string, string>>;

/**
 * One logical request going through the policy (its first attempt, its redirects and its one
 * retry). Made by {@link RequestPolicy.start}; adapters keep it next to the request and pass it
 * back. It holds the sent header, so it prints nothing secret.
 */
export class RequestAttempt {
  /** Whose token (resolved from `keyfob.subject` / the `subject` option). */
  readonly subject: string | undefined;
  /** Which scope (resolved from `keyfob.scope` / the `scope` option). */
  readonly scope: string | undefined;
  /** True once the request was sent again after a 401: it is never retried twice. */
  retried = false;
  /** DPoP: the latest 401 was a `use_dpop_nonce` challenge (answered once, without dropping the token). */
  nonceChallenge = false;
  /** DPoP: the request was already sent again with a resource server's nonce. */
  nonceRetried = false;
  /** The headers keyfob put on the latest attempt, or undefined before {@link RequestPolicy.headers}. */
  #sent: TokenHeaders | undefined;
  /** Whether the latest hop carried keyfob's headers (false after a redirect that stripped them). */
  #carrying = false;
  readonly #tokenOptions: GetTokenOptions | undefined;
  /** DPoP: the URL of the latest proof (a nonce challenge names that URL's origin). */
  #proofUrl: string | URL | undefined;

  /** @internal use {@link RequestPolicy.start}. */
  constructor(subject: string | undefined, scope: string | undefined) {
    this.subject = subject;
    this.scope = scope;
    this.#tokenOptions = subject === undefined && scope === undefined ? undefined : { subject, scope };
  }

  /** The headers keyfob put on the latest attempt (undefined before any, or after a stripping redirect). */
  get sent(): TokenHeaders | undefined {
    return this.#carrying ? this.#sent : undefined;
  }

  /** @internal */
  static record(attempt: RequestAttempt, headers: TokenHeaders): void {
    attempt.#sent = headers;
    attempt.#carrying = true;
  }
  /** @internal */
  static proofUrl(attempt: RequestAttempt, url?: string | URL): string | URL | undefined {
    if (url !== undefined) attempt.#proofUrl = url;
    return attempt.#proofUrl;
  }
  /** @internal */
  static strip(attempt: RequestAttempt): void {
    attempt.#carrying = false;
  }
  /** @internal */
  static last(attempt: RequestAttempt): TokenHeaders | undefined {
    return attempt.#sent;
  }
  /** @internal */
  static tokenOptions(attempt: RequestAttempt, signal: AbortSignal | undefined): GetTokenOptions | undefined {
    const base = attempt.#tokenOptions;
    if (signal === undefined) return base;
    return base === undefined ? { signal } : { ...base, signal };
  }

  toJSON(): Record<string, unknown> {
    return { subject: this.subject, scope: this.scope, retried: this.retried, carrying: this.#carrying };
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `RequestAttempt ${JSON.stringify(this.toJSON())}`;
  }
}

const NOT_AN_ORIGIN = '';
/** `scheme://authority` at the start of an absolute URL: the part that decides its origin. */
const AUTHORITY = /^[a-zA-Z][a-zA-Z\d+\-.]*:\/\/[^/?#]*/;
/** The scheme in front of the token in keyfob's Authorization header. */
const SCHEME = /^(?:Bearer|DPoP) /i;
const DPOP_SCHEME = /^DPoP /;

/**
 * `scheme://host[:port]` of an absolute http(s) URL (host lower case, default port dropped, as the
 * WHATWG URL parser computes it), or undefined for a relative, opaque or unparsable URL.
 */
export function originOf(url: string | URL): string | undefined {
  let u: URL;
  try {
    u = typeof url === 'string' ? new URL(url) : url;
  } catch {
    return undefined;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return undefined;
  return u.origin;
}

/**
 * Whether a request body can be sent a second time: nothing, a string, `URLSearchParams`,
 * `FormData`, `Blob`, `ArrayBuffer` and its views, and plain objects that the client serialises
 * (axios JSON): yes. A web `ReadableStream`, a Node stream, an async iterable or an iterator: no,
 * the first attempt consumed them.
 */
export function isReplayableBody(body: unknown): boolean {
  if (body === null || body === undefined || typeof body !== 'object') return true;
  if (ArrayBuffer.isView(body) || body instanceof ArrayBuffer) return true;
  const b = body as Record<string | symbol, unknown>;
  if (typeof b.getReader === 'function' || typeof b.pipe === 'function') return false;
  if (typeof b[Symbol.asyncIterator] === 'function') return false;
  // A generator or other one-shot iterator (got accepts them as bodies); arrays are not iterators.
  if (typeof b.next === 'function' && typeof b[Symbol.iterator] === 'function') return false;
  return true;
}

/**
 * The decisions, for one HTTP client instance. Build it once per instance (it parses the options and
 * throws a `ConfigurationError` when they cannot work); its per-request methods are cheap.
 *
 * The protocol an adapter follows for each request:
 * 1. `const attempt = policy.start(url, keyfob, request)`: `undefined` = send the request untouched
 *    (origin not allowed, or `keyfob.skip`); keyfob adds nothing and removes nothing.
 * 2. `const headers = await policy.headers(attempt, method, url, signal)`: set each of them on the
 *    request, replacing any the caller set (`authorization`, later `dpop`). Rejects with a
 *    `KeyfobError` when no token can be had: then do not send the request.
 * 3. On each redirect the client follows: `policy.redirect(attempt, method, target)` returns the
 *    headers for the next hop, or `undefined`: remove every header keyfob set (the target's origin
 *    may not receive tokens).
 * 4. On the response: `if (policy.rejected(attempt, status, responseHeaders) && (await policy.retry(attempt, body)))`
 *    send the request again, from step 2. Otherwise hand the response (or the client's error) to the caller.
 */
export class RequestPolicy<R = unknown> {
  /** The origins that may receive tokens (`scheme://host[:port]`). */
  readonly origins: ReadonlySet<string>;
  /** The header names keyfob may add (lower case): what to strip from errors and on redirects. */
  readonly headerNames: readonly string[];
  readonly #tokens: TokenSource;
  readonly #dpop: DpopKey | undefined;
  readonly #subject: string | ((request: R) => string | undefined) | undefined;
  readonly #scope: string | undefined;
  readonly #retryOn401: boolean;
  readonly #name: string;
  /** Authority prefix (`https://host:port`) -> origin or NOT_AN_ORIGIN; bounded. */
  readonly #authorities = new Map<string, string>();
  /** The last authority prefix seen by `allows` and its answer. */
  #lastAuthority = '';
  #lastAllowed = false;
  /** One frozen header map per Authorization value, so attaching allocates nothing per request. */
  #lastHeader = '';
  #lastHeaders: TokenHeaders = Object.freeze({});
  /** Header maps of the manager's promises that have settled (keyed weakly: dropped with the promise). */
  readonly #settled = new WeakMap<Promise<string>, TokenHeaders>();

  constructor(
    tokens: TokenSource,
    options: RequestPolicyOptions<R> | undefined,
    binding: RequestPolicyBinding,
  ) {
    const name = binding.name;
    this.#name = name;
    if (
      !tokens ||
      typeof tokens.getAuthorizationHeader !== 'function' ||
      typeof tokens.invalidate !== 'function'
    ) {
      throw new ConfigurationError(`${name}: the manager must be a TokenManager from @keyfob/core.`);
    }
    const opts = options ?? {};
    if (typeof opts !== 'object') throw new ConfigurationError(`${name}: options must be an object.`);
    const { subject, scope } = opts;
    if (subject !== undefined && typeof subject !== 'string' && typeof subject !== 'function') {
      throw new ConfigurationError(`${name}: options.subject must be a string or a function of the request.`);
    }
    if (scope !== undefined && typeof scope !== 'string') {
      throw new ConfigurationError(`${name}: options.scope must be a string.`);
    }
    if (opts.retryOn401 !== undefined && typeof opts.retryOn401 !== 'boolean') {
      throw new ConfigurationError(`${name}: options.retryOn401 must be true or false.`);
    }
    this.#tokens = tokens;
    this.#dpop = tokens.dpop;
    this.headerNames = this.#dpop === undefined ? ['authorization'] : ['authorization', 'dpop'];
    this.#subject = subject;
    this.#scope = scope;
    this.#retryOn401 = opts.retryOn401 !== false;
    this.origins = allowedOrigins(name, opts.origins, binding.baseUrl);
  }

  /** Whether `url` (absolute) is on an allowed origin. A relative or unparsable URL is not. */
  allows(url: string | URL): boolean {
    if (typeof url !== 'string') {
      const origin = url instanceof URL ? originOf(url) : undefined;
      return origin !== undefined && this.origins.has(origin);
    }
    // The hot path: a URL on the same authority as the last one (no regex, no allocation). The
    // authority must end right there, so `https://api.example.com.evil` or `...com\\@evil` do not match.
    const last = this.#lastAuthority;
    if (last !== '' && url.startsWith(last)) {
      const next = url.charCodeAt(last.length);
      // end of string, '/', '?', '#'
      if (Number.isNaN(next) || next === 47 || next === 63 || next === 35) return this.#lastAllowed;
    }
    const m = AUTHORITY.exec(url);
    // Leading spaces, tabs inside the authority...: let the URL parser decide, uncached.
    if (m === null) return this.#allowedOrigin(originOf(url));
    const authority = m[0];
    let origin = this.#authorities.get(authority);
    if (origin === undefined) {
      // The authority ends where the WHATWG parser ends it ('/', '?', '#'; a '\' inside is parsed
      // the same way in the prefix as in the whole URL), so its origin is the URL's origin.
      origin = originOf(`${authority}/`) ?? NOT_AN_ORIGIN;
      if (this.#authorities.size >= 256) this.#authorities.clear();
      this.#authorities.set(authority, origin);
    }
    const allowed = origin !== NOT_AN_ORIGIN && this.origins.has(origin);
    this.#lastAuthority = authority;
    this.#lastAllowed = allowed;
    return allowed;
  }

  #allowedOrigin(origin: string | undefined): boolean {
    return origin !== undefined && this.origins.has(origin);
  }

  /**
   * Step 1: does this request get a token? `undefined` when `keyfob.skip` is set or `url` is not on
   * an allowed origin: send it untouched. Otherwise the request's state, to pass to the other methods.
   *
   * @param url the absolute URL the client will send to (resolved against its base URL).
   * @param keyfob the request's `keyfob` options, if any.
   * @param request the adapter's request object, handed to a `subject` function.
   */
  start(url: string | URL, keyfob?: KeyfobRequestOptions, request?: R): RequestAttempt | undefined {
    if (keyfob !== undefined && keyfob !== null) {
      if (typeof keyfob !== 'object') {
        throw new ConfigurationError(
          `${this.#name}: the request's keyfob option must be { skip?, subject?, scope? }.`,
        );
      }
      if (keyfob.skip === true) return undefined;
    }
    if (!this.allows(url)) return undefined;
    const subjectOption = this.#subject;
    const subject =
      keyfob?.subject ?? (typeof subjectOption === 'function' ? subjectOption(request as R) : subjectOption);
    return new RequestAttempt(subject, keyfob?.scope ?? this.#scope);
  }

  /**
   * Step 2: the headers to set for this attempt (`{ authorization: 'Bearer …' }`), replacing any
   * the caller set. Call it again for the retry. Rejects with a `KeyfobError` (the token endpoint's,
   * or `KEYFOB_ABORTED` when `signal` aborts the wait): do not send the request then.
   *
   * @param method the request method (used by DPoP proofs).
   * @param url the absolute URL of this attempt (used by DPoP proofs).
   * @param signal aborts the wait for a token (the shared token request itself goes on).
   */
  headers(
    attempt: RequestAttempt,
    method: string,
    url: string | URL,
    signal?: AbortSignal,
  ): Promise<TokenHeaders> {
    const now = this.headersNow(attempt, method, url, signal);
    return now instanceof Promise ? now : Promise.resolve(now);
  }

  /**
   * {@link headers}, synchronously when the token is already at hand: the map itself, without a
   * promise or a microtask, when the manager hands out the cached token whose header the policy has
   * already seen; a promise otherwise. For clients whose hooks can send at once (undici's dispatch).
   */
  headersNow(
    attempt: RequestAttempt,
    method: string,
    url: string | URL,
    signal?: AbortSignal,
  ): TokenHeaders | Promise<TokenHeaders> {
    // Already aborted: no token request is started for a request that will not be sent.
    if (signal?.aborted) return Promise.reject(abortError(signal));
    const options = RequestAttempt.tokenOptions(attempt, signal ?? undefined);
    const pending =
      options === undefined
        ? this.#tokens.getAuthorizationHeader()
        : this.#tokens.getAuthorizationHeader(options);
    // The manager returns the same promise for as long as a token stays cached: a promise seen
    // settled before stands for the same header (promises do not change value).
    const known = this.#settled.get(pending);
    if (known !== undefined) {
      const headers = this.#dpop === undefined ? known : this.#withProof(attempt, known, method, url);
      RequestAttempt.record(attempt, headers);
      return headers;
    }
    return pending.then(
      (header) => {
        let headers = this.#headersFor(header);
        this.#settled.set(pending, headers);
        if (this.#dpop !== undefined) headers = this.#withProof(attempt, headers, method, url);
        RequestAttempt.record(attempt, headers);
        return headers;
      },
      (error: unknown) => {
        throw this.#tokenError(error);
      },
    );
  }

  #headersFor(header: string): TokenHeaders {
    if (header !== this.#lastHeader) {
      this.#lastHeader = header;
      this.#lastHeaders = Object.freeze({ authorization: header });
    }
    return this.#lastHeaders;
  }

  /**
   * DPoP (RFC 9449 7): a DPoP-bound token travels with a proof made for this method and URL, with
   * the token's hash (`ath`) and the origin's latest nonce: one signature per attempt.
   */
  #withProof(
    attempt: RequestAttempt,
    headers: TokenHeaders,
    method: string,
    url: string | URL,
  ): TokenHeaders {
    const authorization = headers.authorization!;
    if (!DPOP_SCHEME.test(authorization)) return headers;
    RequestAttempt.proofUrl(attempt, url);
    const proof = this.#dpop!.proof({ method, url, accessToken: authorization.slice(5) });
    return { authorization, dpop: proof };
  }

  #tokenError(error: unknown): KeyfobError {
    if (isKeyfobError(error)) return error;
    const aborted = (error as { name?: unknown } | null)?.name === 'AbortError';
    return new KeyfobError(
      aborted
        ? `${this.#name}: the request was aborted while waiting for an access token; it was not sent.`
        : `${this.#name}: could not get an access token; the request was not sent.`,
      { code: aborted ? ErrorCode.Aborted : ErrorCode.TokenEndpoint, cause: error },
    );
  }

  /**
   * Step 3, on each redirect the client follows: the headers keyfob's token may travel with to
   * `url`, or `undefined` when its origin may not receive tokens: remove every header keyfob set
   * (see {@link TokenHeaders}; a header the caller set is the client's business). Once stripped, the
   * token does not come back on later hops, and a 401 at the end is not a 401 to keyfob's token.
   * Synchronous, so it fits redirect hooks that cannot wait.
   */
  redirect(attempt: RequestAttempt, method: string, url: string | URL): TokenHeaders | undefined {
    const sent = attempt.sent;
    if (sent === undefined) return undefined;
    if (this.allows(url)) {
      if (sent.dpop === undefined) return sent;
      // A proof names its method and URL: the next hop needs its own.
      const next = this.#withProof(attempt, sent, method, url);
      RequestAttempt.record(attempt, next);
      return next;
    }
    RequestAttempt.strip(attempt);
    return undefined;
  }

  /**
   * The client removed keyfob's headers on its own (undici's redirect handler and fetch drop
   * `Authorization` when a redirect changes origin): the response that follows is not an answer to
   * keyfob's token, so a 401 to it invalidates nothing.
   */
  stripped(attempt: RequestAttempt): void {
    RequestAttempt.strip(attempt);
  }

  /**
   * Step 4: is this response a rejection of the token keyfob sent? A 401 to a request whose last hop
   * carried keyfob's headers. A 401 from a hop the token never reached (a foreign redirect target)
   * says nothing about it. Synchronous and allocation-free for every other status.
   *
   * Call it for every response, whatever its status: with DPoP, a resource server may send a new
   * `DPoP-Nonce` on any response (RFC 9449 9), and the next proof for that origin must carry it.
   *
   * @param responseHeaders the response's headers (`Headers` or a plain object); read only on a 401,
   *   or with DPoP on a response to a request that carried a proof.
   */
  rejected(attempt: RequestAttempt, status: number, responseHeaders?: unknown): boolean {
    if (status !== 401) {
      if (this.#dpop !== undefined && attempt.sent?.dpop !== undefined)
        this.#keepNonce(attempt, responseHeaders);
      return false;
    }
    const sent = attempt.sent;
    if (sent === undefined) return false;
    if (sent.dpop !== undefined && this.#dpop !== undefined) {
      // RFC 9449 9: the resource server wants its nonce in the proof. Not a verdict on the token:
      // answered with exactly one more attempt carrying the nonce, the token kept; a second challenge
      // goes to the caller. (Also with retryOn401: false, or DPoP could never work with that server.)
      const nonce = this.#keepNonce(attempt, responseHeaders);
      if (nonce !== undefined && isUseDpopNonce(headerValue(responseHeaders, 'www-authenticate'))) {
        attempt.nonceChallenge = !attempt.nonceRetried;
        // A second challenge: the nonce keeps failing. Not the token's fault either: to the caller.
        return attempt.nonceChallenge;
      }
    }
    return this.#retryOn401;
  }

  /** Keeps the response's `DPoP-Nonce` (if any) for the origin the proof was made for; returns it. */
  #keepNonce(attempt: RequestAttempt, responseHeaders: unknown): string | undefined {
    const nonce = headerValue(responseHeaders, 'dpop-nonce');
    if (nonce === undefined) return undefined;
    const url = RequestAttempt.proofUrl(attempt);
    if (url !== undefined) this.#dpop!.rememberNonce(url, nonce);
    return nonce;
  }

  /**
   * What {@link retry} will resolve, known synchronously (for clients that must decide, when the
   * 401's headers arrive, whether to hand the response on or swallow it and send again).
   */
  willRetry(attempt: RequestAttempt, body?: unknown): boolean {
    if (attempt.nonceChallenge) return isReplayableBody(body);
    return !attempt.retried && isReplayableBody(body);
  }

  /**
   * After {@link rejected}: invalidates exactly the token that was sent (compare-and-delete, so
   * concurrent 401s for one token cause one token request) and resolves whether to send the request
   * again: not when it was already retried once (a second 401 drops the second token too, and goes
   * to the caller), nor when its body cannot be replayed. Never rejects.
   */
  async retry(attempt: RequestAttempt, body?: unknown): Promise<boolean> {
    if (attempt.nonceChallenge) {
      attempt.nonceChallenge = false;
      attempt.nonceRetried = true;
      return isReplayableBody(body);
    }
    const sent = RequestAttempt.last(attempt);
    const header = sent?.authorization;
    if (header !== undefined) {
      const token = header.replace(SCHEME, '');
      const scoped =
        attempt.subject === undefined && attempt.scope === undefined
          ? undefined
          : { subject: attempt.subject, scope: attempt.scope };
      await this.#tokens.invalidate(token, scoped).catch(() => false);
      const retried = this.willRetry(attempt, body);
      publishUnauthorizedRetry({
        accessToken: token,
        retried,
        subject: attempt.subject,
        scope: attempt.scope,
      });
    }
    if (!this.willRetry(attempt, body)) return false;
    attempt.retried = true;
    return true;
  }

  /** Whether a body can be sent again ({@link isReplayableBody}). */
  replayable(body: unknown): boolean {
    return isReplayableBody(body);
  }

  toJSON(): Record<string, unknown> {
    return { name: this.#name, origins: [...this.origins], retryOn401: this.#retryOn401 };
  }
}

function allowedOrigins(
  name: string,
  origins: readonly (string | URL)[] | undefined,
  baseUrl: string | URL | undefined,
): Set<string> {
  const allowed = new Set<string>();
  if (origins !== undefined) {
    if (!Array.isArray(origins)) {
      throw new ConfigurationError(`${name}: options.origins must be an array of URLs or origins.`);
    }
    for (const o of origins) {
      const origin = typeof o === 'string' || o instanceof URL ? originOf(o) : undefined;
      if (origin === undefined) {
        throw new ConfigurationError(
          `${name}: options.origins entry "${typeof o === 'string' || o instanceof URL ? safeUrl(o) : typeof o}" is not an absolute http(s) URL.`,
          { hint: 'Write it like "https://api.example.com" (scheme, host and, if not the default, port).' },
        );
      }
      allowed.add(origin);
    }
  }
  if (baseUrl !== undefined && baseUrl !== '') {
    const origin = originOf(baseUrl);
    if (origin !== undefined) allowed.add(origin);
    else if (allowed.size === 0) {
      throw new ConfigurationError(
        `${name}: the base URL "${safeUrl(baseUrl)}" is not an absolute http(s) URL, so keyfob cannot tell where tokens may go.`,
        { hint: 'Use an absolute base URL (https://api.example.com/v1) or pass options.origins.' },
      );
    }
  }
  if (allowed.size === 0) {
    throw new ConfigurationError(
      `${name}: no base URL and no options.origins, so keyfob does not know which servers may receive tokens.`,
      { hint: "Pass { origins: ['https://api.example.com'] } (or give the client a base URL)." },
    );
  }
  return allowed;
}

/** One response header from a `Headers`, a plain object (axios, got, Node) or undici's raw pairs. */
function headerValue(headers: unknown, name: string): string | undefined {
  if (headers === null || typeof headers !== 'object') return undefined;
  const h = headers as { get?: unknown } & Record<string, unknown>;
  if (typeof h.get === 'function') {
    const v = (h.get as (n: string) => unknown).call(headers, name);
    if (typeof v === 'string') return v;
    if (v !== null && v !== undefined && typeof v !== 'object') return String(v);
  }
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2) {
      if (String(headers[i]).toLowerCase() === name) return String(headers[i + 1]);
    }
    return undefined;
  }
  for (const key of Object.keys(h)) {
    if (key.toLowerCase() !== name) continue;
    const v = h[key];
    return Array.isArray(v)
      ? v.map(String).join(', ')
      : v === undefined || v === null
        ? undefined
        : String(v);
  }
  return undefined;
}

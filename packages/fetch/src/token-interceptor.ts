import {
  ConfigurationError,
  type KeyfobRequestOptions,
  type RequestAttempt,
  RequestPolicy,
  type TokenHeaders,
  type TokenManager,
} from '@keyfob/core';
import { RedirectChains } from './redirect-chains.js';
import type { FetchTokenOptions } from './with-tokens.js';

/**
 * undici's `dispatch(options, handler)`. Typed loosely on purpose: `@keyfob/fetch` does not make
 * undici's types a dependency, and the interceptor fits `compose()` of undici 6 and 7.
 */
export type Dispatch = (options: any, handler: any) => boolean;

/** An undici interceptor, for `new Agent().compose(...)` / `dispatcher.compose(...)`. */
export type TokenInterceptor = (dispatch: Dispatch) => Dispatch;

/** What a `subject` function of {@link tokenInterceptor} receives: undici's dispatch options. */
export interface DispatchRequestInfo {
  origin?: string | URL;
  path: string;
  method: string;
  headers?: unknown;
  /** Per-request control, set in `undici.request(url, { keyfob: { ... } })`. */
  keyfob?: KeyfobRequestOptions;
  [key: string]: unknown;
}

/**
 * An undici interceptor that attaches `manager`'s token to every request to `options.origins`
 * dispatched through it: `undici.request`, `undici.stream`, `undici.fetch` and the global
 * `fetch(url, { dispatcher })`.
 *
 * ```ts
 * const dispatcher = new Agent().compose(tokenInterceptor(tokens, { origins: ['https://api.example.com'] }));
 * ```
 *
 * A redirect hop that reaches the interceptor (undici's redirect interceptor composed after it;
 * fetch, which follows redirects above the dispatcher) is a later hop of the same request: it gets
 * the token only if its origin is allowed and every hop before it carried the token, so once a
 * chain has left the allowed origins no later hop gets it, and a 401 there is not an answer to it.
 * On a 401 to keyfob's token the token is invalidated and, when the body is a string or a buffer,
 * the request is dispatched once more with a fresh token before the caller's handler sees
 * anything; fetch always streams its bodies, so fetch requests with a body get the 401. Per request
 * (`undici.request` / `stream` / `pipeline`): `{ keyfob: { skip?, subject?, scope? } }` in the options.
 *
 * @throws ConfigurationError when `options.origins` is missing or holds no absolute http(s) URL.
 */
export function tokenInterceptor(
  manager: TokenManager,
  options: FetchTokenOptions<DispatchRequestInfo>,
): TokenInterceptor {
  if (!options || !Array.isArray(options.origins)) {
    throw new ConfigurationError('@keyfob/fetch: tokenInterceptor() needs options.origins.', {
      hint: "Pass tokenInterceptor(tokens, { origins: ['https://api.example.com'] }).",
    });
  }
  const policy = new RequestPolicy<DispatchRequestInfo>(manager, options, { name: '@keyfob/fetch' });
  const chains = new RedirectChains(policy);
  return (dispatch) => {
    if (typeof dispatch !== 'function') {
      throw new ConfigurationError('@keyfob/fetch: tokenInterceptor must be passed to compose().');
    }
    return (opts: DispatchRequestInfo, handler: Handler): boolean => {
      const origin = typeof opts.origin === 'string' ? opts.origin : (opts.origin?.origin ?? '');
      const url = origin + opts.path;
      // A later hop of a redirect chain: the chain decides (RequestPolicy.redirect), not the hop's origin.
      const chain = chains.of(handler, origin, opts.path);
      if (chain !== undefined) {
        const carry = chain === null ? undefined : policy.redirect(chain, opts.method, url);
        if (carry === undefined) return dispatch(opts, new TokenlessHandler(chains, url, handler));
        return new TokenHandler(dispatch, policy, chains, chain!, opts, url, handler).sendWith(carry);
      }
      let attempt: RequestAttempt | undefined;
      try {
        // The origin decides (undici keeps it apart from the path): the policy's cheapest check.
        attempt = policy.start(origin, opts.keyfob, opts);
      } catch (error) {
        fail(handler, error);
        return true;
      }
      if (attempt !== undefined)
        return new TokenHandler(dispatch, policy, chains, attempt, opts, url, handler).send();
      // keyfob.skip: untouched. Another origin: untouched, and watched, so that if it redirects to an
      // allowed origin (fetch follows above the dispatcher) that hop does not get the token either.
      if (opts.keyfob?.skip === true) return dispatch(opts, handler);
      return dispatch(opts, new TokenlessHandler(chains, url, handler));
    };
  };
}

/** The handler methods of undici 7 (`onRequestStart`...) and of undici 6 (`onConnect`...). */
interface Handler {
  onRequestStart?(controller: unknown, context: unknown): void;
  onRequestUpgrade?(...args: unknown[]): void;
  onResponseStart?(controller: unknown, status: number, headers: unknown, message?: string): void;
  onResponseData?(controller: unknown, chunk: unknown): void;
  onResponseEnd?(controller: unknown, trailers: unknown): void;
  onResponseError?(controller: unknown, error: unknown): void;
  onConnect?(abort: unknown, context?: unknown): void;
  onHeaders?(status: number, rawHeaders: unknown, resume: unknown, statusText?: string): boolean;
  onData?(chunk: unknown): boolean;
  onComplete?(trailers: unknown): void;
  onError?(error: unknown): void;
  onUpgrade?(...args: unknown[]): void;
  onBodySent?(...args: unknown[]): void;
  onRequestSent?(): void;
  onResponseStarted?(): void;
}

function fail(handler: Handler, error: unknown): void {
  if (typeof handler.onRequestStart === 'function' || typeof handler.onResponseError === 'function') {
    handler.onResponseError?.(null, error);
  } else {
    handler.onError?.(error);
  }
}

/**
 * A hop sent without keyfob's headers: another origin, or a later hop of a chain that lost them.
 * Passed on untouched (every callback, of undici 7's handler API and of undici 6's); only a
 * redirect is noted, so that the chain's next hop gets none either.
 */
class TokenlessHandler implements Handler {
  readonly #chains: RedirectChains;
  readonly #url: string;
  readonly #handler: Handler;
  /** Hops followed below this interceptor (undici's redirect handler composed before keyfob's). */
  #followedBelow = false;

  constructor(chains: RedirectChains, url: string, handler: Handler) {
    this.#chains = chains;
    this.#url = url;
    this.#handler = handler;
  }

  #started(status: number, headers: unknown): void {
    // A redirect the follower below did not follow (its limit) is not a hop that comes through here.
    if (!isRedirect(status) || this.#followedBelow) return;
    const location = locationOf(headers);
    if (location !== undefined) this.#chains.tokenless(this.#handler, this.#url, location);
  }

  // undici 7
  onRequestStart(controller: unknown, context: unknown): void {
    this.#followedBelow = Array.isArray((context as { history?: unknown } | undefined)?.history);
    this.#handler.onRequestStart?.(controller, context);
  }
  onRequestUpgrade(...args: unknown[]): void {
    this.#handler.onRequestUpgrade?.(...args);
  }
  onResponseStart(controller: unknown, status: number, headers: unknown, message?: string): void {
    this.#started(status, headers);
    this.#handler.onResponseStart?.(controller, status, headers, message);
  }
  onResponseData(controller: unknown, chunk: unknown): void {
    this.#handler.onResponseData?.(controller, chunk);
  }
  onResponseEnd(controller: unknown, trailers: unknown): void {
    this.#handler.onResponseEnd?.(controller, trailers);
  }
  onResponseError(controller: unknown, error: unknown): void {
    this.#handler.onResponseError?.(controller, error);
  }

  // undici 6
  onConnect(abort: unknown, context?: unknown): void {
    this.#followedBelow = Array.isArray((context as { history?: unknown } | undefined)?.history);
    this.#handler.onConnect?.(abort, context);
  }
  onHeaders(status: number, rawHeaders: unknown, resume: unknown, statusText?: string): boolean {
    this.#started(status, rawHeaders);
    return this.#handler.onHeaders?.(status, rawHeaders, resume, statusText) ?? true;
  }
  onData(chunk: unknown): boolean {
    return this.#handler.onData?.(chunk) ?? true;
  }
  onComplete(trailers: unknown): void {
    this.#handler.onComplete?.(trailers);
  }
  onError(error: unknown): void {
    this.#handler.onError?.(error);
  }
  onUpgrade(...args: unknown[]): void {
    this.#handler.onUpgrade?.(...args);
  }
  onBodySent(...args: unknown[]): void {
    this.#handler.onBodySent?.(...args);
  }
  onRequestSent(): void {
    this.#handler.onRequestSent?.();
  }
  onResponseStarted(): void {
    this.#handler.onResponseStarted?.();
  }
}

/**
 * One hop through the interceptor that carries keyfob's headers: gets the token, dispatches, and
 * when the response is a 401 to keyfob's token that will be retried, swallows it and dispatches
 * again. Everything else goes to the caller's handler as is.
 */
class TokenHandler implements Handler {
  readonly #handler: Handler;
  readonly #dispatch: Dispatch;
  readonly #policy: RequestPolicy<DispatchRequestInfo>;
  readonly #chains: RedirectChains;
  readonly #attempt: RequestAttempt;
  readonly #opts: DispatchRequestInfo;
  readonly #url: string;
  /** The redirect history undici's redirect handler shares, when it runs inside this interceptor. */
  #history: unknown;
  /** Swallowing a 401 that will be retried: the retry's invalidation, awaited at its end. */
  #retrying: Promise<boolean> | undefined;

  constructor(
    dispatch: Dispatch,
    policy: RequestPolicy<DispatchRequestInfo>,
    chains: RedirectChains,
    attempt: RequestAttempt,
    opts: DispatchRequestInfo,
    url: string,
    handler: Handler,
  ) {
    this.#handler = handler;
    this.#dispatch = dispatch;
    this.#policy = policy;
    this.#chains = chains;
    this.#attempt = attempt;
    this.#opts = opts;
    this.#url = url;
  }

  /** Gets the headers (at once when the token is cached) and dispatches; returns dispatch's answer. */
  send(): boolean {
    const signal = this.#opts.signal instanceof AbortSignal ? this.#opts.signal : undefined;
    const now = this.#policy.headersNow(this.#attempt, this.#opts.method, this.#url, signal);
    if (!(now instanceof Promise)) return this.#dispatchWith(now);
    now.then(
      (headers) => {
        try {
          this.#dispatchWith(headers);
        } catch (error) {
          fail(this.#handler, error);
        }
      },
      // Aborted while waiting for the token: the signal's reason, as undici reports an abort.
      (error: unknown) => fail(this.#handler, signal?.aborted ? (signal.reason ?? error) : error),
    );
    return true;
  }

  /** A later hop of a redirect chain: dispatches with the headers `RequestPolicy.redirect` gave for it. */
  sendWith(headers: TokenHeaders): boolean {
    return this.#dispatchWith(headers);
  }

  #dispatchWith(headers: TokenHeaders): boolean {
    this.#retrying = undefined;
    this.#history = undefined;
    return this.#dispatch({ ...this.#opts, headers: withHeaders(this.#opts.headers, headers) }, this);
  }

  /** Decides at the response's start: the caller's, or a 401 to swallow and retry. */
  #swallow(status: number, headers: unknown): boolean {
    const attempt = this.#attempt;
    if (this.#history !== undefined && this.#leftOrigin()) this.#policy.stripped(attempt);
    // Every response, whatever its status: with DPoP, a new nonce may come with any of them.
    if (!this.#policy.rejected(attempt, status, headers)) {
      // Should the follower dispatch the next hop with the same handler, it continues this attempt.
      if (isRedirect(status)) this.#chains.carried(this.#handler, attempt);
      return false;
    }
    const body = this.#opts.body;
    const again = this.#policy.willRetry(attempt, body);
    const retry = this.#policy.retry(attempt, body);
    if (!again) return false;
    this.#retrying = retry;
    return true;
  }

  /** undici's redirect handler (inside this interceptor) dropped Authorization when a hop changed origin. */
  #leftOrigin(): boolean {
    const history = this.#history;
    if (!Array.isArray(history) || history.length < 2) return false;
    const first = originOfHop(history[0]);
    for (let i = 1; i < history.length; i++) if (originOfHop(history[i]) !== first) return true;
    return false;
  }

  #again(): void {
    const retrying = this.#retrying;
    if (retrying === undefined) return;
    retrying.then(() => {
      try {
        this.send();
      } catch (error) {
        fail(this.#handler, error);
      }
    });
  }

  // undici 7
  onRequestStart(controller: unknown, context: unknown): void {
    this.#history = (context as { history?: unknown } | undefined)?.history;
    this.#handler.onRequestStart?.(controller, context);
  }
  onRequestUpgrade(...args: unknown[]): void {
    this.#handler.onRequestUpgrade?.(...args);
  }
  onResponseStart(controller: unknown, status: number, headers: unknown, message?: string): void {
    if (this.#swallow(status, headers)) return;
    this.#handler.onResponseStart?.(controller, status, headers, message);
  }
  onResponseData(controller: unknown, chunk: unknown): void {
    if (this.#retrying !== undefined) return;
    this.#handler.onResponseData?.(controller, chunk);
  }
  onResponseEnd(controller: unknown, trailers: unknown): void {
    if (this.#retrying !== undefined) this.#again();
    else this.#handler.onResponseEnd?.(controller, trailers);
  }
  onResponseError(controller: unknown, error: unknown): void {
    this.#retrying = undefined;
    this.#handler.onResponseError?.(controller, error);
  }

  // undici 6
  onConnect(abort: unknown, context?: unknown): void {
    this.#history = (context as { history?: unknown } | undefined)?.history;
    this.#handler.onConnect?.(abort, context);
  }
  onHeaders(status: number, rawHeaders: unknown, resume: unknown, statusText?: string): boolean {
    if (this.#swallow(status, rawHeaders)) return true;
    return this.#handler.onHeaders?.(status, rawHeaders, resume, statusText) ?? true;
  }
  onData(chunk: unknown): boolean {
    if (this.#retrying !== undefined) return true;
    return this.#handler.onData?.(chunk) ?? true;
  }
  onComplete(trailers: unknown): void {
    if (this.#retrying !== undefined) this.#again();
    else this.#handler.onComplete?.(trailers);
  }
  onError(error: unknown): void {
    this.#retrying = undefined;
    this.#handler.onError?.(error);
  }
  onUpgrade(...args: unknown[]): void {
    this.#handler.onUpgrade?.(...args);
  }
  onBodySent(...args: unknown[]): void {
    this.#handler.onBodySent?.(...args);
  }
  onRequestSent(): void {
    this.#handler.onRequestSent?.();
  }
  onResponseStarted(): void {
    this.#handler.onResponseStarted?.();
  }
}

/** The statuses undici's redirect handler and fetch follow (300 only undici's). */
function isRedirect(status: number): boolean {
  return status >= 300 && status <= 308 && status !== 304 && status !== 305 && status !== 306;
}

/**
 * A response's `Location`, one character per byte (see `locationUrl`): undici 7 hands headers as an
 * object of latin-1 strings, undici 6 as raw `[name, value, ...]` Buffers.
 */
function locationOf(headers: unknown): string | undefined {
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2) {
      const name = String(headers[i]);
      if (name.length === 8 && name.toLowerCase() === 'location') return binary(headers[i + 1]);
    }
    return undefined;
  }
  if (headers === null || typeof headers !== 'object') return undefined;
  const value = (headers as Record<string, unknown>).location;
  if (typeof value === 'string') return value;
  return Array.isArray(value) && value.length > 0 ? binary(value[0]) : undefined;
}

function binary(value: unknown): string {
  return Buffer.isBuffer(value) ? value.toString('latin1') : String(value);
}

/** The origin of a hop in undici's redirect history (URL objects; strings in older versions). */
function originOfHop(hop: unknown): string {
  if (hop instanceof URL) return hop.origin;
  try {
    return new URL(String(hop)).origin;
  } catch {
    return '';
  }
}

/**
 * The request's headers with keyfob's set, replacing any of the same name (case-insensitive), in
 * a form undici takes: keyfob's own map when there are none, a plain object for a plain object, a
 * flat `[name, value, ...]` array for arrays and iterables.
 */
function withHeaders(headers: unknown, add: TokenHeaders): unknown {
  if (headers === undefined || headers === null) return add;
  if (typeof headers !== 'object') return add;
  if (!Array.isArray(headers) && typeof (headers as Iterable<unknown>)[Symbol.iterator] !== 'function') {
    const out: Record<string, unknown> = {};
    for (const name of Object.keys(headers)) {
      if (!Object.hasOwn(add, name.toLowerCase())) out[name] = (headers as Record<string, unknown>)[name];
    }
    for (const name in add) out[name] = add[name];
    return out;
  }
  const out: string[] = [];
  const push = (name: unknown, value: unknown) => {
    const n = String(name);
    if (Object.hasOwn(add, n.toLowerCase())) return;
    if (Array.isArray(value)) for (const v of value) out.push(n, String(v));
    else if (value !== undefined) out.push(n, String(value));
  };
  if (Array.isArray(headers) && !(headers.length > 0 && Array.isArray(headers[0]))) {
    for (let i = 0; i < headers.length; i += 2) push(headers[i], headers[i + 1]);
  } else {
    for (const [k, v] of headers as Iterable<[unknown, unknown]>) push(k, v);
  }
  for (const name in add) out.push(name, add[name]!);
  return out;
}

import {
  ConfigurationError,
  isKeyfobError,
  type KeyfobError,
  type KeyfobRequestOptions,
  REDACTED,
  type RequestAttempt,
  RequestPolicy,
  type RequestPolicyOptions,
  type TokenHeaders,
  type TokenManager,
} from '@keyfob/core';
import type {
  AfterResponseHook,
  BeforeErrorHook,
  BeforeRedirectHook,
  BeforeRequestHook,
  Options,
  RequestError,
} from 'got';
import { guardNativeRequest, scrubAbandonedRequest, scrubSentRequest } from './native-request.js';

/**
 * Per-request control, passed as `context: { keyfob: { ... } }` in a got call: core's
 * `{ skip?, subject?, scope? }`. got types `context` as `Record<string, unknown>` (a type alias, so it
 * cannot be augmented): write `{ keyfob: { skip: true } satisfies KeyfobContext }` to have it checked.
 */
export type KeyfobContext = KeyfobRequestOptions;

/**
 * Options of {@link tokenHooks} and {@link withTokens}: core's {@link RequestPolicyOptions}, with the
 * same meaning as in every keyfob adapter. `origins` are allowed in addition to the `prefixUrl` origin;
 * `retryOn401: false` means keyfob neither invalidates nor retries.
 */
export type TokenHooksOptions = RequestPolicyOptions<GotRequestOptions>;

/**
 * The hooks `tokenHooks` returns, ready for `got.extend({ hooks })`. The same object is also its own
 * `hooks` property (not enumerable, so got and object spread never see it): `const { hooks } =
 * tokenHooks(manager)` reads the same hooks.
 */
export interface KeyfobGotHooks {
  beforeRequest: BeforeRequestHook[];
  beforeRedirect: BeforeRedirectHook[];
  afterResponse: AfterResponseHook[];
  beforeError: BeforeErrorHook[];
  /** This object again, for `const { hooks } = tokenHooks(manager)`. */
  readonly hooks: KeyfobGotHooks;
}

/** got's options as a `beforeRequest` hook receives them. */
export type GotRequestOptions = Parameters<BeforeRequestHook>[0];

type Policy = RequestPolicy<GotRequestOptions>;
/** got's `request` option: `(url, nativeOptions, callback) => ClientRequest | Promise<…> | undefined`. */
type RequestFunction = NonNullable<Options['request']>;
type NativeOptions = { headers?: Record<string, unknown> } & Record<string, unknown>;
/** What keyfob reads of a response: got's, or Node's `IncomingMessage` (whose `req` is the `ClientRequest`). */
type ResponseLike = { statusCode?: number | undefined; headers?: unknown; req?: unknown };

const NAME = '@keyfob/got';
/** Lives in `options.context` under a private symbol: survives got's retries and redirects (context is copied shallowly). */
const STATE = Symbol('keyfob');
/**
 * In place of a state, for a request whose first hop got no token (skipped, or another origin) once got
 * follows a redirect: a later hop to an allowed origin, and got's retries of it, get none either.
 */
const WITHOUT_TOKEN = 'without token';

/** One logical request: its policy and attempt. Holds no token where got or a logger can print it. */
class RequestState {
  readonly policy: Policy;
  readonly attempt: RequestAttempt;
  /** The caller's own `request` option, which keyfob's wraps. */
  readonly original: RequestFunction | undefined;
  /**
   * True once a hop of this request went out without keyfob's headers because it was for another
   * origin (a redirect, or a later `beforeRequest` hook that moved it): got's retries of it stay
   * without them, as core's later hops do (once stripped, the token does not come back).
   */
  withheld = false;
  /** The headers the next hop gets, as decided by the redirect hook, or `false` before a redirect. */
  #redirectHeaders: TokenHeaders | undefined | false = false;
  constructor(policy: Policy, attempt: RequestAttempt, original: RequestFunction | undefined) {
    this.policy = policy;
    this.attempt = attempt;
    this.original = original;
  }
  /**
   * A response to a hop that carried keyfob's headers: Node's request is scrubbed (its head was sent;
   * a server may answer before the body is), and the policy sees the response. Core's rule: call
   * `rejected` for every response, any status; with DPoP a resource server may send its next nonce on
   * any of them (RFC 9449 9). Called by the hooks got runs anyway (`afterResponse`, `beforeRedirect`),
   * and by a listener only for the responses they never see: see {@link RequestState.unseen}.
   */
  observe(response: ResponseLike): void {
    scrubSentRequest(response.req);
    const status = response.statusCode ?? 0;
    if (status !== 401) this.policy.rejected(this.attempt, status, response.headers);
  }
  /**
   * Whether got will show this hop's response to no `afterResponse` hook of keyfob's: a stream (got
   * runs none), or keyfob's own retry (got makes it without the hooks from keyfob's on).
   */
  unseen(options: GotRequestOptions): boolean {
    return this.attempt.retried || this.attempt.nonceRetried || options.isStream === true;
  }
  redirected(headers: TokenHeaders | undefined): void {
    this.#redirectHeaders = headers;
    if (headers === undefined) this.withhold();
  }
  /** This hop goes without keyfob's headers: neither it nor a later one is a rejection of keyfob's token. */
  withhold(): void {
    this.withheld = true;
    this.policy.stripped(this.attempt);
  }
  /** The redirect decision for this hop, once. */
  takeRedirect(): TokenHeaders | undefined | false {
    const h = this.#redirectHeaders;
    this.#redirectHeaders = false;
    return h;
  }
  // got prints `options` (and so `context`) in `util.inspect(error)` and `JSON.stringify(error)`.
  toJSON(): Record<string, unknown> {
    return { retried: this.attempt.retried, withheld: this.withheld };
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `KeyfobRequestState { retried: ${this.attempt.retried}, withheld: ${this.withheld} }`;
  }
}

function stateOf(options: { context?: Record<PropertyKey, unknown> }): RequestState | undefined {
  const s = options.context?.[STATE];
  return s instanceof RequestState ? s : undefined;
}

function keyfobOf(options: GotRequestOptions): KeyfobRequestOptions | undefined {
  return options.context?.keyfob as KeyfobRequestOptions | undefined;
}

function urlOf(options: GotRequestOptions): URL | undefined {
  const { url } = options;
  if (url instanceof URL) return url;
  if (typeof url === 'string' && url !== '') {
    try {
      return new URL(url);
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/**
 * got's `request` option for one hop: keyfob's headers go on the native request this function makes
 * (Node's `ClientRequest`, `setHeader` before anything is written), never on got's `options.headers`,
 * which every got error (HTTPError, ParseError, CancelError, TimeoutError, ...) carries as
 * `error.options`, wherever it was built, nor on the native options got keeps
 * (`request._requestOptions`). Node's `ClientRequest` is scrubbed once its head is out
 * ({@link guardNativeRequest}).
 */
function requestWith(
  options: GotRequestOptions,
  state: RequestState,
  headers: TokenHeaders,
): RequestFunction {
  const hop: Hop = { options, state, headers };
  const fn = (url: URL | string, native: NativeOptions, callback?: (response: unknown) => void) => {
    // got's cache calls this as (options, handler): not a URL keyfob can check, so no token (as before).
    if (typeof url !== 'string' && !(url instanceof URL))
      return send(options, state.original, url, native, callback);
    // The URL got sends to, after every beforeRequest hook: one that ran after keyfob's may have moved it.
    if (!state.policy.allows(typeof url === 'string' ? url : url.href)) {
      state.withhold();
      return send(options, state.original, url, native, callback);
    }
    // Node writes the head of a request with `Expect` at once: the headers go in with the others.
    if (native.headers?.expect !== undefined) return sendWithCopy(hop, url, native, callback);
    const result = send(options, state.original, url, native, callback);
    if (result instanceof Promise) {
      return result.then((r: unknown) => attach(r, hop, url, native, callback));
    }
    return attach(result, hop, url, native, callback);
  };
  return fn as unknown as RequestFunction;
}

/** One hop of a request: got's options, keyfob's state and the headers the policy gave it. */
interface Hop {
  readonly options: GotRequestOptions;
  readonly state: RequestState;
  readonly headers: TokenHeaders;
}

/** What keyfob uses of a native request: Node's `ClientRequest`, http2-wrapper's, or a look-alike. */
interface SettableRequest {
  setHeader(name: string, value: string): unknown;
  readonly headersSent?: boolean;
  on?(event: string, listener: (...args: unknown[]) => void): unknown;
  destroy?(): unknown;
}

/**
 * Puts keyfob's headers on the native request just made, before got writes anything to it. A
 * response instead of a request (a custom `request` function answering from a cache) was sent
 * nothing: returned as is. A request whose head is already rendered (an agent that wrote it at
 * once) is dropped unsent and made again with the headers in its options.
 */
function attach(request: unknown, hop: Hop, url: unknown, native: NativeOptions, callback: unknown): unknown {
  const r = request as SettableRequest | null | undefined;
  if (r === null || r === undefined || typeof r.setHeader !== 'function') return request;
  if (r.headersSent === true) {
    r.on?.('error', ignore);
    r.destroy?.();
    return sendWithCopy(hop, url, native, callback);
  }
  const { headers } = hop;
  try {
    for (const name in headers) r.setHeader(name, headers[name]!);
  } catch (error) {
    // A value Node refuses: the request never goes out (got reports the error).
    r.on?.('error', ignore);
    r.destroy?.();
    throw error;
  }
  return sent(request, hop.state, hop.options);
}

function ignore(): void {}

/**
 * The headers in a copy of got's native options for this one call (a head Node renders while the
 * request is made): got's options get their own header map back once Node has copied keyfob's,
 * and the copy, which Node's agent may keep with the options of a request waiting for a socket, no
 * longer holds the values.
 */
function sendWithCopy(hop: Hop, url: unknown, native: NativeOptions, callback: unknown): unknown {
  const { options, state, headers } = hop;
  const own = native.headers;
  const copy = withHeaders(own, headers);
  native.headers = copy;
  let result: unknown;
  try {
    result = send(options, state.original, url, native, callback);
  } catch (error) {
    release(native, own, copy, headers);
    throw error;
  }
  if (result instanceof Promise) {
    return result.then(
      (r: unknown) => {
        release(native, own, copy, headers);
        return sent(r, state, options);
      },
      (error: unknown) => {
        release(native, own, copy, headers);
        throw error;
      },
    );
  }
  release(native, own, copy, headers);
  return sent(result, state, options);
}

/**
 * The request function has made its request, and Node has copied the headers into it: got's native
 * options get their own header map back, and keyfob's copy no longer holds the values.
 */
function release(
  native: NativeOptions,
  own: NativeOptions['headers'],
  copy: Record<string, unknown>,
  headers: TokenHeaders,
): void {
  native.headers = own;
  for (const name in headers) copy[name] = REDACTED;
}

/**
 * The native request that carries keyfob's headers: scrubbed once they are written, when its response
 * arrives ({@link RequestState.observe}) or when got gives up on it (the `beforeError` hook).
 */
function sent(request: unknown, state: RequestState, options: GotRequestOptions): unknown {
  const r = request as { on?: unknown } | null | undefined;
  if (r !== null && r !== undefined && typeof r.on === 'function') {
    guardNativeRequest(r);
    if (state.unseen(options)) {
      (r as { on(event: 'response', listener: (response: ResponseLike) => void): unknown }).on(
        'response',
        (response) => state.observe(response),
      );
    }
  }
  return request;
}

/** The caller's request function, else got's own: got falls back to its own when a custom one returns undefined. */
function send(
  options: GotRequestOptions,
  original: RequestFunction | undefined,
  url: unknown,
  native: unknown,
  callback: unknown,
): unknown {
  if (original === undefined) return callWith(fallbackOf(options), url, native, callback);
  const result = callWith(original, url, native, callback);
  if (result === undefined) return callWith(fallbackOf(options), url, native, callback);
  if (result instanceof Promise) {
    return result.then((r) => (r === undefined ? callWith(fallbackOf(options), url, native, callback) : r));
  }
  return result;
}

/**
 * A copy of got's native header map with keyfob's headers set (got's names are lower case, like
 * keyfob's). Copied key by key: object spread takes a slow path in V8 here (about 4 µs a request).
 */
function withHeaders(
  from: Record<string, unknown> | undefined,
  headers: TokenHeaders,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (from !== undefined) {
    const keys = Object.keys(from);
    for (let i = 0; i < keys.length; i++) out[keys[i]!] = from[keys[i]!];
  }
  for (const name in headers) out[name] = headers[name];
  return out;
}

/**
 * got's own request function for these options (http, https or HTTP/2), called with keyfob's native
 * options rather than got's. got 13-15 expose it as `getFallbackRequestFunction()`; got 16 made it
 * private, but `getRequestFunction()` returns it while no custom `request` is set.
 */
function fallbackOf(options: GotRequestOptions): unknown {
  const legacy = (options as { getFallbackRequestFunction?: () => unknown }).getFallbackRequestFunction;
  if (typeof legacy === 'function') return legacy.call(options);
  const own = options.request;
  options.request = undefined;
  try {
    return options.getRequestFunction();
  } finally {
    options.request = own;
  }
}

function callWith(fn: unknown, url: unknown, native: unknown, callback: unknown): unknown {
  return (fn as (u: unknown, o: unknown, c?: unknown) => unknown)(url, native, callback);
}

/** Sets (or, without headers, takes back) keyfob's request function for this hop. */
function install(options: GotRequestOptions, state: RequestState | undefined, headers?: TokenHeaders): void {
  if (state === undefined) return;
  options.request = headers === undefined ? state.original : requestWith(options, state, headers);
}

/**
 * got hooks that bind core's {@link RequestPolicy} to got: a token on requests for allowed origins
 * (the `prefixUrl` origin plus `origins`), one retry with a fresh token on a 401 to keyfob's token,
 * never a token across a redirect to another origin.
 *
 * - `beforeRequest`: asks the policy and puts its headers on the native request only (got's
 *   `request` option), so `options.headers` and every error got builds never hold a token. An
 *   `Authorization` you set is replaced by keyfob's on an allowed origin, unless `context.keyfob.skip`.
 *   keyfob's `request` function checks the URL got finally sends to (a later hook may have changed
 *   it) and scrubs the headers from Node's `ClientRequest` once they are sent.
 * - `beforeRedirect`: the policy's decision for the next hop. Once a hop went without the token, got's
 *   retries of the request stay without it.
 * - `afterResponse`: on a 401 the policy calls a rejection of keyfob's token, invalidates it and, when
 *   the body can be replayed, one `retryWithMergedOptions`. Every other response goes to the policy too
 *   (DPoP nonces), as do redirects (`beforeRedirect`) and the responses got shows no hook of keyfob's.
 * - `beforeError`: a {@link KeyfobError} thrown while getting a token reaches the caller as itself
 *   (got 14; older got: a `RequestError` whose `cause` it is; see {@link keyfobErrorOf}).
 *
 * Without `origins`, a request with no `prefixUrl` is rejected with a `ConfigurationError` rather than
 * sent without a decision.
 */
export function tokenHooks(manager: TokenManager, options: TokenHooksOptions = {}): KeyfobGotHooks {
  return hooksFor(manager, options, undefined);
}

function hooksFor(
  manager: TokenManager,
  options: TokenHooksOptions,
  fixed: Policy | undefined,
): KeyfobGotHooks {
  if (
    !manager ||
    typeof manager.getAuthorizationHeader !== 'function' ||
    typeof manager.invalidate !== 'function'
  ) {
    throw new ConfigurationError(`${NAME}: tokenHooks(manager) needs a TokenManager from @keyfob/core.`);
  }
  // Checks the options now (origins, subject, scope, retryOn401) when they can stand alone.
  if (fixed === undefined && options?.origins !== undefined) {
    new RequestPolicy<GotRequestOptions>(manager, options, { name: NAME });
  }
  // One policy per prefixUrl (the same string for every request of an instance).
  const byPrefix = new Map<string, Policy>();
  const policyFor = (opts: GotRequestOptions): Policy => {
    if (fixed !== undefined) return fixed;
    const prefix = opts.prefixUrl ? String(opts.prefixUrl) : '';
    let policy = byPrefix.get(prefix);
    if (policy === undefined) {
      if (prefix === '' && options?.origins === undefined) {
        throw new ConfigurationError(
          `${NAME}: no allowed origin for this request: it has no prefixUrl and tokenHooks() was given no origins.`,
          {
            hint: 'Pass tokenHooks(manager, { origins: ["https://api.example.com"] }) or set prefixUrl on the got instance.',
          },
        );
      }
      policy = new RequestPolicy<GotRequestOptions>(manager, options, {
        name: NAME,
        ...(prefix === '' ? {} : { baseUrl: prefix }),
      });
      if (byPrefix.size >= 32) byPrefix.clear();
      byPrefix.set(prefix, policy);
    }
    return policy;
  };

  // Not async: with the token cached the policy answers synchronously, and got only awaits undefined.
  const beforeRequest: BeforeRequestHook = (opts) => {
    const mark = (opts.context as Record<PropertyKey, unknown> | undefined)?.[STATE];
    if (mark === WITHOUT_TOKEN) return;
    let state = mark instanceof RequestState ? mark : undefined;
    if (state !== undefined) {
      // A redirect hop: the redirect hook has decided.
      const redirect = state.takeRedirect();
      if (redirect !== false) return install(opts, state, redirect);
    }
    const url = urlOf(opts);
    if (state === undefined) {
      const policy = policyFor(opts);
      // The href: the policy's cached path for a string (a URL's origin is computed on every read).
      const attempt = url === undefined ? undefined : policy.start(url.href, keyfobOf(opts), opts);
      if (attempt === undefined) return;
      state = new RequestState(policy, attempt, opts.request);
      (opts.context as Record<PropertyKey, unknown>)[STATE] = state;
    } else if (state.withheld || url === undefined || !state.policy.allows(url.href)) {
      // got's own retry (or keyfob's 401 retry) of a request that ended up elsewhere, or that went
      // through another origin on the way: it stays without the token.
      return install(opts, state);
    }
    const signal = (opts as { signal?: AbortSignal }).signal ?? undefined;
    const headers = state.policy.headersNow(state.attempt, opts.method, url!, signal);
    if (!(headers instanceof Promise)) return install(opts, state, headers);
    const s = state;
    return headers.then((h) => install(opts, s, h));
  };

  const beforeRedirect: BeforeRedirectHook = (opts, response) => {
    const state = stateOf(opts);
    if (state === undefined) {
      (opts.context as Record<PropertyKey, unknown>)[STATE] = WITHOUT_TOKEN;
      return;
    }
    // The redirect's own response first: with DPoP, its nonce goes into the next hop's proof.
    if (state.attempt.sent !== undefined) state.observe(response as ResponseLike);
    const url = urlOf(opts);
    state.redirected(url === undefined ? undefined : state.policy.redirect(state.attempt, opts.method, url));
  };

  const on401 = async (
    response: Parameters<AfterResponseHook>[0],
    retryWithMergedOptions: Parameters<AfterResponseHook>[1],
  ): Promise<typeof response> => {
    const opts = response.request.options;
    const state = stateOf(opts);
    if (state === undefined) return response;
    if (state.attempt.sent !== undefined) scrubSentRequest((response as ResponseLike).req);
    if (!state.policy.rejected(state.attempt, 401, response.headers)) return response;
    if (!(await state.policy.retry(state.attempt, opts.body))) return response;
    // beforeRequest runs again and asks the policy for the fresh token.
    return retryWithMergedOptions({});
  };
  // Synchronous for everything but a 401: no promise on the hot path.
  const afterResponse: AfterResponseHook = (response, retryWithMergedOptions) => {
    if (response.statusCode === 401) return on401(response, retryWithMergedOptions);
    const state = stateOf(response.request.options);
    if (state !== undefined && state.attempt.sent !== undefined) state.observe(response as ResponseLike);
    return response;
  };

  const beforeError: BeforeErrorHook = (error) => {
    const cause = (error as { cause?: unknown }).cause;
    if (error.name === 'RequestError' && isKeyfobError(cause)) return cause as unknown as RequestError;
    // got has given up on the request (refused, timed out, a failing body stream...): Node's request
    // may still hold keyfob's headers, also in a head never written.
    const state = error.options === undefined ? undefined : stateOf(error.options);
    if (state !== undefined && state.attempt.sent !== undefined) {
      scrubAbandonedRequest((error.request as { _request?: unknown } | undefined)?._request);
    }
    return error;
  };

  const hooks = {
    beforeRequest: [beforeRequest],
    beforeRedirect: [beforeRedirect],
    afterResponse: [afterResponse],
    beforeError: [beforeError],
  };
  // Not enumerable: got's `hooks` option rejects a key that is not a hook event, and walks only
  // enumerable keys (so does object spread).
  return Object.defineProperty(hooks, 'hooks', { value: hooks, enumerable: false }) as KeyfobGotHooks;
}

/** Just what `withTokens` uses of a got instance (so any got >= 14 instance type fits). */
export interface GotLike {
  readonly defaults: { readonly options: { readonly prefixUrl: string | URL } };
  extend(...options: any[]): unknown;
}

/**
 * `gotInstance.extend({ hooks: tokenHooks(manager, options) })`, with the allowed origins fixed now:
 * the instance's `prefixUrl` origin plus `options.origins`. Throws a `ConfigurationError` when there
 * is neither.
 */
export function withTokens<G extends GotLike>(
  gotInstance: G,
  manager: TokenManager,
  options: TokenHooksOptions = {},
): G {
  if (!gotInstance || typeof gotInstance.extend !== 'function') {
    throw new ConfigurationError(`${NAME}: withTokens(gotInstance, manager) needs a got instance.`);
  }
  const prefixUrl = String(gotInstance.defaults?.options?.prefixUrl ?? '');
  const policy = new RequestPolicy<GotRequestOptions>(manager, options, {
    name: NAME,
    ...(prefixUrl === '' ? {} : { baseUrl: prefixUrl }),
  });
  return gotInstance.extend({ hooks: hooksFor(manager, options, policy) }) as G;
}

/**
 * The {@link KeyfobError} behind a failed got call, if any: the error itself (got 14 hands it
 * over as is) or the `cause` of the `RequestError` got wrapped it in.
 */
export function keyfobErrorOf(error: unknown): KeyfobError | undefined {
  if (isKeyfobError(error)) return error;
  const cause = (error as { cause?: unknown } | null | undefined)?.cause;
  return isKeyfobError(cause) ? cause : undefined;
}

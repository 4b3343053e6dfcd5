import { ConfigurationError, isKeyfobError, type KeyfobError, type TokenManager } from '@keyfob/core';
import type {
  AfterResponseHook,
  BeforeErrorHook,
  BeforeRedirectHook,
  BeforeRequestHook,
  Options,
  RequestError,
} from 'got';

/**
 * Per-request control, passed as `context: { keyfob: { ... } }` in a got call.
 * got types `context` as `Record<string, unknown>` (a type alias, so it cannot be augmented):
 * write `{ keyfob: { skip: true } satisfies KeyfobContext }` to have it checked.
 */
export interface KeyfobContext {
  /** Send this request without a token and without 401 handling. Defaults to `false`. */
  skip?: boolean;
  /** Whose token (a user id for per-user token sets). Defaults to the `subject` option. */
  subject?: string;
  /** Scope to ask for instead of the grant's. Defaults to the `scope` option. */
  scope?: string;
}

export interface TokenHooksOptions {
  /**
   * Origins (`https://api.example.com`; a full URL is reduced to its origin) that receive the
   * token; it replaces the default, so list the prefixUrl's origin too if you need it.
   * Defaults to the origin of the request's `prefixUrl` (for `withTokens`: the instance's
   * `prefixUrl` when it is called). A request with neither is rejected with a `ConfigurationError`.
   */
  origins?: readonly (string | URL)[];
  /**
   * Whose token: a fixed subject, or a function of the request's got options (e.g. read a header).
   * `context.keyfob.subject` wins over it. Defaults to none (the service's own token).
   */
  subject?: string | ((options: GotRequestOptions) => string | undefined);
  /** Scope to ask for instead of the grant's. `context.keyfob.scope` wins over it. Defaults to the grant's scope. */
  scope?: string;
  /**
   * On a 401 from an allowed origin, drop exactly the token that was sent and send the request
   * once more with a new one. With `false` the token is still dropped (the next request gets a
   * new one) but the 401 goes straight to the caller. Defaults to `true`.
   */
  retryOn401?: boolean;
}

/** The hooks `tokenHooks` returns, ready for `got.extend({ hooks })`. */
export interface KeyfobGotHooks {
  beforeRequest: BeforeRequestHook[];
  beforeRedirect: BeforeRedirectHook[];
  afterResponse: AfterResponseHook[];
  beforeError: BeforeErrorHook[];
}

/** What these hooks read of got's options (the same across got 13 and 14). */
type RequestOptions = Pick<Options, 'context' | 'headers' | 'url' | 'prefixUrl' | 'body'>;

/** got's options as a `beforeRequest` hook receives them. */
export type GotRequestOptions = Parameters<BeforeRequestHook>[0];

/** Lives in `options.context` under a private symbol: survives got's retries and redirects (context is copied shallowly). */
const STATE = Symbol('keyfob');
const BEARER = 'Bearer ';

class RequestState {
  /** Set once the 401 retry was made: never a second one, whatever got's retry settings. */
  retried = false;
  constructor(
    /** The `Authorization` value keyfob put on the request (`Bearer <token>`, the manager's cached string). */
    public header: string,
    readonly subject: string | undefined,
    readonly scope: string | undefined,
  ) {}
  // got prints `options` (and so `context`) in `util.inspect(error)`: show nothing secret.
  toJSON(): Record<string, unknown> {
    return { retried: this.retried };
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `KeyfobRequestState { retried: ${this.retried} }`;
  }
}

function originOf(value: string | URL, what: string): string {
  let origin: string;
  try {
    origin = new URL(String(value)).origin;
  } catch {
    throw new ConfigurationError(
      `@keyfob/got: ${what} "${String(value).slice(0, 100)}" is not an absolute URL.`,
    );
  }
  if (origin === 'null') {
    throw new ConfigurationError(
      `@keyfob/got: ${what} "${String(value).slice(0, 100)}" has no http(s) origin.`,
    );
  }
  return origin;
}

function contextOf(options: RequestOptions): KeyfobContext | undefined {
  const value = options.context?.keyfob;
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object') {
    throw new ConfigurationError(
      '@keyfob/got: context.keyfob must be an object ({ skip?, subject?, scope? }).',
    );
  }
  return value as KeyfobContext;
}

function stateOf(options: RequestOptions): RequestState | undefined {
  const s = (options.context as Record<PropertyKey, unknown> | undefined)?.[STATE];
  return s instanceof RequestState ? s : undefined;
}

/** got can send these again as they are; streams, generators and encoded FormData are read once. */
function replayable(body: unknown): boolean {
  return body === undefined || typeof body === 'string' || ArrayBuffer.isView(body);
}

function urlOf(options: RequestOptions): URL | undefined {
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
 * got hooks that attach `Authorization: Bearer <token>` from `manager` to requests for allowed
 * origins, renew the token once on a 401, and keep it off every other origin (redirects included).
 *
 * - `beforeRequest`: attaches the token (a request that already carries an Authorization header
 *   keyfob did not set is left alone).
 * - `beforeRedirect`: removes keyfob's header when the redirect target is not an allowed origin.
 * - `afterResponse`: on a 401 to keyfob's token, `manager.invalidate(token)` and one
 *   `retryWithMergedOptions` with the new header (not for stream, generator or FormData bodies,
 *   which cannot be sent twice). A second 401 reaches the caller as got's `HTTPError`.
 * - `beforeError`: a {@link KeyfobError} thrown while getting a token reaches the caller as
 *   itself (got 14; older got: a `RequestError` whose `cause` it is; see {@link keyfobErrorOf}),
 *   and keyfob's header is removed from a failed request's options (got prints them).
 *
 * Without `origins`, each request's `prefixUrl` gives the allowed origin; a request with no
 * `prefixUrl` is rejected with a `ConfigurationError` rather than sent without a decision.
 */
export function tokenHooks(manager: TokenManager, options: TokenHooksOptions = {}): KeyfobGotHooks {
  if (
    !manager ||
    typeof manager.getAuthorizationHeader !== 'function' ||
    typeof manager.invalidate !== 'function'
  ) {
    throw new ConfigurationError('@keyfob/got: tokenHooks(manager) needs a TokenManager from @keyfob/core.');
  }
  const fixed =
    options.origins === undefined
      ? undefined
      : new Set(options.origins.map((o) => originOf(o, 'origins entry')));
  if (fixed !== undefined && fixed.size === 0) {
    throw new ConfigurationError(
      '@keyfob/got: origins is empty; list the origins that may receive the token.',
    );
  }
  const retryOn401 = options.retryOn401 ?? true;
  const subjectOption = options.subject;
  const scopeOption = options.scope;

  // prefixUrl is the same string for every request of an instance: parse it once.
  let lastPrefix = '';
  let lastPrefixOrigin = '';
  const isAllowed = (url: URL, opts: RequestOptions): boolean => {
    if (fixed !== undefined) return fixed.has(url.origin);
    const prefix = opts.prefixUrl ? String(opts.prefixUrl) : '';
    if (prefix === '') {
      throw new ConfigurationError(
        '@keyfob/got: no allowed origin for this request: it has no prefixUrl and tokenHooks() was given no origins.',
        {
          hint: 'Pass tokenHooks(manager, { origins: ["https://api.example.com"] }) or set prefixUrl on the got instance.',
        },
      );
    }
    if (prefix !== lastPrefix) {
      lastPrefixOrigin = originOf(prefix, 'prefixUrl');
      lastPrefix = prefix;
    }
    return url.origin === lastPrefixOrigin;
  };

  const beforeRequest: BeforeRequestHook = async (opts) => {
    const ctx = contextOf(opts);
    const state = stateOf(opts);
    const headers = opts.headers;
    const current = headers.authorization;
    const ours = state !== undefined && current === state.header;
    if (ctx?.skip === true) {
      if (ours) delete headers.authorization;
      return;
    }
    // An Authorization header the caller set is theirs: keyfob neither replaces nor renews it.
    if (current !== undefined && !ours) return;
    const url = urlOf(opts);
    if (url === undefined || !isAllowed(url, opts)) {
      // Reached through a redirect on a got that kept the header: never let it leave.
      if (ours) delete headers.authorization;
      return;
    }
    const subject =
      ctx?.subject ?? (typeof subjectOption === 'function' ? subjectOption(opts) : subjectOption);
    const scope = ctx?.scope ?? scopeOption;
    const signal = (opts as { signal?: AbortSignal }).signal ?? undefined;
    const header =
      subject === undefined && scope === undefined && signal === undefined
        ? await manager.getAuthorizationHeader()
        : await manager.getAuthorizationHeader({ subject, scope, signal });
    if (state !== undefined) {
      state.header = header;
    } else {
      (opts.context as Record<PropertyKey, unknown>)[STATE] = new RequestState(header, subject, scope);
    }
    headers.authorization = header;
  };

  const beforeRedirect: BeforeRedirectHook = (opts) => {
    const state = stateOf(opts);
    if (state === undefined || opts.headers.authorization !== state.header) return;
    const url = urlOf(opts);
    let allowed = false;
    try {
      allowed = url !== undefined && isAllowed(url, opts);
    } catch {
      allowed = false;
    }
    if (!allowed) delete opts.headers.authorization;
  };

  const on401 = async (
    response: Parameters<AfterResponseHook>[0],
    retryWithMergedOptions: Parameters<AfterResponseHook>[1],
  ): Promise<typeof response> => {
    const opts = response.request.options;
    const state = stateOf(opts);
    // Only a 401 to the token keyfob sent says anything about that token.
    if (state === undefined || state.retried || opts.headers.authorization !== state.header) return response;
    const rejected = state.header.slice(BEARER.length);
    const scoped = { subject: state.subject, scope: state.scope };
    await manager.invalidate(rejected, scoped);
    if (!retryOn401 || contextOf(opts)?.skip === true || !replayable(opts.body)) return response;
    state.retried = true;
    // Concurrent 401s for one token share one token request (compare-and-delete + single-flight in core).
    state.header = await manager.getAuthorizationHeader(scoped);
    return retryWithMergedOptions({ headers: { authorization: state.header } });
  };
  // Synchronous for everything but a 401: no promise on the hot path.
  const afterResponse: AfterResponseHook = (response, retryWithMergedOptions) =>
    response.statusCode === 401 ? on401(response, retryWithMergedOptions) : response;

  const beforeError: BeforeErrorHook = (error) => {
    const opts = (error as RequestError).options as RequestOptions | undefined;
    const state = opts ? stateOf(opts) : undefined;
    if (opts && state && opts.headers.authorization === state.header) {
      // The request is over: got prints `error.options` in util.inspect and JSON.stringify. Removed
      // rather than masked, so re-sending `error.options` through the instance gets a fresh token.
      delete opts.headers.authorization;
    }
    const cause = (error as { cause?: unknown }).cause;
    if (error.name === 'RequestError' && isKeyfobError(cause)) return cause as unknown as RequestError;
    return error;
  };

  return {
    beforeRequest: [beforeRequest],
    beforeRedirect: [beforeRedirect],
    afterResponse: [afterResponse],
    beforeError: [beforeError],
  };
}

/** Just what `withTokens` uses of a got instance (so any got >= 13 instance type fits). */
export interface GotLike {
  readonly defaults: { readonly options: { readonly prefixUrl: string | URL } };
  extend(...options: any[]): unknown;
}

/**
 * `gotInstance.extend({ hooks: tokenHooks(manager, options) })`, with the allowed origin fixed
 * now: `options.origins`, else the instance's `prefixUrl`. Throws a `ConfigurationError` when
 * there is neither.
 */
export function withTokens<G extends GotLike>(
  gotInstance: G,
  manager: TokenManager,
  options: TokenHooksOptions = {},
): G {
  if (!gotInstance || typeof gotInstance.extend !== 'function') {
    throw new ConfigurationError('@keyfob/got: withTokens(gotInstance, manager) needs a got instance.');
  }
  const prefixUrl = String(gotInstance.defaults?.options?.prefixUrl ?? '');
  const origins = options.origins ?? (prefixUrl === '' ? undefined : [prefixUrl]);
  if (origins === undefined) {
    throw new ConfigurationError('@keyfob/got: withTokens() cannot tell where the token may go.', {
      hint: 'Give the got instance a prefixUrl (got.extend({ prefixUrl })) or pass { origins: ["https://api.example.com"] }.',
    });
  }
  return gotInstance.extend({ hooks: tokenHooks(manager, { ...options, origins }) }) as G;
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

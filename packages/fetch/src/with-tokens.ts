import {
  ConfigurationError,
  type KeyfobRequestOptions,
  type RequestAttempt,
  RequestPolicy,
  type RequestPolicyOptions,
  type TokenHeaders,
  type TokenManager,
} from '@keyfob/core';
import { locationUrl } from './location.js';

declare global {
  interface RequestInit {
    /** keyfob per-request control: `{ skip?, subject?, scope? }`. See `@keyfob/fetch`. */
    keyfob?: KeyfobRequestOptions;
  }
}

/** What a `subject` function of {@link withTokens} receives. */
export interface FetchRequestInfo {
  /** The absolute URL of the request. */
  url: string;
  /** The `init` the request was made with, if any. */
  init: RequestInit | undefined;
  /** The `Request` it was made from, if it was. */
  request: Request | undefined;
}

/** Options of {@link withTokens} and {@link tokenInterceptor}. */
export interface FetchTokenOptions<R = FetchRequestInfo> extends Omit<RequestPolicyOptions<R>, 'origins'> {
  /**
   * Origins that may receive tokens (`'https://api.example.com'` or any URL on it; scheme, host and
   * port count). Required: fetch has no base URL. A request to any other origin, or a redirect to
   * one, carries no token.
   */
  origins: readonly (string | URL)[];
}

/**
 * What {@link withTokens} returns: `fetch`'s own signature, its init also taking `keyfob`
 * (undici's fetch keeps its `dispatcher` option and its own `Response` type).
 */
export type WithTokens<F extends FetchLike> = (
  input: Parameters<F>[0],
  init?: NonNullable<Parameters<F>[1]> & { keyfob?: KeyfobRequestOptions },
) => ReturnType<F>;

/** Any fetch: the global one, undici's, or another with the same shape. */
export type FetchLike = (input: any, init?: any) => Promise<any>;
/** How keyfob calls it: the responses of every fetch have what keyfob reads of a `Response`. */
type Send = (input: unknown, init?: RequestInit) => Promise<Response>;

/** 301/302/303/307/308: the redirects fetch follows. */
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** The fetch standard's limit (https://fetch.spec.whatwg.org/#http-redirect-fetch, step 5). */
const MAX_REDIRECTS = 20;
/** Dropped on a redirect to another origin, as undici's fetch does. */
const CROSS_ORIGIN_DROPPED = ['authorization', 'cookie', 'proxy-authorization'];
/** Request-body-header names, dropped when a redirect turns the request into a GET. */
const BODY_HEADERS = ['content-encoding', 'content-language', 'content-location', 'content-type'];

/**
 * Wraps `fetch` so that requests to `options.origins` carry `manager`'s token, with fetch's own
 * signature (a `Request`, URL or string, and `RequestInit`). On a 401 to keyfob's token the token is
 * invalidated and the request sent once more with a fresh one when its body can be replayed; a
 * second 401 is returned as the `Response`. Redirects are followed here (fetch semantics: 301/302
 * POST and 303 become GET, 307/308 replay the body, at most 20), so that the token goes only to
 * allowed origins and a 401 is attributed to the hop that got it. Per request:
 * `{ keyfob: { skip?, subject?, scope? } }` in the init.
 *
 * @throws ConfigurationError when `options.origins` is missing or holds no absolute http(s) URL.
 */
export function withTokens<F extends FetchLike>(
  fetch: F,
  manager: TokenManager,
  options: FetchTokenOptions,
): WithTokens<F> {
  if (typeof fetch !== 'function') {
    throw new ConfigurationError(
      '@keyfob/fetch: withTokens(fetch, manager, options) needs a fetch function.',
    );
  }
  if (!options || !Array.isArray(options.origins)) {
    throw new ConfigurationError(
      '@keyfob/fetch: withTokens() needs options.origins: fetch has no base URL.',
      {
        hint: "Pass withTokens(fetch, tokens, { origins: ['https://api.example.com'] }).",
      },
    );
  }
  const policy = new RequestPolicy<FetchRequestInfo>(manager, options, { name: '@keyfob/fetch' });
  const subjectIsFunction = typeof options.subject === 'function';
  const send = fetch as Send;

  const wrapped = (input: unknown, init?: RequestInit): Promise<Response> => {
    const request = isRequest(input) ? input : undefined;
    const url = request !== undefined ? request.url : input instanceof URL ? input.href : String(input);
    const keyfob = init?.keyfob;
    let attempt: RequestAttempt | undefined;
    try {
      attempt = policy.start(
        url,
        keyfob,
        subjectIsFunction ? { url, init, request } : (undefined as unknown as FetchRequestInfo),
      );
    } catch (error) {
      return Promise.reject(error);
    }
    if (attempt === undefined) return send(input, init);
    return sendWithToken(send, policy, attempt, url, request, init);
  };
  return wrapped as WithTokens<F>;
}

function isRequest(input: unknown): input is Request {
  return (
    typeof input === 'object' &&
    input !== null &&
    !(input instanceof URL) &&
    typeof (input as Request).url === 'string' &&
    typeof (input as Request).clone === 'function'
  );
}

/**
 * The body of a request as it can be sent (again): the init's body, or for a `Request` a reserve
 * copy made before each send (`clone()`), so a 401 or a 307/308 can replay it.
 */
class Body {
  #reserve: Request | undefined;
  readonly #value: unknown;
  constructor(request: Request | undefined, init: RequestInit | undefined) {
    if (init !== undefined && init.body !== undefined) {
      this.#value = init.body;
    } else if (request !== undefined && request.body !== null) {
      this.#reserve = request;
    }
  }
  get present(): boolean {
    return this.#reserve !== undefined || (this.#value !== undefined && this.#value !== null);
  }
  /** What the policy checks for replay: a `Request` body is replayed from its reserve copy. */
  get forPolicy(): unknown {
    return this.#reserve !== undefined ? undefined : this.#value;
  }
  /** The body for the next send, keeping a copy for a later one. */
  take(): unknown {
    const reserve = this.#reserve;
    if (reserve === undefined) return this.#value;
    if (reserve.bodyUsed) {
      throw new TypeError('@keyfob/fetch: the Request body was already used.');
    }
    this.#reserve = reserve.clone();
    return reserve.body;
  }
}

async function sendWithToken(
  send: Send,
  policy: RequestPolicy<FetchRequestInfo>,
  attempt: RequestAttempt,
  url: string,
  request: Request | undefined,
  init: RequestInit | undefined,
): Promise<Response> {
  const signal = init?.signal ?? request?.signal ?? undefined;
  const method0 = normalizeMethod(init?.method ?? request?.method ?? 'GET');
  const mode = init?.redirect ?? request?.redirect ?? 'follow';
  const follow = mode === 'follow';
  const body = new Body(request, init);
  const callerHeaders = init?.headers ?? request?.headers;
  // The init for every hop: the caller's (without `keyfob`), with our headers, body, method and
  // manual redirects. The common call (a URL and an init without a Request) copies nothing else.
  let base: RequestInit | undefined;
  if (request !== undefined) base = requestInit(request, init);
  else if (init !== undefined) {
    const { keyfob: _, ...rest } = init;
    base = rest;
  }
  for (;;) {
    const now = policy.headersNow(attempt, method0, url, signal);
    let tokenHeaders: TokenHeaders;
    try {
      tokenHeaders = now instanceof Promise ? await now : now;
    } catch (error) {
      // Aborted while waiting for the token: reject as fetch does, with the signal's reason.
      if (signal?.aborted) throw signal.reason ?? error;
      throw error;
    }
    let headers: HeadersInit = withHeaders(callerHeaders, tokenHeaders);
    let method = method0;
    let current = url;
    let withBody = body.present;
    let hops = 0;
    let response: Response;
    for (;;) {
      const redirect = follow ? 'manual' : mode;
      const hopInit: RequestInit =
        base === undefined
          ? { headers, redirect }
          : {
              ...base,
              method,
              headers,
              body: withBody ? (body.take() as RequestInit['body']) : null,
              redirect,
            };
      if (withBody && request !== undefined && init?.body === undefined) {
        (hopInit as { duplex?: string }).duplex = 'half';
      }
      response = await send(current, hopInit);
      const location = follow && REDIRECTS.has(response.status) ? response.headers.get('location') : null;
      if (location === null) break;
      // https://fetch.spec.whatwg.org/#http-redirect-fetch
      let next: URL;
      try {
        next = locationUrl(location, current);
      } catch (cause) {
        await discard(response);
        throw new TypeError('fetch failed', { cause });
      }
      if ((next.protocol !== 'http:' && next.protocol !== 'https:') || ++hops > MAX_REDIRECTS) {
        await discard(response);
        throw new TypeError('fetch failed', {
          cause: new Error(
            hops > MAX_REDIRECTS ? 'redirect count exceeded' : 'URL scheme must be a HTTP(S) scheme',
          ),
        });
      }
      const hopHeaders = headers instanceof Headers ? headers : new Headers(headers);
      headers = hopHeaders;
      const status = response.status;
      if (
        ((status === 301 || status === 302) && method === 'POST') ||
        (status === 303 && method !== 'GET' && method !== 'HEAD')
      ) {
        method = 'GET';
        withBody = false;
        for (const name of BODY_HEADERS) hopHeaders.delete(name);
      } else if (withBody && !policy.replayable(body.forPolicy)) {
        // A stream was consumed by the first hop: fetch cannot follow a 307/308 with it either.
        await discard(response);
        throw new TypeError('fetch failed', {
          cause: new Error('a request with a stream body cannot follow a 307/308 redirect'),
        });
      }
      if (new URL(current).origin !== next.origin) {
        for (const name of CROSS_ORIGIN_DROPPED) hopHeaders.delete(name);
      }
      // Every response of a hop that carried keyfob's headers goes through `rejected` (a redirect is
      // never a rejection): with DPoP it keeps a nonce the hop sent, for the next proof to that origin.
      policy.rejected(attempt, status, response.headers);
      const carry = policy.redirect(attempt, method, next);
      if (carry === undefined) for (const name in tokenHeaders) hopHeaders.delete(name);
      else for (const name in carry) hopHeaders.set(name, carry[name]!);
      await discard(response);
      current = next.href;
      base ??= {};
    }
    if (hops > 0) Object.defineProperty(response, 'redirected', { value: true });
    if (!policy.rejected(attempt, response.status, response.headers)) return response;
    if (!(await policy.retry(attempt, body.forPolicy))) return response;
    await discard(response);
  }
}

/**
 * The caller's headers with keyfob's set, replacing any of the same name (case-insensitive). No
 * caller headers: keyfob's own (shared, read-only) map; a plain object: a plain copy; `Headers` or
 * pairs: a `Headers`.
 */
function withHeaders(caller: HeadersInit | undefined, add: TokenHeaders): HeadersInit {
  if (caller === undefined || caller === null) return add;
  if (
    Array.isArray(caller) ||
    caller instanceof Headers ||
    typeof caller !== 'object' ||
    Symbol.iterator in caller
  ) {
    const h = new Headers(caller);
    for (const name in add) h.set(name, add[name]!);
    return h;
  }
  const out: Record<string, string> = {};
  for (const name of Object.keys(caller)) {
    if (!Object.hasOwn(add, name.toLowerCase())) out[name] = (caller as Record<string, string>)[name]!;
  }
  for (const name in add) out[name] = add[name]!;
  return out;
}

/** fetch upper-cases these methods, whatever case they are given in (https://fetch.spec.whatwg.org/#concept-method-normalize). */
const NORMALIZED = new Set(['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT']);

/** The method as fetch sends it: `'post'` is `POST` (so a 301/302 turns it into a GET), `'patch'` stays. */
function normalizeMethod(method: string): string {
  const upper = method.toUpperCase();
  return NORMALIZED.has(upper) ? upper : method;
}

/** The init a `Request` stands for (its body is taken separately). */
function requestInit(request: Request, init: RequestInit | undefined): RequestInit {
  return {
    cache: request.cache,
    credentials: request.credentials,
    integrity: request.integrity,
    keepalive: request.keepalive,
    mode: request.mode,
    referrer: request.referrer,
    referrerPolicy: request.referrerPolicy,
    signal: request.signal,
    ...init,
  };
}

/** Frees the connection of a response nobody will read (a redirect hop, a 401 that is retried). */
async function discard(response: Response): Promise<void> {
  try {
    await response.body?.cancel();
  } catch {
    // Already closed or errored: nothing to free.
  }
}

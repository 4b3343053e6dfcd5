import {
  ConfigurationError,
  type KeyfobRequestOptions as CoreRequestOptions,
  ErrorCode,
  KeyfobError,
  REDACTED,
  type RequestAttempt,
  RequestPolicy,
  type RequestPolicyOptions,
  type TokenHeaders,
  type TokenManager,
} from '@keyfob/core';
import axios, {
  type AxiosAdapter,
  type AxiosError,
  AxiosHeaders,
  type AxiosInstance,
  type AxiosRequestConfig,
  type AxiosResponse,
  type InternalAxiosRequestConfig,
} from 'axios';

/** Per-request control, set as `keyfob` in any axios request config: core's `{ skip?, subject?, scope? }`. */
export interface KeyfobRequestOptions extends CoreRequestOptions {
  /**
   * Set by keyfob on the request's config once it has sent the request again after a 401 with a fresh
   * token. Read it on `response.config.keyfob?.retried` to count recovered 401s. Defaults to `undefined`.
   */
  retried?: boolean;
}

declare module 'axios' {
  // No type parameters on purpose: axios < 1.19 declares `AxiosRequestConfig<D>`, newer `<D, P>`;
  // an augmentation without any merges with both.
  interface AxiosRequestConfig {
    /** keyfob per-request control: `{ skip?, subject?, scope? }`. See `@keyfob/axios`. */
    keyfob?: KeyfobRequestOptions;
  }
}

/**
 * Options of {@link attachTokens}: core's {@link RequestPolicyOptions} (`origins` in addition to the
 * instance's `baseURL` origin, `subject`, `scope`, `retryOn401`), plus `allowGlobal`.
 */
export interface AttachTokensOptions extends RequestPolicyOptions<InternalAxiosRequestConfig> {
  /**
   * Allow attaching to the global default `axios` export, so that every `axios.get(...)` anywhere in the
   * process may carry tokens (still only to the allowed origins). Defaults to `false`: pass `axios.create(...)`.
   */
  allowGlobal?: boolean | undefined;
}

/** A request whose token could not be obtained: the core's error (same class, code and fields) plus the request. */
export type KeyfobRequestError<E extends KeyfobError = KeyfobError> = E & {
  /** The axios config of the request that was not sent (keyfob never puts a token on it). */
  readonly config: InternalAxiosRequestConfig;
};

type RedirectHook = NonNullable<AxiosRequestConfig['beforeRedirect']>;
type Policy = RequestPolicy<InternalAxiosRequestConfig>;

/** Marks keyfob's adapters with what they wrap, so they never stack. */
const WRAPPED = Symbol.for('@keyfob/axios.wrapped');

/**
 * Attaches `manager`'s tokens to the requests of an axios instance: `Authorization: Bearer <token>` on
 * every request to an allowed origin; on a 401 the rejected token is invalidated and the request sent
 * once more with a fresh token. Returns a function that removes what it installed.
 *
 * The decisions (which origins, which headers, which 401s, which bodies, which redirects) are core's
 * {@link RequestPolicy}; this function binds them to axios. The token is put on a private copy of the
 * request config that only the transport sees, so the config your code, your interceptors and axios'
 * errors hold never carries it, and the transport's request objects are scrubbed once the response is in.
 *
 * @throws ConfigurationError when the instance has no absolute `baseURL` and no `origins` are given,
 *   or when `instance` is the global default `axios` export (unless `allowGlobal`).
 */
export function attachTokens(
  instance: AxiosInstance,
  manager: TokenManager,
  options: AttachTokensOptions = {},
): () => void {
  if (!instance || typeof instance !== 'function' || !instance.interceptors?.request || !instance.defaults) {
    throw new ConfigurationError(
      'attachTokens: the first argument must be an axios instance (axios.create(...)).',
    );
  }
  if (options !== undefined && (options === null || typeof options !== 'object')) {
    throw new ConfigurationError('attachTokens: options must be an object.');
  }
  const { allowGlobal, ...policyOptions } = options;
  if (allowGlobal !== true && isGlobalAxios(instance)) {
    throw new ConfigurationError(
      'attachTokens: refusing to install on the global axios default export: every axios call in the process would go through it.',
      {
        hint: "Pass an instance: attachTokens(axios.create({ baseURL: 'https://api.example.com' }), tokens); or set allowGlobal: true.",
      },
    );
  }
  const baseURL = instance.defaults.baseURL;
  const honorsAllowAbsolute = allowAbsoluteUrlsHonored(instance);
  const policy: Policy = new RequestPolicy(manager, policyOptions, {
    name: 'attachTokens',
    ...(typeof baseURL === 'string' && baseURL !== '' ? { baseUrl: baseURL } : {}),
  });

  /**
   * keyfob's adapter, in front of the request's own. It runs after every interceptor, so the target the
   * policy checks is the final one and the caller's interceptors see a retried request once.
   */
  const dispatch = (adapter: AxiosAdapter, config: InternalAxiosRequestConfig): Promise<AxiosResponse> => {
    const url = targetOf(config, honorsAllowAbsolute);
    const attempt = url === undefined ? undefined : policy.start(url, config.keyfob, config);
    if (attempt === undefined) return adapter(config);
    return send(policy, adapter, config, attempt, url!);
  };

  const adapterOver =
    (original: InternalAxiosRequestConfig['adapter']): AxiosAdapter =>
    (config) =>
      dispatch(
        resolveAdapter(original, config as InternalAxiosRequestConfig),
        config as InternalAxiosRequestConfig,
      );

  // One adapter for every request that uses the instance's own: nothing is allocated per request for
  // it. A request with its own `adapter` gets a wrapper of its own.
  const baseAdapter = instance.defaults.adapter;
  const ownAdapter = mark(adapterOver(baseAdapter), baseAdapter);

  const onRequest = (config: InternalAxiosRequestConfig): InternalAxiosRequestConfig => {
    const current = config.adapter;
    if (current !== ownAdapter) {
      if (current === baseAdapter) config.adapter = ownAdapter;
      else {
        const original = unwrap(current) as InternalAxiosRequestConfig['adapter'];
        config.adapter = mark(adapterOver(original), original);
      }
    }
    return config;
  };

  // Synchronous: axios then keeps its synchronous dispatch when no other interceptor is asynchronous.
  // The token itself is attached in keyfob's adapter, after every interceptor.
  const id = instance.interceptors.request.use(onRequest, undefined, { synchronous: true });
  let attached = true;
  return () => {
    if (!attached) return;
    attached = false;
    instance.interceptors.request.eject(id);
  };
}

/** One attempt (and, after a 401 the policy retries, the next): get the headers, then transmit. */
function send(
  policy: Policy,
  adapter: AxiosAdapter,
  config: InternalAxiosRequestConfig,
  attempt: RequestAttempt,
  url: string,
): Promise<AxiosResponse> {
  const signal = config.signal instanceof AbortSignal ? config.signal : undefined;
  let headers: TokenHeaders | Promise<TokenHeaders>;
  try {
    headers = policy.headersNow(attempt, config.method ?? 'get', url, signal);
  } catch (error) {
    return Promise.reject(requestError(error, config));
  }
  // The cached token's headers come synchronously: no promise hop on the hot path.
  if (!(headers instanceof Promise)) return transmit(policy, adapter, config, attempt, url, headers);
  return headers.then(
    (h) => transmit(policy, adapter, config, attempt, url, h),
    (error: unknown) => {
      throw requestError(error, config);
    },
  );
}

/**
 * What keyfob put on the latest hop of one attempt: the first hop's headers, then those the policy gave
 * each redirect to an allowed origin (a DPoP proof is made per hop, so its value changes). A redirect
 * that strips, and the scrub once the response is in, remove these values, not the first hop's.
 */
interface Hop {
  headers: TokenHeaders;
}

/**
 * Sends `config` with keyfob's `headers` on a private copy (the only object holding them), then hands
 * back what the transport produced with the caller's `config` in place of the copy and the headers
 * scrubbed from the transport's request objects, before axios or the caller see it. Errors axios builds
 * later (response transforms, JSON parse failures) are built from the caller's `config` and so carry
 * no token either.
 */
function transmit(
  policy: Policy,
  adapter: AxiosAdapter,
  config: InternalAxiosRequestConfig,
  attempt: RequestAttempt,
  url: string,
  headers: TokenHeaders,
): Promise<AxiosResponse> {
  const sent = copyOf(config);
  const hop: Hop = { headers };
  sent.headers = withHeaders(config.headers, headers);
  sent.beforeRedirect = redirectHook(policy, attempt, config.beforeRedirect, hop);
  let pending: Promise<AxiosResponse>;
  try {
    pending = adapter(sent);
  } catch (error) {
    throw restore(error, config, sent, hop.headers);
  }
  return pending.then(
    (response) => {
      restore(response, config, sent, hop.headers);
      // A 401 arrives here when the caller's `validateStatus` accepts it.
      if (response.status !== 401) {
        answered(policy, attempt, response);
        return response;
      }
      return after401(policy, adapter, config, attempt, url, response, undefined);
    },
    (error: unknown) => {
      restore(error, config, sent, hop.headers);
      const response = (error as AxiosError | undefined)?.response;
      if (response?.status !== 401) {
        if (response) answered(policy, attempt, response);
        throw error;
      }
      return after401(policy, adapter, config, attempt, url, undefined, error);
    },
  );
}

/**
 * Any other status: shown to the policy all the same, because with DPoP a resource server may send a
 * new `DPoP-Nonce` on any response (RFC 9449 9), which the next proof for its origin must carry.
 * Synchronous; without DPoP the policy returns at once.
 */
function answered(policy: Policy, attempt: RequestAttempt, response: AxiosResponse): void {
  policy.rejected(attempt, response.status, response.headers);
}

/** A 401 (as a response, or as axios' error): the policy says whether to send the request again. */
async function after401(
  policy: Policy,
  adapter: AxiosAdapter,
  config: InternalAxiosRequestConfig,
  attempt: RequestAttempt,
  url: string,
  response: AxiosResponse | undefined,
  error: unknown,
): Promise<AxiosResponse> {
  const headers = (response ?? (error as AxiosError).response)?.headers;
  if (policy.rejected(attempt, 401, headers) && (await policy.retry(attempt, config.data))) {
    config.keyfob = { ...config.keyfob, retried: true };
    return send(policy, adapter, config, attempt, url);
  }
  if (response) return response;
  throw error;
}

/**
 * A shallow copy of the config, key by key: axios builds each config as a dictionary-mode object, which
 * object spread copies on V8's slow path (about 5 µs a request against about 1 µs here).
 */
function copyOf(config: InternalAxiosRequestConfig): InternalAxiosRequestConfig {
  const out: Record<string, unknown> = {};
  const source = config as unknown as Record<string, unknown>;
  const keys = Object.keys(source);
  for (let i = 0; i < keys.length; i++) out[keys[i]!] = source[keys[i]!];
  // What other libraries keep on a config under a symbol (as spread would copy it).
  for (const s of Object.getOwnPropertySymbols(source)) {
    if (Object.prototype.propertyIsEnumerable.call(source, s))
      (out as Record<symbol, unknown>)[s] = (source as Record<symbol, unknown>)[s];
  }
  return out as unknown as InternalAxiosRequestConfig;
}

/** A copy of the request's headers with keyfob's set on it, replacing any of the same name. */
function withHeaders(
  original: InternalAxiosRequestConfig['headers'],
  headers: TokenHeaders,
): InternalAxiosRequestConfig['headers'] {
  const h = original as unknown as Record<string, unknown> | undefined;
  if (h && h instanceof AxiosHeaders) {
    // Already normalised (one entry per name): its entries are copied as they are, `false` ("do not
    // send", e.g. `'User-Agent': false`) included, as the transport would have read them. Not
    // `new AxiosHeaders(h)`, which normalises every entry again with a case-insensitive search each
    // (about 3 µs a request).
    const copy = new AxiosHeaders() as unknown as Record<string, unknown>;
    const keys = Object.keys(h);
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      if (!named(k, headers)) copy[k] = h[k];
    }
    for (const name in headers) copy[name] = headers[name];
    return copy as unknown as InternalAxiosRequestConfig['headers'];
  }
  // Headers an interceptor replaced with a plain object (or another axios copy's AxiosHeaders).
  const plain: Record<string, unknown> = {};
  const source = h && typeof h.toJSON === 'function' ? (h.toJSON as () => Record<string, unknown>)() : h;
  for (const k in source) if (!named(k, headers)) plain[k] = source[k];
  for (const name in headers) plain[name] = headers[name];
  return plain as unknown as InternalAxiosRequestConfig['headers'];
}

/** Whether header name `k` is one of keyfob's, in any case (the length first: no lower-case copy of most names). */
function named(k: string, headers: TokenHeaders): boolean {
  for (const name in headers)
    if (k.length === name.length && (k === name || k.toLowerCase() === name)) return true;
  return false;
}

/**
 * The redirect hook of one attempt: the caller's own first, then the policy's decision for the next
 * hop; headers it takes away are removed by value, so a header the caller set stays theirs. `hop`
 * tracks what keyfob put on the latest hop (a fresh DPoP proof per hop to an allowed origin).
 */
function redirectHook(
  policy: Policy,
  attempt: RequestAttempt,
  userHook: RedirectHook | undefined,
  hop: Hop,
): RedirectHook {
  return (opts, responseDetails, requestDetails) => {
    if (userHook) userHook(opts, responseDetails, requestDetails);
    // The redirect is a response too: a `DPoP-Nonce` on it is for the next proof to its origin (the
    // next hop's, when it stays there). axios never shows the caller this response.
    if (responseDetails && typeof responseDetails.statusCode === 'number') {
      policy.rejected(attempt, responseDetails.statusCode, responseDetails.headers);
    }
    const target = redirectTarget(opts);
    const method = typeof opts.method === 'string' ? opts.method : 'GET';
    const next = target === undefined ? undefined : policy.redirect(attempt, method, target);
    if (next !== undefined) {
      // An allowed origin: the policy's headers for this hop (a fresh DPoP proof, say), even where
      // follow-redirects dropped Authorization on its own.
      setValues(opts.headers, next);
      hop.headers = next;
      return;
    }
    // Not allowed, or a target we cannot tell: fail closed. What goes is what keyfob put on the hop
    // just made (after a same-origin hop, its proof, not the first hop's), under any case of its name.
    if (target === undefined) policy.stripped(attempt);
    removeValues(opts.headers, hop.headers);
  };
}

/** Sets each of `headers` on a plain header object, replacing a same-named header whatever its case. */
function setValues(target: unknown, headers: TokenHeaders): void {
  if (!target || typeof target !== 'object') return;
  const h = target as Record<string, unknown>;
  for (const k of Object.keys(h)) if (k.toLowerCase() in headers) delete h[k];
  for (const name in headers) h[name] = headers[name];
}

/**
 * Puts the caller's `config` back where the transport has the private copy (on the response and on
 * the error) and scrubs keyfob's header values from the transport's request objects, which Node keeps
 * (`ClientRequest`: the serialised head and the header map; follow-redirects: its options).
 */
function restore(
  target: unknown,
  config: InternalAxiosRequestConfig,
  sent: InternalAxiosRequestConfig,
  headers: TokenHeaders,
  depth = 0,
): unknown {
  if (!target || typeof target !== 'object') return target;
  const t = target as {
    config?: unknown;
    request?: unknown;
    response?: { config?: unknown; request?: unknown };
    cause?: unknown;
  };
  if (t.config === sent) t.config = config;
  scrubRequest(t.request, headers);
  const response = t.response;
  if (response && typeof response === 'object') {
    if (response.config === sent) response.config = config;
    if (response.request !== t.request) scrubRequest(response.request, headers);
  }
  // axios' fetch adapter (1.7) wraps the error it built (from the private copy) in another one and
  // keeps the first as `cause`. Followed a few levels: a cause chain can loop.
  const cause = t.cause;
  if (depth < 3 && cause !== target && cause && typeof cause === 'object') {
    restore(cause, config, sent, headers, depth + 1);
  }
  return target;
}

let kOutHeaders: symbol | undefined;

function scrubRequest(request: unknown, headers: TokenHeaders): void {
  if (!request || typeof request !== 'object') return;
  const r = request as Record<string | symbol, unknown>;
  // follow-redirects: the RedirectableRequest (its options keep the headers for the next hop) and the
  // native request of the last hop, reachable from each other.
  const redirectable = (r._redirectable ?? (r._options !== undefined ? r : undefined)) as
    | Record<string, unknown>
    | undefined;
  if (redirectable) {
    const options = redirectable._options as { headers?: unknown } | undefined;
    if (options && typeof options === 'object') removeValues(options.headers, headers, REDACTED);
    scrubNative(redirectable._currentRequest, headers);
    if (redirectable._currentRequest !== r) scrubNative(r, headers);
    return;
  }
  scrubNative(r, headers);
  // A fetch Request (axios' fetch adapter).
  const fetchHeaders = r.headers as { get?: unknown; set?: unknown } | undefined;
  if (fetchHeaders && typeof fetchHeaders.get === 'function' && typeof fetchHeaders.set === 'function') {
    const h = fetchHeaders as unknown as Headers;
    for (const name in headers) {
      if (h.get(name) === headers[name]) {
        try {
          h.set(name, REDACTED);
        } catch {
          // Immutable headers: the Request stays as it is.
        }
      }
    }
  }
}

/** Node's ClientRequest: the head as sent, the header map behind getHeader(), and unsent output. */
function scrubNative(request: unknown, headers: TokenHeaders): void {
  if (!request || typeof request !== 'object') return;
  const r = request as Record<string | symbol, unknown>;
  if (typeof r._header !== 'string') return;
  r._header = scrubText(r._header, headers);
  kOutHeaders ??= Object.getOwnPropertySymbols(r).find((s) => s.description === 'kOutHeaders');
  const out = kOutHeaders === undefined ? undefined : (r[kOutHeaders] as Record<string, unknown> | null);
  if (out && typeof out === 'object') {
    for (const name in headers) {
      const entry = out[name];
      if (Array.isArray(entry) && carries(entry[1], headers[name]!)) entry[1] = REDACTED;
    }
  }
  // The head waiting to be written: on the request before it has a socket, on a socket still connecting.
  const pending = r.outputData as unknown[] | undefined;
  if (pending !== undefined && pending.length > 0) scrubChunks(pending, 'data', headers);
  const socket = r.socket as Record<string, unknown> | null | undefined;
  if (socket && socket._pendingData != null) {
    if (typeof socket._pendingData === 'string')
      socket._pendingData = scrubText(socket._pendingData, headers);
    else scrubChunks(socket._pendingData, 'chunk', headers);
  }
}

function scrubText(text: string, headers: TokenHeaders): string {
  let t = text;
  for (const name in headers) {
    const value = headers[name]!;
    if (t.includes(value)) t = t.replaceAll(value, REDACTED);
  }
  return t;
}

function scrubChunks(chunks: unknown, key: string, headers: TokenHeaders): void {
  if (!Array.isArray(chunks)) return;
  for (const c of chunks) {
    if (c && typeof c === 'object' && typeof c[key] === 'string') c[key] = scrubText(c[key], headers);
  }
}

/**
 * Removes (or replaces with `replacement`) every header named like one of keyfob's, in any case, whose
 * value carries the value keyfob set. Header names are case-insensitive: a redirect hook that copied
 * `authorization` over as `Authorization` too has two entries that Node sends as one header, so
 * every entry is looked at.
 */
function removeValues(target: unknown, headers: TokenHeaders, replacement?: string): void {
  if (!target || typeof target !== 'object') return;
  const h = target as Record<string, unknown>;
  const keys = Object.keys(h);
  const names = Object.keys(headers);
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    for (let j = 0; j < names.length; j++) {
      const name = names[j]!;
      // The length first: most headers are skipped without a lower-case copy of their name.
      if (k.length !== name.length || (k !== name && k.toLowerCase() !== name)) continue;
      if (carries(h[k], headers[name]!)) {
        if (replacement === undefined) delete h[k];
        else h[k] = replacement;
      }
      break;
    }
  }
}

/** Whether a header value (a string, or the array Node also accepts) contains keyfob's `value`. */
function carries(headerValue: unknown, value: string): boolean {
  if (typeof headerValue === 'string') return headerValue.includes(value);
  if (!Array.isArray(headerValue)) return false;
  for (const v of headerValue) if (typeof v === 'string' && v.includes(value)) return true;
  return false;
}

function isGlobalAxios(instance: AxiosInstance): boolean {
  if (instance === (axios as unknown)) return true;
  // Another copy of axios (ESM next to CJS): only the default export carries the statics.
  const i = instance as unknown as Record<string, unknown>;
  return (
    typeof i.Axios === 'function' &&
    typeof i.isAxiosError === 'function' &&
    typeof i.AxiosError === 'function'
  );
}

// A plain property, not defineProperty: it runs for every request that brings its own adapter or redirect hook.
function mark<T extends object>(wrapper: T, original: unknown): T {
  (wrapper as { [WRAPPED]?: unknown })[WRAPPED] = original;
  return wrapper;
}

function unwrap(value: unknown): unknown {
  let v = value;
  for (let i = 0; i < 8 && typeof v === 'function' && WRAPPED in v; i++) {
    v = (v as { [WRAPPED]?: unknown })[WRAPPED];
  }
  return v;
}

function resolveAdapter(
  original: InternalAxiosRequestConfig['adapter'],
  config: InternalAxiosRequestConfig,
): AxiosAdapter {
  if (typeof original === 'function') return original;
  return axios.getAdapter(original ?? axios.defaults.adapter, config);
}

/** The absolute URL of the next hop, from follow-redirects' options. */
function redirectTarget(opts: Record<string, any>): string | undefined {
  if (typeof opts.href === 'string') return opts.href;
  if (typeof opts.protocol === 'string' && typeof opts.hostname === 'string') {
    const host =
      opts.hostname.includes(':') && !opts.hostname.startsWith('[') ? `[${opts.hostname}]` : opts.hostname;
    return `${opts.protocol}//${host}${opts.port ? `:${opts.port}` : ''}/`;
  }
  return undefined;
}

/**
 * Whether this axios keeps a request on `baseURL` when `allowAbsoluteUrls: false`. Its adapters do
 * from axios 1.8.3 on (`getUri` from 1.8.0, the http adapter from 1.8.2, the fetch and xhr adapters
 * from 1.8.3): an axios that ignores the option sends an absolute URL where it points, so keyfob must
 * judge that URL, not the base. Asked once: axios' version, and the instance's own `getUri` (in case
 * the instance comes from another copy of axios).
 */
function allowAbsoluteUrlsHonored(instance: AxiosInstance): boolean {
  if (!versionAtLeast(axios.VERSION, [1, 8, 3])) return false;
  try {
    const uri = instance.getUri({
      baseURL: 'http://base.invalid/',
      url: 'http://target.invalid/',
      allowAbsoluteUrls: false,
    } as AxiosRequestConfig);
    return typeof uri === 'string' && uri.startsWith('http://base.invalid/');
  } catch {
    return false;
  }
}

function versionAtLeast(version: unknown, min: readonly number[]): boolean {
  if (typeof version !== 'string') return false;
  const parts = version.split(/[.-]/, 3).map(Number);
  for (let i = 0; i < min.length; i++) {
    const p = parts[i] ?? 0;
    if (Number.isNaN(p)) return false;
    if (p !== min[i]) return p > min[i]!;
  }
  return true;
}

/** axios' own test (helpers/isAbsoluteURL): a scheme, or a protocol-relative `//host`. */
const ABSOLUTE = /^([a-z][a-z\d+\-.]*:)?\/\//i;

/**
 * Where a request goes, as axios computes it (buildFullPath + combineURLs): an absolute `url` wins
 * unless `allowAbsoluteUrls: false`; a relative one is appended to `baseURL`. Undefined when the
 * target has no origin (a relative URL without baseURL, or a protocol-relative URL, which axios cannot
 * send in Node): such requests never get a token.
 */
function targetOf(config: InternalAxiosRequestConfig, honorsAllowAbsolute: boolean): string | undefined {
  const url = config.url ?? '';
  const { baseURL } = config;
  if (ABSOLUTE.test(url) && !(baseURL && honorsAllowAbsolute && config.allowAbsoluteUrls === false)) {
    return url.startsWith('//') ? undefined : url;
  }
  if (!baseURL) return undefined;
  // axios' combineURLs: no URL is the base URL as it is.
  if (url === '') return baseURL;
  let start = 0;
  while (url.charCodeAt(start) === 47) start++;
  return baseWithSlash(baseURL) + (start === 0 ? url : url.slice(start));
}

let lastBase = '';
let lastBaseWithSlash = '/';
/** `baseURL` without its trailing slash (or two), plus one: the same base for every request of an instance. */
function baseWithSlash(baseURL: string): string {
  if (baseURL !== lastBase) {
    lastBaseWithSlash = `${baseURL.replace(/\/?\/$/, '')}/`;
    lastBase = baseURL;
  }
  return lastBaseWithSlash;
}

/**
 * The token could not be obtained: the request is not sent. The caller gets the core's error (same
 * class, so `instanceof TokenEndpointError` holds) as a per-request copy carrying the request `config`;
 * the core's error itself is shared by every request that waited for the same token.
 */
function requestError(error: unknown, config: InternalAxiosRequestConfig): KeyfobRequestError {
  const base =
    error instanceof KeyfobError
      ? error
      : new KeyfobError('attachTokens: could not get an access token; the request was not sent.', {
          code: ErrorCode.TokenEndpoint,
          cause: error,
        });
  const copy = Object.create(
    Object.getPrototypeOf(base),
    Object.getOwnPropertyDescriptors(base),
  ) as KeyfobError;
  Object.defineProperty(copy, 'config', {
    value: config,
    enumerable: false,
    writable: true,
    configurable: true,
  });
  return copy as KeyfobRequestError;
}

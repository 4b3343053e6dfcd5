import { ConfigurationError, ErrorCode, KeyfobError, type TokenManager } from '@keyfob/core';
import axios, {
  type AxiosAdapter,
  type AxiosInstance,
  type AxiosRequestConfig,
  type AxiosResponse,
  type InternalAxiosRequestConfig,
} from 'axios';
import { allowedOrigins, OriginResolver, originOf } from './origins.js';

/** Per-request control, set as `keyfob` in any axios request config. */
export interface KeyfobRequestOptions {
  /** Send this request without a keyfob token (e.g. to set your own Authorization header). Defaults to `false`. */
  skip?: boolean;
  /** Whose token to send (a user id for per-user token sets). Defaults to the `subject` option of {@link attachTokens}. */
  subject?: string;
  /** Scope of the token to send (part of the cache key). Defaults to the `scope` option of {@link attachTokens}. */
  scope?: string;
  /**
   * Set by keyfob once it has repeated this request after a 401 with a fresh token; a request carrying
   * it is never repeated again (also when you send its config again yourself). Read it on
   * `response.config.keyfob?.retried` to count recovered 401s. Defaults to `undefined`.
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

/** Options of {@link attachTokens}. */
export interface AttachTokensOptions {
  /**
   * Origins that may receive tokens, in addition to the origin of the instance's `baseURL`
   * (`'https://api.example.com'` or any URL on it; scheme, host and port count). A request to any other
   * origin, or a redirect to one, carries no token. Without `baseURL` this is required.
   * Defaults to `[]` (only the `baseURL` origin).
   */
  origins?: (string | URL)[];
  /**
   * Whose token to send: a fixed subject, or a function of the request config (return `undefined` for
   * the service's own token). A request's `keyfob.subject` wins. Defaults to `undefined` (the service's own token).
   */
  subject?: string | ((config: InternalAxiosRequestConfig) => string | undefined);
  /** Scope to request tokens for; a request's `keyfob.scope` wins. Defaults to `undefined` (the grant's scope). */
  scope?: string;
  /**
   * On a 401 to a request that carried a keyfob token: drop exactly that token (`manager.invalidate`) and
   * send the request once more with a fresh one, if its body can be sent again. `false` leaves 401s alone.
   * Defaults to `true`.
   */
  retryOn401?: boolean;
  /**
   * Allow attaching to the global default `axios` export, so that every `axios.get(...)` anywhere in the
   * process may carry tokens (still only to the allowed origins). Defaults to `false`: pass `axios.create(...)`.
   */
  allowGlobal?: boolean;
}

/** A request whose token could not be obtained: the core's error (same class, code and fields) plus the request. */
export type KeyfobRequestError<E extends KeyfobError = KeyfobError> = E & {
  /** The axios config of the request that was not sent (its Authorization header, if any, is redacted). */
  readonly config: InternalAxiosRequestConfig;
};

type TokenSource = Pick<TokenManager, 'getAuthorizationHeader' | 'invalidate'>;
type RedirectHook = NonNullable<AxiosRequestConfig['beforeRedirect']>;

/** Marks keyfob's adapters and redirect hooks with what they wrap, so they never stack. */
const WRAPPED = Symbol.for('@keyfob/axios.wrapped');
const REDACTED_HEADER = 'Bearer [REDACTED]';
const BEARER = 'Bearer ';

interface RequestState {
  /** The `Authorization` value keyfob put on the request (the current one after a retry). */
  header: string;
  subject: string | undefined;
  scope: string | undefined;
  /** Sent a second time after a 401 already. */
  retried: boolean;
}

/**
 * Attaches `manager`'s tokens to the requests of an axios instance: `Authorization: Bearer <token>` on
 * every request to an allowed origin; on a 401 the rejected token is invalidated and the request sent
 * once more with a fresh token. Returns a function that removes what it installed.
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
  if (
    !manager ||
    typeof manager.getAuthorizationHeader !== 'function' ||
    typeof manager.invalidate !== 'function'
  ) {
    throw new ConfigurationError(
      'attachTokens: the second argument must be a TokenManager from @keyfob/core.',
    );
  }
  if (!options || typeof options !== 'object') {
    throw new ConfigurationError('attachTokens: options must be an object.');
  }
  if (options.allowGlobal !== true && isGlobalAxios(instance)) {
    throw new ConfigurationError(
      'attachTokens: refusing to install on the global axios default export: every axios call in the process would go through it.',
      {
        hint: "Pass an instance: attachTokens(axios.create({ baseURL: 'https://api.example.com' }), tokens); or set allowGlobal: true.",
      },
    );
  }
  const { subject, scope } = options;
  if (subject !== undefined && typeof subject !== 'string' && typeof subject !== 'function') {
    throw new ConfigurationError(
      'attachTokens: options.subject must be a string or a function of the request config.',
    );
  }
  if (scope !== undefined && typeof scope !== 'string') {
    throw new ConfigurationError('attachTokens: options.scope must be a string.');
  }
  const allowed = allowedOrigins(options.origins, instance.defaults.baseURL);
  const retryOn401 = options.retryOn401 !== false;
  const resolver = new OriginResolver();
  const tokens: TokenSource = manager;
  // Recent Authorization values keyfob set: a config copied from an earlier request (`{ ...res.config,
  // url: elsewhere }`) must not carry one to another origin.
  const issued = new Set<string>();
  let lastIssued = '';
  // Authorization values on keyfob's requests in flight (with a count): the redirect hook removes exactly these.
  const inFlight = new Map<string, number>();

  const isAllowed = (config: InternalAxiosRequestConfig): boolean => {
    const origin = resolver.resolve(config.url, config.baseURL, config.allowAbsoluteUrls);
    return origin !== undefined && allowed.has(origin);
  };

  const remember = (header: string) => {
    if (header === lastIssued) return;
    lastIssued = header;
    if (issued.size >= 64) issued.clear();
    issued.add(header);
  };

  const track = (header: string) => {
    inFlight.set(header, (inFlight.get(header) ?? 0) + 1);
  };
  const untrack = (header: string) => {
    const n = inFlight.get(header) ?? 0;
    if (n > 1) inFlight.set(header, n - 1);
    else inFlight.delete(header);
  };

  const getHeader = (config: InternalAxiosRequestConfig, state: RequestState): Promise<string> => {
    const signal = config.signal instanceof AbortSignal ? config.signal : undefined;
    if (state.subject === undefined && state.scope === undefined && signal === undefined) {
      return tokens.getAuthorizationHeader();
    }
    return tokens.getAuthorizationHeader({ subject: state.subject, scope: state.scope, signal });
  };

  /** Sends the request with `header` (the first time, or again after a 401); settles the in-flight count. */
  const send = (
    adapter: AxiosAdapter,
    config: InternalAxiosRequestConfig,
    state: RequestState,
    header: string,
  ): Promise<AxiosResponse> => {
    state.header = header;
    remember(header);
    setAuthorization(config, header);
    track(header);
    let sent: Promise<AxiosResponse>;
    try {
      sent = adapter(config);
    } catch (error) {
      untrack(header);
      throw scrub(error, config, state);
    }
    return sent.then(
      (response) => {
        untrack(header);
        return response.status === 401 ? recover(undefined, adapter, config, state, response) : response;
      },
      (error: unknown) => {
        untrack(header);
        return recover(error, adapter, config, state);
      },
    );
  };

  /**
   * After a 401 to keyfob's token: invalidate it and send once more with a fresh one. The 401 arrives as
   * a rejection, or as a response when the caller's `validateStatus` accepts 401 (`settled`).
   */
  const recover = async (
    error: unknown,
    adapter: AxiosAdapter,
    config: InternalAxiosRequestConfig,
    state: RequestState,
    settled?: AxiosResponse,
  ): Promise<AxiosResponse> => {
    const status = settled ? settled.status : statusOf(error);
    if (!retryOn401 || status !== 401 || config.keyfob?.retried === true || state.retried) {
      if (settled) return settled;
      throw scrub(error, config, state);
    }
    const rejected = state.header.startsWith(BEARER) ? state.header.slice(BEARER.length) : state.header;
    const ctx =
      state.subject === undefined && state.scope === undefined
        ? undefined
        : { subject: state.subject, scope: state.scope };
    await tokens.invalidate(rejected, ctx).catch(() => false);
    if (!replayable(config.data)) {
      if (settled) return settled;
      throw scrub(error, config, state);
    }
    state.retried = true;
    config.keyfob = { ...config.keyfob, retried: true };
    let header: string;
    try {
      header = await getHeader(config, state);
    } catch (tokenError) {
      throw requestError(tokenError, config, state);
    }
    return send(adapter, config, state, header);
  };

  /**
   * keyfob's adapter, in front of the request's own: it decides whether the request gets a token (skip,
   * allowed origin), attaches it and sends the request, and recovers from a 401. It runs after every
   * interceptor, so the target it checks is the final one and the caller's interceptors see a retried
   * request once.
   */
  const dispatch = (adapter: AxiosAdapter, config: InternalAxiosRequestConfig): Promise<AxiosResponse> => {
    const perRequest = config.keyfob;
    if (!isAllowed(config)) {
      const carried = authorizationOf(config);
      if (typeof carried === 'string' && issued.has(carried)) setAuthorization(config, undefined);
      return adapter(config);
    }
    if (perRequest?.skip === true) return adapter(config);
    const state: RequestState = {
      header: '',
      subject: perRequest?.subject ?? (typeof subject === 'function' ? subject(config) : subject),
      scope: perRequest?.scope ?? scope,
      retried: false,
    };
    return getHeader(config, state).then(
      (header) => send(adapter, config, state, header),
      (error: unknown) => {
        throw requestError(error, config, state);
      },
    );
  };

  const adapterOver =
    (original: InternalAxiosRequestConfig['adapter']): AxiosAdapter =>
    (config) =>
      dispatch(
        resolveAdapter(original, config as InternalAxiosRequestConfig),
        config as InternalAxiosRequestConfig,
      );

  const hookOver =
    (userHook: RedirectHook | undefined): RedirectHook =>
    (opts, responseDetails, requestDetails) => {
      if (userHook) userHook(opts, responseDetails, requestDetails);
      if (inFlight.size === 0) return;
      const origin = redirectOrigin(opts);
      if (origin === undefined || !allowed.has(origin)) stripAuthorization(opts.headers, inFlight);
    };

  // One adapter and one redirect hook for every request that uses the instance's own: nothing is
  // allocated per request on the common path. A request with its own `adapter` or `beforeRedirect`
  // gets a wrapper of its own.
  const baseAdapter = instance.defaults.adapter;
  const ownAdapter = mark(adapterOver(baseAdapter), baseAdapter);
  const baseHook = instance.defaults.beforeRedirect;
  const ownHook = mark(hookOver(baseHook), baseHook);

  const onRequest = (config: InternalAxiosRequestConfig): InternalAxiosRequestConfig => {
    const current = config.adapter;
    if (current !== ownAdapter) {
      if (current === baseAdapter) config.adapter = ownAdapter;
      else {
        const original = unwrap(current) as InternalAxiosRequestConfig['adapter'];
        config.adapter = mark(adapterOver(original), original);
      }
    }
    const hook = config.beforeRedirect;
    if (hook !== ownHook) {
      if (hook === baseHook) config.beforeRedirect = ownHook;
      else {
        const original = unwrap(hook) as RedirectHook | undefined;
        config.beforeRedirect = mark(hookOver(original), original);
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

function authorizationOf(config: InternalAxiosRequestConfig): unknown {
  const h = config.headers as unknown as { get?: (n: string) => unknown; [k: string]: unknown } | undefined;
  if (!h) return undefined;
  if (typeof h.get === 'function') {
    // AxiosHeaders keeps the name as first set; keyfob sets `Authorization`.
    const direct = h.Authorization;
    return direct !== undefined ? direct : h.get('Authorization');
  }
  for (const k of Object.keys(h)) if (k.toLowerCase() === 'authorization') return h[k];
  return undefined;
}

function setAuthorization(config: InternalAxiosRequestConfig, value: string | undefined): void {
  const h = config.headers as unknown as
    | { set?: (n: string, v: string) => unknown; delete?: (n: string) => unknown; [k: string]: unknown }
    | undefined;
  if (h && typeof h.set === 'function' && typeof h.delete === 'function') {
    if (value === undefined) h.delete('Authorization');
    else h.set('Authorization', value);
    return;
  }
  const plain: Record<string, unknown> = { ...(h ?? {}) };
  for (const k of Object.keys(plain)) if (k.toLowerCase() === 'authorization') delete plain[k];
  if (value !== undefined) plain.Authorization = value;
  config.headers = plain as unknown as InternalAxiosRequestConfig['headers'];
}

function statusOf(error: unknown): number | undefined {
  const status = (error as { response?: { status?: unknown } } | undefined)?.response?.status;
  return typeof status === 'number' ? status : undefined;
}

/**
 * Can the body be sent a second time? Not a Node stream, a `form-data` instance (a stream), a web
 * ReadableStream or an async iterable: they are consumed by the first attempt.
 */
function replayable(data: unknown): boolean {
  if (data === null || data === undefined || typeof data !== 'object') return true;
  if (ArrayBuffer.isView(data) || data instanceof ArrayBuffer) return true;
  const d = data as Record<string | symbol, unknown>;
  if (typeof d.pipe === 'function' || typeof d.getReader === 'function') return false;
  if (typeof d[Symbol.asyncIterator] === 'function') return false;
  return true;
}

function redirectOrigin(opts: Record<string, any>): string | undefined {
  if (typeof opts.href === 'string') return originOf(opts.href);
  if (typeof opts.protocol === 'string' && typeof opts.hostname === 'string') {
    const host =
      opts.hostname.includes(':') && !opts.hostname.startsWith('[') ? `[${opts.hostname}]` : opts.hostname;
    return originOf(`${opts.protocol}//${host}${opts.port ? `:${opts.port}` : ''}/`);
  }
  return undefined;
}

function stripAuthorization(headers: unknown, keyfobHeaders: ReadonlyMap<string, unknown>): void {
  if (!headers || typeof headers !== 'object') return;
  const h = headers as Record<string, unknown>;
  for (const k of Object.keys(h)) {
    const v = h[k];
    if (k.toLowerCase() === 'authorization' && typeof v === 'string' && keyfobHeaders.has(v)) delete h[k];
  }
}

/** Keeps the token out of the error: axios puts the request config (headers) and the ClientRequest on it. */
function scrub(error: unknown, config: InternalAxiosRequestConfig, state: RequestState): unknown {
  if (state.header && authorizationOf(config) === state.header) setAuthorization(config, REDACTED_HEADER);
  if (error && typeof error === 'object') {
    hide(error, 'request');
    const response = (error as { response?: unknown }).response;
    if (response && typeof response === 'object') hide(response, 'request');
  }
  return error;
}

/** Keeps a property readable but out of `util.inspect` / `JSON.stringify` (the ClientRequest holds the raw headers). */
function hide(target: object, key: string): void {
  const d = Object.getOwnPropertyDescriptor(target, key);
  if (d?.enumerable && d.configurable) Object.defineProperty(target, key, { ...d, enumerable: false });
}

/**
 * The token could not be obtained: the request is not sent. The caller gets the core's error (same
 * class, so `instanceof TokenEndpointError` holds) as a per-request copy carrying the request `config`;
 * the core's error itself is shared by every request that waited for the same token.
 */
function requestError(
  error: unknown,
  config: InternalAxiosRequestConfig,
  state: RequestState,
): KeyfobRequestError {
  if (state.header && authorizationOf(config) === state.header) setAuthorization(config, REDACTED_HEADER);
  const base =
    error instanceof KeyfobError
      ? error
      : new KeyfobError(
          `Could not get an access token for the request: ${error instanceof Error ? error.message : String(error)}`,
          { code: ErrorCode.TokenEndpoint, cause: error },
        );
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

import { DpopKey, type DpopOptions } from './dpop.js';
import { ConfigurationError } from './errors.js';
import type { Grant } from './grants/grant.js';
import { systemNow } from './hot-slot.js';
import { safeUrl } from './redact.js';
import { assertSecureUrl } from './secure-url.js';
import type { TokenStore } from './store.js';
import type { Clock, KeyfobLogger } from './types.js';

export interface TokenManagerOptions {
  /** The token endpoint. Required for grants that POST to one, unless `issuer` is set. Must be https unless loopback or `allowInsecureHttp`. */
  tokenUrl?: string | undefined;
  /**
   * The authorization server's issuer identifier: keyfob reads its metadata (OpenID Connect Discovery,
   * RFC 8414) on first use and takes the token, authorization and revocation endpoints and the client
   * authentication methods from it. Must match the document's `issuer` exactly. `tokenUrl`, when set too,
   * wins over the discovered endpoint. Defaults to none.
   */
  issuer?: string | undefined;
  /**
   * The client presents a TLS certificate (RFC 8705) through `fetch`: use the provider's
   * `mtls_endpoint_aliases` from discovery. Defaults to `true` when the grant's clientAuth is
   * `'tls_client_auth'`, else `false`.
   */
  mtls?: boolean | undefined;
  /** How tokens are obtained: `clientCredentials(...)`, `passwordGrant(...)`, `authorizationCode(...)`, `staticToken(...)`, `customGrant(...)`. */
  grant: Grant;
  /**
   * Shared store (e.g. `RedisTokenStore`) behind the in-process cache. Defaults to none: tokens live in
   * this process's bounded cache only.
   */
  store?: TokenStore | undefined;
  /** Start renewing in the background this long before expiry (capped at a fifth of the lifetime). Defaults to `60_000`. */
  refreshMarginMs?: number | undefined;
  /**
   * Inside this last stretch before expiry (capped at a tenth of the lifetime), callers wait for a
   * renewal that is working instead of taking the old token. While renewals fail, the token is still
   * served until it actually expires. Defaults to `5_000`.
   */
  expiryBufferMs?: number | undefined;
  /** Lifetime assumed when a response has no `expires_in`, `expiration` or JWT `exp`. Defaults to `300_000`. */
  defaultLifetimeMs?: number | undefined;
  /** Longest lifetime believed (a "never expires" answer is renewed after this). Defaults to 366 days. */
  maxLifetimeMs?: number | undefined;
  /** Refresh token sets (per-user) are kept this long in a store when the server does not say. Defaults to 30 days. */
  refreshTokenLifetimeMs?: number | undefined;
  /** Token endpoint timeout per attempt, at most 2^31-1. Defaults to `10_000`. */
  timeoutMs?: number | undefined;
  /** Retries on network errors, timeouts, 5xx and 429, for requests that are safe to repeat. Defaults to `2`. */
  retries?: number | undefined;
  /** First retry delay (exponential backoff, jitter). Defaults to `200`. */
  retryBaseDelayMs?: number | undefined;
  /** Longest Retry-After honoured; longer fails at once. Defaults to `30_000`. */
  maxRetryAfterMs?: number | undefined;
  /** Largest token response read. Defaults to `65_536` bytes. */
  maxResponseBytes?: number | undefined;
  /** Tokens kept in process (approximate LRU). Defaults to `10_000`. */
  maxEntries?: number | undefined;
  /** Allow plain http to a non-loopback token or revocation URL. Defaults to `false`. */
  allowInsecureHttp?: boolean | undefined;
  /** Redacted log lines (with structured fields for pino, winston, Nest's `Logger`) go here. Defaults to none. */
  logger?: KeyfobLogger | undefined;
  /**
   * Defaults to the system clock (`Date.now()` at each call, so test fake timers installed at any time
   * are seen).
   */
  clock?: Clock | undefined;
  /** fetch implementation (for proxies or custom agents). Defaults to the global fetch. */
  fetch?: typeof fetch | undefined;
  /**
   * An undici `Dispatcher` every request keyfob makes (discovery, token endpoint, revocation) goes
   * through, handed to `fetch` as its `dispatcher` option: an `Agent` presenting a client certificate
   * (`new Agent({ connect: { key, cert } })`, RFC 8705 mTLS), a `ProxyAgent`, an agent with its own
   * CA. Use the same one for the API calls of a certificate-bound token. Defaults to fetch's own.
   */
  dispatcher?: object | undefined;
  /**
   * Store calls taking longer are abandoned (the token is fetched directly), and the store is then
   * bypassed for a while and probed in the background. Defaults to `1_000`.
   */
  storeTimeoutMs?: number | undefined;
  /**
   * How long a process holds (and another waits for) the store lock while fetching. Defaults to the
   * longest a fetch can take: `timeoutMs x (retries + 1)`, plus `maxRetryAfterMs` (at least 5 s) per
   * retry, plus 5 s.
   */
  lockWaitMs?: number | undefined;
  /**
   * DPoP (RFC 9449): sender-constrained tokens. `true` generates an ES256 key pair for this manager;
   * `{ privateKey, algorithm }` uses yours (a fleet sharing a store must share the key). Every token
   * request carries a proof, tokens are `token_type: DPoP`, and the HTTP adapters send
   * `Authorization: DPoP <token>` with a fresh proof on every request. Defaults to `false`.
   */
  dpop?: boolean | DpopOptions | undefined;
}

/**
 * Every default, once. Options with no default (`tokenUrl`, `grant`, `store`, `logger`, `clock`,
 * `fetch`) are listed in {@link OPTIONS_WITHOUT_DEFAULT}; a new option goes in one of the two.
 */
export const DEFAULTS = {
  refreshMarginMs: 60_000,
  expiryBufferMs: 5_000,
  defaultLifetimeMs: 300_000,
  maxLifetimeMs: 366 * 24 * 3600_000,
  refreshTokenLifetimeMs: 30 * 24 * 3600_000,
  timeoutMs: 10_000,
  retries: 2,
  retryBaseDelayMs: 200,
  maxRetryAfterMs: 30_000,
  maxResponseBytes: 65_536,
  maxEntries: 10_000,
  allowInsecureHttp: false,
  storeTimeoutMs: 1_000,
} as const satisfies Partial<Record<keyof TokenManagerOptions, number | boolean>>;

/** Options without a default value (lockWaitMs is derived from the others). */
export const OPTIONS_WITHOUT_DEFAULT = [
  'tokenUrl',
  'issuer',
  'mtls',
  'grant',
  'store',
  'logger',
  'clock',
  'fetch',
  'dispatcher',
  'lockWaitMs',
  'dpop',
] as const satisfies readonly (keyof TokenManagerOptions)[];

// Every option is in exactly one of the two lists (checked by the compiler).
type Listed = keyof typeof DEFAULTS | (typeof OPTIONS_WITHOUT_DEFAULT)[number];
const everyOptionListed: Record<Exclude<keyof TokenManagerOptions, Listed>, never> = {};
void everyOptionListed;

const KNOWN: ReadonlySet<string> = new Set([...Object.keys(DEFAULTS), ...OPTIONS_WITHOUT_DEFAULT]);

/** Names people reach for (other libraries' words), mapped to keyfob's. */
const ALIASES: Record<string, string> = {
  timeout: 'timeoutMs',
  retry: 'retries',
  maxRetries: 'retries',
  retryDelay: 'retryBaseDelayMs',
  token_url: 'tokenUrl',
  tokenEndpoint: 'tokenUrl',
  url: 'tokenUrl',
  cache: 'store',
  refreshMargin: 'refreshMarginMs',
  expiryBuffer: 'expiryBufferMs',
  insecure: 'allowInsecureHttp',
  maxSize: 'maxEntries',
};

/** Largest delay a Node timer takes; a larger one fires at once (TimeoutOverflowWarning). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

function distance(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  let prev = Array.from({ length: y.length + 1 }, (_, i) => i);
  for (let i = 1; i <= x.length; i++) {
    const cur = [i];
    for (let j = 1; j <= y.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (x[i - 1] === y[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[y.length]!;
}

/** The known option a misspelt or foreign name most likely meant, if any. */
export function suggestOption(name: string): string | undefined {
  if (ALIASES[name]) return ALIASES[name];
  let best: string | undefined;
  let bestScore = Number.POSITIVE_INFINITY;
  for (const known of KNOWN) {
    const score = known.toLowerCase().startsWith(name.toLowerCase()) ? 1 : distance(name, known);
    if (score < bestScore) {
      best = known;
      bestScore = score;
    }
  }
  return bestScore <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}

/** Options resolved once at construction: validated, defaults applied. */
export interface ResolvedOptions {
  /** `''` when it comes from discovery. */
  readonly tokenUrl: string;
  readonly issuer: string | undefined;
  readonly mtls: boolean;
  readonly grant: Grant;
  readonly store: TokenStore | undefined;
  readonly refreshMarginMs: number;
  readonly expiryBufferMs: number;
  readonly defaultLifetimeMs: number;
  readonly maxLifetimeMs: number;
  readonly refreshTokenLifetimeMs: number;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly retryBaseDelayMs: number;
  readonly maxRetryAfterMs: number;
  readonly maxResponseBytes: number;
  readonly maxEntries: number;
  readonly allowInsecureHttp: boolean;
  readonly logger: KeyfobLogger | undefined;
  readonly now: () => number;
  readonly fetch: typeof fetch;
  readonly storeTimeoutMs: number;
  readonly lockWaitMs: number;
  /** The DPoP key, when `dpop` is on. */
  readonly dpop: DpopKey | undefined;
}

function number(
  name: string,
  value: unknown,
  fallback: number,
  { allowZero = false, max = Number.POSITIVE_INFINITY } = {},
): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0 || (!allowZero && value === 0)) {
    throw new ConfigurationError(
      `TokenManager: ${name} must be a ${allowZero ? 'non-negative' : 'positive'} number.`,
    );
  }
  // Infinity would mean endless retries, an unbounded cache or a token kept forever.
  if (value === Number.POSITIVE_INFINITY && max === Number.POSITIVE_INFINITY) {
    throw new ConfigurationError(`TokenManager: ${name} must be a finite number.`);
  }
  if (value > max) {
    throw new ConfigurationError(`TokenManager: ${name} must be at most ${max} (${name} is ${value}).`, {
      hint: 'Node timers cannot wait longer than 2^31-1 ms (about 24.8 days).',
    });
  }
  return value;
}

/** Validates options and applies {@link DEFAULTS}. Throws a ConfigurationError naming the problem. */
export function resolveOptions(options: TokenManagerOptions): ResolvedOptions {
  if (!options || typeof options !== 'object')
    throw new ConfigurationError('TokenManager: options are required.');
  for (const name of Object.keys(options)) {
    if (KNOWN.has(name)) continue;
    const suggestion = suggestOption(name);
    throw new ConfigurationError(
      `TokenManager: unknown option "${name}".${suggestion ? ` Did you mean "${suggestion}"?` : ''}`,
      { hint: `Known options: ${[...KNOWN].sort().join(', ')}.` },
    );
  }
  const { grant } = options;
  if (!grant || typeof grant.fetchToken !== 'function') {
    throw new ConfigurationError(
      'TokenManager: grant is required (clientCredentials(...), passwordGrant(...), authorizationCode(...), staticToken(...) or customGrant(...)).',
    );
  }
  const allowInsecureHttp = options.allowInsecureHttp === true;
  const store = options.store;
  if (
    store !== undefined &&
    (typeof store?.get !== 'function' ||
      typeof store.set !== 'function' ||
      typeof store.delete !== 'function')
  ) {
    throw new ConfigurationError('TokenManager: store must implement get, set and delete (see TokenStore).');
  }
  const fetchImpl = withDispatcher(options.fetch ?? globalThis.fetch, options.dispatcher);
  const clock = options.clock;
  const timer = { max: MAX_TIMER_MS };
  const timeoutMs = number('timeoutMs', options.timeoutMs, DEFAULTS.timeoutMs, timer);
  const retries = Math.floor(number('retries', options.retries, DEFAULTS.retries, { allowZero: true }));
  const maxRetryAfterMs = number('maxRetryAfterMs', options.maxRetryAfterMs, DEFAULTS.maxRetryAfterMs, {
    allowZero: true,
    max: MAX_TIMER_MS,
  });
  // The holder of the lock may spend every attempt plus, between attempts, a backoff or a honoured
  // Retry-After: the lock must outlive all of that or a second process fetches in parallel.
  const lockDefault = Math.min(
    MAX_TIMER_MS,
    timeoutMs * (retries + 1) + Math.max(5_000, maxRetryAfterMs) * retries + 5_000,
  );
  return {
    tokenUrl: checkTokenUrl(options.tokenUrl, grant, allowInsecureHttp, options.issuer),
    issuer: checkIssuer(options.issuer, allowInsecureHttp),
    mtls: options.mtls ?? grant.clientAuth === 'tls_client_auth',
    grant,
    store,
    refreshMarginMs: number('refreshMarginMs', options.refreshMarginMs, DEFAULTS.refreshMarginMs, {
      allowZero: true,
    }),
    expiryBufferMs: number('expiryBufferMs', options.expiryBufferMs, DEFAULTS.expiryBufferMs, {
      allowZero: true,
    }),
    defaultLifetimeMs: number('defaultLifetimeMs', options.defaultLifetimeMs, DEFAULTS.defaultLifetimeMs),
    maxLifetimeMs: number('maxLifetimeMs', options.maxLifetimeMs, DEFAULTS.maxLifetimeMs),
    refreshTokenLifetimeMs: number(
      'refreshTokenLifetimeMs',
      options.refreshTokenLifetimeMs,
      DEFAULTS.refreshTokenLifetimeMs,
    ),
    timeoutMs,
    retries,
    retryBaseDelayMs: number('retryBaseDelayMs', options.retryBaseDelayMs, DEFAULTS.retryBaseDelayMs, {
      allowZero: true,
      max: MAX_TIMER_MS,
    }),
    maxRetryAfterMs,
    maxResponseBytes: number('maxResponseBytes', options.maxResponseBytes, DEFAULTS.maxResponseBytes),
    maxEntries: number('maxEntries', options.maxEntries, DEFAULTS.maxEntries),
    allowInsecureHttp,
    logger: options.logger,
    now: clock ? () => clock.now() : systemNow,
    fetch: fetchImpl,
    storeTimeoutMs: number('storeTimeoutMs', options.storeTimeoutMs, DEFAULTS.storeTimeoutMs, timer),
    lockWaitMs: number('lockWaitMs', options.lockWaitMs, lockDefault, timer),
    dpop: options.dpop === undefined || options.dpop === false ? undefined : new DpopKey(options.dpop),
  };
}

function checkIssuer(issuer: string | undefined, allowInsecureHttp: boolean): string | undefined {
  if (issuer === undefined) return undefined;
  if (typeof issuer !== 'string' || issuer === '') {
    throw new ConfigurationError('TokenManager: issuer must be a non-empty URL string.');
  }
  return assertSecureUrl('TokenManager', 'issuer', issuer, allowInsecureHttp);
}

function checkTokenUrl(
  tokenUrl: string | undefined,
  grant: Grant,
  allowInsecureHttp: boolean,
  issuer: string | undefined,
): string {
  if (tokenUrl === undefined || tokenUrl === '') {
    if (grant.usesTokenUrl && issuer === undefined) {
      throw new ConfigurationError(
        `TokenManager: tokenUrl is required for the ${grant.type} grant (or issuer, to discover it).`,
      );
    }
    return '';
  }
  if (typeof tokenUrl !== 'string') {
    throw new ConfigurationError(`TokenManager: tokenUrl must be a string (${safeUrl(String(tokenUrl))}).`);
  }
  return assertSecureUrl('TokenManager', 'tokenUrl', tokenUrl, allowInsecureHttp);
}

/** The fetch keyfob uses: `fetch`, with `dispatcher` added to every call's init when one is given. */
function withDispatcher(fetchImpl: typeof fetch, dispatcher: object | undefined): typeof fetch {
  if (typeof fetchImpl !== 'function') {
    throw new ConfigurationError('TokenManager: no global fetch; pass options.fetch.');
  }
  if (dispatcher === undefined) return fetchImpl;
  if (typeof (dispatcher as { dispatch?: unknown }).dispatch !== 'function') {
    throw new ConfigurationError(
      'TokenManager: dispatcher must be an undici Dispatcher (an Agent, a ProxyAgent, ...): it has no dispatch().',
    );
  }
  return ((input: Parameters<typeof fetch>[0], init?: RequestInit) =>
    fetchImpl(input, { ...init, dispatcher } as RequestInit)) as typeof fetch;
}

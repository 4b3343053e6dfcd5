import { ConfigurationError } from './errors.js';
import { quote, safeUrl } from './redact.js';
import { assertSecureUrl } from './secure-url.js';
import { abortError, backoff, parseRetryAfter, sleep } from './token-endpoint.js';

/**
 * Authorization server metadata (RFC 8414, OpenID Connect Discovery 1.0): what keyfob takes from
 * `/.well-known/openid-configuration` or `/.well-known/oauth-authorization-server`.
 */
export interface AuthorizationServerMetadata {
  /** The issuer identifier, equal to the one configured (RFC 8414 3.3). */
  readonly issuer: string;
  readonly tokenEndpoint: string;
  readonly authorizationEndpoint: string | undefined;
  readonly revocationEndpoint: string | undefined;
  /** `token_endpoint_auth_methods_supported`: how clients may authenticate. */
  readonly tokenEndpointAuthMethods: readonly string[] | undefined;
  /** RFC 8705 5: endpoints to use when the client presents a TLS certificate. */
  readonly mtlsEndpointAliases:
    | { readonly tokenEndpoint?: string | undefined; readonly revocationEndpoint?: string | undefined }
    | undefined;
  /** RFC 9449 5.1: `dpop_signing_alg_values_supported`. */
  readonly dpopSigningAlgValues: readonly string[] | undefined;
  /** The whole document, as served. */
  readonly raw: Readonly<Record<string, unknown>>;
}

export interface DiscoveryOptions {
  fetch: typeof fetch;
  /** Per-request timeout, ms. */
  timeoutMs: number;
  allowInsecureHttp: boolean;
  /** Metadata older than this is read again on next use (a failure then keeps the old one). */
  maxAgeMs: number;
  now: () => number;
  /** Retries after a network error, a timeout, a 5xx or a 429 (a GET is safe to repeat). Defaults to none. */
  retries?: number;
  /** First backoff delay, ms. */
  retryBaseDelayMs?: number;
  /** Longest Retry-After waited for; a longer one is reported at once. */
  maxRetryAfterMs?: number;
}

/** The document is small; a larger answer is not a metadata document. */
const MAX_DOCUMENT_BYTES = 512 * 1024;

/**
 * Where to look, in order: OpenID Connect Discovery 1.0 section 4 appends
 * `/.well-known/openid-configuration` to the issuer; RFC 8414 section 3.1 inserts
 * `/.well-known/oauth-authorization-server` between the host and the issuer's path.
 */
export function metadataUrls(issuer: string): string[] {
  const url = new URL(issuer);
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/$/, '');
  return [
    `${url.origin}${path}/.well-known/openid-configuration`,
    `${url.origin}/.well-known/oauth-authorization-server${path}`,
  ];
}

function strings(value: unknown): string[] | undefined {
  return Array.isArray(value) && value.every((v) => typeof v === 'string') ? value : undefined;
}

function fail(issuer: string, problem: string, hint: string, cause?: unknown): ConfigurationError {
  return new ConfigurationError(`Discovery for issuer ${safeUrl(issuer)} failed: ${problem}.`, {
    hint,
    ...(cause === undefined ? {} : { cause }),
  });
}

type Attempt =
  | { ok: true; doc: Record<string, unknown> }
  | { ok: false; status?: number; problem: string; retryAfterMs?: number | undefined };

const transient = (status: number | undefined) => status !== undefined && (status >= 500 || status === 429);

/** {@link read}, again after a network error, a timeout, a 5xx or a 429, up to `options.retries` times. */
async function readWithRetries(
  url: string,
  options: DiscoveryOptions,
  signal?: AbortSignal,
): Promise<Attempt> {
  const retries = options.retries ?? 0;
  const base = options.retryBaseDelayMs ?? 200;
  for (let attempt = 0; ; attempt++) {
    const last = attempt >= retries;
    let result: Attempt;
    try {
      result = await read(url, options, signal);
    } catch (e) {
      if (signal?.aborted || last) throw e;
      // A caller waits for this document: the wait keeps the process alive, as for the token endpoint.
      await sleep(backoff(attempt, base), signal, true);
      continue;
    }
    if (result.ok || last || !transient(result.status)) return result;
    const wait = result.retryAfterMs;
    if (wait !== undefined && wait > (options.maxRetryAfterMs ?? 30_000)) return result;
    await sleep(wait ?? backoff(attempt, base), signal, true);
  }
}

/** What to check, by what the metadata URL answered. */
function hintFor(status: number | undefined): string {
  if (transient(status)) {
    return "The provider's discovery endpoint is failing or rate-limiting (keyfob retried it); try again later, or set tokenUrl to skip discovery.";
  }
  if (status === 401 || status === 403) {
    return 'Metadata must be public (RFC 8414 3): check the issuer URL and any proxy in front of it, or set tokenUrl instead of issuer.';
  }
  return 'The issuer must be the identifier the provider publishes (often the base URL, e.g. https://auth.example.com or https://login.example.com/tenant-id/v2.0); a provider without discovery needs tokenUrl instead.';
}

async function read(url: string, options: DiscoveryOptions, signal?: AbortSignal): Promise<Attempt> {
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const res = await options.fetch(url, {
    headers: { accept: 'application/json' },
    signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
  });
  const text = await res.text();
  if (!res.ok) {
    return {
      ok: false,
      status: res.status,
      problem: `${safeUrl(url)} answered ${res.status}`,
      retryAfterMs: parseRetryAfter(res.headers.get('retry-after')),
    };
  }
  if (text.length > MAX_DOCUMENT_BYTES) {
    return {
      ok: false,
      problem: `${safeUrl(url)} answered a ${text.length}-byte document, too large for metadata`,
    };
  }
  try {
    const doc: unknown = JSON.parse(text);
    if (doc && typeof doc === 'object' && !Array.isArray(doc))
      return { ok: true, doc: doc as Record<string, unknown> };
  } catch {}
  const what = /^\s*</.test(text) ? 'an HTML page' : 'a body';
  return {
    ok: false,
    status: res.status,
    problem: `${safeUrl(url)} answered ${what} that is not a JSON object`,
  };
}

/** Reads and checks the metadata of `issuer`. Every failure is a ConfigurationError naming the issuer. */
export async function discover(
  issuer: string,
  options: DiscoveryOptions,
  signal?: AbortSignal,
): Promise<AuthorizationServerMetadata> {
  const problems: string[] = [];
  let lastStatus: number | undefined;
  let doc: Record<string, unknown> | undefined;
  for (const url of metadataUrls(issuer)) {
    let attempt: Attempt;
    try {
      attempt = await readWithRetries(url, options, signal);
    } catch (e) {
      if (signal?.aborted) throw abortError(signal);
      const cause = (e as { cause?: { code?: string } })?.cause?.code ?? (e as Error)?.name;
      throw fail(
        issuer,
        `could not reach ${safeUrl(url)}${cause ? ` (${cause})` : ''}`,
        'Check the issuer URL (scheme, host, port), DNS, proxies and TLS; or set tokenUrl instead of issuer.',
        e,
      );
    }
    if (attempt.ok) {
      doc = attempt.doc;
      break;
    }
    problems.push(attempt.problem);
    lastStatus = attempt.status;
    // Only a missing document sends keyfob to the other location; anything else is reported as is.
    if (attempt.status !== 404 && attempt.status !== 410) break;
  }
  if (!doc) {
    throw fail(issuer, problems.join('; '), hintFor(lastStatus));
  }
  if (doc.issuer !== issuer) {
    // Both as written (a normalised URL would hide the difference, e.g. a trailing slash).
    throw fail(
      issuer,
      `the document names issuer ${typeof doc.issuer === 'string' ? JSON.stringify(quote(doc.issuer, 200)) : 'none'}, not the configured ${JSON.stringify(quote(issuer, 200))}`,
      'RFC 8414 3.3 requires an exact match (scheme, host, port, path, trailing slash): set issuer to the value the provider publishes.',
    );
  }
  const endpoint = (name: string, value: unknown): string | undefined => {
    if (value === undefined) return undefined;
    if (typeof value !== 'string' || value === '') {
      throw fail(
        issuer,
        `${name} is not a URL`,
        'The provider published invalid metadata; set tokenUrl instead.',
      );
    }
    let absolute = true;
    try {
      new URL(value);
    } catch {
      absolute = false;
    }
    if (!absolute) {
      throw fail(
        issuer,
        `${name} ${JSON.stringify(quote(value, 200))} is not an absolute URL`,
        'RFC 8414 2 requires absolute URLs in the metadata: the provider published invalid metadata; set tokenUrl instead.',
      );
    }
    try {
      return assertSecureUrl(
        `Discovery for issuer ${safeUrl(issuer)}`,
        name,
        value,
        options.allowInsecureHttp,
      );
    } catch (e) {
      throw fail(
        issuer,
        `${name} ${safeUrl(value)} is not an acceptable https URL`,
        (e as ConfigurationError).hint ??
          'Endpoints must be https (loopback excepted) and carry no credentials.',
        e,
      );
    }
  };
  const tokenEndpoint = endpoint('token_endpoint', doc.token_endpoint);
  if (!tokenEndpoint) {
    throw fail(
      issuer,
      'the document has no token_endpoint',
      'This provider does not publish a token endpoint in its metadata; set tokenUrl instead.',
    );
  }
  const aliases =
    doc.mtls_endpoint_aliases && typeof doc.mtls_endpoint_aliases === 'object'
      ? (doc.mtls_endpoint_aliases as Record<string, unknown>)
      : undefined;
  return {
    issuer,
    tokenEndpoint,
    authorizationEndpoint:
      typeof doc.authorization_endpoint === 'string' ? doc.authorization_endpoint : undefined,
    revocationEndpoint: endpoint('revocation_endpoint', doc.revocation_endpoint),
    tokenEndpointAuthMethods: strings(doc.token_endpoint_auth_methods_supported),
    mtlsEndpointAliases: aliases
      ? {
          tokenEndpoint: endpoint('mtls_endpoint_aliases.token_endpoint', aliases.token_endpoint),
          revocationEndpoint: endpoint(
            'mtls_endpoint_aliases.revocation_endpoint',
            aliases.revocation_endpoint,
          ),
        }
      : undefined,
    dpopSigningAlgValues: strings(doc.dpop_signing_alg_values_supported),
    raw: doc,
  };
}

/**
 * The metadata of one issuer for one TokenManager: read lazily on first use, single-flight, cached
 * for `maxAgeMs`, read again sooner after {@link Discovery.stale} (a token endpoint that answered 404
 * may have moved). A failed re-read keeps the metadata already held. No timer: age is checked on use.
 */
export class Discovery {
  readonly issuer: string;
  readonly #options: DiscoveryOptions;
  #current: AuthorizationServerMetadata | undefined;
  #readAt = 0;
  #pending: Promise<AuthorizationServerMetadata> | undefined;

  constructor(issuer: string, options: DiscoveryOptions) {
    this.issuer = assertSecureUrl('TokenManager', 'issuer', issuer, options.allowInsecureHttp);
    this.#options = options;
  }

  /** The metadata last read, if any (synchronous). */
  get current(): AuthorizationServerMetadata | undefined {
    return this.#current;
  }

  /** The metadata, read when missing or older than `maxAgeMs`. */
  get(signal?: AbortSignal): Promise<AuthorizationServerMetadata> {
    const current = this.#current;
    if (current && this.#options.now() - this.#readAt < this.#options.maxAgeMs)
      return Promise.resolve(current);
    this.#pending ??= discover(this.issuer, this.#options, signal).then(
      (metadata) => {
        this.#pending = undefined;
        this.#current = metadata;
        this.#readAt = this.#options.now();
        return metadata;
      },
      (error: unknown) => {
        this.#pending = undefined;
        if (current) {
          // Keep what worked; try again in a minute rather than on every request.
          this.#readAt = this.#options.now() - this.#options.maxAgeMs + 60_000;
          return current;
        }
        throw error;
      },
    );
    return this.#pending;
  }

  /** Read the metadata again on next use (e.g. the token endpoint answered 404). */
  stale(): void {
    this.#readAt = Number.NEGATIVE_INFINITY;
  }
}

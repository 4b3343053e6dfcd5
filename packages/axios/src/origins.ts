import { ConfigurationError, safeUrl } from '@keyfob/core';

/** `scheme://host[:port]` of an absolute URL, or undefined when it has none (relative, opaque, unparsable). */
export function originOf(url: string | URL): string | undefined {
  try {
    const origin = (typeof url === 'string' ? new URL(url) : url).origin;
    return origin === 'null' ? undefined : origin;
  } catch {
    return undefined;
  }
}

/** axios' own test (helpers/isAbsoluteURL): a scheme, or a protocol-relative `//host`. */
const ABSOLUTE = /^([a-z][a-z\d+\-.]*:)?\/\//i;

/**
 * Where a request goes, as axios computes it (buildFullPath + combineURLs): an absolute `url` wins
 * unless `allowAbsoluteUrls: false`; a relative one is appended to `baseURL`. Undefined when the
 * target has no origin (e.g. a relative URL without baseURL, or a protocol-relative URL in Node):
 * such requests never get a token.
 */
export class OriginResolver {
  readonly #baseOrigins = new Map<string, string | undefined>();

  resolve(
    url: string | undefined,
    baseURL: string | undefined,
    allowAbsoluteUrls: boolean | undefined,
  ): string | undefined {
    const u = url ?? '';
    if (ABSOLUTE.test(u) && !(baseURL && allowAbsoluteUrls === false)) {
      // A protocol-relative URL has no origin in Node (axios itself cannot send it): fail closed.
      return u.startsWith('//') ? undefined : originOf(u);
    }
    if (!baseURL) return undefined;
    // combineURLs(base, rel) = base without trailing slashes + '/' + rel without leading slashes:
    // the '/' ends the authority, so the origin is the one of `base + '/'` whatever `rel` is.
    let origin = this.#baseOrigins.get(baseURL);
    if (origin === undefined && !this.#baseOrigins.has(baseURL)) {
      origin = originOf(`${baseURL.replace(/\/?\/$/, '')}/`);
      if (this.#baseOrigins.size >= 256) this.#baseOrigins.clear();
      this.#baseOrigins.set(baseURL, origin);
    }
    return origin;
  }
}

/** The origins tokens may go to: the instance's baseURL origin, plus every entry of `origins`. */
export function allowedOrigins(
  origins: readonly (string | URL)[] | undefined,
  baseURL: unknown,
): Set<string> {
  const allowed = new Set<string>();
  if (origins !== undefined) {
    if (!Array.isArray(origins)) {
      throw new ConfigurationError('attachTokens: options.origins must be an array of URLs or origins.');
    }
    for (const o of origins) {
      const origin = typeof o === 'string' || o instanceof URL ? originOf(o) : undefined;
      if (origin === undefined) {
        throw new ConfigurationError(
          `attachTokens: options.origins entry "${typeof o === 'string' || o instanceof URL ? safeUrl(o) : typeof o}" is not an absolute http(s) URL.`,
          { hint: 'Write it like "https://api.example.com" (scheme, host and, if not the default, port).' },
        );
      }
      allowed.add(origin);
    }
  }
  if (typeof baseURL === 'string' && baseURL !== '') {
    const origin = originOf(`${baseURL.replace(/\/?\/$/, '')}/`);
    if (origin === undefined && origins === undefined) {
      throw new ConfigurationError(
        `attachTokens: the instance's baseURL "${safeUrl(baseURL)}" is not an absolute URL, so keyfob cannot tell where tokens may go.`,
        { hint: 'Use an absolute baseURL (https://api.example.com/v1) or pass options.origins.' },
      );
    }
    if (origin !== undefined) allowed.add(origin);
  }
  if (allowed.size === 0) {
    throw new ConfigurationError(
      'attachTokens: the axios instance has no baseURL and no options.origins were given, so keyfob does not know which servers may receive tokens.',
      {
        hint: "Create the instance with axios.create({ baseURL: 'https://api.example.com' }) or pass { origins: ['https://api.example.com'] }.",
      },
    );
  }
  return allowed;
}

import { createHash } from 'node:crypto';
import type { Grant } from './grants/grant.js';
import { BoundedCache } from './lru.js';

/** What one cached token is for, and the key it is cached under (in process and in a shared store). */
export interface CacheKey {
  /** Opaque, `<grant type>:<hash>`: tells tokens apart, reveals nothing (never a secret, a subject or a scope). */
  readonly key: string;
  readonly subject: string | undefined;
  /** The scope asked for (the grant's default when the caller gave none). */
  readonly scope: string | undefined;
  readonly extraParams: Readonly<Record<string, string>> | undefined;
  /** The token to exchange (RFC 8693); only its hash is part of `key`. */
  readonly subjectToken: string | undefined;
}

export interface CacheKeyInput {
  subject?: string | undefined;
  scope?: string | undefined;
  extraParams?: Readonly<Record<string, string>> | undefined;
  subjectToken?: string | undefined;
}

/** `{ b: '2', a: '1' }` and `{ a: '1', b: '2' }` are the same request. */
export function sortedParams(p: Readonly<Record<string, string>> | undefined): string {
  if (!p) return '';
  const keys = Object.keys(p).sort();
  return keys.length ? JSON.stringify(keys.map((k) => [k, p[k]])) : '';
}

/** Scope is a set (RFC 6749 3.3): order and repetition do not matter. */
export function normaliseScope(scope: string | undefined): string {
  return scope ? [...new Set(scope.split(/\s+/).filter(Boolean))].sort().join(' ') : '';
}

/**
 * Cache keys of one TokenManager: token URL, grant type, client id, grant identity, scope, subject and
 * extra parameters, hashed. Other parts of a key (a DPoP key thumbprint, a hash of a subject token)
 * go into {@link cacheKeyMaterial}'s array.
 *
 * Building a key hashes; the hot path must not, so keys are memoised per (subject, scope, extra
 * parameters) in a bounded map as large as the token cache: a lookup is one string join and one
 * Map.get, whatever the number of subjects.
 */
export class CacheKeys {
  readonly #tokenUrl: string;
  readonly #grant: Grant;
  /** Parts every key of this manager shares beyond the grant's (the DPoP key thumbprint). */
  readonly #extra: readonly string[];
  readonly #memo: BoundedCache<CacheKey>;
  /** The key of `getToken()` without options. */
  readonly default: CacheKey;

  constructor(tokenUrl: string, grant: Grant, maxEntries: number, extra: readonly string[] = []) {
    this.#tokenUrl = tokenUrl;
    this.#grant = grant;
    this.#extra = extra;
    this.#memo = new BoundedCache(maxEntries);
    this.default = this.#make(undefined, undefined, undefined, undefined);
  }

  /** The key for these request options (memoised). */
  for(input: CacheKeyInput): CacheKey {
    const { subject, scope, extraParams, subjectToken } = input;
    if (
      subject === undefined &&
      scope === undefined &&
      extraParams === undefined &&
      subjectToken === undefined
    )
      return this.default;
    const memoKey = `${subject ?? ''}\u0001${scope ?? ''}\u0001${extraParams ? sortedParams(extraParams) : ''}\u0001${subjectToken ?? ''}`;
    let k = this.#memo.get(memoKey);
    if (k === undefined) {
      k = this.#make(subject, scope, extraParams, subjectToken);
      this.#memo.set(memoKey, k);
    }
    return k;
  }

  clear(): void {
    this.#memo.clear();
  }

  #make(
    subject: string | undefined,
    scope: string | undefined,
    extraParams: Readonly<Record<string, string>> | undefined,
    subjectToken: string | undefined,
  ): CacheKey {
    const g = this.#grant;
    const effectiveScope = scope ?? g.scope;
    const material = cacheKeyMaterial([
      this.#tokenUrl,
      g.type,
      g.clientId ?? '',
      g.identity ?? '',
      normaliseScope(effectiveScope),
      subject ?? '',
      sortedParams(g.extraParams),
      sortedParams(extraParams),
      ...this.#extra,
      // Never the subject token itself: a hash tells exchanged tokens apart.
      ...(subjectToken === undefined ? [] : [createHash('sha256').update(subjectToken).digest('base64url')]),
    ]);
    return { key: `${g.type}:${material}`, subject, scope: effectiveScope, extraParams, subjectToken };
  }
}

/** Hash of the parts that tell tokens apart. Never pass a secret: only identifiers. */
export function cacheKeyMaterial(parts: readonly string[]): string {
  return createHash('sha256')
    .update(JSON.stringify(['v1', ...parts]))
    .digest('base64url')
    .slice(0, 32);
}

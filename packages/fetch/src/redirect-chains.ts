import type { RequestAttempt, RequestPolicy } from '@keyfob/core';
import { locationReadings } from './location.js';

/**
 * The hops of one logical request, for redirects followed *above* the interceptor, where every hop
 * is a dispatch of its own. keyfob's headers go on a hop only if every hop before it carried them
 * (`RequestPolicy.redirect` decides; once stripped they stay off), so a later hop must be
 * recognised as one. What undici passes down tells them apart:
 *
 * - undici's redirect handler (`interceptors.redirect` composed after keyfob's, with its own or a
 *   per-request `maxRedirections`) dispatches every hop with *itself* as the handler: the same
 *   object comes back, so the chain is found by identity, exactly.
 * - fetch (undici's and Node's) follows redirects above the dispatcher with fresh dispatch options
 *   and a fresh handler per hop (which `compose()` wraps in a fresh `WrapHandler`); so does any
 *   handler made per dispatch between keyfob and the follower (undici's retry handler). Nothing
 *   identifies the request, so the URL does: when a hop without keyfob's headers is redirected to an
 *   allowed origin, that URL is marked, and a dispatch to it within {@link FOLLOW_MS} is taken as
 *   the chain's next hop and gets no token either. fetch dispatches that hop at once, in the
 *   microtasks that follow the redirect's headers.
 */
export type Chain = RequestAttempt | null;

/**
 * How long a URL a tokenless hop was redirected to waits for that chain's next hop. fetch
 * dispatches it within microtasks of the redirect's headers; the margin is for a follower that
 * takes longer. Past it, the next hop would be taken for a request of its own.
 */
const FOLLOW_MS = 1_000;
/** Expired marks are swept when the map reaches this size (they are also dropped when looked up). */
const SWEEP_AT = 64;

/** A URL tokenless hops were redirected to: how many next hops are still expected, and until when. */
interface Mark {
  count: number;
  until: number;
}

export class RedirectChains {
  readonly #policy: RequestPolicy<any>;
  /** Handler object -> its chain's attempt, or null: the chain carries no keyfob headers. */
  readonly #byHandler = new WeakMap<object, Chain>();
  /** `origin + path` a tokenless hop was redirected to -> its mark. */
  readonly #byUrl = new Map<string, Mark>();
  /** A sweep of used-up marks is queued for the end of this turn of the event loop. */
  #sweeping = false;

  constructor(policy: RequestPolicy<any>) {
    this.#policy = policy;
  }

  /**
   * The chain a dispatch continues: the attempt of its earlier hops, `null` when they carried no
   * keyfob headers, `undefined` when it is a request of its own. No allocation on the way.
   */
  of(handler: object, origin: string, path: string): Chain | undefined {
    const chain = this.#byHandler.get(handler);
    if (chain !== undefined || this.#byUrl.size === 0) return chain;
    return this.#take(origin + (path.endsWith('?') ? path.slice(0, -1) : path)) ? null : undefined;
  }

  /** A hop that carried keyfob's headers got a redirect: its handler's next hop continues `attempt`. */
  carried(handler: object, attempt: RequestAttempt): void {
    this.#byHandler.set(handler, attempt);
  }

  /** A hop without keyfob's headers (`url`) got a redirect to `location`: the next hop gets none. */
  tokenless(handler: object, url: string, location: string): void {
    this.#byHandler.set(handler, null);
    // undici's redirect handler (its `history` of hops) comes back itself: no need to mark the URL.
    if (Array.isArray((handler as { history?: unknown }).history)) return;
    // Every reading of a non-ASCII Location (fetch's, undici's redirect handler's): the hop comes
    // to one of them; a mark no hop takes expires unused (a request of its own to that URL within
    // the second goes without the token: fails closed).
    for (const reading of locationReadings(location)) {
      let target: URL;
      try {
        target = new URL(reading, url);
      } catch {
        continue;
      }
      // Another origin gets no token anyway (and its own redirect is watched in turn).
      if (this.#policy.allows(target)) this.#mark(target.origin + target.pathname + target.search);
    }
  }

  #mark(key: string): void {
    const until = performance.now() + FOLLOW_MS;
    const mark = this.#byUrl.get(key);
    if (mark !== undefined) {
      mark.count++;
      mark.until = until;
      return;
    }
    if (this.#byUrl.size >= SWEEP_AT) this.#sweep(false);
    this.#byUrl.set(key, { count: 1, until });
  }

  /**
   * Whether a dispatch to `key` is a marked chain's next hop. A used-up mark stays until the end of
   * this turn of the event loop: a request of its own to the same URL in the same instant cannot be
   * told from fetch's hop, so neither gets the token (rather than the wrong one getting it).
   */
  #take(key: string): boolean {
    const mark = this.#byUrl.get(key);
    if (mark === undefined) return false;
    if (mark.until < performance.now()) {
      this.#byUrl.delete(key);
      return false;
    }
    if (mark.count > 0 && --mark.count === 0 && !this.#sweeping) {
      this.#sweeping = true;
      setImmediate(() => {
        this.#sweeping = false;
        this.#sweep(true);
      });
    }
    return true;
  }

  /** Drops expired marks (and used-up ones, at the end of the turn they were used up in). */
  #sweep(usedUp: boolean): void {
    const now = performance.now();
    for (const [key, mark] of this.#byUrl) {
      if (mark.until < now || (usedUp && mark.count === 0)) this.#byUrl.delete(key);
    }
  }
}

import type { CookieOptions, Request, Response } from 'express';
import { parseCookies, safeEqual, signValue, tag, verifyValue } from './signed-cookie.js';

/**
 * A login in flight, as the state cookie carries it: the OAuth `state`, the PKCE verifier, who logs in, what
 * the authorization request sent, where to go afterwards and when the login expires. Short keys: it is a cookie.
 */
export interface LoginState {
  v: 1;
  /** The `state` parameter sent to the provider. */
  st: string;
  /** PKCE code verifier. */
  cv: string | undefined;
  /** Subject the token set is stored under. */
  sub: string;
  /** True when the router generated `sub` (anonymous login). */
  gen: boolean;
  /** Extra authorization request parameters sent. */
  ap: Record<string, string>;
  /** Local path to return to. */
  rt: string | undefined;
  /** Epoch ms after which the login is refused. */
  exp: number;
}

function isLoginState(v: unknown): v is LoginState {
  const p = v as LoginState;
  return (
    typeof p === 'object' &&
    p !== null &&
    p.v === 1 &&
    typeof p.st === 'string' &&
    typeof p.sub === 'string' &&
    typeof p.exp === 'number' &&
    (p.cv === undefined || typeof p.cv === 'string') &&
    typeof p.ap === 'object' &&
    p.ap !== null
  );
}

/** Only same-origin paths: no scheme, no `//host`, no backslash tricks, no control characters. */
export function localPath(value: string | null): string | undefined {
  if (!value || value.length > 2048) return undefined;
  if (!value.startsWith('/') || value.startsWith('//') || value.startsWith('/\\')) return undefined;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  if (/[\u0000-\u001f\u007f\\]/.test(value)) return undefined;
  return value;
}

const MAX_CONSUMED = 10_000;

export interface LoginStateCookieOptions {
  secrets: readonly string[];
  /** Cookie name prefix; each login's cookie is `<prefix>_<hash of state>`. */
  cookieName: string;
  /** The callback path: the browser sends the cookie there only. */
  path: string;
  secure: boolean;
  loginTimeoutMs: number;
}

/** What reading a callback's state gave: the verified login, or why there is none. */
export type StateLookup =
  | { ok: true; login: LoginState }
  | { ok: false; reason: 'no_cookie' | 'already_used' | 'mismatch' | 'expired' };

/**
 * The state cookies: one signed (HMAC-SHA256), httpOnly, SameSite=Lax cookie per login in flight, named after
 * its state and scoped to the callback path, so two tabs can log in at once and nothing depends on the URL
 * alone. Also remembers, per process, the states already used, so a replayed callback is refused before the
 * code exchange.
 */
export class LoginStateCookies {
  readonly #options: LoginStateCookieOptions;
  readonly #cookie: CookieOptions;
  /** State tag -> expiry (epoch ms). */
  readonly #consumed = new Map<string, number>();

  constructor(options: LoginStateCookieOptions) {
    this.#options = options;
    this.#cookie = { httpOnly: true, sameSite: 'lax', secure: options.secure, path: options.path };
  }

  #nameFor(state: string): string {
    return `${this.#options.cookieName}_${tag(state)}`;
  }

  /** Sets the cookie of a new login. */
  write(res: Response, login: LoginState): void {
    res.cookie(this.#nameFor(login.st), signValue(login, this.#options.secrets), {
      ...this.#cookie,
      maxAge: this.#options.loginTimeoutMs,
    });
  }

  /**
   * The callback's side: reads the cookie of `state` and clears it (a state is used once), verifies the
   * signature and the state, the expiry, and that the state was not used before in this process.
   */
  take(req: Request, res: Response, state: string): StateLookup {
    const name = this.#nameFor(state);
    const raw = parseCookies(req.headers.cookie).get(name);
    if (raw !== undefined) res.clearCookie(name, this.#cookie);
    const stateTag = tag(state);
    if (this.#consumed.has(stateTag)) return { ok: false, reason: 'already_used' };
    if (raw === undefined) return { ok: false, reason: 'no_cookie' };
    const login = verifyValue(raw, this.#options.secrets);
    if (!isLoginState(login) || !safeEqual(login.st, state)) return { ok: false, reason: 'mismatch' };
    if (login.exp <= Date.now()) return { ok: false, reason: 'expired' };
    this.#markConsumed(stateTag, login.exp);
    return { ok: true, login };
  }

  #markConsumed(stateTag: string, exp: number): void {
    const consumed = this.#consumed;
    if (consumed.size >= MAX_CONSUMED) {
      const now = Date.now();
      for (const [k, e] of consumed) if (e <= now) consumed.delete(k);
      while (consumed.size >= MAX_CONSUMED) consumed.delete(consumed.keys().next().value!);
    }
    consumed.set(stateTag, exp);
  }
}

import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Request, Response } from 'express';

/**
 * The sample's own session: a signed (HMAC-SHA256), httpOnly, SameSite=Lax cookie holding the keyfob subject.
 * Stand-in for whatever session your app has (express-session, cookie-session, a JWT...).
 */
export interface SessionData {
  /** The keyfob subject the user's token set is stored under. */
  sub: string;
  /** Epoch ms after which the session is ignored. */
  exp: number;
}

const COOKIE = 'sample_session';
const MAX_AGE_MS = 8 * 3600_000;

export class SessionCookie {
  readonly #key: Buffer;
  readonly #secure: boolean;

  constructor(secret: string, secure: boolean) {
    // A key of its own, so a keyfob state cookie can never pass for a session.
    this.#key = createHmac('sha256', secret).update('express-sample session v1').digest();
    this.#secure = secure;
  }

  read(req: Request): SessionData | undefined {
    const m = new RegExp(`(?:^|;\\s*)${COOKIE}=([^;]+)`).exec(req.headers.cookie ?? '');
    if (!m) return undefined;
    const [body = '', mac = ''] = m[1]!.split('.');
    const expected = createHmac('sha256', this.#key).update(body).digest();
    const given = Buffer.from(mac, 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
    try {
      const data = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as SessionData;
      return typeof data.sub === 'string' && typeof data.exp === 'number' && data.exp > Date.now()
        ? data
        : undefined;
    } catch {
      return undefined;
    }
  }

  write(res: Response, sub: string): void {
    const body = Buffer.from(
      JSON.stringify({ sub, exp: Date.now() + MAX_AGE_MS } satisfies SessionData),
    ).toString('base64url');
    const mac = createHmac('sha256', this.#key).update(body).digest('base64url');
    res.cookie(COOKIE, `${body}.${mac}`, {
      httpOnly: true,
      sameSite: 'lax',
      secure: this.#secure,
      path: '/',
      maxAge: MAX_AGE_MS,
    });
  }

  clear(res: Response): void {
    res.clearCookie(COOKIE, { httpOnly: true, sameSite: 'lax', secure: this.#secure, path: '/' });
  }
}

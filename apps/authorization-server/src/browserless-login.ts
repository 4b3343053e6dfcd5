export interface BrowserlessLoginOptions {
  /** Redirects followed on the issuer before giving up. Default 10. */
  maxRedirects?: number;
}

interface StoredCookie {
  value: string;
  path: string;
}

function storeCookies(jar: Map<string, StoredCookie>, setCookies: string[], requestUrl: URL): void {
  for (const line of setCookies) {
    const [pair = '', ...attributes] = line.split(';');
    const eq = pair.indexOf('=');
    if (eq <= 0) continue;
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    let path = requestUrl.pathname.replace(/\/[^/]*$/, '') || '/';
    let expired = false;
    for (const attribute of attributes) {
      const [rawKey = '', ...rest] = attribute.split('=');
      const key = rawKey.trim().toLowerCase();
      const attributeValue = rest.join('=').trim();
      if (key === 'path' && attributeValue.startsWith('/')) path = attributeValue;
      if (key === 'max-age' && Number(attributeValue) <= 0) expired = true;
      if (key === 'expires' && Date.parse(attributeValue) <= Date.now()) expired = true;
    }
    if (expired) jar.delete(name);
    else jar.set(name, { value, path });
  }
}

function cookieHeader(jar: Map<string, StoredCookie>, url: URL): string | undefined {
  const pairs: string[] = [];
  for (const [name, { value, path }] of jar) {
    const matches =
      url.pathname === path ||
      url.pathname.startsWith(path.endsWith('/') ? path : `${path}/`) ||
      path === '/';
    if (matches) pairs.push(`${name}=${value}`);
  }
  return pairs.length ? pairs.join('; ') : undefined;
}

/**
 * Drives an authorization request without a browser: GETs `authorizationUrl`, follows the redirects that stay on
 * its origin (the authorization server) with a cookie jar, and returns the first redirect that leaves it: the
 * client's redirect_uri, carrying `code` and `state` (or `error`, e.g. `access_denied`). The server's interaction
 * is non-interactive: the end-user is `login_hint` (or `userid`, or 'demo-user'), and consent is automatic.
 *
 * Throws when the server answers anything but a redirect (e.g. a 400 error page for an unknown client or a
 * redirect_uri that is not allowed), or after `maxRedirects` redirects.
 */
export async function browserlessLogin(
  authorizationUrl: string,
  opts: BrowserlessLoginOptions = {},
): Promise<URL> {
  const maxRedirects = opts.maxRedirects ?? 10;
  const jar = new Map<string, StoredCookie>();
  let url = new URL(authorizationUrl);
  const { origin } = url;
  for (let redirects = 0; ; redirects += 1) {
    const headers: Record<string, string> = { accept: 'text/html,application/json' };
    const cookie = cookieHeader(jar, url);
    if (cookie) headers.cookie = cookie;
    const response = await fetch(url, { redirect: 'manual', headers });
    storeCookies(jar, response.headers.getSetCookie(), url);
    const location = response.headers.get('location');
    if (response.status < 300 || response.status >= 400 || !location) {
      const body = (await response.text()).slice(0, 500);
      throw new Error(
        `browserlessLogin: ${url.origin}${url.pathname} answered ${response.status}, not a redirect: ${body}`,
      );
    }
    await response.body?.cancel();
    const next = new URL(location, url);
    if (next.origin !== origin) return next;
    if (redirects >= maxRedirects) {
      throw new Error(`browserlessLogin: more than ${maxRedirects} redirects on ${origin}`);
    }
    url = next;
  }
}

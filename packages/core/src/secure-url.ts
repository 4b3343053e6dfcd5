import { ConfigurationError } from './errors.js';
import { safeUrl } from './redact.js';

const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\]|::1)$/i;

/** Whether `hostname` is this machine (plain http to it never crosses a network). */
export function isLoopback(hostname: string): boolean {
  return LOOPBACK.test(hostname);
}

/** Whether a URL may carry secrets: https, or http to loopback (or anywhere, with `allowInsecureHttp`). */
export function isSecureTransport(url: URL, allowInsecureHttp?: boolean): boolean {
  if (url.protocol === 'https:') return true;
  return url.protocol === 'http:' && (isLoopback(url.hostname) || allowInsecureHttp === true);
}

/**
 * Checks a URL that will receive a client secret, a refresh token or an access token (token,
 * revocation endpoints): absolute, no userinfo, and https unless loopback or the user opted in
 * with `allowInsecureHttp` (DESIGN behaviour 6). Returns the URL as given.
 */
export function assertSecureUrl(
  owner: string,
  name: string,
  value: string,
  allowInsecureHttp: boolean | undefined,
): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigurationError(`${owner}: ${name} "${safeUrl(value)}" is not an absolute URL.`);
  }
  if (url.username || url.password) {
    throw new ConfigurationError(`${owner}: ${name} must not contain credentials; pass them to the grant.`);
  }
  if (isSecureTransport(url, allowInsecureHttp)) return value;
  throw new ConfigurationError(
    `${owner}: ${name} ${safeUrl(value)} is not https; client secrets and tokens would cross the network in clear text.`,
    {
      hint: 'Use the https URL, or set allowInsecureHttp: true on the TokenManager for a trusted network (loopback is always allowed).',
    },
  );
}

import { ConfigurationError } from '../errors.js';
import { type Grant, grantInspect } from './grant.js';

export interface CustomGrantContext {
  scope: string | undefined;
  subject: string | undefined;
  extraParams: Readonly<Record<string, string>> | undefined;
  signal: AbortSignal;
}

/** What a custom fetcher returns: an OAuth token response, or keyfob's own shape. */
export type CustomTokenResult =
  | { access_token: string; expires_in?: number | string; [k: string]: unknown }
  | { accessToken: string; expiresAt?: number; expiresIn?: number; refreshToken?: string; scope?: string };

export interface CustomGrantOptions {
  /** Tells tokens of different custom grants apart in a shared store. Defaults to `'custom'`. */
  id?: string;
}

/**
 * Any provider the built-in grants cannot express (a signed JWT assertion, a vendor SDK call...).
 * keyfob still caches, refreshes ahead, single-flights and normalises what `fetchToken` returns.
 */
export function customGrant(
  fetchToken: (ctx: CustomGrantContext) => Promise<CustomTokenResult>,
  options: CustomGrantOptions = {},
): Grant {
  if (typeof fetchToken !== 'function')
    throw new ConfigurationError('customGrant: pass a function returning a token.');
  const grant: Grant = {
    type: 'custom',
    identity: options.id ?? 'custom',
    usesTokenUrl: false,
    async fetchToken(ctx) {
      const result = (await fetchToken({
        scope: ctx.scope,
        subject: ctx.subject,
        extraParams: ctx.extraParams,
        signal: ctx.signal,
      })) as Record<string, unknown>;
      if (result && typeof result === 'object' && 'accessToken' in result && !('access_token' in result)) {
        const { accessToken, expiresAt, expiresIn, refreshToken, scope } = result;
        return {
          access_token: accessToken,
          ...(expiresIn === undefined ? {} : { expires_in: expiresIn }),
          ...(expiresAt === undefined ? {} : { expires_at: expiresAt }),
          ...(refreshToken === undefined ? {} : { refresh_token: refreshToken }),
          ...(scope === undefined ? {} : { scope }),
        };
      }
      return result;
    },
  };
  grantInspect(grant, { id: options.id ?? 'custom' });
  return grant;
}

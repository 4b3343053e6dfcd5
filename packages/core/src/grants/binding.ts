import type { AccessToken } from '../types.js';
import type { Grant, GrantContext } from './grant.js';

/** What an authorization-code grant needs from the TokenManager it was given to. Internal. */
export interface GrantHost {
  exchange(
    key: { subject: string | ((token: AccessToken) => string) | undefined; scope: string | undefined },
    send: (ctx: GrantContext) => Promise<Record<string, unknown>>,
    signal: AbortSignal | undefined,
  ): Promise<AccessToken>;
  revoke(url: string, send: (ctx: GrantContext) => Promise<Record<string, unknown>>): Promise<void>;
}

const hosts = new WeakMap<Grant, GrantHost>();

export function bindGrant(grant: Grant, host: GrantHost): void {
  hosts.set(grant, host);
}

export function hostOf(grant: Grant): GrantHost | undefined {
  return hosts.get(grant);
}

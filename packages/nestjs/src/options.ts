import type { AttachTokensOptions } from '@keyfob/axios';
import type { TokenManagerOptions } from '@keyfob/core';
import type { CreateAxiosDefaults } from 'axios';

/**
 * The axios instance behind a manager's `HttpService`: any `axios.create()` config plus where tokens go.
 * A dedicated instance is created per manager; the global axios instance is never touched.
 */
export interface KeyfobHttpOptions extends CreateAxiosDefaults {
  /** Base URL of the protected API. Tokens go to its origin (unless `origins` says otherwise). */
  baseURL?: string;
  /** Origins that receive tokens. Defaults to the origin of `baseURL`; one of the two is required. */
  origins?: (string | URL)[] | undefined;
  /**
   * Whose token to send: a fixed subject or a function of the request config (per-user token sets).
   * Defaults to the service's own token.
   */
  subject?: AttachTokensOptions['subject'] | undefined;
  /** Ask for this scope instead of the grant's. */
  scope?: string | undefined;
  /** On a 401 from the API, drop exactly that token and send the request once more with a new one. Defaults to `true`. */
  retryOn401?: boolean | undefined;
}

/** `KeyfobModule.forRoot(...)` options: everything `new TokenManager(...)` takes, plus `http`. */
export interface KeyfobModuleOptions extends TokenManagerOptions {
  /**
   * Also provide an `HttpService` (inject with `@InjectKeyfobHttp(name?)`) on a dedicated axios instance
   * whose requests to `baseURL` / `origins` carry this manager's tokens.
   */
  http?: KeyfobHttpOptions | undefined;
}

/** Options that shape the module itself; given to `forRoot` / `forRootAsync` directly, never by a factory. */
export interface KeyfobModuleExtras {
  /** Register the manager for the whole application. Defaults to `false` (the importing module only). */
  isGlobal?: boolean | undefined;
  /** Name of this manager, for several managers in one app (one per upstream API). Defaults to `'default'`. */
  name?: string | undefined;
}

/** A class for `forRootAsync({ useClass })` / `useExisting`. */
export interface KeyfobOptionsFactory {
  createKeyfobOptions(): KeyfobModuleOptions | Promise<KeyfobModuleOptions>;
}

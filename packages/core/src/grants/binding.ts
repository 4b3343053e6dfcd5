import { ConfigurationError } from '../errors.js';
import type { TokenRequest } from '../token-endpoint.js';
import type { AccessToken } from '../types.js';
import type { GrantContext } from './grant.js';

/**
 * What a grant may ask of the TokenManager it was given to. The manager hands it over through
 * {@link Grant.bind} when it is constructed; grants that only answer `fetchToken` / `refresh`
 * (client credentials, password, custom, static) need none.
 */
export interface GrantHost {
  /** The manager's `allowInsecureHttp`: whether plain http to a non-loopback host is allowed. */
  readonly allowInsecureHttp: boolean;
  /** Whether the manager was closed (a closed manager's grant may be given to a new one). */
  readonly closed: boolean;
  /** The discovered `authorization_endpoint`, once the manager's discovery has read it (with `issuer`). */
  readonly authorizationEndpoint: string | undefined;
  /** The discovered `revocation_endpoint` (its mTLS alias with the manager's `mtls`), once read. */
  readonly revocationEndpoint: string | undefined;
  /**
   * Runs a token request the user started (authorization code exchange) and stores the token set
   * under the given subject and scope, as if `getToken` had fetched it.
   */
  exchange(
    key: { subject: string | ((token: AccessToken) => string) | undefined; scope: string | undefined },
    send: (ctx: GrantContext) => Promise<Record<string, unknown>>,
    signal: AbortSignal | undefined,
  ): Promise<AccessToken>;
  /** POSTs a request to another endpoint of the provider (token revocation) with the manager's client. */
  post(url: string, req: TokenRequest): Promise<Record<string, unknown>>;
}

/**
 * The one manager a grant is bound to. A grant that keeps per-manager state (an authorization code
 * grant stores token sets in its manager's cache) belongs to exactly one live manager: binding it to a
 * second is a configuration error rather than tokens landing in whichever manager came last.
 */
export class GrantBinding {
  #host: GrantHost | undefined;
  readonly #owner: string;

  constructor(owner: string) {
    this.#owner = owner;
  }

  bind(host: GrantHost): void {
    if (this.#host !== undefined && this.#host !== host && !this.#host.closed) {
      throw new ConfigurationError(`${this.#owner}: this grant is already used by another TokenManager.`, {
        hint: 'Create one grant per TokenManager (or close the first manager before giving its grant to a new one).',
      });
    }
    this.#host = host;
  }

  /** The bound host; a ConfigurationError naming `action` when the grant was given to no manager. */
  host(action: string): GrantHost {
    if (this.#host === undefined) {
      throw new ConfigurationError(
        `${this.#owner}: give this grant to a TokenManager (new TokenManager({ tokenUrl, grant })) before ${action}.`,
      );
    }
    return this.#host;
  }
}

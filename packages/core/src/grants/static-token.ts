import { ConfigurationError } from '../errors.js';
import { REDACTED } from '../redact.js';
import { type Grant, grantInspect } from './grant.js';

export interface StaticTokenOptions {
  /** A pre-generated access key (e.g. Risk Cloud's "Access Key"), sent as the bearer token. */
  accessToken: string;
  /** When it stops working, epoch ms or a Date. Defaults to never (keyfob cannot renew it anyway). */
  expiresAt?: number | Date | undefined;
}

/** A pre-issued token used as-is. After `expiresAt` getToken() fails with a clear error. */
export function staticToken(options: StaticTokenOptions): Grant {
  const { accessToken } = options;
  if (!accessToken) throw new ConfigurationError('staticToken: accessToken is required.');
  const expiresAt = options.expiresAt instanceof Date ? options.expiresAt.getTime() : options.expiresAt;
  const grant: Grant = {
    type: 'static',
    usesTokenUrl: false,
    async fetchToken(ctx) {
      if (expiresAt !== undefined && expiresAt <= ctx.now()) {
        throw new ConfigurationError(
          `staticToken: the access key expired at ${new Date(expiresAt).toISOString()}.`,
          {
            hint: 'Generate a new access key with the provider and restart with it, or use a grant keyfob can renew.',
          },
        );
      }
      return {
        access_token: accessToken,
        token_type: 'Bearer',
        ...(expiresAt === undefined ? {} : { expires_at: expiresAt }),
      };
    },
  };
  grantInspect(grant, { accessToken: REDACTED, expiresAt });
  return grant;
}

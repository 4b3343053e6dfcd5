import {
  type ClientAuthMethod,
  ConfigurationError,
  clientCredentials,
  type Grant,
  passwordGrant,
  staticToken,
} from '@keyfob/core';
import type { KeyfobModuleOptions } from '@keyfob/nestjs';

/** Environment variables the sample reads (see README). */
export interface NestSampleEnv {
  TOKEN_URL?: string;
  CLIENT_ID?: string;
  CLIENT_SECRET?: string;
  SCOPE?: string;
  CLIENT_AUTH?: string;
  USERNAME?: string;
  PASSWORD?: string;
  ACCESS_KEY?: string;
  API_URL?: string;
  UPSTREAM_PATH?: string;
  PORT?: string;
  [name: string]: string | undefined;
}

export interface SampleConfig {
  keyfob: KeyfobModuleOptions;
  apiUrl: string;
  upstreamPath: string;
  port: number;
  grant: string;
}

export const SAMPLE_CONFIG = 'NestSampleConfig';

const CLIENT_AUTH: readonly ClientAuthMethod[] = ['basic', 'body', 'json', 'basic-only'];

const set = (v: string | undefined): v is string => v !== undefined && v.trim() !== '';

/** Builds the sample's configuration from environment variables; missing ones are named in the error. */
export function readConfig(env: NestSampleEnv): SampleConfig {
  if (!set(env.API_URL))
    throw new ConfigurationError('nest-sample: API_URL is required (base URL of the protected API).');
  let grant: Grant;
  let grantName: string;
  if (set(env.ACCESS_KEY)) {
    grant = staticToken({ accessToken: env.ACCESS_KEY });
    grantName = 'static access key';
  } else if (set(env.USERNAME) && set(env.PASSWORD)) {
    grant = passwordGrant({
      username: env.USERNAME,
      password: env.PASSWORD,
      ...(set(env.CLIENT_ID) ? { clientId: env.CLIENT_ID } : {}),
      ...(set(env.CLIENT_SECRET) ? { clientSecret: env.CLIENT_SECRET } : {}),
      ...(set(env.SCOPE) ? { scope: env.SCOPE } : {}),
    });
    grantName = 'password';
  } else if (set(env.CLIENT_ID) && set(env.CLIENT_SECRET)) {
    const clientAuth = (env.CLIENT_AUTH || 'basic') as ClientAuthMethod;
    if (!CLIENT_AUTH.includes(clientAuth)) {
      throw new ConfigurationError(`nest-sample: CLIENT_AUTH must be one of ${CLIENT_AUTH.join(', ')}.`);
    }
    grant = clientCredentials({
      clientId: env.CLIENT_ID,
      clientSecret: env.CLIENT_SECRET,
      clientAuth,
      ...(set(env.SCOPE) ? { scope: env.SCOPE } : {}),
    });
    grantName = `client_credentials (${clientAuth})`;
  } else {
    throw new ConfigurationError(
      'nest-sample: set CLIENT_ID and CLIENT_SECRET (client credentials), USERNAME and PASSWORD (password grant) or ACCESS_KEY (a pre-generated token).',
    );
  }
  const port = env.PORT === undefined || env.PORT === '' ? 0 : Number(env.PORT);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new ConfigurationError('nest-sample: PORT must be a port number (0 picks a free one).');
  }
  return {
    keyfob: {
      ...(set(env.TOKEN_URL) ? { tokenUrl: env.TOKEN_URL } : {}),
      grant,
      http: { baseURL: env.API_URL, timeout: 10_000 },
    },
    apiUrl: env.API_URL,
    upstreamPath: set(env.UPSTREAM_PATH) ? env.UPSTREAM_PATH : '/',
    port,
    grant: grantName,
  };
}

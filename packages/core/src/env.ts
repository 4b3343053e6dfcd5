import { ConfigurationError } from './errors.js';
import { clientCredentials } from './grants/client-credentials.js';
import type { ClientAuthMethod } from './grants/grant.js';
import { isSecureTransport } from './secure-url.js';
import type { TokenManagerOptions } from './token-manager.js';

/** Options of {@link optionsFromEnv}. */
export interface EnvOptions {
  /** Prefix of every variable name. Defaults to `'KEYFOB_'`. */
  prefix?: string;
}

/** What {@link optionsFromEnv} returns: client-credentials `TokenManagerOptions` (`issuer` and/or `tokenUrl`, `grant`). */
export type EnvTokenManagerOptions = TokenManagerOptions;

/**
 * The client authentication methods that need nothing but a client id and secret (`private_key_jwt`
 * needs a key and `tls_client_auth` a certificate-presenting fetch: build those options in code).
 */
const CLIENT_AUTH_FROM_ENV = [
  'basic',
  'body',
  'json',
  'basic-only',
  'client_secret_jwt',
] as const satisfies readonly ClientAuthMethod[];

/** RFC 6749 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ). */
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

function urlProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    // The value is not echoed: a mistyped URL may carry credentials.
    return 'is not an absolute URL (expected https://host/path)';
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    return `has protocol ${url.protocol}, expected https:`;
  if (url.username || url.password) return 'contains credentials; put the secret in CLIENT_SECRET instead';
  // The TokenManager refuses it too (DESIGN behaviour 6); said here, naming the variable.
  if (!isSecureTransport(url))
    return 'is plain http to a host other than loopback: the client secret would travel unencrypted (use https:)';
  return undefined;
}

/**
 * Client-credentials `TokenManagerOptions` from environment variables (twelve-factor configuration):
 *
 * | variable | meaning |
 * | --- | --- |
 * | `KEYFOB_ISSUER` | issuer URL, for discovery (one of ISSUER and TOKEN_URL is required) |
 * | `KEYFOB_TOKEN_URL` | token endpoint URL |
 * | `KEYFOB_CLIENT_ID` | client id (required) |
 * | `KEYFOB_CLIENT_SECRET` | client secret (required) |
 * | `KEYFOB_SCOPE` | space-delimited scopes (optional) |
 * | `KEYFOB_CLIENT_AUTH` | `basic`, `body`, `json`, `basic-only` or `client_secret_jwt` (optional; defaults to `basic`, or with an issuer to what its metadata supports) |
 * | `KEYFOB_AUDIENCE` | sent as the `audience` parameter (optional) |
 *
 * Empty values count as unset. Every missing or malformed variable is named in one
 * `ConfigurationError`; values are never echoed except a wrong `CLIENT_AUTH`, and the secret never.
 *
 * ```ts
 * const tokens = new TokenManager(optionsFromEnv());
 * ```
 */
export function optionsFromEnv(
  env: Readonly<Record<string, string | undefined>> = process.env,
  options: EnvOptions = {},
): EnvTokenManagerOptions {
  const prefix = options.prefix ?? 'KEYFOB_';
  const name = (v: string) => `${prefix}${v}`;
  const read = (v: string): string | undefined => {
    const value = env[name(v)]?.trim();
    return value ? value : undefined;
  };
  const problems: string[] = [];

  const issuer = read('ISSUER');
  const tokenUrl = read('TOKEN_URL');
  if (issuer === undefined && tokenUrl === undefined) {
    problems.push(`${name('ISSUER')} or ${name('TOKEN_URL')} is missing (set one)`);
  }
  for (const [v, value] of [
    ['ISSUER', issuer],
    ['TOKEN_URL', tokenUrl],
  ] as const) {
    const problem = value === undefined ? undefined : urlProblem(value);
    if (problem) problems.push(`${name(v)} ${problem.replace('CLIENT_SECRET', name('CLIENT_SECRET'))}`);
  }

  const clientId = read('CLIENT_ID');
  if (clientId === undefined) problems.push(`${name('CLIENT_ID')} is missing`);
  const clientSecret = env[name('CLIENT_SECRET')];
  if (!clientSecret) problems.push(`${name('CLIENT_SECRET')} is missing`);

  // RFC 6749 3.3: scopes are separated by single spaces; extra spaces in a variable are a typo, not a scope.
  const scope = read('SCOPE')?.split(/ +/).filter(Boolean).join(' ');
  if (scope !== undefined && !scope.split(/ +/).every((t) => SCOPE_TOKEN.test(t))) {
    problems.push(
      `${name('SCOPE')} contains characters a scope cannot have (scopes are separated by single spaces; no tabs, newlines, '"' or '\\')`,
    );
  }

  const clientAuthValue = read('CLIENT_AUTH');
  let clientAuth: ClientAuthMethod | undefined;
  if (clientAuthValue !== undefined) {
    const wanted = clientAuthValue.toLowerCase();
    clientAuth = CLIENT_AUTH_FROM_ENV.find((m) => m === wanted);
    if (clientAuth === undefined) {
      problems.push(
        `${name('CLIENT_AUTH')} '${clientAuthValue.slice(0, 40)}' is not one of ${CLIENT_AUTH_FROM_ENV.join(', ')}`,
      );
    }
  }
  const audience = read('AUDIENCE');

  if (problems.length > 0 || clientId === undefined || !clientSecret) {
    throw new ConfigurationError(
      `Configuration from the environment is incomplete: ${problems.join('; ')}.`,
      {
        hint: `Set the variables in the process environment (or pass another object to optionsFromEnv).`,
      },
    );
  }

  const grant = clientCredentials({
    clientId,
    clientSecret,
    ...(scope === undefined ? {} : { scope }),
    ...(clientAuth === undefined ? {} : { clientAuth }),
    ...(audience === undefined ? {} : { extraParams: { audience } }),
  });
  return {
    grant,
    ...(tokenUrl === undefined ? {} : { tokenUrl }),
    ...(issuer === undefined ? {} : { issuer }),
  };
}

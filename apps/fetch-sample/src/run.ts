import {
  type ClientAuthMethod,
  ConfigurationError,
  clientCredentials,
  type Grant,
  passwordGrant,
  TokenManager,
} from '@keyfob/core';
import { withTokens } from '@keyfob/fetch';

/** What the sample prints, as one JSON line. */
export interface Report {
  adapter: 'fetch';
  /** Requests sent (each counted once, whatever its retries). */
  requests: number;
  /** Requests that did not end in a 2xx. */
  failed: number;
  /** Token endpoint round trips: `tokenFetched` + `tokenRefreshed` events of the manager. */
  tokenRequests: number;
  /** `tokenRefreshed` events: a token replaced an earlier one (refresh ahead, 401). */
  refreshes: number;
  /** Requests that got a 401, were sent again by keyfob with a fresh token, and then succeeded. */
  recovered401: number;
}

export type SampleEnv = Record<string, string | undefined>;

const CLIENT_AUTH = ['basic', 'body', 'json', 'basic-only'] as const;

function required(env: SampleEnv, name: string): string {
  const v = env[name];
  if (v === undefined || v === '')
    throw new ConfigurationError(`fetch-sample: set ${name} (see the README).`);
  return v;
}

function count(env: SampleEnv, name: string, fallback: number | undefined): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1)
    throw new ConfigurationError(`fetch-sample: ${name} must be a positive integer.`);
  return n;
}

function grantFrom(env: SampleEnv): Grant {
  const scope = env.SCOPE || undefined;
  const clientAuth = (env.CLIENT_AUTH || 'basic') as ClientAuthMethod;
  if (!(CLIENT_AUTH as readonly string[]).includes(clientAuth)) {
    throw new ConfigurationError(`fetch-sample: CLIENT_AUTH must be one of ${CLIENT_AUTH.join(', ')}.`);
  }
  // PASSWORD switches to the password grant (USERNAME alone does not: Windows always sets it).
  if (env.PASSWORD) {
    return passwordGrant({
      username: required(env, 'USERNAME'),
      password: env.PASSWORD,
      ...(env.CLIENT_ID ? { clientId: env.CLIENT_ID } : {}),
      ...(env.CLIENT_SECRET ? { clientSecret: env.CLIENT_SECRET } : {}),
      ...(scope ? { scope } : {}),
    });
  }
  return clientCredentials({
    clientId: required(env, 'CLIENT_ID'),
    clientSecret: required(env, 'CLIENT_SECRET'),
    clientAuth,
    ...(scope ? { scope } : {}),
  });
}

/**
 * Calls `API_URL` + `API_PATH` with global fetch wrapped by keyfob, `REQUESTS` times (or for
 * `DURATION_MS`) with `CONCURRENCY` requests in flight, and reports what happened. Never throws for
 * a failed API request (it is counted); throws ConfigurationError for unusable settings.
 */
export async function runFetchSample(
  env: SampleEnv = process.env,
  log: (line: string) => void = () => {},
): Promise<Report> {
  const tokenUrl = required(env, 'TOKEN_URL');
  const apiUrl = required(env, 'API_URL').replace(/\/+$/, '');
  const apiPath = env.API_PATH || '/hello';
  const durationMs = count(env, 'DURATION_MS', undefined);
  const total = count(env, 'REQUESTS', 10)!;
  const concurrency = count(env, 'CONCURRENCY', 4)!;

  const tokens = new TokenManager({
    tokenUrl,
    grant: grantFrom(env),
    allowInsecureHttp: env.ALLOW_INSECURE_HTTP === '1',
    logger: { warn: log, error: log },
  });
  const report: Report = {
    adapter: 'fetch',
    requests: 0,
    failed: 0,
    tokenRequests: 0,
    refreshes: 0,
    recovered401: 0,
  };
  tokens.on('tokenFetched', () => report.tokenRequests++);
  tokens.on('tokenRefreshed', () => {
    report.tokenRequests++;
    report.refreshes++;
  });
  // Every attempt keyfob sends goes through this fetch: a 401 seen here and a 2xx returned to the
  // caller is a recovered 401 (keyfob retries once, so a request that fails twice saw two).
  let attempts401 = 0;
  const counting = (input: string | URL | Request, init?: RequestInit) =>
    fetch(input, init).then((res) => {
      if (res.status === 401) attempts401++;
      return res;
    });
  const api = withTokens(counting, tokens, { origins: [apiUrl] });
  try {
    const deadline = durationMs === undefined ? undefined : Date.now() + durationMs;
    let errorsLogged = 0;
    let final401 = 0;
    const next = () => (deadline === undefined ? report.requests < total : Date.now() < deadline);
    const worker = async () => {
      while (next()) {
        report.requests++;
        try {
          const res = await api(`${apiUrl}${apiPath}`, { signal: AbortSignal.timeout(30_000) });
          await res.arrayBuffer();
          if (!res.ok) {
            report.failed++;
            if (res.status === 401) final401++;
            if (errorsLogged++ < 5) log(`request failed: HTTP ${res.status}`);
          }
        } catch (e) {
          report.failed++;
          if (errorsLogged++ < 5)
            log(`request failed: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    report.recovered401 = attempts401 - 2 * final401;
    return report;
  } finally {
    await tokens.close();
  }
}

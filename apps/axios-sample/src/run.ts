import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { attachTokens } from '@keyfob/axios';
import {
  type ClientAuthMethod,
  ConfigurationError,
  clientCredentials,
  type Grant,
  passwordGrant,
  TokenManager,
} from '@keyfob/core';
import axios from 'axios';

/** What the sample prints, as one JSON line. */
export interface Report {
  adapter: 'axios';
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
    throw new ConfigurationError(`axios-sample: set ${name} (see the README).`);
  return v;
}

function count(env: SampleEnv, name: string, fallback: number | undefined): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1)
    throw new ConfigurationError(`axios-sample: ${name} must be a positive integer.`);
  return n;
}

function grantFrom(env: SampleEnv): Grant {
  const scope = env.SCOPE || undefined;
  const clientAuth = (env.CLIENT_AUTH || 'basic') as ClientAuthMethod;
  if (!(CLIENT_AUTH as readonly string[]).includes(clientAuth)) {
    throw new ConfigurationError(`axios-sample: CLIENT_AUTH must be one of ${CLIENT_AUTH.join(', ')}.`);
  }
  // PASSWORD switches to the password grant (USERNAME alone does not: Windows always sets it).
  if (env.PASSWORD) {
    if (clientAuth === 'basic-only') {
      throw new ConfigurationError(
        'axios-sample: CLIENT_AUTH=basic-only does not apply to the password grant.',
      );
    }
    return passwordGrant({
      username: required(env, 'USERNAME'),
      password: env.PASSWORD,
      ...(env.CLIENT_ID ? { clientId: env.CLIENT_ID } : {}),
      ...(env.CLIENT_SECRET ? { clientSecret: env.CLIENT_SECRET } : {}),
      ...(env.CLIENT_AUTH ? { clientAuth } : {}),
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
 * Calls `API_URL` + `API_PATH` through an axios instance with keyfob attached, `REQUESTS` times (or for
 * `DURATION_MS`) with `CONCURRENCY` requests in flight, and reports what happened. Never throws for a
 * failed API request (it is counted); throws ConfigurationError for unusable settings.
 */
export async function runAxiosSample(
  env: SampleEnv = process.env,
  log: (line: string) => void = () => {},
): Promise<Report> {
  const tokenUrl = required(env, 'TOKEN_URL');
  const apiUrl = required(env, 'API_URL');
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
    adapter: 'axios',
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
  const httpAgent = new HttpAgent({ keepAlive: true });
  const httpsAgent = new HttpsAgent({ keepAlive: true });
  try {
    const api = axios.create({ baseURL: apiUrl, httpAgent, httpsAgent, timeout: 30_000 });
    attachTokens(api, tokens);

    const deadline = durationMs === undefined ? undefined : Date.now() + durationMs;
    let errorsLogged = 0;
    const next = () => (deadline === undefined ? report.requests < total : Date.now() < deadline);
    const worker = async () => {
      while (next()) {
        report.requests++;
        try {
          const res = await api.get(apiPath);
          if (res.config.keyfob?.retried) report.recovered401++;
        } catch (e) {
          report.failed++;
          if (errorsLogged++ < 5)
            log(`request failed: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    return report;
  } finally {
    await tokens.close();
    httpAgent.destroy();
    httpsAgent.destroy();
  }
}

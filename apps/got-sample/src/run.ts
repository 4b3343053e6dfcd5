import {
  type ClientAuthMethod,
  ConfigurationError,
  clientCredentials,
  type Grant,
  isKeyfobError,
  passwordGrant,
  TokenManager,
} from '@keyfob/core';
import { withTokens } from '@keyfob/got';
import got, { type AfterResponseHook } from 'got';

export type SampleEnv = Readonly<Record<string, string | undefined>>;

export interface Report {
  adapter: 'got';
  /** Requests made (each counted once, whatever the retries). */
  requests: number;
  /** Requests that did not end in a 2xx. */
  failed: number;
  /** Token endpoint round trips: `tokenFetched` + `tokenRefreshed` events. */
  tokenRequests: number;
  /** `tokenRefreshed` events (refresh ahead of expiry, or a new token after a 401). */
  refreshes: number;
  /** Requests that got a 401, had their token renewed by keyfob and then succeeded. */
  recovered401: number;
}

const CLIENT_AUTH: readonly ClientAuthMethod[] = ['basic', 'body', 'json', 'basic-only'];
const SAW_401 = 'gotSampleSaw401';

function positiveInt(env: SampleEnv, name: string, fallback: number | undefined): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new ConfigurationError(`${name} must be a positive integer.`);
  return n;
}

function required(env: SampleEnv, name: string): string {
  const v = env[name];
  if (!v) throw new ConfigurationError(`${name} is required (see apps/got-sample/README.md).`);
  return v;
}

/** The grant the environment describes: password grant when USERNAME is set, else client credentials. */
export function grantFromEnv(env: SampleEnv): Grant {
  const scope = env.SCOPE || undefined;
  if (env.USERNAME) {
    return passwordGrant({
      username: env.USERNAME,
      password: required(env, 'PASSWORD'),
      ...(env.CLIENT_ID ? { clientId: env.CLIENT_ID } : {}),
      ...(env.CLIENT_SECRET ? { clientSecret: env.CLIENT_SECRET } : {}),
      ...(scope ? { scope } : {}),
    });
  }
  const clientAuth = (env.CLIENT_AUTH || 'basic') as ClientAuthMethod;
  if (!CLIENT_AUTH.includes(clientAuth)) {
    throw new ConfigurationError(`CLIENT_AUTH must be one of ${CLIENT_AUTH.join(', ')}.`);
  }
  return clientCredentials({
    clientId: required(env, 'CLIENT_ID'),
    clientSecret: required(env, 'CLIENT_SECRET'),
    clientAuth,
    ...(scope ? { scope } : {}),
  });
}

/**
 * Calls `API_URL` + `API_PATH` through a got instance extended with keyfob's hooks: `REQUESTS`
 * requests (or as many as fit in `DURATION_MS`) with `CONCURRENCY` workers, then reports.
 */
export async function runGotSample(
  env: SampleEnv = process.env,
  log: (line: string) => void = () => {},
): Promise<Report> {
  const tokenUrl = required(env, 'TOKEN_URL');
  const apiUrl = required(env, 'API_URL');
  const apiPath = (env.API_PATH || '/hello').replace(/^\/+/, '');
  const total = positiveInt(env, 'REQUESTS', 10)!;
  const concurrency = positiveInt(env, 'CONCURRENCY', 4)!;
  const durationMs = positiveInt(env, 'DURATION_MS', undefined);

  const manager = new TokenManager({ tokenUrl, grant: grantFromEnv(env) });
  let fetched = 0;
  let refreshes = 0;
  manager.on('tokenFetched', () => fetched++);
  manager.on('tokenRefreshed', () => refreshes++);

  // Runs before keyfob's afterResponse hook (withTokens appends its hooks): marks requests that saw a 401.
  const see401: AfterResponseHook = (response) => {
    if (response.statusCode === 401) response.request.options.context[SAW_401] = true;
    return response;
  };
  const api = withTokens(
    got.extend({ prefixUrl: apiUrl, hooks: { afterResponse: [see401] }, timeout: { request: 30_000 } }),
    manager,
  );

  const report: Report = {
    adapter: 'got',
    requests: 0,
    failed: 0,
    tokenRequests: 0,
    refreshes: 0,
    recovered401: 0,
  };
  const deadline = durationMs === undefined ? undefined : Date.now() + durationMs;
  const more = () => (deadline === undefined ? report.requests < total : Date.now() < deadline);
  const errors = new Map<string, number>();

  const worker = async () => {
    while (more()) {
      report.requests++;
      try {
        const res = await api.get(apiPath);
        if (res.request.options.context[SAW_401] === true) report.recovered401++;
      } catch (e) {
        report.failed++;
        const what = isKeyfobError(e)
          ? `${e.code}: ${e.message}`
          : e instanceof Error
            ? `${(e as { code?: string }).code ?? e.name}: ${e.message}`
            : String(e);
        errors.set(what, (errors.get(what) ?? 0) + 1);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    await manager.close();
  }
  for (const [what, n] of errors) log(`${n} x ${what}`);
  report.tokenRequests = fetched + refreshes;
  report.refreshes = refreshes;
  return report;
}

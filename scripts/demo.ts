// `pnpm demo`: a real OAuth2 server on 127.0.0.1, every sample app through token expiries and a mass
// revocation, and a report per adapter. Nothing outside this machine is needed.
import {
  type RunningAuthorizationServer,
  startAuthorizationServer,
} from '../apps/authorization-server/src/index.ts';
import { runAxiosSample } from '../apps/axios-sample/src/run.ts';
import { startExpressSample } from '../apps/express-sample/src/app.ts';
import { runFetchSample } from '../apps/fetch-sample/src/run.ts';
import { runGotSample } from '../apps/got-sample/src/run.ts';
import { startNestSample } from '../apps/nest-sample/src/app.ts';
import { clientCredentials, TokenManager, tokenExchange } from '../packages/core/src/index.ts';
import { type AdapterMetrics, DemoMetrics, formatMetrics } from './demo-metrics.ts';

export interface AdapterReport {
  adapter: string;
  requests: number;
  failed: number;
  tokenRequests: number;
  refreshes: number;
  recovered401: number;
  notes?: string;
  /** What keyfob's diagnostics channels saw during the run. */
  metrics?: AdapterMetrics;
}

export interface DemoOptions {
  /** How long each adapter runs. Defaults to 9 s (three 3 s token lifetimes). */
  durationMs?: number;
  tokenTtlSeconds?: number;
  concurrency?: number;
  log?: (line: string) => void;
  /** Only these adapters. */
  only?: string[];
  /** No progress dots on stdout (tests). */
  quiet?: boolean;
}

const now = () => Date.now();

/** Set while runDemo runs: every adapter run (one `during`) is one row of the metrics table. */
let collecting: DemoMetrics | undefined;

/** Prints a progress dot per second and revokes every token at half-time. */
async function during<T>(
  server: RunningAuthorizationServer,
  durationMs: number,
  quiet: boolean,
  run: () => Promise<T>,
): Promise<T> {
  const write = (s: string) => {
    if (!quiet) process.stdout.write(s);
  };
  collecting?.begin();
  const ticker = setInterval(() => write('.'), 1000);
  const revoke = setTimeout(() => {
    server.revokeAll();
    write('[mass revocation]');
  }, durationMs / 2);
  try {
    return await run();
  } finally {
    clearInterval(ticker);
    clearTimeout(revoke);
    collecting?.end();
    write('\n');
  }
}

/**
 * Standards, once, before the adapters: a TokenManager given only the issuer (discovery) and a
 * client_secret_jwt client (a signed assertion per request), then a token exchange (RFC 8693) of its token.
 */
async function showStandards(server: RunningAuthorizationServer, log: (line: string) => void): Promise<void> {
  const service = new TokenManager({
    issuer: server.issuer,
    grant: clientCredentials({
      clientId: 'service-jwt',
      clientSecret: 'service-jwt-secret-0123456789abcdef0123456789',
      clientAuth: 'client_secret_jwt',
    }),
  });
  const onBehalf = new TokenManager({
    issuer: server.issuer,
    grant: tokenExchange({
      clientId: 'service-exchange',
      clientSecret: 'service-exchange-secret',
      audience: server.apiUrl,
    }),
  });
  try {
    const token = await service.getToken();
    const metadata = await service.discover();
    const hello = await fetch(`${server.apiUrl}/hello`, {
      headers: { authorization: await service.getAuthorizationHeader() },
    });
    await hello.body?.cancel();
    const exchanged = await onBehalf.getAuthorizationHeader({ subjectToken: token.accessToken });
    const downstream = await fetch(`${server.apiUrl}/hello`, { headers: { authorization: exchanged } });
    const seen = (await downstream.json()) as { sub?: string; client_id?: string };
    if (!hello.ok || !downstream.ok) {
      throw new Error(`standards: the API answered ${hello.status} / ${downstream.status}`);
    }
    log(`discovery: ${server.issuer} -> token endpoint ${metadata?.tokenEndpoint}`);
    log(`client_secret_jwt: service-jwt authenticated with a signed assertion; API answered ${hello.status}`);
    log(
      `token exchange: ${seen.client_id} called the API on behalf of ${seen.sub}; API answered ${downstream.status}\n`,
    );
  } finally {
    await service.close();
    await onBehalf.close();
  }
}

/** A browser-less user: follows redirects by hand, with a cookie jar per origin. */
class BrowserlessUser {
  readonly #jar = new Map<string, Map<string, string>>();

  async get(url: string, maxRedirects = 20): Promise<{ status: number; url: string; body: string }> {
    let current = url;
    for (let i = 0; i <= maxRedirects; i++) {
      const origin = new URL(current).origin;
      const jar = this.#jar.get(origin) ?? new Map<string, string>();
      this.#jar.set(origin, jar);
      const res = await fetch(current, {
        redirect: 'manual',
        headers: { accept: 'application/json', cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') },
      });
      for (const c of res.headers.getSetCookie()) {
        const [pair = ''] = c.split(';');
        const eq = pair.indexOf('=');
        const name = pair.slice(0, eq).trim();
        const value = pair.slice(eq + 1).trim();
        if (/max-age=0|expires=thu, 01 jan 1970/i.test(c) || value === '') jar.delete(name);
        else jar.set(name, value);
      }
      const location = res.headers.get('location');
      if (res.status >= 300 && res.status < 400 && location) {
        await res.body?.cancel();
        current = new URL(location, current).toString();
        continue;
      }
      return { status: res.status, url: current, body: await res.text() };
    }
    throw new Error(`too many redirects from ${url}`);
  }

  async post(url: string): Promise<number> {
    const origin = new URL(url).origin;
    const jar = this.#jar.get(origin) ?? new Map<string, string>();
    const res = await fetch(url, {
      method: 'POST',
      redirect: 'manual',
      headers: { accept: 'application/json', cookie: [...jar].map(([k, v]) => `${k}=${v}`).join('; ') },
    });
    await res.body?.cancel();
    return res.status;
  }
}

async function drive(
  durationMs: number,
  concurrency: number,
  call: (worker: number) => Promise<boolean>,
): Promise<{ requests: number; failed: number; errors: string[] }> {
  const until = now() + durationMs;
  let requests = 0;
  let failed = 0;
  const errors: string[] = [];
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      while (now() < until) {
        requests++;
        try {
          if (!(await call(w))) failed++;
        } catch (e) {
          failed++;
          if (errors.length < 5) errors.push(e instanceof Error ? e.message : String(e));
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    }),
  );
  return { requests, failed, errors };
}

export async function runDemo(options: DemoOptions = {}): Promise<AdapterReport[]> {
  const durationMs = options.durationMs ?? 9_000;
  const ttl = options.tokenTtlSeconds ?? 3;
  const concurrency = options.concurrency ?? 8;
  const log = options.log ?? ((line: string) => console.log(line));
  const quiet = options.quiet ?? false;
  const want = (name: string) => !options.only || options.only.includes(name);
  const server = await startAuthorizationServer({ accessTokenTtlSeconds: ttl, tokenLatencyMs: 20 });
  log(`authorization server (oidc-provider) on ${server.issuer}, protected API ${server.apiUrl}`);
  log(
    `each adapter: ${durationMs / 1000} s, ${ttl} s tokens (${Math.round(durationMs / 1000 / ttl)} expiries), every token revoked at half-time\n`,
  );
  const reports: AdapterReport[] = [];
  collecting = new DemoMetrics();
  const api401 = () => server.stats.api401;
  const tokenPosts = () => server.stats.tokenRequests;
  try {
    if (want('standards')) await showStandards(server, log);
    const common = {
      TOKEN_URL: server.tokenUrl,
      API_URL: server.apiUrl,
      API_PATH: '/hello',
      DURATION_MS: String(durationMs),
      CONCURRENCY: String(concurrency),
    };

    if (want('axios')) {
      log('axios  (client credentials, client_secret_basic) ');
      const r = await during(server, durationMs, quiet, () =>
        runAxiosSample({
          ...common,
          CLIENT_ID: 'service-basic',
          CLIENT_SECRET: 'service-basic-secret',
          CLIENT_AUTH: 'basic',
        }),
      );
      reports.push({ ...r, adapter: 'axios' });
    }

    if (want('got')) {
      log('got    (client credentials, client_secret_post) ');
      const r = await during(server, durationMs, quiet, () =>
        runGotSample({
          ...common,
          CLIENT_ID: 'service-post',
          CLIENT_SECRET: 'service-post-secret',
          CLIENT_AUTH: 'body',
        }),
      );
      reports.push({ ...r, adapter: 'got' });
    }

    if (want('fetch')) {
      log('fetch  (global fetch + withTokens, client_secret_basic) ');
      const r = await during(server, durationMs, quiet, () =>
        runFetchSample({
          ...common,
          CLIENT_ID: 'service-basic',
          CLIENT_SECRET: 'service-basic-secret',
          CLIENT_AUTH: 'basic',
        }),
      );
      reports.push({ ...r, adapter: 'fetch' });
    }

    if (want('nest')) {
      log('nest   (KeyfobModule + HttpService, client_secret_basic) ');
      const app = await startNestSample(
        {
          TOKEN_URL: server.tokenUrl,
          API_URL: server.apiUrl,
          UPSTREAM_PATH: '/hello',
          CLIENT_ID: 'service-basic',
          CLIENT_SECRET: 'service-basic-secret',
          CLIENT_AUTH: 'basic',
          PORT: '0',
        },
        { logger: false },
      );
      try {
        const tokens0 = tokenPosts();
        const a0 = api401();
        const r = await during(server, durationMs, quiet, () =>
          drive(durationMs, concurrency, async () => {
            const res = await fetch(`${app.url}/upstream`);
            await res.body?.cancel();
            return res.ok;
          }),
        );
        const s = app.stats() as { tokensRefreshed?: number };
        reports.push({
          adapter: 'nest',
          requests: r.requests,
          failed: r.failed,
          tokenRequests: tokenPosts() - tokens0,
          refreshes: s.tokensRefreshed ?? 0,
          recovered401: r.failed === 0 ? api401() - a0 : Math.max(0, api401() - a0 - r.failed),
          ...(r.errors.length ? { notes: r.errors.join('; ') } : {}),
        });
      } finally {
        await app.close();
      }
    }

    if (want('express')) {
      log('express (authorization code + PKCE login for 2 users, refresh tokens; service token route) ');
      const app = await startExpressSample({
        AUTHORIZE_URL: server.authorizeUrl,
        TOKEN_URL: server.tokenUrl,
        REVOCATION_URL: server.revocationUrl,
        CLIENT_ID: 'web-app',
        CLIENT_SECRET: 'web-app-secret',
        SERVICE_CLIENT_ID: 'service-basic',
        SERVICE_CLIENT_SECRET: 'service-basic-secret',
        API_URL: server.apiUrl,
        PORT: '0',
      });
      try {
        const tokens0 = tokenPosts();
        const refresh0 = server.stats.tokenRequestsByGrant.refresh_token ?? 0;
        const a0 = api401();
        const users = ['alice', 'bob'].map((name) => ({ name, browser: new BrowserlessUser() }));
        for (const u of users) {
          const landed = await u.browser.get(`${app.url}/login?user=${u.name}`);
          if (landed.status !== 200)
            throw new Error(`login of ${u.name} ended with HTTP ${landed.status} at ${landed.url}`);
        }
        let mixedUp = 0;
        const r = await during(server, durationMs, quiet, () =>
          drive(durationMs, concurrency, async (w) => {
            if (w % 4 === 3) {
              const res = await fetch(`${app.url}/api/hello`);
              await res.body?.cancel();
              return res.ok;
            }
            const u = users[w % 2]!;
            const res = await u.browser.get(`${app.url}/profile`, 0);
            if (res.status !== 200) return false;
            const me = JSON.parse(res.body) as { me?: { sub?: string } };
            if (me.me?.sub !== u.name) mixedUp++;
            return me.me?.sub === u.name;
          }),
        );
        for (const u of users) await u.browser.post(`${app.url}/logout`);
        const after = await users[0]!.browser.get(`${app.url}/profile`, 0);
        const loggedOut = after.status === 401 || after.status === 302;
        const failed = r.failed + (loggedOut ? 0 : 1);
        reports.push({
          adapter: 'express',
          requests: r.requests,
          failed,
          tokenRequests: tokenPosts() - tokens0,
          refreshes: (server.stats.tokenRequestsByGrant.refresh_token ?? 0) - refresh0,
          recovered401: Math.max(0, api401() - a0 - r.failed),
          ...(r.errors.length || mixedUp || !loggedOut
            ? {
                notes: [
                  ...r.errors,
                  mixedUp ? `${mixedUp} answers for the wrong user` : '',
                  loggedOut ? '' : 'logout did not end the session',
                ]
                  .filter(Boolean)
                  .join('; '),
              }
            : {}),
        });
      } finally {
        await app.close();
      }
    }
  } finally {
    await server.close();
    // One `during` per adapter, in the order the reports were pushed.
    reports.forEach((r, i) => {
      const m = collecting?.runs[i];
      if (m) r.metrics = m;
    });
    collecting?.close();
    collecting = undefined;
  }
  return reports;
}

export function formatReports(reports: AdapterReport[]): string {
  const head = ['adapter', 'requests', 'failed', 'token requests', 'refreshes', '401s recovered'];
  const rows = reports.map((r) =>
    [r.adapter, r.requests, r.failed, r.tokenRequests, r.refreshes, r.recovered401].map(String),
  );
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  const notes = reports.filter((r) => r.notes).map((r) => `  ${r.adapter}: ${r.notes}`);
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line), ...notes].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const only = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const reports = await runDemo(only.length ? { only } : {});
  console.log(`\n${formatReports(reports)}\n`);
  console.log(`${formatMetrics(reports)}\n`);
  const failed = reports.filter((r) => r.failed > 0);
  if (failed.length) {
    console.log(`FAILED: ${failed.map((r) => `${r.adapter} (${r.failed} failed requests)`).join(', ')}`);
    process.exit(1);
  }
  console.log('OK: every request succeeded across token expiries and a mass revocation.');
}

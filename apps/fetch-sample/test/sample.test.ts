import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startAuthorizationServer } from '@keyfob/authorization-server';
import { ConfigurationError } from '@keyfob/core';
import { riskCloud } from '@keyfob/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { runFetchSample } from '../src/run.js';

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

const appDir = fileURLToPath(new URL('..', import.meta.url));

function runMain(env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'src/main.ts'],
      { cwd: appDir, env: { PATH: process.env.PATH ?? '', ...env }, timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

describe('fetch-sample against the authorization server (oidc-provider)', () => {
  it('one token for every request; a mass revocation mid-run is recovered with one retry each', async () => {
    const server = await startAuthorizationServer({ accessTokenTtlSeconds: 60 });
    cleanup.push(() => server.close());
    const env = {
      TOKEN_URL: server.tokenUrl,
      CLIENT_ID: 'service-basic',
      CLIENT_SECRET: 'service-basic-secret',
      API_URL: server.apiUrl,
      API_PATH: '/hello',
    };
    const first = await runFetchSample({ ...env, REQUESTS: '30', CONCURRENCY: '5' });
    expect(first).toEqual({
      adapter: 'fetch',
      requests: 30,
      failed: 0,
      tokenRequests: 1,
      refreshes: 0,
      recovered401: 0,
    });

    // Revoke every token while requests are in flight: each 401 is retried once with a new token.
    const tokensBefore = server.stats.tokenRequests;
    const running = runFetchSample({ ...env, DURATION_MS: '4000', CONCURRENCY: '4' });
    // Once the run has its token (and requests are flowing), revoke every token.
    for (let i = 0; i < 300 && server.stats.tokenRequests === tokensBefore; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    await new Promise((r) => setTimeout(r, 200));
    server.revokeAll();
    const report = await running;
    expect(report.failed).toBe(0);
    // The run's first token, and exactly one more after the revocation (compare-and-delete + single-flight).
    expect(report.tokenRequests).toBe(2);
    expect(server.stats.tokenRequests - tokensBefore).toBe(2);
    expect(report.recovered401).toBeGreaterThanOrEqual(1);
    expect(report.recovered401).toBeLessThanOrEqual(4);
  });

  it('main prints one JSON line and exits 0; bad settings exit 2 with the ConfigurationError', async () => {
    const server = await startAuthorizationServer({ accessTokenTtlSeconds: 60 });
    cleanup.push(() => server.close());
    const ok = await runMain({
      TOKEN_URL: server.tokenUrl,
      CLIENT_ID: 'service-post',
      CLIENT_SECRET: 'service-post-secret',
      CLIENT_AUTH: 'body',
      API_URL: server.apiUrl,
      REQUESTS: '5',
    });
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout.trim())).toMatchObject({
      adapter: 'fetch',
      requests: 5,
      failed: 0,
      tokenRequests: 1,
    });

    const bad = await runMain({ TOKEN_URL: server.tokenUrl, API_URL: server.apiUrl });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('KEYFOB_CONFIGURATION');
    expect(bad.stderr).toContain('CLIENT_ID');
  });

  it('wrong client secret: every request fails with the token endpoint error, exit 1, no secret printed', async () => {
    const server = await startAuthorizationServer({ accessTokenTtlSeconds: 60 });
    cleanup.push(() => server.close());
    const res = await runMain({
      TOKEN_URL: server.tokenUrl,
      CLIENT_ID: 'service-basic',
      CLIENT_SECRET: 'not-the-secret-value',
      API_URL: server.apiUrl,
      REQUESTS: '2',
    });
    expect(res.code).toBe(1);
    expect(JSON.parse(res.stdout.trim())).toMatchObject({ requests: 2, failed: 2 });
    expect(res.stderr).toContain('TokenEndpointError');
    expect(res.stderr).not.toContain('not-the-secret-value');
  });
});

describe('fetch-sample against an emulated provider', () => {
  it('Risk Cloud: basic-only client auth', async () => {
    const server = await riskCloud({ clientId: 'rc-client', clientSecret: 'rc+secret/=' });
    cleanup.push(() => server.close());
    const report = await runFetchSample({
      TOKEN_URL: server.tokenUrl,
      CLIENT_ID: 'rc-client',
      CLIENT_SECRET: 'rc+secret/=',
      CLIENT_AUTH: 'basic-only',
      API_URL: server.apiUrl,
      API_PATH: '/v2/applications',
      REQUESTS: '6',
    });
    expect(report).toMatchObject({ requests: 6, failed: 0, tokenRequests: 1 });
  });

  it('rejects unusable settings with a ConfigurationError', async () => {
    await expect(runFetchSample({ TOKEN_URL: 'http://127.0.0.1:1/t', API_URL: 'x' })).rejects.toBeInstanceOf(
      ConfigurationError,
    );
  });
});

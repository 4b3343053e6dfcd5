import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ConfigurationError } from '@keyfob/core';
import { genericClientCredentials, passwordPlatform, riskCloud, startProtectedApi } from '@keyfob/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { runAxiosSample } from '../src/run.js';

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

describe('axios-sample against the emulated seed providers', () => {
  it('generic client-credentials API: every request authenticated with one token', async () => {
    const server = await genericClientCredentials({ clientId: 'sample', clientSecret: 'sample-secret' });
    cleanup.push(() => server.close());
    const report = await runAxiosSample({
      TOKEN_URL: server.tokenUrl,
      CLIENT_ID: 'sample',
      CLIENT_SECRET: 'sample-secret',
      SCOPE: 'read',
      API_URL: server.apiUrl,
      REQUESTS: '25',
      CONCURRENCY: '5',
    });
    expect(report).toEqual({
      adapter: 'axios',
      requests: 25,
      failed: 0,
      tokenRequests: 1,
      refreshes: 0,
      recovered401: 0,
    });
    const apiCalls = server.requests.filter((r) => r.path === '/api/hello');
    expect(apiCalls).toHaveLength(25);
    expect(apiCalls.every((r) => /^Bearer at_/.test(String(r.headers.authorization)))).toBe(true);
    expect(server.tokenRequests()[0]!.params).toEqual({ grant_type: 'client_credentials', scope: 'read' });
  });

  it('Risk Cloud: basic-only client auth at /api/v1/account/token', async () => {
    const server = await riskCloud({ clientId: 'rc-client', clientSecret: 'rc+secret/=' });
    cleanup.push(() => server.close());
    const report = await runAxiosSample({
      TOKEN_URL: server.tokenUrl,
      CLIENT_ID: 'rc-client',
      CLIENT_SECRET: 'rc+secret/=',
      CLIENT_AUTH: 'basic-only',
      API_URL: server.apiUrl,
      API_PATH: '/v2/applications',
      REQUESTS: '6',
    });
    expect(report).toMatchObject({ requests: 6, failed: 0, tokenRequests: 1 });
    expect(server.tokenRequests()[0]!.body).toBe('');
  });

  it('username/password platform: PASSWORD switches to the password grant', async () => {
    const server = await passwordPlatform({ username: 'ana@example.com', password: 'pw-long-enough' });
    cleanup.push(() => server.close());
    const report = await runAxiosSample({
      TOKEN_URL: server.tokenUrl,
      USERNAME: 'ana@example.com',
      PASSWORD: 'pw-long-enough',
      API_URL: server.apiUrl,
      API_PATH: '/records',
      REQUESTS: '4',
    });
    expect(report).toMatchObject({ requests: 4, failed: 0, tokenRequests: 1 });
    expect(server.tokenRequests()[0]!.params).toMatchObject({
      grant_type: 'password',
      username: 'ana@example.com',
    });
  });

  it('tokens revoked mid-run: the rejected requests recover with one new token', async () => {
    const server = await genericClientCredentials({ clientId: 'sample', clientSecret: 'sample-secret' });
    cleanup.push(() => server.close());
    let seen = 0;
    const api = await startProtectedApi(server.issuer, () => {
      if (++seen === 10) server.issuer.revokeAll();
      return { status: 404 };
    });
    cleanup.push(() => api.close());
    const report = await runAxiosSample({
      TOKEN_URL: server.tokenUrl,
      CLIENT_ID: 'sample',
      CLIENT_SECRET: 'sample-secret',
      API_URL: api.url,
      REQUESTS: '30',
      CONCURRENCY: '4',
    });
    expect(report.failed).toBe(0);
    expect(report.requests).toBe(30);
    // One token before the revocation, one after (an invalidated token is gone from the cache, so the
    // core reports its successor as tokenFetched, not tokenRefreshed: `refreshes` is not asserted).
    expect(report.tokenRequests).toBe(2);
    expect(report.recovered401).toBeGreaterThanOrEqual(1);
    expect(report.recovered401).toBeLessThanOrEqual(4);
    expect(report.recovered401).toBe(server.issuer.api401);
  });

  it('DURATION_MS runs for a while instead of a request count', async () => {
    const server = await genericClientCredentials({ clientId: 'sample', clientSecret: 'sample-secret' });
    cleanup.push(() => server.close());
    const report = await runAxiosSample({
      TOKEN_URL: server.tokenUrl,
      CLIENT_ID: 'sample',
      CLIENT_SECRET: 'sample-secret',
      API_URL: server.apiUrl,
      DURATION_MS: '200',
      REQUESTS: '1',
      CONCURRENCY: '2',
    });
    expect(report.failed).toBe(0);
    expect(report.requests).toBeGreaterThan(0);
    expect(server.requests.filter((r) => r.path === '/api/hello')).toHaveLength(report.requests);
  });

  it('unusable settings are ConfigurationErrors', async () => {
    await expect(runAxiosSample({ API_URL: 'http://127.0.0.1:1' })).rejects.toThrow(/TOKEN_URL/);
    await expect(
      runAxiosSample({
        TOKEN_URL: 'http://127.0.0.1:1/t',
        API_URL: 'http://127.0.0.1:1',
        CLIENT_AUTH: 'digest',
      }),
    ).rejects.toBeInstanceOf(ConfigurationError);
    await expect(
      runAxiosSample({
        TOKEN_URL: 'http://127.0.0.1:1/t',
        API_URL: 'http://127.0.0.1:1',
        CLIENT_ID: 'a',
        CLIENT_SECRET: 'b',
        REQUESTS: '0',
      }),
    ).rejects.toThrow(/REQUESTS/);
  });
});

describe('axios-sample main (tsx src/main.ts)', () => {
  it('prints one JSON line and exits 0 when every request succeeded', async () => {
    const server = await genericClientCredentials({ clientId: 'sample', clientSecret: 'sample-secret' });
    cleanup.push(() => server.close());
    const { code, stdout } = await runMain({
      TOKEN_URL: server.tokenUrl,
      CLIENT_ID: 'sample',
      CLIENT_SECRET: 'sample-secret',
      API_URL: server.apiUrl,
      REQUESTS: '3',
    });
    expect(code).toBe(0);
    const lines = stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toEqual({
      adapter: 'axios',
      requests: 3,
      failed: 0,
      tokenRequests: 1,
      refreshes: 0,
      recovered401: 0,
    });
  });

  it('exits 1 when requests fail and 2 on bad settings, without printing the secret', async () => {
    const server = await genericClientCredentials({ clientId: 'sample', clientSecret: 'sample-secret' });
    cleanup.push(() => server.close());
    const wrong = await runMain({
      TOKEN_URL: server.tokenUrl,
      CLIENT_ID: 'sample',
      CLIENT_SECRET: 'not-the-secret',
      API_URL: server.apiUrl,
      REQUESTS: '2',
    });
    expect(wrong.code).toBe(1);
    expect(JSON.parse(wrong.stdout)).toMatchObject({ requests: 2, failed: 2, tokenRequests: 0 });
    expect(wrong.stderr).toContain('TokenEndpointError');
    expect(`${wrong.stdout}${wrong.stderr}`).not.toContain('not-the-secret');
    expect(server.requests.filter((r) => r.path.startsWith('/api/'))).toHaveLength(0);

    const bad = await runMain({ API_URL: server.apiUrl });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('TOKEN_URL');
    expect(bad.stdout).toBe('');
  });
});

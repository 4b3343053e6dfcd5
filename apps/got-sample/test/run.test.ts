import { genericClientCredentials, passwordPlatform, riskCloud } from '@keyfob/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { runGotSample } from '../src/run.js';

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

describe('runGotSample against the emulated seed providers', () => {
  it('Risk Cloud: basic-only client auth, one token for every request', async () => {
    const server = await riskCloud({ clientId: 'rc-client', clientSecret: 'rc+secret/=' });
    cleanup.push(() => server.close());
    const report = await runGotSample({
      TOKEN_URL: server.tokenUrl,
      CLIENT_ID: 'rc-client',
      CLIENT_SECRET: 'rc+secret/=',
      CLIENT_AUTH: 'basic-only',
      API_URL: server.apiUrl,
      API_PATH: '/v2/applications',
      REQUESTS: '25',
      CONCURRENCY: '5',
    });
    expect(report).toEqual({
      adapter: 'got',
      requests: 25,
      failed: 0,
      tokenRequests: 1,
      refreshes: 0,
      recovered401: 0,
    });
    expect(server.issuer.apiRequests).toBe(25);
    expect(server.tokenRequests()[0]!.body).toBe('');
  });

  it('generic client-credentials API with a scope; defaults to 10 requests', async () => {
    const server = await genericClientCredentials({ clientId: 'cc', clientSecret: 'cc-secret' });
    cleanup.push(() => server.close());
    const report = await runGotSample({
      TOKEN_URL: server.tokenUrl,
      CLIENT_ID: 'cc',
      CLIENT_SECRET: 'cc-secret',
      SCOPE: 'risk.read',
      API_URL: server.apiUrl,
    });
    expect(report).toMatchObject({ requests: 10, failed: 0, tokenRequests: 1 });
    expect(server.tokenRequests()[0]!.params.scope).toBe('risk.read');
    expect(server.requests.filter((r) => r.path === '/api/hello')).toHaveLength(10);
  });

  it('username/password platform switches to the password grant', async () => {
    const server = await passwordPlatform({ username: 'ann', password: 'pw-123456' });
    cleanup.push(() => server.close());
    const report = await runGotSample({
      TOKEN_URL: server.tokenUrl,
      USERNAME: 'ann',
      PASSWORD: 'pw-123456',
      API_URL: server.apiUrl,
      REQUESTS: '3',
    });
    expect(report).toMatchObject({ requests: 3, failed: 0, tokenRequests: 1 });
    expect(server.tokenRequests()[0]!.params).toMatchObject({ username: 'ann', password: 'pw-123456' });
  });

  it('counts requests recovered from a 401 and failures', async () => {
    const server = await genericClientCredentials({ clientId: 'cc', clientSecret: 'cc-secret' });
    cleanup.push(() => server.close());
    const env = {
      TOKEN_URL: server.tokenUrl,
      CLIENT_ID: 'cc',
      CLIENT_SECRET: 'cc-secret',
      API_URL: server.apiUrl,
    };
    // A token the API no longer knows: the token endpoint hands out one it revokes at once, then good ones.
    let first = true;
    server.override = () => {
      if (!first) return undefined;
      first = false;
      return { body: { access_token: 'at_already_revoked', token_type: 'Bearer', expires_in: 3600 } };
    };
    const report = await runGotSample({ ...env, REQUESTS: '1', CONCURRENCY: '1' });
    // (core reports the token fetched after invalidate() as tokenFetched, so `refreshes` is not pinned here.)
    expect(report).toMatchObject({
      adapter: 'got',
      requests: 1,
      failed: 0,
      tokenRequests: 2,
      recovered401: 1,
    });

    const lines: string[] = [];
    const bad = await runGotSample(
      { ...env, CLIENT_SECRET: 'wrong-secret', REQUESTS: '2', CONCURRENCY: '1' },
      (l) => lines.push(l),
    );
    expect(bad).toMatchObject({ requests: 2, failed: 2 });
    expect(lines.join('\n')).toContain('KEYFOB_TOKEN_ENDPOINT');
    expect(lines.join('\n')).not.toContain('wrong-secret');
  });

  it('DURATION_MS bounds the run by time instead of count; missing settings are a ConfigurationError', async () => {
    const server = await genericClientCredentials({ clientId: 'cc', clientSecret: 'cc-secret' });
    cleanup.push(() => server.close());
    const report = await runGotSample({
      TOKEN_URL: server.tokenUrl,
      CLIENT_ID: 'cc',
      CLIENT_SECRET: 'cc-secret',
      API_URL: server.apiUrl,
      DURATION_MS: '200',
      CONCURRENCY: '2',
    });
    expect(report.requests).toBeGreaterThan(0);
    expect(report.failed).toBe(0);
    await expect(runGotSample({ API_URL: server.apiUrl })).rejects.toThrow(/TOKEN_URL is required/);
    await expect(
      runGotSample({
        ...report,
        TOKEN_URL: server.tokenUrl,
        API_URL: server.apiUrl,
        CLIENT_ID: 'x',
        CLIENT_SECRET: 'y',
        CLIENT_AUTH: 'digest',
      } as never),
    ).rejects.toThrow(/CLIENT_AUTH/);
  });
});

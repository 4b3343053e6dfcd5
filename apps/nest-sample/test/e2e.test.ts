import { ConfigurationError, ErrorCode } from '@keyfob/core';
import { genericClientCredentials, type ProviderServer, passwordPlatform, riskCloud } from '@keyfob/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { type NestSample, startNestSample } from '../src/app.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

async function serve<T extends ProviderServer>(server: Promise<T>): Promise<T> {
  const s = await server;
  cleanup.push(() => s.close());
  return s;
}

async function start(env: Record<string, string>): Promise<NestSample> {
  const sample = await startNestSample(env, { logger: false });
  cleanup.push(() => sample.close());
  return sample;
}

async function getJson(url: string): Promise<{ status: number; body: any }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.json() };
}

describe('nest-sample against @keyfob/testing providers', () => {
  it('generic client credentials: GET /upstream returns the API JSON, one token for many calls, renewed after revocation', async () => {
    const p = await serve(genericClientCredentials({ clientId: 'sample', clientSecret: 'sample-secret-1' }));
    const sample = await start({
      TOKEN_URL: p.tokenUrl,
      CLIENT_ID: 'sample',
      CLIENT_SECRET: 'sample-secret-1',
      SCOPE: 'read',
      API_URL: p.apiUrl,
      UPSTREAM_PATH: '/reports',
    });
    expect(sample.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    for (let i = 0; i < 3; i++) {
      const r = await getJson(`${sample.url}/upstream`);
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ ok: true, path: '/api/reports', scope: 'read' });
    }
    expect(p.issuer.tokenRequests).toBe(1);
    expect(sample.stats()).toMatchObject({ requests: 3, upstreamOk: 3, upstreamFailed: 0, tokensFetched: 1 });

    p.issuer.revokeAll();
    const after = await getJson(`${sample.url}/upstream`);
    expect(after.status).toBe(200);
    expect(p.issuer.tokenRequests).toBe(2);
    const stats = sample.stats();
    expect(stats).toMatchObject({ requests: 4, upstreamOk: 4, tokensInvalidated: 1 });
    expect(stats.tokensFetched + stats.tokensRefreshed).toBe(2);
  });

  it('Risk Cloud: basic-only client auth', async () => {
    const p = await serve(riskCloud({ clientId: 'rc-client', clientSecret: 'rc-secret' }));
    const sample = await start({
      TOKEN_URL: p.tokenUrl,
      CLIENT_ID: 'rc-client',
      CLIENT_SECRET: 'rc-secret',
      CLIENT_AUTH: 'basic-only',
      API_URL: p.apiUrl,
      UPSTREAM_PATH: '/v1/records',
    });
    const r = await getJson(`${sample.url}/upstream`);
    expect(r).toMatchObject({
      status: 200,
      body: { ok: true, path: '/api/v1/records', scope: 'read write' },
    });
    expect(p.tokenRequests()[0]!.body).toBe('');
  });

  it('password platform: USERNAME and PASSWORD select the password grant', async () => {
    const p = await serve(passwordPlatform({ username: 'ada', password: 'pa55-word' }));
    const sample = await start({
      TOKEN_URL: p.tokenUrl,
      USERNAME: 'ada',
      PASSWORD: 'pa55-word',
      API_URL: p.apiUrl,
    });
    const r = await getJson(`${sample.url}/upstream`);
    expect(r).toMatchObject({ status: 200, body: { ok: true, subject: 'ada' } });
    expect(p.tokenRequests()[0]!.params).toMatchObject({ grant_type: 'password', username: 'ada' });
  });

  it('wrong credentials: 502 with the token endpoint error code, no secret in the answer', async () => {
    const p = await serve(genericClientCredentials({ clientId: 'sample', clientSecret: 'right-secret' }));
    const sample = await start({
      TOKEN_URL: p.tokenUrl,
      CLIENT_ID: 'sample',
      CLIENT_SECRET: 'wrong-secret-xyz',
      API_URL: p.apiUrl,
    });
    const res = await fetch(`${sample.url}/upstream`);
    const text = await res.text();
    expect(res.status).toBe(502);
    expect(JSON.parse(text)).toMatchObject({ error: ErrorCode.TokenEndpoint });
    expect(text).not.toContain('wrong-secret-xyz');
    expect(sample.stats()).toMatchObject({ requests: 1, upstreamFailed: 1 });
    expect(p.requests.filter((r) => r.path.startsWith('/api/'))).toHaveLength(0);
  });

  it('missing configuration rejects before listening, naming the variable', async () => {
    await expect(startNestSample({ CLIENT_ID: 'x', CLIENT_SECRET: 'y' }, { logger: false })).rejects.toThrow(
      /API_URL/,
    );
    await expect(startNestSample({ API_URL: 'http://127.0.0.1:9/api' }, { logger: false })).rejects.toThrow(
      /CLIENT_ID and CLIENT_SECRET/,
    );
    const e = await startNestSample(
      { API_URL: 'http://127.0.0.1:9/api', CLIENT_ID: 'x', CLIENT_SECRET: 'y' },
      { logger: false },
    ).catch((err: unknown) => err);
    expect(e).toBeInstanceOf(ConfigurationError);
    expect((e as Error).message).toMatch(/tokenUrl is required/);
  });

  it('close() stops the server', async () => {
    const p = await serve(genericClientCredentials({ clientId: 'sample', clientSecret: 's' }));
    const sample = await startNestSample(
      { TOKEN_URL: p.tokenUrl, CLIENT_ID: 'sample', CLIENT_SECRET: 's', API_URL: p.apiUrl },
      { logger: false },
    );
    expect((await fetch(`${sample.url}/health`)).status).toBe(200);
    await sample.close();
    await expect(fetch(`${sample.url}/health`)).rejects.toThrow();
  });
});

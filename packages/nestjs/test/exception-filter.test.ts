import 'reflect-metadata';
import { inspect } from 'node:util';
import { ConfigurationError, clientCredentials, ErrorCode, TokenEndpointError } from '@keyfob/core';
import { KeyfobExceptionFilter, KeyfobModule, keyfobErrorResponse } from '@keyfob/nestjs';
import { genericClientCredentials, type ProviderServer, startServer } from '@keyfob/testing';
import { Controller, Get, HttpException, type INestApplication, Inject, Module } from '@nestjs/common';
import { APP_FILTER, HttpAdapterHost, NestFactory } from '@nestjs/core';
import { afterEach, describe, expect, it } from 'vitest';
import { CLIENT_ID, CLIENT_SECRET, UpstreamService } from './helpers.js';

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

@Controller()
class UpstreamController {
  constructor(@Inject(UpstreamService) private readonly upstream: UpstreamService) {}
  @Get('upstream')
  get() {
    return this.upstream.get('/things');
  }
  @Get('teapot')
  teapot() {
    throw new HttpException('short and stout', 418);
  }
  @Get('bug')
  bug() {
    throw new Error('a bug of the app');
  }
}

async function app(tokenUrl: string, apiUrl: string, how: 'APP_FILTER' | 'useGlobalFilters' | 'none') {
  @Module({
    imports: [
      KeyfobModule.forRoot({
        tokenUrl,
        grant: clientCredentials({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET }),
        http: { baseURL: apiUrl },
        retries: 0,
      }),
    ],
    controllers: [UpstreamController],
    providers: [
      UpstreamService,
      ...(how === 'APP_FILTER' ? [{ provide: APP_FILTER, useClass: KeyfobExceptionFilter }] : []),
    ],
  })
  class AppModule {}
  const nest: INestApplication = await NestFactory.create(AppModule, { logger: false, abortOnError: false });
  cleanup.push(() => nest.close());
  if (how === 'useGlobalFilters')
    nest.useGlobalFilters(new KeyfobExceptionFilter(nest.get(HttpAdapterHost).httpAdapter));
  await nest.listen(0, '127.0.0.1');
  return (await nest.getUrl()).replace('[::1]', '127.0.0.1');
}

async function get(url: string) {
  const res = await fetch(url);
  const text = await res.text();
  return {
    status: res.status,
    headers: res.headers,
    text,
    body: JSON.parse(text) as Record<string, unknown>,
  };
}

async function rejectingProvider(): Promise<ProviderServer> {
  const p = await genericClientCredentials({
    clientId: CLIENT_ID,
    clientSecret: 'not-the-configured-secret',
  });
  cleanup.push(() => p.close());
  return p;
}

describe('KeyfobExceptionFilter', () => {
  it("without it, a token failure is Nest's 500 (what the filter is for)", async () => {
    const p = await rejectingProvider();
    const url = await app(p.tokenUrl, p.apiUrl, 'none');
    const r = await get(`${url}/upstream`);
    expect(r.status).toBe(500);
  });

  for (const how of ['APP_FILTER', 'useGlobalFilters'] as const) {
    it(`${how}: the token endpoint refusing this service's credentials is 502 with code and hint, no secret, no stack`, async () => {
      const p = await rejectingProvider();
      const url = await app(p.tokenUrl, p.apiUrl, how);
      const r = await get(`${url}/upstream`);
      expect(r.status).toBe(502);
      expect(r.body).toMatchObject({
        statusCode: 502,
        error: 'Bad Gateway',
        code: ErrorCode.TokenEndpoint,
        upstreamStatus: 401,
        message: 'The authorization server did not issue a token.',
      });
      expect(String(r.body.hint)).toContain('client id and client secret');
      expect(r.headers.get('cache-control')).toBe('no-store');
      expect(r.text).not.toContain(CLIENT_SECRET);
      expect(r.text).not.toMatch(/at .*\.ts:\d+/);
      expect(r.text).not.toContain('stack');
      expect(p.issuer.apiRequests).toBe(0);
    });
  }

  it('an unreachable token endpoint is 503', async () => {
    const down = await startServer(() => ({}));
    const tokenUrl = `${down.url}/token`;
    await down.close();
    const api = await startServer(() => ({ body: { ok: true } }));
    cleanup.push(() => api.close());
    const url = await app(tokenUrl, api.url, 'APP_FILTER');
    const r = await get(`${url}/upstream`);
    expect(r.status).toBe(503);
    expect(r.body).toMatchObject({ statusCode: 503, code: ErrorCode.TokenEndpointNetwork });
    expect(api.requests).toHaveLength(0);
  });

  it('a 429 with Retry-After from the token endpoint is 503 with Retry-After', async () => {
    const limited = await startServer(() => ({
      status: 429,
      headers: { 'retry-after': '120' },
      body: { error: 'slow_down' },
    }));
    cleanup.push(() => limited.close());
    const url = await app(`${limited.url}/token`, `${limited.url}/api`, 'APP_FILTER');
    const r = await get(`${url}/upstream`);
    expect(r.status).toBe(503);
    expect(r.body).toMatchObject({ code: ErrorCode.TokenEndpoint, upstreamStatus: 429 });
    expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
  });

  it('leaves every other exception to Nest (HttpException as thrown, a bug as 500)', async () => {
    const p = await genericClientCredentials({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET });
    cleanup.push(() => p.close());
    const url = await app(p.tokenUrl, p.apiUrl, 'APP_FILTER');
    expect((await get(`${url}/upstream`)).status).toBe(200);
    const teapot = await get(`${url}/teapot`);
    expect(teapot.status).toBe(418);
    expect(teapot.body).toMatchObject({ statusCode: 418, message: 'short and stout' });
    const bug = await get(`${url}/bug`);
    expect(bug.status).toBe(500);
    expect(bug.body).toEqual({ statusCode: 500, message: 'Internal server error' });
  });
});

describe('keyfobErrorResponse', () => {
  it('maps codes to 502 / 503 / 500 and never carries the cause', () => {
    const secretCause = new Error(`Basic ${Buffer.from(`id:${CLIENT_SECRET}`).toString('base64')}`);
    const cases = [
      [new TokenEndpointError('403', { status: 403, cause: secretCause }), 502],
      [new TokenEndpointError('503', { status: 503 }), 503],
      [new TokenEndpointError('down', { code: ErrorCode.TokenEndpointTimeout }), 503],
      [new ConfigurationError('bad options', { hint: 'internal detail' }), 500],
    ] as const;
    for (const [error, status] of cases) {
      const answer = keyfobErrorResponse(error);
      expect(answer.status).toBe(status);
      expect(answer.body.code).toBe(error.code);
      const printed = JSON.stringify(answer) + inspect(answer, { depth: 5 });
      expect(printed).not.toContain(CLIENT_SECRET);
      expect(printed).not.toContain(secretCause.message);
    }
    expect(
      keyfobErrorResponse(new ConfigurationError('x', { hint: 'internal detail' })).body.hint,
    ).toBeUndefined();
  });
});

import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { customGrant } from '@keyfob/core';
import { getKeyfobHttpToken, KeyfobModule } from '@keyfob/nestjs';
import { leakScan, type Reply, rejection, startServer, type TestServer } from '@keyfob/testing';
import type { HttpService } from '@nestjs/axios';
import { Test, type TestingModule } from '@nestjs/testing';
import { AxiosError } from 'axios';
import { firstValueFrom } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';

const cleanup: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

/** A Nest app with a keyfob HttpService on `api`, and every token its manager was issued. */
async function app(api: TestServer): Promise<{ http: HttpService; issued: string[] }> {
  const issued: string[] = [];
  const moduleRef: TestingModule = await Test.createTestingModule({
    imports: [
      KeyfobModule.forRoot({
        grant: customGrant(async () => {
          const t = `tok_${randomBytes(12).toString('hex')}`;
          issued.push(t);
          return { access_token: t, expires_in: 3600 };
        }),
        http: { baseURL: api.url },
      }),
    ],
  }).compile();
  await moduleRef.init();
  cleanup.push(() => moduleRef.close());
  return { http: moduleRef.get<HttpService>(getKeyfobHttpToken()), issued };
}

async function api(): Promise<TestServer> {
  const s = await startServer((req): Reply => {
    if (req.path === '/500') return { status: 500, body: { error: 'boom' } };
    if (req.path === '/401') return { status: 401 };
    if (req.path === '/not-json')
      return { headers: { 'content-type': 'application/json' }, body: '{"broken": ' };
    return { body: { ok: true } };
  });
  cleanup.push(() => s.close());
  return s;
}

describe('KeyfobModule HttpService: no token in its errors', () => {
  it('HTTP error with a stream response, a 401 on both attempts, a JSON parse failure', async () => {
    const server = await api();
    const { http, issued } = await app(server);
    const stream = await rejection(firstValueFrom(http.get('/500', { responseType: 'stream' })));
    expect((stream as AxiosError).response?.status).toBe(500);
    expect(server.requests[0]!.headers.authorization).toBe(`Bearer ${issued[0]}`);
    expect(leakScan(stream, issued)).toEqual([]);

    const denied = await rejection(firstValueFrom(http.get('/401')));
    expect((denied as AxiosError).response?.status).toBe(401);
    expect(issued).toHaveLength(2);
    expect(leakScan(denied, issued)).toEqual([]);

    const parse = await rejection(
      firstValueFrom(
        http.get('/not-json', { responseType: 'json', transitional: { silentJSONParsing: false } }),
      ),
    );
    expect((parse as AxiosError).code).toBe(AxiosError.ERR_BAD_RESPONSE);
    expect(leakScan(parse, issued)).toEqual([]);
  });

  it('a response config copied to another origin carries no token', async () => {
    const server = await api();
    const elsewhere = await api();
    const { http, issued } = await app(server);
    const res = await firstValueFrom(http.get('/ok'));
    // HttpService aborts a finished request's signal when it unsubscribes: leave it out of the copy.
    const { signal: _s, cancelToken: _c, ...copy } = res.config;
    await firstValueFrom(http.request({ ...copy, baseURL: elsewhere.url, url: '/copied' }));
    expect(server.requests[0]!.headers.authorization).toBe(`Bearer ${issued[0]}`);
    expect(elsewhere.requests[0]!.headers.authorization).toBeUndefined();
    expect(leakScan(res.config, issued)).toEqual([]);
  });
});

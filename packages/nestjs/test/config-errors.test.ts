import 'reflect-metadata';
import { ConfigurationError, clientCredentials, ErrorCode, type TokenManagerOptions } from '@keyfob/core';
import { getKeyfobHttpToken, KeyfobModule, type KeyfobModuleOptions } from '@keyfob/nestjs';
import type { ProviderServer } from '@keyfob/testing';
import type { HttpService } from '@nestjs/axios';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import { firstValueFrom } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_ID, CLIENT_SECRET, provider, UpstreamService } from './helpers.js';

let p: ProviderServer;
beforeAll(async () => {
  p = await provider();
});
afterAll(async () => {
  await p.close();
});

async function bootstrapError(imports: any[], providers: any[] = []): Promise<unknown> {
  try {
    const m = await Test.createTestingModule({ imports, providers }).compile();
    await m.close();
  } catch (e) {
    return e;
  }
  throw new Error('bootstrap succeeded');
}

function expectConfigError(e: unknown, pattern: RegExp) {
  expect(e).toBeInstanceOf(ConfigurationError);
  const err = e as ConfigurationError;
  expect(err.code).toBe(ErrorCode.Configuration);
  expect(err.message).toMatch(pattern);
  expect(err.message).not.toContain(CLIENT_SECRET);
  expect(JSON.stringify(err)).not.toContain(CLIENT_SECRET);
}

const grant = () => clientCredentials({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET });

describe('bad configuration fails the bootstrap, naming the option', () => {
  it('forRootAsync factory returning no grant', async () => {
    const e = await bootstrapError([
      KeyfobModule.forRootAsync({
        useFactory: () => ({ tokenUrl: p.tokenUrl }) as unknown as KeyfobModuleOptions,
      }),
    ]);
    expectConfigError(e, /grant is required/);
  });

  it('forRootAsync factory returning nothing', async () => {
    const e = await bootstrapError([KeyfobModule.forRootAsync({ useFactory: async () => undefined as any })]);
    expectConfigError(e, /options are required/);
  });

  it('forRoot without tokenUrl for client credentials', async () => {
    const e = await bootstrapError([KeyfobModule.forRoot({ grant: grant() })]);
    expectConfigError(e, /tokenUrl is required/);
  });

  it('forRoot with a plain-http tokenUrl on a public host', async () => {
    const e = await bootstrapError([
      KeyfobModule.forRoot({ tokenUrl: 'http://auth.example.com/token', grant: grant() }),
    ]);
    expectConfigError(e, /tokenUrl .* is not https/);
  });

  it('http without baseURL or origins', async () => {
    const e = await bootstrapError([
      KeyfobModule.forRoot({ tokenUrl: p.tokenUrl, grant: grant(), http: { timeout: 1_000 } }),
    ]);
    expectConfigError(e, /http\.baseURL or http\.origins is required/);
  });

  it('a named manager says which one is wrong', async () => {
    const e = await bootstrapError([
      KeyfobModule.forRoot({
        name: 'good',
        tokenUrl: p.tokenUrl,
        grant: grant(),
        http: { baseURL: p.apiUrl },
      }),
      KeyfobModule.forRootAsync({
        name: 'billing',
        useFactory: () => ({ grant: grant(), http: { baseURL: p.apiUrl } }) as TokenManagerOptions,
      }),
    ]);
    expectConfigError(e, /KeyfobModule "billing": .*tokenUrl is required/);
  });

  it('name returned by the factory instead of given to forRootAsync', async () => {
    const e = await bootstrapError([
      KeyfobModule.forRootAsync({
        useFactory: () => ({ name: 'other', tokenUrl: p.tokenUrl, grant: grant() }) as KeyfobModuleOptions,
      }),
    ]);
    expectConfigError(e, /name must be passed to forRootAsync/);
  });

  it('an empty name is rejected when the module is declared', () => {
    expect(() => KeyfobModule.forRoot({ name: ' ', tokenUrl: p.tokenUrl, grant: grant() })).toThrow(
      ConfigurationError,
    );
    expect(() => KeyfobModule.forRootAsync({ name: '', useFactory: () => ({ grant: grant() }) })).toThrow(
      /name must be/,
    );
  });

  it('NestFactory.create (abortOnError: false) rejects with the ConfigurationError', async () => {
    @Module({ imports: [KeyfobModule.forRootAsync({ useFactory: () => ({}) as KeyfobModuleOptions })] })
    class AppModule {}
    const err = await NestFactory.create(AppModule, { logger: false, abortOnError: false }).then(
      async (app) => {
        await app.close();
        return undefined;
      },
      (e: unknown) => e,
    );
    expectConfigError(err, /grant is required/);
  });

  it('injecting the HttpService of a manager configured without http fails the call, naming the option', async () => {
    const m = await Test.createTestingModule({
      imports: [KeyfobModule.forRoot({ tokenUrl: p.tokenUrl, grant: grant() })],
      providers: [UpstreamService],
    }).compile();
    try {
      const http = m.get<HttpService>(getKeyfobHttpToken());
      const e = await firstValueFrom(http.get(`${p.apiUrl}/x`)).then(
        () => undefined,
        (err: unknown) => err,
      );
      expectConfigError(e, /http is not configured/);
      expect(() => http.axiosRef).toThrow(/add http: \{ baseURL \}/);
      expect(p.requests.filter((r) => r.path.startsWith('/api/'))).toHaveLength(0);
    } finally {
      await m.close();
    }
  });
});

import 'reflect-metadata';
import { clientCredentials, type TokenManager } from '@keyfob/core';
import { InjectKeyfobHttp, InjectTokenManager, KeyfobModule } from '@keyfob/nestjs';
import { genericClientCredentials, type ProviderServer, riskCloud } from '@keyfob/testing';
import type { HttpService } from '@nestjs/axios';
import { Injectable, Module } from '@nestjs/common';
import { ConfigModule, ConfigService } from '@nestjs/config';
import { NestFactory } from '@nestjs/core';
import { firstValueFrom } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

async function serve<T extends ProviderServer>(p: Promise<T>): Promise<T> {
  const s = await p;
  cleanup.push(() => s.close());
  return s;
}

@Injectable()
class Sync {
  constructor(
    @InjectKeyfobHttp('billing') readonly billing: HttpService,
    @InjectKeyfobHttp('risk') readonly risk: HttpService,
    @InjectTokenManager('risk') readonly riskTokens: TokenManager,
  ) {}
}

/** The README's named-managers example, with the providers on 127.0.0.1 and the values in ConfigModule. */
function appModule(
  billing: ProviderServer,
  riskVars: Record<string, string>,
  importConfig: boolean,
  globalConfig = false,
) {
  @Module({
    imports: [
      ConfigModule.forRoot({ ignoreEnvFile: true, isGlobal: globalConfig, load: [() => riskVars] }),
      KeyfobModule.forRoot({
        name: 'billing',
        tokenUrl: billing.tokenUrl,
        grant: clientCredentials({ clientId: 'billing', clientSecret: 'billing-secret' }),
        http: { baseURL: billing.apiUrl },
      }),
      KeyfobModule.forRootAsync({
        name: 'risk',
        ...(importConfig ? { imports: [ConfigModule] } : {}),
        inject: [ConfigService],
        useFactory: (config: ConfigService) => ({
          tokenUrl: config.getOrThrow<string>('RISK_TOKEN_URL'),
          grant: clientCredentials({
            clientId: config.getOrThrow<string>('RISK_CLIENT_ID'),
            clientSecret: config.getOrThrow<string>('RISK_CLIENT_SECRET'),
            clientAuth: 'basic-only',
          }),
          http: { baseURL: config.getOrThrow<string>('RISK_API_URL') },
        }),
      }),
    ],
    providers: [Sync],
  })
  class AppModule {}
  return AppModule;
}

/** The billing and risk providers on 127.0.0.1, and the risk manager's configuration values. */
async function providers() {
  const billing = await serve(
    genericClientCredentials({ clientId: 'billing', clientSecret: 'billing-secret' }),
  );
  const risk = await serve(riskCloud({ clientId: 'risk', clientSecret: 'risk-secret' }));
  const vars = {
    RISK_TOKEN_URL: risk.tokenUrl,
    RISK_CLIENT_ID: 'risk',
    RISK_CLIENT_SECRET: 'risk-secret',
    RISK_API_URL: risk.apiUrl,
  };
  return { billing, risk, vars };
}

describe('README: forRootAsync with ConfigModule, named managers', () => {
  it('named managers from ConfigService (imports: [ConfigModule]): each API gets its own token', async () => {
    const { billing, risk, vars } = await providers();
    const app = await NestFactory.createApplicationContext(appModule(billing, vars, true), {
      logger: false,
      abortOnError: false,
    });
    cleanup.push(() => app.close());
    const sync = app.get(Sync);
    const [b, r] = await Promise.all([
      firstValueFrom(sync.billing.get('/invoices')),
      firstValueFrom(sync.risk.get('/records')),
    ]);
    expect(b.data).toMatchObject({ ok: true, path: '/api/invoices' });
    expect(r.data).toMatchObject({ ok: true, path: '/api/records' });
    expect(billing.issuer.tokenRequests).toBe(1);
    expect(risk.issuer.tokenRequests).toBe(1);
    expect((await sync.riskTokens.getToken()).scope).toBe('read write');
  });

  it('ConfigModule.forRoot({ isGlobal: true }): the factory gets ConfigService without imports', async () => {
    const { billing, vars } = await providers();
    const app = await NestFactory.createApplicationContext(appModule(billing, vars, false, true), {
      logger: false,
      abortOnError: false,
    });
    cleanup.push(() => app.close());
    const r = await firstValueFrom(app.get(Sync).risk.get('/records'));
    expect(r.data).toMatchObject({ ok: true, path: '/api/records' });
  });

  it('without imports: [ConfigModule] a non-global ConfigModule is not visible to the factory (the README names the import)', async () => {
    const billing = await serve(
      genericClientCredentials({ clientId: 'billing', clientSecret: 'billing-secret' }),
    );
    const err = await NestFactory.createApplicationContext(appModule(billing, {}, false), {
      logger: false,
      abortOnError: false,
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(String(err)).toContain("Nest can't resolve dependencies");
    expect(String(err)).toContain('ConfigService');
  });
});

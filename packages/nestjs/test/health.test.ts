import 'reflect-metadata';
import type { TokenManager } from '@keyfob/core';
import { getTokenManagerToken, KeyfobHealthIndicator, KeyfobModule } from '@keyfob/nestjs';
import type { ProviderServer } from '@keyfob/testing';
import { Controller, Get, type INestApplication, Inject, Module } from '@nestjs/common';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { Test } from '@nestjs/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { optionsFor, provider } from './helpers.js';

@Controller('health')
class HealthController {
  constructor(
    @Inject(HealthCheckService) private readonly health: HealthCheckService,
    @Inject(KeyfobHealthIndicator) private readonly keyfob: KeyfobHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    return this.health.check([() => this.keyfob.isHealthy('keyfob', { names: ['default', 'billing'] })]);
  }
}

let server: ProviderServer;
let app: INestApplication | undefined;

beforeEach(async () => {
  server = await provider();
});

afterEach(async () => {
  await app?.close();
  app = undefined;
  await server.close();
});

async function start(): Promise<string> {
  @Module({
    imports: [
      TerminusModule.forRoot({ logger: false }),
      KeyfobModule.forRoot(optionsFor(server)),
      KeyfobModule.forRoot({ ...optionsFor(server, 'nest-client', 'not-the-secret-123'), name: 'billing' }),
    ],
    controllers: [HealthController],
    providers: [KeyfobHealthIndicator],
  })
  class AppModule {}
  const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
  app = moduleRef.createNestApplication({ logger: false });
  await app.listen(0, '127.0.0.1');
  return `${await app.getUrl()}/health`.replace('[::1]', '127.0.0.1');
}

async function probe(url: string): Promise<{ status: number; body: any }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.json() };
}

describe('KeyfobHealthIndicator with @nestjs/terminus', () => {
  it('reports each named manager from its state; a probe sends no token request', async () => {
    const url = await start();
    const def = app!.get<TokenManager>(getTokenManagerToken());
    const billing = app!.get<TokenManager>(getTokenManagerToken('billing'));

    // Nothing requested yet: up, no history.
    let r = await probe(url);
    expect(r.status).toBe(200);
    expect(r.body.details.keyfob.managers.default).toMatchObject({
      status: 'up',
      lastSuccessAt: null,
      endpointReachable: null,
    });

    await def.getToken();
    await billing.getToken().catch(() => {});
    const tokenRequests = server.issuer.tokenRequests;
    for (let i = 0; i < 3; i++) r = await probe(url);
    expect(server.issuer.tokenRequests).toBe(tokenRequests);

    expect(r.status).toBe(503);
    expect(r.body.status).toBe('error');
    const { managers } = r.body.details.keyfob;
    expect(managers.default).toMatchObject({ status: 'up', failingSince: null, endpointReachable: true });
    expect(Date.parse(managers.default.lastSuccessAt)).not.toBeNaN();
    expect(managers.billing).toMatchObject({
      status: 'down',
      lastSuccessAt: null,
      consecutiveFailures: 1,
      endpointReachable: true,
      lastError: 'KEYFOB_TOKEN_ENDPOINT',
    });
    expect(Date.parse(managers.billing.failingSince)).not.toBeNaN();
    expect(JSON.stringify(r.body)).not.toContain('not-the-secret-123');
  });

  it('downAfterMs keeps a manager up while it has been failing for less than that', async () => {
    await start();
    const billing = app!.get<TokenManager>(getTokenManagerToken('billing'));
    await billing.getToken().catch(() => {});
    const indicator = app!.get(KeyfobHealthIndicator);
    expect(indicator.isHealthy('k', { names: ['billing'], downAfterMs: 3_600_000 }).k!.status).toBe('up');
    expect(indicator.isHealthy('k', { names: ['billing'] }).k!.status).toBe('down');
  });
});

import 'reflect-metadata';
import { inspect } from 'node:util';
import { clientCredentials, TokenManager } from '@keyfob/core';
import {
  getKeyfobHttpToken,
  getTokenManagerToken,
  KeyfobModule,
  type KeyfobModuleOptions,
  type KeyfobOptionsFactory,
} from '@keyfob/nestjs';
import type { ProviderServer } from '@keyfob/testing';
import { HttpModule, HttpService } from '@nestjs/axios';
import { Inject, Injectable, Module } from '@nestjs/common';
import { ConfigModule, ConfigService } from '@nestjs/config';
import { Test, type TestingModule } from '@nestjs/testing';
import { firstValueFrom } from 'rxjs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  apiTokens,
  CLIENT_ID,
  CLIENT_SECRET,
  optionsFor,
  provider,
  RecordingLogger,
  TwoApisService,
  UpstreamService,
} from './helpers.js';

let servers: ProviderServer[] = [];
let modules: TestingModule[] = [];

async function compile(imports: any[], providers: any[] = [UpstreamService], logger?: RecordingLogger) {
  const builder = Test.createTestingModule({ imports, providers });
  if (logger) builder.setLogger(logger);
  const moduleRef = await builder.compile();
  modules.push(moduleRef);
  await moduleRef.init();
  return moduleRef;
}

beforeEach(async () => {
  servers = [await provider()];
});

afterEach(async () => {
  await Promise.all(modules.map((m) => m.close()));
  await Promise.all(servers.map((s) => s.close()));
  modules = [];
});

describe('KeyfobModule.forRoot', () => {
  it('injects a ready TokenManager by class and an HttpService whose calls carry its token', async () => {
    const [p] = servers as [ProviderServer];
    const moduleRef = await compile([KeyfobModule.forRoot(optionsFor(p))]);
    const svc = moduleRef.get(UpstreamService);

    expect(svc.tokens).toBeInstanceOf(TokenManager);
    expect(moduleRef.get(TokenManager)).toBe(svc.tokens);
    expect(moduleRef.get(getTokenManagerToken())).toBe(svc.tokens);
    expect(moduleRef.get(getKeyfobHttpToken())).toBe(svc.http);

    const first = await svc.get('/things/1');
    const second = await svc.get('/things/2');
    expect(first).toMatchObject({ ok: true, path: '/api/things/1', scope: 'read' });
    expect(second).toMatchObject({ ok: true, path: '/api/things/2' });
    expect(p.issuer.tokenRequests).toBe(1);
    expect(p.issuer.api401).toBe(0);
    const sent = apiTokens(p);
    expect(sent).toHaveLength(2);
    expect(sent[0]).toBe((await svc.tokens.getToken()).accessToken);
    expect(p.tokenRequests()[0]!.params.grant_type).toBe('client_credentials');
  });

  it('never touches the global axios instance a bare HttpModule shares', async () => {
    const [p] = servers as [ProviderServer];
    @Injectable()
    class Both {
      constructor(
        @Inject(HttpService) readonly plain: HttpService,
        @Inject(getKeyfobHttpToken()) readonly keyfob: HttpService,
      ) {}
    }
    const moduleRef = await compile([KeyfobModule.forRoot(optionsFor(p)), HttpModule], [Both]);
    const both = moduleRef.get(Both);
    expect(both.keyfob).not.toBe(both.plain);
    expect(both.keyfob.axiosRef).not.toBe(both.plain.axiosRef);

    const ok = await firstValueFrom(both.keyfob.get('/x'));
    expect(ok.status).toBe(200);
    const plain = await firstValueFrom(both.plain.get(`${p.apiUrl}/x`, { validateStatus: () => true }));
    expect(plain.status).toBe(401);
    expect(p.requests.at(-1)!.headers.authorization).toBeUndefined();
  });

  it('renews the token after a 401: revoked tokens cost one token request and the call still succeeds', async () => {
    const [p] = servers as [ProviderServer];
    const moduleRef = await compile([KeyfobModule.forRoot(optionsFor(p))]);
    const svc = moduleRef.get(UpstreamService);
    await svc.get('/before');
    const before = await svc.tokens.getToken();
    expect(p.issuer.tokenRequests).toBe(1);

    p.issuer.revokeAll();
    const after = await svc.get('/after');
    expect(after).toMatchObject({ ok: true, path: '/api/after' });
    expect(p.issuer.tokenRequests).toBe(2);
    expect(p.issuer.api401).toBe(1);
    const renewed = await svc.tokens.getToken();
    expect(renewed.accessToken).not.toBe(before.accessToken);
    expect(apiTokens(p).slice(-2)).toEqual([before.accessToken, renewed.accessToken]);
  });

  it('logs through Nest Logger with the Keyfob context, redacted', async () => {
    const [p] = servers as [ProviderServer];
    const logger = new RecordingLogger();
    const moduleRef = await compile([KeyfobModule.forRoot(optionsFor(p))], [UpstreamService], logger);
    const svc = moduleRef.get(UpstreamService);
    await svc.get('/one');
    p.issuer.revokeAll();
    await svc.get('/two');
    const lines = logger.lines.filter((l) => l.context === 'Keyfob');
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.some((l) => /invalidated/.test(l.message))).toBe(true);
    const all = JSON.stringify(logger.lines);
    for (const t of apiTokens(p)) expect(all).not.toContain(t!);
    expect(all).not.toContain(CLIENT_SECRET);
  });

  it('uses the logger given in the options instead of Nest Logger', async () => {
    const [p] = servers as [ProviderServer];
    const mine: string[] = [];
    const nest = new RecordingLogger();
    const own = {
      debug: (m: string) => mine.push(m),
      warn: (m: string) => mine.push(m),
      error: (m: string) => mine.push(m),
    };
    const moduleRef = await compile(
      [KeyfobModule.forRoot({ ...optionsFor(p), logger: own })],
      [UpstreamService],
      nest,
    );
    const svc = moduleRef.get(UpstreamService);
    await svc.get('/one');
    p.issuer.revokeAll();
    await svc.get('/two');
    expect(mine.some((m) => /invalidated/.test(m))).toBe(true);
    expect(nest.lines.filter((l) => l.context?.startsWith('Keyfob'))).toEqual([]);
  });

  it('prints neither the secret nor a token through util.inspect or JSON.stringify of what it provides', async () => {
    const [p] = servers as [ProviderServer];
    const moduleRef = await compile([KeyfobModule.forRoot(optionsFor(p))]);
    const svc = moduleRef.get(UpstreamService);
    await svc.get('/x');
    const token = (await svc.tokens.getToken()).accessToken;
    for (const out of [inspect(svc.tokens, { depth: 5 }), JSON.stringify(svc.tokens)]) {
      expect(out).not.toContain(token);
      expect(out).not.toContain(CLIENT_SECRET);
    }
  });
});

describe('KeyfobModule.forRootAsync', () => {
  it('useFactory + inject: options from ConfigService, isGlobal reaches a feature module', async () => {
    const [p] = servers as [ProviderServer];
    @Module({ providers: [UpstreamService], exports: [UpstreamService] })
    class FeatureModule {}

    const moduleRef = await compile(
      [
        ConfigModule.forRoot({
          ignoreEnvFile: true,
          load: [() => ({ TOKEN_URL: p.tokenUrl, API_URL: p.apiUrl, CLIENT_ID, CLIENT_SECRET })],
        }),
        KeyfobModule.forRootAsync({
          isGlobal: true,
          imports: [ConfigModule],
          inject: [ConfigService],
          useFactory: (config: ConfigService): KeyfobModuleOptions => ({
            tokenUrl: config.getOrThrow<string>('TOKEN_URL'),
            grant: clientCredentials({
              clientId: config.getOrThrow<string>('CLIENT_ID'),
              clientSecret: config.getOrThrow<string>('CLIENT_SECRET'),
            }),
            http: { baseURL: config.getOrThrow<string>('API_URL') },
          }),
        }),
        FeatureModule,
      ],
      [],
    );
    const svc = moduleRef.get(UpstreamService);
    expect(await svc.get('/from-config')).toMatchObject({ ok: true, path: '/api/from-config' });
    expect(p.issuer.tokenRequests).toBe(1);
    expect(apiTokens(p)[0]).toBe((await svc.tokens.getToken()).accessToken);
  });

  it('useFactory may be async', async () => {
    const [p] = servers as [ProviderServer];
    const moduleRef = await compile([KeyfobModule.forRootAsync({ useFactory: async () => optionsFor(p) })]);
    expect(await moduleRef.get(UpstreamService).get('/async')).toMatchObject({ ok: true });
  });

  it('useClass: a KeyfobOptionsFactory class builds the options', async () => {
    const [p] = servers as [ProviderServer];
    @Injectable()
    class KeyfobConfig implements KeyfobOptionsFactory {
      createKeyfobOptions(): KeyfobModuleOptions {
        return optionsFor(p);
      }
    }
    const moduleRef = await compile([KeyfobModule.forRootAsync({ useClass: KeyfobConfig })]);
    const svc = moduleRef.get(UpstreamService);
    expect(await svc.get('/use-class')).toMatchObject({ ok: true, path: '/api/use-class' });
    expect(p.issuer.tokenRequests).toBe(1);
  });

  it('useExisting: an options factory provided by an imported module', async () => {
    const [p] = servers as [ProviderServer];
    @Injectable()
    class SharedConfig implements KeyfobOptionsFactory {
      async createKeyfobOptions(): Promise<KeyfobModuleOptions> {
        return optionsFor(p);
      }
    }
    @Module({ providers: [SharedConfig], exports: [SharedConfig] })
    class SharedConfigModule {}
    const moduleRef = await compile([
      KeyfobModule.forRootAsync({ imports: [SharedConfigModule], useExisting: SharedConfig }),
    ]);
    expect(await moduleRef.get(UpstreamService).get('/use-existing')).toMatchObject({ ok: true });
  });
});

describe('named managers', () => {
  it('two managers, two APIs, two credentials: each API sees only its own tokens', async () => {
    const a = servers[0]!;
    const b = await provider('client-b', 'secret-b-value');
    servers.push(b);
    const moduleRef = await compile(
      [
        KeyfobModule.forRoot({ name: 'a', ...optionsFor(a) }),
        KeyfobModule.forRootAsync({
          name: 'b',
          useFactory: () => optionsFor(b, 'client-b', 'secret-b-value'),
        }),
      ],
      [TwoApisService],
    );
    const svc = moduleRef.get(TwoApisService);
    expect(svc.tokensA).not.toBe(svc.tokensB);
    expect(moduleRef.get(getTokenManagerToken('a'))).toBe(svc.tokensA);
    expect(moduleRef.get(getKeyfobHttpToken('b'))).toBe(svc.b);
    expect(() => moduleRef.get(TokenManager)).toThrow();

    for (let i = 0; i < 3; i++) {
      const [ra, rb] = await svc.both();
      expect(ra).toMatchObject({ ok: true });
      expect(rb).toMatchObject({ ok: true });
    }
    expect(a.issuer.tokenRequests).toBe(1);
    expect(b.issuer.tokenRequests).toBe(1);
    expect(a.issuer.api401).toBe(0);
    expect(b.issuer.api401).toBe(0);
    const tokenA = (await svc.tokensA.getToken()).accessToken;
    const tokenB = (await svc.tokensB.getToken()).accessToken;
    expect(tokenA).not.toBe(tokenB);
    expect(apiTokens(a)).toEqual([tokenA, tokenA, tokenA]);
    expect(apiTokens(b)).toEqual([tokenB, tokenB, tokenB]);
    const basic = (id: string, secret: string) =>
      `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
    expect(a.tokenRequests()[0]!.headers.authorization).toBe(basic(CLIENT_ID, CLIENT_SECRET));
    expect(b.tokenRequests()[0]!.headers.authorization).toBe(basic('client-b', 'secret-b-value'));
  });

  it('a named manager logs under Keyfob:<name> and a default one can sit beside named ones', async () => {
    const a = servers[0]!;
    const b = await provider('client-b', 'secret-b-value');
    servers.push(b);
    const logger = new RecordingLogger();
    const moduleRef = await compile(
      [
        KeyfobModule.forRoot(optionsFor(a)),
        KeyfobModule.forRoot({ name: 'b', isGlobal: true, ...optionsFor(b, 'client-b', 'secret-b-value') }),
      ],
      [UpstreamService],
      logger,
    );
    const b401 = moduleRef.get<HttpService>(getKeyfobHttpToken('b'));
    await firstValueFrom(b401.get('/one'));
    b.issuer.revokeAll();
    await firstValueFrom(b401.get('/two'));
    expect(b.issuer.tokenRequests).toBe(2);
    expect(logger.lines.some((l) => l.context === 'Keyfob:b' && /invalidated/.test(l.message))).toBe(true);
    expect(logger.lines.some((l) => l.context === 'Keyfob')).toBe(false);

    expect(await moduleRef.get(UpstreamService).get('/default')).toMatchObject({ ok: true });
    expect(a.issuer.tokenRequests).toBe(1);
    expect(apiTokens(a)).not.toContain(apiTokens(b)[0]);
  });

  it('named registrations in two feature modules stay private to them unless global', async () => {
    const a = servers[0]!;
    const b = await provider('client-b', 'secret-b-value');
    servers.push(b);
    @Injectable()
    class UsesA {
      constructor(@Inject(getKeyfobHttpToken('a')) readonly http: HttpService) {}
    }
    @Module({
      imports: [KeyfobModule.forRoot({ name: 'a', ...optionsFor(a) })],
      providers: [UsesA],
      exports: [UsesA],
    })
    class ModuleA {}
    @Injectable()
    class NeedsA {
      constructor(@Inject(getKeyfobHttpToken('a')) readonly http: HttpService) {}
    }
    @Module({
      imports: [KeyfobModule.forRoot({ name: 'b', ...optionsFor(b, 'client-b', 'secret-b-value') })],
      providers: [NeedsA],
    })
    class ModuleB {}

    await expect(Test.createTestingModule({ imports: [ModuleA, ModuleB] }).compile()).rejects.toThrow(
      /KeyfobHttpService:a/,
    );
    const moduleRef = await compile([ModuleA], []);
    const res = await firstValueFrom(moduleRef.get(UsesA).http.get('/private'));
    expect(res.data).toMatchObject({ ok: true });
  });
});

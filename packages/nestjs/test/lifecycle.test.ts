import 'reflect-metadata';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ErrorCode, TokenManager } from '@keyfob/core';
import { getKeyfobHttpToken, KeyfobModule } from '@keyfob/nestjs';
import type { ProviderServer } from '@keyfob/testing';
import type { HttpService } from '@nestjs/axios';
import { Controller, Get, Inject, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import { firstValueFrom } from 'rxjs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { apiTokens, CLIENT_ID, CLIENT_SECRET, optionsFor, provider, UpstreamService } from './helpers.js';

let p: ProviderServer;
beforeEach(async () => {
  p = await provider();
});
afterEach(async () => {
  await p.close();
});

describe('a real Nest HTTP application', () => {
  it('NestFactory on 127.0.0.1: a controller returns the protected API answer', async () => {
    @Controller()
    class UpstreamController {
      constructor(@Inject(UpstreamService) private readonly upstream: UpstreamService) {}
      @Get('upstream')
      get() {
        return this.upstream.get('/things');
      }
    }
    @Module({
      imports: [KeyfobModule.forRoot(optionsFor(p))],
      controllers: [UpstreamController],
      providers: [UpstreamService],
    })
    class AppModule {}

    const app = await NestFactory.create(AppModule, { logger: false, abortOnError: false });
    try {
      await app.listen(0, '127.0.0.1');
      const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
      for (let i = 0; i < 3; i++) {
        const res = await fetch(`${url}/upstream`);
        expect(res.status).toBe(200);
        expect(await res.json()).toMatchObject({ ok: true, path: '/api/things' });
      }
      expect(p.issuer.tokenRequests).toBe(1);
      expect(new Set(apiTokens(p)).size).toBe(1);
    } finally {
      await app.close();
    }
  });
});

describe('shutdown', () => {
  it('app.close() closes the manager and ejects the interceptors', async () => {
    const m = await Test.createTestingModule({
      imports: [KeyfobModule.forRoot(optionsFor(p))],
      providers: [UpstreamService],
    }).compile();
    await m.init();
    const svc = m.get(UpstreamService);
    const http = m.get<HttpService>(getKeyfobHttpToken());
    await svc.get('/before-close');
    expect(p.requests.at(-1)!.headers.authorization).toMatch(/^Bearer /);
    await m.close();

    await expect(m.get(TokenManager).getToken()).rejects.toMatchObject({ code: ErrorCode.Closed });
    const res = await firstValueFrom(http.get('/after-close', { validateStatus: () => true }));
    expect(res.status).toBe(401);
    expect(p.requests.at(-1)!.path).toBe('/api/after-close');
    expect(p.requests.at(-1)!.headers.authorization).toBeUndefined();
    expect(p.issuer.tokenRequests).toBe(1);
  });

  it('a process that boots an app, calls the API and closes the app exits by itself', async () => {
    const script = fileURLToPath(new URL('./fixtures/shutdown-app.ts', import.meta.url));
    const cwd = fileURLToPath(new URL('..', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', script], {
      cwd,
      env: {
        ...process.env,
        TOKEN_URL: p.tokenUrl,
        API_URL: p.apiUrl,
        CLIENT_ID,
        CLIENT_SECRET,
        NODE_OPTIONS: '',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let reported: (() => void) | undefined;
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
      if (stdout.includes('\n')) reported?.();
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const within = <T>(promise: Promise<T>, ms: number): Promise<T | 'timeout'> => {
      let timer: NodeJS.Timeout | undefined;
      return Promise.race([
        promise,
        new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), ms);
        }),
      ]).finally(() => clearTimeout(timer));
    };
    try {
      // Booting Nest under tsx takes a while; the report line is printed right after app.close().
      const printed = await within(
        Promise.race([new Promise<void>((resolve) => (reported = resolve)), exited.then(() => undefined)]),
        45_000,
      );
      expect(printed, stderr).not.toBe('timeout');
      // Then the process must end by itself: a leaked timer, socket or interval would keep it alive.
      expect(await within(exited, 10_000), stderr).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
    expect(stderr).not.toContain(CLIENT_SECRET);
    const report = JSON.parse(stdout.trim().split('\n').at(-1)!) as {
      status: number;
      body: unknown;
      afterClose: string;
    };
    expect(report).toEqual({
      status: 200,
      body: expect.objectContaining({ ok: true, path: '/api/things' }),
      afterClose: ErrorCode.Closed,
    });
    expect(p.issuer.tokenRequests).toBe(1);
    expect(stdout).not.toContain(apiTokens(p)[0]!);
  }, 70_000);
});

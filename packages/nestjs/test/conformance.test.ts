import 'reflect-metadata';
import { Readable } from 'node:stream';
import { customGrant } from '@keyfob/core';
import { getKeyfobHttpToken, KeyfobModule } from '@keyfob/nestjs';
import { type ConformanceRequest, conformance, conformanceDpopKey } from '@keyfob/testing';
import type { HttpService } from '@nestjs/axios';
import { Test } from '@nestjs/testing';
import axios from 'axios';
import { firstValueFrom } from 'rxjs';
import * as vitest from 'vitest';

/** The body of a conformance request as axios (under HttpService) takes it. */
function axiosBody(body: ConformanceRequest['body']): unknown {
  if (body === undefined) return undefined;
  switch (body.kind) {
    case 'string':
      return body.data;
    case 'bytes':
      return new TextEncoder().encode(body.data);
    case 'form':
      return new URLSearchParams(body.data);
    case 'stream':
      return Readable.from([Buffer.from(body.data)]);
  }
}

conformance(vitest, {
  name: 'Nest HttpService (KeyfobModule)',
  async create(manager, { base, origins, ...options }) {
    // KeyfobModule builds its own TokenManager from its options. Its grant asks the suite's manager
    // for a fresh token on every cache miss, so the suite's token endpoint sees exactly the token
    // requests of the module's manager (its cache, single-flight and invalidation are what is tested).
    const moduleRef = await Test.createTestingModule({
      imports: [
        KeyfobModule.forRoot({
          grant: customGrant(async (ctx) => {
            const t = await manager.getToken({
              forceRefresh: true,
              ...(ctx.subject === undefined ? {} : { subject: ctx.subject }),
              ...(ctx.scope === undefined ? {} : { scope: ctx.scope }),
            });
            return {
              access_token: t.accessToken,
              token_type: t.tokenType,
              expires_in: t.expiresAt === undefined ? 3600 : Math.floor((t.expiresAt - Date.now()) / 1000),
            };
          }),
          retries: 0,
          // DPoP section: the module's manager signs proofs with the key the suite's manager holds.
          ...(conformanceDpopKey(manager) ? { dpop: { privateKey: conformanceDpopKey(manager)! } } : {}),
          http: { baseURL: base, origins, ...options },
        }),
      ],
    }).compile();
    await moduleRef.init();
    const http = moduleRef.get<HttpService>(getKeyfobHttpToken());
    return {
      async request({ method, url, headers, body, keyfob, signal }) {
        try {
          const res = await firstValueFrom(
            http.request<string>({
              method,
              url,
              data: axiosBody(body),
              responseType: 'text',
              ...(headers === undefined ? {} : { headers }),
              ...(keyfob === undefined ? {} : { keyfob }),
              ...(signal === undefined ? {} : { signal }),
            }),
          );
          return { status: res.status, body: res.data };
        } catch (error) {
          if (!axios.isAxiosError(error) || !error.response) throw error;
          return { status: error.response.status, body: String(error.response.data ?? ''), error };
        }
      },
      close: () => moduleRef.close(),
    };
  },
});

import 'reflect-metadata';
import { clientCredentials, type TokenManager } from '@keyfob/core';
import { InjectKeyfobHttp, InjectTokenManager, type KeyfobModuleOptions } from '@keyfob/nestjs';
import { genericClientCredentials, type ProviderServer } from '@keyfob/testing';
import type { HttpService } from '@nestjs/axios';
import { Injectable, type LoggerService } from '@nestjs/common';
import { firstValueFrom } from 'rxjs';

export const CLIENT_ID = 'nest-client';
export const CLIENT_SECRET = 's3cr3t-nest-value';

export async function provider(clientId = CLIENT_ID, clientSecret = CLIENT_SECRET): Promise<ProviderServer> {
  return genericClientCredentials({ clientId, clientSecret });
}

export function optionsFor(
  p: ProviderServer,
  clientId = CLIENT_ID,
  clientSecret = CLIENT_SECRET,
): KeyfobModuleOptions {
  return {
    tokenUrl: p.tokenUrl,
    grant: clientCredentials({ clientId, clientSecret, scope: 'read' }),
    http: { baseURL: p.apiUrl },
  };
}

/** Bearer tokens the API received, in order. */
export function apiTokens(p: ProviderServer): (string | undefined)[] {
  return p.requests
    .filter((r) => r.path.startsWith('/api/'))
    .map((r) => /^Bearer (.+)$/.exec(r.headers.authorization ?? '')?.[1]);
}

/** A service of the user's app: explicit tokens in @Inject, no decorator metadata needed. */
@Injectable()
export class UpstreamService {
  constructor(
    @InjectKeyfobHttp() readonly http: HttpService,
    @InjectTokenManager() readonly tokens: TokenManager,
  ) {}
  async get(path: string): Promise<Record<string, unknown>> {
    const res = await firstValueFrom(this.http.get<Record<string, unknown>>(path));
    return res.data;
  }
}

@Injectable()
export class TwoApisService {
  constructor(
    @InjectKeyfobHttp('a') readonly a: HttpService,
    @InjectKeyfobHttp('b') readonly b: HttpService,
    @InjectTokenManager('a') readonly tokensA: TokenManager,
    @InjectTokenManager('b') readonly tokensB: TokenManager,
  ) {}
  async both(): Promise<[unknown, unknown]> {
    const [ra, rb] = await Promise.all([
      firstValueFrom(this.a.get('/things')),
      firstValueFrom(this.b.get('/things')),
    ]);
    return [ra.data, rb.data];
  }
}

export interface LogLine {
  level: string;
  message: string;
  context: string | undefined;
}

/** A Nest LoggerService that records what it gets. */
export class RecordingLogger implements LoggerService {
  readonly lines: LogLine[] = [];
  #add(level: string, message: unknown, rest: unknown[]) {
    const context =
      rest.length > 0 && typeof rest[rest.length - 1] === 'string'
        ? (rest[rest.length - 1] as string)
        : undefined;
    this.lines.push({ level, message: String(message), context });
  }
  log(message: unknown, ...rest: unknown[]) {
    this.#add('log', message, rest);
  }
  error(message: unknown, ...rest: unknown[]) {
    this.#add('error', message, rest);
  }
  warn(message: unknown, ...rest: unknown[]) {
    this.#add('warn', message, rest);
  }
  debug(message: unknown, ...rest: unknown[]) {
    this.#add('debug', message, rest);
  }
  verbose(message: unknown, ...rest: unknown[]) {
    this.#add('verbose', message, rest);
  }
}
